"""Windowed aggregates online: per-key event state written by materialization, windows
finished at read time against the read clock.

State. For each key, the online store holds one row of a companion group
``{group}__aggstate`` (same keys, one string feature ``state``): the key's *kept-able*
raw events (event time, commit time and the aggregated and filter columns) with event
time later than ``latest_event_time(key) - longest_window``. Its event time is the key's
latest event time, so the store's "newer event wins" upsert keeps the newest state.

Materialization (``materialize_aggregations``), incremental by Delta version, no Spark:
the files committed since the watermark name the touched keys (late events included);
for those keys only, the recent history is re-read (files whose event-time statistics
overlap it) and their state rebuilt and written; then the watermark advances.

Read (``read_aggregates``): each window ``(now - W, now]`` is computed from the state
with the same semantics as offline (see ``sparkfs.aggregations``).

Freshness guarantee: **exact for every event committed by the last materialization,
with window expiry applied at read time** — a window that emptied since the key's last
event reads count 0 and null, with no new materialization. A late event (old event
time) counts from the next materialization on. Reads at a time earlier than
``latest_event_time(key) - (longest window - window)`` are out of scope (use training
sets for the past). Nothing here imports pyspark.

>>> import datetime as dt
>>> from sparkfs.aggregations.plan import _demo_group
>>> g = _demo_group()
>>> t0 = dt.datetime(2013, 1, 1, tzinfo=dt.timezone.utc)
>>> us = lambda t: int((t - EPOCH) / dt.timedelta(microseconds=1))
>>> state = {"t": [us(t0), us(t0 + dt.timedelta(hours=2))], "c": [0, 0],
...          "v": {"dep_delay": [10.0, 20.0]}}
>>> compute(g, state, ["dep_delay_mean_1d", "dep_delay_count_1d"], t0 + dt.timedelta(hours=3))
[15.0, 2]
>>> compute(g, state, ["dep_delay_mean_1d", "dep_delay_count_1d"], t0 + dt.timedelta(days=1, hours=1))
[20.0, 1]
>>> compute(g, state, ["dep_delay_mean_1d", "dep_delay_count_1d"], t0 + dt.timedelta(days=2))
[None, 0]
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..definitions import Aggregation, Entity, FeatureGroup, Field
from ..dtypes import ALL
from ..errors import DefinitionError
from ..offline.tables import COMMIT_TIME, history_schema
from ..online.codec import EPOCH, decode_value, dumps, encode_value, loads
from ..sql import quote_ident, quote_idents

if TYPE_CHECKING:  # pragma: no cover
    from ..offline.tables import OfflineStore
    from ..online.base import OnlineStore

STATE = "state"
_US = dt.timedelta(microseconds=1)


def state_group(group: FeatureGroup) -> FeatureGroup:
    """The companion group whose online rows hold each key's event state."""
    entities = [Entity(e.name, e.join_keys, dtypes=e.key_dtypes) for e in group.entities]
    return FeatureGroup(name=f"{group.name}__aggstate", version=group.version,
                        entities=entities, event_time=group.event_time,
                        schema=[Field(STATE, "string")], online=True)


def state_columns(group: FeatureGroup) -> list[str]:
    """History columns an aggregation reads: aggregated columns and filters."""
    cols: list[str] = []
    for a in group.aggregations:
        for c in (a.column, a.filter):
            if c is not None and c not in cols:
                cols.append(c)
    return cols


def longest_window(group: FeatureGroup) -> dt.timedelta:
    return max(d for a in group.aggregations for d in a.window_durations.values())


# -- materialization ----------------------------------------------------------------------
def materialize_aggregations(offline: "OfflineStore", online: "OnlineStore",
                             group: FeatureGroup):
    """Bring the online event state of ``group`` (in ``online``) up to its latest Delta
    version (in ``offline``); a ``MaterializeResult``."""
    from ..online.materialize import MaterializeResult, watermark_and_version

    if not group.aggregations:
        raise DefinitionError(f"feature group {group.name!r} declares no aggregations")
    start = time.perf_counter()
    store = online
    sgroup = state_group(group)
    watermark, current = watermark_and_version(offline, online, group, sgroup,
                                               "fs.online.drop(state_group(group))")
    rows_read = keys_written = 0
    files: list[str] = []
    if watermark != current:
        files = offline.files_added_between(group, watermark, current)
        if files:
            new = _read(group, files)
            rows_read = new.num_rows
            states = build_states(offline, group, current, new)
            if states.num_rows:
                keys_written = store.write_batch(sgroup, states)
        store.set_watermark(sgroup, current)
    return MaterializeResult(group.name, group.version, watermark, current, rows_read,
                             keys_written, time.perf_counter() - start, "local", len(files))


def _read(group: FeatureGroup, files: Sequence[str]) -> pa.Table:
    import pyarrow.dataset as ds

    return ds.dataset(list(files), format="parquet", schema=history_schema(group)).to_table()


def build_states(offline: "OfflineStore", group: FeatureGroup, version: int,
                 new: pa.Table) -> pa.Table:
    """State rows (keys, event time, ``state`` JSON, ``_commit_time``) for the keys that
    appear in ``new``, rebuilt from the history at ``version``."""
    import duckdb

    keys = list(group.join_keys)
    et = group.event_time
    span = longest_window(group)
    q = quote_idents(keys)
    qet, qct = quote_ident(et), quote_ident(COMMIT_TIME)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("new_rows", new)
        touched = con.sql(f"SELECT {q}, max({qet}) AS _max FROM new_rows "
                          f"WHERE {qet} IS NOT NULL GROUP BY {q}").to_arrow_table()
        if touched.num_rows == 0:
            return _empty_states(group)
        lower = min(touched.column("_max").to_pylist()) - span
        files = offline.files(group, version, (lower, None))
        con.register("history", _read(group, files))
        con.register("touched", touched)
        cols = ", ".join(f"h.{quote_ident(c)}" for c in [et, COMMIT_TIME] + state_columns(group))
        on = " AND ".join(f"h.{quote_ident(k)} = t.{quote_ident(k)}" for k in keys)
        hkeys = ", ".join(f"h.{quote_ident(k)}" for k in keys)
        # Per touched key: its events later than (its latest event time - longest window).
        rows = con.sql(
            f"SELECT {hkeys}, {cols}, t._kmax FROM history h "
            f"JOIN (SELECT {hkeys}, max(h.{qet}) AS _kmax FROM history h "
            f"      JOIN touched t ON {on} GROUP BY {hkeys}) t ON {on} "
            f"WHERE h.{qet} > t._kmax - INTERVAL '{int(span // _US)} microseconds' "
            f"ORDER BY {hkeys}, h.{qet}, h.{qct}").to_arrow_table()
    finally:
        con.close()
    return _pack(group, rows)


def _pack(group: FeatureGroup, rows: pa.Table) -> pa.Table:
    keys = list(group.join_keys)
    dtypes = {f.name: f.dtype for f in group.stored_fields}
    value_cols = state_columns(group)
    data = rows.to_pydict()
    out: dict[str, list] = {k: [] for k in keys}
    out.update({group.event_time: [], STATE: []})
    i, n = 0, rows.num_rows
    while i < n:
        key = tuple(data[k][i] for k in keys)
        j = i
        while j < n and tuple(data[k][j] for k in keys) == key:
            j += 1
        state = {
            "t": [_to_us(x) for x in data[group.event_time][i:j]],
            "c": [_to_us(x) for x in data[COMMIT_TIME][i:j]],
            "v": {c: [encode_value(x, dtypes[c]) for x in data[c][i:j]] for c in value_cols},
        }
        for k, v in zip(keys, key):
            out[k].append(v)
        out[group.event_time].append(data["_kmax"][i])
        out[STATE].append(dumps(state))
        i = j
    return _states_table(group, out)


def _states_table(group: FeatureGroup, out: dict[str, list]) -> pa.Table:
    schema = history_schema(state_group(group))
    n = len(out[STATE])
    now = dt.datetime.now(dt.UTC)
    cols = {f.name: out[f.name] for f in schema if f.name in out}
    cols[COMMIT_TIME] = [now] * n
    fields = [schema.field(c) for c in cols]
    return pa.table([pa.array(cols[f.name], f.type) for f in fields], schema=pa.schema(fields))


def _empty_states(group: FeatureGroup) -> pa.Table:
    return _states_table(group, {**{k: [] for k in group.join_keys}, group.event_time: [],
                                 STATE: []})


def _to_us(value: Any) -> int:
    return (value - EPOCH) // _US


# -- read ---------------------------------------------------------------------------------
def read_aggregates(store: Any, group: FeatureGroup, keys: Sequence[tuple],
                    features: Sequence[str], now: dt.datetime
                    ) -> tuple[list[list], list[list[str]], list[list[dt.datetime | None]]]:
    """Values, statuses and event times per requested feature, aligned with ``keys``
    (the shape of ``sparkfs.online.read.read_group``), computed at ``now``."""
    from ..online.response import MISSING, PRESENT

    rows = store.read(state_group(group), keys, [STATE])
    n = len(features)
    values: list[list] = [[] for _ in range(n)]
    statuses: list[list[str]] = [[] for _ in range(n)]
    times: list[list] = [[] for _ in range(n)]
    for row in rows:
        if row is None or row.values[0] is None:
            vals, status, when = [None] * n, MISSING, None
        else:
            vals = compute(group, loads(row.values[0]), features, now)
            status, when = PRESENT, EPOCH + dt.timedelta(microseconds=row.event_time_us)
        for i in range(n):
            values[i].append(vals[i])
            statuses[i].append(status)
            times[i].append(when)
    return values, statuses, times


def compute(group: FeatureGroup, state: dict, features: Sequence[str],
            now: dt.datetime) -> list:
    """Each feature's value at ``now`` from one key's state (see ``sparkfs.aggregations``)."""
    by_name: dict[str, tuple[Aggregation, dt.timedelta]] = {
        a.feature_name(w): (a, d) for a in group.aggregations for w, d in a.window_durations.items()}
    dtypes = {f.name: f.dtype for f in group.stored_fields}
    now_us = _to_us(now if now.tzinfo else now.replace(tzinfo=dt.UTC))
    ts, cts = state["t"], state["c"]
    out = []
    for name in features:
        agg, window = by_name[name]
        lo = now_us - window // _US
        col = state["v"][agg.column]
        flt = state["v"][agg.filter] if agg.filter else None
        kept = [i for i in range(len(ts)) if lo < ts[i] <= now_us and col[i] is not None
                and (flt is None or flt[i] is True)]
        raw = [col[i] for i in kept]
        if agg.function == "last" and kept:
            best = max(kept, key=lambda i: (ts[i], cts[i], _ordered(col[i])))
            raw = [col[best]]
        out.append(_finish(agg, dtypes[agg.column], raw))
    return out


def _ordered(v: Any) -> Any:
    """A sort key ordering values as the offline engines (Spark, DuckDB) do: NaN above
    every other number, +inf included.

    >>> max([float("nan"), 3.0], key=_ordered), min([float("nan"), 3.0], key=_ordered)
    (nan, 3.0)
    """
    if isinstance(v, float):
        return (1, 0.0) if v != v else (0, v)
    return (0, v)


def _fsum(xs: Sequence[float]) -> float:
    """``math.fsum`` (exact rounding) where it has an answer, else the IEEE sum the offline
    engines give: NaN for ``inf + -inf`` (fsum raises), ``inf`` when finite values overflow.

    >>> _fsum([0.1] * 10), _fsum([float("inf"), -float("inf")]), _fsum([1e308, 1e308])
    (1.0, nan, inf)
    """
    try:
        return math.fsum(xs)
    except (ValueError, OverflowError):
        return sum(xs)


def _finish(agg: Aggregation, dtype: str, raw: list) -> Any:
    f = agg.function
    if f == "count":
        return len(raw)
    if not raw:
        return None
    if f in ("min", "max", "last"):
        v = min(raw, key=_ordered) if f == "min" else max(raw, key=_ordered) if f == "max" \
            else raw[0]
        return decode_value(v, dtype)
    exact = ALL[dtype].sum_as == "long"  # sums of int, long and boolean stay integers
    xs = [int(x) for x in raw] if exact else [float(x) for x in raw]
    if f == "sum":
        return sum(xs) if exact else _fsum(xs)
    if f == "mean":
        return _fsum(xs) / len(xs)
    if f == "stddev":
        if len(xs) < 2:
            return None
        mean = _fsum(xs) / len(xs)
        return math.sqrt(_fsum([(x - mean) ** 2 for x in xs]) / (len(xs) - 1))
    raise DefinitionError(f"unknown aggregation function {f!r}")  # pragma: no cover
