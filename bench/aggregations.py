"""Benchmark: windowed aggregates at spine rows, three ways in one run, same data.

* ``sparkfs_spark``   sparkfs.aggregations.spark (tiles + partial edges, equi-joins only)
* ``sparkfs_duckdb``  sparkfs.aggregations.duckdb (the same SQL on DuckDB)
* ``handwritten_spark_range_window``  the usual approach: union events and spine rows,
  ``Window.partitionBy(key).orderBy(time).rangeBetween(-(W - 1us), 0)`` per window,
  keep the spine rows.

Default size is the issue's: 10M events, 1M spine rows, 4 windows (1h, 1d, 7d, 30d) x 3
functions (count, mean, max). Values of every engine are compared with the hand-written
result (max absolute difference, rows that differ). Prints one JSON document.

    .venv/bin/python bench/aggregations.py --events 1000000 --spine 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sparkfs import Aggregation, Entity, FeatureGroup, Field  # noqa: E402

WINDOWS = {"1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
FUNCTIONS = ("count", "mean", "max")
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SPAN_S = 365 * 86400

user = Entity("user", join_keys=["user_id"], dtypes={"user_id": "long"})
GROUP = FeatureGroup(name="purchases", entities=[user], event_time="ts",
                     schema=[Field("amount", "double")],
                     aggregations=[Aggregation("amount", f, list(WINDOWS)) for f in FUNCTIONS])
FEATURES = [a.feature_name(w) for a in GROUP.aggregations for w in a.windows]


def make_data(n_events: int, n_spine: int, n_keys: int, out: str, seed: int = 0) -> tuple[str, str]:
    rng = np.random.default_rng(seed)
    start_us = int(START.timestamp() * 1_000_000)
    ts = start_us + rng.integers(0, SPAN_S, n_events) * 1_000_000
    events = pa.table({
        "user_id": pa.array(rng.integers(0, n_keys, n_events), pa.int64()),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "amount": pa.array(np.round(rng.gamma(2.0, 30.0, n_events), 2)),
        "_commit_time": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "_run_id": pa.array(["bench"] * n_events),
    })
    spine = pa.table({
        "_spine_id": pa.array(np.arange(n_spine), pa.int64()),
        "user_id": pa.array(rng.integers(0, n_keys, n_spine), pa.int64()),
        "t": pa.array(start_us + rng.integers(0, SPAN_S, n_spine) * 1_000_000,
                      pa.timestamp("us", tz="UTC")),
    })
    ev_path, sp_path = os.path.join(out, "events.parquet"), os.path.join(out, "spine.parquet")
    pq.write_table(events, ev_path, row_group_size=1_000_000)
    pq.write_table(spine, sp_path)
    return ev_path, sp_path


def handwritten(spark, events, spine):
    """Spark window functions with rangeBetween, evaluated at the spine rows."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ev = events.select("user_id", F.unix_micros("ts").alias("_us"), "amount",
                       F.lit(None).cast("long").alias("_spine_id"))
    sp = spine.select("user_id", F.unix_micros("t").alias("_us"),
                      F.lit(None).cast("double").alias("amount"), "_spine_id")
    u = ev.unionByName(sp)
    cols = []
    for label, secs in WINDOWS.items():
        w = Window.partitionBy("user_id").orderBy("_us").rangeBetween(-(secs * 1_000_000 - 1), 0)
        cols += [F.count("amount").over(w).alias(f"amount_count_{label}"),
                 F.avg("amount").over(w).alias(f"amount_mean_{label}"),
                 F.max("amount").over(w).alias(f"amount_max_{label}")]
    return u.select("_spine_id", *cols).where(F.col("_spine_id").isNotNull())


def timed_spark(df, path: str) -> float:
    t = time.perf_counter()
    df.write.mode("overwrite").parquet(path)
    return time.perf_counter() - t


def compare(a_path: str, b_path: str) -> dict:
    import duckdb

    con = duckdb.connect()
    diffs = ", ".join(
        f"max(abs(coalesce(a.{f}, -1e300) - coalesce(b.{f}, -1e300))) AS {f}" for f in FEATURES)
    differ = " OR ".join(
        f"(a.{f} IS DISTINCT FROM b.{f} AND NOT (abs(a.{f} - b.{f}) <= 1e-9 * greatest(1, abs(b.{f}))))"
        for f in FEATURES)
    row = con.sql(
        f"SELECT count(*) AS n, {diffs}, count(*) FILTER (WHERE {differ}) AS rows_differ "
        f"FROM read_parquet('{a_path}/*.parquet') a JOIN read_parquet('{b_path}/*.parquet') b "
        "USING (_spine_id)").fetchall()[0]
    con.close()
    return {"rows_compared": row[0], "max_abs_diff": max(v or 0.0 for v in row[1:-1]),
            "rows_differ": row[-1]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--spine", type=int, default=1_000_000)
    p.add_argument("--keys", type=int, default=1_000)
    p.add_argument("--skip-handwritten", action="store_true")
    p.add_argument("--driver-memory", default="6g")
    args = p.parse_args()

    from sparkfs.aggregations import duckdb as agg_duckdb
    from sparkfs.aggregations import spark as agg_spark
    from sparkfs.config import SparkConfig
    from sparkfs.sparkutil import get_or_create_spark

    tmp = tempfile.mkdtemp(prefix="sparkfs-bench-agg-")
    try:
        t = time.perf_counter()
        ev_path, sp_path = make_data(args.events, args.spine, args.keys, tmp)
        gen_s = time.perf_counter() - t
        spark = get_or_create_spark(SparkConfig(
            master="local[2]", app_name="bench-aggregations",
            conf={"spark.driver.memory": args.driver_memory,
                  "spark.sql.shuffle.partitions": "16"}))
        events = spark.read.parquet("file://" + ev_path)
        spine = spark.read.parquet("file://" + sp_path)
        # warm the JVM (code generation of the plans) on a tiny slice, not timed
        agg_spark.aggregate_history(events.limit(1000), GROUP, FEATURES, spine.limit(100),
                                    ["user_id"], "t").collect()
        results: dict = {}
        out_spark = os.path.join(tmp, "out_spark")
        df = agg_spark.aggregate_history(events, GROUP, FEATURES, spine, ["user_id"], "t")
        results["sparkfs_spark"] = {"seconds": round(timed_spark(df, out_spark), 2)}

        import duckdb

        con = duckdb.connect()
        t = time.perf_counter()
        got = agg_duckdb.aggregate_history(
            con.sql(f"SELECT * FROM read_parquet('{ev_path}')"), GROUP, FEATURES,
            con.sql(f"SELECT * FROM read_parquet('{sp_path}')"), ["user_id"], "t", con=con)
        results["sparkfs_duckdb"] = {"seconds": round(time.perf_counter() - t, 2)}
        out_duck = os.path.join(tmp, "out_duckdb")
        os.makedirs(out_duck)
        pq.write_table(got, os.path.join(out_duck, "part.parquet"))
        con.close()
        results["sparkfs_duckdb"]["vs_sparkfs_spark"] = compare(out_duck, out_spark)

        if not args.skip_handwritten:
            out_hand = os.path.join(tmp, "out_hand")
            seconds = timed_spark(handwritten(spark, events, spine), out_hand)
            results["handwritten_spark_range_window"] = {"seconds": round(seconds, 2)}
            results["sparkfs_spark"]["vs_handwritten"] = compare(out_spark, out_hand)
            results["sparkfs_duckdb"]["vs_handwritten"] = compare(out_duck, out_hand)
            results["speedup_sparkfs_spark_vs_handwritten"] = round(
                seconds / results["sparkfs_spark"]["seconds"], 2)
        print(json.dumps({
            "benchmark": "aggregations",
            "events": args.events, "spine_rows": args.spine, "keys": args.keys,
            "windows": list(WINDOWS), "functions": list(FUNCTIONS),
            "span_days": SPAN_S // 86400, "data_generation_s": round(gen_s, 2),
            "machine": f"{os.cpu_count()} cores, Spark local[2], shared with other jobs",
            "results": results,
        }, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
