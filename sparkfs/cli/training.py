"""``sparkfs training-set create | show | recreate | list``.

``create`` reads the spine from a Parquet file/directory or a CSV file (with the
``duckdb`` engine no Spark starts). ``show`` prints the manifest. ``recreate`` rebuilds
the rows through Delta time travel and reports whether they equal the stored ones.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import SparkfsError
from . import open_store


def register(sub: argparse._SubParsersAction) -> None:
    ts = sub.add_parser("training-set", help="create, show and recreate reproducible training sets")
    tsub = ts.add_subparsers(dest="training_command", metavar="ACTION")
    tsub.required = True

    p = tsub.add_parser("create", help="build a point-in-time correct training set and store it")
    p.add_argument("name")
    p.add_argument("--spine", required=True, help="spine: Parquet file or directory, or .csv")
    p.add_argument("--features", required=True,
                   help="comma-separated feature references, e.g. weather:temp,planes:seats")
    p.add_argument("--timestamp-col", required=True, help="spine column with the as-of time")
    p.add_argument("--engine", choices=["spark", "duckdb"], default="spark")
    p.add_argument("--as-known-at", action="store_true",
                   help="only rows committed by each spine timestamp are visible")
    p.add_argument("--key-map", action="append", default=[], metavar="KEY=COLUMN",
                   help="spine column holding a join key (repeatable)")
    p.add_argument("--full-feature-names", action="store_true")
    p.add_argument("--repo", help="feature repo to import first (on-demand transforms)")
    p.add_argument("--description", default="")
    p.set_defaults(func=_create)

    p = tsub.add_parser("show", help="print a stored training set's manifest")
    p.add_argument("name")
    p.add_argument("--version", type=int)
    p.set_defaults(func=_show)

    p = tsub.add_parser("recreate", help="rebuild a training set from its manifest and compare")
    p.add_argument("name")
    p.add_argument("--version", type=int)
    p.add_argument("--repo", help="feature repo to import first (on-demand transforms)")
    p.add_argument("--output", help="also write the rebuilt rows to this Parquet file")
    p.set_defaults(func=_recreate)

    p = tsub.add_parser("list", help="list stored training sets")
    p.set_defaults(func=_list)


def read_spine(path: str, engine: str, fs):
    """A spine file as a Spark DataFrame (spark engine) or an Arrow table."""
    import os

    if not os.path.exists(path):
        raise SparkfsError(f"spine file {path!r} does not exist")
    if engine == "spark":
        reader = fs.spark.read
        if path.endswith(".csv"):
            return reader.option("header", True).option("inferSchema", True).csv(path)
        return reader.parquet(path)
    if path.endswith(".csv"):
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path)
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _key_map(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise SparkfsError(f"--key-map {p!r} must look like KEY=COLUMN")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _load_repo(fs, repo: str | None) -> None:
    if repo:
        from ..repo import load_repo

        fs.apply(load_repo(repo))


def _create(args: argparse.Namespace) -> int:
    fs = open_store(args)
    _load_repo(fs, args.repo)
    spine = read_spine(args.spine, args.engine, fs)
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    ts = fs.create_training_set(
        args.name, spine, features, args.timestamp_col, engine=args.engine,
        as_known_at=args.as_known_at, key_map=_key_map(args.key_map) or None,
        full_feature_names=args.full_feature_names, description=args.description)
    m = ts.manifest
    print(f"created training set {ts.name!r} version {ts.version}: {m['spine']['rows']} rows, "
          f"columns {', '.join(ts.columns)}")
    for g in m["groups"]:
        print(f"  {g['label']}: Delta version {g['delta_version']}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from ..training.sets import _spec

    fs = open_store(args)
    spec = _spec(fs, args.name, args.version)
    print(json.dumps(spec, indent=2, sort_keys=True))
    return 0


def _recreate(args: argparse.Namespace) -> int:
    fs = open_store(args)
    _load_repo(fs, args.repo)
    stored = fs.get_training_set(args.name, args.version)
    rebuilt = fs.recreate_training_set(args.name, stored.version)
    new, old = rebuilt.to_arrow(), stored.to_arrow()
    same = new.equals(old)
    if args.output:
        import pyarrow.parquet as pq

        pq.write_table(new, args.output)
    print(f"recreated training set {args.name!r} version {stored.version}: {new.num_rows} rows; "
          + ("identical to the stored data" if same else "DIFFERS from the stored data"))
    if not same:
        print("the stored rows and the rebuilt rows differ", file=sys.stderr)
        return 1
    return 0


def _list(args: argparse.Namespace) -> int:
    from ..training.sets import list_training_sets

    fs = open_store(args)
    specs = list_training_sets(fs)
    if not specs:
        print("no training sets stored (run: sparkfs training-set create ...)")
        return 0
    for s in specs:
        m = s["manifest"]
        pins = ", ".join(f"{g['label']}@delta{g['delta_version']}" for g in m["groups"])
        print(f"{s['name']}  v{s['version']}  {m['spine']['rows']} rows  {m['engine']}  {pins}")
    return 0
