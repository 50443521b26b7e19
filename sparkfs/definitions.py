"""Feature definitions: plain, typed Python objects shared by every engine.

``Entity``, ``Field``, ``FeatureGroup`` and ``Aggregation`` describe data; they hold no
connections and import no engine. Every name a user types (entity, join key, group,
field, event-time column) must match ``[a-z][a-z0-9_]*`` before it can become part of a
path, a table name or an SQL statement.

>>> airport = Entity("airport", join_keys=["origin"])
>>> weather = FeatureGroup(
...     name="weather", version=1, entities=[airport], event_time="time_hour",
...     schema=[Field("temp", "double"), Field("wind_speed", "double")], ttl="2d",
... )
>>> weather.join_keys
('origin',)
>>> [f.name for f in weather.features]
['temp', 'wind_speed']
>>> weather.ttl
datetime.timedelta(days=2)
>>> FeatureGroup(name="Bad-Name", entities=[airport], event_time="t", schema=[])
Traceback (most recent call last):
...
sparkfs.errors.DefinitionError: feature group name 'Bad-Name' is not allowed: names must match [a-z][a-z0-9_]* (lower-case letter first, then lower-case letters, digits or _)
"""  # noqa: E501 (doctest output)

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from . import dtypes as _dtypes
from .dtypes import KEY_DTYPES
from .errors import DefinitionError

NAME_PATTERN = r"[a-z][a-z0-9_]*"
_NAME_RE = re.compile(NAME_PATTERN + r"\Z")
MAX_NAME_LENGTH = 128

#: The feature dtypes sparkfs understands, with their Spark SQL and DuckDB spellings (a view
#: of ``sparkfs.dtypes.ALL``, which holds every form of each dtype).
DTYPES: dict[str, tuple[str, str]] = {n: (d.spark, d.duckdb) for n, d in _dtypes.ALL.items()}

#: Aggregation functions understood by the aggregation engines.
AGGREGATION_FUNCTIONS = ("count", "sum", "mean", "min", "max", "stddev", "last")

VALIDATION_POLICIES = ("strict", "quarantine")


def check_name(name: Any, what: str) -> str:
    """Return ``name`` if it is a legal sparkfs name, else raise ``DefinitionError``.

    >>> check_name("dep_delay", "field")
    'dep_delay'
    >>> check_name("x; DROP TABLE y", "field")
    Traceback (most recent call last):
    ...
    sparkfs.errors.DefinitionError: field name 'x; DROP TABLE y' is not allowed: names must match [a-z][a-z0-9_]* (lower-case letter first, then lower-case letters, digits or _)
    """  # noqa: E501 (doctest output)
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > MAX_NAME_LENGTH:
        raise DefinitionError(
            f"{what} name {name!r} is not allowed: names must match {NAME_PATTERN} "
            "(lower-case letter first, then lower-case letters, digits or _)"
        )
    return name


def check_dtype(dtype: Any, what: str) -> str:
    """Return the canonical dtype string, or raise naming the allowed ones.

    >>> check_dtype(" Array<Double> ", "field 'v'")
    'array<double>'
    """
    return _dtypes.dtype(dtype, what).name


_DURATION_RE = re.compile(r"^\s*([0-9]+)\s*(ms|s|m|h|d|w)\s*$")
_DURATION_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_duration(value: Any, what: str = "duration") -> timedelta:
    """Parse ``"90s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"`` (or a ``timedelta``).

    >>> parse_duration("7d")
    datetime.timedelta(days=7)
    >>> parse_duration("2 hours")
    Traceback (most recent call last):
    ...
    sparkfs.errors.DefinitionError: duration '2 hours' is not a duration: write a whole number and a unit, one of ms, s, m, h, d, w (for example '2h' or '7d')
    """  # noqa: E501 (doctest output)
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise DefinitionError(f"{what} must be positive, got {value}")
        return value
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m and int(m.group(1)) > 0:
            return int(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise DefinitionError(
        f"{what} {value!r} is not a duration: write a whole number and a unit, "
        "one of ms, s, m, h, d, w (for example '2h' or '7d')"
    )


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of ``value`` that ``parse_duration`` reads back.

    >>> format_duration(timedelta(days=14))
    '14d'
    >>> format_duration(timedelta(hours=36))
    '36h'
    """
    ms = int(value / timedelta(milliseconds=1))
    for unit in ("d", "h", "m", "s"):
        size = int(_DURATION_UNITS[unit] / timedelta(milliseconds=1))
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True)
class Field:
    """A typed column of a feature group.

    >>> Field("temp", "double")
    Field(name='temp', dtype='double', description='', tags={})
    """

    name: str
    dtype: str
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name, "field")
        object.__setattr__(self, "dtype", check_dtype(self.dtype, f"field {self.name!r}"))
        object.__setattr__(self, "tags", _check_tags(self.tags, f"field {self.name!r}"))

    def to_spec(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "description": self.description,
                "tags": dict(self.tags)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "Field":
        return cls(spec["name"], spec["dtype"], spec.get("description", ""), spec.get("tags", {}))


@dataclass(frozen=True)
class Entity:
    """A thing features describe, identified by one or more join keys.

    ``dtypes`` optionally fixes each join key's dtype (``string``, ``int`` or ``long``);
    undeclared keys are ``string``.

    >>> Entity("plane", join_keys=["tailnum"]).key_dtypes
    {'tailnum': 'string'}
    >>> Entity("flight", join_keys=["year", "flight"], dtypes={"year": "int", "flight": "int"}).key_dtypes
    {'year': 'int', 'flight': 'int'}
    """

    name: str
    join_keys: Sequence[str]
    description: str = ""
    dtypes: Mapping[str, str] = field(default_factory=dict)
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name, "entity")
        if isinstance(self.join_keys, str):
            object.__setattr__(self, "join_keys", [self.join_keys])
        keys = tuple(check_name(k, f"join key of entity {self.name!r}") for k in self.join_keys)
        if not keys:
            raise DefinitionError(f"entity {self.name!r} needs at least one join key")
        if len(set(keys)) != len(keys):
            raise DefinitionError(f"entity {self.name!r} repeats a join key: {list(keys)}")
        object.__setattr__(self, "join_keys", keys)
        dtypes = dict(self.dtypes or {})
        for k in dtypes:
            if k not in keys:
                raise DefinitionError(
                    f"entity {self.name!r} gives a dtype for {k!r}, which is not one of its "
                    f"join keys {list(keys)}")
        for k, d in dtypes.items():
            d = check_dtype(d, f"join key {k!r} of entity {self.name!r}")
            if not _dtypes.ALL[d].can_be_key:
                raise DefinitionError(
                    f"join key {k!r} of entity {self.name!r} has dtype {d!r}; join keys must be "
                    f"one of {', '.join(KEY_DTYPES)}")
            dtypes[k] = d
        # Spell out the default so an entity equals its registry copy (from_spec).
        object.__setattr__(self, "dtypes", {k: dtypes.get(k, "string") for k in keys})
        object.__setattr__(self, "tags", _check_tags(self.tags, f"entity {self.name!r}"))

    @property
    def key_dtypes(self) -> dict[str, str]:
        return {k: self.dtypes.get(k, "string") for k in self.join_keys}

    def to_spec(self) -> dict:
        return {"name": self.name, "join_keys": list(self.join_keys),
                "description": self.description, "dtypes": self.key_dtypes,
                "owner": self.owner, "tags": dict(self.tags)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "Entity":
        return cls(spec["name"], spec["join_keys"], spec.get("description", ""),
                   spec.get("dtypes", {}), spec.get("owner", ""), spec.get("tags", {}))


@dataclass(frozen=True)
class Aggregation:
    """A windowed aggregate over a group's raw events, declared in one line.

    Produces one feature per window, named ``{column}_{function}_{window}``; ``name``
    replaces the ``{column}_{function}`` part. ``filter`` keeps only events where the
    given boolean column is true (compute that column with a transform or upstream).

    The value at time ``t`` aggregates the events with event time in ``(t - window, t]``
    whose ``column`` is not null (and whose filter is true): ``count`` counts those
    non-null values (0 for an empty window; every other function is then null);
    ``stddev`` is the *sample* standard deviation (null below 2 values); ``last`` is the
    value with the latest event time (ties: later commit, then larger value). Every
    engine agrees; see ``sparkfs.aggregations``.

    >>> Aggregation("dep_delay", "mean", windows=["1d", "7d"]).feature_names
    ['dep_delay_mean_1d', 'dep_delay_mean_7d']
    """

    column: str
    function: str
    windows: Sequence[Any]
    filter: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        check_name(self.column, "aggregation column")
        if self.function not in AGGREGATION_FUNCTIONS:
            raise DefinitionError(
                f"aggregation function {self.function!r} on {self.column!r} is not supported; "
                f"use one of: {', '.join(AGGREGATION_FUNCTIONS)}")
        if isinstance(self.windows, (str, timedelta)):
            object.__setattr__(self, "windows", [self.windows])
        durations = [parse_duration(w, f"window of aggregation {self.column}_{self.function}")
                     for w in self.windows]
        # Keep the user's spelling ("7d" stays "7d"): it is part of the feature name.
        windows = tuple(w.strip().lower() if isinstance(w, str) else format_duration(d)
                        for w, d in zip(self.windows, durations))
        if not windows:
            raise DefinitionError(f"aggregation {self.column}_{self.function} needs a window")
        if len(set(durations)) != len(durations):
            raise DefinitionError(f"aggregation {self.column}_{self.function} repeats a window")
        object.__setattr__(self, "windows", windows)
        if self.filter is not None:
            check_name(self.filter, "aggregation filter column")
        if self.name is not None:
            check_name(self.name, "aggregation")

    @property
    def base_name(self) -> str:
        return self.name or f"{self.column}_{self.function}"

    def feature_name(self, window: str) -> str:
        return f"{self.base_name}_{window}"

    @property
    def feature_names(self) -> list[str]:
        return [self.feature_name(w) for w in self.windows]

    @property
    def window_durations(self) -> dict[str, timedelta]:
        """Window label (as written, e.g. ``"7d"``) -> its duration."""
        return {w: parse_duration(w) for w in self.windows}

    def output_dtype(self, input_dtype: str) -> str:
        if self.function == "count":
            return "long"
        if self.function in ("mean", "stddev"):
            return "double"
        if self.function == "sum":
            return _dtypes.ALL[input_dtype].sum_as
        return input_dtype

    def to_spec(self) -> dict:
        return {"column": self.column, "function": self.function,
                "windows": list(self.windows),
                "filter": self.filter, "name": self.name}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "Aggregation":
        return cls(spec["column"], spec["function"], spec["windows"], spec.get("filter"),
                   spec.get("name"))


class FeatureGroup:
    """A versioned set of features about one or more entities, with an event time.

    Its history lives in one Delta table per (name, version); its latest values in the
    online store when ``online`` is true. ``ttl`` bounds how old a value may be, online
    and in training sets. ``transforms`` declare derived features computed at ingest;
    ``aggregations`` turn a group of raw events into windowed aggregate features;
    ``expectations`` and ``validation`` (``"strict"`` or ``"quarantine"``) check batches.
    """

    def __init__(
        self,
        name: str,
        entities: Sequence[Entity],
        event_time: str,
        schema: Sequence[Field],
        version: int = 1,
        online: bool = True,
        ttl: Any = None,
        description: str = "",
        owner: str = "",
        tags: Mapping[str, str] | None = None,
        transforms: Sequence[Any] = (),
        aggregations: Sequence[Aggregation] = (),
        expectations: Any = None,
        validation: str = "strict",
    ) -> None:
        self.name = check_name(name, "feature group")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise DefinitionError(
                f"feature group {name!r} has version {version!r}; versions are integers >= 1")
        self.version = version
        if isinstance(entities, Entity):
            entities = [entities]
        self.entities = tuple(entities)
        if not self.entities or not all(isinstance(e, Entity) for e in self.entities):
            raise DefinitionError(
                f"feature group {name!r} needs entities=[Entity(...), ...]; got {entities!r}")
        self.event_time = check_name(event_time, f"event_time column of group {name!r}")
        self.schema = tuple(schema)
        for f in self.schema:
            if not isinstance(f, Field):
                raise DefinitionError(
                    f"feature group {name!r}: schema entries must be Field(...), got {f!r}")
        self.online = bool(online)
        self.ttl = None if ttl is None else parse_duration(ttl, f"ttl of group {name!r}")
        self.description = description or ""
        self.owner = owner or ""
        self.tags = _check_tags(tags or {}, f"feature group {name!r}")
        self.transforms = tuple(transforms)
        for t in self.transforms:
            if not (hasattr(t, "outputs") and hasattr(t, "to_spec")):
                raise DefinitionError(
                    f"feature group {name!r}: {t!r} is not a transform: decorate the function "
                    "with @transform")
        self.aggregations = tuple(aggregations)
        for a in self.aggregations:
            if not isinstance(a, Aggregation):
                raise DefinitionError(
                    f"feature group {name!r}: aggregations must be Aggregation(...), got {a!r}")
        self.expectations = expectations
        if validation not in VALIDATION_POLICIES:
            raise DefinitionError(
                f"feature group {name!r} has validation={validation!r}; use one of "
                f"{', '.join(VALIDATION_POLICIES)}")
        self.validation = validation
        self._check_columns()

    # -- derived views --------------------------------------------------------------
    @property
    def join_keys(self) -> tuple[str, ...]:
        keys: list[str] = []
        for e in self.entities:
            keys.extend(k for k in e.join_keys if k not in keys)
        return tuple(keys)

    @property
    def key_dtypes(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in self.entities:
            for k, d in e.key_dtypes.items():
                out.setdefault(k, d)
        return out

    @property
    def column_dtypes(self) -> dict[str, str]:
        """Every column of a batch and of the Delta history (system columns aside) -> its
        dtype: the join keys, the event time (``timestamp``), then the stored fields.

        >>> g = FeatureGroup("w", [Entity("a", ["origin"])], "t", [Field("temp", "double")])
        >>> g.column_dtypes
        {'origin': 'string', 't': 'timestamp', 'temp': 'double'}
        """
        out = dict(self.key_dtypes)
        out[self.event_time] = "timestamp"
        out.update((f.name, f.dtype) for f in self.stored_fields)
        return out

    @property
    def input_fields(self) -> tuple[Field, ...]:
        """Columns an ingested batch must carry (besides join keys and event time)."""
        return self.schema

    @property
    def derived_fields(self) -> tuple[Field, ...]:
        """Columns computed at ingest by the group's transforms."""
        out: list[Field] = []
        for t in self.transforms:
            out.extend(t.outputs)
        return tuple(out)

    @property
    def stored_fields(self) -> tuple[Field, ...]:
        """Value columns of the Delta history table: inputs, then derived features."""
        return self.schema + self.derived_fields

    @property
    def features(self) -> tuple[Field, ...]:
        """The features users can request from this group."""
        if self.aggregations:
            dtypes = {f.name: f.dtype for f in self.stored_fields}
            return tuple(
                Field(a.feature_name(w), a.output_dtype(dtypes[a.column]))
                for a in self.aggregations for w in a.windows)
        return self.stored_fields

    def feature(self, name: str) -> Field:
        for f in self.features:
            if f.name == name:
                return f
        raise _not_found_feature(self, name)

    @property
    def table_name(self) -> str:
        """Storage name of this group version (``{name}__v{version}``): safe for paths and SQL."""
        return f"{self.name}__v{self.version}"

    def _check_columns(self) -> None:
        seen: dict[str, str] = {}

        def claim(col: str, role: str) -> None:
            if col in seen:
                raise DefinitionError(
                    f"feature group {self.name!r}: column {col!r} is both {seen[col]} and {role}")
            seen[col] = role

        for k in self.join_keys:
            claim(k, "a join key")
        claim(self.event_time, "the event time")
        for f in self.stored_fields:
            claim(f.name, "a feature")
        stored = {f.name: f.dtype for f in self.stored_fields}
        for a in self.aggregations:
            if a.column not in stored:
                raise DefinitionError(
                    f"feature group {self.name!r}: aggregation on {a.column!r}, which is not "
                    f"in its schema {list(stored)}")
            if a.function not in ("count", "last", "min", "max") \
                    and not _dtypes.ALL[stored[a.column]].numeric:
                raise DefinitionError(
                    f"feature group {self.name!r}: {a.function} of {a.column!r} needs a numeric "
                    f"column, but it is {stored[a.column]}")
            if a.filter is not None and stored.get(a.filter) != "boolean":
                raise DefinitionError(
                    f"feature group {self.name!r}: aggregation filter {a.filter!r} must be a "
                    "boolean column of the schema")
        names = [n for a in self.aggregations for n in a.feature_names]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise DefinitionError(
                f"feature group {self.name!r}: aggregations produce {sorted(dup)} twice")

    # -- persistence ----------------------------------------------------------------
    def to_spec(self) -> dict:
        """A JSON-able description; the registry stores it and compares it."""
        return {
            "name": self.name,
            "version": self.version,
            "entities": [e.to_spec() for e in self.entities],
            "event_time": self.event_time,
            "schema": [f.to_spec() for f in self.schema],
            "online": self.online,
            "ttl": None if self.ttl is None else format_duration(self.ttl),
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
            "transforms": [_transform_spec(t) for t in self.transforms],
            "aggregations": [a.to_spec() for a in self.aggregations],
            "expectations": _expectations_spec(self.expectations),
            "validation": self.validation,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "FeatureGroup":
        """Rebuild from ``to_spec``. Transforms come back as ``TransformRef`` (no code)."""
        return cls(
            name=spec["name"], version=spec["version"],
            entities=[Entity.from_spec(e) for e in spec["entities"]],
            event_time=spec["event_time"],
            schema=[Field.from_spec(f) for f in spec["schema"]],
            online=spec.get("online", True), ttl=spec.get("ttl"),
            description=spec.get("description", ""), owner=spec.get("owner", ""),
            tags=spec.get("tags", {}),
            transforms=[TransformRef.from_spec(t) for t in spec.get("transforms", [])],
            aggregations=[Aggregation.from_spec(a) for a in spec.get("aggregations", [])],
            expectations=spec.get("expectations"),
            validation=spec.get("validation", "strict"),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureGroup) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    def __repr__(self) -> str:
        return (f"FeatureGroup(name={self.name!r}, version={self.version}, "
                f"join_keys={list(self.join_keys)}, features={[f.name for f in self.features]})")

    def _repr_html_(self) -> str:
        """The definition as a notebook card (``sparkfs.ui.cards``)."""
        from .ui.cards import group_card

        return group_card(self)


@dataclass(frozen=True)
class TransformRef:
    """A transform as the registry knows it: name, outputs, fingerprint, and where its
    code lives (``module:qualname``). The code itself is imported from the user's repo."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[Field, ...]
    fingerprint: str
    source: str = ""
    mode: str = "batch"

    def to_spec(self) -> dict:
        return {"name": self.name, "inputs": list(self.inputs),
                "outputs": [f.to_spec() for f in self.outputs],
                "fingerprint": self.fingerprint, "source": self.source, "mode": self.mode}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "TransformRef":
        return cls(spec["name"], tuple(spec.get("inputs", ())),
                   tuple(Field.from_spec(f) for f in spec.get("outputs", ())),
                   spec.get("fingerprint", ""), spec.get("source", ""), spec.get("mode", "batch"))


def _transform_spec(t: Any) -> dict:
    if hasattr(t, "to_spec"):
        return t.to_spec()
    raise DefinitionError(f"{t!r} is not a transform: decorate the function with @transform")


def _expectations_spec(expectations: Any) -> Any:
    if expectations is None:
        return None
    if hasattr(expectations, "to_spec"):
        return expectations.to_spec()
    if isinstance(expectations, (list, dict, str)):
        return expectations
    raise DefinitionError(f"expectations {expectations!r} cannot be stored in the registry")


def _check_tags(tags: Mapping[str, str], what: str) -> dict[str, str]:
    if not isinstance(tags, Mapping):
        raise DefinitionError(f"{what}: tags must be a mapping of str to str, got {tags!r}")
    for k, v in tags.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise DefinitionError(f"{what}: tag {k!r}={v!r} must map a str to a str")
    return dict(tags)


# -- feature references --------------------------------------------------------------
#: Versions are ASCII digits, at most 9 of them (``\d`` would also accept other scripts' digits).
_VERSION = r"[1-9][0-9]{0,8}"
_REF_RE = re.compile(rf"({NAME_PATTERN})(?:@({_VERSION}))?:({NAME_PATTERN}|\*)")
_VERSIONED_NAME_RE = re.compile(rf"({NAME_PATTERN})(?:@({_VERSION}))?")


def parse_versioned_name(text: Any, what: str = "feature group") -> tuple[str, int | None]:
    """Split ``"name"`` or ``"name@version"`` into ``(name, version or None)``.

    >>> parse_versioned_name("weather@2"), parse_versioned_name("weather")
    (('weather', 2), ('weather', None))
    >>> parse_versioned_name("weather@٣")
    Traceback (most recent call last):
    ...
    sparkfs.errors.DefinitionError: feature group 'weather@٣' is malformed: write 'name' or 'name@version' with a version of 1 to 9 ASCII digits (for example 'weather' or 'weather@2')
    """  # noqa: E501 (doctest output)
    m = _VERSIONED_NAME_RE.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise DefinitionError(
            f"{what} {text!r} is malformed: write 'name' or 'name@version' with a version of "
            "1 to 9 ASCII digits (for example 'weather' or 'weather@2')")
    return m.group(1), int(m.group(2)) if m.group(2) else None


@dataclass(frozen=True)
class FeatureRef:
    """A parsed ``"group:feature"`` or ``"group@2:feature"`` reference.

    >>> FeatureRef.parse("weather@2:temp")
    FeatureRef(group='weather', version=2, feature='temp')
    >>> FeatureRef.parse("weather:temp").version is None
    True
    """

    group: str
    version: int | None
    feature: str

    @classmethod
    def parse(cls, ref: Any) -> "FeatureRef":
        if isinstance(ref, FeatureRef):
            return ref
        m = _REF_RE.fullmatch(ref) if isinstance(ref, str) else None
        if not m:
            shown = ref if not isinstance(ref, str) or len(ref) <= 80 else ref[:80] + "..."
            raise DefinitionError(
                f"feature reference {shown!r} is malformed: write 'group:feature' or "
                "'group@version:feature' with a version of 1 to 9 ASCII digits "
                "(for example 'weather:temp' or 'weather@2:temp')")
        return cls(m.group(1), int(m.group(2)) if m.group(2) else None, m.group(3))

    def __str__(self) -> str:
        v = f"@{self.version}" if self.version is not None else ""
        return f"{self.group}{v}:{self.feature}"


def parse_refs(refs: Iterable[Any]) -> list[FeatureRef]:
    if isinstance(refs, str):
        refs = [refs]
    out = [FeatureRef.parse(r) for r in refs]
    if not out:
        raise DefinitionError("no features requested: pass a list like ['weather:temp']")
    return out


def _not_found_feature(group: FeatureGroup, name: str) -> Exception:
    from .errors import NotFoundError

    return NotFoundError(
        f"feature group {group.name!r} version {group.version} has no feature {name!r}; "
        f"it has: {', '.join(f.name for f in group.features)}")


# FeatureView lives in its own module (sparkfs.views); it is a definition like the others.
from .views import FeatureView as FeatureView  # noqa: E402  (re-exported)
