"""``sparkfs streams``: the stream queries of this store (any process on this machine or,
with a shared data directory, any host) with lag, last batch time, rows/s and last error.

Reads the status files each stream's driver writes (``sparkfs.streaming.status``); no
Spark is started. A stream whose driver died without stopping shows as ``dead``.

>>> import argparse
>>> p = argparse.ArgumentParser(); sub = p.add_subparsers(); register(sub)
>>> p.parse_args(["streams", "--json"]).json
True
"""

from __future__ import annotations

import argparse
import json

from . import open_store

COLUMNS = ["stream_id", "group", "state", "source", "last_batch_id", "last_batch_time",
           "rows_per_s", "lag", "rows_total", "unparseable_total", "last_error"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("streams", help="list this store's stream queries with lag, last batch "
                       "time, rows/s and last error")
    p.add_argument("--all", action="store_true", help="also stopped, failed and dead streams")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_streams)


def _streams(args: argparse.Namespace) -> int:
    fs = open_store(args)
    try:
        rows = [s.to_dict() for s in fs.list_streams()]
    finally:
        fs.close()
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


def _cell(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
