"""``sparkfs lineage`` and ``sparkfs lineage-export``: the lineage graph (``fs.lineage``)
and its OpenLineage events (``sparkfs.lineage.openlineage``).

    sparkfs lineage model:delay_model@1                # tree of where it came from
    sparkfs lineage feature:weather:temp --down        # what uses it
    sparkfs lineage group:weather --direction both --depth 2 --format json|dot
    sparkfs lineage-export --file events.jsonl         # or --url http://marquez:5000
    sparkfs skew delay [--since T] [--until T] [--threshold 0.01] [--engine duckdb|spark] [--json]
    sparkfs skew delay --save                          # ... and store the report
    sparkfs skew delay --repo features.py              # with the repo's on-demand code
    sparkfs skew [delay] --list [--since T] [--json]   # stored reports: skew over time
    sparkfs skew --show <report id> [--json]           # one stored report (exit 1 if failing)
    sparkfs monitor-served delay [--since T] [--until T] [--json]   # exit 1 on drift
        [--baseline-since T] [--baseline-until T]      # against another window of the log
    sparkfs explain <request id> [--json]              # why did the model do that?
    sparkfs lineage request:<request id>               # a prediction as a lineage node

``--format json`` prints ``Lineage.to_dict()`` (stable: see ``sparkfs.lineage.Lineage``).
``sparkfs skew`` prints the skew report (``fs.skew_report``) and exits 1 when a feature's
skew rate is above ``--threshold`` (or a changed transform computes it), for schedulers and
CI. Errors (an unknown node lists close matches, a window with no logged requests) are one
line on stderr with exit code 2.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer

from ..errors import SparkfsError
from . import config_of, open_store

SINCE = typer.Option("--since", help="only requests at or after this time (ISO 8601)")
UNTIL = typer.Option("--until", help="only requests before this time (ISO 8601)")
JSON = typer.Option("--json", help="print the report as JSON")


def register(app: typer.Typer) -> None:
    """Add the ``lineage``, ``lineage-export``, ``skew``, ``monitor-served`` and
    ``explain`` commands.

    >>> app = typer.Typer(); register(app)
    >>> [c.name for c in app.registered_commands]
    ['lineage', 'lineage-export', 'skew', 'monitor-served', 'explain']
    """
    app.command("lineage", help="where a node came from (or, --down, what uses it)")(_lineage)
    app.command("lineage-export", help="send every recorded job as OpenLineage events")(_export)
    app.command("skew", help="served vs offline-recomputed features of a deployment; "
                "exit 1 above --threshold")(_skew)
    app.command("monitor-served", help="drift of a deployment's served features against its "
                "training set; exit 1 on drift")(_monitor_served)
    app.command("explain", help="explain one logged prediction: features, Delta versions, "
                "model, training set")(_explain)


def _lineage(ctx: typer.Context,
             node: Annotated[str, typer.Argument(
                 help="model:NAME@V, deployment:NAME, training_set:NAME@V, view:NAME@V, "
                 "group:NAME@V, feature:GROUP:FEATURE, delta:GROUP@V:vN, request:ID")],
             down: Annotated[bool, typer.Option("--down", help="what uses the node "
                                                "(downstream)")] = False,
             direction: Annotated[Literal["up", "down", "both"] | None, typer.Option(
                 "--direction", help="up (default), down or both")] = None,
             depth: Annotated[int | None, typer.Option("--depth",
                                                       help="at most this many hops")] = None,
             format: Annotated[Literal["text", "json", "dot"], typer.Option("--format")] = "text") -> int:
    if down and direction not in (None, "down"):
        raise SparkfsError(f"--down contradicts --direction {direction}")
    way = "down" if down else (direction or "up")
    fs = open_store(config_of(ctx))
    try:
        result = fs.lineage(node, direction=way, depth=depth)
    finally:
        fs.close()
    if format == "json":
        print(result.to_json())
    elif format == "dot":
        print(result.to_dot())
    else:
        print(result)
    return 0


def _export(ctx: typer.Context,
            file: Annotated[str | None, typer.Option(
                "--file", help="append the events to this file, one JSON per line")] = None,
            url: Annotated[str | None, typer.Option(
                "--url", help="POST them to this OpenLineage endpoint (base URL)")] = None,
            namespace: Annotated[str, typer.Option(
                "--namespace", help="OpenLineage namespace")] = "sparkfs") -> int:
    from ..lineage.openlineage import emit

    if (file is None) == (url is None):
        raise typer.BadParameter("give exactly one of --file and --url")
    transport = ({"type": "file", "log_file_path": file, "append": True} if file
                 else {"type": "http", "url": url})
    fs = open_store(config_of(ctx))
    try:
        events = fs.lineage_events(namespace)
    finally:
        fs.close()
    sent = emit(events, transport)
    print(json.dumps({"events": sent, "transport": transport["type"], "target": file or url}))
    return 0


def _skew(ctx: typer.Context,
          deployment: Annotated[str | None, typer.Argument(
              help="the deployment (optional with --list)")] = None,
          since: Annotated[str | None, SINCE] = None,
          until: Annotated[str | None, UNTIL] = None,
          threshold: Annotated[float, typer.Option(
              "--threshold", help="highest skew rate (0..1) a feature may have")] = 0.0,
          engine: Annotated[Literal["duckdb", "spark"], typer.Option("--engine")] = "duckdb",
          repo: Annotated[str | None, typer.Option(
              "--repo", help="feature repo whose on-demand transform code the recompute "
              "runs (attached, never applied: it must match the registry)")] = None,
          save: Annotated[bool, typer.Option(
              "--save", help="store the report (list them with --list)")] = False,
          list_: Annotated[bool, typer.Option(
              "--list", help="list the stored reports (of DEPLOYMENT; --since/--until "
              "select by the time they were made)")] = False,
          show: Annotated[str | None, typer.Option(
              "--show", help="print the stored report with this id (or id prefix)")] = None,
          json_: Annotated[bool, JSON] = False) -> int:
    if list_ and show is not None:
        raise typer.BadParameter("give --list or --show, not both")
    if (list_ or show is not None) and save:
        raise typer.BadParameter("--save stores a new report; it does not go with --list "
                                 "or --show")
    if show is not None and deployment is not None:
        raise typer.BadParameter("--show takes a report id, not a deployment")
    if not list_ and show is None and deployment is None:
        raise typer.BadParameter("name the deployment (or use --list / --show ID)")
    fs = open_store(config_of(ctx))
    try:
        if list_:
            rows = fs.list_skew_reports(deployment, start=since, end=until)
            print(json.dumps(rows, default=str) if json_ else _reports_table(rows))
            return 0
        if show is not None:
            report = fs.get_skew_report(show)
        elif repo is not None:
            from ..repo import load_repo

            fs.catalog.attach(load_repo(repo))
        if show is None:
            assert deployment is not None
            report = fs.skew_report(deployment, start=since, end=until, engine=engine,
                                    threshold=threshold, save=save)
    finally:
        fs.close()
    print(report.to_json() if json_ else report)
    return 1 if report.failing() else 0


def _reports_table(rows: list[dict]) -> str:
    """Stored skew reports, one line each (``sparkfs skew --list``)."""
    if not rows:
        return "no stored skew reports"
    lines = [("ID", "CREATED", "DEPLOYMENT", "REV", "MODEL", "REQUESTS", "MAX SKEW", "FAILING")]
    for r in rows:
        worst = max(r["skew_rates"].values(), default=0.0)
        lines.append((r["report_id"][:12], r["created_at"][:19], r["deployment"],
                      str(r["revision"]), r["model"], str(r["requests"]), f"{worst:.3f}",
                      ", ".join(r["failing"]) or "-"))
    widths = [max(len(x[i]) for x in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip() for x in lines)


def _monitor_served(ctx: typer.Context, deployment: str,
                    since: Annotated[str | None, SINCE] = None,
                    until: Annotated[str | None, UNTIL] = None,
                    baseline_since: Annotated[str | None, typer.Option(
                        "--baseline-since", help="compare with the requests logged from this "
                        "time (instead of the training set)")] = None,
                    baseline_until: Annotated[str | None, typer.Option(
                        "--baseline-until", help="... and before this time")] = None,
                    json_: Annotated[bool, JSON] = False) -> int:
    baseline: object = "training_set"
    if baseline_since is not None or baseline_until is not None:
        baseline = (baseline_since, baseline_until)
    fs = open_store(config_of(ctx))
    try:
        report = fs.monitor_served(deployment, start=since, end=until, baseline=baseline)
    finally:
        fs.close()
    print(json.dumps(report.to_dict(), default=str) if json_ else report)
    return 1 if report.drifted else 0


def _explain(ctx: typer.Context,
             request_id: Annotated[str, typer.Argument(help="a logged prediction's request id")],
             json_: Annotated[bool, JSON] = False) -> int:
    fs = open_store(config_of(ctx))
    try:
        explanation = fs.explain_prediction(request_id)
    finally:
        fs.close()
    print(explanation.to_json() if json_ else explanation)
    return 0
