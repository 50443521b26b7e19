"""``sparkfs streams``: the stream queries of this store (any process on this machine or,
with a shared data directory, any host) with lag, last batch time, rows/s and last error.

Reads the status files each stream's driver writes (``sparkfs.streaming.status``); no
Spark is started. A stream whose driver died without stopping shows as ``dead``.

>>> import typer
>>> app = typer.Typer(); register(app)
>>> [c.name for c in app.registered_commands]
['streams']
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from . import config_of, open_store
from ._output import print_table

COLUMNS = ["stream_id", "group", "state", "source", "last_batch_id", "last_batch_time",
           "rows_per_s", "lag", "rows_total", "unparseable_total", "last_error"]


def register(app: typer.Typer) -> None:
    """Add the ``streams`` command."""
    app.command("streams", help="list this store's stream queries with lag, last batch "
                "time, rows/s and last error")(_streams)


def _streams(ctx: typer.Context,
             all_: Annotated[bool, typer.Option(
                 "--all", help="also stopped, failed and dead streams")] = False,
             json_: Annotated[bool, typer.Option(
                 "--json", help="one JSON object per line")] = False) -> int:
    fs = open_store(config_of(ctx))
    try:
        rows = [s.to_dict() for s in fs.list_streams()]
    finally:
        fs.close()
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
