"""@transform: one pandas function run by pandas, one row and a Spark pandas UDF; derived
features computed at ingest and stored in Delta."""

from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, Field, TransformError, transform
from sparkfs.errors import DefinitionError
from sparkfs.transforms import Transform, apply_derived_pandas

UTC = dt.UTC


@transform(output="double")
def spread(temp: pd.Series, dewp: pd.Series) -> pd.Series:
    return temp - dewp


@transform(outputs={"hour": "int", "is_weekend": "boolean", "label": "string"},
           inputs={"ts": "timestamp"})
def when(ts: pd.Series) -> pd.DataFrame:
    local = ts.dt.tz_convert("America/New_York")
    return pd.DataFrame({"hour": local.dt.hour, "is_weekend": local.dt.dayofweek >= 5,
                         "label": local.dt.strftime("%a %H:%M")})


def test_pandas_call_takes_series_or_frame_and_coerces_outputs():
    s = spread(pd.Series([50.0, 40.0]), pd.Series([45.5, None]))
    assert s.name == "spread" and str(s.dtype) == "float64"
    assert s.iloc[0] == 4.5 and np.isnan(s.iloc[1])
    frame = pd.DataFrame({"dewp": [1.0], "temp": [3.0], "other": ["x"]})
    assert spread(frame).tolist() == [2.0]
    out = when(pd.DataFrame({"ts": pd.to_datetime(["2013-01-05 17:00Z", None], utc=True)}))
    assert list(out.columns) == ["hour", "is_weekend", "label"]
    assert str(out["hour"].dtype) == "Int32" and str(out["is_weekend"].dtype) == "boolean"
    assert out["hour"].tolist()[0] == 12 and out["hour"].isna().tolist() == [False, True]
    assert out["label"].tolist() == ["Sat 12:00", None]


def test_row_calls_the_same_function_and_returns_python_values():
    assert spread.row(temp=50.0, dewp=45.5) == 4.5
    assert spread.row(temp=50.0, dewp=None) is None
    assert spread.row(temp=float("nan"), dewp=1.0) is None
    got = when.row(ts=dt.datetime(2013, 1, 5, 17, 0, tzinfo=UTC))
    assert got == {"hour": 12, "is_weekend": True, "label": "Sat 12:00"}
    assert type(got["hour"]) is int and type(got["is_weekend"]) is bool
    # a naive datetime is read as UTC; other zones are converted
    assert when.row(ts=dt.datetime(2013, 1, 5, 17, 0))["hour"] == 12
    ny = pd.Timestamp("2013-07-04 09:30", tz="America/New_York")
    assert when.row(ts=ny)["hour"] == 9
    # the function decides what a missing input gives: NaT >= 5 is False in pandas
    assert when.row(ts=None) == {"hour": None, "is_weekend": False, "label": None}
    with pytest.raises(TransformError, match=r"needs exactly \['temp', 'dewp'\]; missing \['dewp'\]"):
        spread.row(temp=1.0)


def test_declarations_are_checked_at_decoration_time():
    with pytest.raises(DefinitionError, match="declares no output dtype"):
        transform(lambda x: x)
    with pytest.raises(DefinitionError, match=r"\*args/\*\*kwargs"):
        @transform(output="double")
        def bad(*cols):
            return cols[0]
    with pytest.raises(DefinitionError, match="dtype 'decimal'"):
        @transform(output="decimal")
        def bad2(x):
            return x
    with pytest.raises(DefinitionError, match="only on-demand transforms can"):
        @transform(output="double", features={"x": "weather:temp"})
        def bad3(x):
            return x
    with pytest.raises(DefinitionError, match="not a parameter"):
        @transform(output="double", inputs={"y": "double"})
        def bad4(x):
            return x


def test_bad_outputs_are_refused_with_the_transform_named():
    @transform(output="int")
    def fractional(x):
        return x / 3

    with pytest.raises(TransformError, match="transform 'fractional' output 'fractional': "
                                             r"cannot hold .* as int \(not whole numbers\)"):
        fractional(pd.Series([1, 2]))

    @transform(output="double")
    def short(x):
        return x.head(1)

    with pytest.raises(TransformError, match=r"returned 1 value\(s\) for output 'short' from 3"):
        short(pd.Series([1.0, 2.0, 3.0]))

    @transform(output="double")
    def boom(x):
        raise KeyError("nope")

    with pytest.raises(TransformError, match=r"transform 'boom' \(.*:.*boom\) failed on 2 row\(s\): "
                                             "KeyError"):
        boom(pd.Series([1.0, 2.0]))

    @transform(outputs={"a": "long", "b": "long"})
    def only_a(x):
        return pd.DataFrame({"a": x})

    with pytest.raises(TransformError, match=r"returned no column\(s\) \['b'\]"):
        only_a(pd.Series([1]))


def _module(tmp_path, name: str, body: str):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fingerprint_covers_source_declaration_and_dependencies(tmp_path):
    base = """
        from sparkfs import transform

        def helper(x):
            return x * {factor}

        @transform(output="double", deps=[])
        def scaled(x):
            return helper(x) + 1
        """
    a = _module(tmp_path, "fp_a", base.format(factor=2))
    b = _module(tmp_path, "fp_b", base.format(factor=2))
    c = _module(tmp_path, "fp_c", base.format(factor=3))
    assert a.scaled.fingerprint == b.scaled.fingerprint      # same code, same hash
    assert a.scaled.fingerprint != c.scaled.fingerprint      # helper changed -> new hash
    d = _module(tmp_path, "fp_d", base.format(factor=2).replace('output="double"', 'output="float"'))
    assert d.scaled.fingerprint != a.scaled.fingerprint      # declaration is part of it

    chained = """
        from sparkfs import transform
        from fp_a import scaled as inner

        @transform(output="double", deps=[inner])
        def outer(x):
            return inner(x) * 2
        """
    sys.modules["fp_a"] = a
    try:
        e = _module(tmp_path, "fp_e", chained)
        sys.modules["fp_a"] = c
        f = _module(tmp_path, "fp_f", chained)
    finally:
        del sys.modules["fp_a"]
    assert e.outer.fingerprint != f.outer.fingerprint        # a dependency transform changed
    assert e.outer(pd.Series([1.0])).tolist() == [6.0]


def test_importing_a_transform_module_does_not_import_pyspark():
    code = ("import sys, jobs.flights.transforms, jobs.flights.features, sparkfs.ondemand, "
            "sparkfs.serving.app, sparkfs.testing.parity\n"
            "assert 'pyspark' not in sys.modules, sorted(m for m in sys.modules if 'spark' in m)\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=_root(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def _root() -> str:
    import os

    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_spark_column_matches_pandas_including_nulls_and_structs(spark):
    ts = [dt.datetime(2013, 1, 5, 17, 0, tzinfo=UTC), None, dt.datetime(2013, 3, 10, 7, 30, tzinfo=UTC)]
    pdf = pd.DataFrame({"temp": [50.0, None, -10.0], "dewp": [45.5, 3.0, -12.25], "ts": ts})
    sdf = spark.createDataFrame(pdf.assign(ts=pd.to_datetime(pdf["ts"], utc=True)),
                                "temp double, dewp double, ts timestamp")
    out = when.with_columns(sdf.withColumn("spread", spread.spark("temp", "dewp")), "ts")
    assert dict(out.dtypes)["hour"] == "int" and dict(out.dtypes)["is_weekend"] == "boolean"
    rows = out.orderBy("dewp").collect()
    expected = when(pdf).assign(spread=spread(pdf))
    expected = expected.assign(dewp=pdf["dewp"]).sort_values("dewp").reset_index(drop=True)
    for r, (_, e) in zip(rows, expected.iterrows()):
        assert (r["spread"] is None and pd.isna(e["spread"])) or r["spread"] == e["spread"]
        assert r["label"] == (None if pd.isna(e["label"]) else e["label"])
        assert r["hour"] == (None if pd.isna(e["hour"]) else int(e["hour"]))
    with pytest.raises(TransformError, match=r"takes 2 column\(s\)"):
        spread.spark("temp")


def _weather_group(transforms=()):
    airport = Entity("airport", join_keys=["origin"])
    return FeatureGroup(
        name="weather", entities=[airport], event_time="time_hour",
        schema=[Field("temp", "double"), Field("dewp", "double"), Field("wind_speed", "double")],
        transforms=list(transforms))


@transform(outputs={"wind_band": "string", "windy": "boolean"})
def wind_bands(wind_speed: pd.Series) -> pd.DataFrame:
    band = pd.cut(wind_speed, [-1, 5, 15, 1000], labels=["calm", "breeze", "strong"])
    return pd.DataFrame({"wind_band": band.astype(object), "windy": wind_speed > 15})


def test_derived_features_land_in_delta_with_the_right_values(fs):
    from jobs.flights import data

    g = _weather_group([spread, wind_bands])
    fs.apply([g])
    w = data.weather_frame()
    batch = w[w["time_hour"] < "2013-01-02"][["origin", "time_hour", "temp", "dewp", "wind_speed"]]
    result = fs.ingest("weather", batch, run_id="w-jan1")
    assert result.rows_written == len(batch) > 50
    assert result.transform_fingerprints == {"spread": spread.fingerprint,
                                             "wind_bands": wind_bands.fingerprint}
    hist = fs.read_history("weather").to_pandas().sort_values(["origin", "time_hour"])
    expected = apply_derived_pandas(g, batch).sort_values(["origin", "time_hour"])
    assert list(hist.columns[:8]) == ["origin", "time_hour", "temp", "dewp", "wind_speed",
                                      "spread", "wind_band", "windy"]
    np.testing.assert_allclose(hist["spread"].to_numpy(dtype=float),
                               (expected["temp"] - expected["dewp"]).to_numpy(dtype=float))
    assert hist["wind_band"].tolist() == expected["wind_band"].tolist()
    assert hist["windy"].tolist() == expected["windy"].tolist()
    assert fs.registry.get("feature_group", "weather", 1)["transforms"][0]["fingerprint"] == \
        spread.fingerprint


def test_ingest_refuses_a_group_whose_transform_code_is_not_imported(fs, spark, store_config):
    fs.apply([_weather_group([spread])])
    other = FeatureStore(store_config, spark=spark)   # a fresh process: registry copy, no code
    g = other.get_feature_group("weather")
    assert not isinstance(g.transforms[0], Transform)
    batch = pd.DataFrame({"origin": ["JFK"], "time_hour": [pd.Timestamp("2013-01-01", tz="UTC")],
                          "temp": [1.0], "dewp": [0.0], "wind_speed": [3.0]})
    with pytest.raises(TransformError, match="transform 'spread' .*whose code is not imported"):
        other.ingest("weather", batch)
    assert other.offline.current_version(g) == 0   # nothing written


def test_derived_transform_with_missing_input_column_is_refused(fs):
    @transform(output="double")
    def needs_humid(humid):
        return humid

    fs.apply([_weather_group([needs_humid])])
    batch = pd.DataFrame({"origin": ["JFK"], "time_hour": [pd.Timestamp("2013-01-01", tz="UTC")],
                          "temp": [1.0], "dewp": [0.0], "wind_speed": [3.0]})
    with pytest.raises(TransformError, match=r"transform 'needs_humid' needs column\(s\) \['humid'\]"):
        fs.ingest("weather", batch)


def test_spark_session_time_zone_does_not_change_results(spark):
    from jobs.flights.transforms import dep_calendar

    instants = [dt.datetime(2013, 3, 10, 6, 59, tzinfo=UTC), dt.datetime(2013, 3, 10, 7, 0, tzinfo=UTC),
                dt.datetime(2013, 11, 3, 5, 30, tzinfo=UTC), dt.datetime(2013, 11, 3, 6, 30, tzinfo=UTC)]
    expected = [dep_calendar.row(sched_dep_ts=t) for t in instants]
    key = "spark.sql.session.timeZone"
    before = spark.conf.get(key)
    try:
        for tz in ("America/Los_Angeles", "Asia/Kolkata"):
            spark.conf.set(key, tz)
            sdf = spark.createDataFrame([(i, t) for i, t in enumerate(instants)],
                                        "i int, sched_dep_ts timestamp")
            rows = dep_calendar.with_columns(sdf, "sched_dep_ts").orderBy("i").collect()
            assert [{"hour_of_day": r["hour_of_day"], "day_of_week": r["day_of_week"]}
                    for r in rows] == expected, tz
    finally:
        spark.conf.set(key, before)
    assert [e["hour_of_day"] for e in expected] == [1, 3, 1, 1]   # NY DST jumps and repeats
