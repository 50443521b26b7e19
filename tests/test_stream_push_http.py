"""``POST /push/{group}`` and the stream/push metrics on ``GET /metrics`` (real app, real
registry, real SQLite online store and real Delta history, in process; no Spark)."""

from __future__ import annotations

import math
import os

from fastapi.testclient import TestClient

from sparkfs import Entity, FeatureGroup, FeatureStore, Field
from sparkfs.serving.app import create_app
from sparkfs.serving.auth import new_key
from sparkfs.streaming.status import StreamStatus, status_dir

USER = Entity("user", join_keys=["user_id"])
PUSHER, READER = new_key(), new_key()


def groups() -> list[FeatureGroup]:
    return [FeatureGroup("clicks", [USER], "ts", [Field("clicks", "long"), Field("score", "double")],
                         online=True),
            FeatureGroup("views", [USER], "ts", [Field("views", "long")], online=True)]


def _client(tmp_path, **serving):
    fs = FeatureStore({"data_dir": str(tmp_path / "data"), "serving": serving})
    fs.apply(groups())
    return fs, TestClient(create_app(fs), raise_server_exceptions=False)


def test_push_lands_online_and_offline_with_missing_values(tmp_path):
    fs, c = _client(tmp_path)
    rows = [{"user_id": "a", "ts": "2026-01-01T10:00:00Z", "clicks": 3, "score": "NaN"},
            {"user_id": "b", "ts": 1767261600, "clicks": None, "score": 1.5},   # epoch seconds
            {"user_id": "a", "ts": "2026-01-01T09:00:00Z", "clicks": 1, "score": 0.5}]  # older
    with c:
        r = c.post("/push/clicks", json={"rows": rows})
        assert r.status_code == 200, r.text
        assert (r.json()["rows"], r.json()["group_version"], r.json()["to"]) == (3, 1, "online_and_offline")
        online = fs.get_online_features(["clicks:clicks", "clicks:score"],
                                        [{"user_id": "a"}, {"user_id": "b"}]).to_dict()
        assert online["clicks"] == [3, None]          # the newest event of 'a' won
        assert math.isnan(online["score"][0]) and online["score"][1] == 1.5
    # leaving the client shuts the app down: the queued Delta appends are committed
    stored = fs.offline.read_arrow(fs.get_feature_group("clicks")).sort_by([("user_id", "ascending"),
                                                                            ("ts", "ascending")])
    assert stored["clicks"].to_pylist() == [1, 3, None]
    scores = stored["score"].to_pylist()
    assert scores[0] == 0.5 and math.isnan(scores[1]) and scores[2] == 1.5
    assert stored["ts"][2].as_py().isoformat() == "2026-01-01T10:00:00+00:00"
    fs.close()


def test_push_refuses_bad_bodies_and_writes_nothing(tmp_path):
    fs, c = _client(tmp_path, max_batch_size=2)
    good = {"user_id": "a", "ts": "2026-01-01T10:00:00Z", "clicks": 1, "score": 1.0}
    with c:
        r = c.post("/push/clicks", json={"rows": [good, {**good, "clicks": "many"}]})
        assert r.status_code == 422 and "'clicks'" in r.json()["detail"] and \
            "nothing was written" in r.json()["detail"]
        r = c.post("/push/clicks", json={"rows": [good, {**good, "user_id": None}]})
        assert r.status_code == 422 and "null 'user_id'" in r.json()["detail"]
        r = c.post("/push/clicks", json={"rows": [{k: v for k, v in good.items() if k != "score"}]})
        assert r.status_code == 422 and "score" in r.json()["detail"]
        assert c.post("/push/clicks", json={"rows": [good] * 3}).status_code == 413
        assert c.post("/push/clicks", json={"rows": []}).status_code == 422
        assert c.post("/push/clicks", json={"rows": [good], "to": "nowhere"}).status_code == 422
        r = c.post("/push/nope", json={"rows": [good]})
        assert r.status_code == 404 and "nope" in r.json()["detail"]
        text = c.get("/metrics").text
        assert 'sparkfs_push_refused_requests_total{group="clicks"} 3.0' in text
    assert fs.offline.read_arrow(fs.get_feature_group("clicks")).num_rows == 0
    assert fs.get_online_features(["clicks:clicks"], [{"user_id": "a"}]).to_dict()["clicks"] == [None]
    fs.close()


def test_push_needs_the_push_scope_of_the_group(tmp_path):
    auth = {"enabled": True, "keys": [
        {"name": "pusher", "sha256": PUSHER[1], "scopes": ["push:clicks"]},
        {"name": "reader", "sha256": READER[1], "scopes": ["features:read"]}]}
    fs, c = _client(tmp_path, auth=auth)
    row = {"user_id": "a", "ts": "2026-01-01T10:00:00Z", "views": 2}
    with c:
        assert c.post("/push/views", json={"rows": [row]}).status_code == 401
        r = c.post("/push/views", json={"rows": [row]},
                   headers={"authorization": f"Bearer {PUSHER[0]}"})
        assert r.status_code == 403 and "push:views" in r.json()["detail"]
        r = c.post("/push/views", json={"rows": [row]},
                   headers={"authorization": f"Bearer {READER[0]}"})
        assert r.status_code == 403
        r = c.post("/push/clicks", json={"rows": [{**row, "clicks": 1, "score": None}]},
                   headers={"x-api-key": PUSHER[0]})
        assert r.status_code == 200 and r.json()["rows"] == 1  # extra columns are ignored, as in ingest
    fs.close()


def test_metrics_show_streams_and_push_counters(tmp_path):
    fs, c = _client(tmp_path)
    d = status_dir(fs.config.data_dir)
    StreamStatus("s1", "clicks", 1, "/ck/a", "kafka:clicks", pid=os.getpid(), last_batch_id=7,
                 last_batch_time="2026-01-01T10:00:02+00:00", rows_total=120, lag=5,
                 rows_per_s=60.0, last_event_time="2026-01-01T10:00:00+00:00",
                 freshness_s=2.0).write(d)
    StreamStatus("s2", "views", 1, "/ck/b", "files:/in", pid=2**22 + 4321).write(d)
    with c:
        assert c.post("/push/views", json={"rows": [
            {"user_id": "a", "ts": "2026-01-01T10:00:00Z", "views": 2}], "to": "online"}).status_code == 200
        text = c.get("/metrics").text
    lv = 'group="clicks@1",source="kafka:clicks",stream_id="s1"'
    for line in (f"sparkfs_stream_rows_total{{{lv}}} 120.0", f"sparkfs_stream_lag_offsets{{{lv}}} 5.0",
                 f"sparkfs_stream_last_batch_id{{{lv}}} 7.0", f"sparkfs_stream_freshness_seconds{{{lv}}} 2.0",
                 f"sparkfs_stream_last_event_timestamp_seconds{{{lv}}} 1.7672616e+09",
                 f"sparkfs_stream_up{{{lv}}} 1.0",
                 'sparkfs_stream_up{group="views@1",source="files:/in",stream_id="s2"} 0.0',
                 'sparkfs_push_rows_total{group="views",to="online"} 1.0',
                 "sparkfs_push_offline_rows_pending 0.0",
                 "sparkfs_evaluation_log_rows"):           # the deployments' metrics stay
        assert line in text, line
    fs.close()
