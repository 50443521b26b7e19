"""The real Kafka broker fixture: KRaft single node from Maven jars, read by Spark's connector."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from sparkfs import jvm

pytestmark = pytest.mark.skipif(
    shutil.which("java") is None or not (jvm.is_fetched("kafka") and jvm.is_fetched("spark-kafka")),
    reason="needs java and the kafka/spark-kafka jars (python -m sparkfs.jvm fetch kafka spark-kafka)")


def test_broker_round_trip_through_spark_kafka_source(tmp_path):
    from sparkfs.testing.kafka import KafkaBroker

    with KafkaBroker() as kafka:
        kafka.create_topic("departures", partitions=2)
        rows = [{"carrier": c, "delay": float(i)} for i, c in enumerate(["UA", "AA", "DL"] * 10)]
        assert kafka.produce("departures", [json.dumps(r) for r in rows],
                             keys=[r["carrier"] for r in rows]) == 30
        # Spark's Kafka source needs its connector on the classpath: a driver of its own, so the
        # suite's shared session is left alone.
        script = tmp_path / "read.py"
        script.write_text(READ_SCRIPT)
        proc = subprocess.run([sys.executable, str(script), kafka.bootstrap_servers,
                               ",".join(str(p) for p in jvm.jars("spark-kafka"))],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        got = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        assert sorted(r["delay"] for r in got) == [float(i) for i in range(30)]
    assert not kafka.running


READ_SCRIPT = """
import sys
from pyspark.sql import SparkSession
servers, jars = sys.argv[1], sys.argv[2]
spark = (SparkSession.builder.master("local[1]").appName("kafka-test").config("spark.jars", jars)
         .config("spark.ui.enabled", "false").getOrCreate())
df = (spark.read.format("kafka").option("kafka.bootstrap.servers", servers)
      .option("subscribe", "departures").option("startingOffsets", "earliest").load())
for row in df.selectExpr("CAST(value AS STRING) AS v").collect():
    print(row.v)
spark.stop()
"""
