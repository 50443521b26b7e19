"""The registry: persisted, versioned definitions, readable without Spark.

Definitions are stored as JSON specs in one SQLite file (WAL mode). ``apply`` runs in a
single ``BEGIN IMMEDIATE`` transaction: all objects of one call land together or none
does, and two processes applying at once are serialised by SQLite's write lock, so
neither change is lost. Every change is also appended to a history table.

Changing a feature group version's *structure* (join keys, event time, schema, derived
transforms, aggregations) is refused: that data is already written under the old
structure. Change the metadata (description, owner, tags, ttl, online, validation) freely.

>>> import tempfile, os
>>> from sparkfs.definitions import Entity, Field, FeatureGroup
>>> reg = Registry(os.path.join(tempfile.mkdtemp(), "registry.db"))
>>> airport = Entity("airport", join_keys=["origin"])
>>> g = FeatureGroup("weather", [airport], "time_hour", [Field("temp", "double")])
>>> reg.apply([airport, g]).changed
['entity:airport', 'feature_group:weather@1']
>>> reg.apply([airport, g]).changed
[]
>>> reg.get_group("weather").version
1
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .definitions import Entity, FeatureGroup, FeatureView, check_name
from .errors import DefinitionError, NotFoundError, RegistryError

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    spec TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, name, version)
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    action TEXT NOT NULL, spec TEXT NOT NULL, applied_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: Parts of a feature group spec that fix how its data is laid out.
_STRUCTURAL = ("entities", "event_time", "schema", "transforms", "aggregations")


@dataclass
class ApplyResult:
    """What one ``apply`` changed: ``created``/``updated`` hold ``kind:name@version`` labels.

    >>> ApplyResult(created=["feature_group:weather@1"]).changed
    ['feature_group:weather@1']
    """

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[str]:
        return self.created + self.updated


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _dump(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def _kind_of(obj: Any) -> tuple[str, str, int]:
    if isinstance(obj, Entity):
        return "entity", obj.name, 0
    if isinstance(obj, FeatureGroup):
        return "feature_group", obj.name, obj.version
    kind = getattr(obj, "registry_kind", None)
    if kind:
        return kind, obj.name, getattr(obj, "version", 0) or 0
    raise DefinitionError(
        f"{obj!r} cannot be applied: apply Entity, FeatureGroup, FeatureView or on-demand "
        "transform objects")


def _label(kind: str, name: str, version: int) -> str:
    return f"{kind}:{name}" + (f"@{version}" if kind in ("feature_group", "feature_view") else "")


class Registry:
    """Definitions in one SQLite file. Safe for several processes at once."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with self._connect() as con:
            con.executescript(_DDL)
            con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),))

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA busy_timeout=60000")
            yield con
        finally:
            con.close()

    # -- writes -----------------------------------------------------------------------
    def apply(self, objects: Iterable[Any]) -> ApplyResult:
        """Store definitions in one transaction; refuse the whole call on any conflict."""
        objs = list(objects)
        labels = [_kind_of(o) for o in objs]
        seen: dict[tuple[str, str, int], str] = {}
        for o, key in zip(objs, labels):
            spec = _dump(o.to_spec())
            if key in seen and seen[key] != spec:
                raise RegistryError(f"{_label(*key)} is given twice with different definitions")
            seen[key] = spec
        self._check_references(objs)
        result = ApplyResult()
        now = _now()
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                for (kind, name, version), spec in seen.items():
                    row = con.execute(
                        "SELECT spec FROM objects WHERE kind=? AND name=? AND version=?",
                        (kind, name, version)).fetchone()
                    label = _label(kind, name, version)
                    if row is None:
                        con.execute("INSERT INTO objects VALUES (?,?,?,?,?,?)",
                                    (kind, name, version, spec, now, now))
                        action = "create"
                        result.created.append(label)
                    elif row[0] == spec:
                        result.unchanged.append(label)
                        continue
                    else:
                        _check_compatible(kind, name, version, json.loads(row[0]), json.loads(spec))
                        con.execute("UPDATE objects SET spec=?, updated_at=? WHERE kind=? AND "
                                    "name=? AND version=?", (spec, now, kind, name, version))
                        action = "update"
                        result.updated.append(label)
                    con.execute("INSERT INTO history (kind,name,version,action,spec,applied_at) "
                                "VALUES (?,?,?,?,?,?)", (kind, name, version, action, spec, now))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return result

    def _check_references(self, objs: list[Any]) -> None:
        """Each group's entities must agree with the entities applied alongside/before."""
        given = {o.name: o for o in objs if isinstance(o, Entity)}
        for g in (o for o in objs if isinstance(o, FeatureGroup)):
            for e in g.entities:
                known = given.get(e.name) or self.get_entity(e.name, missing_ok=True)
                if known is not None and known.to_spec()["join_keys"] != list(e.join_keys):
                    raise RegistryError(
                        f"feature group {g.name!r} uses entity {e.name!r} with join keys "
                        f"{list(e.join_keys)}, but the registry has {list(known.join_keys)}")
        views = [o for o in objs if isinstance(o, FeatureView)]
        if views:
            from .request import check_view

            for v in views:
                check_view(v, lambda n, ver: self._lookup_group(objs, n, ver),
                           lambda n: self._lookup_on_demand(objs, n))

    def _lookup_group(self, objs: list[Any], name: str, version: int | None) -> FeatureGroup:
        """A group given in ``objs`` or registered (latest version when ``version`` is None)."""
        given = {o.version: o for o in objs if isinstance(o, FeatureGroup) and o.name == name}
        if version is not None:
            return given.get(version) or self.get_group(name, version)
        registered = self.get("feature_group", name)
        if registered is not None:
            given.setdefault(registered["version"], FeatureGroup.from_spec(registered))
        if not given:
            return self.get_group(name)  # NotFoundError naming the registered groups
        return given[max(given)]

    def _lookup_on_demand(self, objs: list[Any], name: str) -> dict | None:
        """The spec of an on-demand transform given in ``objs`` or registered."""
        for o in objs:
            if getattr(o, "registry_kind", None) == "on_demand" and o.name == name:
                return o.to_spec()
        return self.get("on_demand", name)

    def put(self, kind: str, name: str, version: int, spec: dict, replace: bool = True) -> None:
        """Store one object of another kind (training sets, reports); kept in history."""
        check_name(name, kind)
        body, now = _dump(spec), _now()
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                exists = con.execute("SELECT 1 FROM objects WHERE kind=? AND name=? AND version=?",
                                     (kind, name, version)).fetchone()
                if exists and not replace:
                    raise RegistryError(f"{kind} {name!r} version {version} already exists")
                con.execute(
                    "INSERT INTO objects VALUES (?,?,?,?,?,?) ON CONFLICT(kind,name,version) "
                    "DO UPDATE SET spec=excluded.spec, updated_at=excluded.updated_at",
                    (kind, name, version, body, now, now))
                con.execute("INSERT INTO history (kind,name,version,action,spec,applied_at) "
                            "VALUES (?,?,?,?,?,?)",
                            (kind, name, version, "update" if exists else "create", body, now))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def delete(self, kind: str, name: str, version: int) -> bool:
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute("SELECT spec FROM objects WHERE kind=? AND name=? AND version=?",
                              (kind, name, version)).fetchone()
            if row:
                con.execute("DELETE FROM objects WHERE kind=? AND name=? AND version=?",
                            (kind, name, version))
                con.execute("INSERT INTO history (kind,name,version,action,spec,applied_at) "
                            "VALUES (?,?,?,?,?,?)", (kind, name, version, "delete", row[0], _now()))
            con.execute("COMMIT")
        return row is not None

    # -- reads ------------------------------------------------------------------------
    def get(self, kind: str, name: str, version: int | None = None) -> dict | None:
        """The spec of one object (the highest version when ``version`` is None)."""
        with self._connect() as con:
            if version is None:
                row = con.execute("SELECT spec FROM objects WHERE kind=? AND name=? "
                                  "ORDER BY version DESC LIMIT 1", (kind, name)).fetchone()
            else:
                row = con.execute("SELECT spec FROM objects WHERE kind=? AND name=? AND version=?",
                                  (kind, name, version)).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, kind: str) -> list[dict]:
        with self._connect() as con:
            rows = con.execute("SELECT spec FROM objects WHERE kind=? ORDER BY name, version",
                               (kind,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def versions(self, kind: str, name: str) -> builtins.list[int]:
        with self._connect() as con:
            rows = con.execute("SELECT version FROM objects WHERE kind=? AND name=? ORDER BY "
                               "version", (kind, name)).fetchall()
        return [r[0] for r in rows]

    def history(self, kind: str | None = None, name: str | None = None) -> builtins.list[dict]:
        q, args = "SELECT seq,kind,name,version,action,spec,applied_at FROM history", []
        conds = []
        if kind:
            conds.append("kind=?")
            args.append(kind)
        if name:
            conds.append("name=?")
            args.append(name)
        if conds:
            q += " WHERE " + " AND ".join(conds)
        with self._connect() as con:
            rows = con.execute(q + " ORDER BY seq", args).fetchall()
        return [{"seq": r[0], "kind": r[1], "name": r[2], "version": r[3], "action": r[4],
                 "spec": json.loads(r[5]), "applied_at": r[6]} for r in rows]

    def get_group(self, name: str, version: int | None = None) -> FeatureGroup:
        spec = self.get("feature_group", name, version)
        if spec is None:
            versions = self.versions("feature_group", name)
            if versions:
                raise NotFoundError(f"feature group {name!r} has no version {version}; "
                                    f"registered versions: {versions}")
            known = sorted({g["name"] for g in self.list("feature_group")})
            raise NotFoundError(f"feature group {name!r} is not registered; "
                                f"registered groups: {known or 'none (run apply first)'}")
        return FeatureGroup.from_spec(spec)

    def list_groups(self) -> builtins.list[FeatureGroup]:
        return [FeatureGroup.from_spec(s) for s in self.list("feature_group")]

    def get_entity(self, name: str, missing_ok: bool = False) -> Entity | None:
        spec = self.get("entity", name, 0)
        if spec is None:
            if missing_ok:
                return None
            raise NotFoundError(f"entity {name!r} is not registered")
        return Entity.from_spec(spec)

    def list_entities(self) -> builtins.list[Entity]:
        return [Entity.from_spec(s) for s in self.list("entity")]

    def get_view(self, name: str, version: int | None = None) -> FeatureView:
        """A registered feature view (its latest version unless ``version`` is given)."""
        spec = self.get("feature_view", name, version)
        if spec is None:
            versions = self.versions("feature_view", name)
            if versions:
                raise NotFoundError(f"feature view {name!r} has no version {version}; "
                                    f"registered versions: {versions}")
            known = sorted({v["name"] for v in self.list("feature_view")})
            raise NotFoundError(f"feature view {name!r} is not registered; registered views: "
                                f"{known or 'none (apply a FeatureView first)'}")
        return FeatureView.from_spec(spec)

    def list_views(self) -> builtins.list[FeatureView]:
        return [FeatureView.from_spec(s) for s in self.list("feature_view")]


def _check_compatible(kind: str, name: str, version: int, old: dict, new: dict) -> None:
    if kind == "entity":
        if old.get("join_keys") != new.get("join_keys") or old.get("dtypes") != new.get("dtypes"):
            raise RegistryError(
                f"entity {name!r} already exists with join keys {old.get('join_keys')} "
                f"({old.get('dtypes')}); changing them to {new.get('join_keys')} "
                f"({new.get('dtypes')}) would break the groups that use it: create an entity "
                "with a new name instead")
        return
    if kind == "feature_view":
        from .views import STRUCTURAL

        for part in STRUCTURAL:
            if old.get(part) != new.get(part):
                raise RegistryError(
                    f"feature view {name!r} version {version} already exists with different "
                    f"{part.replace('_', ' ')} ({old.get(part)} -> {new.get(part)}); models "
                    f"and training sets depend on it. Bump the version (FeatureView(name={name!r}"
                    f", version={version + 1}, ...)) to change it")
        return
    if kind != "feature_group":
        return
    for part in _STRUCTURAL:
        if _structure(part, old.get(part)) != _structure(part, new.get(part)):
            raise RegistryError(
                f"feature group {name!r} version {version} already exists with a different "
                f"{part.replace('_', ' ')}; its history is written under the old definition. "
                f"Bump the version (FeatureGroup(name={name!r}, version={version + 1}, ...)) to "
                "change it")


def _structure(part: str, value: Any) -> Any:
    """The layout-relevant part of a spec section (descriptions and tags excluded)."""
    if part == "entities":
        return [(e["name"], e["join_keys"], e.get("dtypes")) for e in value or []]
    if part == "schema":
        return [(f["name"], f["dtype"]) for f in value or []]
    if part == "transforms":
        return [(t["name"], t.get("inputs"), [(f["name"], f["dtype"]) for f in t.get("outputs", [])],
                 t.get("fingerprint")) for t in value or []]
    return value
