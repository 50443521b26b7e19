"""Benchmark: ingest with a 6-expectation great-expectations suite vs the same ingest
without validation, in one run, on the same Parquet input. Prints JSON.

    .venv/bin/python bench/validation.py --rows 5000000 [--repeat 1]

Goal (issue 7): validation adds at most 30% to the ingest time. Each repeat ingests the
input into fresh groups: plain (no expectations), strict (suite passes on clean data),
and quarantine (the same suite, ~1% of rows broken so rows are diverted). Statistics are
off in all three so only validation differs. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SUITE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "tailnum"}},
    {"type": "expect_column_values_to_be_between",
     "kwargs": {"column": "distance", "min_value": 1, "max_value": 6000}},
    {"type": "expect_column_values_to_be_in_set",
     "kwargs": {"column": "origin", "value_set": ["EWR", "JFK", "LGA"]}},
    {"type": "expect_column_values_to_match_regex",
     "kwargs": {"column": "carrier", "regex": "^[A-Z0-9]{2}$"}},
    {"type": "expect_column_values_to_be_between",
     "kwargs": {"column": "air_time", "min_value": 0, "max_value": 800}},
    {"type": "expect_column_values_to_be_between",
     "kwargs": {"column": "dep_delay", "min_value": -120, "max_value": 1500}},
]


def group(name, expectations=None, policy="strict"):
    from sparkfs import Entity, FeatureGroup, Field

    return FeatureGroup(
        name, [Entity("flight", ["flight_id"])], "sched_dep_ts",
        [Field("carrier", "string"), Field("tailnum", "string"), Field("origin", "string"),
         Field("distance", "double"), Field("air_time", "double"), Field("dep_delay", "double")],
        online=False, expectations=expectations, validation=policy)


def make_input(spark, rows: int, path: str, broken: float) -> None:
    from pyspark.sql import functions as F

    bad = F.rand(9) < F.lit(broken)
    df = spark.range(rows).select(
        F.concat(F.lit("f"), F.col("id").cast("string")).alias("flight_id"),
        (F.lit("2013-01-01").cast("timestamp") + F.make_interval(secs=F.col("id") % 31_536_000))
        .alias("sched_dep_ts"),
        F.element_at(F.array(*[F.lit(c) for c in ("AA", "B6", "DL", "UA", "9E")]),
                     (F.col("id") % 5 + 1).cast("int")).alias("carrier"),
        F.when(bad, None).otherwise(F.concat(F.lit("N"), (F.col("id") % 4000).cast("string")))
        .alias("tailnum"),
        F.element_at(F.array(F.lit("EWR"), F.lit("JFK"), F.lit("LGA")),
                     (F.col("id") % 3 + 1).cast("int")).alias("origin"),
        F.when(bad, -100.0).otherwise(F.rand(1) * 4900 + 80).alias("distance"),
        (F.rand(2) * 600 + 20).alias("air_time"),
        F.least(F.greatest(F.randn(3) * 30, F.lit(-100.0)), F.lit(1400.0)).alias("dep_delay"),
    )
    df.write.mode("overwrite").parquet("file://" + path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--broken", type=float, default=0.01, help="share of broken rows (quarantine run)")
    args = ap.parse_args()

    from sparkfs import FeatureStore
    from sparkfs.config import SparkConfig
    from sparkfs.sparkutil import get_or_create_spark

    spark = get_or_create_spark(SparkConfig(master="local[2]", app_name="bench-validation",
                                            conf={"spark.driver.memory": "6g",
                                                  "spark.sql.shuffle.partitions": "8"}))
    work = tempfile.mkdtemp(prefix="sparkfs-bench-validation-")
    try:
        clean, dirty = os.path.join(work, "clean.parquet"), os.path.join(work, "dirty.parquet")
        make_input(spark, args.rows, clean, 0.0)
        make_input(spark, args.rows, dirty, args.broken)
        # Warm up (untimed): JIT, the great-expectations import, first Delta commits.
        warm = FeatureStore({"data_dir": os.path.join(work, "warm"),
                             "ingest": {"statistics": False}}, spark=spark)
        warm.apply([group("warm_plain"), group("warm_checked", SUITE)])
        sample = spark.read.parquet("file://" + clean).limit(20_000)
        warm.ingest("warm_plain", sample, run_id="warm")
        warm.ingest("warm_checked", sample, run_id="warm")

        runs: dict[str, list[dict]] = {"plain": [], "strict": [], "quarantine": []}
        for rep in range(args.repeat):
            fs = FeatureStore({"data_dir": os.path.join(work, f"store{rep}"),
                               "ingest": {"statistics": False}}, spark=spark)
            plans = [("plain", group("plain"), clean), ("strict", group("strict", SUITE), clean),
                     ("quarantine", group("quarantine", SUITE, "quarantine"), dirty)]
            fs.apply([g for _, g, _ in plans])
            for label, g, path in plans:
                df = spark.read.parquet("file://" + path)
                t = time.perf_counter()
                r = fs.ingest(g.name, df, run_id=f"{label}-{rep}")
                runs[label].append({"seconds": round(time.perf_counter() - t, 2),
                                    "rows_written": r.rows_written,
                                    "rows_quarantined": r.rows_quarantined})
        best = {k: min(x["seconds"] for x in v) for k, v in runs.items()}
        out = {
            "benchmark": "validation",
            "rows": args.rows,
            "expectations": len(SUITE),
            "repeat": args.repeat,
            "runs": runs,
            "best_seconds": best,
            "overhead_strict": round(best["strict"] / best["plain"] - 1, 3),
            "overhead_quarantine": round(best["quarantine"] / best["plain"] - 1, 3),
            "goal_overhead": 0.30,
            "machine": f"{os.cpu_count()} cores, shared; spark local[2]",
        }
        out["meets_goal"] = out["overhead_strict"] <= 0.30
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
