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
    app.command("ingest", help="ingest a Parquet/CSV file into a group with Spark")(_ingest)


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
            input: Annotated[str, typer.Argument(
                help="Parquet file or directory, or a .csv file")],
            repo: Annotated[str | None, typer.Option(
                help="feature repo to import first (needed for derived features)")] = None,
            run_id: Annotated[str | None, typer.Option(
                "--run-id", help="idempotency key: the same run id twice is a no-op")] = None,
            materialize: Annotated[bool, typer.Option(
                "--materialize", help="push the new values to the online store too")] = False,
            ) -> int:
    from ..jobs_common import read_input
    from ..repo import load_repo

    fs = open_store(config_of(ctx))
    if repo:
        fs.apply(load_repo(repo))
    df = read_input(fs.spark, input)
    result = fs.ingest(group, df, run_id=run_id, materialize=True if materialize else None)
    print(json.dumps(result.to_dict(), default=str))
    return 0
