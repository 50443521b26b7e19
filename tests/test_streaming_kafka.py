"""Streams from a real Kafka broker (KRaft, from Maven jars) through real Structured
Streaming: malformed messages quarantined with their payload, and exactly once across
SIGKILLs of the driver (a subprocess running jobs/stream.py) at random points.

Under ``CI=true`` these tests fail instead of skipping when Java or the jars are missing."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparkfs import Entity, FeatureGroup, Field, jvm
from sparkfs.validation import read_quarantine

ROOT = Path(__file__).resolve().parents[1]
_READY = shutil.which("java") is not None and jvm.is_fetched("kafka") and jvm.is_fetched("spark-kafka")
pytestmark = pytest.mark.skipif(
    not _READY and os.environ.get("CI") != "true",
    reason="needs java and the kafka/spark-kafka jars (python -m sparkfs.jvm fetch kafka spark-kafka)")

EVENTS = Entity("event", join_keys=["msg_id"], dtypes={"msg_id": "long"})


def events_group() -> FeatureGroup:
    return FeatureGroup("events", [EVENTS], "ts", [Field("carrier", "string"), Field("delay", "double")],
                        online=True)


REPO = '''
from sparkfs import Entity, FeatureGroup, Field
EVENTS = Entity("event", join_keys=["msg_id"], dtypes={"msg_id": "long"})
events = FeatureGroup("events", [EVENTS], "ts", [Field("carrier", "string"), Field("delay", "double")],
                      online=True)
'''


def message(i: int) -> str:
    return json.dumps({"msg_id": i, "ts": f"2013-01-01T{5 + i // 60:02d}:{i % 60:02d}:00Z",
                       "carrier": ["UA", "AA", "DL"][i % 3], "delay": None if i % 11 == 0 else i / 2})


@pytest.fixture(scope="session")
def kafka():
    from sparkfs.testing.kafka import KafkaBroker

    with KafkaBroker() as broker:
        yield broker


@pytest.mark.parametrize("collect_max_rows", [None, 0], ids=["collected", "in-spark"])
def test_malformed_messages_land_in_quarantine_with_their_payload(kafka, fs, spark, tmp_path,
                                                                 collect_max_rows):
    # None: the default, a small Kafka batch is read into the driver once as Arrow;
    # 0: the batch stays in Spark (as for a large batch): both give the same outcome
    g = events_group()
    fs.apply([g])
    topic = "mixed" if collect_max_rows is None else f"mixed{collect_max_rows}"
    kafka.create_topic(topic, partitions=1)
    good = [message(i) for i in range(5)]
    bad = ["{not json", json.dumps({"msg_id": 9, "carrier": "UA", "delay": 1.0}),
           json.dumps({"msg_id": 10, "ts": "2013-01-01T05:00:00Z", "carrier": "UA", "delay": "x"})]
    kafka.produce(topic, good[:3] + bad + good[3:])
    df = fs.stream_source(g.name, "kafka", bootstrap_servers=kafka.bootstrap_servers, topic=topic)
    extra = {} if collect_max_rows is None else {"collect_max_rows": collect_max_rows}
    query = fs.ingest_stream(g.name, df, checkpoint=str(tmp_path / "ck"), trigger="available_now",
                             **extra)
    query.awaitTermination()
    assert sorted(r["msg_id"] for r in fs.read_history(g.name).to_arrow().to_pylist()) == list(range(5))
    q = sorted(read_quarantine(fs.offline, g).to_pylist(), key=lambda r: r["_origin"])
    assert [(r["_raw_payload"], r["_reason"], r["_origin"]) for r in q] == [
        (bad[0], "not a JSON object", f"{topic}/0/3"),
        (bad[1], "missing field(s): ts", f"{topic}/0/4"),
        (bad[2], "wrong type for field(s): delay (double)", f"{topic}/0/5")]
    [status] = fs.list_streams()
    assert (status.rows_total, status.unparseable_total, status.source) == (5, 3, f"kafka:{topic}")
    [batch] = fs.stream_batches(g.name)  # the run log holds the Kafka offsets the batch read
    assert batch.offsets == {"start": [{topic: {"0": 0}}], "end": [{topic: {"0": 8}}]}
    assert (batch.rows_written, batch.rows_unparseable) == (5, 3)
    assert (batch.min_event_time, batch.max_event_time) == ("2013-01-01T05:00:00+00:00",
                                                            "2013-01-01T05:04:00+00:00")
    online = fs.get_online_features(["events:delay"], [{"msg_id": 0}, {"msg_id": 4}]).to_dict()
    assert online["delay"] == [None, 2.0]  # message 0 has a JSON null delay


@pytest.mark.parametrize("bad", [-1, 2.5, True, "100"])
def test_bad_collect_max_rows_is_refused_before_the_checkpoint_is_claimed(kafka, fs, spark, tmp_path,
                                                                         bad):
    from sparkfs.errors import ConfigError

    g = events_group()
    fs.apply([g])
    df = fs.stream_source(g.name, "kafka", bootstrap_servers=kafka.bootstrap_servers, topic="never")
    with pytest.raises(ConfigError, match="collect_max_rows must be a whole number >= 0"):
        fs.ingest_stream(g.name, df, checkpoint=str(tmp_path / "ck"), collect_max_rows=bad)
    assert not (tmp_path / "ck").exists() and fs.list_streams() == []


def _driver(tmp_path: Path, kafka, trigger: str | None) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "jobs" / "stream.py"), "--config", str(tmp_path / "cfg.yaml"),
           "--repo", str(tmp_path / "repo.py"), "--group", "events", "--source", "kafka",
           "--bootstrap-servers", kafka.bootstrap_servers, "--topic", "departures",
           "--checkpoint", str(tmp_path / "ck"), "--option", "maxOffsetsPerTrigger=15"]
    if trigger:
        cmd += ["--trigger", trigger]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYSPARK_PYTHON=sys.executable)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _status(tmp_path: Path) -> dict:
    d = tmp_path / "data" / "streams"
    files = list(d.glob("*.json")) if d.exists() else []
    return json.loads(files[0].read_text()) if files else {}


def _batch_of(status: dict) -> int:
    done = status.get("last_batch_id")
    return -1 if done is None else int(done)


def _kill_after_batch(proc: subprocess.Popen, tmp_path: Path, batch: int, rng: random.Random) -> None:
    deadline = time.monotonic() + 600
    while _batch_of(_status(tmp_path)) < batch:
        if proc.poll() is not None:
            raise AssertionError(f"driver exited early: {proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("no micro-batch finished within 600 s")
        time.sleep(0.2)
    time.sleep(rng.uniform(0, 1.5))  # a random point inside the following micro-batch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)


def test_exactly_once_across_sigkill_of_the_driver(kafka, tmp_path):
    from sparkfs import FeatureStore

    (tmp_path / "repo.py").write_text(REPO)
    (tmp_path / "cfg.yaml").write_text(json.dumps({
        "project": "test", "data_dir": str(tmp_path / "data"),
        "ingest": {"statistics": False},
        "spark": {"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": "2",
                                                  "spark.driver.memory": "1g"}}}))
    kafka.create_topic("departures", partitions=2)
    kafka.produce("departures", [message(i) for i in range(60)], keys=[str(i % 5) for i in range(60)])
    rng = random.Random(18)

    first = _driver(tmp_path, kafka, None)
    _kill_after_batch(first, tmp_path, 0, rng)
    kafka.produce("departures", [message(i) for i in range(60, 90)], keys=[str(i % 5) for i in range(60, 90)])
    done = _batch_of(_status(tmp_path))
    second = _driver(tmp_path, kafka, None)
    _kill_after_batch(second, tmp_path, done + 1, rng)
    final = _driver(tmp_path, kafka, "available_now")
    out, err = final.communicate(timeout=900)
    assert final.returncode == 0, err[-3000:]

    fs = FeatureStore({"project": "test", "data_dir": str(tmp_path / "data")})
    try:
        hist = fs.read_history("events").to_arrow().to_pylist()
        ids = sorted(r["msg_id"] for r in hist)
        assert ids == list(range(90)), f"missing {set(range(90)) - set(ids)}, rows {len(ids)}"
        # online equals offline: every key's online value is its history row
        online = fs.get_online_features(["events:carrier", "events:delay"],
                                        [{"msg_id": r["msg_id"]} for r in hist]).to_dict()
        assert online["carrier"] == [r["carrier"] for r in hist]
        assert online["delay"] == [r["delay"] for r in hist]
    finally:
        fs.close()
    assert json.loads(out.strip().splitlines()[-1])["state"] == "stopped"


def test_avro_values_land_as_in_batch_ingest_and_bad_ones_in_quarantine(kafka, fs, spark, tmp_path):
    import base64
    import datetime as dt
    import math

    import pyarrow as pa
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from pyspark.sql.avro.functions import to_avro

    from sparkfs.streaming.parse import avro_schema

    g = FeatureGroup("avro_events", [EVENTS], "ts", [Field("carrier", "string"), Field("delay", "double")],
                     online=True)
    fs.apply([g])
    t0 = dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)
    data = [(i, t0 + dt.timedelta(minutes=i), ["UA", "AA", None][i % 3],
             [float("nan"), None, i / 2, float("-inf")][i % 4]) for i in range(8)]
    schema = T.StructType([T.StructField("msg_id", T.LongType(), False),
                           T.StructField("ts", T.TimestampType(), False),
                           T.StructField("carrier", T.StringType()), T.StructField("delay", T.DoubleType())])
    # encoded by Spark's own to_avro with the group's schema, as a producer would
    encoded = [r[0] for r in spark.createDataFrame(data, schema).orderBy("msg_id").select(
        to_avro(F.struct("msg_id", "ts", "carrier", "delay"), avro_schema(g)).alias("v")).collect()]
    garbage = b"\xff\xfe not avro"
    kafka.create_topic("avro", partitions=1)
    kafka.produce("avro", [bytes(v) for v in encoded[:4]] + [garbage] + [bytes(v) for v in encoded[4:]])
    df = fs.stream_source(g.name, "kafka", bootstrap_servers=kafka.bootstrap_servers, topic="avro",
                          value_format="avro")
    query = fs.ingest_stream(g.name, df, checkpoint=str(tmp_path / "ck"), trigger="available_now")
    query.awaitTermination()

    ref = FeatureGroup("avro_ref", [EVENTS], "ts", list(g.schema), online=True)
    fs.apply([ref])
    fs.ingest(ref.name, pa.table({"msg_id": pa.array([r[0] for r in data], pa.int64()),
                                  "ts": pa.array([r[1] for r in data], pa.timestamp("us", tz="UTC")),
                                  "carrier": [r[2] for r in data],
                                  "delay": pa.array([r[3] for r in data], pa.float64())}), materialize=True)

    def shown(name):
        rows = fs.read_history(name).to_arrow().to_pylist()
        return sorted((r["msg_id"], r["ts"], r["carrier"],
                       "nan" if isinstance(r["delay"], float) and math.isnan(r["delay"]) else r["delay"])
                      for r in rows)

    assert shown(g.name) == shown(ref.name) and len(shown(g.name)) == 8
    keys = [{"msg_id": i} for i in range(8)]
    got = fs.get_online_features(["avro_events:delay", "avro_events:carrier"], keys).to_dict()
    want = fs.get_online_features(["avro_ref:delay", "avro_ref:carrier"], keys).to_dict()
    assert str(got["delay"]) == str(want["delay"]) and got["carrier"] == want["carrier"]
    [q] = read_quarantine(fs.offline, g).to_pylist()
    assert (base64.b64decode(q["_raw_payload"]), q["_reason"], q["_origin"]) == (
        garbage, "not a valid Avro record for the schema", "avro/0/4")


def test_one_driver_feeds_several_groups_from_one_topic(kafka, tmp_path):
    """``--group`` repeated: one query per group on the same topic, each with its own
    checkpoint under ``--checkpoint``; every message lands once in each group."""
    from sparkfs import FeatureStore

    repo = REPO + '''
CARRIER = Entity("carrier", join_keys=["carrier"])
by_carrier = FeatureGroup("by_carrier", [CARRIER], "ts", [Field("msg_id", "long"),
                          Field("delay", "double")], online=True)
'''
    (tmp_path / "repo.py").write_text(repo)
    (tmp_path / "cfg.yaml").write_text(json.dumps({
        "project": "test", "data_dir": str(tmp_path / "data"), "ingest": {"statistics": False},
        "spark": {"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": "2"}}}))
    kafka.create_topic("fanout", partitions=2)
    kafka.produce("fanout", [message(i) for i in range(30)], keys=[str(i % 4) for i in range(30)])
    cmd = [sys.executable, str(ROOT / "jobs" / "stream.py"), "--config", str(tmp_path / "cfg.yaml"),
           "--repo", str(tmp_path / "repo.py"), "--group", "events", "--group", "by_carrier",
           "--source", "kafka", "--bootstrap-servers", kafka.bootstrap_servers,
           "--topic", "fanout", "--checkpoint", str(tmp_path / "ck"), "--trigger", "available_now"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYSPARK_PYTHON=sys.executable)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    finals = [json.loads(line) for line in done.stdout.strip().splitlines()[-2:]]
    assert sorted(f["group"] for f in finals) == ["by_carrier", "events"]
    assert [f["state"] for f in finals] == ["stopped", "stopped"]  # both, not just the first
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["by_carrier", "events"]

    fs = FeatureStore({"project": "test", "data_dir": str(tmp_path / "data")})
    try:
        events = fs.read_history("events").to_arrow().to_pylist()
        assert sorted(r["msg_id"] for r in events) == list(range(30))
        by_carrier = fs.read_history("by_carrier").to_arrow().to_pylist()
        assert sorted(r["msg_id"] for r in by_carrier) == list(range(30))
        # online: each carrier's newest message (the latest event time wins)
        newest = {c: max(i for i in range(30) if ["UA", "AA", "DL"][i % 3] == c)
                  for c in ("UA", "AA", "DL")}
        got = fs.get_online_features(["by_carrier:msg_id"],
                                     [{"carrier": c} for c in newest]).to_dict()["msg_id"]
        assert got == list(newest.values())
    finally:
        fs.close()


def test_avro_in_the_confluent_wire_format(kafka, fs, spark, tmp_path):
    """``value_format="avro-confluent"``: the 5-byte header (magic 0, schema id) Schema-
    Registry serializers write is checked and stripped; a message without it is quarantined
    with its payload, a framed record that does not decode too."""
    import base64
    import datetime as dt

    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from pyspark.sql.avro.functions import to_avro

    from sparkfs.streaming.parse import avro_schema

    g = FeatureGroup("framed_events", [EVENTS], "ts", [Field("carrier", "string"),
                                                        Field("delay", "double")])
    fs.apply([g])
    t0 = dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)
    data = [(i, t0 + dt.timedelta(minutes=i), ["UA", None][i % 2], [None, i / 4][i % 2])
            for i in range(4)]
    schema = T.StructType([T.StructField("msg_id", T.LongType(), False),
                           T.StructField("ts", T.TimestampType(), False),
                           T.StructField("carrier", T.StringType()),
                           T.StructField("delay", T.DoubleType())])
    records = [bytes(r[0]) for r in spark.createDataFrame(data, schema).orderBy("msg_id").select(
        to_avro(F.struct("msg_id", "ts", "carrier", "delay"), avro_schema(g)).alias("v")).collect()]
    header = b"\x00" + (7).to_bytes(4, "big")
    unframed, bad_body = records[3], header + b"\xff\xfe"
    kafka.create_topic("framed", partitions=1)
    kafka.produce("framed", [header + r for r in records[:3]] + [unframed, bad_body])
    df = fs.stream_source(g.name, "kafka", bootstrap_servers=kafka.bootstrap_servers,
                          topic="framed", value_format="avro-confluent")
    fs.ingest_stream(g.name, df, checkpoint=str(tmp_path / "ck"),
                     trigger="available_now").awaitTermination()

    rows = sorted(fs.read_history(g.name).to_arrow().to_pylist(), key=lambda r: r["msg_id"])
    assert [(r["msg_id"], r["ts"], r["carrier"], r["delay"]) for r in rows] == [
        (i, t, c, d) for i, t, c, d in data[:3]]
    q = sorted(read_quarantine(fs.offline, g).to_pylist(), key=lambda r: r["_origin"])
    assert [(base64.b64decode(r["_raw_payload"]), r["_reason"], r["_origin"]) for r in q] == [
        (unframed, "no Confluent wire-format header (magic byte 0 and a schema id)", "framed/0/3"),
        (bad_body, "not a valid Avro record for the schema", "framed/0/4")]
    with pytest.raises(Exception, match="'json', 'avro' or 'avro-confluent'"):
        fs.stream_source(g.name, "kafka", bootstrap_servers=kafka.bootstrap_servers,
                         topic="framed", value_format="protobuf")
