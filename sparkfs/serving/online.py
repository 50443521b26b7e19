"""``get_online_features``: the latest feature values for entity rows, in-process.

Definitions are read from the registry once and cached per ``FeatureStore``; the cache
is refreshed only when the registry file changes (a ``stat``, no SQLite query per
request). Several groups per call; see ``sparkfs.online.read`` for how request key
values are checked and ``sparkfs.online.response`` for statuses. This module never
imports pyspark.

>>> import tempfile, datetime as dt, pyarrow as pa
>>> from sparkfs import FeatureStore, Entity, Field, FeatureGroup
>>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
>>> g = FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
...                  [Field("temp", "double")])
>>> _ = fs.apply([g])
>>> _ = fs.online.write_batch(g, pa.table({"origin": ["JFK"], "temp": [39.0],
...     "time_hour": [dt.datetime(2013, 1, 1, 5, tzinfo=dt.timezone.utc)]}))
>>> fs.get_online_features(["weather:temp"], [{"origin": "JFK"}, {"origin": "EWR"}]).to_dict()
{'origin': ['JFK', 'EWR'], 'temp': [39.0, None]}
>>> fs.close()
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..definitions import FeatureGroup, FeatureRef, parse_refs
from ..errors import DefinitionError, NotFoundError, ValidationError
from ..online.read import coerce_key, read_group
from ..online.response import OnlineResponse


@dataclass
class _GroupPlan:
    group: FeatureGroup
    features: list[str]          # feature names in the group
    outputs: list[str]           # column names in the response
    dtypes: list[str]


@dataclass
class _Plan:
    groups: list[_GroupPlan]
    join_keys: dict[str, str]    # key -> dtype, in first-use order
    outputs: list[str]           # feature columns in request order
    on_demand: list[Any] = field(default_factory=list)


class _DefinitionCache:
    """Resolved request plans per (features, full_feature_names), dropped whenever the
    registry file changes."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self._paths = [fs.config.registry_path, fs.config.registry_path + "-wal"]
        self._signature: tuple | None = None
        self._plans: dict[tuple, _Plan] = {}
        self._lock = threading.Lock()

    def _current_signature(self) -> tuple:
        sig: list[tuple[int, int] | None] = []
        for p in self._paths:
            try:
                st = os.stat(p)
                sig.append((st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                sig.append(None)
        return tuple(sig)

    def plan(self, features: Sequence[Any], full_feature_names: bool) -> _Plan:
        key = (tuple(features) if not isinstance(features, str) else (features,),
               bool(full_feature_names))
        sig = self._current_signature()
        with self._lock:
            if sig != self._signature:
                self._plans.clear()
                self._signature = sig
            plan = self._plans.get(key)
        if plan is None:
            plan = _build_plan(self.fs, key[0], full_feature_names)
            with self._lock:
                self._plans[key] = plan
        return plan


def _cache(fs: Any) -> _DefinitionCache:
    cache = fs.__dict__.get("_online_definition_cache")
    if cache is None:
        cache = fs.__dict__.setdefault("_online_definition_cache", _DefinitionCache(fs))
    return cache


def split_refs(fs: Any, refs: list[FeatureRef]) -> tuple[list[FeatureRef], list[FeatureRef]]:
    """Split requested refs into feature-group refs and on-demand refs.

    Refs whose group part names a registered on-demand transform (not a feature group)
    go in the second list (see ``sparkfs.ondemand``).
    """
    from ..ondemand import split_refs as _split

    return _split(fs, refs)


def _build_plan(fs: Any, features: Sequence[Any], full_feature_names: bool) -> _Plan:
    refs = parse_refs(features)
    group_refs, on_demand = split_refs(fs, refs)
    groups: dict[tuple[str, int], _GroupPlan] = {}
    join_keys: dict[str, str] = {}
    outputs: list[str] = []
    for ref in group_refs:
        g = fs.get_feature_group(ref.group, ref.version)  # NotFoundError names the group
        if not g.online:
            raise NotFoundError(f"feature group {g.name!r} version {g.version} is not served "
                                "online (online=False); read it with get_historical_features")
        gp = groups.get((g.name, g.version))
        if gp is None:
            gp = groups[(g.name, g.version)] = _GroupPlan(g, [], [], [])
            for k, d in g.key_dtypes.items():
                if join_keys.setdefault(k, d) != d:
                    raise DefinitionError(f"join key {k!r} is {join_keys[k]} in one requested "
                                          f"group and {d} in {g.name!r}")
        names = [f.name for f in g.features] if ref.feature == "*" else [ref.feature]
        for name in names:
            f = g.feature(name)  # NotFoundError names the feature and lists the others
            out = f"{g.name}__{name}" if full_feature_names else name
            if out in outputs:
                hint = "" if full_feature_names else "; pass full_feature_names=True"
                raise DefinitionError(f"feature {out!r} is requested twice{hint}")
            if out in join_keys:
                raise DefinitionError(f"feature {out!r} has the name of a join key; pass "
                                      "full_feature_names=True")
            outputs.append(out)
            gp.features.append(name)
            gp.outputs.append(out)
            gp.dtypes.append(f.dtype)
    if on_demand:
        return _plan_on_demand(fs, _Plan(list(groups.values()), join_keys, outputs), on_demand,
                               full_feature_names)
    return _Plan(list(groups.values()), join_keys, outputs, on_demand)


def _plan_on_demand(fs: Any, plan: _Plan, refs: list[FeatureRef], full: bool) -> _Plan:
    """Add the on-demand outputs and, as hidden columns, the features they read."""
    from ..ondemand import plan_on_demand

    od = plan_on_demand(fs, refs)
    for ref in od.group_refs:
        g = fs.get_feature_group(ref.group, ref.version)
        gp = next((p for p in plan.groups if (p.group.name, p.group.version) ==
                   (g.name, g.version)), None)
        if gp is None:
            gp = _GroupPlan(g, [], [], [])
            plan.groups.append(gp)
            for k, d in g.key_dtypes.items():
                if plan.join_keys.setdefault(k, d) != d:
                    raise DefinitionError(f"join key {k!r} is {plan.join_keys[k]} in one requested "
                                          f"group and {d} in {g.name!r}")
        if ref.feature not in gp.features:
            gp.features.append(ref.feature)
            gp.outputs.append(f"__od__{g.name}__{ref.feature}")
            gp.dtypes.append(g.feature(ref.feature).dtype)
    names = {}
    for tname, outs in od.outputs.items():
        for n in outs:
            out = f"{tname}__{n}" if full else n
            if out in plan.outputs or out in plan.join_keys:
                hint = "" if full else "; pass full_feature_names=True"
                raise DefinitionError(f"feature {out!r} is requested twice{hint}")
            plan.outputs.append(out)
            names[n] = out
    plan.on_demand = [od, names]
    return plan


def _compute_on_demand(plan: _Plan, columns: dict, rows: list, request_data: Any) -> None:
    """Run each on-demand transform once over all rows; results go into ``columns``.
    Request columns come from ``request_data``, else from the entity rows."""
    od, names = plan.on_demand
    frame: dict[str, Any] = {}
    for name in od.request_columns:
        if name in (request_data or {}):
            frame[name] = list(request_data[name])
        elif all(name in r for r in rows):
            frame[name] = [r[name] for r in rows]
    for gp in plan.groups:
        for feat, out in zip(gp.features, gp.outputs):
            if feat in od.feature_dtypes and feat not in frame:
                frame[feat] = columns[out][0]
    od.check_columns(frame, "request_data")
    for short, values in od.compute_values(frame).items():
        columns[names[short]] = (values, None, None, od.output_dtypes[short])


def get_online_features(fs: Any, features: Sequence[str],
                        entity_rows: Sequence[Mapping[str, Any]],
                        request_data: Mapping[str, Sequence[Any]] | None = None,
                        full_feature_names: bool = False,
                        now: dt.datetime | None = None) -> OnlineResponse:
    """Latest values of ``features`` (``"group:feature"`` refs) for each entity row.

    ``now`` (default: the current time) is the read time that ttl expiry is judged at.
    Unknown groups or features raise ``NotFoundError``; malformed rows or key values
    raise ``ValidationError`` naming the row and key.
    """
    plan = _cache(fs).plan(features, full_feature_names)
    rows = _check_rows(fs, entity_rows, request_data)
    keys: dict[str, list] = {}
    for k, dtype in plan.join_keys.items():
        col = []
        for i, row in enumerate(rows):
            try:
                value = row[k]
            except KeyError:
                raise ValidationError(f"entity row {i} has no value for join key {k!r} "
                                      f"(it has {sorted(row)})") from None
            col.append(coerce_key(value, dtype, k, i))
        keys[k] = col
    response = OnlineResponse(keys)
    if plan.on_demand:
        response.transform_fingerprints = {t.name: t.fingerprint
                                           for t in plan.on_demand[0].transforms}
    if not rows:
        empty = {out: dtype for gp in plan.groups for out, dtype in zip(gp.outputs, gp.dtypes)}
        if plan.on_demand:
            empty.update({out: plan.on_demand[0].output_dtypes[short]
                          for short, out in plan.on_demand[1].items()})
        for out in plan.outputs:
            response.add_feature(out, [], [], [], empty[out])
        return response
    now = now or dt.datetime.now(dt.UTC)
    columns: dict[str, tuple] = {}
    store = fs.online
    for gp in plan.groups:
        gkeys = list(zip(*(keys[k] for k in gp.group.join_keys)))
        values, statuses, times = read_group(store, gp.group, gkeys, gp.features, now)
        for i, out in enumerate(gp.outputs):
            columns[out] = (values[i], statuses[i], times[i], gp.dtypes[i])
    if plan.on_demand:
        _compute_on_demand(plan, columns, rows, request_data)
    for out in plan.outputs:
        v, s, t, d = columns[out]
        response.add_feature(out, v, s, t, d)
    return response


def _check_rows(fs: Any, entity_rows: Any, request_data: Any) -> list[Mapping[str, Any]]:
    if isinstance(entity_rows, Mapping) or not isinstance(entity_rows, Sequence):
        raise ValidationError("entity_rows must be a list of dicts like [{'origin': 'JFK'}]")
    limit = fs.config.serving.max_batch_size
    if len(entity_rows) > limit:
        raise ValidationError(f"{len(entity_rows)} entity rows exceed serving.max_batch_size="
                              f"{limit}; split the request")
    for i, row in enumerate(entity_rows):
        if type(row) is not dict and not isinstance(row, abc.Mapping):
            raise ValidationError(f"entity row {i} is {type(row).__name__}, not a dict")
    if request_data is not None:
        if not isinstance(request_data, Mapping):
            raise ValidationError("request_data must be a dict of column -> list of values")
        for name, values in request_data.items():
            if len(values) != len(entity_rows):
                raise ValidationError(f"request_data column {name!r} has {len(values)} values "
                                      f"for {len(entity_rows)} entity rows")
    return list(entity_rows)
