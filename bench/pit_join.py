"""Point-in-time join benchmark: sparkfs's DuckDB and Spark engines, a hand-written DuckDB
ASOF JOIN over the same files (the near-limit reference), and Feast 0.67's
``get_historical_features`` (its own venv, via ``bench/peers.py``), all in one run.

Synthetic data: a spine of ``--rows`` rows against 3 feature groups of ``--group-rows``
rows each (different entities, 2 double features each, random event times over 2023,
written in commits of 2M rows with one commit time each, as sparkfs's ingest writes them;
``--per-row-commit-times`` gives every row its own, a little after its event), plus a skewed
variant where one key of each group holds ``--hot-share`` of its rows and of the spine. Timed at three scales
(``--scales``) to show how cost grows. Prints JSON.

    python bench/pit_join.py                                   # 1M x 3 x 10M (slow parts capped)
    python bench/pit_join.py --rows 100000 --group-rows 1000000 --spark-max-rows 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

YEAR_S = 365 * 86400
T0 = 1_672_531_200_000_000  # 2023-01-01 UTC, epoch µs
GROUPS = [("users", "user_id"), ("items", "item_id"), ("shops", "shop_id")]


def definitions():
    from sparkfs import Entity, FeatureGroup, Field

    out = []
    for name, key in GROUPS:
        ent = Entity(name.rstrip("s"), join_keys=[key], dtypes={key: "long"})
        out.append(FeatureGroup(name, [ent], "event_time",
                                [Field(f"{name}_a", "double"), Field(f"{name}_b", "double")]))
    return out


def make_keys(rng, n: int, n_keys: int, hot_share: float) -> np.ndarray:
    keys = rng.integers(0, n_keys, n, dtype=np.int64)
    if hot_share > 0:
        keys[rng.random(n) < hot_share] = 0
    return keys


def build_data(fs, root: str, rows: int, group_rows: int, hot_share: float, seed: int = 0,
               per_row_commit_times: bool = False):
    """Write the 3 groups' Delta histories and return the spine (Arrow)."""
    from deltalake import write_deltalake

    from sparkfs.offline.tables import history_schema

    rng = np.random.default_rng(seed)
    groups = definitions()
    fs.apply(groups)
    n_keys = max(10, group_rows // 100)
    for g, (name, key) in zip(groups, GROUPS):
        schema = history_schema(g)
        chunk = 2_000_000
        for start in range(0, group_rows, chunk):
            n = min(chunk, group_rows - start)
            et = T0 + rng.integers(0, YEAR_S, n) * 1_000_000
            if per_row_commit_times:
                ct = et + rng.integers(0, 3600, n) * 1_000_000
            else:  # a backfill: each commit after all events, commits a minute apart
                ct = np.full(n, T0 + (YEAR_S + 60 * (start // chunk)) * 1_000_000)
            tbl = pa.table({
                key: make_keys(rng, n, n_keys, hot_share),
                "event_time": pa.array(et, pa.timestamp("us", tz="UTC")),
                f"{name}_a": rng.random(n), f"{name}_b": rng.random(n),
                "_commit_time": pa.array(ct, pa.timestamp("us", tz="UTC")),
                "_run_id": pa.array(np.full(n, "bench", dtype=object), pa.string()),
            }, schema=schema)
            # one value per key, event time and commit (ingest refuses a batch with two)
            dup = tbl.select([key, "event_time", "_commit_time"]).to_pandas().duplicated()
            tbl = tbl.filter(pa.array(~dup.to_numpy()))
            write_deltalake(fs.offline.table_uri(g), tbl, mode="append")
    ts = T0 + rng.integers(0, YEAR_S, rows) * 1_000_000
    spine = pa.table({key: make_keys(rng, rows, n_keys, hot_share) for _, key in GROUPS})
    spine = spine.append_column("ts", pa.array(ts, pa.timestamp("us", tz="UTC")))
    spine = spine.append_column("label", pa.array(rng.integers(0, 2, rows)))
    return spine


FEATURES = [f"{name}:{name}_{c}" for name, _ in GROUPS for c in ("a", "b")]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def run_duckdb_engine(fs, spine):
    return timed(lambda: fs.get_historical_features(spine, FEATURES, "ts", engine="duckdb").to_arrow())


def run_handwritten(fs, spine):
    """Plain DuckDB: three chained ASOF LEFT JOINs on event time over the Delta files."""
    import duckdb

    def go():
        con = duckdb.connect()
        con.register("spine", spine.append_column("rid", pa.array(np.arange(spine.num_rows))))
        sel, joins = ["s.* EXCLUDE (rid)"], []
        for i, (g, (name, key)) in enumerate(zip(definitions(), GROUPS)):
            files = fs.offline.files(g)
            lst = ", ".join(f"'{f}'" for f in files)
            sel += [f"g{i}.{name}_a", f"g{i}.{name}_b"]
            joins.append(f"ASOF LEFT JOIN read_parquet([{lst}]) g{i} "
                         f"ON s.{key} = g{i}.{key} AND s.ts >= g{i}.event_time")
        out = con.sql(f"SELECT {', '.join(sel)} FROM spine s {' '.join(joins)} "
                      "ORDER BY s.rid").to_arrow_table()  # keep spine order, as the engines do
        con.close()
        return out
    return timed(go)


def run_spark_engine(fs, spine, warm_up: bool = True, **options):
    """Timed after one untimed run on a 1,000-row slice of the spine (JVM and Python
    worker warm-up: the peers run in processes that are already warm). ``options``:
    ``broadcast_spine_rows=0`` forces the shuffle strategy."""
    if warm_up:
        fs.get_historical_features(spine.slice(0, 1000), FEATURES, "ts", engine="spark", **options) \
            .to_spark().write.format("noop").mode("overwrite").save()

    def go():
        ts = fs.get_historical_features(spine, FEATURES, "ts", engine="spark", **options)
        ts.to_spark().write.format("noop").mode("overwrite").save()
        return ts
    return timed(go)


FEAST_SCRIPT = r'''
import json, os, sys, time
from datetime import timedelta
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.repo_config import RepoConfig
from feast.types import Float64
args = json.loads(sys.argv[1])
d = args["dir"]
cfg = RepoConfig(project="bench", registry=os.path.join(d, "registry.db"), provider="local",
                 offline_store={"type": "file"},
                 online_store={"type": "sqlite", "path": os.path.join(d, "online.db")},
                 entity_key_serialization_version=3)
store = FeatureStore(config=cfg)
objs = []
for name, key, path in args["groups"]:
    ent = Entity(name=name + "_e", join_keys=[key], value_type=ValueType.INT64)
    src = FileSource(path=path, timestamp_field="event_time", created_timestamp_column="_commit_time")
    fv = FeatureView(name=name, entities=[ent], ttl=timedelta(days=3650), source=src,
                     schema=[Field(name=f"{name}_a", dtype=Float64), Field(name=f"{name}_b", dtype=Float64)])
    objs += [ent, fv]
store.apply(objs)
spine = pd.read_parquet(args["spine"]).rename(columns={"ts": "event_timestamp"})
t = time.perf_counter()
df = store.get_historical_features(entity_df=spine, features=args["features"]).to_df()
print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(df)}))
'''


def run_feast(fs, spine, root: str, timeout: float):
    """Feast's file offline store over Parquet copies of the same histories."""
    import pyarrow.parquet as pq
    from peers import PeerUnavailable, feast_python

    try:
        py = feast_python()
    except PeerUnavailable as exc:
        return {"error": str(exc)[:300]}
    d = tempfile.mkdtemp(dir=root, prefix="feast-")
    groups = []
    for g, (name, key) in zip(definitions(), GROUPS):
        path = os.path.join(d, f"{name}.parquet")
        tbl = fs.offline.read_arrow(g).drop_columns(["_run_id"])
        pq.write_table(tbl, path)
        groups.append([name, key, path])
    spine_path = os.path.join(d, "spine.parquet")
    pq.write_table(spine, spine_path)
    feats = [f"{name}:{name}_{c}" for name, _ in GROUPS for c in ("a", "b")]
    script = os.path.join(d, "feast_run.py")
    with open(script, "w") as fh:
        fh.write(FEAST_SCRIPT)
    arg = json.dumps({"dir": d, "groups": groups, "spine": spine_path, "features": feats})
    try:
        proc = subprocess.run([py, script, arg], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1][:300] if proc.stderr.strip() else ""
        killed = " (killed by a signal: out of memory?)" if proc.returncode < 0 else ""
        return {"error": f"exit code {proc.returncode}{killed} {last}".strip()}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def agree(a: pa.Table, b: pa.Table) -> int:
    """Rows whose feature values differ between two results (same spine order)."""
    cols = [f"{name}_{c}" for name, _ in GROUPS for c in ("a", "b")]
    diff = 0
    for c in cols:
        x, y = a.column(c).to_numpy(zero_copy_only=False), b.column(c).to_numpy(zero_copy_only=False)
        diff += int(np.sum(~((x == y) | (np.isnan(x) & np.isnan(y)))))
    return diff


def one_size(args, spark, variant: str, scale: float, root: str) -> dict:
    from sparkfs import FeatureStore

    rows, grows = int(args.rows * scale), int(args.group_rows * scale)
    d = tempfile.mkdtemp(dir=root, prefix=f"{variant}-{scale}-")
    fs = FeatureStore({"data_dir": d}, spark=spark)
    t, spine = timed(lambda: build_data(fs, d, rows, grows, args.hot_share if variant == "skewed" else 0.0,
                                        per_row_commit_times=args.per_row_commit_times))
    res = {"variant": variant, "scale": scale, "spine_rows": rows, "group_rows": grows,
           "groups": 3, "data_build_s": round(t, 2)}
    hand_s, hand = run_handwritten(fs, spine)
    eng_s, eng = run_duckdb_engine(fs, spine)
    res["handwritten_duckdb_asof_s"] = round(hand_s, 3)
    res["duckdb_engine_s"] = round(eng_s, 3)
    res["duckdb_engine_vs_handwritten"] = round(eng_s / hand_s, 2)
    res["rows_differing_from_handwritten"] = agree(eng, hand)
    if spark is not None and rows <= args.spark_max_rows:
        sp_s, sp = run_spark_engine(fs, spine)
        res["spark_engine_s"] = round(sp_s, 3)  # the default: broadcast strategy here
        res["spark_equals_duckdb"] = bool(sp.to_arrow().equals(eng))
        if args.spark_repeat:  # the same call again: JIT-compiled, as in a working session
            res["spark_engine_repeat_s"] = round(run_spark_engine(fs, spine, warm_up=False)[0], 3)
        if args.spark_shuffle:
            sh_s, sh = run_spark_engine(fs, spine, broadcast_spine_rows=0)
            res["spark_engine_shuffle_strategy_s"] = round(sh_s, 3)
            res["spark_shuffle_equals_duckdb"] = bool(sh.to_arrow().equals(eng))
    if args.feast and variant == "uniform" and rows <= args.feast_max_rows:
        res["feast_s"] = run_feast(fs, spine, d, args.feast_timeout)
        f = res["feast_s"]
        if isinstance(f, dict) and "seconds" in f:
            res["feast_s"] = round(f["seconds"], 3)
            res["feast_rows_returned"] = f["rows"]
            res["feast_vs_duckdb_engine"] = round(f["seconds"] / eng_s, 1)
            if "spark_engine_s" in res:
                res["feast_vs_spark_engine"] = round(f["seconds"] / res["spark_engine_s"], 1)
    shutil.rmtree(d, ignore_errors=True)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="spine rows at scale 1")
    p.add_argument("--group-rows", type=int, default=10_000_000, help="rows per group at scale 1")
    p.add_argument("--scales", default="0.1,0.3,1", help="comma-separated size factors")
    p.add_argument("--hot-share", type=float, default=0.3, help="share of rows on one key (skewed)")
    p.add_argument("--spark-max-rows", type=int, default=1_000_000,
                   help="run the Spark engine only up to this many spine rows")
    p.add_argument("--no-spark", action="store_true")
    p.add_argument("--spark-shuffle", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the Spark engine's shuffle strategy (broadcast_spine_rows=0)")
    p.add_argument("--spark-repeat", action=argparse.BooleanOptionalAction, default=True,
                   help="time the Spark engine's call a second time (spark_engine_repeat_s)")
    p.add_argument("--feast", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--feast-max-rows", type=int, default=100_000,
                   help="run Feast only up to this many spine rows")
    p.add_argument("--feast-timeout", type=float, default=900)
    p.add_argument("--variants", default="uniform,skewed")
    p.add_argument("--per-row-commit-times", action="store_true",
                   help="every row its own commit time (tables not written by sparkfs's ingest)")
    args = p.parse_args(argv)

    spark = None
    if not args.no_spark:
        from sparkfs.config import SparkConfig
        from sparkfs.sparkutil import get_or_create_spark

        spark = get_or_create_spark(SparkConfig(master="local[2]", app_name="bench-pit",
                                                conf={"spark.driver.memory": "6g",
                                                      "spark.sql.shuffle.partitions": "16"}))
    root = tempfile.mkdtemp(prefix="sparkfs-bench-pit-")
    results = []
    try:
        for variant in args.variants.split(","):
            for scale in [float(s) for s in args.scales.split(",")]:
                r = one_size(args, spark, variant, scale, root)
                results.append(r)
                print(json.dumps(r), file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    uni = [r for r in results if r["variant"] == "uniform"]
    growth = {}
    if len(uni) >= 2:
        a, b = uni[0], uni[-1]
        f = b["spine_rows"] / max(1, a["spine_rows"])
        growth = {"size_factor": round(f, 1),
                  "duckdb_engine_time_factor": round(b["duckdb_engine_s"] / a["duckdb_engine_s"], 1)}
        if "spark_engine_s" in a and "spark_engine_s" in b:
            growth["spark_engine_time_factor"] = round(b["spark_engine_s"] / a["spark_engine_s"], 1)
    print(json.dumps({"benchmark": "pit_join", "machine": f"{os.cpu_count()} cores",
                      "args": vars(args), "results": results, "growth": growth}, indent=1))
    if spark is not None:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
