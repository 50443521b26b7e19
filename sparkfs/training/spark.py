"""The Spark engine: a distributed point-in-time join that stays balanced on hot keys.

Two strategies, chosen like Spark chooses between a broadcast and a shuffle join:

* **broadcast** (``spark_broadcast.py``): a spine that came from the driver (pandas or
  Arrow) with at most ``broadcast_spine_rows`` rows (default 2,000,000) is shipped to
  tasks over the history (which read local files with DuckDB themselves), and each
  answers it locally; the history is never shuffled, so skewed keys cost nothing extra.
  Algorithm in that module's docstring.
* **shuffle** (below): a Spark DataFrame spine (never collected to the driver) or a
  larger one.

Shuffle algorithm. The spine flows through one pass per requested feature group; each
pass adds that group's features to every spine row:

1. **Positions.** Every spine row is placed on its key's timeline at its timestamp ``t``;
   every history row at its *visible-from* time ``V``: the event time ``E``, or with
   ``as_known_at`` ``greatest(E, _commit_time)`` (a row can only be seen once it has
   happened *and* been committed). A history row carries ``R = struct(E, _commit_time,
   _run_id, features...)``; structs compare field by field, so ``max(R)`` is the row
   with the greatest event time, ties going to the latest commit.
2. **Union, not join.** Spine rows (their columns packed into one struct) and history
   rows are unioned into one frame. History rows with ``V`` after the last spine
   timestamp, or older than the first spine timestamp minus the ttl, are dropped first:
   they can never be chosen. When the Delta log's file statistics show that much of the
   history lies before the first spine timestamp, those rows are first reduced to their
   best row per key by an aggregation with map-side combine. No cross join, no row
   multiplication, no join back to the spine: the cost is one shuffle and one sort of
   spine + history per group.
3. **Answer.** Partitioned by the key and ordered by ``(position, kind)`` with history
   rows before spine rows at equal positions (``E <= t`` is inclusive), the running
   ``max(R)`` over *rows between unbounded preceding and current row* is, at each spine
   row, the best row visible at ``t``. A spine row with a null key or timestamp finds no
   history row before it and gets nulls.
4. **Hot keys.** A partition holds one key, so a key with a large share of the rows
   would be one long task. Keys with at least ``hot_key_rows`` spine + history rows
   (found by one count per key with map-side combine; by default a key needs a sizeable
   share of the rows, and small inputs skip the count) are split over ``time_buckets``
   equal slices of the spine's time range: the window is partitioned by ``(key, slice)``
   and a tiny table (hot keys x slices, broadcast) holds each slice's carry-over, the
   best history row of all *earlier* slices (a grouped max, then a running max over the
   slices). The answer is ``greatest(local, carry)``. Other keys are not split.
5. **ttl.** An answer whose event time is older than ``t - ttl`` becomes null.

Spine rows are numbered (``_spine_id``) and every spine row gets exactly one result row
carrying its number; the training set is sorted by that number (``TrainingSet.to_spark``),
so no row is dropped, duplicated or reordered. Batch scoring reads the result unsorted.
Nothing is collected to the driver except the spine's min/max timestamp, row count and
hash (one aggregate) and the hot keys.

Limits: a hot key whose spine rows all share one timestamp stays in one task (time
cannot split it). ``time_buckets=1`` turns splitting off.

Aggregation groups are handed to ``sparkfs.aggregations.spark.aggregate_at_spine``::

    aggregate_at_spine(offline, group, spine, features, delta_version=..., as_known_at=...,
                       key_columns=..., timestamp_col=...) -> DataFrame

where ``spine`` has ``_spine_id``, the spine key columns and the timestamp column, and
the result has ``_spine_id`` plus one column per feature name (at most one row per
``_spine_id``); it is left-joined to the spine by ``_spine_id``.
"""

from __future__ import annotations

from functools import reduce
from typing import TYPE_CHECKING, Any

from ..dtypes import ALL, KEY_DTYPES
from ..errors import SparkfsError
from ..offline.tables import COMMIT_TIME, RUN_ID
from ..sql import quote_ident
from .engines import Spine
from .plan import SPINE_ID, GroupPlan, Plan, micros

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from ..catalog import SparkProvider
    from ..offline.tables import OfflineStore

DEFAULT_TIME_BUCKETS = 64

#: Spark type a join key of each dtype is compared as (spine and history alike)
SPARK_KEY_TYPES = {d: ALL[d].key_dtype.spark for d in KEY_DTYPES}


def spine_to_spark(spark: "SparkSession", spine: Any, timestamp_col: str,
                   keep_id: bool = False) -> "tuple[DataFrame, Any]":
    """The spine as a Spark DataFrame with UTC timestamps and a ``_spine_id`` column, and
    the same rows in Arrow when the spine came from the driver (None for a Spark spine,
    which is never collected).

    pandas/Arrow spines are numbered 0, 1, 2...; a Spark spine gets
    ``monotonically_increasing_id()`` (increasing in the DataFrame's order)."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from .plan import spine_to_arrow

    if not isinstance(spine, DataFrame):
        tbl = spine_to_arrow(spine, timestamp_col, keep_id=keep_id)
        return spark.createDataFrame(tbl), tbl
    if SPINE_ID in spine.columns and not keep_id:
        raise SparkfsError(f"the spine has a column named {SPINE_ID!r}, which sparkfs reserves; rename it")
    for f in spine.schema.fields:
        if isinstance(f.dataType, (T.TimestampNTZType,)) or (
                f.name == timestamp_col and isinstance(f.dataType, T.DateType)):
            spine = spine.withColumn(f.name,
                                     F.col(quote_ident(f.name, "spark")).cast("timestamp"))
    if not keep_id:
        spine = spine.withColumn(SPINE_ID, F.monotonically_increasing_id())
    return spine, None


def spark_schema_as_arrow(df: "DataFrame"):
    """Arrow schema of a Spark DataFrame without running it."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(df.schema, timezone="UTC", prefers_large_types=False)


def spine_summary(sdf: "DataFrame", timestamp_col: str) -> dict:
    """Min/max timestamp (epoch microseconds), row count and a hash of the spine's rows
    (one job): the XOR of each row's ``xxhash64``, so it does not depend on their order or
    partitioning, and a pair of equal rows cancels out (recreating a set compares the row
    count too)."""
    from pyspark.sql import functions as F

    cols = [F.col(quote_ident(c, "spark")) for c in sdf.columns]
    row = sdf.agg(F.unix_micros(F.min(F.col(quote_ident(timestamp_col, "spark")))).alias("lo"),
                  F.unix_micros(F.max(F.col(quote_ident(timestamp_col, "spark")))).alias("hi"),
                  F.count(F.lit(1)).alias("n"),
                  F.bit_xor(F.xxhash64(*cols)).alias("h")).collect()[0]
    return {"lo": row["lo"], "hi": row["hi"], "rows": int(row["n"]),
            "hash": f"spark-xxhash64-xor:{(row['h'] or 0) & 0xFFFFFFFFFFFFFFFF:016x}"}


class SparkEngine:
    """What both Spark ``JoinEngine`` strategies share (``sparkfs.training.engines``):
    the spine as a Spark DataFrame, its one-job summary, aggregation groups, on-demand
    features and the final order. Subclasses add the as-of groups (``add_asof``)."""

    name = "spark"

    def __init__(self, time_buckets: int | None = None, hot_key_rows: int | None = None,
                 broadcast_spine_rows: int | None = None) -> None:
        self.time_buckets = DEFAULT_TIME_BUCKETS if time_buckets is None else int(time_buckets)
        if self.time_buckets < 1:
            raise SparkfsError(f"time_buckets must be >= 1, got {time_buckets}")
        if hot_key_rows is not None and int(hot_key_rows) < 1:
            raise SparkfsError(f"hot_key_rows must be >= 1, got {hot_key_rows}")
        if broadcast_spine_rows is not None and int(broadcast_spine_rows) < 0:
            raise SparkfsError(f"broadcast_spine_rows must be >= 0, got {broadcast_spine_rows}")
        self.hot_key_rows = None if hot_key_rows is None else int(hot_key_rows)
        self.broadcast_spine_rows = (None if broadcast_spine_rows is None
                                     else int(broadcast_spine_rows))

    def options(self) -> dict:
        out: dict = {"time_buckets": self.time_buckets}
        if self.hot_key_rows is not None:
            out["hot_key_rows"] = self.hot_key_rows
        if self.broadcast_spine_rows is not None:
            out["broadcast_spine_rows"] = self.broadcast_spine_rows
        return out

    def prepare_spine(self, spark: "SparkProvider", spine: Any, timestamp_col: str,
                      keep_id: bool = False) -> Spine:
        sdf, tbl = spine_to_spark(spark(), spine, timestamp_col, keep_id=keep_id)
        return Spine(spark_schema_as_arrow(sdf), arrow=tbl, frame=sdf)

    def summary(self, spine: Spine, timestamp_col: str) -> dict:
        return spine_summary(spine.frame, timestamp_col)

    def add_asof(self, offline: "OfflineStore", plan: Plan, out: "DataFrame", spine: Spine,
                 summary: dict, groups: list[GroupPlan]) -> "DataFrame":
        """``out`` with the features of the as-of ``groups`` added."""
        raise NotImplementedError

    def join(self, offline: "OfflineStore", plan: Plan, spine: Spine, summary: dict) -> "DataFrame":
        """The spine with every requested feature added and its ``_spine_id`` (not sorted:
        ``TrainingSet`` sorts by ``_spine_id`` when the order is asked for)."""
        return join_spark(offline, plan, spine, summary, self)


class SparkShuffleEngine(SparkEngine):
    """Steps 1-5 of the module docstring: one shuffle of spine + history per as-of group.

    >>> SparkShuffleEngine(time_buckets=8).options()
    {'time_buckets': 8}
    """

    def add_asof(self, offline: "OfflineStore", plan: Plan, out: "DataFrame", spine: Spine,
                 summary: dict, groups: list[GroupPlan]) -> "DataFrame":
        for gp in groups:
            out = asof_pass(offline, gp, out, plan.timestamp_col, summary, plan.as_known_at,
                            self.time_buckets, self.hot_key_rows,
                            event_time=plan.event_times)
        return out


def join_spark(offline: "OfflineStore", plan: Plan, spine: Spine, summary: dict,
               engine: SparkEngine) -> "DataFrame":
    """The spine with every requested feature added, one row per spine row, with its
    ``_spine_id``: the as-of groups by ``engine``'s strategy, then the aggregation groups,
    then on-demand features. Not sorted: the global sort by ``_spine_id`` (a sampling job
    and a range shuffle) is left to ``TrainingSet.to_spark()``, so that batch scoring,
    which needs no order, skips it."""
    from pyspark.sql import functions as F

    sdf = spine.frame
    out = sdf
    asof = [gp for gp in plan.groups if not gp.group.aggregations]
    if asof:
        out = engine.add_asof(offline, plan, out, spine, summary, asof)
    for gp in plan.groups:
        if gp.group.aggregations:
            from ..aggregations.spark import aggregate_at_spine

            frame = aggregate_at_spine(
                offline, gp.group, sdf.select(SPINE_ID, quote_ident(plan.timestamp_col, "spark"),
                                         *[quote_ident(c, "spark")
                                           for c in sorted(set(gp.key_columns.values()))]),
                gp.features, delta_version=gp.delta_version, as_known_at=plan.as_known_at,
                key_columns=gp.key_columns, timestamp_col=plan.timestamp_col)
            frame = frame.select(SPINE_ID, *[F.col(quote_ident(f, "spark")).alias(c)
                                             for f, c in zip(gp.features, gp.columns)])
            out = out.join(frame, SPINE_ID, "left")
    if plan.on_demand is not None:
        from .plan import on_demand_inputs, on_demand_renames

        out = plan.on_demand.apply_spark(out, sources=on_demand_inputs(plan),
                                         names=on_demand_renames(plan))
    cols = [F.col(quote_ident(c, "spark"))
            for c in plan.spine_columns + plan.feature_columns + plan.event_time_columns]
    return out.select(F.col(SPINE_ID), *cols)


def asof_pass(offline: "OfflineStore", gp: GroupPlan, rows: "DataFrame", timestamp_col: str,
              summary: dict, as_known_at: bool, time_buckets: int,
              hot_key_rows: int | None = None, event_time: bool = False) -> "DataFrame":
    """``rows`` (the spine, possibly with earlier groups' features) with ``gp``'s features
    added (and with ``event_time`` the chosen row's event time as
    ``gp.event_time_column``): steps 1-5 of the module docstring, one shuffle of spine +
    history."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    g = gp.group
    keys = list(gp.key_columns)
    kcols = [f"_k{i}" for i in range(len(keys))]
    et = g.event_time
    lo, hi = summary["lo"], summary["hi"]

    hist = offline.read_spark(rows.sparkSession, g, version=gp.delta_version)
    pos = F.greatest(F.col(et), F.col(COMMIT_TIME)) if as_known_at else F.col(et)
    record = F.struct(F.col(et).alias("e"), F.col(COMMIT_TIME).alias("c"),
                      F.col(RUN_ID).alias("r"),
                      *[F.col(quote_ident(f, "spark")).alias(f"v{i}")
                        for i, f in enumerate(gp.features)])
    hist = hist.select(*[F.col(quote_ident(k, "spark")).cast(SPARK_KEY_TYPES[g.key_dtypes[k]])
                         .alias(kc)
                         for k, kc in zip(keys, kcols)],
                       pos.alias("_pos"), F.col(et).alias("_e"), record.alias("_row"))
    if hi is None:  # no spine timestamps at all: nothing can match
        hist = hist.where(F.lit(False))
    else:
        cond = (F.col("_pos") <= F.timestamp_micros(F.lit(hi))) & all_not_null(kcols + ["_e"])
        if gp.ttl is not None:
            oldest = lo - micros(gp.ttl)
            cond = cond & (F.col("_e") >= F.timestamp_micros(F.lit(oldest)))
        hist = hist.where(cond)
    row_type = hist.schema["_row"].dataType
    hist = hist.select(*kcols, "_pos", F.lit(0).alias("_kind"), "_row")
    history_rows, rows_before = _log_counts(offline, gp, lo, as_known_at)
    if hi is not None and rows_before * 4 >= max(1, history_rows):
        # Rows visible before the first spine timestamp matter only through their best
        # row per key: pre-aggregate them (map-side combine, so hot keys stay cheap).
        first = F.timestamp_micros(F.lit(lo))
        before = (hist.where(F.col("_pos") < first).groupBy(*kcols)
                  .agg(F.max("_row").alias("_row"))
                  .select(*kcols, F.timestamp_micros(F.lit(lo - 1)).alias("_pos"),
                          F.lit(0).alias("_kind"), "_row"))
        hist = hist.where(F.col("_pos") >= first).unionByName(before)

    columns = rows.columns
    packed = F.struct(*[F.col(quote_ident(c, "spark")) for c in columns])
    spine = rows.select(
        *[F.col(quote_ident(gp.key_columns[k], "spark"))
          .cast(SPARK_KEY_TYPES[g.key_dtypes[k]]).alias(kc)
          for k, kc in zip(keys, kcols)],
        F.col(quote_ident(timestamp_col, "spark")).alias("_pos"), F.lit(1).alias("_kind"),
        F.lit(None).cast(row_type).alias("_row"), packed.alias("_s"))
    union = hist.withColumn("_s", F.lit(None).cast(spine.schema["_s"].dataType)) \
        .unionByName(spine)

    hot = _hot_keys(hist, spine, kcols, summary, history_rows, time_buckets, hot_key_rows)
    if hot is not None:
        n = int(time_buckets)
        width = max(1, (hi - lo) // n + 1)
        bucket = F.floor((F.unix_micros(F.col("_pos")) - F.lit(lo)) / F.lit(width))
        bucket = F.least(F.greatest(bucket, F.lit(0)), F.lit(n - 1)).cast("int")
        union = (union.join(F.broadcast(hot), kcols, "left")
                 .withColumn("_b", F.when(F.col("_hot"), F.coalesce(bucket, F.lit(0)))
                             .otherwise(F.lit(0)))
                 .drop("_hot"))
        parts = kcols + ["_b"]
    else:
        parts = kcols
    window = (Window.partitionBy(*parts).orderBy("_pos", "_kind")
              .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    answered = (union.withColumn("_best", F.max("_row").over(window))
                .where(F.col("_kind") == 1))
    best = F.col("_best")
    if hot is not None:
        carry = _carry(hist, hot, kcols, bucket, n)
        answered = answered.join(F.broadcast(carry), parts, "left")
        best = F.greatest(best, F.col("_carry"))
    answered = answered.withColumn("_ans", within_ttl(best, F.col("_pos"), gp.ttl))
    times = [F.col("_ans")["e"].alias(gp.event_time_column)] if event_time else []
    return answered.select(*[F.col("_s").getField(c).alias(c) for c in columns],
                           *[F.col("_ans")[f"v{i}"].alias(c) for i, c in enumerate(gp.columns)],
                           *times)


#: Below this many rows for one key, splitting it over time slices is not worth a job.
MIN_HOT_KEY_ROWS = 200_000
#: At most this many keys are treated as hot (the heaviest ones).
MAX_HOT_KEYS = 1000


def _hot_keys(hist: "DataFrame", spine: "DataFrame", kcols: list[str], summary: dict,
              history_rows: int, time_buckets: int,
              hot_key_rows: int | None) -> "DataFrame | None":
    """A small DataFrame ``(keys..., _hot=True)`` of the keys to split, or None.

    By default a key is hot when it holds at least ``MIN_HOT_KEY_ROWS`` rows and twice a
    shuffle partition's fair share; inputs too small to hold such a key are not counted."""
    from pyspark.sql import functions as F

    if time_buckets <= 1 or summary["hi"] is None:
        return None
    spark = spine.sparkSession
    if hot_key_rows is None:
        partitions = int(spark.conf.get("spark.sql.shuffle.partitions") or "200")
        total = summary["rows"] + history_rows
        hot_key_rows = max(MIN_HOT_KEY_ROWS, 2 * total // max(1, partitions))
        if total < hot_key_rows:
            return None
    found = (hist.select(*kcols).unionByName(spine.select(*kcols))
             .where(all_not_null(kcols)).groupBy(*kcols).count()
             .where(F.col("count") >= F.lit(int(hot_key_rows)))
             .orderBy(F.col("count").desc()).limit(MAX_HOT_KEYS).drop("count").collect())
    if not found:
        return None
    return spark.createDataFrame(found, spine.select(*kcols).schema).withColumn("_hot", F.lit(True))


def _carry(hist: "DataFrame", hot: "DataFrame", kcols: list[str], bucket,
           slices: int) -> "DataFrame":
    """Per hot key and time slice (every slice, also those without history), the best
    history row of all earlier slices: hot keys x slices rows."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    per_slice = (hist.join(F.broadcast(hot), kcols).withColumn("_b", bucket)
                 .groupBy(*kcols, "_b").agg(F.max("_row").alias("_bmax")))
    grid = hot.drop("_hot").crossJoin(
        hot.sparkSession.range(slices).select(F.col("id").cast("int").alias("_b")))
    earlier = Window.partitionBy(*kcols).orderBy("_b").rowsBetween(Window.unboundedPreceding, -1)
    return (grid.join(per_slice, kcols + ["_b"], "left")
            .select(*kcols, "_b", F.max("_bmax").over(earlier).alias("_carry")))


def _log_counts(offline: "OfflineStore", gp: GroupPlan, lo: int | None,
                as_known_at: bool) -> tuple[int, int]:
    """From the Delta log's file statistics (no Spark job): the group's rows at the pinned
    version, and how many of them surely become visible before ``lo`` (epoch µs)."""
    import pyarrow as pa

    t = offline.table(gp.group, gp.delta_version)
    adds = pa.table(t.get_add_actions(flatten=True)).to_pylist()
    total = sum(int(a.get("num_records") or 0) for a in adds)
    if lo is None:
        return total, 0
    cols = [f"max.{gp.group.event_time}"] + ([f"max.{COMMIT_TIME}"] if as_known_at else [])
    before = 0
    for a in adds:
        maxes = [a.get(c) for c in cols]  # statistics are truncated to milliseconds
        if all(m is not None and m.timestamp() * 1_000_000 + 1000 < lo for m in maxes):
            before += int(a.get("num_records") or 0)
    return total, before


def within_ttl(best, t, ttl):
    """``best`` (a history-row struct with event time ``e``), or null when it is older
    than ``t - ttl`` (step 5; ``ttl`` None: always ``best``)."""
    from pyspark.sql import functions as F

    if ttl is None:
        return best
    oldest = F.unix_micros(t) - F.lit(micros(ttl))
    return F.when(F.unix_micros(best["e"]) >= oldest, best)


def all_not_null(cols: list[str]):
    from pyspark.sql import functions as F

    return reduce(lambda a, b: a & b, [F.col(c).isNotNull() for c in cols])
