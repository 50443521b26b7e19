"""The online feature service end to end: a real `sparkfs serve` process on 127.0.0.1
over the real flights repo (SQLite store), its vectors, every bad-input case,
concurrent clients and the access log."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pandas as pd
import pyarrow as pa
import pytest

from jobs.flights import features as repo
from sparkfs import FeatureStore
from sparkfs.repo import definitions_in
from sparkfs.serving.app import encode_response
from sparkfs.transforms import apply_derived_pandas

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
MAX_BATCH = 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLI = "import sys; from sparkfs.cli import main; sys.exit(main())"


def _start(args: list[str], log_path: str) -> subprocess.Popen:
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _wait_healthy(base: str, proc: subprocess.Popen, log_path: str, timeout: float = 120) -> None:
    """Wait until ``GET /health`` answers 200; stop the server and fail with its log if it
    exits or does not come up in time."""
    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            _stop(proc)
            raise RuntimeError("service did not start:\n" + open(log_path).read())
        time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """Registry + online rows from the real 2013 weather (last reading per airport,
    re-stamped to an hour ago so the 2d ttl holds), then the service in its own process."""
    from jobs.flights import data

    tmp = tmp_path_factory.mktemp("serving")
    conf = tmp / "conf.yaml"
    conf.write_text(f"project: serving\ndata_dir: {tmp / 'data'}\n"
                    f"serving: {{max_batch_size: {MAX_BATCH}}}\n")
    fs = FeatureStore.from_config(str(conf))
    fs.apply(definitions_in(repo))
    w = data.weather_frame()
    latest = w.sort_values("time_hour").groupby("origin").tail(1).copy()
    latest["time_hour"] = pd.Timestamp(NOW - dt.timedelta(hours=1))
    latest.loc[latest["origin"] == "LGA", "wind_gust"] = float("nan")
    latest = apply_derived_pandas(fs.get_feature_group("weather"), latest)
    fs.online.write_batch(fs.get_feature_group("weather"),
                          pa.Table.from_pandas(latest, preserve_index=False))
    port = _free_port()
    log_path = str(tmp / "server.log")
    proc = _start(["serve", "--config", str(conf), "--repo", "jobs/flights/features.py",
                   "--port", str(port), "--host", "127.0.0.1"], log_path)
    base = f"http://127.0.0.1:{port}"
    _wait_healthy(base, proc, log_path)
    yield {"base": base, "fs": fs, "log": log_path, "weather": latest.set_index("origin")}
    _stop(proc)
    fs.close()


def post(service, body, **kw):
    return httpx.post(service["base"] + "/features", json=body, timeout=30, **kw)


FEATURES = ["weather:temp", "weather:wind_gust", "weather:dewpoint_spread", "dep_calendar:*",
            "weather_risk:weather_risk", "route_key:route_key"]


def _body(origins, features=FEATURES):
    n = len(origins)
    return {"features": features, "entity_rows": [{"origin": o} for o in origins],
            "request_data": {"sched_dep_ts": ["2013-01-01T10:15:00Z"] * n,
                             "distance": [float(100 * (i + 1)) for i in range(n)],
                             "dest": ["LAX" if i % 2 else "" for i in range(n)]}}


def test_health_and_no_pyspark_in_the_server(service):
    h = httpx.get(service["base"] + "/health").json()
    assert h["status"] == "ok" and h["online_store"] == "sqlite"
    assert h["pyspark_loaded"] is False
    assert h["max_batch_size"] == MAX_BATCH


def test_vectors_with_statuses_match_the_in_process_reader(service):
    origins = ["JFK", "LGA", "EWR", "ORD"]
    r = post(service, _body(origins))
    assert r.status_code == 200, r.text
    got = r.json()
    names = got["metadata"]["feature_names"]
    assert names == ["origin", "temp", "wind_gust", "dewpoint_spread", "hour_of_day",
                     "day_of_week", "weather_risk", "route_key"]
    cols = {n: res for n, res in zip(names, got["results"])}
    w = service["weather"]
    assert cols["temp"]["values"] == [float(w.loc[o, "temp"]) for o in origins[:3]] + [None]
    assert cols["temp"]["statuses"] == ["present"] * 3 + ["missing"]
    assert cols["wind_gust"]["values"][1] is None                 # NaN goes out as null
    assert cols["dewpoint_spread"]["values"][0] == pytest.approx(
        float(w.loc["JFK", "temp"] - w.loc["JFK", "dewp"]))
    assert cols["hour_of_day"]["values"] == [5] * 4               # 10:15Z is 05:15 in New York
    assert cols["route_key"]["values"] == [None, "LGA-LAX", None, "ORD-LAX"]
    assert cols["temp"]["event_timestamps"][0].startswith(
        (NOW - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H"))
    body = _body(origins)
    expected = encode_response(service["fs"].get_online_features(
        body["features"], body["entity_rows"], request_data=body["request_data"]))
    assert got["metadata"].pop("transform_fingerprints") == {
        "dep_calendar": repo.dep_calendar.fingerprint, "weather_risk": repo.weather_risk.fingerprint,
        "route_key": repo.route_key.fingerprint}
    assert json.loads(json.dumps(expected)) == got                # same as in-process


def test_feast_style_columnar_entities(service):
    body = _body(["JFK", "EWR"])
    body["entities"] = {"origin": ["JFK", "EWR"]}
    del body["entity_rows"]
    r = post(service, body)
    assert r.status_code == 200 and r.json()["results"][0]["values"] == ["JFK", "EWR"]


@pytest.mark.parametrize("body,status,message", [
    ({"features": ["weather:nope"], "entity_rows": [{"origin": "JFK"}]}, 404,
     "feature group 'weather' version 1 has no feature 'nope'"),
    ({"features": ["storms:temp"], "entity_rows": [{"origin": "JFK"}]}, 404,
     "feature group 'storms' is not registered"),
    ({"features": ["dep_calendar:minute"], "entity_rows": [{"origin": "JFK"}],
      "request_data": {"sched_dep_ts": ["2013-01-01T00:00:00Z"]}}, 404,
     "on-demand transform 'dep_calendar' has no output 'minute'"),
    ({"features": ["weather:temp"]}, 422, "exactly one of entity_rows"),
    ({"features": [], "entity_rows": [{"origin": "JFK"}]}, 422, "features"),
    ({"entity_rows": [{"origin": "JFK"}]}, 422, "features: Field required"),
    ({"features": ["weather:temp"], "entity_rows": [{"origin": "JFK"}], "extra": 1}, 422,
     "extra: Extra inputs are not permitted"),
    ({"features": ["weather:temp"], "entity_rows": [{"origin": 7}]}, 422,
     "join key 'origin' must be a string"),
    ({"features": ["weather:temp"], "entity_rows": [{"airport": "JFK"}]}, 422,
     "entity row 0 has no value for join key 'origin'"),
    ({"features": ["weather temp"], "entity_rows": [{"origin": "JFK"}]}, 422,
     "feature reference 'weather temp' is malformed"),
    ({"features": ["dep_calendar:hour_of_day"], "entity_rows": [{"origin": "JFK"}]}, 422,
     "'dep_calendar' needs ['sched_dep_ts'] in request_data"),
    ({"features": ["dep_calendar:hour_of_day"], "entity_rows": [{"origin": "JFK"}],
      "request_data": {"sched_dep_ts": ["yesterday-ish"]}}, 422, "cannot hold"),
    ({"features": ["weather:temp"], "entity_rows": [{"origin": "JFK"}, {"origin": "EWR"}],
      "request_data": {"distance": [1.0]}}, 422, "has 1 values for 2 entity rows"),
    ({"features": ["weather:temp"], "entities": {"origin": ["JFK"], "x": [1, 2]}}, 422,
     "entities columns differ in length"),
])
def test_bad_input_gets_a_clear_status_and_no_stack_trace(service, body, status, message):
    r = post(service, body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert message in detail
    assert "Traceback" not in r.text and 'File "' not in r.text


def test_malformed_json_and_oversized_batches(service):
    r = httpx.post(service["base"] + "/features", content=b'{"features": ["weather:temp"',
                   headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON decode error" in r.json()["detail"]
    r = httpx.post(service["base"] + "/features", content=b"[1, 2]",
                   headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = post(service, _body(["JFK"] * (MAX_BATCH + 1)))
    assert r.status_code == 413
    assert f"{MAX_BATCH + 1} entity rows exceed serving.max_batch_size={MAX_BATCH}" in \
        r.json()["detail"]
    assert post(service, _body(["JFK"] * MAX_BATCH)).status_code == 200
    assert httpx.get(service["base"] + "/nowhere").status_code == 404


def test_openapi_and_feature_groups(service):
    spec = httpx.get(service["base"] + "/openapi.json").json()
    assert {"/features", "/health", "/feature-groups"} <= set(spec["paths"])
    assert "FeaturesRequest" in json.dumps(spec["components"])
    fg = httpx.get(service["base"] + "/feature-groups").json()
    weather = next(g for g in fg["feature_groups"] if g["name"] == "weather")
    assert "dewpoint_spread" in [f["name"] for f in weather["features"]]
    assert weather["transforms"][0]["fingerprint"] == repo.dewpoint_spread.fingerprint
    od = {t["name"]: t for t in fg["on_demand"]}
    assert set(od) == {"dep_calendar", "weather_risk", "route_key"}
    assert od["weather_risk"]["fingerprint"] == repo.weather_risk.fingerprint
    assert od["weather_risk"]["features"]["visib"] == "weather:visib"


def test_concurrent_clients_get_their_own_answers(service):
    choices = ["JFK", "LGA", "EWR", "SFO"]

    def one(i: int):
        origins = [choices[(i + k) % 4] for k in range(1 + i % 7)]
        r = post(service, _body(origins, ["weather:temp", "route_key:route_key"]))
        return origins, r

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(64)))
    w = service["weather"]
    for origins, r in results:
        assert r.status_code == 200
        cols = r.json()["results"]
        assert cols[0]["values"] == origins
        assert cols[1]["values"] == [float(w.loc[o, "temp"]) if o in w.index else None
                                     for o in origins]
        assert cols[2]["values"] == [None if i % 2 == 0 else f"{o}-LAX"
                                     for i, o in enumerate(origins)]


def test_one_access_log_line_per_request(service):
    marker = f"/features?probe={time.time_ns()}"
    before = open(service["log"]).read().count(" POST /features ")
    for origins in (["JFK"], ["JFK", "EWR", "LGA"]):
        httpx.post(service["base"] + marker, json=_body(origins), timeout=30)
    httpx.post(service["base"] + "/features", json={"features": ["weather:nope"],
                                                    "entity_rows": [{"origin": "JFK"}]})
    time.sleep(0.5)
    lines = [ln for ln in open(service["log"]).read().splitlines() if " POST /features " in ln]
    assert len(lines) - before == 3
    assert "status=200 batch=1 latency_ms=" in lines[-3]
    assert "status=200 batch=3 latency_ms=" in lines[-2]
    assert "status=404 batch=1 latency_ms=" in lines[-1]


def test_service_refuses_repo_code_that_differs_from_the_registry(tmp_path):
    conf = tmp_path / "conf.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\n")
    repo_path = tmp_path / "odrepo.py"
    source = textwrap.dedent("""
        from sparkfs import transform

        @transform(output="double", on_demand=True, inputs={"x": "double"})
        def plus_one(x):
            return x + 1
        """)
    repo_path.write_text(source)
    fs = FeatureStore.from_config(str(conf))
    from sparkfs.repo import load_repo

    fs.apply(load_repo(str(repo_path)))
    fs.close()
    repo_path.write_text(source.replace("x + 1", "x + 2"))
    proc = _start(["serve", "--config", str(conf), "--repo", str(repo_path),
                   "--port", str(_free_port())], str(tmp_path / "log"))
    try:
        rc = proc.wait(120)
    finally:
        _stop(proc)
    out = open(tmp_path / "log").read()
    assert rc == 2
    assert "on-demand transform 'plus_one': the repo's code" in out
    assert "Traceback" not in out


def test_missing_transform_code_is_503_and_crashes_are_500_without_traces(tmp_path, caplog):
    from fastapi.testclient import TestClient

    from sparkfs.serving.app import create_app

    config = {"data_dir": str(tmp_path / "data")}
    applier = FeatureStore(config)
    applier.apply(definitions_in(repo))
    applier.close()
    fs = FeatureStore(config)                  # like `sparkfs serve` without --repo
    client = TestClient(create_app(fs), raise_server_exceptions=False)
    r = client.post("/features", json={"features": ["route_key:route_key"],
                                       "entity_rows": [{"origin": "JFK", "dest": "LAX"}]})
    assert r.status_code == 503
    assert "'route_key' is registered" in r.json()["detail"]

    def crash(*args, **kwargs):                # fault injection: a bug deep in a store
        raise RuntimeError("disk on fire")

    fs.get_online_features = crash
    with caplog.at_level("ERROR", logger="sparkfs.serving"):
        r = client.post("/features", json={"features": ["weather:temp"],
                                           "entity_rows": [{"origin": "JFK"}]})
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error (RuntimeError); see the server log"}
    assert "disk on fire" in caplog.text       # the traceback goes to the log only
    fs.close()
