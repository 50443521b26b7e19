"""The Spark engine: a distributed point-in-time join that stays balanced on hot keys.

Algorithm, per requested feature group (each group contributes a frame ``(_spine_id,
features...)`` that is left-joined back to the spine by ``_spine_id``):

1. **Positions.** Every spine row is placed on its key's timeline at its timestamp ``t``;
   every history row at its *visible-from* time ``V``: the event time ``E``, or with
   ``as_known_at`` ``greatest(E, _commit_time)`` (a row can only be seen once it has
   happened *and* been committed). A history row carries ``R = struct(E, _commit_time,
   _run_id, features...)``; structs compare field by field, so ``max(R)`` is the row
   with the greatest event time, ties going to the latest commit.
2. **Union, not join.** Spine rows and history rows are unioned into one frame
   (history rows with ``V`` after the last spine timestamp, or older than the first
   spine timestamp minus the ttl, are dropped first: they can never be chosen; rows
   visible before the first spine timestamp are reduced to their best row per key by
   an aggregation with map-side combine). No cross join, no row multiplication: the
   cost is one shuffle of spine + history.
3. **Time buckets against skew.** The spine's time range is cut into ``time_buckets``
   (default 64) equal slices and every row gets its slice ``b``. The window that
   finds each spine row's answer is partitioned by ``(keys, b)``, not by the keys
   alone, so a hot key's rows spread over up to ``time_buckets`` tasks instead of
   landing in one.
4. **Local answer.** Within ``(keys, b)``, ordered by ``(position, kind)`` with history
   rows before spine rows at equal positions (``E <= t`` is inclusive), the running
   ``max(R)`` over *rows between unbounded preceding and current row* is the best row
   visible in this slice.
5. **Carry-over.** A small table holds, per ``(keys, b)``, the ``max(R)`` of that slice;
   a window over each key ordered by ``b`` (at most ``time_buckets`` rows per key, so
   hot keys are cheap here) gives the best row of all *earlier* slices. It is joined to
   the spine rows on ``(keys, b)`` and ``greatest(local, carry)`` is the answer.
6. **ttl.** An answer whose event time is older than ``t - ttl`` becomes null.

A spine row with a null key or null timestamp gets nulls; spine rows are numbered
(``_spine_id``) and the result is sorted by that number, so no row is dropped,
duplicated or reordered. Nothing is collected to the driver except the spine's
min/max timestamp, row count and hash (one aggregate).

Limits: a hot key whose spine rows all share one timestamp stays in one task (time
cannot split it); raise ``time_buckets`` when a few keys hold most rows over a long
range. ``time_buckets=1`` turns the carry-over off.

Aggregation groups are handed to ``sparkfs.aggregations.spark.aggregate_at_spine``::

    aggregate_at_spine(fs, group, spine, features, delta_version=..., as_known_at=...,
                       key_columns=..., timestamp_col=...) -> DataFrame

where ``spine`` has ``_spine_id``, the spine key columns and the timestamp column, and
the result has ``_spine_id`` plus one column per feature name (at most one row per
``_spine_id``).
"""

from __future__ import annotations

from functools import reduce
from typing import TYPE_CHECKING, Any

from ..offline.tables import COMMIT_TIME, RUN_ID
from ..errors import SparkfsError
from .plan import SPINE_ID, GroupPlan, Plan

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from ..store import FeatureStore

DEFAULT_TIME_BUCKETS = 64

_SPARK_KEY_TYPES = {"string": "string", "int": "bigint", "long": "bigint"}


def spine_to_spark(spark: "SparkSession", spine: Any, timestamp_col: str,
                   keep_id: bool = False) -> "DataFrame":
    """The spine as a Spark DataFrame with UTC timestamps and a ``_spine_id`` column.

    pandas/Arrow spines are numbered 0, 1, 2...; a Spark spine gets
    ``monotonically_increasing_id()`` (increasing in the DataFrame's order)."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from .plan import spine_to_arrow

    if not isinstance(spine, DataFrame):
        tbl = spine_to_arrow(spine, timestamp_col, keep_id=keep_id)
        return spark.createDataFrame(tbl)
    if SPINE_ID in spine.columns and not keep_id:
        raise SparkfsError(f"the spine has a column named {SPINE_ID!r}, which sparkfs reserves; rename it")
    for f in spine.schema.fields:
        if isinstance(f.dataType, (T.TimestampNTZType,)) or (
                f.name == timestamp_col and isinstance(f.dataType, T.DateType)):
            spine = spine.withColumn(f.name, F.col(f"`{f.name}`").cast("timestamp"))
    if not keep_id:
        spine = spine.withColumn(SPINE_ID, F.monotonically_increasing_id())
    return spine


def spark_schema_as_arrow(df: "DataFrame"):
    """Arrow schema of a Spark DataFrame without running it."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(df.schema, timezone="UTC", prefers_large_types=False)


def spine_summary(sdf: "DataFrame", timestamp_col: str) -> dict:
    """Min/max timestamp (epoch microseconds), row count and an order-sensitive hash of the spine (one job)."""
    from pyspark.sql import functions as F

    cols = [F.col(f"`{c}`") for c in sdf.columns]
    row = sdf.agg(F.unix_micros(F.min(F.col(f"`{timestamp_col}`"))).alias("lo"),
                  F.unix_micros(F.max(F.col(f"`{timestamp_col}`"))).alias("hi"),
                  F.count(F.lit(1)).alias("n"),
                  F.bit_xor(F.xxhash64(*cols)).alias("h")).first()
    return {"lo": row["lo"], "hi": row["hi"], "rows": int(row["n"]),
            "hash": f"spark-xxhash64-xor:{(row['h'] or 0) & 0xFFFFFFFFFFFFFFFF:016x}"}


def join_spark(fs: "FeatureStore", plan: Plan, sdf: "DataFrame", summary: dict,
               time_buckets: int = DEFAULT_TIME_BUCKETS) -> "DataFrame":
    """Left-join every group's frame to the spine by ``_spine_id``, sorted by it."""
    from pyspark.sql import functions as F

    spark = sdf.sparkSession
    out = sdf
    for gp in plan.groups:
        if gp.group.aggregations:
            from ..aggregations.spark import aggregate_at_spine

            frame = aggregate_at_spine(
                fs, gp.group, sdf.select(SPINE_ID, plan.timestamp_col,
                                         *sorted(set(gp.key_columns.values()))),
                gp.features, delta_version=gp.delta_version, as_known_at=plan.as_known_at,
                key_columns=gp.key_columns, timestamp_col=plan.timestamp_col)
            frame = frame.select(SPINE_ID, *[F.col(f"`{f}`").alias(c)
                                             for f, c in zip(gp.features, gp.columns)])
        else:
            frame = asof_frame(fs, spark, gp, sdf, plan.timestamp_col, summary,
                               plan.as_known_at, time_buckets)
        out = out.join(frame, SPINE_ID, "left")
    if plan.on_demand is not None:
        from .plan import on_demand_inputs

        aliases = {k: v for k, v in on_demand_inputs(plan).items() if k != v}
        for short, col in aliases.items():
            out = out.withColumn(short, F.col(f"`{col}`"))
        out = plan.on_demand.apply_spark(out)
    cols = [F.col(f"`{c}`") for c in plan.spine_columns + plan.feature_columns]
    return out.orderBy(SPINE_ID).select(F.col(SPINE_ID), *cols)


def asof_frame(fs: "FeatureStore", spark: "SparkSession", gp: GroupPlan, sdf: "DataFrame",
               timestamp_col: str, summary: dict, as_known_at: bool,
               time_buckets: int) -> "DataFrame":
    """``(_spine_id, features...)`` for one group: one row per spine row that has
    non-null keys and timestamp (others get nulls from the caller's left join)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    g = gp.group
    keys = list(gp.key_columns)
    kcols = [f"_k{i}" for i in range(len(keys))]
    et = g.event_time

    spine = sdf.select(
        F.col(SPINE_ID), F.col(f"`{timestamp_col}`").alias("_pos"),
        *[F.col(f"`{gp.key_columns[k]}`").cast(_SPARK_KEY_TYPES[g.key_dtypes[k]]).alias(kc)
          for k, kc in zip(keys, kcols)])
    spine = spine.where(_all_not_null(["_pos"] + kcols))

    hist = fs.offline.read_spark(spark, g, version=gp.delta_version)
    pos = F.greatest(F.col(et), F.col(COMMIT_TIME)) if as_known_at else F.col(et)
    row = F.struct(F.col(et).alias("e"), F.col(COMMIT_TIME).alias("c"), F.col(RUN_ID).alias("r"),
                   *[F.col(f"`{f}`").alias(f"v{i}") for i, f in enumerate(gp.features)])
    hist = hist.select(*[F.col(f"`{k}`").cast(_SPARK_KEY_TYPES[g.key_dtypes[k]]).alias(kc)
                         for k, kc in zip(keys, kcols)],
                       pos.alias("_pos"), F.col(et).alias("_e"), row.alias("_row"))
    lo, hi = summary["lo"], summary["hi"]
    if hi is None:  # no spine timestamps at all: nothing can match
        hist = hist.where(F.lit(False))
    else:
        cond = (F.col("_pos") <= F.timestamp_micros(F.lit(hi))) & _all_not_null(kcols + ["_e"])
        if gp.ttl is not None:
            oldest = lo - int(gp.ttl.total_seconds() * 1_000_000)
            cond = cond & (F.col("_e") >= F.timestamp_micros(F.lit(oldest)))
        hist = hist.where(cond)
    row_type = hist.schema["_row"].dataType

    feat_rows = hist.select(*kcols, "_pos", F.lit(0).alias("_kind"),
                            F.lit(None).cast("long").alias(SPINE_ID), "_row")
    if hi is not None:
        # Rows visible before the first spine timestamp matter only through their best
        # row per key: pre-aggregate them (map-side combine, so hot keys stay cheap).
        first = F.timestamp_micros(F.lit(lo))
        before = (feat_rows.where(F.col("_pos") < first).groupBy(*kcols)
                  .agg(F.max("_row").alias("_row"))
                  .select(*kcols, F.timestamp_micros(F.lit(lo - 1)).alias("_pos"),
                          F.lit(0).alias("_kind"), F.lit(None).cast("long").alias(SPINE_ID),
                          "_row"))
        feat_rows = feat_rows.where(F.col("_pos") >= first).unionByName(before)
    spine_rows = spine.select(*kcols, "_pos", F.lit(1).alias("_kind"), SPINE_ID,
                              F.lit(None).cast(row_type).alias("_row"))
    union = feat_rows.unionByName(spine_rows)

    n = max(1, int(time_buckets))
    if n > 1 and hi is not None:
        lo_us = lo
        width = max(1, (hi - lo_us) // n + 1)
        bucket = F.floor((F.unix_micros(F.col("_pos")) - F.lit(lo_us)) / F.lit(width))
        union = union.withColumn("_b", F.least(F.greatest(bucket, F.lit(0)), F.lit(n - 1)).cast("int"))
    else:
        union = union.withColumn("_b", F.lit(0))

    # One sort of (keys, bucket): the running max answers each spine row, and the same
    # pass yields each bucket's max (on its first row) for the carry-over, so the history
    # is read and shuffled once.
    local_w = (Window.partitionBy(*kcols, "_b").orderBy("_pos", "_kind")
               .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    bucket_w = Window.partitionBy(*kcols, "_b")
    ranked = (union.withColumn("_best", F.max("_row").over(local_w))
              .withColumn("_bmax", F.max("_row").over(bucket_w))
              .withColumn("_rn", F.row_number().over(
                  Window.partitionBy(*kcols, "_b").orderBy("_pos", "_kind"))))
    local = (ranked.where(F.col("_kind") == 1)
             .select(SPINE_ID, *kcols, "_b", "_pos", "_best"))
    if n > 1:
        carry_w = (Window.partitionBy(*kcols).orderBy("_b")
                   .rowsBetween(Window.unboundedPreceding, -1))
        carry = (ranked.where(F.col("_rn") == 1).select(*kcols, "_b", "_bmax")
                 .withColumn("_carry", F.max("_bmax").over(carry_w))
                 .select(*kcols, "_b", "_carry"))
        local = local.join(carry, kcols + ["_b"], "left")
        best = F.greatest(F.col("_best"), F.col("_carry"))
    else:
        best = F.col("_best")
    if gp.ttl is not None:
        ttl_us = int(gp.ttl.total_seconds() * 1_000_000)
        fresh = F.unix_micros(best["e"]) >= F.unix_micros(F.col("_pos")) - F.lit(ttl_us)
        best = F.when(fresh, best)
    local = local.withColumn("_ans", best)
    return local.select(SPINE_ID, *[F.col("_ans")[f"v{i}"].alias(c)
                                    for i, c in enumerate(gp.columns)])


def _all_not_null(cols: list[str]):
    from pyspark.sql import functions as F

    return reduce(lambda a, b: a & b, [F.col(c).isNotNull() for c in cols])

