"""The serving-path speedups change no result: the demo transforms' vectorised code gives
what the step-by-step pandas code gave, stored row tails read back the same through orjson,
repeated keys share one decoded row only when its values are immutable, and a request
plan's wiring is worked out once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.flights.transforms import dep_calendar, route_key, weather_risk
from sparkfs.definitions import Entity, FeatureGroup, FeatureRef, Field
from sparkfs.errors import ValidationError
from sparkfs.ondemand import OnDemandPlan
from sparkfs.online.codec import RowCodec, _loads_tail, dumps
from sparkfs.online.sqlite import SqliteOnlineStore

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 40.0, 4983.0]))
texts = st.one_of(st.none(), st.sampled_from(["", " ", "jfk", " LAX ", "ewr\t", "ß", "\u00a0x"]),
                  st.text(max_size=5))


# -- the demo transforms, against the plain Series code they replaced ----------------------
def _risk_reference(distance, wind_speed, visib, precip):
    def clip01(x):
        return np.clip(x.to_numpy(dtype="float64", na_value=np.nan), 0.0, 1.0)

    wind = clip01(wind_speed.fillna(0.0) / 40.0)
    fog = clip01((10.0 - visib.fillna(10.0)) / 10.0)
    rain = clip01(precip.fillna(0.0) / 0.5)
    hops = np.log1p(np.maximum(distance.to_numpy(dtype="float64", na_value=np.nan), 0.0))
    weight = 1.0 / (1.0 + hops / np.log1p(5000.0))
    return pd.Series(np.clip((0.4 * wind + 0.4 * fog + 0.2 * rain) * 2.0 * weight, 0.0, 1.0),
                     index=distance.index)


def _route_reference(origin, dest):
    o = origin.str.strip().str.upper()
    d = dest.str.strip().str.upper()
    both = o.fillna("").ne("") & d.fillna("").ne("")
    return (o + "-" + d).where(both, None)


@FAST
@given(st.lists(st.tuples(numbers, numbers, numbers, numbers), min_size=1, max_size=8))
def test_weather_risk_equals_the_series_code_and_warns_of_nothing(rows):
    cols = [pd.Series(c, dtype="float64", index=range(10, 10 + len(rows))) for c in zip(*rows)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # e.g. 1e308 / 0.5 overflows quietly
        got = weather_risk.func(*cols)
    with np.errstate(all="ignore"):
        want = _risk_reference(*cols)
    pd.testing.assert_series_equal(got, want)
    assert [math.copysign(1, v) for v in got] == [math.copysign(1, v) for v in want]


@FAST
@given(st.lists(st.tuples(texts, texts), min_size=1, max_size=8))
def test_route_key_equals_the_str_accessor_code(rows):
    origin, dest = (pd.Series(list(c), dtype=object, index=range(3, 3 + len(rows)))
                    for c in zip(*rows))
    got, want = route_key.func(origin, dest), _route_reference(origin, dest)
    assert got.index.equals(want.index) and got.dtype == want.dtype == object
    assert [None if v is None or v != v else v for v in want] == got.tolist()


def test_route_key_treats_nan_and_non_text_as_missing_like_the_str_accessor():
    origin = pd.Series(["jfk", float("nan"), 5, " lga "], dtype=object)
    dest = pd.Series(["lax", "sfo", "bos", "ord"], dtype=object)
    assert route_key.func(origin, dest).tolist() == ["JFK-LAX", None, None, "LGA-ORD"]
    assert _route_reference(origin, dest).where(lambda s: s.notna(), None).tolist() == \
        ["JFK-LAX", None, None, "LGA-ORD"]


def test_dep_calendar_keeps_dtypes_index_and_nat():
    ts = pd.Series(pd.to_datetime(["2013-03-10T07:00Z", None, "2013-11-03T05:30Z"], utc=True),
                   index=[7, 8, 9])
    got = dep_calendar.func(ts)
    local = ts.dt.tz_convert("America/New_York")
    want = pd.DataFrame({"hour_of_day": local.dt.hour, "day_of_week": local.dt.dayofweek})
    pd.testing.assert_frame_equal(got, want)
    whole = ts.dropna()
    got = dep_calendar.func(whole)
    assert got.dtypes.tolist() == [np.dtype("int32"), np.dtype("int32")]
    assert got.to_dict("list") == {"hour_of_day": [3, 1], "day_of_week": [6, 6]}


# -- stored rows ------------------------------------------------------------------------------
tails = st.lists(st.one_of(st.none(), st.text(),
                           st.lists(st.one_of(st.none(), st.floats()), max_size=4)), max_size=4)


def _same(a, b):
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float):
        return isinstance(b, float) and ((a != a and b != b) or
                                         (a == b and math.copysign(1, a) == math.copysign(1, b)))
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(tails)
def test_row_tails_read_back_as_the_standard_library_reads_them(values):
    data = dumps(values).encode()
    assert _same(_loads_tail(data), json.loads(data.decode("utf-8")))


def test_row_tails_with_nan_and_lone_surrogates_still_read():
    c = RowCodec(["string", "array<double>", "double"])
    blob = c.encode_rows([["a\ud800b"], [[float("nan"), float("inf"), None, -0.0]], [None]])[0]
    got = c.decode(blob)
    assert got[0] == "a\ud800b" and got[2] is None
    assert math.isnan(got[1][0]) and got[1][1:3] == [math.inf, None]
    assert math.copysign(1, got[1][3]) == -1


def _plane_group():
    return FeatureGroup("planes", [Entity("plane", ["tailnum"])], "ts",
                        [Field("model", "string"), Field("seats", "long"),
                         Field("trace", "array<double>"), Field("built", "timestamp")])


def test_repeated_keys_read_equal_rows_and_lists_are_never_shared(tmp_path):
    g = _plane_group()
    store = SqliteOnlineStore(os.path.join(tmp_path, "online.db"))
    t = dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)
    store.write_batch(g, pa.table({"tailnum": ["N1", "N2"], "ts": [t, t],
                                   "model": ["A320", None], "seats": [180, None],
                                   "trace": [[1.0, float("nan")], None], "built": [t, None]}))
    keys = [("N1",), ("N9",), ("N1",), ("N2",), ("N1",)]
    scalar = store.read(g, keys, ["model", "seats", "built"])
    assert scalar[1] is None
    assert scalar[0] == scalar[2] == scalar[4]
    assert scalar[0].values == ("A320", 180, t) and scalar[3].values == (None, None, None)
    arrays = store.read(g, keys, ["trace", "model"])
    assert arrays[0].values[0] is not arrays[2].values[0]  # each row its own list
    arrays[0].values[0].append(9.0)
    assert len(arrays[2].values[0]) == 2 and math.isnan(arrays[4].values[0][1])
    store.close()


# -- on-demand plans --------------------------------------------------------------------------
def test_plan_wiring_is_fixed_at_construction_and_still_names_what_is_missing():
    plan = OnDemandPlan([weather_risk], [FeatureRef("weather_risk", None, "weather_risk")],
                        {"wind_speed": "double", "visib": "double", "precip": "double"})
    out = plan.compute_values({"distance": [944.0, None], "wind_speed": [20.0, None],
                               "visib": [2.0, None], "precip": [0.1, None]})
    want = weather_risk.run_values({"distance": [944.0, None], "wind_speed": [20.0, None],
                                    "visib": [2.0, None], "precip": [0.1, None]},
                                   {"wind_speed": "double", "visib": "double",
                                    "precip": "double"})
    assert out == want
    with pytest.raises(ValidationError, match=r"'weather_risk' needs \['wind_speed', 'precip'\]"):
        plan.compute_values({"distance": [1.0], "visib": [1.0]})


# -- where the service runs a request -------------------------------------------------------
def _weather_store(config: dict) -> tuple:
    from sparkfs import FeatureStore

    fs = FeatureStore(config)
    g = FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
                     [Field("temp", "double")])
    fs.apply([g])
    fs.online.write_batch(g, pa.table({
        "origin": ["JFK"], "temp": [float("nan")],
        "time_hour": [dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)]}))
    return fs, g


def _ask(fs) -> list[str]:
    """Ask the service; returns where each ``get_online_features`` ran ("loop"/"thread")."""
    from fastapi.testclient import TestClient

    from sparkfs.serving.app import create_app

    where: list[str] = []
    lookup = fs.get_online_features

    def recording(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            where.append("loop")
        except RuntimeError:
            where.append("thread")
        return lookup(*args, **kwargs)

    fs.get_online_features = recording
    client = TestClient(create_app(fs))
    body = {"features": ["weather:temp"], "entity_rows": [{"origin": "JFK"}, {"origin": "EWR"}]}
    for _ in range(2):                         # the first reads the registry, the second not
        r = client.post("/features", json=body)
        assert r.status_code == 200, r.text
        temp = r.json()["results"][1]
        assert temp["values"] == [None, None] and temp["statuses"] == ["missing", "missing"]
    r = client.post("/features", json={**body, "features": ["weather:nope"]})
    assert r.status_code == 404 and "no feature 'nope'" in r.json()["detail"]
    assert client.get("/health").json()["status"] == "ok"
    return where


def test_the_sqlite_store_is_never_read_on_the_event_loop(tmp_path):
    fs, _ = _weather_store({"data_dir": str(tmp_path)})
    # a cached plan's SQLite read too: a stuck read must not hold up other requests
    assert _ask(fs) == ["thread", "thread", "thread"]
    fs.close()


def test_a_networked_store_is_served_from_the_thread_pool(tmp_path, hbase_online_config):
    fs, g = _weather_store({"data_dir": str(tmp_path), "online": hbase_online_config})
    assert _ask(fs) == ["thread", "thread", "thread"]
    fs.online.drop(g)
    fs.close()


def test_responses_name_the_on_demand_transforms_that_ran(tmp_path):
    from sparkfs import transform

    fs, _ = _weather_store({"data_dir": str(tmp_path)})

    @transform(output="double", on_demand=True, features={"t": "weather:temp"})
    def warmer(t):
        return t + 1.0

    fs.apply([warmer])
    r = fs.get_online_features(["weather:temp", "warmer:warmer"], [{"origin": "JFK"}])
    assert r.transform_fingerprints == {"warmer": warmer.fingerprint}
    assert fs.get_online_features(["warmer:warmer"], []).transform_fingerprints == \
        {"warmer": warmer.fingerprint}
    assert fs.get_online_features(["weather:temp"], [{"origin": "JFK"}]).transform_fingerprints \
        == {}
    fs.close()
