"""``sparkfs deploy``, ``sparkfs deployments``, ``sparkfs predict``, ``sparkfs log``.

    sparkfs deploy delay --model delay_model [--version 2] [--sample-rate 0.5] [--table]
    sparkfs deployments
    sparkfs predict delay --entity origin=JFK --request sched_dep_ts=2013-06-01T14:00:00Z
    sparkfs log delay [--since 2013-06-01T00:00:00Z] [--limit 20]
    sparkfs score-batch delay --spine flights.parquet --timestamp-col sched_dep_ts \
        [--output scored.parquet] [--repo jobs/flights/features.py] [--run-id r1]
    sparkfs score --follow delay [--once] [--checkpoint DIR] [--repo jobs/flights/features.py]

Each prints JSON; errors are one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json

from ..errors import ValidationError
from . import open_store
from .online import _parse_entity


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="deploy a logged model version (bound to its view)")
    p.add_argument("name", help="deployment name")
    p.add_argument("--model", required=True, help="registered MLflow model name")
    p.add_argument("--version", type=int, default=None, help="model version (default: latest)")
    p.add_argument("--sample-rate", type=float, default=1.0,
                   help="share of requests kept in the evaluation log (default 1.0)")
    p.add_argument("--table", action="store_true",
                   help="also create its scoring table: rows appended to it are scored by "
                   "`sparkfs score --follow NAME`")
    p.set_defaults(func=_deploy)

    p = sub.add_parser("deployments", help="list deployments (current revision of each)")
    p.set_defaults(func=_deployments)

    p = sub.add_parser("predict", help="score entity rows with a deployment (prints JSON)")
    p.add_argument("deployment")
    p.add_argument("--entity", "-e", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                   help="one entity row; repeat for more rows (integers are read as ints)")
    p.add_argument("--request", "-r", action="append", default=[], metavar="KEY=VALUE",
                   help="a request-time value, the same for every row; repeat per field")
    p.set_defaults(func=_predict)

    p = sub.add_parser("log", help="read a deployment's evaluation log (JSON lines)")
    p.add_argument("deployment")
    p.add_argument("--since", help="only predictions at or after this time (ISO 8601)")
    p.add_argument("--limit", type=int, default=None, help="only the last N predictions")
    p.set_defaults(func=_log)
    _register_batch(sub)


def _register_batch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score-batch", help="score a spine on Spark with point-in-time "
                       "features; predictions go to the evaluation log (and --output)")
    p.add_argument("deployment")
    p.add_argument("--spine", required=True, help="Parquet, CSV or JSON file of the spine")
    p.add_argument("--timestamp-col", required=True, help="the spine's time column")
    p.add_argument("--output", help="write the scored rows here (Parquet, by the executors)")
    p.add_argument("--repo", help="feature repo to import (on-demand transform code)")
    p.add_argument("--run-id", help="request id of this run in the evaluation log")
    p.set_defaults(func=_score_batch)

    p = sub.add_parser("score", help="score the rows appended to a deployment's scoring "
                       "table (a Structured Streaming query; exactly once per checkpoint)")
    p.add_argument("--follow", required=True, metavar="DEPLOYMENT",
                   help="the deployment (deployed with --table) whose table to follow")
    p.add_argument("--once", action="store_true",
                   help="score the rows there now, then exit (default: run until stopped)")
    p.add_argument("--checkpoint", help="the query's checkpoint directory (default: beside "
                   "the scoring table)")
    p.add_argument("--interval-s", type=float, default=1.0,
                   help="seconds between micro-batches when following (default 1)")
    p.add_argument("--repo", help="feature repo to import (on-demand transform code)")
    p.set_defaults(func=_score)


def _score_batch(args: argparse.Namespace) -> int:
    import os

    from ..jobs_common import read_input

    fs = open_store(args)
    try:
        if args.repo:
            from ..ondemand import attach_code
            from ..repo import load_repo

            attach_code(fs, load_repo(args.repo))
        spine = read_input(fs.spark, args.spine)
        scored = fs.score_batch(args.deployment, spine, timestamp_col=args.timestamp_col,
                                run_id=args.run_id)
        if args.output:
            out = args.output if "://" in args.output else "file://" + os.path.abspath(args.output)
            scored.write.mode("error").parquet(out)
        print(json.dumps({"deployment": args.deployment, "output": args.output}))
    finally:
        fs.close()
    return 0


def _score(args: argparse.Namespace) -> int:
    """Prints one JSON line per micro-batch with rows; SIGTERM / Ctrl-C stop the query
    after its current micro-batch (the checkpoint then resumes it exactly)."""
    import signal
    import threading

    if args.interval_s <= 0:
        raise ValidationError(f"--interval-s must be > 0, got {args.interval_s}")
    fs = open_store(args)
    stop = threading.Event()
    try:
        if args.repo:
            from ..ondemand import attach_code
            from ..repo import load_repo

            attach_code(fs, load_repo(args.repo))
        query = fs.score_table(args.follow, checkpoint=args.checkpoint, once=args.once,
                               interval_s=args.interval_s)
        if args.once:
            _print_progress(query.recentProgress, args.follow)
            return 0
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        seen: set = set()
        while query.isActive and not stop.wait(1.0):
            _print_progress([p for p in query.recentProgress if p["batchId"] not in seen],
                            args.follow, seen)
        query.stop()
        if query.exception() is not None:
            from ..errors import SparkfsError

            raise SparkfsError(f"scoring table of {args.follow!r}: {query.exception()}")
    finally:
        fs.close()
    return 0


def _print_progress(progress: list, deployment: str, seen: set | None = None) -> None:
    for p in progress:
        if seen is not None:
            seen.add(p["batchId"])
        if p.get("numInputRows"):
            print(json.dumps({"deployment": deployment, "batch_id": p["batchId"],
                              "rows": p["numInputRows"]}), flush=True)


def _deploy(args: argparse.Namespace) -> int:
    fs = open_store(args)
    try:
        d = fs.deploy(args.name, model=args.model, version=args.version,
                      sample_rate=args.sample_rate, table=args.table)
        print(json.dumps(d.to_dict(), default=str))
    finally:
        fs.close()
    return 0


def _deployments(args: argparse.Namespace) -> int:
    fs = open_store(args)
    try:
        for d in fs.list_deployments():
            print(json.dumps({"name": d.name, "revision": d.revision, "model": d.model_label,
                              "view": d.view, "training_set": d.training_set,
                              "sample_rate": d.sample_rate,
                              "scoring_table": d.request_table}))
    finally:
        fs.close()
    return 0


def _predict(args: argparse.Namespace) -> int:
    rows = [_parse_entity(e) for e in args.entity]
    if not rows:
        raise ValidationError("give at least one --entity KEY=VALUE")
    request = {}
    for text in args.request:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"--request {text!r}: write KEY=VALUE")
        request[key.strip()] = [value.strip()] * len(rows)
    fs = open_store(args)
    try:
        result = fs.predict(args.deployment, rows, request_data=request or None)
        print(json.dumps(result.to_dict(), default=str))
    finally:
        fs.close()
    return 0


def _log(args: argparse.Namespace) -> int:
    fs = open_store(args)
    try:
        df = fs.read_log(args.deployment, start=args.since)
        if args.limit is not None:
            df = df.tail(args.limit)
        for rec in df.to_dict("records"):
            print(json.dumps({k: (None if _isnull(v) else v) for k, v in rec.items()},
                             default=str))
    finally:
        fs.close()
    return 0


def _isnull(v) -> bool:
    try:
        return v is None or v != v
    except (TypeError, ValueError):
        return False
