"""Benchmark: ``fs.materialize`` (Spark and local engines) against floors of the same run.

For each size, a feature group's Delta history (one string join key, an event time,
``--features`` double features; ``--keys`` distinct keys, several events per key in
random order) is built once with delta-rs, not timed: one small ``fs.ingest`` creates the
table, then the rows are appended in ``--commits`` Delta commits. Then, in the same run,
for each online store (``--store sqlite|hbase|both``) into a fresh, empty store:

* ``spark``: ``fs.materialize(group, engine="spark")``;
* ``local``: ``fs.materialize(group, engine="local")`` (DuckDB in this process);
* floors: ``spark_newest_per_key`` -- ``spark.read.parquet(files).groupBy(key)
  .agg(max_by(struct(values), struct(event_time, commit_time)))`` run to the end through
  Spark's ``noop`` sink (the newest row per key, nothing written anywhere); and
  ``sqlite_executemany`` -- one ``executemany`` of ``INSERT`` into a bare SQLite table
  (key, two integers, a blob per row) of as many rows as there are keys, in one
  transaction: what writing the result costs at the least; into HBase,
  ``hbase_mutate_rows`` -- ``mutateRowsTs`` of as many prebuilt rows (same cells, same
  value sizes) over ``pool_size`` connections, 1000 rows per call: what HBase and its
  Thrift server take to store the result, with no client-side encoding.

``rows_per_s`` counts history rows read from the new files, ``keys_per_s`` rows written
online. The issue-17 goal: the Spark engine at >= 200k rows/s at 5M rows into SQLite, and
reported for HBase. HBase is a real single-node HBase 2.6 (``sparkfs.testing.hbase_server``,
started once when ``--store`` includes it; needs the fetched ``hbase`` JVM bundle). Not a
test: ``python bench/materialize.py --rows 1000000 --store sqlite`` for a quick look.
Timings under load only mean something as ratios within one run. Before the first size the
JVM and the Python workers are warmed up (``python_worker_warmup_s``: starting the
workers and importing sparkfs there, a fixed cost of a fresh session).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

GOAL_ROWS_PER_S = 200_000  # Spark engine, 5M rows, SQLite


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="1000000,5000000",
                   help="comma-separated history sizes (default 1000000,5000000)")
    p.add_argument("--keys", default="0.2",
                   help="distinct keys: a count, or a fraction of the rows when < 1 "
                        "(default 0.2: five events per key)")
    p.add_argument("--features", type=int, default=10, help="double features per row")
    p.add_argument("--commits", type=int, default=4, help="Delta commits the rows arrive in")
    p.add_argument("--store", choices=["sqlite", "hbase", "both"], default="sqlite")
    p.add_argument("--engines", default="spark,local", help="engines to time (default both)")
    p.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    p.add_argument("--driver-memory", default="4g")
    p.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    return p.parse_args(argv)


def make_spark(args):
    from sparkfs.config import SparkConfig
    from sparkfs.sparkutil import get_or_create_spark

    return get_or_create_spark(SparkConfig(
        master=args.master, app_name="sparkfs-bench-materialize",
        conf={"spark.driver.memory": args.driver_memory, "spark.sql.shuffle.partitions": "8"}))


def make_group(n_features: int):
    from sparkfs import Entity, FeatureGroup, Field

    return FeatureGroup(
        name="bench", version=1, entities=[Entity("thing", join_keys=["key"])],
        event_time="ts", schema=[Field(f"f{i}", "double") for i in range(n_features)],
        description="synthetic benchmark group", online=True)


def n_keys(spec: str, rows: int) -> int:
    value = float(spec)
    return max(1, int(rows * value) if value < 1 else int(value))


def build_history(work: str, rows: int, keys: int, args) -> str:
    """A data dir whose group ``bench`` holds ``rows`` history rows plus the seed row of
    key ``k0`` (not timed). Every one of the ``keys`` keys appears (``rows >= keys``)."""
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    from sparkfs import FeatureStore
    from sparkfs.offline.tables import COMMIT_TIME, RUN_ID, history_schema

    data_dir = os.path.join(work, f"history-{rows}")
    group = make_group(args.features)
    fs = FeatureStore({"project": "bench", "data_dir": data_dir,
                       "ingest": {"statistics": False}})
    fs.apply([group])
    # One real ingest creates the table as sparkfs does (then plain delta-rs appends).
    seed = pa.table({"key": ["k0"], "ts": pa.array([0], pa.timestamp("us", tz="UTC")),
                     **{f"f{i}": [0.0] for i in range(args.features)}})
    fs.ingest("bench", seed, run_id="seed", materialize=False)
    uri = fs.offline.table_uri(group)
    fs.close()
    schema = history_schema(group)
    rng = np.random.default_rng(17)
    per = -(-rows // args.commits)
    base_us = 1_356_998_400_000_000
    for c in range(args.commits):
        n = min(per, rows - c * per)
        if n <= 0:
            break
        # Row j is the (j // keys)-th event of key j % keys, an hour after its previous one
        # (minute: the key's own); rows are shuffled within each commit.
        j = rng.permutation(np.arange(c * per, c * per + n))
        ids = j % keys
        ts_us = base_us + (j // keys) * 3_600_000_000 + (ids % 60) * 60_000_000
        cols = {"key": pa.array(np.char.add("k", ids.astype(str)).astype(object), pa.string()),
                "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC"))}
        for i in range(args.features):
            vals = rng.random(n)
            vals[rng.random(n) < 0.01] = np.nan
            cols[f"f{i}"] = pa.array(vals, pa.float64())
        cols[COMMIT_TIME] = pa.array(np.full(n, base_us + 10**11 + c), pa.timestamp("us", tz="UTC"))
        cols[RUN_ID] = pa.array([f"bench-{c}"] * n, pa.string())
        write_deltalake(uri, pa.table(cols).cast(schema), mode="append")
    return data_dir


def timed(fn):
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


def floor_spark(spark, files: list[str], args) -> float:
    from pyspark.sql import functions as F

    values = ["ts"] + [f"f{i}" for i in range(args.features)] + ["_commit_time"]
    df = spark.read.parquet(*["file://" + f for f in files])
    newest = F.max_by(F.struct(*values), F.struct("ts", "_commit_time"))
    s, _ = timed(lambda: df.groupBy("key").agg(newest.alias("r")).select("key", "r.*")
                 .write.format("noop").mode("overwrite").save())
    return s


def floor_sqlite(work: str, keys: int, args) -> float:
    import numpy as np

    path = os.path.join(work, "floor.db")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE t (key TEXT NOT NULL PRIMARY KEY, e INTEGER NOT NULL, "
                "c INTEGER NOT NULL, v BLOB NOT NULL) WITHOUT ROWID")
    blob = np.random.default_rng(1).bytes(9 * args.features)
    rows = [(f"k{i}", i, i, blob) for i in range(keys)]

    def run():
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO t VALUES (?,?,?,?)", rows)
        con.execute("COMMIT")

    s, _ = timed(run)
    con.close()
    return s


def floor_hbase(online: dict, keys: int, args) -> float:
    """``mutateRowsTs`` of as many rows as there are keys (each ``--features`` 18-byte
    values plus the ``_m`` cell, as the store writes them) over ``pool_size`` connections,
    1000 rows and one timestamp per call, built before the clock starts: what HBase and
    Thrift themselves cost to take the result, with no encoding on the client."""
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    import happybase
    import Hbase_thrift

    workers = int(online.get("pool_size", 4))
    table = f"floor_{uuid.uuid4().hex[:8]}".encode()
    with contextlib.closing(happybase.Connection(online["host"], online["port"],
                                                 timeout=600_000)) as con:
        con.create_table(table, {"f": {"max_versions": 1}})
    quals = [f"f:f{i}".encode() for i in range(args.features)] + [b"f:_m"]
    value, meta = b"0.5488135039273248", b"[1357016400000000,1357016500000000]"
    calls = []
    for lo in range(0, keys, 1000):
        calls.append([Hbase_thrift.BatchMutation(
            f"k{i}".encode() + b"\x00\x01",
            [Hbase_thrift.Mutation(column=q, value=meta if q == b"f:_m" else value)
             for q in quals]) for i in range(lo, min(keys, lo + 1000))])
    cons = [happybase.Connection(online["host"], online["port"], timeout=600_000)
            for _ in range(workers)]

    def send(k: int) -> None:
        cons[k % workers].client.mutateRowsTs(table, calls[k], 1357016400000 + k, {})

    def run() -> None:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(send, range(len(calls))))

    try:
        s, _ = timed(run)
    finally:
        for c in cons:
            c.close()
        # a new connection: the Thrift server closes one left idle while the floor ran
        with contextlib.closing(happybase.Connection(online["host"], online["port"],
                                                     timeout=600_000)) as con:
            con.delete_table(table, disable=True)
    return s


@contextlib.contextmanager
def hbase_server(work: str):
    from sparkfs.testing.hbase_server import RealHBase, unavailable_reason

    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"real HBase cannot start here: {reason}")
    server = RealHBase(workdir=os.path.join(work, "hbase"))
    t = time.perf_counter()
    server.start()
    try:
        yield server, time.perf_counter() - t
    finally:
        server.stop()


def bench_store(spark, args, data_dir: str, rows: int, keys: int, store: str,
                online: dict) -> dict:
    from sparkfs import FeatureStore

    out: dict = {}
    for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
        tag = f"{store}-{engine}-{rows}-{time.time_ns()}"
        cfg_online = dict(online)
        if store == "sqlite":
            cfg_online["path"] = os.path.join(args.workdir_, f"online-{tag}.db")
        else:
            cfg_online["table_prefix"] = f"b{time.time_ns() % 10**9}"
        fs = FeatureStore({"project": "bench", "data_dir": data_dir, "online": cfg_online},
                          spark=spark)
        try:
            t = time.perf_counter()
            [result] = fs.materialize("bench", engine=engine)
            s = time.perf_counter() - t
            group = fs.get_feature_group("bench")
            stored = fs.online.count(group) if hasattr(fs.online, "count") else None
        finally:
            fs.close()
        if result.rows_read != rows + 1 or result.keys_written < keys:
            raise SystemExit(f"unexpected materialization result: {result}")
        if stored is not None and stored != keys:
            raise SystemExit(f"{stored} rows stored online, expected {keys}")
        out[engine] = {"seconds": round(s, 3), "rows_per_s": round(result.rows_read / s),
                       "keys_per_s": round(result.keys_written / s),
                       "keys_written": result.keys_written, "files": result.files}
    return out


def bench_size(spark, args, rows: int, stores: dict) -> dict:
    from sparkfs import FeatureStore

    keys = n_keys(args.keys, rows)
    data_dir = build_history(args.workdir_, rows, keys, args)
    fs = FeatureStore({"project": "bench", "data_dir": data_dir})
    group = fs.get_feature_group("bench")
    files = fs.offline.files_added_between(group, None, fs.offline.current_version(group))
    fs.close()
    spark_floor = floor_spark(spark, files, args)
    result: dict = {"rows": rows, "keys": keys, "features": args.features,
                    "floors": {"spark_newest_per_key": {
                        "seconds": round(spark_floor, 3),
                        "rows_per_s": round(rows / spark_floor)}}}
    if "sqlite" in stores:
        sq = floor_sqlite(args.workdir_, keys, args)
        result["floors"]["sqlite_executemany"] = {"seconds": round(sq, 3),
                                                  "keys_per_s": round(keys / sq)}
    if "hbase" in stores:
        hb = floor_hbase(stores["hbase"], keys, args)
        result["floors"]["hbase_mutate_rows"] = {"seconds": round(hb, 3),
                                                 "keys_per_s": round(keys / hb)}
    for store, online in stores.items():
        runs = bench_store(spark, args, data_dir, rows, keys, store, online)
        for r in runs.values():
            r["vs_spark_newest_per_key"] = round(r["seconds"] / spark_floor, 2)
            if store == "hbase":
                r["vs_spark_floor_plus_hbase_floor"] = round(
                    r["seconds"] / (spark_floor + result["floors"]["hbase_mutate_rows"]
                                    ["seconds"]), 2)
            if store == "sqlite":
                r["vs_spark_floor_plus_sqlite_floor"] = round(
                    r["seconds"] / (spark_floor + result["floors"]["sqlite_executemany"]
                                    ["seconds"]), 2)
        if "spark" in runs and store == "sqlite":
            runs["spark"]["goal_met"] = runs["spark"]["rows_per_s"] >= GOAL_ROWS_PER_S
        result[store] = runs
    shutil.rmtree(data_dir, ignore_errors=True)
    return result


def _import_engine(_: int) -> int:
    import sparkfs.online.newest  # noqa: F401

    return 1


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.rows.split(",") if s.strip()]
    work = args.workdir or tempfile.mkdtemp(prefix="sparkfs-bench-materialize-")
    os.makedirs(work, exist_ok=True)
    args.workdir_ = work
    spark = make_spark(args)
    results = []
    extra: dict = {}
    try:
        with contextlib.ExitStack() as stack:
            stores: dict = {}
            if args.store in ("sqlite", "both"):
                stores["sqlite"] = {"type": "sqlite"}
            if args.store in ("hbase", "both"):
                server, startup = stack.enter_context(hbase_server(work))
                extra["hbase_startup_s"] = round(startup, 1)
                stores["hbase"] = server.online_config(timeout_ms=60_000)
            # Warm up the JVM, and the Python workers with the modules the Spark engine runs
            # there, so the first size is not charged for it (reported as a fixed cost).
            spark.range(10_000).selectExpr("id % 7 AS k").groupBy("k").count().collect()
            sc = spark.sparkContext
            warm_s, _ = timed(lambda: sc.parallelize(range(sc.defaultParallelism),
                                                     sc.defaultParallelism)
                              .map(_import_engine).sum())
            extra["python_worker_warmup_s"] = round(warm_s, 2)
            for rows in sizes:
                results.append(bench_size(spark, args, rows, stores))
    finally:
        spark.stop()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "benchmark": "materialize",
        "floors": "spark_newest_per_key: read the new files and keep the newest row per key "
                  "(noop sink); sqlite_executemany: one executemany of the same number of "
                  "keys into a bare SQLite table; hbase_mutate_rows: mutateRowsTs of as many "
                  "prebuilt rows of the same cells over pool_size connections",
        "goal": f"spark engine >= {GOAL_ROWS_PER_S} rows/s at 5M rows into SQLite",
        "spark_master": args.master,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **extra,
        "results": results,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
