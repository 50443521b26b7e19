"""Unit tests of sparkfs.definitions: names, dtypes, durations, groups, feature references."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sparkfs.definitions import (
    DTYPES,
    Aggregation,
    Entity,
    FeatureGroup,
    FeatureRef,
    Field,
    TransformRef,
    check_dtype,
    check_name,
    format_duration,
    parse_duration,
    parse_refs,
)
from sparkfs.errors import DefinitionError, NotFoundError

AIRPORT = Entity("airport", join_keys=["origin"])


def group(**kw):
    args = dict(name="weather", entities=[AIRPORT], event_time="time_hour",
                schema=[Field("temp", "double"), Field("wind_speed", "double")])
    args.update(kw)
    return FeatureGroup(**args)


# -- names -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a", "temp", "dep_delay_7d", "x1", "a_" + "b" * 126])
def test_legal_names_pass(name):
    assert check_name(name, "field") == name


INJECTIONS = [
    "x; DROP TABLE y", "a'--", 'a"b', "../etc/passwd", "a/b", "a\\b", "a.b", "a b", "a-b",
    "a\nb", "a\x00b", "${HOME}", "a*", "a@1", "a:b", "`a`", "é", "Temp", "1abc", "_a", "",
    " temp", "temp ", "a" * 129,
]


@pytest.mark.parametrize("bad", INJECTIONS)
def test_names_refuse_anything_that_could_escape(bad):
    with pytest.raises(DefinitionError) as exc:
        check_name(bad, "field")
    assert repr(bad) in str(exc.value)
    assert "[a-z][a-z0-9_]*" in str(exc.value)


@pytest.mark.parametrize("bad", [None, 3, b"temp", ["temp"]])
def test_names_must_be_strings(bad):
    with pytest.raises(DefinitionError):
        check_name(bad, "field")


@pytest.mark.parametrize("bad", ["x; DROP TABLE y", "../up", "Weather", "a.b"])
def test_every_user_named_part_is_checked(bad):
    with pytest.raises(DefinitionError, match="feature group name"):
        group(name=bad)
    with pytest.raises(DefinitionError, match="event_time column"):
        group(event_time=bad)
    with pytest.raises(DefinitionError, match="field name"):
        Field(bad, "double")
    with pytest.raises(DefinitionError, match="entity name"):
        Entity(bad, join_keys=["k"])
    with pytest.raises(DefinitionError, match="join key"):
        Entity("e", join_keys=[bad])
    with pytest.raises(DefinitionError):
        Aggregation(bad, "sum", windows=["1d"])
    with pytest.raises(DefinitionError):
        Aggregation("temp", "sum", windows=["1d"], name=bad)


def test_table_name_is_built_only_from_checked_parts():
    assert group(version=3).table_name == "weather__v3"


# -- dtypes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_every_documented_dtype_is_accepted(dtype):
    assert Field("f", dtype).dtype == dtype


def test_dtype_spelling_is_normalised():
    assert check_dtype("DOUBLE", "x") == "double"
    assert check_dtype("array< float >", "x") == "array<float>"


@pytest.mark.parametrize("bad", ["decimal", "int64", "array<int>", "map<string,int>", "", None, float])
def test_unknown_dtype_is_refused_listing_the_allowed_ones(bad):
    with pytest.raises(DefinitionError) as exc:
        Field("temp", bad)
    msg = str(exc.value)
    assert "'temp'" in msg and "array<double>" in msg and "boolean" in msg


def test_join_key_dtypes():
    e = Entity("flight", join_keys=["year", "flight"], dtypes={"year": "int", "flight": "LONG"})
    assert e.key_dtypes == {"year": "int", "flight": "long"}
    assert Entity("plane", join_keys="tailnum").join_keys == ("tailnum",)
    with pytest.raises(DefinitionError, match="join keys must be one of"):
        Entity("e", join_keys=["k"], dtypes={"k": "double"})
    with pytest.raises(DefinitionError, match="not one of its join keys"):
        Entity("e", join_keys=["k"], dtypes={"other": "int"})
    with pytest.raises(DefinitionError, match="at least one join key"):
        Entity("e", join_keys=[])
    with pytest.raises(DefinitionError, match="repeats a join key"):
        Entity("e", join_keys=["k", "k"])


# -- durations -------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("250ms", timedelta(milliseconds=250)), ("90s", timedelta(seconds=90)),
    ("15m", timedelta(minutes=15)), ("2h", timedelta(hours=2)), ("7d", timedelta(days=7)),
    ("1w", timedelta(weeks=1)), (" 3 d ", timedelta(days=3)),
    (timedelta(hours=5), timedelta(hours=5)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["0d", "-1d", "2 hours", "1.5h", "d", "7", "7y", "", None, 7,
                                 timedelta(0), timedelta(seconds=-1)])
def test_bad_durations_are_refused(bad):
    with pytest.raises(DefinitionError):
        parse_duration(bad, "ttl of group 'weather'")


@pytest.mark.parametrize("value", [timedelta(days=14), timedelta(hours=36), timedelta(minutes=90),
                                   timedelta(seconds=61), timedelta(milliseconds=1500)])
def test_format_duration_round_trips(value):
    assert parse_duration(format_duration(value)) == value


def test_group_ttl_is_parsed_and_checked():
    assert group(ttl="2d").ttl == timedelta(days=2)
    assert group().ttl is None
    with pytest.raises(DefinitionError, match="ttl of group 'weather'"):
        group(ttl="forever")


# -- feature groups --------------------------------------------------------------------------
def test_group_derived_views():
    plane = Entity("plane", join_keys=["tailnum"])
    g = group(entities=[AIRPORT, plane])
    assert g.join_keys == ("origin", "tailnum")
    assert g.key_dtypes == {"origin": "string", "tailnum": "string"}
    assert [f.name for f in g.features] == ["temp", "wind_speed"]
    assert g.feature("temp").dtype == "double"
    with pytest.raises(NotFoundError, match="has no feature 'pressure'; it has: temp, wind_speed"):
        g.feature("pressure")


@pytest.mark.parametrize("kw,msg", [
    ({"version": 0}, "versions are integers >= 1"),
    ({"version": "2"}, "versions are integers >= 1"),
    ({"version": True}, "versions are integers >= 1"),
    ({"entities": []}, "needs entities"),
    ({"entities": ["airport"]}, "needs entities"),
    ({"schema": [("temp", "double")]}, "schema entries must be Field"),
    ({"schema": [Field("origin", "string")]}, "'origin' is both a join key and a feature"),
    ({"schema": [Field("time_hour", "timestamp")]}, "is both the event time and a feature"),
    ({"schema": [Field("t", "double"), Field("t", "double")]}, "'t' is both a feature and a feature"),
    ({"event_time": "origin"}, "is both a join key and the event time"),
    ({"validation": "lenient"}, "validation='lenient'"),
    ({"tags": {"a": 1}}, "must map a str to a str"),
    ({"tags": ["a"]}, "tags must be a mapping"),
])
def test_malformed_groups_are_refused(kw, msg):
    with pytest.raises(DefinitionError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        group(**kw)


def test_aggregations():
    a = Aggregation("dep_delay", "mean", windows=["1d", "7d"])
    assert a.feature_names == ["dep_delay_mean_1d", "dep_delay_mean_7d"]
    assert a.window_durations == {"1d": timedelta(days=1), "7d": timedelta(days=7)}
    assert Aggregation("x", "sum", windows=timedelta(hours=2)).windows == ("2h",)
    assert Aggregation("x", "count", "1d", name="n").feature_names == ["n_1d"]
    g = FeatureGroup("delays", [AIRPORT], "ts",
                     [Field("dep_delay", "int"), Field("late", "boolean")],
                     aggregations=[Aggregation("dep_delay", "sum", ["1d"]),
                                   Aggregation("dep_delay", "count", ["1d"], filter="late")])
    assert [(f.name, f.dtype) for f in g.features] == [
        ("dep_delay_sum_1d", "long"), ("dep_delay_count_1d", "long")]
    for kw, msg in [
        (dict(column="temp", function="median", windows=["1d"]), "not supported"),
        (dict(column="temp", function="sum", windows=["1d", "24h"]), "repeats a window"),
        (dict(column="temp", function="sum", windows=[]), "needs a window"),
        (dict(column="temp", function="sum", windows=["1 day"]), "not a duration"),
    ]:
        with pytest.raises(DefinitionError, match=msg):
            Aggregation(**kw)
    with pytest.raises(DefinitionError, match="not in its schema"):
        group(aggregations=[Aggregation("pressure", "max", ["1d"])])
    with pytest.raises(DefinitionError, match="needs a numeric column"):
        FeatureGroup("g", [AIRPORT], "ts", [Field("s", "string")],
                     aggregations=[Aggregation("s", "mean", ["1d"])])
    with pytest.raises(DefinitionError, match="must be a boolean column"):
        group(aggregations=[Aggregation("temp", "max", ["1d"], filter="wind_speed")])
    with pytest.raises(DefinitionError, match="twice"):
        group(aggregations=[Aggregation("temp", "max", ["1d"]),
                            Aggregation("wind_speed", "max", ["1d"], name="temp_max")])


def test_spec_round_trip_keeps_everything():
    g = group(version=2, online=False, ttl="36h", description="hourly", owner="me@x",
              tags={"source": "noaa"}, validation="quarantine",
              transforms=[TransformRef("feels_like", ("temp",), (Field("feels", "double"),),
                                       "abc123", "repo:feels_like")],
              aggregations=[Aggregation("temp", "max", ["1d", "7d"])])
    spec = g.to_spec()
    back = FeatureGroup.from_spec(spec)
    assert back == g and back.to_spec() == spec
    assert back.ttl == timedelta(hours=36) and spec["ttl"] == "36h"
    assert [f.name for f in back.stored_fields] == ["temp", "wind_speed", "feels"]
    assert back.transforms[0].fingerprint == "abc123"
    import json
    assert json.loads(json.dumps(spec)) == spec  # JSON-able as stored in the registry


def test_equality_is_by_spec():
    assert group() == group()
    assert group() != group(description="changed")
    assert hash(group()) == hash(group(description="changed"))


def test_non_transform_objects_are_refused():
    with pytest.raises(DefinitionError, match="'weather'.*decorate the function with @transform"):
        group(transforms=[lambda df: df])


# -- feature references ----------------------------------------------------------------------
@pytest.mark.parametrize("text,parsed", [
    ("weather:temp", ("weather", None, "temp")),
    ("weather@2:temp", ("weather", 2, "temp")),
    ("weather:*", ("weather", None, "*")),
    ("planes@10:seats", ("planes", 10, "seats")),
])
def test_feature_refs_parse(text, parsed):
    ref = FeatureRef.parse(text)
    assert (ref.group, ref.version, ref.feature) == parsed
    assert str(ref) == text
    assert FeatureRef.parse(ref) is ref


@pytest.mark.parametrize("bad", ["weather", "weather:", ":temp", "weather:temp:x", "Weather:temp",
                                 "weather@:temp", "weather@x:temp", "weather@-1:temp",
                                 "weather:temp; DROP", "weather :temp", "", None, 5])
def test_malformed_refs_are_refused(bad):
    with pytest.raises(DefinitionError, match="is malformed: write 'group:feature'"):
        FeatureRef.parse(bad)


def test_parse_refs():
    assert parse_refs("weather:temp") == [FeatureRef("weather", None, "temp")]
    assert [str(r) for r in parse_refs(["a:x", "b@2:y"])] == ["a:x", "b@2:y"]
    with pytest.raises(DefinitionError, match="no features requested"):
        parse_refs([])
