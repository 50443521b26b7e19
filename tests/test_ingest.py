"""Ingestion into Delta history: happy path, refusals (no new version), idempotency,
corrections, time travel, and reading without Spark."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap

import pandas as pd
import pyarrow as pa
import pytest
from conftest import WRITER_MATRIX

from sparkfs import Entity, FeatureGroup, Field, ValidationError

pytestmark = WRITER_MATRIX

UTC = dt.UTC


def ts(h, d=1):
    return dt.datetime(2013, 1, d, h, tzinfo=UTC)


@pytest.fixture
def weather(fs):
    airport = Entity("airport", join_keys=["origin"])
    g = FeatureGroup(name="weather", entities=[airport], event_time="time_hour",
                     schema=[Field("temp", "double"), Field("wind_speed", "double"),
                             Field("station", "string"), Field("gusts", "int")], ttl="2d")
    fs.apply([airport, g])
    return g


def batch(rows):
    return pd.DataFrame(rows, columns=["origin", "time_hour", "temp", "wind_speed", "station", "gusts"])


GOOD = [("JFK", ts(1), 39.0, 10.0, "a", 1), ("JFK", ts(2), 40.0, 11.0, "a", 2),
        ("LGA", ts(1), 38.5, None, "b", None)]


def test_ingest_pandas_lands_in_one_commit(fs, weather):
    r = fs.ingest("weather", batch(GOOD), run_id="r1")
    assert (r.delta_version, r.rows_input, r.rows_written, r.rows_skipped) == (1, 3, 3, 0)
    assert fs.offline.current_version(weather) == 1
    got = fs.read_history("weather").to_pandas().sort_values(["origin", "time_hour"])
    assert got["temp"].tolist() == [39.0, 40.0, 38.5]
    assert got["_run_id"].unique().tolist() == ["r1"]
    assert str(got["time_hour"].dt.tz) == "UTC"
    assert got["gusts"].isna().tolist() == [False, False, True]


def test_ingest_spark_dataframe_and_arrow(fs, weather, spark):
    sdf = spark.createDataFrame(batch(GOOD[:2]))
    assert fs.ingest("weather", sdf).rows_written == 2
    tbl = pa.Table.from_pandas(batch(GOOD[2:]), preserve_index=False)
    r = fs.ingest("weather", tbl)
    assert (r.rows_written, r.delta_version) == (1, 2)
    assert fs.read_history("weather").to_spark().count() == 3


def test_same_run_id_is_a_noop(fs, weather):
    fs.ingest("weather", batch(GOOD), run_id="r1")
    again = fs.ingest("weather", batch(GOOD + [("EWR", ts(3), 1.0, 1.0, "c", 1)]), run_id="r1")
    assert again.noop and again.rows_written == 0 and again.delta_version == 1
    assert fs.offline.current_version(weather) == 1


def test_identical_rows_are_not_stored_twice_and_corrections_are(fs, weather):
    fs.ingest("weather", batch(GOOD), run_id="r1")
    corrected = [("JFK", ts(1), 39.0, 10.0, "a", 1),      # identical: skipped
                 ("JFK", ts(2), 41.5, 11.0, "a", 2),      # correction: stored
                 ("LGA", ts(1), 38.5, None, "b", None)]   # identical incl. nulls: skipped
    r = fs.ingest("weather", batch(corrected), run_id="r2")
    assert (r.rows_written, r.rows_skipped, r.delta_version) == (1, 2, 2)
    hist = fs.read_history("weather").to_pandas()
    jfk2 = hist[(hist.origin == "JFK") & (hist.time_hour == pd.Timestamp(ts(2)))]
    assert sorted(jfk2["temp"]) == [40.0, 41.5]
    later = jfk2.sort_values("_commit_time")["temp"].tolist()
    assert later[-1] == 41.5  # the correction has the later commit time
    # a replay of everything under a new run id writes nothing and makes no version
    r3 = fs.ingest("weather", batch(GOOD), run_id="r3")
    assert (r3.rows_written, r3.noop) == (0, True)
    assert fs.offline.current_version(weather) == 2


def test_replay_under_a_new_run_id_writes_no_file(fs, weather):
    """Every row already stored: no Delta commit and no file written, not even for a
    moment (the table folder is not touched: no staging folder, no owner file)."""
    import os

    first = fs.ingest("weather", batch(GOOD), run_id="r1")
    uri = fs.offline.table_uri(weather)

    def files() -> set[str]:
        return {os.path.join(d, f) for d, _, names in os.walk(uri) for f in names}

    before, stamp = files(), os.stat(uri).st_mtime_ns
    r = fs.ingest("weather", batch(list(reversed(GOOD))), run_id="r2")
    assert (r.rows_input, r.rows_written, r.rows_skipped, r.noop) == (3, 0, 3, True)
    assert fs.offline.current_version(weather) == first.delta_version
    assert files() == before
    if r.engine == "delta-rs":
        assert os.stat(uri).st_mtime_ns == stamp


@pytest.mark.parametrize("rows, message", [
    ([("JFK", ts(1), 1.0, 1.0, "a", 1), (None, ts(2), 1.0, 1.0, "a", 1)],
     "1 row(s) have a null join key 'origin'"),
    ([("JFK", None, 1.0, 1.0, "a", 1), ("LGA", None, 1.0, 1.0, "a", 1)],
     "2 row(s) have a null event time 'time_hour'"),
    ([("JFK", ts(1), 1.0, 1.0, "a", 1), ("JFK", ts(1), 2.0, 1.0, "a", 1)],
     "2 row(s) give different values for the same join keys and event time"),
    ([("JFK", ts(1), 1.0, 1.0, "a", 2**40)], "1 value(s) of 'gusts' do not fit its dtype int"),
])
def test_bad_rows_refuse_the_whole_batch(fs, weather, rows, message):
    with pytest.raises(ValidationError) as err:
        fs.ingest("weather", batch(rows))
    assert message in str(err.value) and "nothing was written" in str(err.value)
    assert fs.offline.current_version(weather) == 0


def test_missing_column_and_wrong_type_are_refused(fs, weather):
    df = batch(GOOD).drop(columns=["temp"])
    with pytest.raises(ValidationError, match=r"missing column\(s\) \['temp'\]"):
        fs.ingest("weather", df)
    df = batch(GOOD)
    df["temp"] = df["temp"].astype(str)
    with pytest.raises(ValidationError, match="column 'temp' has type string, expected double"):
        fs.ingest("weather", df)
    assert fs.offline.current_version(weather) == 0


def test_naive_and_zoned_timestamps_are_utc(fs, weather):
    df = batch([("JFK", pd.Timestamp("2013-01-01 05:00"), 1.0, 1.0, "a", 1),
                ("LGA", pd.Timestamp("2013-01-01 00:00", tz="America/New_York"), 1.0, 1.0, "a", 1)])
    df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True) if df["time_hour"].dtype == object \
        else df["time_hour"]
    fs.ingest("weather", df)
    got = fs.read_history("weather").to_pandas().sort_values("origin")
    assert got["time_hour"].tolist() == [pd.Timestamp("2013-01-01 05:00", tz="UTC")] * 2


def test_time_travel_by_version_and_as_of(fs, weather):
    r1 = fs.ingest("weather", batch(GOOD[:1]))
    fs.ingest("weather", batch(GOOD[1:]))
    assert fs.read_history("weather", version=r1.delta_version).to_arrow().num_rows == 1
    assert fs.read_history("weather").to_arrow().num_rows == 3
    times = fs.offline.commit_times(weather)
    assert fs.read_history("weather", as_of=times[1]).delta_version == 1
    from sparkfs import NotFoundError
    with pytest.raises(NotFoundError, match="versions 0..2"):
        fs.read_history("weather", version=7)


def test_history_reads_without_spark(fs, weather, tmp_path):
    fs.ingest("weather", batch(GOOD))
    code = textwrap.dedent(f"""
        import sys
        from sparkfs import FeatureStore
        fs = FeatureStore({{"data_dir": {str(fs.config.data_dir)!r}}})
        df = fs.read_history("weather").to_pandas()
        assert len(df) == 3, df
        assert "pyspark" not in sys.modules
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_unknown_group_and_bad_run_id(fs, weather):
    from sparkfs import NotFoundError
    with pytest.raises(NotFoundError, match="'nope' is not registered"):
        fs.ingest("nope", batch(GOOD))
    with pytest.raises(ValidationError, match="run_id"):
        fs.ingest("weather", batch(GOOD), run_id="")


def test_file_statistics_let_reads_skip_files(fs, weather):
    fs.ingest("weather", batch([("JFK", ts(1, d=1), 1.0, 1.0, "a", 1)]))
    fs.ingest("weather", batch([("JFK", ts(1, d=20), 2.0, 1.0, "a", 1)]))
    assert len(fs.offline.files(weather)) == 2
    assert len(fs.offline.files(weather, event_time_range=(ts(0, d=19), ts(5, d=21)))) == 1
