"""On-demand features: planned once, run once per batch, identical online (pandas) and in
Spark (training sets), with clear errors for every way the code can be missing."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from jobs.flights import features as repo
from jobs.flights import transforms as T
from sparkfs import FeatureStore, transform
from sparkfs.definitions import FeatureRef
from sparkfs.errors import DefinitionError, NotFoundError, TransformError, ValidationError
from sparkfs.offline.derived import apply_derived_pandas
from sparkfs.ondemand import plan_on_demand
from sparkfs.repo import definitions_in

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _load_weather(fs: FeatureStore) -> pd.DataFrame:
    """Real readings (the last hour of 2013 per airport) re-stamped to now, so ttl holds."""
    from jobs.flights import data

    w = data.weather_frame()
    latest = w.sort_values("time_hour").groupby("origin").tail(1).copy()
    latest["time_hour"] = pd.Timestamp(NOW - dt.timedelta(hours=1))
    g = fs.get_feature_group("weather")
    latest = apply_derived_pandas(g, latest)
    fs.online.write_batch(g, pa.Table.from_pandas(latest, preserve_index=False))
    return latest.set_index("origin")


@pytest.fixture
def served(fs_nospark):
    fs_nospark.apply(definitions_in(repo))
    return fs_nospark, _load_weather(fs_nospark)


FEATURES = ["weather:temp", "dep_calendar:*", "weather_risk:weather_risk", "route_key:route_key"]


def test_plan_lists_what_to_fetch_and_what_comes_out(served):
    fs, _ = served
    plan = plan_on_demand(fs.catalog, FEATURES)
    assert [t.name for t in plan.transforms] == ["dep_calendar", "weather_risk", "route_key"]
    assert plan.output_names == ["hour_of_day", "day_of_week", "weather_risk", "route_key"]
    assert [str(r) for r in plan.group_refs] == ["weather:wind_speed", "weather:visib",
                                                 "weather:precip"]
    assert plan.request_columns == {"sched_dep_ts": "timestamp", "distance": "double",
                                    "origin": "string", "dest": "string"}


def _py(v):
    return None if pd.isna(v) else v


def test_apply_pandas_equals_row_by_row(served):
    fs, _ = served
    plan = plan_on_demand(fs.catalog, FEATURES)
    df = pd.DataFrame({
        "sched_dep_ts": pd.to_datetime(["2013-01-01 10:15Z", None, "2013-07-04 23:59Z"], utc=True),
        "distance": [1000.0, None, 17.0], "origin": ["JFK", "EWR", ""], "dest": ["LAX", "SFO", "BOS"],
        "wind_speed": [10.0, None, 40.0], "visib": [10.0, 2.0, None], "precip": [0.0, 0.1, None]})
    out = plan.apply_pandas(df)
    dtypes = {"wind_speed": "double", "visib": "double", "precip": "double"}
    for i, rec in enumerate(df.astype(object).to_dict("records")):
        cal = T.dep_calendar.row(sched_dep_ts=rec["sched_dep_ts"])
        assert cal["hour_of_day"] == _py(out["hour_of_day"][i])
        assert cal["day_of_week"] == _py(out["day_of_week"][i])
        risk = T.weather_risk.row_from({k: rec[k] for k in T.weather_risk.inputs}, dtypes)
        assert risk == _py(out["weather_risk"][i])
        assert T.route_key.row(origin=rec["origin"], dest=rec["dest"]) == _py(out["route_key"][i])
    assert out["route_key"].tolist() == ["JFK-LAX", "EWR-SFO", None]


def test_apply_spark_equals_apply_pandas(spark, served):
    fs, _ = served
    plan = plan_on_demand(fs.catalog, FEATURES)
    df = pd.DataFrame({
        "row": [0, 1, 2],
        "sched_dep_ts": pd.to_datetime(["2013-01-01 10:15Z", None, "2013-11-03 05:30Z"], utc=True),
        "distance": [1000.0, None, 17.0], "origin": ["JFK", None, " lga"], "dest": ["LAX", "SFO", "BOS"],
        "wind_speed": [10.0, None, 40.0], "visib": [10.0, 2.0, None], "precip": [0.0, 0.1, None]})
    expected = plan.apply_pandas(df)
    sdf = spark.createDataFrame(df, "row long, sched_dep_ts timestamp, distance double, "
                                    "origin string, dest string, wind_speed double, visib double, "
                                    "precip double")
    got = plan.apply_spark(sdf).orderBy("row").toPandas()
    for name in plan.output_names:
        a = [None if pd.isna(v) else v for v in expected[name].tolist()]
        b = [None if pd.isna(v) else v for v in got[name].tolist()]
        assert a == b, name


CALLS: list[int] = []


@transform(output="long", on_demand=True, inputs={"n": "long"})
def counted(n: pd.Series) -> pd.Series:
    CALLS.append(len(n))
    return n + 1


def test_online_batch_runs_each_transform_once_and_matches_rows(served):
    fs, weather = served
    fs.apply([counted])
    CALLS.clear()
    origins = ["JFK", "LGA", "EWR", "XXX"] * 5
    req = {"sched_dep_ts": ["2013-01-01T10:15:00Z", "2013-06-01T23:00:00-04:00", None,
                            "2013-12-31T12:00:00+05:30"] * 5,
           "distance": [1000.0, 200.0, None, 5.0] * 5, "dest": ["LAX", "", "BOS", None] * 5,
           "n": list(range(20))}
    resp = fs.get_online_features(FEATURES + ["counted:counted"],
                                  [{"origin": o} for o in origins], request_data=req)
    assert CALLS == [20]
    d = resp.to_dict()
    assert d["counted"] == [i + 1 for i in range(20)]
    for i, o in enumerate(origins):
        cal = T.dep_calendar.row(sched_dep_ts=req["sched_dep_ts"][i])
        assert (d["hour_of_day"][i], d["day_of_week"][i]) == (cal["hour_of_day"], cal["day_of_week"])
        w = weather.loc[o] if o in weather.index else None
        looked_up = {k: (None if w is None else float(w[k])) for k in ("wind_speed", "visib", "precip")}
        risk = T.weather_risk.row_from({"distance": req["distance"][i], **looked_up},
                                       {k: "double" for k in looked_up})
        assert d["weather_risk"][i] == risk
        assert d["route_key"][i] == T.route_key.row(origin=o, dest=req["dest"][i])
    assert d["temp"][:3] == [float(weather.loc[o]["temp"]) for o in origins[:3]]
    assert resp.statuses["route_key"][:4] == ["present", "missing", "present", "missing"]
    # the features the transforms read are fetched, but not returned
    assert "wind_speed" not in d and list(d)[:2] == ["origin", "temp"]


def test_full_feature_names_and_empty_batches(served):
    fs, _ = served
    resp = fs.get_online_features(["weather:temp", "route_key:route_key"], [{"origin": "JFK"}],
                                  request_data={"dest": ["LAX"]}, full_feature_names=True)
    assert list(resp.to_dict()) == ["origin", "weather__temp", "route_key__route_key"]
    assert resp.to_dict()["route_key__route_key"] == ["JFK-LAX"]
    # request columns may also come from the entity rows
    alone = fs.get_online_features(["route_key:route_key"], [{"origin": "JFK", "dest": "BOS"}])
    assert alone.to_dict() == {"route_key": ["JFK-BOS"]}
    empty = fs.get_online_features(["weather:temp", "dep_calendar:hour_of_day"], [],
                                   request_data={"sched_dep_ts": []})
    assert empty.to_dict() == {"origin": [], "temp": [], "hour_of_day": []}


def test_on_demand_errors_name_what_is_wrong(served, store_config):
    fs, _ = served
    with pytest.raises(NotFoundError, match="on-demand transform 'dep_calendar' has no output 'x'"):
        fs.get_online_features(["dep_calendar:x"], [{"origin": "JFK"}])
    with pytest.raises(ValidationError, match=r"'dep_calendar' needs \['sched_dep_ts'\] in "
                                              "request_data"):
        fs.get_online_features(["dep_calendar:hour_of_day"], [{"origin": "JFK"}],
                               request_data={"other": [1]})
    with pytest.raises(TransformError, match="input 'distance': cannot hold \\['far'\\] as double"):
        fs.get_online_features(["weather_risk:weather_risk"], [{"origin": "JFK"}],
                               request_data={"distance": ["far"]})
    with pytest.raises(NotFoundError, match="feature group 'nothing' is not registered"):
        fs.get_online_features(["nothing:x"], [{"origin": "JFK"}])

    fresh = FeatureStore(store_config)   # another process: registry only, no code
    with pytest.raises(TransformError, match="'route_key' is registered .*but its code is not "
                                             "imported"):
        fresh.get_online_features(["route_key:route_key"], [{"origin": "JFK"}],
                                  request_data={"dest": ["LAX"]})
    assert "on_demand:route_key" in fresh.catalog.attach([T.route_key])
    got = fresh.get_online_features(["route_key:route_key"], [{"origin": "JFK"}],
                                    request_data={"dest": ["LAX"]})
    assert got.to_dict()["route_key"] == ["JFK-LAX"]
    fresh.close()


def test_changed_code_is_refused_until_applied(served):
    fs, _ = served

    @transform(output="string", on_demand=True, inputs={"origin": "string", "dest": "string"},
               name="route_key")
    def route_key_v2(origin, dest):
        return origin + ">" + dest

    with pytest.raises(TransformError, match="differs from the registered one"):
        fs.catalog.attach([route_key_v2])
    fs.catalog._live[("on_demand", "route_key", 0)] = route_key_v2  # stale process, new code
    with pytest.raises(TransformError, match="apply the repo again"):
        plan_on_demand(fs.catalog, ["route_key:route_key"])
    fs.apply([route_key_v2])
    out = fs.get_online_features(["route_key:route_key"], [{"origin": "JFK"}],
                                 request_data={"dest": ["LAX"]})
    assert out.to_dict()["route_key"] == ["JFK>LAX"]


def test_a_name_that_is_both_group_and_transform_is_refused(served):
    fs, _ = served

    @transform(output="double", on_demand=True, inputs={"x": "double"}, name="weather")
    def weather(x):
        return x

    fs.apply([weather])
    with pytest.raises(DefinitionError, match="'weather' is both a feature group and an "
                                              "on-demand transform"):
        plan_on_demand(fs.catalog, [FeatureRef.parse("weather:weather")])
