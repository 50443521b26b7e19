"""``Catalog``: the registry plus the code loaded in this process.

The registry stores definitions (specs); the code of a transform lives only in the
process that imported it. The catalog pairs the two: a feature group applied (or
attached) here comes back *with* its transforms, an on-demand transform with its
function, and a definition whose code differs from the registered one is never
mixed in. It also keeps the serving plan cache. Capability modules take a catalog
(what they look up) instead of the whole ``FeatureStore``.

>>> import tempfile, os
>>> from sparkfs import Entity, Field, FeatureGroup, FeatureView
>>> from sparkfs.registry import Registry
>>> catalog = Catalog(Registry(os.path.join(tempfile.mkdtemp(), "registry.db")))
>>> g = FeatureGroup("weather", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
>>> catalog.apply([g, FeatureView("delay", features=["weather:temp"])]).created
['feature_group:weather@1', 'feature_view:delay@1', 'entity:airport']
>>> catalog.get_group("weather@1") is g, catalog.get_view("delay").label
(True, 'delay@1')
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .definitions import Entity, FeatureGroup, parse_versioned_name
from .errors import CodeNotLoadedError, DefinitionError, NotFoundError, TransformError
from .registry import ApplyResult, Registry
from .views import FeatureView, parse_view_label

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from .transforms import Transform

SparkProvider = Callable[[], "SparkSession"]
"""How capability modules get Spark: called only when Spark is needed (a facade's
``lambda: fs.spark`` starts or finds the session lazily)."""


class Catalog:
    """Definitions from ``registry``, with the code of the ones applied in this process.

    >>> import tempfile, os
    >>> from sparkfs.registry import Registry
    >>> Catalog(Registry(os.path.join(tempfile.mkdtemp(), "r.db"))).list_groups()
    []
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._live: dict[tuple[str, str, int], Any] = {}
        self._lock = threading.Lock()
        self._caches: dict[str, Any] = {}

    # -- definitions ----------------------------------------------------------------------
    def apply(self, objects: Iterable[Any]) -> ApplyResult:
        """Register ``objects`` (one registry transaction; a group brings its entities)
        and keep their code for this process. See ``FeatureStore.apply``."""
        objs = list(objects)
        entities = {o.name for o in objs if isinstance(o, Entity)}
        for g in [o for o in objs if isinstance(o, FeatureGroup)]:
            for e in g.entities:
                if e.name not in entities:
                    objs.append(e)
                    entities.add(e.name)
        result = self.registry.apply(objs)
        with self._lock:
            for o in objs:
                self._live[_live_key(o)] = o
        return result

    def attach(self, objects: Iterable[Any]) -> list[str]:
        """Give this process the code of already-registered objects (e.g. the repo the
        online service imports) without changing the registry. Refuses an on-demand
        transform that is not registered or whose code differs; skips groups that are not
        registered or differ. Returns the labels attached.

        >>> import tempfile, os
        >>> from sparkfs.registry import Registry
        >>> Catalog(Registry(os.path.join(tempfile.mkdtemp(), "r.db"))).attach([])
        []
        """
        attached = []
        for o in objects:
            kind = getattr(o, "registry_kind", None)
            if kind == "on_demand":
                spec = self.registry.get("on_demand", o.name)
                if spec is None:
                    raise NotFoundError(f"on-demand transform {o.name!r} is not registered: run "
                                        "`sparkfs apply <repo>` first")
                if spec.get("fingerprint") != o.fingerprint:
                    raise TransformError(
                        f"on-demand transform {o.name!r}: the repo's code (fingerprint "
                        f"{o.fingerprint}) differs from the registered one "
                        f"({spec.get('fingerprint')}); run `sparkfs apply <repo>` so training "
                        "and serving use the same code")
                with self._lock:
                    self._live[_live_key(o)] = o
                attached.append(f"on_demand:{o.name}")
            elif isinstance(o, FeatureGroup):
                try:
                    registered = self.registry.get_group(o.name, o.version)
                except NotFoundError:
                    continue  # not served; nothing to attach
                if registered.to_spec() == o.to_spec():
                    with self._lock:
                        self._live[_live_key(o)] = o
                    attached.append(f"feature_group:{o.name}@{o.version}")
        return attached

    def get_group(self, name: str | FeatureGroup, version: int | None = None) -> FeatureGroup:
        """A registered feature group (latest version unless ``version`` or
        ``"name@version"``), with its code when this process loaded it."""
        if isinstance(name, FeatureGroup):
            return self.get_group(name.name, name.version)
        if "@" in name and version is None:
            name, version = parse_versioned_name(name)
        return self._with_code(self.registry.get_group(name, version))

    def list_groups(self, latest_only: bool = False) -> list[FeatureGroup]:
        """Every registered feature group version (or each name's latest), with code."""
        groups = [self._with_code(g) for g in self.registry.list_groups()]
        if latest_only:
            latest: dict[str, FeatureGroup] = {}
            for g in groups:
                latest[g.name] = g
            groups = list(latest.values())
        return groups

    def get_view(self, view: str | FeatureView, version: int | None = None) -> FeatureView:
        """The registered view named by ``view``: ``"name"`` (latest), ``"name@2"``, a name
        with ``version``, or a ``FeatureView`` (which must equal its registered copy)."""
        if isinstance(view, FeatureView):
            registered = self.registry.get_view(view.name, view.version)
            if registered.to_spec() != view.to_spec():
                raise DefinitionError(
                    f"feature view {view.label} differs from its registered definition; apply "
                    "it (fs.apply([view])) or bump its version")
            return registered
        if version is not None:
            return self.registry.get_view(view, version)
        name, v = parse_view_label(view)
        return self.registry.get_view(name, v)

    def list_views(self) -> list[FeatureView]:
        """Every registered feature view version, by name then version."""
        return self.registry.list_views()

    # -- on-demand transforms -------------------------------------------------------------
    def is_on_demand(self, name: str) -> bool:
        """True when ``name`` is a registered on-demand transform (not a feature group)."""
        registered = self.registry.get("on_demand", name) is not None
        if registered and self.registry.get("feature_group", name) is not None:
            raise DefinitionError(f"{name!r} is both a feature group and an on-demand "
                                  "transform; rename one of them")
        return registered

    def get_on_demand(self, name: str) -> Transform:
        """The on-demand transform ``name`` with its code, checked against the registry."""
        spec = self.registry.get("on_demand", name)
        if spec is None:
            raise NotFoundError(f"on-demand transform {name!r} is not registered: "
                                f"fs.apply([{name}])")
        t = self._live.get(("on_demand", name, 0))
        if t is None:
            raise CodeNotLoadedError(
                f"on-demand transform {name!r} is registered "
                f"({spec.get('source') or 'source unknown'}) but its code is not imported in "
                "this process: import the repo that defines it and apply it (fs.apply([...]), "
                "or `sparkfs serve --repo <repo.py>`)")
        if spec.get("fingerprint") != t.fingerprint:
            raise CodeNotLoadedError(
                f"on-demand transform {name!r}: the imported code (fingerprint "
                f"{t.fingerprint}) differs from the registered one ({spec.get('fingerprint')}); "
                "apply the repo again so training and serving use the same code")
        return t

    # -- caches ---------------------------------------------------------------------------
    def cache(self, name: str, make: Callable[[], Any]) -> Any:
        """The process-wide cache ``name`` (e.g. the serving plan cache), made once."""
        with self._lock:
            c = self._caches.get(name)
            if c is None:
                c = self._caches[name] = make()
            return c

    def _with_code(self, group: FeatureGroup) -> FeatureGroup:
        live = self._live.get(_live_key(group))
        if live is not None and live.to_spec() == group.to_spec():
            return live
        return group


def _live_key(o: Any) -> tuple[str, str, int]:
    if isinstance(o, FeatureGroup):
        return ("feature_group", o.name, o.version)
    kind = getattr(o, "registry_kind", None) or type(o).__name__
    return (kind, o.name, getattr(o, "version", 0) or 0)


__all__ = ["Catalog", "SparkProvider"]
