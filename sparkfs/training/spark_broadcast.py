"""The Spark engine's broadcast strategy: the spine goes to the history, not the reverse.

When the spine arrives as pandas or Arrow it is already in the driver's memory; up to
``broadcast_spine_rows`` rows (default ``DEFAULT_BROADCAST_SPINE_ROWS``) it is cheaper to
ship it to every executor than to shuffle the history by key. Per as-of group:

1. The spine's keys, timestamp and ``_spine_id`` (rows with a null key or timestamp
   dropped: they match nothing) are broadcast once, as Arrow.
2. Each partition of the group's history, as it is read (filtered like the shuffle
   strategy: null keys and rows that can never be chosen dropped), answers the whole
   spine locally with DuckDB's ASOF join: per spine row, the partition's row with the
   greatest ``(E, _commit_time)`` visible at ``t`` (visible: ``E <= t``; with
   ``as_known_at``: ``greatest(E, _commit_time) <= t``, through a running best per key),
   plus any row tied with it on ``(E, _commit_time)``. At most a few rows per spine row
   leave a partition, whatever the keys' sizes.
3. ``max(struct(E, _commit_time, _run_id, features...))`` grouped by ``_spine_id`` (map-side
   combine) merges the partitions' answers: the same struct order as the shuffle
   strategy, so ties resolve identically. The result is joined to the spine.

The history is never shuffled and never grouped by key, so skewed keys cost nothing
extra: a hot key's rows are spread over the partitions that hold them. The cost is one
scan of each history plus, per partition, a sort of its rows and of the spine. The
Python workers import this module and DuckDB, so on a cluster the executors need
sparkfs installed (as they already do for pandas-UDF transforms).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import pyarrow as pa

from ..offline.tables import COMMIT_TIME, RUN_ID
from .plan import SPINE_ID, GroupPlan, Plan
from .spark import SPARK_KEY_TYPES, all_not_null, ttl_micros, within_ttl

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from ..store import FeatureStore

#: Largest pandas/Arrow spine that is broadcast rather than shuffled (about 30 MB of keys
#: and timestamps per group at two columns).
DEFAULT_BROADCAST_SPINE_ROWS = 2_000_000

_SHIFT = 2**63
_ARROW_KEY = {"string": pa.string(), "int": pa.int64(), "long": pa.int64()}


def broadcast_join(fs: "FeatureStore", plan: Plan, out: "DataFrame", spine: pa.Table,
                   summary: dict, groups: list[GroupPlan]) -> "DataFrame":
    """``out`` (the spine as a Spark DataFrame, with ``_spine_id``) with the features of
    the as-of ``groups`` added (``spine``: the same rows in Arrow)."""
    from pyspark.sql import functions as F

    spark = out.sparkSession
    answers = []
    for i, gp in enumerate(groups):
        best = _group_answers(fs, spark, gp, plan, spine, summary)
        answers.append(best.select(SPINE_ID, F.col("_row").alias(f"_r{i}")))
    merged = functools.reduce(
        lambda a, b: a.unionByName(b, allowMissingColumns=True), answers)
    merged = merged.groupBy(SPINE_ID).agg(*[F.max(f"_r{i}").alias(f"_r{i}")
                                            for i in range(len(groups))])
    out = out.join(merged, SPINE_ID, "left")
    for i, gp in enumerate(groups):
        best = within_ttl(F.col(f"_r{i}"), F.col(f"`{plan.timestamp_col}`"), gp.ttl)
        out = out.select("*", *[best[f"v{j}"].alias(c) for j, c in enumerate(gp.columns)])
    return out.drop(*[f"_r{i}" for i in range(len(groups))])


def _group_answers(fs: "FeatureStore", spark, gp: GroupPlan, plan: Plan, spine: pa.Table,
                   summary: dict) -> "DataFrame":
    """``_spine_id, _row`` candidates (several per spine row: one per partition, and ties)."""
    from pyspark.sql import functions as F

    g = gp.group
    keys = list(gp.key_columns)
    kcols = [f"_k{j}" for j in range(len(keys))]
    et = F.col(f"`{g.event_time}`")
    hist = fs.offline.read_spark(spark, g, version=gp.delta_version)
    hist = hist.select(
        *[F.col(f"`{k}`").cast(SPARK_KEY_TYPES[g.key_dtypes[k]]).alias(kc) for k, kc in zip(keys, kcols)],
        F.unix_micros(et).alias("_e"), F.unix_micros(F.col(COMMIT_TIME)).alias("_c"),
        F.col(RUN_ID).alias("_r"), *[F.col(f"`{f}`").alias(f"v{j}") for j, f in enumerate(gp.features)])
    lo, hi = summary["lo"], summary["hi"]
    cond = F.lit(hi is not None) & all_not_null(kcols + ["_e"])
    if hi is not None:
        visible = F.greatest("_e", "_c") if plan.as_known_at else F.col("_e")
        cond = cond & (visible <= F.lit(hi))
        if gp.ttl is not None:
            cond = cond & (F.col("_e") >= F.lit(lo - ttl_micros(gp.ttl)))
    hist = hist.where(cond)

    small = _spine_keys(gp, spine, plan.timestamp_col)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, small.schema) as w:
        w.write_table(small)
    shipped = spark.sparkContext.broadcast(sink.getvalue().to_pybytes())
    from pyspark.sql import types as T

    schema = T.StructType([f for f in hist.schema.fields if f.name not in kcols]
                          + [T.StructField(SPINE_ID, T.LongType(), False)])
    found = hist.mapInArrow(
        functools.partial(_answer_partition, shipped, kcols, plan.as_known_at), schema)
    row = F.struct(F.timestamp_micros("_e").alias("e"), F.timestamp_micros("_c").alias("c"),
                   F.col("_r").alias("r"), *[f"v{j}" for j in range(len(gp.features))])
    return found.select(SPINE_ID, row.alias("_row"))


def _spine_keys(gp: GroupPlan, spine: pa.Table, timestamp_col: str) -> pa.Table:
    """``_spine_id, _k0.., _t`` (epoch µs) of the spine rows that can match anything."""
    import pyarrow.compute as pc

    cols = {SPINE_ID: spine.column(SPINE_ID).cast(pa.int64())}
    for j, (k, col) in enumerate(gp.key_columns.items()):
        cols[f"_k{j}"] = spine.column(col).cast(_ARROW_KEY[gp.group.key_dtypes[k]])
    cols["_t"] = spine.column(timestamp_col).cast(pa.int64())
    table = pa.table(cols)
    mask = functools.reduce(pc.and_, [pc.is_valid(table.column(c)) for c in table.column_names])
    return table.filter(mask)


def _answer_partition(shipped, kcols: list[str], as_known_at: bool, batches):
    """mapInArrow body (runs in the Python workers): this partition's best rows per spine
    row, see the module docstring. DuckDB's ASOF join does the matching."""
    import duckdb

    batches = list(batches)
    if not any(b.num_rows for b in batches):
        return
    hist = pa.Table.from_batches(batches)
    spine = pa.ipc.open_stream(shipped.value).read_all()
    on = " AND ".join(f"s.{k} = h.{k}" for k in kcols)
    keys = ", ".join(kcols)
    packed = f"(_e::HUGEINT * {_SHIFT} + _c)"
    if as_known_at:
        # running best (E, c) by visible-from time; RANGE: rows visible together agree
        ranked = (f"SELECT *, {packed} AS _p, greatest(_e, _c) AS _v, max({packed}) OVER "
                  f"(PARTITION BY {keys} ORDER BY greatest(_e, _c) RANGE BETWEEN UNBOUNDED "
                  f"PRECEDING AND CURRENT ROW) AS _bp FROM hist")
        lookup = "s._t >= h._v"
    else:
        ranked = f"SELECT *, {packed} AS _p, {packed} AS _bp FROM hist"
        lookup = f"s._t::HUGEINT * {_SHIFT} + {_SHIFT - 1} >= h._p"
    other = [n for n in hist.column_names if n not in kcols]
    sql = (f"WITH h AS ({ranked}), "
           f"best AS (SELECT s._spine_id, {', '.join('s.' + k for k in kcols)}, h._bp "
           f"FROM spine s ASOF JOIN h ON {on} AND {lookup}) "
           f"SELECT {', '.join('h.' + c for c in other)}, b._spine_id FROM best b "
           f"JOIN h ON {' AND '.join(f'b.{k} = h.{k}' for k in kcols)} AND h._p = b._bp")
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        con.register("hist", hist)
        con.register("spine", spine)
        reader = con.sql(sql).fetch_record_batch(100_000)
        for batch in reader:
            yield batch
    finally:
        con.close()
