"""The DuckDB engine: point-in-time joins on one machine, no Spark, no JVM.

Each group's Delta history is opened at its pinned version with delta-rs, which lists
that version's files; DuckDB scans them with its Parquet reader (remote tables go through
a pyarrow dataset). Projection and filters are pushed into the scan.
Per group, one ``ASOF LEFT JOIN`` finds, for each spine row, the history row with the
greatest position at or before the spine timestamp:

* default mode: the position is ``(E, _commit_time)`` packed into one integer; a spine
  row looks up ``(t, +infinity)``. The greatest such position is the row with the greatest
  ``E <= t``, ties going to the latest commit. sparkfs's ingest writes one
  ``_commit_time`` per Delta commit, so when the Parquet footers (exact, unlike the
  Delta log's millisecond statistics) show one commit time per file, the files are
  scanned per commit and the position is the BIGINT ``(epoch_us(E) - lo) * 2**b + rank``
  (``rank``: the commit's order among the version's ``N <= 2**b`` commits; ``lo``: the
  earliest event time), as cheap to sort as the event time itself. Otherwise (tables
  written by other tools, per-row commit times) it is the HUGEINT
  ``epoch_us(E) * 2**63 + epoch_us(_commit_time)``, about 1.5x slower to join.
* ``as_known_at``: a row is visible from ``V = greatest(E, _commit_time)``, but the best
  visible row is still the one with the greatest ``(E, _commit_time)``. A window over
  each key ordered by ``V`` keeps the running best row (``arg_max``, a RANGE frame so
  rows with equal ``V`` agree); the ASOF join on ``V`` then picks it up.

An answer older than ``t - ttl`` becomes null. Everything runs as one statement: the
spine (numbered by ``_spine_id``) followed by one chained ``ASOF LEFT JOIN`` per group
(a left ASOF join keeps each spine row exactly once), sorted by ``_spine_id`` — rows are
never dropped, duplicated or reordered; null keys or timestamps match nothing (nulls).

Aggregation groups are handed to ``sparkfs.aggregations.duckdb.aggregate_at_spine``::

    aggregate_at_spine(offline, group, spine, features, delta_version=..., as_known_at=...,
                       key_columns=..., timestamp_col=...) -> pyarrow.Table

where ``spine`` is an Arrow table with ``_spine_id``, the spine key columns and the
timestamp column (UTC), and the result has ``_spine_id`` plus one column per feature
(at most one row per ``_spine_id``); it is left-joined to the spine by ``_spine_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from ..definitions import DTYPES
from ..offline.tables import COMMIT_TIME, arrow_dataset, history_schema
from .duckdb_sql import KEY_SQL, commit_layout, local_paths, parquet_positions, q, wide_positions
from .engines import Spine
from .plan import SPINE_ID, GroupPlan, Plan, micros, spine_to_arrow

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import SparkProvider
    from ..offline.tables import OfflineStore


class DuckDBEngine:
    """The ``JoinEngine`` of one machine (``sparkfs.training.engines``): the spine in
    Arrow, one DuckDB statement per join; ``threads`` caps DuckDB's threads.

    >>> DuckDBEngine(threads=2).options()
    {}
    """

    name = "duckdb"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def options(self) -> dict:
        return {}

    def prepare_spine(self, spark: "SparkProvider", spine, timestamp_col: str,
                      keep_id: bool = False) -> Spine:
        tbl = spine_to_arrow(spine, timestamp_col, keep_id=keep_id)
        return Spine(tbl.schema, arrow=tbl)

    def summary(self, spine: Spine, timestamp_col: str) -> dict:
        return spine_summary(spine.arrow, timestamp_col)

    def join(self, offline: "OfflineStore", plan: Plan, spine: Spine, summary: dict) -> pa.Table:
        return join_duckdb(offline, plan, spine.arrow, summary, threads=self.threads)


def spine_summary(spine: pa.Table, timestamp_col: str) -> dict:
    """Min/max timestamp (epoch µs), row count and a hash of the spine's rows: the XOR of
    DuckDB's row hashes (order-insensitive; a pair of equal rows cancels out, so recreating
    a set compares the row count too)."""
    import duckdb

    ts = spine.column(timestamp_col).cast(pa.int64())
    mm = pc.min_max(ts).as_py()
    con = duckdb.connect()
    try:
        con.register("spine", spine)
        cols = ", ".join(q(c) for c in spine.column_names)
        h = con.execute(f"SELECT bit_xor(hash({cols})) FROM spine").fetchall()[0][0]
    finally:
        con.close()
    return {"lo": mm["min"], "hi": mm["max"], "rows": spine.num_rows,
            "hash": f"duckdb-hash-xor:{(h or 0) & 0xFFFFFFFFFFFFFFFF:016x}"}


def join_duckdb(offline: "OfflineStore", plan: Plan, spine: pa.Table, summary: dict,
                threads: int | None = None) -> pa.Table:
    """Run the point-in-time join in one DuckDB statement: the spine, then one chained
    ``ASOF LEFT JOIN`` per as-of group and one ``LEFT JOIN`` on ``_spine_id`` per
    aggregation group's frame, sorted by ``_spine_id``. Returns Arrow, ``_spine_id`` first."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        if threads:
            con.execute(f"SET threads={int(threads)}")
        con.register("spine", spine)
        ts = q(plan.timestamp_col)
        spine_extra, joins, selects = [], [], []
        for i, gp in enumerate(plan.groups):
            name = f"g{i}"
            if gp.group.aggregations:
                from ..aggregations.duckdb import aggregate_at_spine

                cols = [SPINE_ID, plan.timestamp_col] + sorted(set(gp.key_columns.values()))
                frame = aggregate_at_spine(
                    offline, gp.group, spine.select(cols), gp.features,
                    delta_version=gp.delta_version, as_known_at=plan.as_known_at,
                    key_columns=gp.key_columns, timestamp_col=plan.timestamp_col)
                frame = frame.select([SPINE_ID] + gp.features).rename_columns(
                    [SPINE_ID] + gp.columns)
                con.register(name, frame)
                joins.append(f"LEFT JOIN {name} ON {name}.{SPINE_ID} = sp.{SPINE_ID}")
                selects += [f"{name}.{q(c)}" for c in gp.columns]
                continue
            source, position, lookup = _history_source(offline, gp, con, f"h{i}")
            g = gp.group
            for j, k in enumerate(gp.key_columns):
                spine_extra.append(f"CAST({q(gp.key_columns[k])} AS {KEY_SQL[g.key_dtypes[k]]}) "
                                   f"AS _sfs_g{i}k{j}")
            on = " AND ".join(f"sp._sfs_g{i}k{j} = {name}._k{j}" for j in range(len(gp.key_columns)))
            if plan.as_known_at:
                on += f" AND sp.{ts} >= {name}._pos"
            else:
                spine_extra.append(f"{lookup.format(t_us=f'epoch_us({ts})')} AS _sfs_g{i}pos")
                on += f" AND sp._sfs_g{i}pos >= {name}._pos"
            sql = history_sql(gp, source, plan, summary, position)
            joins.append(f"ASOF LEFT JOIN ({sql}) {name} ON {on}")
            selects += value_selects(gp, name, plan)
        spine_sel = [f"sp.{q(c)}" for c in [SPINE_ID] + plan.spine_columns]
        extra = "".join(", " + e for e in spine_extra)
        sql = (f"SELECT {', '.join(spine_sel + selects)}\n"
               f"FROM (SELECT *{extra} FROM spine) sp\n"
               + "\n".join(joins) + f"\nORDER BY sp.{SPINE_ID}")
        out = con.sql(sql).to_arrow_table()
    finally:
        con.close()
    if plan.on_demand is not None:
        out = apply_on_demand(plan, out)
    return out


def _history_source(offline: "OfflineStore", gp: GroupPlan, con, name: str) -> tuple[str, str, str]:
    """How to read the pinned Delta version's rows: ``(source, position, lookup)`` as in
    ``parquet_positions``. delta-rs lists exactly the files of that version (time travel);
    local files are scanned by DuckDB's own Parquet reader, anything else (s3://,
    hdfs://...) through a pyarrow dataset from delta-rs."""
    table = offline.table(gp.group, gp.delta_version)
    paths = local_paths(table.file_uris())
    if not paths:
        con.register(name, arrow_dataset(table, history_schema(gp.group)))
        return (name,) + wide_positions(f"epoch_us({q(gp.group.event_time)})",
                                        f"epoch_us({q(COMMIT_TIME)})")
    return parquet_positions(paths, gp.group.event_time)


def history_sql(gp: GroupPlan, hist: str, plan: Plan, summary: dict, position: str) -> str:
    """One group's history rows as ``_k0.., _pos, _e, _v0..`` (default mode) or
    ``_k0.., _pos, _best`` (as known at: the running best row by visible-from time).
    ``position``: the SQL of a row's ``(E, _commit_time)`` position."""
    g = gp.group
    keys = list(gp.key_columns)
    et = q(g.event_time)
    k_hist = [f"CAST({q(k)} AS {KEY_SQL[g.key_dtypes[k]]}) AS _k{i}" for i, k in enumerate(keys)]
    hi, lo = summary["hi"], summary["lo"]
    where = [f"{q(k)} IS NOT NULL" for k in keys] + [f"{et} IS NOT NULL"]
    if hi is None:
        where.append("FALSE")
    else:
        where.append(f"{et} <= {_ts_lit(hi)}")
        if plan.as_known_at:
            where.append(f"{q(COMMIT_TIME)} <= {_ts_lit(hi)}")
        if gp.ttl is not None:
            where.append(f"{et} >= {_ts_lit(int(lo) - micros(gp.ttl))}")
    if not plan.as_known_at:
        vals = [f"{q(f)} AS _v{j}" for j, f in enumerate(gp.features)]
        return (f"SELECT {', '.join(k_hist)}, {position} AS _pos, {et} AS _e, {', '.join(vals)} "
                f"FROM {hist} WHERE {' AND '.join(where)}")
    packed = ", ".join([f"_e := {et}"] + [f"_v{j} := {q(f)}" for j, f in enumerate(gp.features)])
    part = ", ".join(f"_k{i}" for i in range(len(keys)))
    base = (f"SELECT {', '.join(k_hist)}, greatest({et}, {q(COMMIT_TIME)}) AS _pos, "
            f"{position} AS _rank, struct_pack({packed}) AS _row FROM {hist} "
            f"WHERE {' AND '.join(where)}")
    return (f"SELECT {part}, _pos, arg_max(_row, _rank) OVER (PARTITION BY {part} "
            f"ORDER BY _pos RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS _best "
            f"FROM ({base})")


def value_selects(gp: GroupPlan, name: str, plan: Plan) -> list[str]:
    """The group's output columns from the joined history row, null past the ttl."""
    n = len(gp.features)
    if plan.as_known_at:
        vals, e = [f"{name}._best._v{j}" for j in range(n)], f"{name}._best._e"
    else:
        vals, e = [f"{name}._v{j}" for j in range(n)], f"{name}._e"
    if plan.event_times:
        vals, columns = vals + [e], list(gp.columns) + [gp.event_time_column]
    else:
        columns = list(gp.columns)
    if gp.ttl is None:
        return [f"{v} AS {q(c)}" for v, c in zip(vals, columns)]
    fresh = f"epoch_us({e}) >= epoch_us(sp.{q(plan.timestamp_col)}) - {micros(gp.ttl)}"
    return [f"CASE WHEN {fresh} THEN {v} END AS {q(c)}" for v, c in zip(vals, columns)]


def apply_on_demand(plan: Plan, out: pa.Table) -> pa.Table:
    """Run the on-demand transforms (pandas) over the columns they read; append outputs."""
    from ..dtypes import arrow_type
    from .plan import on_demand_inputs, on_demand_renames

    od = plan.on_demand
    renames = on_demand_renames(plan)
    aliases = on_demand_inputs(plan)
    cols = {c: c for c in od.request_columns}
    cols.update(aliases)
    df = out.select(list(dict.fromkeys(cols.values()))).to_pandas()
    df = df.rename(columns={v: k for k, v in aliases.items() if k != v})
    res = od.apply_pandas(df)
    for name in od.output_names:
        arr = pa.array(res[name].astype(object).where(res[name].notna(), None).tolist(),
                       type=arrow_type(od.output_dtypes[name]))
        out = out.append_column(renames.get(name, name), arr)
    return out


def _ts_lit(micros: int) -> str:
    import datetime as dt

    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(micros))
    return f"TIMESTAMPTZ '{when.isoformat()}'"




__all__ = ["DuckDBEngine", "join_duckdb", "spine_summary", "history_sql", "commit_layout",
           "DTYPES"]
