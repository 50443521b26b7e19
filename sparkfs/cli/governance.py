"""``sparkfs lineage`` and ``sparkfs lineage-export``: the lineage graph (``fs.lineage``)
and its OpenLineage events (``sparkfs.lineage.openlineage``).

    sparkfs lineage model:delay_model@1                # tree of where it came from
    sparkfs lineage feature:weather:temp --down        # what uses it
    sparkfs lineage group:weather --direction both --depth 2 --format json|dot
    sparkfs lineage-export --file events.jsonl         # or --url http://marquez:5000
    sparkfs skew delay [--since T] [--until T] [--threshold 0.01] [--engine duckdb|spark] [--json]
    sparkfs monitor-served delay [--since T] [--until T] [--json]   # exit 1 on drift

``--format json`` prints ``Lineage.to_dict()`` (stable: see ``sparkfs.lineage.Lineage``).
``sparkfs skew`` prints the skew report (``fs.skew_report``) and exits 1 when a feature's
skew rate is above ``--threshold`` (or a changed transform computes it), for schedulers and
CI. Errors (an unknown node lists close matches, a window with no logged requests) are one
line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json

from ..errors import SparkfsError
from . import open_store


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``lineage`` and ``lineage-export`` subcommands."""
    p = sub.add_parser("lineage", help="where a node came from (or, --down, what uses it)")
    p.add_argument("node", help="model:NAME@V, deployment:NAME, training_set:NAME@V, "
                   "view:NAME@V, group:NAME@V, feature:GROUP:FEATURE, delta:GROUP@V:vN")
    p.add_argument("--down", action="store_true", help="what uses the node (downstream)")
    p.add_argument("--direction", choices=["up", "down", "both"], default=None,
                   help="up (default), down or both")
    p.add_argument("--depth", type=int, default=None, help="at most this many hops")
    p.add_argument("--format", choices=["text", "json", "dot"], default="text")
    p.set_defaults(func=_lineage)

    p = sub.add_parser("lineage-export", help="send every recorded job as OpenLineage events")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--file", help="append the events to this file, one JSON per line")
    where.add_argument("--url", help="POST them to this OpenLineage endpoint (base URL)")
    p.add_argument("--namespace", default="sparkfs", help="OpenLineage namespace")
    p.set_defaults(func=_export)

    p = sub.add_parser("skew", help="served vs offline-recomputed features of a deployment; "
                       "exit 1 above --threshold")
    p.add_argument("deployment")
    p.add_argument("--since", help="only requests at or after this time (ISO 8601)")
    p.add_argument("--until", help="only requests before this time (ISO 8601)")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="highest skew rate (0..1) a feature may have (default 0)")
    p.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_skew)

    p = sub.add_parser("monitor-served", help="drift of a deployment's served features against "
                       "its training set; exit 1 on drift")
    p.add_argument("deployment")
    p.add_argument("--since", help="only requests at or after this time (ISO 8601)")
    p.add_argument("--until", help="only requests before this time (ISO 8601)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_monitor_served)


def _lineage(args: argparse.Namespace) -> int:
    if args.down and args.direction not in (None, "down"):
        raise SparkfsError(f"--down contradicts --direction {args.direction}")
    direction = "down" if args.down else (args.direction or "up")
    fs = open_store(args)
    try:
        result = fs.lineage(args.node, direction=direction, depth=args.depth)
    finally:
        fs.close()
    if args.format == "json":
        print(result.to_json())
    elif args.format == "dot":
        print(result.to_dot())
    else:
        print(result)
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..lineage.openlineage import emit

    transport = ({"type": "file", "log_file_path": args.file, "append": True} if args.file
                 else {"type": "http", "url": args.url})
    fs = open_store(args)
    try:
        events = fs.lineage_events(args.namespace)
    finally:
        fs.close()
    sent = emit(events, transport)
    print(json.dumps({"events": sent, "transport": transport["type"],
                      "target": args.file or args.url}))
    return 0


def _skew(args: argparse.Namespace) -> int:
    fs = open_store(args)
    try:
        report = fs.skew_report(args.deployment, start=args.since, end=args.until,
                                engine=args.engine, threshold=args.threshold)
    finally:
        fs.close()
    print(report.to_json() if args.json else report)
    return 1 if report.failing() else 0


def _monitor_served(args: argparse.Namespace) -> int:
    fs = open_store(args)
    try:
        report = fs.monitor_served(args.deployment, start=args.since, end=args.until)
    finally:
        fs.close()
    print(json.dumps(report.to_dict(), default=str) if args.json else report)
    return 1 if report.drifted else 0
