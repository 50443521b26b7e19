"""Feature views: registry rules, apply-time checks, and one resolver for both paths —
a training set and an online vector of the same view at the same instant agree on
names, order, dtypes and values (on-demand outputs, full_feature_names, key_map, two
versions of one group), on DuckDB and on Spark."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from sparkfs import (
    DefinitionError,
    Entity,
    FeatureGroup,
    FeatureView,
    Field,
    NotFoundError,
    RegistryError,
    transform,
)
from sparkfs.offline.tables import ARROW_TYPES

UTC = dt.UTC
airport = Entity("airport", ["origin"])
plane = Entity("plane", ["tailnum"])


def weather(version=1):
    return FeatureGroup("weather", [airport], "time_hour",
                        [Field("temp", "double"), Field("cond", "string")], version=version)


def planes():
    return FeatureGroup("planes", [plane], "registered_at", [Field("seats", "int")])


@transform(output="double", on_demand=True, inputs={"bonus": "double"},
           features={"temp": "weather@1:temp"})
def warmer(bonus, temp):
    return temp + bonus


@transform(outputs={"seats_k": "double", "crowded": "boolean"}, on_demand=True,
           features={"seats": "planes:seats"})
def seating(seats):
    return pd.DataFrame({"seats_k": seats / 1000.0, "crowded": seats > 120})


# -- registry rules --------------------------------------------------------------------
def test_apply_rules_and_lookups(fs_nospark):
    fs = fs_nospark
    v = FeatureView("delay", features=["weather:temp", "planes:*"], description="d")
    created = fs.apply([weather(), planes(), v]).created
    assert "feature_view:delay@1" in created
    assert fs.apply([v]).changed == []                       # identical: no-op
    meta = FeatureView("delay", features=["weather:temp", "planes:*"], owner="ml", tags={"a": "b"})
    assert fs.apply([meta]).updated == ["feature_view:delay@1"]  # metadata may change
    assert fs.get_feature_view("delay").owner == "ml"
    with pytest.raises(RegistryError, match="Bump the version .*version=2"):
        fs.apply([FeatureView("delay", features=["weather:temp"])])
    with pytest.raises(RegistryError, match="different key map"):
        fs.apply([FeatureView("delay", features=["weather:temp", "planes:*"],
                              key_map={"tailnum": "plane"})])
    fs.apply([FeatureView("delay", version=2, features=["weather:cond"])])
    assert fs.get_feature_view("delay").version == 2
    assert fs.get_feature_view("delay@1").features == ("weather:temp", "planes:*")
    assert fs.get_feature_view("delay", 1) == fs.get_feature_view(meta)
    assert [x.label for x in fs.list_feature_views()] == ["delay@1", "delay@2"]
    with pytest.raises(NotFoundError, match="feature view 'nope' is not registered; registered "
                                            "views: \\['delay'\\]"):
        fs.get_feature_view("nope")
    with pytest.raises(NotFoundError, match="has no version 7; registered versions: \\[1, 2\\]"):
        fs.get_feature_view("delay@7")


def test_apply_checks_every_reference_and_writes_nothing_on_error(fs_nospark):
    fs = fs_nospark
    fs.apply([weather(), warmer])
    bad = [
        (["weather:nope"], NotFoundError, "feature view v@1: feature group 'weather' version 1 "
                                          "has no feature 'nope'; it has: temp, cond"),
        (["rain:temp"], NotFoundError, "feature group 'rain' is not registered"),
        (["weather@3:temp"], NotFoundError, "feature group 'weather' has no version 3"),
        (["warmer:hot"], NotFoundError, "on-demand transform 'warmer' has no output 'hot'; "
                                        "it has: warmer"),
        (["warmer@2:warmer"], DefinitionError, "has no versions"),
    ]
    for feats, err, msg in bad:
        with pytest.raises(err, match=msg.replace("(", "\\(").replace(")", "\\)")):
            fs.apply([FeatureView("v", features=feats)])
    with pytest.raises(DefinitionError, match="key_map names \\['tailnum'\\], which no feature "
                                              "group of the view joins on"):
        fs.apply([FeatureView("v", features=["weather:temp"], key_map={"tailnum": "plane"})])
    # a group in the same call counts; a failing call registers nothing
    with pytest.raises(NotFoundError, match="'seats'"):
        fs.apply([planes(), FeatureView("v", features=["planes:seats", "weather:seats"])])
    assert fs.registry.get("feature_group", "planes") is None
    assert fs.list_feature_views() == []
    fs.apply([planes(), seating, FeatureView("v", features=["planes:seats", "seating:*"])])
    assert fs.get_feature_view("v").features == ("planes:seats", "seating:*")


def test_feature_view_definition_errors():
    with pytest.raises(DefinitionError, match="lists no features"):
        FeatureView("v", features=[])
    with pytest.raises(DefinitionError, match="feature view 'v': feature reference 'temp' is "
                                              "malformed"):
        FeatureView("v", features=["temp"])
    with pytest.raises(DefinitionError, match="versions are integers >= 1"):
        FeatureView("v", version=0, features=["weather:temp"])
    assert FeatureView("v", features=[weather(2), warmer]).features == ("weather@2:*",
                                                                         "warmer:*")


# -- one resolver, both paths ----------------------------------------------------------------
NOW = dt.datetime(2013, 3, 1, tzinfo=UTC)


@pytest.fixture
def served(fs):
    """weather v1 and v2, planes, two on-demand transforms; history ingested and
    materialized; two views of them."""
    w1, w2, p = weather(1), weather(2), planes()
    fs.apply([w1, w2, p, warmer, seating])
    t0 = dt.datetime(2013, 1, 1, tzinfo=UTC)
    fs.ingest(w1, pd.DataFrame({"origin": ["JFK", "JFK", "LGA", "EWR"],
                                "time_hour": [t0, t0 + dt.timedelta(hours=5), t0, t0],
                                "temp": [1.0, 2.5, None, float("nan")],
                                "cond": ["a", "b", None, "c"]}), materialize=False)
    fs.ingest(w2, pd.DataFrame({"origin": ["JFK", "LGA"], "time_hour": [t0, t0],
                                "temp": [30.0, 31.5], "cond": ["x", "y"]}), materialize=False)
    fs.ingest(p, pd.DataFrame({"tailnum": ["N1", "N2"], "registered_at": [t0, t0],
                               "seats": pd.array([150, 90], dtype="Int32")}), materialize=False)
    for g in (w1, w2, p):
        fs.materialize(g)
    fs.apply([
        FeatureView("both_versions", features=["weather@1:temp", "weather@2:*", "seating:*",
                                               "planes:seats", "warmer:warmer"],
                    key_map={"tailnum": "plane"}),
        # weather@1:temp is read by warmer only: fetched, never returned
        FeatureView("short", features=["warmer:warmer", "weather@2:*", "seating:seats_k"],
                    key_map={"tailnum": "plane"}),
    ])
    return fs


ROWS = [{"origin": "JFK", "plane": "N1"}, {"origin": "LGA", "plane": "N2"},
        {"origin": "EWR", "plane": "N9"}, {"origin": "BOS", "plane": "N1"}]
BONUS = [1.0, 2.0, None, 4.0]


def _spine():
    return pd.DataFrame({"origin": [r["origin"] for r in ROWS], "plane": [r["plane"] for r in ROWS],
                         "ts": [NOW] * len(ROWS), "bonus": BONUS})


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (None stays distinct from NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
@pytest.mark.parametrize("view,full", [("both_versions", True), ("short", False),
                                       ("short", True)])
def test_training_set_and_online_vector_agree(served, engine, view, full):
    fs = served
    ts = fs.get_historical_features(_spine(), view=view, timestamp_col="ts", engine=engine,
                                    full_feature_names=full)
    online = fs.get_online_features(view=view, entity_rows=ROWS, request_data={"bonus": BONUS},
                                    full_feature_names=full)
    table = ts.to_arrow()
    spine_cols = ["origin", "plane", "ts", "bonus"]
    assert table.column_names[:4] == spine_cols
    names = table.column_names[4:]
    assert names == online.feature_names
    assert online.join_keys == ["origin", "plane"]  # key_map: tailnum is read from "plane"
    for c in names:
        assert table.schema.field(c).type == ARROW_TYPES[online.dtypes[c]], c
        got, want = table.column(c).to_pylist(), online.to_dict()[c]
        assert len(got) == len(want) and all(map(_same, got, want)), (c, got, want)
    assert ts.manifest["view"] == f"{view}@1"
    if view == "both_versions" and full:
        assert names == ["weather_v1__temp", "weather_v2__temp", "weather_v2__cond",
                         "seating__seats_k", "seating__crowded", "planes__seats",
                         "warmer__warmer"]
        d = online.to_dict()
        assert d["weather_v1__temp"] == [2.5, None, None, None]  # the stored NaN reads as null
        assert d["warmer__warmer"] == [3.5, None, None, None]
        assert d["seating__crowded"] == [True, False, None, True]
    if view == "short" and not full:
        assert names == ["warmer", "temp", "cond", "seats_k"]


def test_view_refuses_what_the_resolver_refuses_on_both_paths(served):
    fs = served
    msg = "feature 'temp' is requested twice; pass full_feature_names=True"
    with pytest.raises(DefinitionError, match=msg):
        fs.get_online_features(view="both_versions", entity_rows=ROWS,
                               request_data={"bonus": BONUS})
    with pytest.raises(DefinitionError, match=msg):
        fs.get_historical_features(_spine(), view="both_versions", timestamp_col="ts",
                                   engine="duckdb")
    with pytest.raises(DefinitionError, match="either features=\\[...\\] or view=..."):
        fs.get_online_features(["weather:temp"], ROWS, view="short")
    with pytest.raises(NotFoundError, match="feature view 'nope' is not registered"):
        fs.get_historical_features(_spine(), view="nope", timestamp_col="ts", engine="duckdb")
    from sparkfs import ValidationError

    with pytest.raises(ValidationError, match="no value for join key 'tailnum' \\(column "
                                              "'plane'\\)"):
        fs.get_online_features(view="short", entity_rows=[{"origin": "JFK", "tailnum": "N1"}],
                               request_data={"bonus": [1.0]})


def test_training_set_of_a_view_records_it_and_recreates(served):
    fs = served
    ts = fs.create_training_set("delays", _spine(), view=FeatureView.from_spec(
        fs.get_feature_view("short").to_spec()), timestamp_col="ts", engine="duckdb")
    m = fs.get_training_set("delays").manifest
    assert m["view"] == "short@1"
    assert m["features"] == ["warmer:warmer", "weather@2:*", "seating:seats_k"]
    assert m["key_map"] == {"tailnum": "plane"}
    assert fs.recreate_training_set("delays").to_arrow().equals(ts.to_arrow())
