"""``event_times=True`` on the point-in-time join (what batch and table scoring log per
feature): each as-of group's chosen event time, checked against an independent pandas
``merge_asof`` on every engine, and the training-set output unchanged without it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sparkfs import Entity, FeatureGroup, Field

T0 = pd.Timestamp("2024-03-01", tz="UTC")
ENGINES = [("duckdb", {}), ("spark", {}), ("spark", {"broadcast_spine_rows": 0})]


@pytest.fixture
def data(fs):
    rng = np.random.default_rng(7)
    airport = Entity("airport", join_keys=["origin"])
    weather = FeatureGroup("weather", [airport], "time_hour", [Field("temp", "double")])
    traffic = FeatureGroup("traffic", [airport], "at", [Field("planes", "long")], ttl="3h")
    fs.apply([weather, traffic])
    keys = ["JFK", "LGA", "EWR"]
    # distinct event times per key (no ties), one value missing
    w = pd.DataFrame({"origin": np.repeat(keys, 8),
                      "time_hour": [T0 + pd.Timedelta(hours=int(h)) for h in
                                    np.concatenate([rng.choice(48, 8, replace=False)
                                                    for _ in keys])],
                      "temp": rng.normal(10, 5, 24)})
    w.loc[3, "temp"] = None
    t = pd.DataFrame({"origin": np.repeat(keys[:2], 5),
                      "at": [T0 + pd.Timedelta(minutes=int(m)) for m in
                             np.concatenate([rng.choice(2880, 5, replace=False)
                                             for _ in keys[:2]])],
                      "planes": rng.integers(0, 50, 10)})
    fs.ingest("weather", w, run_id="w")
    fs.ingest("traffic", t, run_id="t")
    spine = pd.DataFrame({"origin": rng.choice(keys + ["BOS"], 40),
                          "ts": [T0 + pd.Timedelta(minutes=int(m)) for m in
                                 rng.integers(-60, 3000, 40)]})
    return fs, w, t, spine


def expected(spine, history, time_col, ttl=None):
    """The chosen row's event time per spine row, by pandas ``merge_asof``."""
    left = spine.reset_index().sort_values("ts")
    right = history[["origin", time_col]].assign(_e=history[time_col]).sort_values(time_col)
    m = pd.merge_asof(left, right, left_on="ts", right_on=time_col, by="origin",
                      direction="backward", tolerance=ttl)
    return m.set_index("index").sort_index()["_e"]


@pytest.mark.parametrize("engine,options", ENGINES)
def test_event_times_match_merge_asof_and_leave_the_training_set_alone(data, engine, options):
    fs, w, t, spine = data
    features = ["weather:temp", "traffic:planes"]
    plain = fs.get_historical_features(spine, features, "ts", engine=engine, **options)
    timed = fs.get_historical_features(spine, features, "ts", engine=engine,
                                       event_times=True, **options)
    got = timed.to_pandas()
    assert plain.columns == ["origin", "ts", "temp", "planes"]
    assert timed.columns == plain.columns + ["__event_time__weather@1", "__event_time__traffic@1"]
    pd.testing.assert_frame_equal(plain.to_pandas(), got[plain.columns])
    assert plain.manifest["options"].get("event_times") is None
    for col, history, time_col, ttl in [("__event_time__weather@1", w, "time_hour", None),
                                        ("__event_time__traffic@1", t, "at",
                                         pd.Timedelta(hours=3))]:
        want = expected(spine, history, time_col, ttl)
        assert got[col].isna().tolist() == want.isna().tolist(), col
        assert [x for x in got[col] if pd.notna(x)] == [x for x in want if pd.notna(x)], col
    # a row with an event time but a missing value: the time is still the chosen row's
    missing = w.loc[3]
    at = spine.index[(spine.origin == missing.origin)
                     & (got["__event_time__weather@1"] == missing.time_hour)]
    assert got.loc[at, "temp"].isna().all()


def test_event_times_option_is_checked(data):
    fs, _, _, spine = data
    with pytest.raises(Exception, match="unknown option"):
        fs.get_historical_features(spine, ["weather:temp"], "ts", engine="duckdb",
                                   event_time=True)
