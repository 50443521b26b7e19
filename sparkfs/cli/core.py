"""``sparkfs apply | list | describe | ingest``.

>>> import typer
>>> app = typer.Typer(); register(app)
>>> [c.name for c in app.registered_commands]
['apply', 'list', 'describe', 'ingest']
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from . import config_of, open_store
from ._output import print_json, print_table

JSON_OPT = typer.Option("--json", help="print JSON")


def register(app: typer.Typer) -> None:
    """Add ``apply``, ``list``, ``describe`` and ``ingest`` to ``app``."""
    app.command("apply", help="register every definition in a feature repo file")(_apply)
    app.command("list", help="list registered feature groups")(_list)
    app.command("describe", help="show a feature group's definition")(_describe)
    app.command("ingest", help="ingest Parquet/CSV input into a group with Spark (several "
                "inputs: a backfill, one batch each, with progress)")(_ingest)


def _apply(ctx: typer.Context, repo: Annotated[str, typer.Argument(
        help="path to a feature repo .py file (or a module name)")]) -> int:
    from ..repo import load_repo

    fs = open_store(config_of(ctx))
    objs = load_repo(repo)
    result = fs.apply(objs)
    for label in result.created:
        print(f"created  {label}")
    for label in result.updated:
        print(f"updated  {label}")
    if not result.changed:
        print(f"no changes ({len(result.unchanged)} definitions already up to date)")
    return 0


def _list(ctx: typer.Context, json_: Annotated[bool, JSON_OPT] = False) -> int:
    fs = open_store(config_of(ctx))
    groups = fs.list_feature_groups()
    if json_:
        print_json([g.to_spec() for g in groups])
        return 0
    if not groups:
        print("no feature groups registered (run: sparkfs apply <feature_repo.py>)")
        return 0
    print_table(["GROUP", "VERSION", "KEYS", "EVENT TIME", "FEATURES", "ONLINE", "TTL"],
                [(g.name, g.version, ",".join(g.join_keys), g.event_time, len(g.features),
                  "yes" if g.online else "no", g.ttl) for g in groups])
    return 0


def _describe(ctx: typer.Context,
              group: Annotated[str, typer.Argument(help="group name, or name@version")],
              json_: Annotated[bool, JSON_OPT] = False) -> int:
    fs = open_store(config_of(ctx))
    g = fs.get_feature_group(group)
    if json_:
        print_json(g.to_spec())
        return 0
    from ..discovery import printable

    print(f"{g.name} (version {g.version})")
    if g.description:
        print(f"  {printable(g.description)}")
    print(f"  owner: {printable(g.owner or '-')}   tags: {printable(str(g.tags or '-'))}")
    print("  entities: " + ", ".join(f"{e.name}({', '.join(e.join_keys)})" for e in g.entities))
    print(f"  event time: {g.event_time}   ttl: {g.ttl or '-'}   online: {g.online}")
    print(f"  history: {fs.offline.table_uri(g)} (Delta version {fs.offline.current_version(g)})")
    print("  features:")
    print_table(["  FEATURE", "TYPE", "DESCRIPTION"],
                [("  " + f.name, f.dtype, f.description) for f in g.features])
    from ..monitoring import describe_statistics

    text = describe_statistics(fs.catalog, g)
    if text:
        print(text)
    return 0


def _ingest(ctx: typer.Context, group: str,
            inputs: Annotated[list[str], typer.Argument(
                metavar="INPUT", help="Parquet files or directories, or .csv files; "
                "several inputs are a backfill: one batch (one Delta commit) each, in order")],
            repo: Annotated[str | None, typer.Option(
                help="feature repo to import first (needed for derived features)")] = None,
            run_id: Annotated[str | None, typer.Option(
                "--run-id", help="idempotency key: the same run id twice is a no-op (a "
                "backfill's batch i gets RUN_ID.i, so rerunning it skips committed batches)")
            ] = None,
            materialize: Annotated[bool, typer.Option(
                "--materialize", help="push the new values to the online store too")] = False,
            ) -> int:
    from ..jobs_common import read_input
    from ..repo import load_repo

    fs = open_store(config_of(ctx))
    if repo:
        fs.apply(load_repo(repo))
    if len(inputs) == 1:
        df = read_input(fs.spark, inputs[0])
        result = fs.ingest(group, df, run_id=run_id,
                           materialize=True if materialize else None)
        print(json.dumps(result.to_dict(), default=str))
        return 0
    return _backfill(fs, group, inputs, run_id, materialize)


def _backfill(fs, group: str, inputs: list[str], run_id: str | None, materialize: bool) -> int:
    """Ingest ``inputs`` one batch each, in order, with a progress task (batches done of
    all, rows written so far, elapsed, ETA); one JSON line per batch, then the
    materialization (once, at the end) when asked for or configured."""
    import os

    from .. import progress
    from ..errors import NotFoundError
    from ..jobs_common import read_input

    g = fs.get_feature_group(group)
    missing = [p for p in inputs if "://" not in p and not os.path.exists(p)]
    if missing:  # before the first commit: a backfill never stops half-way for a typo
        raise NotFoundError(f"input(s) {', '.join(map(repr, missing))} do not exist; "
                            "nothing was ingested")
    written = skipped = quarantined = 0
    with progress.task(f"backfill {g.name}@{g.version}", total=len(inputs),
                       unit="batches") as t:
        for i, path in enumerate(inputs, start=1):
            result = fs.ingest(g, read_input(fs.spark, path),
                               run_id=None if run_id is None else f"{run_id}.{i}",
                               materialize=False)
            written += result.rows_written
            skipped += result.rows_skipped
            quarantined += result.rows_quarantined
            print(json.dumps({"input": path, **result.to_dict()}, default=str), flush=True)
            t.advance(note=f"{written:,} rows written, {skipped:,} skipped, "
                           f"{quarantined:,} quarantined")
    if (materialize or fs.config.ingest.materialize) and g.online and written:
        for m in fs.materialize(g):
            print(json.dumps({"materialization": m.to_dict()}, default=str))
    return 0
