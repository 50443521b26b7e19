"""``sparkfs training-set create | show | recreate | list``.

``create`` reads the spine from a Parquet file/directory or a CSV file (with the
``duckdb`` engine no Spark starts). ``show`` prints the manifest. ``recreate`` rebuilds
the rows through Delta time travel and reports whether they equal the stored ones.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Literal

import typer

from ..errors import SparkfsError
from . import config_of, open_store
from ._output import print_json, print_table

REPO_HELP = "feature repo to import first (on-demand transforms)"


def register(app: typer.Typer) -> None:
    """Add ``training-set create | show | recreate | list`` to ``app``.

    >>> app = typer.Typer(); register(app)
    >>> [c.name for c in app.registered_groups[0].typer_instance.registered_commands]
    ['create', 'show', 'recreate', 'list']
    """
    ts = typer.Typer(help="create, show and recreate reproducible training sets",
                     no_args_is_help=False)
    ts.command("create", help="build a point-in-time correct training set and store it")(
        _create)
    ts.command("show", help="print a stored training set's manifest (JSON)")(_show)
    ts.command("recreate", help="rebuild a training set from its manifest and compare")(
        _recreate)
    ts.command("list", help="list stored training sets")(_list)
    app.add_typer(ts, name="training-set")


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


def _create(ctx: typer.Context, name: str,
            spine: Annotated[str, typer.Option(
                help="spine: Parquet file or directory, or .csv")],
            features: Annotated[str, typer.Option(
                help="comma-separated feature references, e.g. weather:temp,planes:seats")],
            timestamp_col: Annotated[str, typer.Option(
                help="spine column with the as-of time")],
            engine: Annotated[Literal["spark", "duckdb"], typer.Option()] = "spark",
            as_known_at: Annotated[bool, typer.Option(
                "--as-known-at", help="only rows committed by each spine timestamp are visible")
            ] = False,
            key_map: Annotated[list[str] | None, typer.Option(
                metavar="KEY=COLUMN", help="spine column holding a join key (repeatable)")
            ] = None,
            full_feature_names: Annotated[bool, typer.Option("--full-feature-names")] = False,
            repo: Annotated[str | None, typer.Option(help=REPO_HELP)] = None,
            description: Annotated[str, typer.Option()] = "") -> int:
    fs = open_store(config_of(ctx))
    _load_repo(fs, repo)
    spine_data = read_spine(spine, engine, fs)
    refs = [f.strip() for f in features.split(",") if f.strip()]
    ts = fs.create_training_set(
        name, spine_data, refs, timestamp_col, engine=engine, as_known_at=as_known_at,
        key_map=_key_map(key_map or []) or None, full_feature_names=full_feature_names,
        description=description)
    m = ts.manifest
    print(f"created training set {ts.name!r} version {ts.version}: {m['spine']['rows']} rows, "
          f"columns {', '.join(ts.columns)}")
    for g in m["groups"]:
        print(f"  {g['label']}: Delta version {g['delta_version']}")
    return 0


def _show(ctx: typer.Context, name: str,
          version: Annotated[int | None, typer.Option()] = None,
          json_: Annotated[bool, typer.Option(
              "--json", help="print JSON (the manifest is always printed as JSON)")] = False,
          ) -> int:
    from ..training.sets import _spec

    fs = open_store(config_of(ctx))
    spec = _spec(fs.catalog, name, version)
    print(json.dumps(spec, indent=2, sort_keys=True))
    return 0


def _recreate(ctx: typer.Context, name: str,
              version: Annotated[int | None, typer.Option()] = None,
              repo: Annotated[str | None, typer.Option(help=REPO_HELP)] = None,
              output: Annotated[str | None, typer.Option(
                  help="also write the rebuilt rows to this Parquet file")] = None) -> int:
    fs = open_store(config_of(ctx))
    _load_repo(fs, repo)
    stored = fs.get_training_set(name, version)
    rebuilt = fs.recreate_training_set(name, stored.version)
    new, old = rebuilt.to_arrow(), stored.to_arrow()
    same = new.equals(old)
    if output:
        import pyarrow.parquet as pq

        pq.write_table(new, output)
    print(f"recreated training set {name!r} version {stored.version}: {new.num_rows} rows; "
          + ("identical to the stored data" if same else "DIFFERS from the stored data"))
    if not same:
        print("the stored rows and the rebuilt rows differ", file=sys.stderr)
        return 1
    return 0


def _list(ctx: typer.Context, json_: Annotated[bool, typer.Option(
        "--json", help="print JSON: name, version, rows, engine, groups (label, "
        "delta_version)")] = False) -> int:
    from ..training.sets import list_training_sets

    fs = open_store(config_of(ctx))
    specs = list_training_sets(fs.catalog)
    if json_:
        print_json([{"name": s["name"], "version": s["version"],
                     "rows": s["manifest"]["spine"]["rows"], "engine": s["manifest"]["engine"],
                     "groups": [{"label": g["label"], "delta_version": g["delta_version"]}
                                for g in s["manifest"]["groups"]]} for s in specs])
        return 0
    if not specs:
        print("no training sets stored (run: sparkfs training-set create ...)")
        return 0
    print_table(["NAME", "VERSION", "ROWS", "ENGINE", "GROUPS (DELTA VERSION)"],
                [(s["name"], s["version"], s["manifest"]["spine"]["rows"],
                  s["manifest"]["engine"],
                  ", ".join(f"{g['label']}@delta{g['delta_version']}"
                            for g in s["manifest"]["groups"])) for s in specs], limit=400)
    return 0
