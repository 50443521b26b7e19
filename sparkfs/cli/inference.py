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

import json
from typing import Annotated

import typer

from ..errors import ValidationError
from . import config_of, open_store
from ._output import print_table
from .online import _parse_entity

JSON_OPT = typer.Option("--json", help="one JSON object per line")


def register(app: typer.Typer) -> None:
    """Add ``deploy``, ``deployments``, ``predict``, ``log`` and ``score-batch``.

    >>> app = typer.Typer(); register(app)
    >>> [c.name for c in app.registered_commands]
    ['deploy', 'deployments', 'predict', 'log', 'score-batch', 'score']
    """
    app.command("deploy", help="deploy a logged model version (bound to its view)")(_deploy)
    app.command("deployments", help="list deployments (current revision of each)")(
        _deployments)
    app.command("predict", help="score entity rows with a deployment (prints JSON)")(_predict)
    app.command("log", help="read a deployment's evaluation log (JSON lines)")(_log)
    app.command("score-batch", help="score a spine on Spark with point-in-time features; "
                "predictions go to the evaluation log (and --output)")(_score_batch)
    app.command("score", help="score the rows appended to a deployment's scoring table (a "
                "Structured Streaming query; exactly once per checkpoint)")(_score)


def _score_batch(ctx: typer.Context, deployment: str,
                 spine: Annotated[str, typer.Option(
                     help="Parquet, CSV or JSON file of the spine")],
                 timestamp_col: Annotated[str, typer.Option(help="the spine's time column")],
                 output: Annotated[str | None, typer.Option(
                     help="write the scored rows here (Parquet, by the executors)")] = None,
                 repo: Annotated[str | None, typer.Option(
                     help="feature repo to import (on-demand transform code)")] = None,
                 run_id: Annotated[str | None, typer.Option(
                     help="request id of this run in the evaluation log")] = None) -> int:
    import os

    from ..jobs_common import read_input
    from ..progress import spark_task

    fs = open_store(config_of(ctx))
    try:
        if repo:
            from ..repo import load_repo

            fs.catalog.attach(load_repo(repo))
        spine_df = read_input(fs.spark, spine)
        scored = fs.score_batch(deployment, spine_df, timestamp_col=timestamp_col,
                                run_id=run_id)
        if output:
            out = output if "://" in output else "file://" + os.path.abspath(output)
            with spark_task(f"write {output}"):
                scored.write.mode("error").parquet(out)
        print(json.dumps({"deployment": deployment, "output": output}))
    finally:
        fs.close()
    return 0


def _score(ctx: typer.Context,
           follow: Annotated[str, typer.Option(
               metavar="DEPLOYMENT", help="the deployment (deployed with --table) whose table "
               "to follow")],
           once: Annotated[bool, typer.Option(
               "--once", help="score the rows there now, then exit (default: run until "
               "stopped)")] = False,
           checkpoint: Annotated[str | None, typer.Option(
               help="the query's checkpoint directory (default: beside the scoring table)")
           ] = None,
           interval_s: Annotated[float, typer.Option(
               help="seconds between micro-batches when following (default 1)")] = 1.0,
           repo: Annotated[str | None, typer.Option(
               help="feature repo to import (on-demand transform code)")] = None) -> int:
    """Prints one JSON line per micro-batch with rows; SIGTERM / Ctrl-C stop the query
    after its current micro-batch (the checkpoint then resumes it exactly)."""
    import signal
    import threading

    if interval_s <= 0:
        raise ValidationError(f"--interval-s must be > 0, got {interval_s}")
    fs = open_store(config_of(ctx))
    stop = threading.Event()
    try:
        if repo:
            from ..repo import load_repo

            fs.catalog.attach(load_repo(repo))
        query = fs.score_table(follow, checkpoint=checkpoint, once=once,
                               interval_s=interval_s)
        if once:
            _print_progress(query.recentProgress, follow)
            return 0
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        seen: set = set()
        while query.isActive and not stop.wait(1.0):
            _print_progress([p for p in query.recentProgress if p["batchId"] not in seen],
                            follow, seen)
        query.stop()
        if query.exception() is not None:
            from ..errors import SparkfsError

            raise SparkfsError(f"scoring table of {follow!r}: {query.exception()}")
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


def _deploy(ctx: typer.Context, name: Annotated[str, typer.Argument(help="deployment name")],
            model: Annotated[str, typer.Option(help="registered MLflow model name")],
            version: Annotated[int | None, typer.Option(
                help="model version (default: latest)")] = None,
            sample_rate: Annotated[float, typer.Option(
                help="share of requests kept in the evaluation log (default 1.0)")] = 1.0,
            table: Annotated[bool, typer.Option(
                "--table", help="also create its scoring table: rows appended to it are "
                "scored by `sparkfs score --follow NAME`")] = False) -> int:
    fs = open_store(config_of(ctx))
    try:
        d = fs.deploy(name, model=model, version=version, sample_rate=sample_rate,
                      table=table)
        print(json.dumps(d.to_dict(), default=str))
    finally:
        fs.close()
    return 0


def _deployments(ctx: typer.Context, json_: Annotated[bool, JSON_OPT] = False) -> int:
    """A table, or with ``--json`` one JSON object per line (nothing when there are none)."""
    fs = open_store(config_of(ctx))
    try:
        rows = [{"name": d.name, "revision": d.revision, "model": d.model_label,
                 "view": d.view, "training_set": d.training_set,
                 "sample_rate": d.sample_rate, "scoring_table": d.request_table}
                for d in fs.list_deployments()]
    finally:
        fs.close()
    if json_:
        for r in rows:
            print(json.dumps(r))
    elif rows:
        print_table([c.upper() for c in rows[0]], [list(r.values()) for r in rows])
    else:
        import sys

        print("no deployments (create one with: sparkfs deploy NAME --model MODEL)",
              file=sys.stderr)
    return 0


def _predict(ctx: typer.Context, deployment: str,
             entity: Annotated[list[str] | None, typer.Option(
                 "--entity", "-e", metavar="KEY=VALUE[,KEY=VALUE]",
                 help="one entity row; repeat for more rows (integers are read as ints)")
             ] = None,
             request: Annotated[list[str] | None, typer.Option(
                 "--request", "-r", metavar="KEY=VALUE",
                 help="a request-time value, the same for every row; repeat per field")
             ] = None) -> int:
    rows = [_parse_entity(e) for e in entity or []]
    if not rows:
        raise ValidationError("give at least one --entity KEY=VALUE")
    request_data = {}
    for text in request or []:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"--request {text!r}: write KEY=VALUE")
        request_data[key.strip()] = [value.strip()] * len(rows)
    fs = open_store(config_of(ctx))
    try:
        result = fs.predict(deployment, rows, request_data=request_data or None)
        print(json.dumps(result.to_dict(), default=str))
    finally:
        fs.close()
    return 0


def _log(ctx: typer.Context, deployment: str,
         since: Annotated[str | None, typer.Option(
             help="only predictions at or after this time (ISO 8601)")] = None,
         limit: Annotated[int | None, typer.Option(
             help="only the last N predictions")] = None) -> int:
    fs = open_store(config_of(ctx))
    try:
        df = fs.read_log(deployment, start=since)
        if limit is not None:
            df = df.tail(limit)
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
