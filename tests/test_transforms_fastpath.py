"""The online fast paths give exactly what the general pandas path gives: typed inputs
built straight from Python lists (``series_from_values``), outputs straight to Python
values (``to_values``), ``Transform.run_values`` / ``OnDemandPlan.compute_values``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkfs import TransformError, transform
from sparkfs.definitions import FeatureRef
from sparkfs.ondemand import OnDemandPlan
from sparkfs.transform_dtypes import coerce, series_from_values, to_python, to_values


def _outcome(fn):
    try:
        return "ok", fn()
    except TransformError as exc:
        return "error", str(exc)


def assert_same_input(values, dtype):
    fast = _outcome(lambda: series_from_values(values, dtype, "input 'x'"))
    slow = _outcome(lambda: coerce(pd.Series(list(values), dtype=object), dtype, "input 'x'"))
    assert fast[0] == slow[0], (values, dtype, fast, slow)
    if fast[0] == "error":
        assert fast[1] == slow[1]
    else:
        assert fast[1].dtype == slow[1].dtype
        pd.testing.assert_series_equal(fast[1], slow[1])


def assert_same_output(s, dtype):
    fast = _outcome(lambda: to_values(s, dtype, "output 'y'"))
    slow = _outcome(lambda: [to_python(v, dtype) for v in coerce(s, dtype, "output 'y'").tolist()])
    assert fast == slow, (s.tolist(), dtype)
    if fast[0] == "ok":
        assert [type(v) for v in fast[1]] == [type(v) for v in slow[1]]


TZ5 = dt.timezone(dt.timedelta(hours=-5))


@pytest.mark.parametrize("dtype,values", [
    ("timestamp", ["2013-01-01T10:15:00Z", None, "2013-01-01 10:15", "2013-06-01T14:05:00.5+05:30"]),
    ("timestamp", ["2013-01-01T10:15:00.123456-00:00"]),
    ("timestamp", ["2013-02-30T10:00:00Z"]),          # no such day: the same error
    ("timestamp", ["3000-01-01T00:00:00Z"]),          # out of the ns range: the same error
    ("timestamp", ["2013-01-01"]), ("timestamp", ["20130101T101500"]),  # general parser
    ("timestamp", [dt.datetime(2013, 1, 1, 5), dt.datetime(2013, 1, 1, 5, tzinfo=TZ5)]),
    ("timestamp", [pd.Timestamp("2013-01-01 00:00:00.000000001", tz="UTC")]),
    ("timestamp", []), ("timestamp", [None]),
    # a text repeated in the batch (parsed once): the same values as each parsed alone
    ("timestamp", ["2013-01-01T10:15:00Z", "2013-01-01T10:15:00Z", None, "2013-01-01T10:15:00Z"]),
    ("timestamp", ["2013-01-01 10:15", "2013-01-01T10:15:00Z", "2013-01-01 10:15"]),  # naive+aware
    ("timestamp", ["2013-01-01T10:15:00Z", "2013-01-01T10:15:00Z", "2013-02-30T10:00:00Z"]),
    # ISO text beside datetime objects (naive read as UTC, aware, pandas): taken by both
    ("timestamp", ["2013-01-01T10:15:00Z", dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC), None]),
    ("timestamp", [dt.datetime(2013, 1, 1, 5), None, "2013-01-01 10:15"]),
    ("timestamp", [pd.Timestamp("2013-01-01 05:00", tz="UTC"), "2013-06-01T14:05:00.5+05:30",
                   dt.datetime(2013, 1, 1, 5, tzinfo=TZ5)]),
    ("timestamp", ["2013-01-01T10:15:00Z", dt.datetime(2013, 1, 1), "now"]),  # same error
    ("timestamp", ["2013-01-01T10:15:00Z", 5]),  # a number: the same error
    ("double", [1, 2.5, None]), ("double", [True]), ("double", ["1.5"]),
    ("double", [float("nan")]), ("double", [10 ** 400]), ("float", [1, 0.1, None]),
    ("long", [1, None]), ("long", [2 ** 63]), ("long", [1.0]), ("long", [True]),
    ("long", ["1"]), ("int", [2 ** 31]), ("int", [2 ** 31 - 1, None]),
    ("string", ["a", None, ""]), ("string", [1]), ("string", [float("nan")]),
    ("boolean", [True, None]), ("boolean", [1]), (None, ["x", 1.5]),
])
def test_input_fast_path_matches_the_general_path(dtype, values):
    assert_same_input(values, dtype)


@pytest.mark.parametrize("dtype,series", [
    ("double", pd.Series([1.5, np.nan])), ("float", pd.Series([1.5, np.nan], dtype="float32")),
    ("float", pd.Series([0.1])), ("long", pd.Series([1, 2])), ("int", pd.Series([2 ** 40])),
    ("int", pd.Series(np.array([3], dtype="int32"))), ("long", pd.Series(np.array([1], dtype="uint64"))),
    ("long", pd.Series([1.0, None])), ("int", pd.Series([1, None], dtype="Int64")),
    ("string", pd.Series(["a", None])), ("string", pd.Series(["a", np.nan])),
    ("string", pd.Series([1, 2])), ("boolean", pd.Series([True, None], dtype="boolean")),
    ("timestamp", pd.Series(pd.to_datetime(["2013-01-01", None], utc=True))),
])
def test_output_fast_path_matches_the_general_path(dtype, series):
    assert_same_output(series, dtype)


_texts = st.datetimes(min_value=dt.datetime(1700, 1, 1), max_value=dt.datetime(2200, 1, 1),
                      timezones=st.sampled_from([None, dt.UTC, TZ5])).map(
    lambda d: d.isoformat())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), _texts), max_size=5))
def test_timestamp_texts_parse_like_pandas(values):
    assert_same_input(values, "timestamp")


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["double", "float", "int", "long", "string", "boolean"]),
       st.lists(st.one_of(st.none(), st.integers(-2 ** 70, 2 ** 70), st.floats(),
                          st.booleans(), st.text(max_size=3)), max_size=5))
def test_scalars_coerce_like_pandas(dtype, values):
    assert_same_input(values, dtype)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["double", "float", "int", "long"]),
       st.lists(st.one_of(st.integers(-2 ** 40, 2 ** 40), st.floats(allow_infinity=False)),
                max_size=5))
def test_numeric_outputs_convert_like_pandas(dtype, values):
    assert_same_output(pd.Series(values, dtype="float64" if any(
        isinstance(v, float) for v in values) else "int64"), dtype)


def test_run_values_calls_the_function_once_on_all_rows_and_matches_run_columns():
    calls = []

    @transform(outputs={"hour": "int", "label": "string"}, inputs={"ts": "timestamp"})
    def when(ts: pd.Series, n: pd.Series) -> pd.DataFrame:
        calls.append((len(ts), str(ts.dtype), str(n.dtype)))
        return pd.DataFrame({"hour": ts.dt.hour, "label": n.astype("string").astype(object)})

    ts = ["2013-01-01T10:15:00Z", None, "2013-01-01T23:00:00-05:00"]
    got = when.run_values({"ts": ts, "n": [1, None, 3]}, {"n": "long"})
    assert calls == [(3, "datetime64[ns, UTC]", "Int64")]
    assert got == {"hour": [10, None, 4], "label": ["1", None, "3"]}
    ref = when.run_columns({"ts": pd.Series(ts, dtype=object),
                            "n": pd.Series([1, None, 3], dtype=object)}, {"n": "long"})
    assert {k: [to_python(v) for v in s.tolist()] for k, s in ref.items()} == got


def test_run_values_errors_name_the_transform_and_column():
    @transform(output="long", inputs={"x": "long"})
    def double(x):
        return x * 2

    with pytest.raises(TransformError, match=r"transform 'double' input 'x': cannot hold \['a'\]"):
        double.run_values({"x": ["a"]})

    @transform(output="int", inputs={"x": "double"})
    def halve(x):
        return x / 2

    with pytest.raises(TransformError, match=r"transform 'halve' output 'halve': cannot hold"):
        halve.run_values({"x": [3.0]})


def test_compute_values_matches_compute():
    @transform(output="double", on_demand=True, inputs={"d": "double"},
               features={"w": "weather:wind_speed"})
    def risk(d, w):
        return d / 100 + w.fillna(0.0)

    plan = OnDemandPlan([risk], [FeatureRef("risk", None, "risk")], {"wind_speed": "double"})
    cols = {"d": [100.0, None, 300.0], "wind_speed": [1.5, 2.0, None]}
    fast = plan.compute_values(cols)
    slow = plan.compute({k: pd.Series(v, dtype=object) for k, v in cols.items()})
    assert fast == {"risk": [to_python(v) for v in slow["risk"].tolist()]} == {
        "risk": [2.5, None, 3.0]}
