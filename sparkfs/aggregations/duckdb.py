"""Windowed aggregates at spine times with DuckDB, on one machine, without Spark.

Contract (used by ``sparkfs.training.duckdb``)::

    aggregate_at_spine(offline, group, spine, features, delta_version=..., as_known_at=...,
                       key_columns={group_key: spine_column}, timestamp_col=...) -> pyarrow.Table

``aggregate_history`` does the same on a history you already hold. Both run the same
tiled SQL as the Spark engine (``plan.py``) and return the same numbers (floating-point
sums may differ in the last bits, since the engines add in different orders).

>>> import pyarrow as pa, datetime as dt
>>> from sparkfs.aggregations.plan import _demo_group
>>> from sparkfs.offline.tables import history_schema
>>> g = _demo_group()
>>> t0 = dt.datetime(2013, 1, 1, tzinfo=dt.timezone.utc)
>>> hist = pa.Table.from_pylist(
...     [{"carrier": "UA", "dep_ts": t0 + dt.timedelta(hours=h), "dep_delay": float(h),
...       "_commit_time": t0, "_run_id": "r"} for h in range(30)], schema=history_schema(g))
>>> spine = pa.table({"_spine_id": [0, 1], "carrier": ["UA", "AA"],
...                   "ts": [t0 + dt.timedelta(hours=29), t0]})
>>> aggregate_history(hist, g, ["dep_delay_mean_1d", "dep_delay_count_1d"], spine,
...                    ["carrier"], "ts").sort_by("_spine_id").to_pylist()
[{'_spine_id': 0, 'dep_delay_mean_1d': 17.5, 'dep_delay_count_1d': 24}, {'_spine_id': 1, 'dep_delay_mean_1d': None, 'dep_delay_count_1d': 0}]
"""  # noqa: E501 (doctest output)

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..definitions import FeatureGroup
from .plan import DUCKDB, AggregationPlan, check_history_columns, resolve_keys

if TYPE_CHECKING:  # pragma: no cover
    from ..offline.tables import OfflineStore


def aggregate_at_spine(offline: "OfflineStore", group: FeatureGroup, spine: Any,
                       features: Sequence[str] | None, delta_version: int | None = None,
                       as_known_at: bool = False, key_columns: dict | Sequence[str] | None = None,
                       timestamp_col: str = "") -> pa.Table:
    """The training-set entry point: ``aggregate_history`` over the group's Delta history
    at ``delta_version`` (None: the latest), read with delta-rs (no Spark).
    ``key_columns`` maps each group join key to its spine column."""
    from ..offline.tables import arrow_dataset, history_schema

    table = offline.table(group, delta_version)
    history = arrow_dataset(table, history_schema(group))
    return aggregate_history(history, group, features, spine, key_columns, timestamp_col,
                             as_known_at)


def aggregate_history(history: Any, group: FeatureGroup, features: Sequence[str] | None,
                      spine: Any, join_keys: Sequence[str] | dict | None, timestamp_col: str,
                      as_known_at: bool = False, con: Any = None) -> pa.Table:
    """Aggregate features of ``group`` at each spine row, exact at the spine time.

    ``history``: the group's Delta history at the pinned version (Arrow table, pandas
    DataFrame or DuckDB relation; ``offline.read_arrow(group, version)``).
    ``features``: aggregate feature names of the group (None: all of them).
    ``spine``: Arrow table / pandas DataFrame / DuckDB relation with a unique
    ``_spine_id``, the key columns and ``timestamp_col``.
    ``join_keys``: spine columns aligned with ``group.join_keys`` (or a mapping
    ``{group_key: spine_column}``, or None for the group's own names).
    ``as_known_at``: also require ``_commit_time <= t``.

    Returns an Arrow table: ``_spine_id`` and one column per feature, one row per spine
    row. Value at spine time t = aggregate of the kept events with event time in
    ``(t - window, t]``; empty window: count 0, the others null.
    """
    import duckdb

    plan = AggregationPlan.build(group, features)
    own = con is None
    con = duckdb.connect() if own else con
    hist_name = f"_sfs_hist_{uuid.uuid4().hex[:12]}"
    spine_name = f"_sfs_spine_{uuid.uuid4().hex[:12]}"
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register(hist_name, history)
        con.register(spine_name, spine)
        check_history_columns(plan, con.sql(f"SELECT * FROM {hist_name}").columns)
        spine_cols = con.sql(f"SELECT * FROM {spine_name}").columns
        keys = resolve_keys(group, join_keys, spine_cols)
        _check_spine(spine_cols, timestamp_col, group)
        query = plan.sql(DUCKDB, as_known_at, history=hist_name, spine=spine_name,
                         spine_keys=keys, timestamp_col=timestamp_col)
        return con.sql(query).to_arrow_table()
    finally:
        for name in (hist_name, spine_name):
            try:
                con.unregister(name)
            except Exception:  # already gone
                pass
        if own:
            con.close()


def _check_spine(columns: Sequence[str], timestamp_col: str, group: FeatureGroup) -> None:
    from ..errors import NotFoundError

    for c in ("_spine_id", timestamp_col):
        if c not in columns:
            raise NotFoundError(
                f"the spine for feature group {group.name!r} has no column {c!r}; it has: "
                f"{list(columns)}")
