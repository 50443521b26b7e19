"""End to end on the JVM pieces: ``spark-submit jobs/ingest.py`` to a standalone Spark
cluster with the Delta jars writes the weather history through Spark's own Delta writer
(delta-spark), ``sparkfs materialize`` (delta-rs, no Spark) pushes the latest values into a
real HBase 2.6, and ``sparkfs serve`` on that HBase returns them."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from test_cluster import REPO, ROOT, submit_ingest, weather_input
from test_serving import _body, _free_port, _start, _stop, _wait_healthy

from sparkfs.testing.plugin import unique_prefix
from sparkfs.testing.spark_cluster import spark_cluster_fixture

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.real_hbase,
              pytest.mark.delta_spark]

spark_cluster = spark_cluster_fixture(scope="module", cores=1, memory="1g")
CLI = [sys.executable, "-c", "import sys; from sparkfs.cli import main; sys.exit(main())"]


def test_ingest_on_the_cluster_materialize_into_hbase_and_serve(spark_cluster, real_hbase,
                                                                tmp_path, monkeypatch):
    for var in [v for v in os.environ if v.startswith("SPARKFS_")]:
        monkeypatch.delenv(var)
    config = tmp_path / "sparkfs.yaml"
    config.write_text(yaml.safe_dump({
        "project": "e2e", "data_dir": str(tmp_path / "store"),
        "offline": {"engine": "delta-spark"},
        "online": real_hbase.online_config(table_prefix=unique_prefix(), timeout_ms=60_000)}))
    # A real day of weather, moved so that its last hour was an hour ago: the group's 2d
    # ttl is a column-family TTL on HBase, which drops 2013 cells the moment they land.
    day = weather_input(tmp_path / "raw.parquet", "2013-01-01", "2013-01-02")
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    day["time_hour"] = day["time_hour"] + (now - dt.timedelta(hours=1) - day["time_hour"].max())
    tbl = pa.Table.from_pandas(day, preserve_index=False)
    tbl = tbl.set_column(tbl.schema.get_field_index("time_hour"), "time_hour",
                         tbl.column("time_hour").cast(pa.timestamp("us", tz="UTC")))
    pq.write_table(tbl, tmp_path / "day.parquet")

    ingest = submit_ingest(spark_cluster, config, tmp_path / "day.parquet", "weather-e2e",
                           delta=True)
    assert ingest["rows_written"] == len(day) and ingest["delta_version"] == 1
    assert ingest["engine"] == "delta-spark"

    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKFS_")}
    out = subprocess.run(CLI + ["--config", str(config), "materialize", "weather",
                                "--engine", "local"],
                         capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (result["rows_read"], result["keys_written"]) == (len(day), 3)

    port = _free_port()
    log_path = str(tmp_path / "server.log")
    proc = _start(["serve", "--config", str(config), "--repo", str(REPO), "--port", str(port),
                   "--host", "127.0.0.1"], log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log_path)
        assert httpx.get(base + "/health").json()["online_store"] == "hbase"
        body = _body(["JFK", "LGA", "EWR", "SFO"], features=["weather:temp", "weather:humid"])
        r = httpx.post(base + "/features", json=body, timeout=60)
        assert r.status_code == 200, r.text
        cols = dict(zip(r.json()["metadata"]["feature_names"], r.json()["results"]))
    finally:
        _stop(proc)
    latest = day.sort_values("time_hour").groupby("origin").tail(1).set_index("origin")
    assert cols["temp"]["values"] == [float(latest.loc[o, "temp"]) for o in ("JFK", "LGA", "EWR")] \
        + [None]
    assert cols["temp"]["statuses"] == ["present"] * 3 + ["missing"]
