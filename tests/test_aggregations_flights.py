"""The real NYC 2013 flights: carrier departure-delay aggregates from both engines against
pandas' own time-based rolling windows, and the training-set path end to end."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from jobs.flights import data
from jobs.flights.features import carrier_delays
from sparkfs.aggregations import duckdb as agg_duckdb
from sparkfs.aggregations import spark as agg_spark
from sparkfs.offline.tables import history_schema

COMMITTED = pd.Timestamp("2014-01-01", tz="UTC")
FEATURES = ["carrier_dep_delay_mean_1d", "carrier_departures_7d", "carrier_dep_delay_stddev_7d",
            "carrier_late_delay_mean_1d"]


@pytest.fixture(scope="module")
def departures() -> pd.DataFrame:
    f = data.flights_frame()
    f = f[f["dep_ts"].notna() & (f["dep_ts"] < pd.Timestamp("2013-01-22", tz="UTC"))].copy()
    f["delayed"] = f["dep_delay"] > 15
    f["_commit_time"] = COMMITTED
    f["_run_id"] = "flights"
    return f.sort_values(["carrier", "dep_ts"]).reset_index(drop=True)


def _history(f: pd.DataFrame) -> pa.Table:
    schema = history_schema(carrier_delays)
    return pa.Table.from_pandas(f[schema.names], schema=schema, preserve_index=False)


def pandas_rolling(f: pd.DataFrame) -> pd.DataFrame:
    """The usual pandas way: time-based rolling per carrier, closed='right' = (t - w, t].
    With simultaneous departures the last row of each (carrier, time) has seen them all."""
    out = []
    for carrier, g in f.groupby("carrier", sort=True):
        s = g.set_index("dep_ts")["dep_delay"]
        late = s.where(g["delayed"].to_numpy())
        r = pd.DataFrame({
            "carrier": carrier,
            "dep_ts": s.index,
            "carrier_dep_delay_mean_1d": s.rolling("1D", closed="right").mean().to_numpy(),
            "carrier_departures_7d": s.rolling("7D", closed="right").count().to_numpy(),
            "carrier_dep_delay_stddev_7d": s.rolling("7D", closed="right").std().to_numpy(),
            "carrier_late_delay_mean_1d": late.rolling("1D", closed="right", min_periods=1)
                                              .mean().to_numpy(),
        })
        out.append(r.groupby("dep_ts", as_index=False).last())
    return pd.concat(out, ignore_index=True)


def _spine(expected: pd.DataFrame) -> pa.Table:
    return pa.table({"_spine_id": np.arange(len(expected), dtype="int64"),
                     "carrier": expected["carrier"].to_numpy(),
                     "at": pa.array(expected["dep_ts"], pa.timestamp("us", tz="UTC"))})


def _compare(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    got = got.sort_values("_spine_id").reset_index(drop=True)
    assert len(got) == len(expected)
    for c in FEATURES:
        np.testing.assert_allclose(got[c].astype("float64").to_numpy(),
                                   expected[c].astype("float64").to_numpy(),
                                   rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=c)


def test_duckdb_matches_pandas_rolling_on_three_weeks_of_flights(departures):
    expected = pandas_rolling(departures)
    assert len(expected) > 15_000
    got = agg_duckdb.aggregate_history(_history(departures), carrier_delays, FEATURES,
                                       _spine(expected), ["carrier"], "at")
    _compare(expected, got.to_pandas())


def test_spark_matches_pandas_rolling_on_three_days_of_flights(spark, departures):
    week = departures[departures["dep_ts"] < pd.Timestamp("2013-01-04", tz="UTC")]
    expected = pandas_rolling(week)
    hist = spark.createDataFrame(_history(week))
    spine = spark.createDataFrame(_spine(expected))
    got = agg_spark.aggregate_history(hist, carrier_delays, FEATURES, spine, ["carrier"], "at")
    _compare(expected, got.toPandas())


def test_training_set_exact_at_scheduled_departure(fs_nospark, departures):
    """Through fs.get_historical_features (DuckDB engine): spine at scheduled departure
    times between departures, checked against a direct scan."""
    fs = fs_nospark
    fs.apply([carrier_delays])
    from deltalake import write_deltalake

    write_deltalake(fs.offline.table_uri(carrier_delays), _history(departures), mode="append")
    spine = departures[["carrier", "sched_dep_ts"]].iloc[::97].reset_index(drop=True)
    refs = [f"carrier_delays:{c}" for c in FEATURES]
    ts = fs.get_historical_features(spine, refs, "sched_dep_ts", engine="duckdb").to_pandas()
    assert len(ts) == len(spine)
    for i in range(0, len(spine), 25):
        c, t = spine.loc[i, "carrier"], spine.loc[i, "sched_dep_ts"]
        day = departures[(departures["carrier"] == c) & (departures["dep_ts"] > t - dt.timedelta(days=1))
                         & (departures["dep_ts"] <= t)]
        week = departures[(departures["carrier"] == c) & (departures["dep_ts"] > t - dt.timedelta(days=7))
                          & (departures["dep_ts"] <= t)]
        assert ts.loc[i, "carrier_departures_7d"] == len(week)
        want = day["dep_delay"].mean() if len(day) else None
        if want is None:
            assert pd.isna(ts.loc[i, "carrier_dep_delay_mean_1d"])
        else:
            assert ts.loc[i, "carrier_dep_delay_mean_1d"] == pytest.approx(want, rel=1e-12)
