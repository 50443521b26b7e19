"""The dedupe's event-time range does not depend on the driver's local time zone. Spark
gives a collected timestamp as a naive datetime in the process's time zone; the range that
picks the stored files a batch is compared with is kept in UTC on every path (the fused
pass's range job or footers, and the separate-passes path), so a replay under a new run id
in a process west of UTC writes nothing."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from sparkfs import Entity, FeatureGroup, Field
from sparkfs.offline import fused


@pytest.fixture
def new_york(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def batch(hour: int) -> pd.DataFrame:
    return pd.DataFrame({"key": ["a", "b"], "x": [1.0, 2.0],
                         "ts": pd.to_datetime([f"2013-01-01 {hour:02d}:00",
                                               f"2013-01-01 {hour:02d}:30"], utc=True)})


@pytest.mark.parametrize("path", ["range_job", "footers", "separate_passes"])
def test_a_replay_is_skipped_whatever_the_local_time_zone(fs, spark, tmp_path, monkeypatch,
                                                           new_york, path):
    g = FeatureGroup(name="tz", entities=[Entity("thing", join_keys=["key"])],
                     event_time="ts", schema=[Field("x", "double")])
    fs.apply([g])
    if path == "separate_passes":
        monkeypatch.setattr(fused, "plan", lambda *a, **k: None)

    def frame(hour: int):
        if path != "footers":
            return spark.createDataFrame(batch(hour))
        out = tmp_path / f"h{hour}.parquet"
        batch(hour).to_parquet(out, coerce_timestamps="us")
        return spark.read.parquet(f"file://{out}")

    assert time.localtime(0).tm_hour == 19  # the epoch, in New York
    # 20:00 UTC is 15:00 in New York: a range taken as local time would miss these files
    assert fs.ingest("tz", frame(20), run_id="r1").rows_written == 2
    assert fs.ingest("tz", frame(1), run_id="r2").rows_written == 2
    again = fs.ingest("tz", frame(20), run_id="r3")
    assert (again.rows_written, again.rows_skipped) == (0, 2)
    assert fs.offline.read_arrow(g).num_rows == 4
