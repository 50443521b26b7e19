"""The Spark engine's broadcast strategy: the spine goes to the history, not the reverse.

When the spine arrives as pandas or Arrow it is already in the driver's memory; up to
``broadcast_spine_rows`` rows (default ``DEFAULT_BROADCAST_SPINE_ROWS``) it is cheaper to
ship it to every executor than to shuffle the history by key. Per as-of group:

1. The spine's keys, timestamp and ``_spine_id`` (rows with a null key or timestamp
   dropped: they match nothing) are broadcast once, as Arrow.
2. The group's history is split into tasks, about one per core over all groups. When
   the pinned version's files are on a file system the executors can open (local or
   mounted paths), each task is a list of files of about equal size and DuckDB reads them
   itself: no JVM rows, no Arrow hand-over, and 64-bit positions when each file holds one
   commit (``training.duckdb.parquet_positions``). Otherwise (object storage) Spark reads
   the files and each partition is handed to the Python worker as Arrow.
3. Each task, filtered like the shuffle strategy (null keys and rows that can never be
   chosen dropped), answers the whole spine with DuckDB's ASOF join: per spine row, the
   task's row with the greatest ``(E, _commit_time)`` visible at ``t`` (visible: ``E <= t``;
   with ``as_known_at``: ``greatest(E, _commit_time) <= t``, through a running best per
   key), plus any row tied with it on ``(E, _commit_time)``. At most a few rows per spine
   row leave a task, whatever the keys' sizes.
4. ``max(struct(E, _commit_time, _run_id, features...))`` grouped by ``_spine_id`` merges
   the tasks' answers: the same struct order as the shuffle strategy, so ties resolve
   identically. The result is joined to the spine.

The history is never shuffled and never grouped by key, so skewed keys cost nothing
extra: a hot key's rows are spread over the tasks that hold them. The cost is one
scan of each history plus, per task, a sort of its rows and of the spine. The
Python workers import this module and DuckDB, so on a cluster the executors need
sparkfs installed (as they already do for pandas-UDF transforms).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import pyarrow as pa

from ..dtypes import ALL, KEY_DTYPES
from ..errors import SparkfsError
from ..offline.tables import COMMIT_TIME, RUN_ID, read_files_spark, spark_schema
from ..sql import quote_ident
from .duckdb_sql import KEY_SQL, local_paths, parquet_positions, q, wide_positions
from .engines import Spine
from .plan import SPINE_ID, GroupPlan, Plan, micros
from .spark import SPARK_KEY_TYPES, SparkEngine, within_ttl

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from ..offline.tables import OfflineStore

#: Largest pandas/Arrow spine that is broadcast rather than shuffled (about 30 MB of keys
#: and timestamps per group at two columns).
DEFAULT_BROADCAST_SPINE_ROWS = 2_000_000

_ARROW_KEY = {d: ALL[d].key_dtype.arrow for d in KEY_DTYPES}


class SparkBroadcastEngine(SparkEngine):
    """The broadcast strategy as a ``JoinEngine`` (``sparkfs.training.engines``). Needs a
    spine held in the driver (pandas or Arrow). ``spark_reads_files``: Spark reads the
    history files and hands them to the tasks as Arrow, as it must when the executors
    cannot open the files themselves (object storage); by default that happens only for
    such files.

    >>> SparkBroadcastEngine(broadcast_spine_rows=10).options()
    {'time_buckets': 64, 'broadcast_spine_rows': 10}
    """

    def __init__(self, time_buckets: int | None = None, hot_key_rows: int | None = None,
                 broadcast_spine_rows: int | None = None,
                 spark_reads_files: bool = False) -> None:
        super().__init__(time_buckets, hot_key_rows, broadcast_spine_rows)
        self.spark_reads_files = bool(spark_reads_files)

    def add_asof(self, offline: "OfflineStore", plan: Plan, out: "DataFrame", spine: Spine,
                 summary: dict, groups: list[GroupPlan]) -> "DataFrame":
        if spine.arrow is None:
            raise SparkfsError(
                "the Spark broadcast strategy needs a spine in the driver's memory (pandas or "
                "Arrow); a Spark DataFrame spine is joined by the shuffle strategy "
                "(engine='spark' picks it)")
        return broadcast_join(offline, plan, out, spine.arrow, summary, groups,
                              spark_reads_files=self.spark_reads_files)


def broadcast_join(offline: "OfflineStore", plan: Plan, out: "DataFrame", spine: pa.Table,
                   summary: dict, groups: list[GroupPlan],
                   spark_reads_files: bool = False) -> "DataFrame":
    """``out`` (the spine as a Spark DataFrame, with ``_spine_id``) with the features of
    the as-of ``groups`` added (``spine``: the same rows in Arrow)."""
    from pyspark.sql import functions as F

    spark = out.sparkSession
    answers = []
    # all groups' tasks run in one stage: about one task per core in all
    slots = -(-spark.sparkContext.defaultParallelism // len(groups))
    for i, gp in enumerate(groups):
        best = _group_answers(offline, spark, gp, plan, spine, summary, slots, spark_reads_files)
        answers.append(best.select(SPINE_ID, F.col("_row").alias(f"_sfs_r{i}")))
    merged = functools.reduce(
        lambda a, b: a.unionByName(b, allowMissingColumns=True), answers)
    merged = merged.groupBy(SPINE_ID).agg(*[F.max(f"_sfs_r{i}").alias(f"_sfs_r{i}")
                                            for i in range(len(groups))])
    out = out.join(merged, SPINE_ID, "left")
    for i, gp in enumerate(groups):
        best = within_ttl(F.col(f"_sfs_r{i}"), F.col(quote_ident(plan.timestamp_col, "spark")),
                          gp.ttl)
        times = [best["e"].alias(gp.event_time_column)] if plan.event_times else []
        out = out.select("*", *[best[f"v{j}"].alias(c) for j, c in enumerate(gp.columns)],
                         *times)
    return out.drop(*[f"_sfs_r{i}" for i in range(len(groups))])


def _group_answers(offline: "OfflineStore", spark, gp: GroupPlan, plan: Plan, spine: pa.Table,
                   summary: dict, slots: int, spark_reads_files: bool = False) -> "DataFrame":
    """``_spine_id, _row`` candidates (several per spine row: one per task, and ties).
    Local files are read by at most ``slots`` tasks."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import to_arrow_schema

    g = gp.group
    kcols = [f"_k{j}" for j in range(len(gp.key_columns))]
    value_types = {f.name: f.dataType for f in spark_schema(g).fields}
    schema = T.StructType(
        [T.StructField("_e", T.LongType()), T.StructField("_c", T.LongType()),
         T.StructField("_r", T.StringType())]
        + [T.StructField(f"v{j}", value_types[f]) for j, f in enumerate(gp.features)]
        + [T.StructField(SPINE_ID, T.LongType(), False)])
    small = _spine_keys(gp, spine, plan.timestamp_col)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, small.schema) as w:
        w.write_table(small)
    shipped = spark.sparkContext.broadcast(sink.getvalue().to_pybytes())
    answer = functools.partial(_answer, shipped, kcols, plan.as_known_at,
                               to_arrow_schema(schema, timezone="UTC", prefers_large_types=False))
    visible = _visible_sql(gp, plan, summary)
    uris = offline.table(g, gp.delta_version).file_uris()
    paths = None if spark_reads_files else local_paths(uris)
    if paths is not None:
        tasks = _file_tasks(paths, slots)
        scan = functools.partial(_scan_files, gp, visible)
        found = (spark.sparkContext.parallelize([(t,) for t in tasks], len(tasks))
                 .toDF(T.StructType([T.StructField("paths", T.ArrayType(T.StringType()))]))
                 .mapInArrow(functools.partial(_answer_files, scan, answer), schema))
    else:
        found = _read_spark(spark, gp, uris).mapInArrow(
            functools.partial(_answer_batches, answer, visible), schema)
    row = F.struct(F.timestamp_micros("_e").alias("e"), F.timestamp_micros("_c").alias("c"),
                   F.col("_r").alias("r"), *[f"v{j}" for j in range(len(gp.features))])
    return found.select(SPINE_ID, row.alias("_row"))


def _file_tasks(paths: list[str], slots: int) -> list[list[str]]:
    """The files in at most ``slots`` tasks of about equal bytes (largest file first to the
    lightest task): every task answers the whole spine, so fewer tasks, fewer candidates."""
    import heapq
    import os

    tasks: list = [(0, i, []) for i in range(min(max(1, slots), len(paths)))]
    for size, path in sorted(((os.path.getsize(p), p) for p in paths), reverse=True):
        load, i, files = heapq.heappop(tasks)
        files.append(path)
        heapq.heappush(tasks, (load + size, i, files))
    return [files for _, _, files in sorted(tasks, key=lambda t: t[1])]


def _visible_sql(gp: GroupPlan, plan: Plan, summary: dict) -> str:
    """DuckDB condition on ``_k*, _e, _c`` (epoch µs) keeping the rows that can be chosen:
    the shuffle strategy's filter."""
    kcols = [f"_k{j}" for j in range(len(gp.key_columns))]
    lo, hi = summary["lo"], summary["hi"]
    if hi is None:
        return "FALSE"
    cond = [f"{k} IS NOT NULL" for k in kcols + ["_e"]]
    cond.append(f"{'greatest(_e, _c)' if plan.as_known_at else '_e'} <= {int(hi)}")
    if gp.ttl is not None:
        cond.append(f"_e >= {int(lo) - micros(gp.ttl)}")
    return " AND ".join(cond)


def _scan_files(gp: GroupPlan, visible: str, paths: list[str]) -> tuple[str, str]:
    """(history SQL with ``_k*, _e, _c, _r, v*, _p``, spine lookup) over local files."""
    g = gp.group
    source, position, lookup = parquet_positions(paths, g.event_time)
    cols = [f"CAST({q(k)} AS {KEY_SQL[g.key_dtypes[k]]}) AS _k{j}"
            for j, k in enumerate(gp.key_columns)]
    cols += [f"epoch_us({q(g.event_time)}) AS _e", f"epoch_us({q(COMMIT_TIME)}) AS _c",
             f"{q(RUN_ID)} AS _r"] + [f"{q(f)} AS v{j}" for j, f in enumerate(gp.features)]
    return (f"SELECT * FROM (SELECT {', '.join(cols)}, {position} AS _p FROM {source}) "
            f"WHERE {visible}", lookup)


def _read_spark(spark, gp: GroupPlan, uris: list[str]) -> "DataFrame":
    """The history files ``uris`` read by Spark (files the Python workers cannot open
    themselves, e.g. on object storage), as ``_k*, _e, _c, _r, v*``."""
    from pyspark.sql import functions as F

    g = gp.group
    hist = read_files_spark(spark, g, uris)
    return hist.select(
        *[F.col(quote_ident(k, "spark")).cast(SPARK_KEY_TYPES[g.key_dtypes[k]]).alias(f"_k{j}")
          for j, k in enumerate(gp.key_columns)],
        F.unix_micros(F.col(quote_ident(g.event_time, "spark"))).alias("_e"),
        F.unix_micros(F.col(COMMIT_TIME)).alias("_c"), F.col(RUN_ID).alias("_r"),
        *[F.col(quote_ident(f, "spark")).alias(f"v{j}") for j, f in enumerate(gp.features)])


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


# -- in the Python workers -------------------------------------------------------------------
def _answer_files(scan, answer, batches):
    """mapInArrow body over a task's file list: DuckDB reads the files itself (no JVM rows
    and no Arrow hand-over), with 64-bit positions when each file holds one commit."""
    paths = [p for b in batches for ps in b.column("paths").to_pylist() for p in ps]
    if paths:
        yield from answer(*scan(paths), None)


def _answer_batches(answer, visible: str, batches):
    """mapInArrow body over history rows Spark read (``_k*, _e, _c, _r, v*``)."""
    batches = list(batches)
    if any(b.num_rows for b in batches):
        hist = pa.Table.from_batches(batches)
        position, lookup = wide_positions("_e", "_c")
        yield from answer(f"SELECT *, {position} AS _p FROM hist WHERE {visible}", lookup, hist)


def _answer(shipped, kcols: list[str], as_known_at: bool, out_schema: pa.Schema,
            hist_sql: str, lookup: str, hist: pa.Table | None):
    """This task's best rows per spine row (module docstring): DuckDB's ASOF join over
    ``hist_sql`` (``_k*, _e, _c, _r, v*`` and the position ``_p``), plus ties on ``_p``."""
    import duckdb

    spine = pa.ipc.open_stream(shipped.value).read_all()
    on = " AND ".join(f"s.{k} = h.{k}" for k in kcols)
    keys = ", ".join(kcols)
    if as_known_at:
        # running best position by visible-from time; RANGE: rows visible together agree
        ranked = (f"SELECT *, greatest(_e, _c) AS _v, max(_p) OVER (PARTITION BY {keys} "
                  f"ORDER BY greatest(_e, _c) RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT "
                  f"ROW) AS _bp FROM ({hist_sql})")
        match = "s._t >= h._v"
    else:
        ranked = f"SELECT *, _p AS _bp FROM ({hist_sql})"
        match = f"{lookup.format(t_us='s._t')} >= h._p"
    other = ["_e", "_c", "_r"] + [n for n in out_schema.names if n.startswith("v")]
    sql = (f"WITH h AS MATERIALIZED ({ranked}), "
           f"best AS (SELECT s._spine_id, {', '.join('s.' + k for k in kcols)}, h._bp "
           f"FROM spine s ASOF JOIN h ON {on} AND {match}) "
           f"SELECT {', '.join('h.' + c for c in other)}, b._spine_id FROM best b "
           f"JOIN h ON {' AND '.join(f'b.{k} = h.{k}' for k in kcols)} AND h._p = b._bp")
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        con.execute("SET TimeZone = 'UTC'")
        if hist is not None:
            con.register("hist", hist)
        con.register("spine", spine)
        for batch in con.sql(sql).fetch_record_batch(100_000):
            yield batch.cast(out_schema) if batch.schema != out_schema else batch
    finally:
        con.close()
