"""``sparkfs streams``: the stream queries of this store (any process on this machine or,
with a shared data directory, any host) with lag, last batch time, rows/s and last error;
``--group`` narrows to one feature group, ``--stop ID`` asks a stream's driver (on this
host) to stop after its current micro-batch (SIGTERM, as ``jobs/stream.py`` handles it).

``sparkfs push GROUP FILE``: request-time rows from a JSON-lines, CSV or Parquet file (``-``:
JSON lines on stdin) written ``--to`` online, offline or both (``fs.push``): checked whole
first, a refused file writes nothing; the Delta commits are flushed before the command exits.

Reads the status files each stream's driver writes (``sparkfs.streaming.status``); no
Spark is started. A stream whose driver died without stopping shows as ``dead``.

>>> import argparse
>>> p = argparse.ArgumentParser(); sub = p.add_subparsers(); register(sub)
>>> p.parse_args(["streams", "--json"]).json
True
>>> p.parse_args(["push", "clicks", "rows.jsonl", "--to", "online"]).to
'online'
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from ..errors import SparkfsError, ValidationError
from . import open_store

COLUMNS = ["stream_id", "group", "state", "source", "last_batch_id", "last_batch_time",
           "rows_per_s", "lag", "rows_total", "unparseable_total", "last_error"]
PUSH_FORMATS = ("jsonl", "csv", "parquet")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("streams", help="list this store's stream queries with lag, last batch "
                       "time, rows/s and last error")
    p.add_argument("--all", action="store_true", help="also stopped, failed and dead streams")
    p.add_argument("--group", help="only the streams into this feature group")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--stop", metavar="STREAM_ID", help="stop this running stream after its "
                   "current micro-batch (its driver must run on this host)")
    p.add_argument("--wait", type=float, default=60.0,
                   help="with --stop: seconds to wait for the stream to report stopped (default 60)")
    p.set_defaults(func=_streams)

    q = sub.add_parser("push", help="push rows from a file to a feature group (online at once, "
                       "Delta history in batched commits)")
    q.add_argument("group", help="feature group name (or name@version)")
    q.add_argument("file", help="rows: .jsonl/.json (JSON lines), .csv or .parquet; '-' for "
                   "JSON lines on stdin")
    q.add_argument("--to", default="online_and_offline",
                   choices=["online", "offline", "online_and_offline"])
    q.add_argument("--format", choices=PUSH_FORMATS, help="file format (default: from the "
                   "file name's extension)")
    q.set_defaults(func=_push)


def _streams(args: argparse.Namespace) -> int:
    fs = open_store(args)
    try:
        statuses = fs.list_streams()
    finally:
        fs.close()
    if args.stop:
        return _stop(args, statuses)
    rows = [s.to_dict() for s in statuses]
    if args.group:
        rows = [r for r in rows if r["group"] == args.group]
    if not args.all:
        rows = [r for r in rows if r["state"] == "running"]
    for r in rows:
        r["group"] = f"{r['group']}@{r['group_version']}"
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    if not rows:
        print("no running streams" + ("" if args.all else " (--all shows finished ones)"))
        return 0
    table = [[_cell(r.get(c)) for c in COLUMNS] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)).rstrip())
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip())
    return 0


def _stop(args: argparse.Namespace, statuses: list) -> int:
    from ..streaming.status import _host

    match = [s for s in statuses if s.stream_id == args.stop]
    if not match:
        raise SparkfsError(f"no stream {args.stop!r} in this store (sparkfs streams --all lists them)")
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
    deadline = time.monotonic() + max(0.0, args.wait)
    while time.monotonic() < deadline:
        fs = open_store(args)
        try:
            now = [x for x in fs.list_streams() if x.stream_id == s.stream_id]
        finally:
            fs.close()
        if now and now[0].shown_state() != "running":
            print(f"stream {s.stream_id}: {now[0].shown_state()}")
            return 0 if now[0].shown_state() in ("stopped", "dead") else 2
        time.sleep(0.5)
    if args.wait > 0:
        print(f"stream {s.stream_id}: still running after {args.wait:g} s", file=sys.stderr)
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
                              f"{str(exc).splitlines()[0]}; nothing was written") from None


def _push(args: argparse.Namespace) -> int:
    rows = read_rows(args.file, args.format)
    fs = open_store(args)
    try:
        n = fs.push(args.group, rows, to=args.to)
        fs.flush_pushes()
    finally:
        fs.close()
    print(f"pushed {n} row(s) to {args.group} ({args.to})")
    return 0


def _cell(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
