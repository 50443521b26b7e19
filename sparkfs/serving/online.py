"""``get_online_features``: the latest feature values for entity rows, in-process.

It takes what it uses: a ``Catalog`` (definitions, with the code of on-demand
transforms) and an ``OnlineStore`` (the values); ``serving`` is the config section with
the batch limit and the plan cache's size and refresh. Resolved request plans are cached
in the catalog (``catalog.cache("online_plans")``), refreshed only when the registry file
changes (a ``stat``, no SQLite query per request). Several groups per call; see
``sparkfs.online.read`` for how request key values are checked and
``sparkfs.online.response`` for statuses. This module never imports pyspark.

>>> import tempfile, os, datetime as dt, pyarrow as pa
>>> from sparkfs import Entity, Field, FeatureGroup
>>> from sparkfs.catalog import Catalog
>>> from sparkfs.online.sqlite import SqliteOnlineStore
>>> from sparkfs.registry import Registry
>>> d = tempfile.mkdtemp()
>>> catalog = Catalog(Registry(os.path.join(d, "registry.db")))
>>> online = SqliteOnlineStore(os.path.join(d, "online.db"))
>>> g = FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
...                  [Field("temp", "double")])
>>> _ = catalog.apply([g])
>>> _ = online.write_batch(g, pa.table({"origin": ["JFK"], "temp": [39.0],
...     "time_hour": [dt.datetime(2013, 1, 1, 5, tzinfo=dt.timezone.utc)]}))
>>> get_online_features(catalog, online, ["weather:temp"],
...                     [{"origin": "JFK"}, {"origin": "EWR"}]).to_dict()
{'origin': ['JFK', 'EWR'], 'temp': [39.0, None]}
>>> online.close()
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict, abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..catalog import Catalog
from ..config import ServingConfig
from ..definitions import FeatureGroup
from ..errors import NotFoundError, RegistryUnavailableError, ValidationError
from ..online.base import OnlineStore
from ..online.read import coerce_key, read_group
from ..online.response import OnlineResponse
from ..registry_files import file_stats
from ..registry_sql import is_url


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
    on_demand: list[Any] = field(default_factory=list)  # [OnDemandPlan, {output: column}]
    key_columns: dict[str, str] = field(default_factory=dict)  # join key -> entity-row column
    dtypes: dict[str, str] = field(default_factory=dict)  # output column -> dtype
    od_inputs: dict[str, str] = field(default_factory=dict)  # feature a transform reads -> column


class _DefinitionCache:
    """Resolved request plans per (features, view, full_feature_names): at most
    ``serving.plan_cache_size`` of them, least recently used dropped first, all rebuilt
    after the registry file changes (a ``stat`` per call, so an ``apply`` in this process
    is seen at once; within ``fs.predict`` it reuses the deployment cache's stat,
    ``sparkfs.registry_files.one_look``; with a PostgreSQL registry, once per
    ``serving.registry_refresh_s``).
    When the registry cannot be read (locked, read-only disk, database down) a plan built
    before keeps serving. The limits are the ``serving`` section of each call."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        location = catalog.registry.path  # the SQLite file, or the URL without its password
        self._paths = (location, location + "-wal")
        self._remote = is_url(location)  # PostgreSQL: no file to stat
        self._signature: tuple | None = None
        self._plans: OrderedDict[tuple, tuple[tuple | None, _Plan]] = OrderedDict()
        self._lock = threading.Lock()

    def _current_signature(self, serving: ServingConfig) -> tuple:
        if self._remote:  # plans are re-read once per serving.registry_refresh_s
            every = serving.registry_refresh_s
            return (time.monotonic_ns() if every <= 0 else int(time.monotonic() // every),)
        # an empty WAL (a reader may create one) holds no change: same as none
        return tuple(st if st is not None and st[1] else None
                     for st in file_stats(self._paths))  # once per prediction (one_look)

    @staticmethod
    def _key(features: Sequence[Any] | None, full_feature_names: bool, view: Any) -> tuple:
        if features is not None:
            features = tuple(features) if not isinstance(features, str) else (features,)
        vkey = view if view is None or isinstance(view, str) else repr(view.to_spec())
        return (features, vkey, bool(full_feature_names))

    def plan(self, features: Sequence[Any] | None, full_feature_names: bool,
             view: Any, serving: ServingConfig) -> _Plan:
        key = self._key(features, full_feature_names, view)
        sig = self._current_signature(serving)
        with self._lock:
            self._signature = sig
            hit = self._plans.get(key)
            if hit is not None:
                self._plans.move_to_end(key)
                if hit[0] == sig:
                    return hit[1]
        try:
            plan = _build_plan(self.catalog, key[0], full_feature_names, view)
        except RegistryUnavailableError:
            if hit is None:
                raise
            return hit[1]  # the registry is locked or unreadable: the plan known before
        with self._lock:
            self._plans[key] = (sig, plan)
            self._plans.move_to_end(key)
            while len(self._plans) > serving.plan_cache_size:
                self._plans.popitem(last=False)
        return plan

    def __len__(self) -> int:
        return len(self._plans)


def plan_cache(catalog: Catalog) -> _DefinitionCache:
    """The serving plan cache of ``catalog`` (made on first use; ``len()`` is its size).

    >>> import tempfile, os
    >>> from sparkfs.registry import Registry
    >>> len(plan_cache(Catalog(Registry(os.path.join(tempfile.mkdtemp(), "r.db")))))
    0
    """
    return catalog.cache("online_plans", lambda: _DefinitionCache(catalog))


def _build_plan(catalog: Catalog, features: Sequence[Any] | None, full_feature_names: bool,
                view: Any = None) -> _Plan:
    """The request resolved by ``sparkfs.request`` (the resolver training sets use too),
    arranged for online reads."""
    from ..request import resolve

    req = resolve(catalog, features, view=view, full_feature_names=full_feature_names)
    groups = []
    for gr in req.groups:
        g = gr.group
        if not g.online:
            raise NotFoundError(f"feature group {g.name!r} version {g.version} is not served "
                                "online (online=False); read it with get_historical_features")
        groups.append(_GroupPlan(g, list(gr.features), list(gr.columns), gr.dtypes))
    plan = _Plan(groups, dict(req.join_keys), list(req.columns),
                 key_columns={k: req.key_column(k) for k in req.join_keys},
                 dtypes=dict(req.dtypes))
    od = req.on_demand
    if od is not None:
        plan.on_demand = [od, dict(req.on_demand_columns)]
        for ref in od.group_refs:
            label = req.ref_labels[(ref.group, ref.version)]
            gr = next(g for g in req.groups if g.label == label)
            plan.od_inputs[ref.feature] = gr.columns[gr.features.index(ref.feature)]
    return plan


def feature_columns(catalog: Catalog, features: Sequence[str], full_feature_names: bool = False,
                    *, serving: ServingConfig | None = None) -> list[tuple[str, str]]:
    """The (column, dtype) pairs an online read of ``features`` answers with, in order
    (what a model logged on those features takes as inputs); reads no values.

    >>> import tempfile, os
    >>> from sparkfs import Entity, Field, FeatureGroup
    >>> from sparkfs.registry import Registry
    >>> catalog = Catalog(Registry(os.path.join(tempfile.mkdtemp(), "registry.db")))
    >>> _ = catalog.apply([FeatureGroup("weather", [Entity("airport", ["origin"])], "t",
    ...                                 [Field("temp", "double")])])
    >>> feature_columns(catalog, ["weather:temp"], full_feature_names=True)
    [('weather__temp', 'double')]
    """
    plan = plan_cache(catalog).plan(features, full_feature_names, None,
                                    serving if serving is not None else ServingConfig())
    return [(out, plan.dtypes[out]) for out in plan.outputs]


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
    for feat, out in plan.od_inputs.items():
        frame[feat] = columns[out][0]
    od.check_columns(frame, "request_data")
    for short, values in od.compute_values(frame).items():
        columns[names[short]] = (values, None, None, od.output_dtypes[short])


def get_online_features(catalog: Catalog, online: OnlineStore,
                        features: Sequence[str] | None,
                        entity_rows: Sequence[Mapping[str, Any]] | None,
                        request_data: Mapping[str, Sequence[Any]] | None = None,
                        full_feature_names: bool = False, *, view: Any = None,
                        serving: ServingConfig | None = None,
                        now: dt.datetime | None = None) -> OnlineResponse:
    """Latest values of ``features`` (``"group:feature"`` refs) or of a feature ``view``
    for each entity row, read from ``online`` with the definitions of ``catalog``. A
    view's ``key_map`` names the entity-row column of each join key.

    ``serving`` is the ``serving`` config section (``max_batch_size``, the plan cache's
    ``plan_cache_size`` and ``registry_refresh_s``; ``FeatureStore`` passes its own,
    None means the documented defaults). ``now`` (default: the current time) is the read
    time that ttl expiry is judged at. Unknown groups or features raise
    ``NotFoundError``; malformed rows or key values raise ``ValidationError`` naming the
    row and key. See the module docstring for an example.
    """
    serving = serving if serving is not None else ServingConfig()
    plan = plan_cache(catalog).plan(features, full_feature_names, view, serving)
    if entity_rows is None:
        raise ValidationError("entity_rows is required: a list of dicts like [{'origin': 'JFK'}]")
    rows = _check_rows(serving.max_batch_size, entity_rows, request_data)
    keys: dict[str, list] = {}
    row_keys: dict[str, list] = {}
    for k, dtype in plan.join_keys.items():
        name = plan.key_columns.get(k, k)
        col = []
        for i, row in enumerate(rows):
            try:
                value = row[name]
            except KeyError:
                what = f"join key {k!r}" + (f" (column {name!r})" if name != k else "")
                raise ValidationError(f"entity row {i} has no value for {what} "
                                      f"(it has {sorted(row)})") from None
            col.append(coerce_key(value, dtype, name, i))
        keys[k] = col
        row_keys[name] = col
    response = OnlineResponse(row_keys)
    if plan.on_demand:
        response.transform_fingerprints = {t.name: t.fingerprint
                                           for t in plan.on_demand[0].transforms}
    if not rows:
        for out in plan.outputs:
            response.add_feature(out, [], [], [], plan.dtypes[out])
        return response
    now = now or dt.datetime.now(dt.UTC)
    columns: dict[str, tuple] = {}
    for gp in plan.groups:
        gkeys = list(zip(*(keys[k] for k in gp.group.join_keys)))
        values, statuses, times = read_group(online, gp.group, gkeys, gp.features, now)
        for i, out in enumerate(gp.outputs):
            columns[out] = (values[i], statuses[i], times[i], gp.dtypes[i])
    if plan.on_demand:
        _compute_on_demand(plan, columns, rows, request_data)
    for out in plan.outputs:
        v, s, t, d = columns[out]
        response.add_feature(out, v, s, t, d)
    return response


def _check_rows(limit: int, entity_rows: Any, request_data: Any) -> list[Mapping[str, Any]]:
    if isinstance(entity_rows, Mapping) or not isinstance(entity_rows, Sequence):
        raise ValidationError("entity_rows must be a list of dicts like [{'origin': 'JFK'}]")
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
