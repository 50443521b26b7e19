"""Benchmark: ``fs.ingest`` against a plain ``df.write.parquet`` of the same data.

For each size, synthetic rows (one string join key, an event time, ``--features`` double
features) are first written once as a Parquet source (not timed). Then, in the same run
and on the same SparkSession, from that source:

* ``parquet_write``: ``spark.read.parquet(src).write.parquet(out)`` -- the floor for Spark
  on this machine;
* ``arrow_transfer``: ``spark.read.parquet(src).mapInArrow(count)`` -- the same rows handed
  to Spark's Python workers as Arrow batches and counted, nothing written: what the
  delta-rs writer's pass (Python, in the executors) pays before doing anything (in the
  session the bench builds with sparkfs's settings: batches cut by rows only,
  ``sparkfs.sparkutil.ARROW_BATCH_BYTES``);
* ``ingest``: ``fs.ingest(group, spark.read.parquet(src), run_id=...)`` into a fresh store
  with default settings (statistics on) and, unless ``--expectations 0``, a suite of
  ``--expectations`` row-level expectations (default 5) on the features;
* ``ingest_without_statistics``: the same ingest into a store with
  ``ingest.statistics: false`` (no per-batch feature statistics);
* ``delta_spark``: that same ingest (statistics off) with ``offline.engine: delta-spark``,
  Spark's own Delta writer, when the Delta jars are fetched (``python -m sparkfs.jvm fetch
  delta``); ``ingest`` and ``ingest_without_statistics`` use ``delta-rs``;
* ``noop_same_run_id``: the same call again (a Delta app-transaction look-up);
* ``reingest_new_run_id``: the same data under a new run id (every row is found already
  stored and skipped);
* ``reingest_without_expectations``: that replay into the store without expectations
  (statistics off): the cost of the dedupe alone (no great-expectations pass);
* ``reingest_partial``: then the same rows plus a tenth as many new ones (the first tenth
  under other keys) into that store: a partial replay, which writes only the new rows;
* ``reingest_window``: then, into that store, the source's last tenth (stored already) and
  its first nine tenths again a source's length later (new rows): a batch that overlaps
  the stored history by a window of time, like a daily job that re-reads its last hours.
  ``vs_fresh`` compares it with ``ingest_without_statistics`` (the same number of rows
  into an empty group).

Each size is measured in ``--rounds`` rounds (default 3; a fresh source and fresh stores
each round): every measure reports its median round, with ``runs_s`` listing all rounds,
and the ratios are taken between the medians (the Parquet floor alone varies by a third
between rounds on a shared 2-core machine).

``phases`` splits the ingest time by the ingest module's steps (measured by wrapping its
functions from outside; Spark is lazy, so each step's time includes the work it triggers).
great-expectations is imported once before the timed runs (a once-per-process cost, like
the JVM warm-up; ``great_expectations_import_s`` reports it), and one untimed round of
every call runs on ``--warmup-rows`` rows first (JIT compilation of each plan shape is
also paid once per process; ``--warmup-rows 0`` leaves it out). Prints one JSON document
with the ratios of issue 17 and its goals (ingest <= 1.3x the
Parquet write, statistics off <= 1.1x, a full replay under a new run id <= 0.5x). Not a
test: run ``python bench/ingest.py --rows 100000 --no-delta-spark`` for a quick look; the
default sizes are 1M and 5M rows; ``--features 50`` gives the 50-feature variant.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

GOAL_RATIO = 1.3  # ingest with default settings vs the Parquet write
GOAL_BARE = 1.1  # statistics off
GOAL_REPLAY = 0.5  # every row already stored, new run id
START_S = 1356998400  # the source's first event time (2013-01-01), one row a second after


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="1000000,5000000",
                   help="comma-separated row counts (default 1000000,5000000)")
    p.add_argument("--features", type=int, default=10, help="double features per row")
    p.add_argument("--keys", type=int, default=10_000, help="distinct join-key values")
    p.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    p.add_argument("--driver-memory", default="4g")
    p.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    p.add_argument("--expectations", type=int, default=5,
                   help="row-level expectations on the default ingest (0: none; default 5)")
    p.add_argument("--no-delta-spark", action="store_true",
                   help="leave out the delta-spark writer run")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of every measure per size; the median round is reported "
                        "(default 3)")
    p.add_argument("--warmup-rows", type=int, default=20_000,
                   help="rows of one untimed warm-up round of every call (0: none; "
                        "default 20000)")
    return p.parse_args(argv)


def make_spark(args):
    from sparkfs.config import SparkConfig
    from sparkfs.jvm import is_fetched
    from sparkfs.sparkutil import get_or_create_spark

    return get_or_create_spark(SparkConfig(
        master=args.master, app_name="sparkfs-bench-ingest",
        conf={"spark.driver.memory": args.driver_memory, "spark.sql.shuffle.partitions": "8"}),
        delta=is_fetched("delta"))


def make_group(n_features: int, n_expectations: int = 0):
    """The benchmark group; ``n_expectations`` row-level expectations that every row meets
    (features are uniform in [0, 1): between 0 and 1, not null)."""
    from sparkfs import Entity, FeatureGroup, Field

    expectations = None
    if n_expectations:
        from sparkfs.validation import expect

        expectations = [
            expect("column_values_to_be_between", column=f"f{i % n_features}", min_value=0,
                   max_value=1) if i % 2 == 0 else
            expect("column_values_to_not_be_null", column=f"f{i % n_features}")
            for i in range(n_expectations)]
    return FeatureGroup(
        name="bench", version=1, entities=[Entity("thing", join_keys=["key"])],
        event_time="ts", schema=[Field(f"f{i}", "double") for i in range(n_features)],
        description="synthetic benchmark group", expectations=expectations)


def write_source(spark, path: str, rows: int, n_features: int, keys: int) -> None:
    """Synthetic rows: key k<id % keys>, one event per key and second, random features."""
    from pyspark.sql import functions as F

    df = spark.range(rows).select(
        F.concat(F.lit("k"), (F.col("id") % keys).cast("string")).alias("key"),
        (F.lit(START_S) + F.col("id")).cast("timestamp").alias("ts"),
        *[F.rand(seed=i).alias(f"f{i}") for i in range(n_features)])
    df.write.mode("overwrite").parquet("file://" + path)


def partial_input(spark, src: str, rows: int):
    """The source's rows and ``rows // 10`` new ones: the first tenth again under other keys."""
    from pyspark.sql import functions as F

    first = spark.read.parquet("file://" + src)
    tenth = first.where(F.col("ts") < F.lit(START_S + rows // 10).cast("timestamp"))
    return first.unionByName(tenth.withColumn("key", F.concat(F.lit("n"), F.col("key"))))


def window_input(spark, src: str, rows: int):
    """The source's last ``rows // 10`` rows and its other rows again ``rows`` seconds later
    (the source has one row a second: every shifted row is new)."""
    from pyspark.sql import functions as F

    first = spark.read.parquet("file://" + src)
    cut = F.lit(START_S + rows - rows // 10).cast("timestamp")
    later = first.where(F.col("ts") < cut) \
        .withColumn("ts", (F.col("ts").cast("long") + rows).cast("timestamp"))
    return first.where(F.col("ts") >= cut).unionByName(later)


class PhaseTimer:
    """Wall time spent inside selected functions of ``sparkfs.offline.ingest``."""

    NAMES = {
        "sparkfs.offline.ingest": ["to_spark", "conform", "check_rows", "without_stored_rows"],
        "sparkfs.offline.dedupe": ["stored_matches"],
        "sparkfs.offline.writers": ["DeltaRsWriter.write", "DeltaSparkWriter.write"],
        "sparkfs.offline.parquet_stats": ["list_parquet", "parquet_add_stats", "delete_dir"],
        "sparkfs.offline.onepass": ["stage_with_spark"],
        "sparkfs.offline.fused": ["plan", "FusedPlan.settle"],
        "sparkfs.monitoring": ["record_statistics"],
        "sparkfs.monitoring.sketches": ["spark_partial"],
        "sparkfs.validation": ["validate_batch", "record_validation"],
    }

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    @contextlib.contextmanager
    def wrapped(self):
        import importlib

        saved = []
        for mod_name, names in self.NAMES.items():
            try:
                mod = importlib.import_module(mod_name)
            except ImportError:
                continue
            for name in names:
                owner, attr = mod, name
                if "." in name:  # Class.method
                    cls_name, attr = name.split(".", 1)
                    owner = getattr(mod, cls_name, None)
                fn = getattr(owner, attr, None)
                if callable(fn):
                    saved.append((owner, attr, fn))
                    setattr(owner, attr, self._timed(name, fn))
        try:
            yield self
        finally:
            for owner, attr, fn in saved:
                setattr(owner, attr, fn)

    def _timed(self, name, fn):
        @functools.wraps(fn)
        def inner(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t
        return inner

    def take(self) -> dict[str, float]:
        out = {k: round(v, 3) for k, v in self.totals.items()}
        self.totals = {}
        return out


def timed(fn):
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


def _count_batches(batches):
    import pyarrow as pa

    n = 0
    for batch in batches:
        n += batch.num_rows
    yield pa.record_batch({"n": [n]})


def arrow_transfer(spark, src: str) -> int:
    """The source handed to Spark's Python workers as Arrow batches (``mapInArrow``), rows
    counted, nothing written: the least any write done in Python (the delta-rs writer's
    pass) pays before its own work. Returns the rows counted."""
    rows = spark.read.parquet("file://" + src).mapInArrow(_count_batches, "n long").collect()
    return sum(r["n"] for r in rows)


def bench_size(spark, args, rows: int, work: str, phases: PhaseTimer) -> dict:
    from sparkfs import FeatureStore

    src = os.path.join(work, f"source-{rows}")
    write_source(spark, src, rows, args.features, args.keys)
    group = make_group(args.features, args.expectations)
    bare_group = make_group(args.features)

    out_dir = os.path.join(work, f"floor-{rows}")
    parquet_s, _ = timed(lambda: spark.read.parquet("file://" + src)
                         .write.mode("overwrite").parquet("file://" + out_dir))

    transfer_s, counted = timed(lambda: arrow_transfer(spark, src))
    if counted != rows:
        raise SystemExit(f"the Arrow transfer floor counted {counted} rows, not {rows}")

    fs = FeatureStore({"project": "bench", "data_dir": os.path.join(work, f"store-{rows}"),
                       "offline": {"engine": "delta-rs"}}, spark=spark)
    fs.apply([group])
    phases.take()
    ingest_s, first = timed(lambda: fs.ingest("bench", spark.read.parquet("file://" + src),
                                              run_id=f"bench-{rows}-1"))
    ingest_phases = phases.take()
    noop_s, noop = timed(lambda: fs.ingest("bench", spark.read.parquet("file://" + src),
                                           run_id=f"bench-{rows}-1"))
    phases.take()
    again_s, again = timed(lambda: fs.ingest("bench", spark.read.parquet("file://" + src),
                                             run_id=f"bench-{rows}-2"))
    again_phases = phases.take()
    if first.rows_written != rows or noop.rows_written != 0 or again.rows_written != 0:
        raise SystemExit(f"unexpected ingest results: {first}, {noop}, {again}")
    fs.close()

    # The same ingest with per-batch statistics off (ingest.statistics: false).
    bare = FeatureStore({"project": "bench", "data_dir": os.path.join(work, f"bare-{rows}"),
                         "offline": {"engine": "delta-rs"}, "ingest": {"statistics": False}},
                        spark=spark)
    bare.apply([bare_group])
    bare_s, bare_first = timed(lambda: bare.ingest("bench", spark.read.parquet("file://" + src),
                                                   run_id=f"bench-{rows}-1"))
    bare_phases = phases.take()
    bare_again_s, bare_again = timed(
        lambda: bare.ingest("bench", spark.read.parquet("file://" + src), run_id=f"bench-{rows}-2"))
    bare_again_phases = phases.take()
    # A partial replay: the same rows plus a tenth as many new ones (other keys, same times).
    partial_s, partial = timed(lambda: bare.ingest("bench", partial_input(spark, src, rows),
                                                   run_id=f"bench-{rows}-3"))
    partial_phases = phases.take()
    window_s, window = timed(lambda: bare.ingest("bench", window_input(spark, src, rows),
                                                 run_id=f"bench-{rows}-4"))
    window_phases = phases.take()
    bare.close()
    if bare_again.rows_written != 0 or partial.rows_written != rows // 10 or \
            window.rows_written != rows - rows // 10:
        raise SystemExit(f"unexpected replay results: {bare_again}, {partial}, {window}")

    # The same ingest through Spark's own Delta writer (offline.engine: delta-spark).
    from sparkfs.sparkutil import has_delta_jars

    delta_spark: dict = {"skipped": "the Delta jars are not on this session "
                                    "(python -m sparkfs.jvm fetch delta)"}
    if args.no_delta_spark:
        delta_spark = {"skipped": "--no-delta-spark"}
    elif has_delta_jars(spark):
        ds = FeatureStore({"project": "bench", "data_dir": os.path.join(work, f"ds-{rows}"),
                           "offline": {"engine": "delta-spark"}, "ingest": {"statistics": False}},
                          spark=spark)
        ds.apply([bare_group])
        ds_s, ds_first = timed(lambda: ds.ingest("bench", spark.read.parquet("file://" + src),
                                                 run_id=f"bench-{rows}-1"))
        ds_phases = phases.take()
        ds.close()
        if ds_first.rows_written != rows or ds_first.engine != "delta-spark":
            raise SystemExit(f"unexpected delta-spark ingest result: {ds_first}")
        delta_spark = {"seconds": ds_s, "phases_s": ds_phases}
    for d in (out_dir, src, os.path.join(work, f"store-{rows}"), os.path.join(work, f"bare-{rows}"),
              os.path.join(work, f"ds-{rows}")):
        shutil.rmtree(d, ignore_errors=True)
    return {
        "rows": rows,
        "features": args.features,
        "parquet_write": {"seconds": parquet_s},
        "arrow_transfer": {"seconds": transfer_s},
        "ingest": {"seconds": ingest_s, "expectations": args.expectations,
                   "delta_version": first.delta_version, "rows_written": first.rows_written,
                   "engine": first.engine, "phases_s": ingest_phases},
        "ingest_without_statistics": {
            "seconds": bare_s, "expectations": 0, "rows_written": bare_first.rows_written,
            "phases_s": bare_phases},
        "delta_spark": delta_spark,
        "noop_same_run_id": {"seconds": noop_s, "noop": noop.noop},
        "reingest_new_run_id": {"seconds": again_s, "rows_skipped": again.rows_skipped,
                                "phases_s": again_phases},
        "reingest_without_expectations": {
            "seconds": bare_again_s, "rows_skipped": bare_again.rows_skipped,
            "phases_s": bare_again_phases},
        "reingest_partial": {
            "seconds": partial_s, "rows_written": partial.rows_written,
            "rows_skipped": partial.rows_skipped, "phases_s": partial_phases},
        "reingest_window": {
            "seconds": window_s, "rows_written": window.rows_written,
            "rows_skipped": window.rows_skipped, "phases_s": window_phases},
    }


def summarize(rounds: list[dict]) -> dict:
    """One size's result from its rounds: each measure is the round with the median time
    (its phases with it; ``runs_s`` lists every round's time), and the ratios of issue 17
    are taken between those medians.

    >>> r = [{"rows": 10, "parquet_write": {"seconds": s}, "ingest": {"seconds": 2 * s}}
    ...      for s in (3.0, 1.0, 2.0)]
    >>> out = summarize(r)
    >>> out["parquet_write"], out["ingest_vs_parquet"], out["goal_met"]
    ({'seconds': 2.0, 'runs_s': [3.0, 1.0, 2.0], 'rows_per_s': 5}, 2.0, False)
    """
    out = dict(rounds[0])
    for name, first in rounds[0].items():
        if isinstance(first, dict) and "seconds" in first:
            picked = sorted((r[name] for r in rounds), key=lambda m: m["seconds"])
            median = dict(picked[(len(picked) - 1) // 2])
            median["runs_s"] = [round(r[name]["seconds"], 3) for r in rounds]
            median["seconds"] = round(median["seconds"], 3)
            out[name] = median
    rows, floor = out["rows"], out["parquet_write"]["seconds"]

    def vs(name: str, goal: float | None = None) -> None:
        if "seconds" in out.get(name, {}):
            ratio = out[name]["seconds"] / floor
            out[name]["vs_parquet"] = round(ratio, 2)
            if goal is not None:
                out[name]["goal_met"] = ratio <= goal

    for name in ("parquet_write", "arrow_transfer", "ingest", "ingest_without_statistics",
                 "delta_spark"):
        if "seconds" in out.get(name, {}):
            out[name]["rows_per_s"] = round(rows / out[name]["seconds"])
    vs("arrow_transfer")
    vs("ingest_without_statistics", GOAL_BARE)
    vs("delta_spark")
    vs("reingest_new_run_id", GOAL_REPLAY)
    vs("reingest_without_expectations", GOAL_REPLAY)
    vs("reingest_partial")
    vs("reingest_window")
    if "seconds" in out.get("delta_spark", {}):
        out["delta_spark"]["vs_delta_rs"] = round(
            out["delta_spark"]["seconds"] / out["ingest_without_statistics"]["seconds"], 2)
    if "reingest_window" in out:
        out["reingest_window"]["vs_fresh"] = round(
            out["reingest_window"]["seconds"] / out["ingest_without_statistics"]["seconds"], 2)
    if "ingest" in out:
        ratio = out["ingest"]["seconds"] / floor
        out["ingest_vs_parquet"], out["goal_met"] = round(ratio, 2), ratio <= GOAL_RATIO
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.rows.split(",") if s.strip()]
    work = args.workdir or tempfile.mkdtemp(prefix="sparkfs-bench-ingest-")
    os.makedirs(work, exist_ok=True)
    spark = make_spark(args)
    phases = PhaseTimer()
    results = []
    gx_import_s = 0.0
    try:
        # Warm up the JVM and Python workers so the first size is not charged for it, and
        # import great-expectations (a once-per-process cost, reported on its own).
        write_source(spark, os.path.join(work, "warmup"), 10_000, args.features, 100)
        gx_import_s = 0.0
        if args.expectations:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
            gx_import_s, _ = timed(lambda: __import__("great_expectations"))
        if args.warmup_rows:
            # One untimed round of every measured call on a small batch: the JVM compiles
            # the generated code of each plan shape (hash aggregates, joins, Arrow
            # transfers) on first use; without it the first measured call of a shape pays
            # for it (check_rows took 3.9 s in the first ingest and 1.4 s in the third at
            # 1M rows), which is a once-per-process cost, like the JVM start.
            bench_size(spark, args, args.warmup_rows, work, phases)
        with phases.wrapped():
            for rows in sizes:
                rounds = [bench_size(spark, args, rows, work, phases)
                          for _ in range(max(1, args.rounds))]
                results.append(summarize(rounds))
    finally:
        spark.stop()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "benchmark": "ingest",
        "floor": "spark.read.parquet(src).write.parquet(out), same data, same session",
        "goal": f"ingest_vs_parquet <= {GOAL_RATIO}, ingest_without_statistics <= {GOAL_BARE}, "
                f"reingest_new_run_id <= {GOAL_REPLAY} (x the Parquet write)",
        "spark_master": args.master,
        "rounds": max(1, args.rounds),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "great_expectations_import_s": round(gx_import_s, 3),
        "results": results,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
