"""The service's error contract in process (TestClient over the real app, real SQLite
store and registry): 4xx for bad input, 503 for an unavailable dependency, never a 500
for a client's mistake, never a long echo; bounded plan cache; fail fast and recover when
the online store hangs (a fault-injecting wrapper around the real store)."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from sparkfs import Entity, FeatureGroup, FeatureStore, Field
from sparkfs.serving.app import create_app
from sparkfs.serving.online import plan_cache


def _store(tmp_path, **serving) -> FeatureStore:
    fs = FeatureStore({"data_dir": str(tmp_path / "data"), "serving": serving})
    airport = Entity("airport", ["origin"])
    groups = [FeatureGroup("weather", [airport], "time_hour", [Field("temp", "double")]),
              FeatureGroup("planes", [Entity("plane", ["tailnum"])], "time_hour",
                           [Field("seats", "int")])]
    fs.apply(groups)
    fs.online.write_batch(groups[0], pa.table({
        "origin": ["JFK"], "temp": [39.0],
        "time_hour": [dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)]}))
    return fs


@pytest.fixture
def client(tmp_path):
    fs = _store(tmp_path, max_string_length=64, max_json_depth=6, max_body_bytes=64 * 1024,
                max_batch_size=10, plan_cache_size=4)
    with TestClient(create_app(fs), raise_server_exceptions=False) as c:
        c.fs = fs
        yield c
    fs.close()


def _post(client, raw: str | bytes):
    return client.post("/features", content=raw, headers={"content-type": "application/json"})


@pytest.mark.parametrize("raw,status,message", [
    # a lone surrogate: not text; was a 500 from deep in the store
    ('{"features": ["weather:temp"], "entity_rows": [{"origin": "\\ud800"}]}', 422,
     "JSON decode error"),
    # a version no integer column holds: was a 500 (OverflowError)
    ('{"features": ["weather@99999999999999999999:temp"], "entity_rows": [{"origin": "JFK"}]}',
     422, "with a version of 1 to 9 ASCII digits"),
    # Arabic-Indic digit one: not a version
    ('{"features": ["weather@\\u0661:temp"], "entity_rows": [{"origin": "JFK"}]}', 422,
     "is malformed"),
    ('{"features": ["weather:temp"], "entity_rows": [{"origin": "JFK"}], "entities": {}}', 422,
     "exactly one of entity_rows"),
    ('{"features": ["weather:temp"], "entity_rows": null}', 422, "entity_rows"),
    ('{"features": ["weather:temp"], "entities": {"origin": ["JFK"] }, "x": [[[[[[1]]]]]]}', 422,
     "JSON nested deeper than serving.max_json_depth=6"),
    ('{"features": ["weather:temp"], "entities": {"origin": ["JFK"]}}', 200, None),
])
def test_bad_values_are_4xx_with_a_reason(client, raw, status, message):
    r = _post(client, raw)
    assert r.status_code == status, r.text
    if message:
        assert message in r.json()["detail"]


def test_a_lone_surrogate_from_python_is_a_validation_error(client):
    from sparkfs.errors import ValidationError

    with pytest.raises(ValidationError, match="not valid Unicode text"):
        client.fs.get_online_features(["weather:temp"], [{"origin": "\ud800"}])


def test_huge_values_are_refused_without_being_echoed(client):
    secret = "A" * 100_000
    r = client.post("/features", json={"features": ["weather:temp"],
                                       "entity_rows": [{"origin": secret}]})
    assert r.status_code == 413, r.text          # over max_body_bytes? no: 100 KB > 64 KB
    assert len(r.text) < 300
    r = client.post("/features", json={"features": ["weather:temp"],
                                       "entity_rows": [{"origin": "B" * 1000}]})
    assert r.status_code == 422
    assert "exceeds serving.max_string_length=64" in r.json()["detail"]
    assert "B" * 17 not in r.text                # at most a 16-character prefix
    r = client.post("/features", json={"features": ["weather:temp"],
                                       "entity_rows": [{"origin": 12345678901234567890123}]})
    assert r.status_code == 422 and len(r.json()["detail"]) < 200
    r = client.post("/features", json={"features": ["weather:temp"],
                                       "entities": {"origin": ["JFK"] * 11}})
    assert r.status_code == 413
    assert "11 entity rows exceed serving.max_batch_size=10" in r.json()["detail"]


def test_an_unreachable_online_store_is_503(tmp_path):
    fs = _store(tmp_path)
    bad = FeatureStore({"data_dir": str(tmp_path / "data"),
                        "online": {"type": "sqlite", "path": str(tmp_path)}})  # a directory
    with TestClient(create_app(bad), raise_server_exceptions=False) as c:
        r = c.post("/features", json={"features": ["weather:temp"],
                                      "entity_rows": [{"origin": "JFK"}]})
    assert r.status_code == 503, r.text
    assert "cannot be opened" in r.json()["detail"]
    hbase = FeatureStore({"data_dir": str(tmp_path / "data"), "online": {
        "type": "hbase", "host": "127.0.0.1", "port": 9, "retries": 0, "timeout_ms": 500}})
    with TestClient(create_app(hbase), raise_server_exceptions=False) as c:
        r = c.post("/features", json={"features": ["weather:temp"],
                                      "entity_rows": [{"origin": "JFK"}]})
    assert r.status_code == 503 and "unreachable" in r.json()["detail"], r.text
    for s in (fs, bad, hbase):
        s.close()


class _Hanging:
    """Fault injection: the real store, whose reads hang while ``hang`` is set."""

    def __init__(self, store):
        self.store = store
        self.hang = threading.Event()
        self.release = threading.Event()

    def read(self, *args, **kwargs):
        if self.hang.is_set():
            self.release.wait(30)
        return self.store.read(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_a_hanging_store_fails_fast_with_503_and_the_service_recovers(tmp_path):
    fs = _store(tmp_path, store_timeout_s=0.5, store_retry_after_s=0.5)
    _ = fs.online  # open it, then wrap it
    hanging = fs._online = _Hanging(fs._online)
    body = {"features": ["weather:temp"], "entity_rows": [{"origin": "JFK"}]}
    with TestClient(create_app(fs), raise_server_exceptions=False) as c:
        assert c.post("/features", json=body).status_code == 200
        hanging.hang.set()
        # the SQLite fast path runs cached plans on the loop; a different list reads anew
        slow = {**body, "features": ["weather:*"]}
        r = c.post("/features", json=slow)
        assert r.status_code == 503 and "no answer within serving.store_timeout_s=0.5" in \
            r.json()["detail"]
        r = c.post("/features", json=slow)        # fails fast while the guard is open
        assert r.status_code == 503 and "retry in" in r.json()["detail"]
        assert int(r.headers["retry-after"]) >= 1
        assert c.get("/health").status_code == 200
        hanging.hang.clear()
        hanging.release.set()
        time.sleep(0.6)                            # the guard's retry_after passes
        r = c.post("/features", json=slow)
        assert r.status_code == 200, r.text
    fs.close()


class _StuckKey:
    """Fault injection: the real store, whose reads of one key block until released."""

    def __init__(self, store, key: str):
        self.store = store
        self.key = key
        self.entered = threading.Event()
        self.release = threading.Event()
        self.inside = False

    def read(self, group, keys, features):
        if (self.key,) in keys:
            self.inside = True
            self.entered.set()
            self.release.wait(60)                  # a bound on a broken test, not a timing
            self.inside = False
        return self.store.read(group, keys, features)

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_a_stuck_sqlite_read_does_not_block_other_requests(tmp_path):
    """A cached plan's SQLite read runs off the event loop: while one request is stuck in
    the store, another one is answered."""
    fs = _store(tmp_path, store_timeout_s=120)
    _ = fs.online
    stuck = fs._online = _StuckKey(fs._online, "STUCK")
    body = {"features": ["weather:temp"], "entity_rows": [{"origin": "JFK"}]}
    with TestClient(create_app(fs), raise_server_exceptions=False) as c:
        assert c.post("/features", json=body).status_code == 200     # the plan is cached
        first: dict = {}
        t = threading.Thread(target=lambda: first.setdefault("r", c.post(
            "/features", json={**body, "entity_rows": [{"origin": "STUCK"}]})))
        t.start()
        assert stuck.entered.wait(60)
        r = c.post("/features", json=body)
        still_stuck = stuck.inside
        stuck.release.set()
        t.join(60)
        assert r.status_code == 200 and r.json()["results"][1]["values"] == [39.0]
        assert still_stuck, "the second request was answered only after the first one"
        assert first["r"].status_code == 200
        assert first["r"].json()["results"][1]["statuses"] == ["missing"]
    fs.close()


def test_a_stuck_read_of_a_cached_plan_is_503_within_the_deadline(tmp_path):
    fs = _store(tmp_path, store_timeout_s=0.5, store_retry_after_s=60)
    _ = fs.online
    stuck = fs._online = _StuckKey(fs._online, "STUCK")
    body = {"features": ["weather:temp"], "entity_rows": [{"origin": "JFK"}]}
    with TestClient(create_app(fs), raise_server_exceptions=False) as c:
        assert c.post("/features", json=body).status_code == 200     # the plan is cached
        r = c.post("/features", json={**body, "entity_rows": [{"origin": "STUCK"}]})
        assert r.status_code == 503, r.text
        assert "no answer within serving.store_timeout_s=0.5" in r.json()["detail"]
        assert stuck.inside                      # abandoned, still waiting in the store
        stuck.release.set()
    fs.close()


def test_the_plan_cache_is_bounded(client):
    for i in range(12):
        features = ["weather:temp"] + ["weather:temp"] * 0 + ["planes:seats"] * (i % 2)
        body = {"features": features, "entity_rows": [{"origin": "JFK", "tailnum": f"N{i}"}],
                "full_feature_names": bool(i % 4 // 2)}
        assert client.post("/features", json=body).status_code == 200
    for i in range(20):
        client.post("/features", json={"features": [f"weather@{i + 1}:temp"],
                                       "entity_rows": [{"origin": "JFK"}]})
    assert len(plan_cache(client.fs.catalog)) <= 4


def test_a_frozen_hbase_is_503_within_its_budget_and_then_fails_fast(tmp_path):
    import socket

    frozen = socket.socket()                     # accepts TCP (backlog), never answers
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(64)
    data = str(tmp_path / "data")
    applier = _store(tmp_path)
    applier.close()
    fs = FeatureStore({"data_dir": data, "serving": {"store_timeout_s": 30,
                                                     "store_retry_after_s": 60},
                       "online": {"type": "hbase", "host": "127.0.0.1",
                                  "port": frozen.getsockname()[1], "timeout_ms": 300,
                                  "retries": 5, "backoff_ms": 50}})
    body = {"features": ["weather:temp"], "entity_rows": [{"origin": "JFK"}]}
    with TestClient(create_app(fs), raise_server_exceptions=False) as c:
        r = c.post("/features", json=body)
        assert r.status_code == 503, r.text
        detail = r.json()["detail"]
        assert "unreachable" in detail and "within its budget of 1.8 s" in detail
        tries = int(detail.split("failed after ", 1)[1].split()[0])
        assert 1 <= tries < 6                  # each try costs more than one timeout
        r = c.post("/features", json=body)     # the guard answers without waiting
        assert r.status_code == 503 and "retry in" in r.json()["detail"]
    fs.close()
    frozen.close()


def test_serve_refuses_a_port_out_of_range():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "import sys; from sparkfs.cli import main; "
                        "sys.exit(main())", "serve", "--port", "70000"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "port 70000 is outside 0..65535" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_app_started_again_serves_again(tmp_path):
    """An app whose lifespan ends and starts again (a test client entered twice, an ASGI
    host restarting it) takes requests again: the shutdown closed its store guard, the
    next startup opens it (it answered 503 "shutting down" for ever)."""
    fs = _store(tmp_path)
    app = create_app(fs)
    body = {"features": ["weather:temp"], "entities": {"origin": ["JFK"]}}
    for _ in range(2):
        with TestClient(app) as c:
            r = c.post("/features", json=body)
            assert r.status_code == 200, r.text
            got = r.json()
            temp = got["results"][got["metadata"]["feature_names"].index("temp")]
            assert temp["values"] == [39.0]
    fs.close()
