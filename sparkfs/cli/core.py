"""``sparkfs apply | list | describe | ingest``."""

from __future__ import annotations

import argparse
import json

from . import open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="register every definition in a feature repo file")
    p.add_argument("repo", help="path to a feature repo .py file (or a module name)")
    p.set_defaults(func=_apply)

    p = sub.add_parser("list", help="list registered feature groups")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_list)

    p = sub.add_parser("describe", help="show a feature group's definition")
    p.add_argument("group", help="group name, or name@version")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_describe)

    p = sub.add_parser("ingest", help="ingest a Parquet/CSV file into a group with Spark")
    p.add_argument("group")
    p.add_argument("input", help="Parquet file or directory, or a .csv file")
    p.add_argument("--repo", help="feature repo to import first (needed for derived features)")
    p.add_argument("--run-id", help="idempotency key: the same run id twice is a no-op")
    p.add_argument("--materialize", action="store_true",
                   help="push the new values to the online store too")
    p.set_defaults(func=_ingest)


def _apply(args: argparse.Namespace) -> int:
    from ..repo import load_repo

    fs = open_store(args)
    objs = load_repo(args.repo)
    result = fs.apply(objs)
    for label in result.created:
        print(f"created  {label}")
    for label in result.updated:
        print(f"updated  {label}")
    if not result.changed:
        print(f"no changes ({len(result.unchanged)} definitions already up to date)")
    return 0


def _list(args: argparse.Namespace) -> int:
    fs = open_store(args)
    groups = fs.list_feature_groups()
    if args.json:
        print(json.dumps([g.to_spec() for g in groups], indent=2))
        return 0
    if not groups:
        print("no feature groups registered (run: sparkfs apply <feature_repo.py>)")
        return 0
    rows = [("GROUP", "VERSION", "KEYS", "EVENT TIME", "FEATURES", "ONLINE", "TTL")]
    for g in groups:
        rows.append((g.name, str(g.version), ",".join(g.join_keys), g.event_time,
                     str(len(g.features)), "yes" if g.online else "no",
                     "-" if g.ttl is None else str(g.ttl)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _describe(args: argparse.Namespace) -> int:
    fs = open_store(args)
    g = fs.get_feature_group(args.group)
    if args.json:
        print(json.dumps(g.to_spec(), indent=2))
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
    for f in g.features:
        print(f"    {f.name:<28} {f.dtype:<14} {printable(f.description)}")
    from ..monitoring import describe_statistics

    text = describe_statistics(fs, g)
    if text:
        print(text)
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from ..jobs_common import read_input
    from ..repo import load_repo

    fs = open_store(args)
    if args.repo:
        fs.apply(load_repo(args.repo))
    df = read_input(fs.spark, args.input)
    result = fs.ingest(args.group, df, run_id=args.run_id,
                       materialize=True if args.materialize else None)
    print(json.dumps(result.to_dict(), default=str))
    return 0
