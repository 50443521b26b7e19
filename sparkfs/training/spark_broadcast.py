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

**Sliced** (batch scoring only: ``sliced_paths``, ``sliced_join``): the reverse split,
when the histories are small (at most ``sliced_history_bytes``, default 32 MiB of files
on local or mounted paths), every group is as-of and every feature scalar. The spine is
split over the tasks (as ``createDataFrame`` slices it), every task reads the whole
history once with DuckDB and joins its slice with the same ASOF SQL and the same tie
rule as above; the model then runs in the same task. One stage, no shuffle, no merge.
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
    ranked, match = _ranked(kcols, as_known_at, hist_sql, lookup)
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


def _ranked(kcols: list[str], as_known_at: bool, hist_sql: str, lookup: str) -> tuple[str, str]:
    """(history SQL with the best position ``_bp`` a spine row matching it takes, the ASOF
    condition of spine row ``s`` on history row ``h``): ``_bp`` is the row's own position,
    or with ``as_known_at`` the running best position by visible-from time ``_v``."""
    if as_known_at:
        keys = ", ".join(kcols)
        # running best position by visible-from time; RANGE: rows visible together agree
        return (f"SELECT *, greatest(_e, _c) AS _v, max(_p) OVER (PARTITION BY {keys} "
                f"ORDER BY greatest(_e, _c) RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT "
                f"ROW) AS _bp FROM ({hist_sql})", "s._t >= h._v")
    return f"SELECT *, _p AS _bp FROM ({hist_sql})", f"{lookup.format(t_us='s._t')} >= h._p"


# -- sliced: the spine split over the tasks, the whole (small) history in each ----------------
#: Largest history (bytes of the pinned versions' files, all groups together) that batch
#: scoring reads whole in every task (``sliced_join``). ``sliced_history_bytes=0`` is off.
DEFAULT_SLICED_HISTORY_BYTES = 32 * 2**20


def sliced_paths(offline: "OfflineStore", groups: list[GroupPlan],
                 limit: int) -> list[list[str]] | None:
    """Each group's files at its pinned version (an empty list: no rows yet) when the
    groups can be joined by ``sliced_join``: as-of groups of scalar features only, every
    file on a local or mounted path, at most ``limit`` bytes in all. None otherwise (then
    the broadcast or shuffle strategy joins them).

    >>> sliced_paths(None, [], 32 * 2**20) is None  # no group: nothing to slice
    True
    """
    import os

    if int(limit) <= 0 or not groups:
        return None
    out: list[list[str]] = []
    total = 0
    for gp in groups:
        if gp.group.aggregations or any(d.startswith("array") for d in gp.dtypes):
            return None
        uris = offline.table(gp.group, gp.delta_version).file_uris()
        paths = local_paths(uris) if uris else []
        if paths is None:
            return None
        total += sum(os.path.getsize(p) for p in paths)
        if total > int(limit):
            return None
        out.append(paths)
    return out


class SlicedJoin:
    """The point-in-time join of ``sliced_join``, shipped to the tasks (picklable). In a
    task, ``open()`` reads each group's history once into DuckDB and ``join(pdf)`` adds
    the features to one batch of the task's spine slice.

    Per group, for the batch's rows (by ``_spine_id``; null keys or times already left
    out of the shipped keys, so they get nulls): DuckDB's ASOF join finds the greatest
    position ``(E, _commit_time)`` visible at ``t`` (with ``as_known_at``: the running best
    by visible-from time), every history row at that position is taken back, and the one
    that ``max(struct(E, _commit_time, _run_id, features...))`` would choose in Spark wins
    (event time, commit time, run id, then the values, nulls smallest, NaN largest); an
    answer older than ``t - ttl`` becomes null. The columns reach pandas through PySpark's
    own Arrow conversion, so a task sees what ``mapInPandas`` over the joined DataFrame
    would have handed it.

    >>> SlicedJoin([], False, {}, "UTC", False).columns
    []
    """

    def __init__(self, groups: list[dict], as_known_at: bool, fields: dict, timezone: str,
                 int_ext: bool) -> None:
        self.groups = groups
        self.as_known_at = bool(as_known_at)
        #: output column -> Spark ``StructField`` (the joined frame's field)
        self.fields = fields
        self.timezone = timezone
        self.int_ext = int_ext

    @property
    def columns(self) -> list[str]:
        return list(self.fields)

    def open(self) -> "_SliceTask":
        return _SliceTask(self)


def sliced_join(plan: Plan, spine: Spine, summary: dict,
                paths: list[list[str]]) -> SlicedJoin:
    """The join of ``plan``'s as-of groups (their files: ``sliced_paths``) for a spine held
    in the driver, done slice by slice in the tasks that score it (``SlicedJoin``). Each
    group's spine keys and times (``_spine_keys``) are broadcast once; the history SQL
    (pruned like the other strategies: ``_visible_sql``) is built here.

    One stage, no shuffle: used by batch scoring (``ScoringEngine.join``), where the
    model runs in the same task right after the join. The history is read whole by every
    task, hence the size limit of ``sliced_paths``."""
    from pyspark.sql import types as T

    spark = spine.frame.sparkSession
    sc = spark.sparkContext
    groups, fields = [], {}
    for gp, files in zip(plan.groups, paths):
        small = _spine_keys(gp, spine.arrow, plan.timestamp_col)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, small.schema) as w:
            w.write_table(small)
        hist_sql, lookup = (_scan_files(gp, _visible_sql(gp, plan, summary), files)
                            if files else (None, ""))
        names = list(gp.columns) + ([gp.event_time_column] if plan.event_times else [])
        groups.append({"keys": sc.broadcast(sink.getvalue().to_pybytes()),
                       "nkeys": len(gp.key_columns), "hist_sql": hist_sql, "lookup": lookup,
                       "ttl_us": None if gp.ttl is None else micros(gp.ttl), "names": names,
                       "event_time": bool(plan.event_times)})
        types = {f.name: f.dataType for f in spark_schema(gp.group).fields}
        for f, c in zip(gp.features, gp.columns):
            fields[c] = T.StructField(c, types[f], True)
        if plan.event_times:
            fields[gp.event_time_column] = T.StructField(gp.event_time_column,
                                                         T.TimestampType(), True)
    conf = spark.conf
    return SlicedJoin(groups, plan.as_known_at, fields,
                      conf.get("spark.sql.session.timeZone") or "UTC",
                      (conf.get("spark.sql.execution.pythonUDF.pandas.preferIntExtensionDtype",
                                "false") or "false").lower() == "true")


class _SliceTask:
    """One task's side of a ``SlicedJoin``: a DuckDB connection holding the histories."""

    def __init__(self, sj: SlicedJoin) -> None:
        import duckdb
        from pyspark.sql import types as T
        from pyspark.sql.pandas.types import to_arrow_schema

        self.sj = sj
        self.con = duckdb.connect()
        self.con.execute("SET threads = 1")
        self.con.execute("SET TimeZone = 'UTC'")
        self.schemas = []
        self.sqls: list[str | None] = []  # per group: the join of one batch (None: no rows)
        for i, g in enumerate(sj.groups):
            kcols = [f"_k{j}" for j in range(g["nkeys"])]
            sql = None
            if g["hist_sql"] is not None:
                ranked, match = _ranked(kcols, sj.as_known_at, g["hist_sql"], g["lookup"])
                self.con.execute(f"CREATE TABLE h{i} AS {ranked}")
                self.con.register(f"k{i}", pa.ipc.open_stream(g["keys"].value).read_all())
                sql = self._sql(i, g, kcols, match)
            self.sqls.append(sql)
            struct = T.StructType([sj.fields[c] for c in g["names"]])
            self.schemas.append(to_arrow_schema(struct, timezone=sj.timezone,
                                                prefers_large_types=False))

    @staticmethod
    def _sql(i: int, g: dict, kcols: list[str], match: str) -> str:
        vals = [f"v{j}" for j in range(len(g["names"]) - g["event_time"])]
        on = " AND ".join(f"s.{k} = h.{k}" for k in kcols)
        same = " AND ".join(f"b.{k} = h.{k}" for k in kcols)
        order = ", ".join(["_e DESC", "_c DESC"] + [f"{c} DESC NULLS LAST"
                                                   for c in ["_r"] + vals])
        fresh = "TRUE" if g["ttl_us"] is None else f"o._e >= o._t - {int(g['ttl_us'])}"
        outs = [f"CASE WHEN {fresh} THEN o.{c} END AS {c}" for c in vals]
        if g["event_time"]:
            outs.append(f"CASE WHEN {fresh} THEN o._e END AS _e")
        return (f"WITH s AS (SELECT * FROM k{i} WHERE _spine_id IN (SELECT _spine_id FROM ids)), "
                f"best AS (SELECT s._spine_id, s._t, {', '.join('s.' + k for k in kcols)}, h._bp "
                f"FROM s ASOF JOIN h{i} h ON {on} AND {match}), "
                f"cand AS (SELECT b._spine_id, b._t, h._e, h._c, h._r, "
                f"{', '.join('h.' + v for v in vals)} FROM best b JOIN h{i} h ON {same} "
                f"AND h._p = b._bp), "
                f"one AS (SELECT * FROM cand QUALIFY row_number() OVER "
                f"(PARTITION BY _spine_id ORDER BY {order}) = 1) "
                f"SELECT {', '.join(outs)} FROM ids LEFT JOIN one o USING (_spine_id) "
                f"ORDER BY ids._o")

    def join(self, pdf):
        """``pdf`` (a batch of the spine slice, as ``mapInPandas`` gives it, with
        ``_spine_id``) with every group's columns added."""
        import numpy as np
        import pandas as pd
        from pyspark.sql.conversion import ArrowBatchTransformer

        n = len(pdf)
        ids = pa.table({SPINE_ID: pa.array(pdf[SPINE_ID].to_numpy(dtype="int64")),
                        "_o": pa.array(np.arange(n, dtype="int64"))})
        self.con.register("ids", ids)
        added: dict = {}
        try:
            for schema, sql in zip(self.schemas, self.sqls):
                if sql is None or n == 0:
                    cols = [pa.nulls(n, f.type) for f in schema]
                else:
                    got = self.con.sql(sql).to_arrow_table()
                    cols = [got.column(j).cast(f.type) for j, f in enumerate(schema)]
                tbl = pa.Table.from_arrays(cols, schema=schema)
                series = ArrowBatchTransformer.to_pandas(
                    tbl, timezone=self.sj.timezone, schema=None, struct_in_pandas="dict",
                    ndarray_as_list=False, prefer_int_ext_dtype=self.sj.int_ext,
                    df_for_struct=True)
                for name, s in zip(schema.names, series):
                    added[name] = s.set_axis(pdf.index)
        finally:
            self.con.unregister("ids")
        return pd.concat([pdf, pd.DataFrame(added, index=pdf.index)], axis=1)

    def close(self) -> None:
        self.con.close()
