"""``sparkfs serve --workers``, start-up failures, and the response encoder's shortcuts
(shared event-time text, orjson) giving exactly the body the plain encoder gives."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys

from test_serving import CLI, ROOT, _free_port, _start, _stop, _wait_healthy

from sparkfs.online.response import OnlineResponse
from sparkfs.serving.app import _dumps, _iso, _jsonable, encode_response


def _serve(args, tmp_path, timeout=120):
    conf = tmp_path / "conf.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\n")
    return subprocess.run([sys.executable, "-c", CLI, "serve", "--config", str(conf), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_workers_must_be_positive(tmp_path):
    r = _serve(["--workers", "0", "--port", "0"], tmp_path)
    assert r.returncode == 2
    assert "--workers must be at least 1, got 0" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_busy_port_with_several_workers_is_a_clear_failure(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _serve(["--workers", "2", "--port", str(port)], tmp_path)
    assert r.returncode != 0
    assert "address already in use" in r.stderr.lower()
    assert "Traceback" not in r.stderr


def test_two_workers_serve_vectors_health_and_access_logs(tmp_path):
    import httpx

    from sparkfs import FeatureStore

    conf = tmp_path / "conf.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\n")
    repo_path = tmp_path / "repo.py"
    repo_path.write_text(
        "from sparkfs import Entity, FeatureGroup, Field, transform\n"
        "g = FeatureGroup('w', [Entity('a', ['origin'])], 'ts', [Field('temp', 'double')])\n"
        "@transform(output='double', on_demand=True, inputs={'x': 'double'},\n"
        "           features={'t': 'w:temp'})\n"
        "def warmer(x, t):\n"
        "    return t + x\n")
    fs = FeatureStore.from_config(str(conf))
    from sparkfs.repo import load_repo

    objs = load_repo(str(repo_path))
    fs.apply(objs)
    import pyarrow as pa

    g = fs.get_feature_group("w")
    fs.online.write_batch(g, pa.table({"origin": ["JFK"], "temp": [39.0], "ts": [
        dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)]}))
    fs.close()
    port = _free_port()
    log_path = str(tmp_path / "log")
    proc = _start(["serve", "--config", str(conf), "--repo", str(repo_path), "--port",
                   str(port), "--workers", "2"], log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log_path)
        body = {"features": ["w:temp", "warmer:warmer"], "entity_rows": [{"origin": "JFK"},
                {"origin": "EWR"}], "request_data": {"x": [1.5, 2.0]}}
        with httpx.Client(base_url=base, timeout=30) as c:
            got = [c.post("/features", json=body).json() for _ in range(6)]
            assert c.post("/features", json={"features": ["nope:x"], "entity_rows": [{}]}
                          ).status_code == 404
        for r in got:
            assert r["metadata"]["feature_names"] == ["origin", "temp", "warmer"]
            assert [x["values"] for x in r["results"]] == [["JFK", "EWR"], [39.0, None],
                                                           [40.5, None]]
            assert r["results"][1]["event_timestamps"] == ["2013-01-01T05:00:00+00:00", None]
    finally:
        _stop(proc)
    out = open(log_path).read()
    assert "with 2 worker process(es)" in out
    assert out.count("POST /features status=200 batch=2") == 6
    assert "POST /features status=404" in out
    assert "Traceback" not in out


def _plain_encode(response):
    """The encoder before its shortcuts: every value formatted on its own."""
    columns = response.to_dict()
    n = len(response)
    results = [{"values": columns[k], "statuses": ["present"] * n, "event_timestamps": [None] * n}
               for k in response.join_keys]
    for name in response.feature_names:
        results.append({"values": _jsonable(columns[name], response.dtypes.get(name)),
                        "statuses": response.statuses[name],
                        "event_timestamps": [_iso(t) for t in response.event_times[name]]})
    return {"metadata": {"feature_names": response.join_keys + response.feature_names},
            "results": results}


def test_shared_event_times_encode_like_one_by_one():
    utc = dt.UTC
    t1 = dt.datetime(2013, 1, 1, 5, tzinfo=utc)
    t2 = dt.datetime(2013, 1, 1, 5, 0, 0, 250, tzinfo=utc)
    t3 = dt.datetime(2013, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))  # == t1
    shared = [t1, None, t2, t1]
    r = OnlineResponse({"origin": ["JFK", "EWR", "LGA", "JFK"]})
    r.add_feature("temp", [1.5, None, float("nan"), 1.5], event_times=shared, dtype="double")
    r.add_feature("dewp", [1.0, None, 2.0, 1.0], event_times=shared, dtype="double")
    r.add_feature("other", [1, 2, 3, 4], event_times=[t3, t3, t1, None], dtype="long")
    r.add_feature("od", [1, 2, 3, None], dtype="int")
    r.add_feature("od2", ["a", None, "b", "c"], dtype="string")
    got = encode_response(r)
    assert got == _plain_encode(r)
    assert got["results"][3]["event_timestamps"] == [t3.isoformat(), t3.isoformat(),
                                                      t1.isoformat(), None]
    shared.append(None)  # the response keeps its own copy
    assert len(r.event_times["temp"]) == 4


def test_json_body_is_the_standard_library_document():
    body = {"metadata": {"feature_names": ["a", "é"]},
            "results": [{"values": [1.5, None, 10 ** 16, 1e-7, "x\u2028y", True, 2 ** 63 - 1],
                         "statuses": ["present"], "event_timestamps": [None]}]}
    assert json.loads(_dumps(body)) == body
    huge = {"values": [2 ** 70]}  # past orjson's 64-bit ints: the standard library encodes it
    assert _dumps(huge) == b'{"values":[1180591620717411303424]}'
    stamped = {"values": [dt.datetime(2013, 1, 1)]}  # default=str, as before
    assert json.loads(_dumps(stamped)) == {"values": ["2013-01-01 00:00:00"]}
