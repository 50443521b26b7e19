"""``sparkfs streams``: the stream queries of this store (any process on this machine or,
with a shared data directory, any host) with lag, last batch time, rows/s and last error;
``--group`` narrows to one feature group, ``--stop ID`` asks a stream's driver (on this
host) to stop after its current micro-batch (SIGTERM, as ``jobs/stream.py`` handles it).

``sparkfs push GROUP FILE``: request-time rows from a JSON-lines, CSV or Parquet file (``-``:
JSON lines on stdin) written ``--to`` online, offline or both (``fs.push``): checked whole
first, a refused file writes nothing; the Delta commits are flushed before the command exits.

Reads the status files each stream's driver writes (``sparkfs.streaming.status``); no
Spark is started. A stream whose driver died without stopping shows as ``dead``.

>>> import typer
>>> app = typer.Typer(); register(app)
>>> [c.name for c in app.registered_commands]
['streams', 'push']
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Annotated, Any, Literal

import typer

from ..errors import SparkfsError, ValidationError, first_line
from . import config_of, open_store
from ._output import print_table

COLUMNS = ["stream_id", "group", "state", "source", "last_batch_id", "last_batch_time",
           "rows_per_s", "lag", "rows_total", "unparseable_total", "last_error"]
PUSH_FORMATS = ("jsonl", "csv", "parquet")


def register(app: typer.Typer) -> None:
    """Add the ``streams`` and ``push`` commands."""
    app.command("streams", help="list this store's stream queries with lag, last batch "
                "time, rows/s and last error")(_streams)
    app.command("push", help="push rows from a file to a feature group (online at once, "
                "Delta history in batched commits)")(_push)


def _streams(ctx: typer.Context,
             all_: Annotated[bool, typer.Option(
                 "--all", help="also stopped, failed and dead streams")] = False,
             group: Annotated[str | None, typer.Option(
                 help="only the streams into this feature group")] = None,
             json_: Annotated[bool, typer.Option(
                 "--json", help="one JSON object per line")] = False,
             stop: Annotated[str | None, typer.Option(
                 metavar="STREAM_ID", help="stop this running stream after its current "
                 "micro-batch (its driver must run on this host)")] = None,
             wait: Annotated[float, typer.Option(
                 help="with --stop: seconds to wait for the stream to report stopped "
                 "(default 60)")] = 60.0) -> int:
    config = config_of(ctx)
    fs = open_store(config)
    try:
        statuses = fs.list_streams()
    finally:
        fs.close()
    if stop:
        return _stop(config, stop, wait, statuses)
    rows = [s.to_dict() for s in statuses]
    if group:
        rows = [r for r in rows if r["group"] == group]
    if not all_:
        rows = [r for r in rows if r["state"] == "running"]
    for r in rows:
        r["group"] = f"{r['group']}@{r['group_version']}"
    if json_:
        for r in rows:
            print(json.dumps(r))
        return 0
    if not rows:
        print("no running streams" + ("" if all_ else " (--all shows finished ones)"))
        return 0
    print_table(COLUMNS, [[r.get(c) for c in COLUMNS] for r in rows])
    return 0


def _stop(config: str | None, stream_id: str, wait: float, statuses: list) -> int:
    from ..streaming.status import _host

    match = [s for s in statuses if s.stream_id == stream_id]
    if not match:
        raise SparkfsError(f"no stream {stream_id!r} in this store (sparkfs streams --all lists them)")
    s = match[0]
    state = s.shown_state()
    if state != "running":
        raise SparkfsError(f"stream {s.stream_id!r} is {state}, not running; nothing to stop")
    if s.host and s.host != _host():
        raise SparkfsError(f"stream {s.stream_id!r} runs on host {s.host!r}: stop it there "
                           "(sparkfs streams --stop) or send its driver SIGTERM")
    os.kill(s.pid, signal.SIGTERM)
    print(f"stream {s.stream_id}: SIGTERM sent to driver pid {s.pid}; it stops after its "
          "current micro-batch")
    deadline = time.monotonic() + max(0.0, wait)
    while time.monotonic() < deadline:
        fs = open_store(config)
        try:
            now = [x for x in fs.list_streams() if x.stream_id == s.stream_id]
        finally:
            fs.close()
        if now and now[0].shown_state() != "running":
            print(f"stream {s.stream_id}: {now[0].shown_state()}")
            return 0 if now[0].shown_state() in ("stopped", "dead") else 2
        time.sleep(0.5)
    if wait > 0:
        print(f"stream {s.stream_id}: still running after {wait:g} s", file=sys.stderr)
        return 1
    return 0


def read_rows(path: str, fmt: str | None = None) -> Any:
    """The rows of a push file as an Arrow table (JSON lines keep NaN/None as given)."""
    import pyarrow as pa

    if fmt is None:
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        fmt = {"jsonl": "jsonl", "json": "jsonl", "ndjson": "jsonl", "csv": "csv",
               "parquet": "parquet", "pq": "parquet"}.get(ext, "jsonl" if path == "-" else "")
        if not fmt:
            raise ValidationError(f"push file {path!r}: cannot tell its format from the name; "
                                  f"give --format ({', '.join(PUSH_FORMATS)})")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if fmt == "csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path)
        rows = []
        with (sys.stdin if path == "-" else open(path)) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise ValidationError(f"push file {path!r} line {n} is not JSON ({exc}); "
                                          "nothing was written") from None
                if not isinstance(row, dict):
                    raise ValidationError(f"push file {path!r} line {n} is not a JSON object; "
                                          "nothing was written")
                rows.append(row)
        return pa.Table.from_pylist(rows)
    except FileNotFoundError:
        raise ValidationError(f"push file {path!r} does not exist") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"push file {path!r} could not be read as {fmt}: "
                              f"{first_line(exc)}; nothing was written") from None


def _push(ctx: typer.Context,
          group: Annotated[str, typer.Argument(help="feature group name (or name@version)")],
          file: Annotated[str, typer.Argument(
              help="rows: .jsonl/.json (JSON lines), .csv or .parquet; '-' for JSON lines on "
              "stdin")],
          to: Annotated[Literal["online", "offline", "online_and_offline"], typer.Option()
                        ] = "online_and_offline",
          format: Annotated[Literal["jsonl", "csv", "parquet"] | None, typer.Option(
              help="file format (default: from the file name's extension)")] = None) -> int:
    rows = read_rows(file, format)
    fs = open_store(config_of(ctx))
    try:
        n = fs.push(group, rows, to=to)
        fs.flush_pushes()
    finally:
        fs.close()
    print(f"pushed {n} row(s) to {group} ({to})")
    return 0
