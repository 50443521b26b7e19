"""A spine on the real NYC 2013 flights, cross-checked against pandas ``merge_asof``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from jobs.flights import data
from sparkfs import Entity, FeatureGroup, Field
from sparkfs.offline.tables import history_schema

airport = Entity("airport", join_keys=["origin"])
plane = Entity("plane", join_keys=["tailnum"])
weather = FeatureGroup("weather", [airport], "time_hour",
                       [Field("temp", "double"), Field("visib", "double")], ttl="2d")
planes = FeatureGroup("planes", [plane], "registered_at", [Field("seats", "int")])
COMMITTED = pd.Timestamp("2014-01-01", tz="UTC")


def _write(fs, group, frame: pd.DataFrame) -> None:
    frame = frame.assign(_commit_time=COMMITTED, _run_id="real")
    tbl = pa.Table.from_pandas(frame[history_schema(group).names], preserve_index=False)
    write_deltalake(fs.offline.table_uri(group), tbl.cast(history_schema(group)), mode="append")


@pytest.fixture(scope="module")
def flights():
    f = data.flights_frame()
    return f[["flight_id", "origin", "tailnum", "sched_dep_ts", "arr_delay"]]


@pytest.fixture
def real_store(fs):
    fs.apply([weather, planes])
    w = data.weather_frame()
    _write(fs, weather, w)
    _write(fs, planes, data.planes_frame())
    return fs, w


def _merge_asof(spine: pd.DataFrame, w: pd.DataFrame, p: pd.DataFrame) -> pd.DataFrame:
    s = spine.assign(_row=np.arange(len(spine))).sort_values("sched_dep_ts")
    w = w.sort_values("time_hour")[["origin", "time_hour", "temp", "visib"]]
    s["sched_dep_ts"] = s["sched_dep_ts"].astype(w["time_hour"].dtype)
    out = pd.merge_asof(s, w, left_on="sched_dep_ts", right_on="time_hour", by="origin",
                        tolerance=pd.Timedelta("2d"))
    out = out.merge(p[["tailnum", "seats"]], on="tailnum", how="left")
    return out.sort_values("_row").reset_index(drop=True)


def _same(a: pd.Series, b: pd.Series) -> bool:
    a, b = a.to_numpy(dtype="float64"), b.to_numpy(dtype="float64")
    return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def test_all_flights_duckdb_matches_merge_asof(real_store, flights):
    fs, w = real_store
    ts = fs.get_historical_features(flights, ["weather:temp", "weather:visib", "planes:seats"],
                                    "sched_dep_ts", engine="duckdb")
    got = ts.to_pandas()
    assert len(got) == len(flights) == 336_776 - flights["sched_dep_ts"].isna().sum()
    assert got["flight_id"].tolist() == flights["flight_id"].tolist()
    ref = _merge_asof(flights, w, data.planes_frame())
    for col in ("temp", "visib", "seats"):
        assert _same(got[col], ref[col]), col
    assert got["temp"].notna().mean() > 0.99  # hourly weather: nearly every flight matches


def test_flights_sample_spark_matches_merge_asof_and_duckdb(real_store, flights):
    fs, w = real_store
    sample = flights.sample(3000, random_state=3).reset_index(drop=True)
    feats = ["weather:temp", "weather:visib", "planes:seats"]
    by_spark = fs.get_historical_features(sample, feats, "sched_dep_ts", engine="spark")
    by_duck = fs.get_historical_features(sample, feats, "sched_dep_ts", engine="duckdb")
    assert by_spark.to_arrow().equals(by_duck.to_arrow())
    got, ref = by_spark.to_pandas(), _merge_asof(sample, w, data.planes_frame())
    for col in ("temp", "visib", "seats"):
        assert _same(got[col], ref[col]), col
    # committed in 2014: as known at scheduled departure in 2013, nothing was known yet
    known = fs.get_historical_features(sample.head(50), feats, "sched_dep_ts", engine="spark",
                                       as_known_at=True).to_pandas()
    assert known[["temp", "visib", "seats"]].isna().all().all()
    assert COMMITTED > dt.datetime(2013, 12, 31, tzinfo=dt.UTC)
