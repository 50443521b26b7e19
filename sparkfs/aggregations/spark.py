"""Windowed aggregates at spine times with Spark (the engine for large training sets).

``aggregate_at_spine`` runs the sliding plan of ``sliding.py``: per window, a running
prefix and a running suffix within window-aligned chunks, all windows over one shuffle
by key. With ``as_known_at`` (commit time must also be at most the spine time, which is
not a prefix of anything) it runs the tiled SQL of ``plan.py``: tiles of events merged
by equi-joins plus the raw events of the two partial edge tiles of each window. Both
cost O(rows), not O(rows x events per window) like a ``rangeBetween`` window. pyspark is
imported only by the caller's DataFrames; this module itself imports nothing from it.

Contract (used by ``sparkfs.training.spark``)::

    aggregate_at_spine(offline, group, spine, features, delta_version=..., as_known_at=...,
                       key_columns={group_key: spine_column}, timestamp_col=...) -> DataFrame

The result has one row per spine row with ``_spine_id`` and the requested features;
join it back to the spine on ``_spine_id``. ``aggregate_history`` does the same on a
history DataFrame you already hold.

>>> from sparkfs.aggregations.plan import SPARK, AggregationPlan, _demo_group
>>> sql = AggregationPlan.build(_demo_group(), ["dep_delay_mean_1d"]).sql(SPARK, True)
>>> "t._c < q._kt" in sql and "CROSS JOIN off_0" in sql
True
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..definitions import FeatureGroup
from ..errors import NotFoundError
from .plan import SPARK, AggregationPlan, check_history_columns, resolve_keys
from .sliding import sliding_sql

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from ..offline.tables import OfflineStore


def aggregate_at_spine(offline: "OfflineStore", group: FeatureGroup, spine: "DataFrame",
                       features: Sequence[str] | None, delta_version: int | None = None,
                       as_known_at: bool = False, key_columns: dict | Sequence[str] | None = None,
                       timestamp_col: str = "") -> "DataFrame":
    """The training-set entry point: ``aggregate_history`` over the group's Delta history
    at ``delta_version`` (None: the latest). ``key_columns`` maps each group join key to
    its spine column."""
    history = offline.read_spark(spine.sparkSession, group, delta_version)
    return aggregate_history(history, group, features, spine, key_columns, timestamp_col,
                             as_known_at)


def aggregate_history(history: "DataFrame", group: FeatureGroup, features: Sequence[str] | None,
                      spine: "DataFrame", join_keys: Sequence[str] | dict | None,
                      timestamp_col: str, as_known_at: bool = False) -> "DataFrame":
    """Aggregate features of ``group`` at each spine row, exact at the spine time.

    ``history``: Spark DataFrame of the group's Delta history at the pinned version
    (``offline.read_spark(spark, group, version)``).
    ``features``: aggregate feature names of the group (None: all of them).
    ``spine``: Spark DataFrame with a unique ``_spine_id``, the key columns and
    ``timestamp_col`` (a timestamp).
    ``join_keys``: spine columns aligned with ``group.join_keys`` (or a mapping
    ``{group_key: spine_column}``, or None for the group's own names).
    ``as_known_at``: also require ``_commit_time <= t``.

    Returns a lazy Spark DataFrame: ``_spine_id`` + one column per feature, one row per
    spine row. Value at spine time t = aggregate of the kept events with event time in
    ``(t - window, t]``; empty window: count 0, the others null.
    """
    plan = AggregationPlan.build(group, features)
    check_history_columns(plan, history.columns)
    keys = resolve_keys(group, join_keys, spine.columns)
    for c in ("_spine_id", timestamp_col):
        if c not in spine.columns:
            raise NotFoundError(
                f"the spine for feature group {group.name!r} has no column {c!r}; it has: "
                f"{spine.columns}")
    # Temporary views with fresh names, not ``spark.sql(query, history=...)``: that form
    # runs the query through ``str.format``, so a brace in a quoted column name would be
    # taken as a placeholder. The query is analysed here, so the views can go right after.
    token = uuid.uuid4().hex[:12]
    hist_view, spine_view = f"_sfs_hist_{token}", f"_sfs_spine_{token}"
    if as_known_at:
        query = plan.sql(SPARK, True, history=hist_view, spine=spine_view,
                         spine_keys=keys, timestamp_col=timestamp_col)
    else:
        query = sliding_sql(plan, SPARK, hist_view, spine_view, keys, timestamp_col,
                            distribute_by_key=True)
    spark = spine.sparkSession
    history.createOrReplaceTempView(hist_view)
    spine.createOrReplaceTempView(spine_view)
    try:
        return spark.sql(query)
    finally:
        spark.catalog.dropTempView(hist_view)
        spark.catalog.dropTempView(spine_view)
