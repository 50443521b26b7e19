"""Property-based parity of the demo's transforms: pandas, one row and Spark agree on
nulls, NaN, empty strings, extreme values and time zones."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.flights.transforms import dep_calendar, dewpoint_spread, route_key, weather_risk
from sparkfs import transform
from sparkfs.testing.parity import assert_transform_parity

ZONES = [dt.UTC, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata"),
         ZoneInfo("Pacific/Chatham"), ZoneInfo("Australia/Lord_Howe"), None]

# pandas (and so pyspark's pandas UDFs) hold timestamps in ns: 1677-09-21 .. 2262-04-11
timestamps = st.one_of(
    st.none(),
    st.datetimes(min_value=dt.datetime(1700, 1, 1), max_value=dt.datetime(2250, 12, 31),
                 timezones=st.sampled_from(ZONES)),
    st.sampled_from([dt.datetime(2013, 3, 10, 7, 0, tzinfo=dt.UTC),    # DST starts in NY
                     dt.datetime(2013, 11, 3, 5, 30, tzinfo=dt.UTC),   # DST ends in NY
                     dt.datetime(2013, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)]),
)
numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 17.0, 4983.0]),
)
texts = st.one_of(st.none(), st.sampled_from(["", " ", "jfk", " LAX ", "ewr\t", "Zürich"]),
                  st.text(max_size=6))

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPARK = settings(max_examples=6, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def calendar_rows(n: int):
    return st.lists(st.fixed_dictionaries({"sched_dep_ts": timestamps}), min_size=1, max_size=n)


def risk_rows(n: int):
    return st.lists(st.fixed_dictionaries({"distance": numbers, "wind_speed": numbers,
                                           "visib": numbers, "precip": numbers}),
                    min_size=1, max_size=n)


def route_rows(n: int):
    return st.lists(st.fixed_dictionaries({"origin": texts, "dest": texts}), min_size=1, max_size=n)


def spread_rows(n: int):
    return st.lists(st.fixed_dictionaries({"temp": numbers, "dewp": numbers}), min_size=1,
                    max_size=n)


RISK_DTYPES = {"wind_speed": "double", "visib": "double", "precip": "double"}


def _frame(rows, columns):
    return pd.DataFrame(rows, columns=columns)


@FAST
@given(calendar_rows(12))
def test_dep_calendar_pandas_matches_rows(rows):
    assert_transform_parity(dep_calendar, _frame(rows, ["sched_dep_ts"]), spark=False)


@FAST
@given(risk_rows(12))
def test_weather_risk_pandas_matches_rows(rows):
    df = _frame(rows, ["distance", "wind_speed", "visib", "precip"])
    assert_transform_parity(weather_risk, df, spark=False, input_dtypes=RISK_DTYPES)


@FAST
@given(route_rows(12))
def test_route_key_pandas_matches_rows(rows):
    assert_transform_parity(route_key, _frame(rows, ["origin", "dest"]), spark=False)


@FAST
@given(spread_rows(12))
def test_dewpoint_spread_pandas_matches_rows(rows):
    df = _frame(rows, ["temp", "dewp"])
    assert_transform_parity(dewpoint_spread, df, spark=False,
                            input_dtypes={"temp": "double", "dewp": "double"})


@SPARK
@given(calendar_rows(25), risk_rows(25), route_rows(25), spread_rows(25))
def test_demo_transforms_spark_matches_pandas_and_rows(spark, cal, risk, route, spread):
    assert_transform_parity(dep_calendar, _frame(cal, ["sched_dep_ts"]), spark=spark)
    assert_transform_parity(weather_risk, _frame(risk, ["distance", "wind_speed", "visib",
                                                        "precip"]),
                            spark=spark, input_dtypes=RISK_DTYPES)
    assert_transform_parity(route_key, _frame(route, ["origin", "dest"]), spark=spark)
    assert_transform_parity(dewpoint_spread, _frame(spread, ["temp", "dewp"]), spark=spark,
                            input_dtypes={"temp": "double", "dewp": "double"})


def test_known_values_in_new_york_time():
    # 2013-03-10 07:00 UTC is 03:00 EDT (clocks jumped from 02:00); a Sunday
    assert dep_calendar.row(sched_dep_ts=dt.datetime(2013, 3, 10, 7, tzinfo=dt.UTC)) == \
        {"hour_of_day": 3, "day_of_week": 6}
    assert route_key.row(origin=" jfk ", dest="lax") == "JFK-LAX"
    assert route_key.row(origin="", dest="LAX") is None
    # looked-up features get their dtypes from the group (online: plan_on_demand does that)
    assert weather_risk.row_from({"distance": 200.0, "wind_speed": None, "visib": None,
                                  "precip": None}, RISK_DTYPES) == 0.0
    assert math.isclose(weather_risk.row(distance=0.0, wind_speed=40.0, visib=0.0, precip=0.5),
                        1.0)


def test_parity_reports_a_transform_that_depends_on_its_batch(spark):
    @transform(output="double")
    def centred(x):
        return x - x.mean()

    with pytest.raises(AssertionError, match="pandas and row outputs differ in 2 of 3 row"):
        assert_transform_parity(centred, {"x": [1.0, 2.0, 3.0]}, spark=spark)


def test_parity_checks_spark_dtypes_and_values(spark):
    @transform(outputs={"n": "long", "flag": "boolean", "when": "timestamp"},
               inputs={"x": "long"})
    def several(x):
        return pd.DataFrame({"n": x * 2, "flag": x > 0,
                             "when": pd.Timestamp("2013-01-01", tz="UTC") + pd.to_timedelta(
                                 x.clip(-1000, 1000).astype("float64"), unit="h")})

    assert_transform_parity(several, {"x": [1, None, -(2 ** 40), 0]}, spark=spark)
