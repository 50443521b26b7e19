"""What a point-in-time join has to do, worked out once for every engine.

``resolve`` turns feature references, the spine's columns and ``key_map`` into one
``GroupPlan`` per requested feature group version: which features, under which output
names, joined on which spine columns, read at which pinned Delta version, with which ttl.
``spine_to_arrow`` normalises a spine (pandas, Arrow or Spark) into Arrow with UTC
timestamps. Nothing here imports pyspark at module level.

Output names, order and dtypes come from ``sparkfs.request`` (the resolver the online
path uses too): short names; ``{group}__{feature}`` / ``{transform}__{output}`` with
``full_feature_names=True``. A name clash (two features, or a feature and a spine
column) is refused.

>>> import pyarrow as pa, datetime as dt
>>> t = spine_to_arrow(pa.table({"origin": ["JFK"], "ts": [dt.datetime(2013, 1, 1, 6)]}), "ts")
>>> t.schema.field("ts").type
TimestampType(timestamp[us, tz=UTC])
>>> t.column(SPINE_ID).to_pylist()
[0]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..definitions import FeatureGroup, format_duration, parse_duration
from ..errors import DefinitionError, NotFoundError, SparkfsError
from ..offline.tables import ARROW_TYPES, TIMESTAMP

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import Catalog
    from ..offline.tables import OfflineStore

#: Column that numbers spine rows (0, 1, 2... for pandas/Arrow spines). Reserved.
SPINE_ID = "_spine_id"
#: ``event_times=True``: ``__event_time__{group}@{version}`` holds, per spine row, the event
#: time of the history row the join chose for that (as-of) group; null when none was.
EVENT_TIME_PREFIX = "__event_time__"

from .engines import ENGINES  # noqa: E402  (names an engine accepts)


@dataclass
class GroupPlan:
    """One feature group version to join: its features, output names, key columns, pins."""

    group: FeatureGroup
    features: list[str]
    columns: list[str]
    key_columns: dict[str, str]
    delta_version: int
    ttl: dt.timedelta | None

    @property
    def label(self) -> str:
        return f"{self.group.name}@{self.group.version}"

    @property
    def dtypes(self) -> list[str]:
        return [self.group.feature(f).dtype for f in self.features]

    @property
    def event_time_column(self) -> str:
        """The ``event_times=True`` output column holding the chosen row's event time."""
        return EVENT_TIME_PREFIX + self.label


@dataclass
class Plan:
    """Everything an engine needs besides the spine itself."""

    groups: list[GroupPlan]
    timestamp_col: str
    spine_columns: list[str]
    as_known_at: bool
    on_demand: Any = None
    on_demand_columns: list[str] = field(default_factory=list)
    #: Group features fetched only as inputs of on-demand features (not in the output).
    hidden: set[str] = field(default_factory=set)
    #: (group, version as written in the reference) -> "group@version" that was used.
    ref_labels: dict = field(default_factory=dict)
    #: The resolver's answer (``sparkfs.request.Resolved``): names, order, dtypes.
    request: Any = None
    #: Also output each as-of group's chosen event time (``GroupPlan.event_time_column``).
    event_times: bool = False

    @property
    def event_time_columns(self) -> list[str]:
        """``event_times``: one column per as-of group (aggregations have no one row)."""
        if not self.event_times:
            return []
        return [gp.event_time_column for gp in self.groups if not gp.group.aggregations]

    @property
    def feature_columns(self) -> list[str]:
        """Feature columns in the resolver's order (the online path's order too)."""
        if self.request is not None:
            return list(self.request.columns)
        cols = [c for g in self.groups for c in g.columns if c not in self.hidden]
        return cols + list(self.on_demand_columns)

    @property
    def output_columns(self) -> list[str]:
        return list(self.spine_columns) + self.feature_columns


def resolve(catalog: "Catalog", offline: "OfflineStore", features: Sequence[Any] | None,
            spine_schema: pa.Schema,
            timestamp_col: str, as_known_at: bool = False,
            key_map: Mapping[str, str] | None = None, full_feature_names: bool = False,
            delta_versions: Mapping[str, int] | None = None,
            ttls: Mapping[str, str | None] | None = None, view: Any = None,
            event_times: bool = False) -> Plan:
    """Resolve feature references (or a view) with ``sparkfs.request.resolve`` — the
    resolver the online path uses too — then check them against the spine's schema.

    ``delta_versions`` (``"group@version" -> Delta version``) and ``ttls`` pin what a
    stored training set used; otherwise each group's current Delta version and ttl.
    """
    from ..request import resolve as resolve_request

    spine_cols = [c for c in spine_schema.names if c != SPINE_ID]
    check_timestamp_column(spine_schema, timestamp_col)
    for k, v in dict(key_map or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise SparkfsError(f"key_map must map join key names to spine column names; got {k!r}: {v!r}")
    reserved = {c: f"spine column {c!r}" for c in spine_cols}
    req = resolve_request(catalog, features, view=view, full_feature_names=full_feature_names,
                          key_map=key_map, reserved=reserved)
    od = req.on_demand
    if od is not None:
        missing = [c for c in od.request_columns if c not in spine_cols]
        if missing:
            raise NotFoundError(
                f"on-demand features {[str(r) for r in od.requested]} need request column(s) "
                f"{missing}, which the spine lacks (spine columns: {', '.join(spine_cols)})")
    plans: list[GroupPlan] = []
    for gr in req.groups:
        group = gr.group
        for k, col in gr.key_columns.items():
            if col not in spine_cols:
                raise NotFoundError(
                    f"feature group {group.name!r} joins on {k!r}, but the spine has no column "
                    f"{col!r} (spine columns: {', '.join(spine_cols)}); add it or map it with "
                    f"key_map={{{k!r}: 'spine_column'}}")
            check_key_type(spine_schema.field(col).type, group, k, col)
        label = gr.label
        if delta_versions and label in delta_versions:
            delta_version = int(delta_versions[label])
        else:
            delta_version = offline.current_version(group)
        ttl = group.ttl
        if ttls is not None and label in ttls:
            ttl = None if ttls[label] is None else parse_duration(ttls[label])
        plans.append(GroupPlan(group, list(gr.features), list(gr.columns), dict(gr.key_columns),
                               delta_version, ttl))
    return Plan(plans, timestamp_col, spine_cols, as_known_at, od,
                list(req.on_demand_columns.values()), hidden=req.hidden_columns,
                ref_labels=req.ref_labels, request=req, event_times=bool(event_times))


def on_demand_inputs(plan: Plan) -> dict[str, str]:
    """Short name an on-demand transform reads -> the join result's column holding it."""
    out: dict[str, str] = {}
    if plan.on_demand is None:
        return out
    for ref in plan.on_demand.group_refs:
        label = plan.ref_labels.get((ref.group, ref.version))
        for gp in plan.groups:
            if gp.label == label and ref.feature in gp.features:
                out[ref.feature] = gp.columns[gp.features.index(ref.feature)]
    return out


def on_demand_renames(plan: Plan) -> dict[str, str]:
    """On-demand output (as the transforms add it) -> its output column, where they differ
    (``full_feature_names``: ``{transform}__{output}``)."""
    if plan.request is None:
        return {}
    return {n: c for n, c in plan.request.on_demand_columns.items() if n != c}


# -- spine --------------------------------------------------------------------------------
def check_timestamp_column(schema: pa.Schema, col: str) -> None:
    if col not in schema.names:
        raise NotFoundError(
            f"the spine has no timestamp column {col!r} (spine columns: "
            f"{', '.join(n for n in schema.names if n != SPINE_ID)})")
    t = schema.field(col).type
    if not (pa.types.is_timestamp(t) or pa.types.is_date(t)):
        raise SparkfsError(
            f"spine column {col!r} has type {t}; the timestamp column must hold timestamps "
            "(naive values are taken as UTC) or dates")


def check_key_type(t: pa.DataType, group: FeatureGroup, key: str, col: str) -> None:
    want = group.key_dtypes[key]
    ok = (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
          if want == "string" else pa.types.is_integer(t))
    if not ok and not pa.types.is_null(t):
        raise SparkfsError(
            f"spine column {col!r} has type {t}, but feature group {group.name!r} joins it to "
            f"key {key!r} of dtype {want}; cast the spine column")


def spine_to_arrow(spine: Any, timestamp_col: str, keep_id: bool = False) -> pa.Table:
    """The spine as Arrow: timestamps as UTC microseconds (naive = UTC), plain strings,
    and a ``_spine_id`` column numbering the rows (kept as given when ``keep_id``)."""
    if isinstance(spine, pa.RecordBatch):
        spine = pa.Table.from_batches([spine])
    if _is_spark(spine):
        spine = spine.toArrow()
    elif not isinstance(spine, pa.Table):
        import pandas as pd

        if not isinstance(spine, pd.DataFrame):
            raise SparkfsError(
                f"the spine must be a Spark DataFrame, a pandas DataFrame or an Arrow table, "
                f"not {type(spine).__name__}")
        spine = pa.Table.from_pandas(spine, preserve_index=False)
    if SPINE_ID in spine.column_names and not keep_id:
        raise SparkfsError(f"the spine has a column named {SPINE_ID!r}, which sparkfs reserves; rename it")
    check_timestamp_column(spine.schema, timestamp_col)
    spine = canonical_spine(spine, timestamp_col)
    if not keep_id:
        spine = spine.append_column(SPINE_ID, pa.array(range(spine.num_rows), pa.int64()))
    return spine


def canonical_spine(tbl: pa.Table, timestamp_col: str) -> pa.Table:
    cols, fields = [], []
    for f, col in zip(tbl.schema, tbl.columns):
        t = canonical_type(f.type)
        if f.name == timestamp_col and pa.types.is_date(f.type):
            t = TIMESTAMP
        if t != f.type:
            col = col.cast(t, safe=False)
        cols.append(col)
        fields.append(pa.field(f.name, t))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def canonical_type(t: pa.DataType) -> pa.DataType:
    """The one Arrow type both engines hand back for ``t``."""
    if pa.types.is_timestamp(t):
        return TIMESTAMP
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list(t) or pa.types.is_list_view(t):
        return pa.list_(canonical_type(t.value_type))
    if pa.types.is_dictionary(t):
        return canonical_type(t.value_type)
    return t


def output_schema(plan: Plan, spine_schema: pa.Schema) -> pa.Schema:
    """Spine columns, then the feature columns in the resolver's order and dtypes."""
    fields = [pa.field(c, canonical_type(spine_schema.field(c).type)) for c in plan.spine_columns]
    dtypes = plan.request.dtypes
    for c in plan.feature_columns:
        fields.append(pa.field(c, ARROW_TYPES[dtypes[c]]))
    fields += [pa.field(c, TIMESTAMP) for c in plan.event_time_columns]
    return pa.schema(fields)


def conform(tbl: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast ``tbl`` to ``schema`` (column order and types), keeping extra
    columns named in ``schema`` only."""
    missing = [n for n in schema.names if n not in tbl.column_names]
    if missing:
        raise SparkfsError(f"internal: the join result lacks columns {missing}")
    cols = []
    for f in schema:
        c = tbl.column(f.name)
        cols.append(c if c.type == f.type else c.cast(f.type, safe=False))
    return pa.Table.from_arrays(cols, schema=schema)


def _is_spark(obj: Any) -> bool:
    mod = type(obj).__module__ or ""
    return mod.startswith("pyspark.") and hasattr(obj, "toArrow")


def ttl_label(ttl: dt.timedelta | None) -> str | None:
    return None if ttl is None else format_duration(ttl)


__all__ = ["SPINE_ID", "ENGINES", "GroupPlan", "Plan", "resolve", "spine_to_arrow",
           "canonical_type", "output_schema", "conform", "DefinitionError"]


def micros(td: dt.timedelta) -> int:
    """A duration in whole microseconds (exact integer arithmetic)."""
    return td.days * 86_400_000_000 + td.seconds * 1_000_000 + td.microseconds
