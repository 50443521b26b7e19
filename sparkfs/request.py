"""One resolver for training and serving: references or a view -> columns, dtypes, groups.

``resolve(catalog, features=..., view=...)`` is called by the online path
(``sparkfs.serving.online``) and by training sets (``sparkfs.training.plan``), so a request
gives the same column names, order and dtypes on both paths. The rules:

* **Order**: request (or view) order; ``"group:*"`` expands in the group's feature order,
  ``"transform:*"`` in the transform's output order. A reference repeated (also through
  ``*``) is kept once, at its first position.
* **Names**: a group feature is named ``feature``; an on-demand output ``output``. With
  ``full_feature_names=True`` they are ``{group}__{feature}`` and ``{transform}__{output}``;
  when one request reads two versions of a group, that group's features are named
  ``{group}_v{version}__{feature}``.
* **Clashes**: two outputs with one name, or an output named like a join key / spine
  column, are refused (``DefinitionError`` naming both and the fix). Two versions of one
  group are accepted whenever their names do not clash (distinct features, or
  ``full_feature_names=True``).
* **Dtypes**: a group feature has its declared dtype, an on-demand output its transform's
  declared dtype — the same strings on both paths.
* Group features that on-demand transforms read but nobody asked for are fetched under
  internal names (``__od__{group}_v{version}__{feature}``) and never returned.
* ``key_map`` (join key -> entity-row / spine column) comes from the view, updated by
  the call's; a key_map entry no requested group joins on is refused.

This module never imports pyspark.

>>> import tempfile
>>> from sparkfs import FeatureStore, Entity, Field, FeatureGroup, FeatureView
>>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
>>> airport = Entity("airport", ["origin"])
>>> w1 = FeatureGroup("weather", [airport], "t", [Field("temp", "double")])
>>> w2 = FeatureGroup("weather", [airport], "t", [Field("temp", "double")], version=2)
>>> _ = fs.apply([w1, w2, FeatureView("v", features=["weather@1:temp", "weather@2:temp"])])
>>> r = resolve(fs.catalog, view="v", full_feature_names=True)
>>> r.columns, r.dtypes["weather_v2__temp"], r.view_label
(['weather_v1__temp', 'weather_v2__temp'], 'double', 'v@1')
>>> resolve(fs.catalog, view="v")
Traceback (most recent call last):
...
sparkfs.errors.DefinitionError: feature 'temp' is requested twice; pass full_feature_names=True to name features '{group}__{feature}' (weather@1:temp and weather@2:temp)
"""  # noqa: E501 (doctest output)

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .definitions import FeatureGroup, FeatureRef, parse_refs
from .errors import DefinitionError, NotFoundError
from .views import FeatureView

if TYPE_CHECKING:  # pragma: no cover
    from .catalog import Catalog

__all__ = ["GroupRead", "Resolved", "resolve", "check_view", "HIDDEN_PREFIX"]

#: Prefix of the internal columns holding features only on-demand transforms read.
HIDDEN_PREFIX = "__od__"


@dataclass
class GroupRead:
    """One feature group version to read: its features, their output columns (internal
    names for hidden ones), and which join key is read from which row/spine column."""

    group: FeatureGroup
    features: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    hidden: list[bool] = field(default_factory=list)
    key_columns: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.group.name}@{self.group.version}"

    @property
    def dtypes(self) -> list[str]:
        return [self.group.feature(f).dtype for f in self.features]


@dataclass
class Resolved:
    """What one request asks for, resolved against the registry (module docstring)."""

    groups: list[GroupRead]
    columns: list[str]                   # output feature columns, in order
    dtypes: dict[str, str]               # output column -> dtype
    sources: dict[str, str]              # output column -> "group@v:feature" / "transform:output"
    join_keys: dict[str, str]            # join key -> dtype, in first-use order
    key_map: dict[str, str]              # join key -> row/spine column (only non-identity)
    on_demand: Any = None                # sparkfs.ondemand.OnDemandPlan or None
    on_demand_columns: dict[str, str] = field(default_factory=dict)  # output -> column
    refs: list[FeatureRef] = field(default_factory=list)  # the requested references
    ref_labels: dict = field(default_factory=dict)  # (group, version as written) -> "g@v"
    view: FeatureView | None = None
    full_feature_names: bool = False

    @property
    def view_label(self) -> str | None:
        return self.view.label if self.view is not None else None

    @property
    def pinned_refs(self) -> list[str]:
        """The requested references with each group's version made explicit."""
        out = []
        for r in self.refs:
            label = self.ref_labels.get((r.group, r.version))
            out.append(f"{label}:{r.feature}" if label else str(r))
        return out

    def key_column(self, key: str) -> str:
        """The entity-row / spine column holding join key ``key``."""
        return self.key_map.get(key, key)

    @property
    def hidden_columns(self) -> set[str]:
        return {c for g in self.groups for c, h in zip(g.columns, g.hidden) if h}


def resolve(catalog: Catalog, features: Sequence[Any] | None = None, view: Any = None,
            full_feature_names: bool = False, key_map: Mapping[str, str] | None = None,
            reserved: Mapping[str, str] | None = None) -> Resolved:
    """Resolve references (or a view) against the registry (module docstring).

    ``reserved`` maps column names outputs must not take (spine columns, entity-row keys)
    to a description used in the error.
    """
    from .ondemand import plan_on_demand, split_refs

    v = None
    if view is not None:
        if features is not None:
            raise DefinitionError("pass either features=[...] or view=..., not both")
        v = catalog.get_view(view)
        refs = v.refs
    elif features is None:
        raise DefinitionError("no features requested: pass features=['group:feature', ...] "
                              "or view='view_name'")
    else:
        refs = parse_refs(features)
    kmap = dict(v.key_map if v is not None else {})
    for k, c in dict(key_map or {}).items():
        if not isinstance(k, str) or not isinstance(c, str):
            raise DefinitionError(f"key_map must map join key names to column names; got "
                                  f"{k!r}: {c!r}")
        kmap[k] = c
    group_refs, od_refs = split_refs(catalog, refs)
    od = plan_on_demand(catalog, od_refs) if od_refs else None

    reads: dict[str, GroupRead] = {}
    ref_labels: dict = {}
    join_keys: dict[str, str] = {}
    wanted: list[tuple[str, Any, str]] = []  # (kind, group read or transform, feature/output)

    def read_of(name: str, version: int | None) -> GroupRead:
        g = catalog.get_group(name, version)  # NotFoundError names the group
        ref_labels[(name, version)] = f"{g.name}@{g.version}"
        gr = reads.get(f"{g.name}@{g.version}")
        if gr is None:
            gr = reads[f"{g.name}@{g.version}"] = GroupRead(g)
            for k, d in g.key_dtypes.items():
                if join_keys.setdefault(k, d) != d:
                    raise DefinitionError(f"join key {k!r} is {join_keys[k]} in one requested "
                                          f"group and {d} in {g.name!r}")
                gr.key_columns[k] = kmap.get(k, k)
        return gr

    od_refs_set = {id(r) for r in od_refs}
    od_transforms = od.transforms if od is not None else []
    od_dtypes = od.output_dtypes if od is not None else {}
    for ref in refs:
        if id(ref) in od_refs_set:
            t = next(t for t in od_transforms if t.name == ref.group)
            names = t.output_names if ref.feature == "*" else [ref.feature]
            wanted += [("od", t, n) for n in names]
            continue
        gr = read_of(ref.group, ref.version)
        names = ([f.name for f in gr.group.features] if ref.feature == "*"
                 else [gr.group.feature(ref.feature).name])  # NotFoundError lists features
        wanted += [("group", gr, n) for n in names]
    # keep each wanted feature once, at its first position
    seen_w: set = set()
    unique = []
    for kind, owner, n in wanted:
        key = (kind, owner.label if kind == "group" else owner.name, n)
        if key not in seen_w:
            seen_w.add(key)
            unique.append((kind, owner, n))
    explicit_versions: dict[str, set] = {}
    for kind, owner, _ in unique:
        if kind == "group":
            explicit_versions.setdefault(owner.group.name, set()).add(owner.group.version)

    taken: dict[str, str] = dict(reserved or {})
    for k in join_keys:
        taken.setdefault(kmap.get(k, k), f"join key {k!r}")
    outputs: dict[str, str] = {}  # column -> source
    columns: list[str] = []
    dtypes: dict[str, str] = {}
    od_columns: dict[str, str] = {}
    for kind, owner, n in unique:
        if kind == "group":
            g = owner.group
            source = f"{g.name}@{g.version}:{n}"
            if not full_feature_names:
                col = n
            elif len(explicit_versions[g.name]) > 1:
                col = f"{g.name}_v{g.version}__{n}"
            else:
                col = f"{g.name}__{n}"
            dtype = g.feature(n).dtype
        else:
            source = f"{owner.name}:{n}"
            col = f"{owner.name}__{n}" if full_feature_names else n
            dtype = od_dtypes[n]
        _claim(col, source, outputs, taken, full_feature_names)
        outputs[col] = source
        columns.append(col)
        dtypes[col] = dtype
        if kind == "group":
            owner.features.append(n)
            owner.columns.append(col)
            owner.hidden.append(False)
        else:
            od_columns[n] = col
    if od is not None:  # features the transforms read, fetched under internal names
        for ref in od.group_refs:
            gr = read_of(ref.group, ref.version)
            if ref.feature not in gr.features:
                gr.group.feature(ref.feature)
                gr.features.append(ref.feature)
                gr.columns.append(f"{HIDDEN_PREFIX}{gr.group.name}_v{gr.group.version}__"
                                  f"{ref.feature}")
                gr.hidden.append(True)
    unused = sorted(set(kmap) - set(join_keys))
    if unused:
        raise DefinitionError(
            f"key_map names {unused}, which no requested feature group joins on (their join "
            f"keys: {sorted(join_keys)})")
    return Resolved(list(reads.values()), columns, dtypes, outputs, join_keys,
                    {k: c for k, c in kmap.items() if k != c}, od, od_columns, list(refs),
                    ref_labels, v, bool(full_feature_names))


def _claim(col: str, source: str, outputs: dict, taken: Mapping[str, str], full: bool) -> None:
    hint = ("; pass full_feature_names=True to name features '{group}__{feature}'"
            if not full else "; rename one of them")
    if col in outputs:
        raise DefinitionError(f"feature {col!r} is requested twice{hint} ({outputs[col]} and "
                              f"{source})")
    if col in taken:
        raise DefinitionError(f"feature {col!r} ({source}) has the name of {taken[col]}"
                              + (hint if not full else "; rename that column"))


def check_view(view: FeatureView, get_group: Callable[[str, int | None], FeatureGroup],
               get_on_demand: Callable[[str], dict | None]) -> None:
    """Refuse a view whose references do not exist (apply time; no code needed).

    ``get_group(name, version)`` returns a group or raises ``NotFoundError``;
    ``get_on_demand(name)`` returns an on-demand transform's registry spec or None.
    """
    keys: set[str] = set()

    def group_feature(ref: FeatureRef, why: str) -> None:
        try:
            g = get_group(ref.group, ref.version)
            if ref.feature != "*":
                g.feature(ref.feature)
        except NotFoundError as exc:
            raise NotFoundError(f"feature view {view.label}: {why}{exc}") from None
        keys.update(g.join_keys)

    for ref in view.refs:
        spec = get_on_demand(ref.group)
        if spec is None:
            group_feature(ref, "")
            continue
        if ref.version is not None:
            raise DefinitionError(f"feature view {view.label}: on-demand transform "
                                  f"{ref.group!r} has no versions; write '{ref.group}:"
                                  f"{ref.feature}'")
        outputs = [o["name"] for o in spec.get("outputs", [])]
        if ref.feature != "*" and ref.feature not in outputs:
            raise NotFoundError(f"feature view {view.label}: on-demand transform {ref.group!r} "
                                f"has no output {ref.feature!r}; it has: {', '.join(outputs)}")
        for r in (spec.get("features") or {}).values():
            group_feature(FeatureRef.parse(r), f"on-demand transform {ref.group!r} reads {r}: ")
    unused = sorted(set(view.key_map) - keys)
    if unused:
        raise DefinitionError(f"feature view {view.label}: key_map names {unused}, which no "
                              f"feature group of the view joins on (their join keys: "
                              f"{sorted(keys)})")
