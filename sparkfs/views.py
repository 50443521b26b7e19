"""``FeatureView``: a named, versioned selection of the features a model consumes.

A view lists feature references — ``"group:feature"``, ``"group@2:feature"``,
``"group:*"`` and on-demand outputs ``"transform:output"`` / ``"transform:*"`` — plus an
optional ``key_map`` (join key -> the entity-row / spine column holding it) and metadata.
It is registered with ``fs.apply([view])`` under the same rules as a feature group: an
identical re-apply is a no-op, a change of *structure* (``features``, ``key_map``) needs
a new version, and the metadata (description, owner, tags) may change freely. Online
reads and training sets resolve a view through one resolver (``sparkfs.request``), so both
give the same column names, order and dtypes.

A view holds no connection and imports no engine; ``sparkfs.definitions`` re-exports it.

>>> view = FeatureView("flight_delay", features=["weather:temp", "planes@2:seats"],
...                    key_map={"origin": "airport"}, owner="ml-team")
>>> view.label, view.features
('flight_delay@1', ('weather:temp', 'planes@2:seats'))
>>> FeatureView.from_spec(view.to_spec()) == view
True
>>> FeatureView("v", features=["weather:temp", "weather:temp"])
Traceback (most recent call last):
...
sparkfs.errors.DefinitionError: feature view 'v' lists 'weather:temp' twice; list each reference once
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .definitions import FeatureGroup, FeatureRef, _check_tags, check_name
from .errors import DefinitionError

#: Parts of a view's spec that fix what a model receives (a change needs a new version).
STRUCTURAL = ("features", "key_map")


def _ref_text(item: Any, view: str) -> str:
    """One feature reference as canonical text; a FeatureGroup means all of its features
    (``"group@v:*"``), an on-demand transform all of its outputs (``"transform:*"``)."""
    if isinstance(item, FeatureGroup):
        return f"{item.name}@{item.version}:*"
    if getattr(item, "registry_kind", None) == "on_demand":
        return f"{item.name}:*"
    try:
        return str(FeatureRef.parse(item))
    except DefinitionError as exc:
        raise DefinitionError(f"feature view {view!r}: {exc}") from None


class FeatureView:
    """A named, versioned list of feature references a model consumes (module docstring).

    >>> v = FeatureView("delay_features", version=2, features=["weather:*", "dep_calendar:hour"])
    >>> v.to_spec()["features"]
    ['weather:*', 'dep_calendar:hour']
    """

    registry_kind = "feature_view"

    def __init__(self, name: str, version: int = 1, features: Sequence[Any] = (),
                 key_map: Mapping[str, str] | None = None, description: str = "",
                 owner: str = "", tags: Mapping[str, str] | None = None) -> None:
        self.name = check_name(name, "feature view")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise DefinitionError(
                f"feature view {name!r} has version {version!r}; versions are integers >= 1")
        self.version = version
        if isinstance(features, (str, FeatureRef)):
            features = [features]
        refs = tuple(_ref_text(f, name) for f in features)
        if not refs:
            raise DefinitionError(f"feature view {name!r} lists no features: pass "
                                  "features=['group:feature', ...]")
        for r in refs:
            if refs.count(r) > 1:
                raise DefinitionError(f"feature view {name!r} lists {r!r} twice; list each "
                                      "reference once")
        self.features = refs
        if key_map is not None and not isinstance(key_map, Mapping):
            raise DefinitionError(f"feature view {name!r}: key_map must map join keys to column "
                                  f"names, got {key_map!r}")
        self.key_map = {check_name(k, f"join key in key_map of view {name!r}"):
                        check_name(v, f"column in key_map of view {name!r}")
                        for k, v in dict(key_map or {}).items()}
        self.description = description or ""
        self.owner = owner or ""
        self.tags = _check_tags(tags or {}, f"feature view {name!r}")

    @property
    def label(self) -> str:
        """``"name@version"``, as training-set manifests and deployments record it."""
        return f"{self.name}@{self.version}"

    @property
    def refs(self) -> list[FeatureRef]:
        """The parsed references, in view order."""
        return [FeatureRef.parse(r) for r in self.features]

    def to_spec(self) -> dict:
        """A JSON-able description; the registry stores it and compares it."""
        return {"name": self.name, "version": self.version, "features": list(self.features),
                "key_map": dict(self.key_map), "description": self.description,
                "owner": self.owner, "tags": dict(self.tags)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "FeatureView":
        """Rebuild from ``to_spec``."""
        return cls(spec["name"], spec.get("version", 1), spec["features"],
                   spec.get("key_map") or None, spec.get("description", ""),
                   spec.get("owner", ""), spec.get("tags", {}))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureView) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    def __repr__(self) -> str:
        return (f"FeatureView(name={self.name!r}, version={self.version}, "
                f"features={list(self.features)}, key_map={self.key_map})")


def parse_view_label(text: str) -> tuple[str, int | None]:
    """``"name"`` or ``"name@version"`` -> ``(name, version or None)``.

    >>> parse_view_label("flight_delay@2"), parse_view_label("flight_delay")
    (('flight_delay', 2), ('flight_delay', None))
    """
    if not isinstance(text, str):
        raise DefinitionError(f"a feature view is named by a string like 'name' or 'name@2', "
                              f"got {text!r}")
    name, sep, version = text.partition("@")
    if sep and not version.isdigit():
        raise DefinitionError(f"feature view {text!r} is malformed: write 'name' or 'name@2'")
    return check_name(name, "feature view"), int(version) if sep else None


__all__ = ["FeatureView", "parse_view_label", "STRUCTURAL"]
