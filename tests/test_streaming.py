"""Structured Streaming ingestion on real local Spark, real Delta and real SQLite:
files and Delta sources, replays, out-of-order events, validation policies, checkpoints.
(Kafka: tests/test_streaming_kafka.py.)"""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from sparkfs import Entity, FeatureGroup, Field
from sparkfs.errors import ValidationError
from sparkfs.validation import Expectations, expect, read_quarantine

CARRIER = Entity("carrier", join_keys=["carrier"])
T0 = dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)


def delays_group(name: str = "delays", **kw) -> FeatureGroup:
    return FeatureGroup(name, [CARRIER], "ts", [Field("delay", "double"), Field("n", "long")],
                        online=True, **kw)


def rows(n: int, start: int = 0) -> list[dict]:
    carriers = ["UA", "AA", "DL", "B6"]
    return [{"carrier": carriers[i % 4], "ts": (T0 + dt.timedelta(minutes=i)).isoformat(),
             "delay": float(i) if i % 7 else None, "n": i} for i in range(start, start + n)]


def history(fs, group: str) -> list[tuple]:
    tbl = fs.read_history(group).to_arrow()
    return sorted((r["carrier"], r["ts"], r["delay"], r["n"]) for r in tbl.to_pylist())


def _ingest(fs):
    """What the facade hands a stream: one ``fs.ingest`` per micro-batch, not materialized."""
    return lambda g, df, run_id: fs.ingest(g, df, run_id=run_id, materialize=False)


def _materialize(fs):
    from sparkfs.online.materialize import materialize

    return lambda g: materialize(fs.offline, fs.online, g, engine="local")


def run_available_now(fs, group, df, checkpoint, **kw):
    query = fs.ingest_stream(group, df, checkpoint=str(checkpoint), trigger="available_now", **kw)
    query.awaitTermination()
    return query


def batch_reference(fs, spark, group: FeatureGroup, data: list[dict]) -> list[tuple]:
    import pandas as pd

    ref = FeatureGroup(group.name + "_ref", [CARRIER], "ts", list(group.schema), online=False)
    fs.apply([ref])
    pdf = pd.DataFrame(data)
    pdf["ts"] = pd.to_datetime(pdf["ts"], utc=True)
    pdf["n"] = pdf["n"].astype("Int64")
    fs.ingest(ref.name, pa.Table.from_pandas(pdf, preserve_index=False), materialize=False)
    return history(fs, ref.name)


def test_files_source_matches_batch_ingest_and_quarantines_bad_lines(fs, spark, tmp_path):
    from sparkfs.streaming import files_source

    g = delays_group()
    fs.apply([g])
    land = tmp_path / "landing"
    land.mkdir()
    data = rows(20)
    bad = ["not json", '{"carrier": "UA", "delay": 1.0, "n": 1}',
           '{"carrier": "UA", "ts": "2013-01-01T05:00:00Z", "delay": "late", "n": 2}']
    (land / "a.json").write_text("\n".join(json.dumps(r) for r in data[:12]) + "\n" + bad[0] + "\n")
    (land / "b.json").write_text("\n".join([json.dumps(r) for r in data[12:]] + bad[1:]) + "\n")

    run_available_now(fs, g.name, files_source(spark, g, str(land)), tmp_path / "ck")

    assert history(fs, g.name) == batch_reference(fs, spark, g, data)
    q = read_quarantine(fs.offline, g).to_pylist()
    got = sorted((r["_raw_payload"], r["_reason"]) for r in q)
    assert got == sorted([
        (bad[0], "not a JSON object"),
        (bad[1], "missing field(s): ts"),
        (bad[2], "wrong type for field(s): delay (double)")])
    assert all(r["_origin"].endswith(".json") for r in q)
    # online holds the newest event per carrier, null semantics kept
    resp = fs.get_online_features(["delays:delay", "delays:n"],
                                  [{"carrier": c} for c in ["UA", "AA", "DL", "B6"]]).to_dict()
    assert resp["n"] == [16, 17, 18, 19]
    assert resp["delay"] == [16.0, 17.0, 18.0, 19.0]
    [status] = fs.list_streams()
    assert (status.group, status.rows_total, status.unparseable_total) == (g.name, 20, 3)
    assert status.shown_state() == "stopped"
    assert status.last_event_time == (T0 + dt.timedelta(minutes=19)).isoformat()
    # the run log: one record per micro-batch, with the source offsets it covered
    [batch] = fs.stream_batches(g.name)
    assert (batch.batch_id, batch.rows_input, batch.rows_written, batch.rows_unparseable) == (0, 20, 20, 3)
    assert (batch.min_event_time, batch.max_event_time) == (T0.isoformat(), status.last_event_time)
    assert batch.run_id == f"stream-{status.stream_id}-0" and batch.statistics_version == batch.delta_version
    assert batch.offsets == {"start": [None], "end": [{"logOffset": 0}]}
    assert batch.materialized_keys == 4


def test_missing_values_in_payloads_land_as_in_batch_ingest(fs, spark, tmp_path):
    from sparkfs.streaming import files_source

    g = delays_group("gaps")
    fs.apply([g])
    land = tmp_path / "in"
    land.mkdir()
    delays = [float("nan"), None, 1.5, float("inf")]
    ns = [1, None, 3, 4]
    data = [{"carrier": c, "ts": T0.isoformat(), "delay": d, "n": n}
            for c, d, n in zip(["UA", "AA", "DL", "B6"], delays, ns)]
    (land / "a.json").write_text("\n".join(json.dumps(r) for r in data) + "\n")  # NaN, Infinity, null
    run_available_now(fs, g.name, files_source(spark, g, str(land)), tmp_path / "ck")

    ref = FeatureGroup("gaps_ref", [CARRIER], "ts", list(g.schema), online=True)
    fs.apply([ref])
    fs.ingest(ref.name, pa.table({"carrier": ["UA", "AA", "DL", "B6"],
                                  "ts": pa.array([T0] * 4, pa.timestamp("us", tz="UTC")),
                                  "delay": pa.array(delays, pa.float64()),
                                  "n": pa.array(ns, pa.int64())}), materialize=True)

    def shown(rows):  # NaN != NaN: compare its text
        return sorted(tuple("nan" if isinstance(v, float) and v != v else v for v in r) for r in rows)

    assert shown(history(fs, g.name)) == shown(history(fs, ref.name))
    keys = [{"carrier": c} for c in ["UA", "AA", "DL", "B6"]]
    got = fs.get_online_features(["gaps:delay", "gaps:n"], keys).to_dict()
    want = fs.get_online_features(["gaps_ref:delay", "gaps_ref:n"], keys).to_dict()
    def plain(values):
        return ["nan" if isinstance(v, float) and v != v else v for v in values]

    assert (plain(got["delay"]), got["n"]) == (plain(want["delay"]), want["n"]) \
        == (["nan", None, 1.5, float("inf")], [1, None, 3, 4])


def test_delta_source_matches_batch_ingest(fs, spark, tmp_path):
    from deltalake import write_deltalake

    from sparkfs.streaming import delta_source

    g = delays_group("delays_d")
    fs.apply([g])
    data = rows(15)
    src = str(tmp_path / "src")
    ts_type = pa.timestamp("us", tz="UTC")
    schema = pa.schema([("carrier", pa.string()), ("ts", ts_type), ("delay", pa.float64()),
                        ("n", pa.int64())])

    def arrow(part):
        return pa.table({"carrier": [r["carrier"] for r in part],
                         "ts": pa.array([dt.datetime.fromisoformat(r["ts"]) for r in part], ts_type),
                         "delay": [r["delay"] for r in part], "n": [r["n"] for r in part]},
                        schema=schema)

    write_deltalake(src, arrow(data[:5]))
    ck = tmp_path / "ck"
    run_available_now(fs, g.name, delta_source(spark, src), ck)
    write_deltalake(src, arrow(data[5:]), mode="append")
    run_available_now(fs, g.name, delta_source(spark, src), ck)  # resumes after version 0
    assert history(fs, g.name) == batch_reference(fs, spark, g, data)


def test_replayed_micro_batch_is_a_noop_and_online_never_gets_older(fs, spark, tmp_path):
    from sparkfs.streaming import MicroBatchWriter, claim
    from sparkfs.streaming.ingest import _Tracker
    from sparkfs.streaming.status import StreamStatus

    g = delays_group("ooo")
    fs.apply([g])
    stream_id = claim(str(tmp_path / "ck"), g, "test")
    tracker = _Tracker(StreamStatus(stream_id, g.name, 1, str(tmp_path / "ck"), "test"),
                       str(tmp_path / "streams"))
    writer = MicroBatchWriter(fs.catalog, fs.offline, g, stream_id, tracker, ingest=_ingest(fs),
                              materialize=_materialize(fs))
    schema = "carrier string, ts timestamp, delay double, n long"
    newer = spark.createDataFrame([("UA", T0 + dt.timedelta(hours=2), 2.0, 2)], schema)
    older = spark.createDataFrame([("UA", T0, float("nan"), 1)], schema)

    writer(newer, 0)
    version = fs.offline.current_version(g)
    writer(newer, 0)  # Spark replays batch 0 after a crash
    assert fs.offline.current_version(g) == version
    assert tracker.status.last_batch_rows == 0
    writer(older, 1)  # an out-of-order event arrives later
    assert len(history(fs, g.name)) == 2
    resp = fs.get_online_features(["ooo:delay", "ooo:n"], [{"carrier": "UA"}]).to_dict()
    assert (resp["delay"], resp["n"]) == ([2.0], [2])
    # the run log keeps batch 0's first record (the replay wrote nothing and changed nothing)
    batches = fs.stream_batches(stream_id)
    assert [(b.batch_id, b.rows_written, b.noop) for b in batches] == [(0, 1, False), (1, 1, False)]


def test_strict_validation_stops_the_stream_and_writes_nothing_of_the_batch(fs, spark, tmp_path):
    from sparkfs.streaming import files_source, stream_error

    suite = Expectations([expect("column_values_to_be_between", column="delay", min_value=0)],
                         name="nonneg")
    g = delays_group("strict", expectations=suite, validation="strict")
    fs.apply([g])
    land = tmp_path / "in"
    land.mkdir()
    data = rows(6, start=1)
    data[3]["delay"] = -5.0
    (land / "a.json").write_text("\n".join(json.dumps(r) for r in data) + "\n")
    query = fs.ingest_stream(g.name, files_source(spark, g, str(land)), checkpoint=str(tmp_path / "ck"),
                             trigger="available_now")
    from pyspark.errors import StreamingQueryException

    with pytest.raises(StreamingQueryException):
        query.awaitTermination()
    assert "strict" in stream_error(query) or "nonneg" in stream_error(query)
    assert fs.read_history(g.name).to_arrow().num_rows == 0
    [status] = fs.list_streams()
    assert status.state == "failed" and status.last_error


def test_quarantine_policy_keeps_the_stream_going(fs, spark, tmp_path):
    from sparkfs.streaming import files_source

    suite = Expectations([expect("column_values_to_be_between", column="delay", min_value=0)],
                         name="nonneg")
    g = delays_group("quar", expectations=suite, validation="quarantine")
    fs.apply([g])
    land = tmp_path / "in"
    land.mkdir()
    data = rows(6, start=1)
    data[3]["delay"] = -5.0
    (land / "a.json").write_text("\n".join(json.dumps(r) for r in data) + "\n")
    run_available_now(fs, g.name, files_source(spark, g, str(land)), tmp_path / "ck")
    assert fs.read_history(g.name).to_arrow().num_rows == 5
    assert [r["n"] for r in read_quarantine(fs.offline, g).to_pylist()] == [4]
    [batch] = fs.stream_batches(g.name)
    assert (batch.validation, batch.rows_quarantined, batch.rows_written) == ("quarantined", 1, 5)


def test_checkpoint_of_another_group_or_schema_is_refused(fs, spark, tmp_path):
    from sparkfs.streaming import files_source

    a, b = delays_group("ga"), delays_group("gb")
    fs.apply([a, b])
    land = tmp_path / "in"
    land.mkdir()
    ck = str(tmp_path / "ck")
    run_available_now(fs, a.name, files_source(spark, a, str(land)), ck)
    with pytest.raises(ValidationError, match="belongs to feature group 'ga'"):
        fs.ingest_stream(b.name, files_source(spark, b, str(land)), checkpoint=ck)
    with pytest.raises(ValidationError, match="streaming DataFrame"):
        fs.ingest_stream(a.name, spark.range(1), checkpoint=str(tmp_path / "ck2"))


def test_windowed_aggregates_stay_fresh_per_micro_batch(fs, spark, tmp_path):
    from sparkfs import Aggregation
    from sparkfs.serving.online import get_online_features
    from sparkfs.streaming import MicroBatchWriter, claim
    from sparkfs.streaming.ingest import _Tracker
    from sparkfs.streaming.status import StreamStatus

    g = FeatureGroup("delay_aggs", [CARRIER], "ts", [Field("delay", "double")], online=True,
                     aggregations=[Aggregation("delay", "sum", ["1h"]),
                                   Aggregation("delay", "count", ["1h"])])
    fs.apply([g])
    sid = claim(str(tmp_path / "ck"), g, "test")
    writer = MicroBatchWriter(fs.catalog, fs.offline, g, sid,
                              _Tracker(StreamStatus(sid, g.name, 1, "ck", "test"),
                                       str(tmp_path / "streams")),
                              ingest=_ingest(fs), materialize=_materialize(fs))
    schema = "carrier string, ts timestamp, delay double"
    at = T0 + dt.timedelta(minutes=50)

    def read():
        r = get_online_features(fs.catalog, fs.online,
                                ["delay_aggs:delay_sum_1h", "delay_aggs:delay_count_1h"],
                                [{"carrier": "UA"}], now=at).to_dict()
        return r["delay_sum_1h"][0], r["delay_count_1h"][0]

    writer(spark.createDataFrame([("UA", T0, 10.0), ("UA", T0 + dt.timedelta(minutes=20), 5.0)], schema), 0)
    assert read() == (15.0, 2)
    writer(spark.createDataFrame([("UA", T0 + dt.timedelta(minutes=40), 1.0)], schema), 1)
    assert read() == (16.0, 3)
