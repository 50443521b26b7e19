"""The serving-time transform guard through a real ``sparkfs serve`` process: a deployment
whose model was trained with other on-demand transform code than the service imports is
refused (503 naming the transform and both fingerprints) with ``serving.transform_guard:
refuse``, reported on ``/health`` and ``/metrics`` and logged at start-up; a deployment
trained with the served code is served. In ``warn`` mode (in process) it is served and
reported."""

from __future__ import annotations

import datetime as dt

import httpx
import pandas as pd
import pytest
import yaml
from test_serving import _free_port, _start, _stop, _wait_healthy

from sparkfs import FeatureStore
from sparkfs.repo import load_repo

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)

REPO = '''
import pandas as pd
from sparkfs import Entity, FeatureGroup, Field, transform

airport = Entity("airport", join_keys=["origin"])
weather = FeatureGroup("weather", [airport], "time_hour", [Field("temp", "double")],
                       online=True)


@transform(outputs={{"hour": "int"}}, on_demand=True, inputs={{"ts": "timestamp"}})
def hour_of(ts: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({{"hour": ts.dt.hour{change}}}, index=ts.index)
'''


def _train(fs, name):
    from sklearn.linear_model import LinearRegression

    spine = pd.DataFrame({"origin": ["JFK", "LGA", "JFK"],
                          "ts": pd.to_datetime([NOW - dt.timedelta(minutes=m)
                                                for m in (30, 20, 10)], utc=True),
                          "y": [1.0, 2.0, 4.0]})
    ts = fs.create_training_set(name, spine, ["weather:temp", "hour_of:hour"], "ts",
                                engine="duckdb")
    data = ts.to_pandas()
    return fs.log_model(LinearRegression().fit(data[["temp", "hour"]], data["y"]), "m",
                        training_set=name)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Model 1 trained with ``hour_of`` as first written, then the code changed and applied,
    model 2 trained with the new code: deployment ``old`` serves model 1, ``new`` model 2."""
    tmp = tmp_path_factory.mktemp("tguard")
    (tmp / "repo_v1.py").write_text(REPO.format(change=""))
    (tmp / "repo_v2.py").write_text(REPO.format(change=" % 24"))
    fs = FeatureStore({"project": "test", "data_dir": str(tmp / "data")})
    v1 = load_repo(str(tmp / "repo_v1.py"))
    fs.apply(v1)
    rows = pd.DataFrame({"origin": ["JFK", "LGA"], "time_hour": [NOW - dt.timedelta(hours=1)] * 2,
                         "temp": [30.0, 28.0]})
    fs.ingest("weather", rows, run_id="w1", materialize=False)
    fs.materialize("weather", engine="local")
    _train(fs, "trained_v1")
    fs.deploy("old", model="m", version=1)
    v2 = load_repo(str(tmp / "repo_v2.py"))
    fs.apply(v2)
    _train(fs, "trained_v2")
    fs.deploy("new", model="m", version=2)
    fps = [next(o for o in objs if getattr(o, "name", "") == "hour_of").fingerprint
           for objs in (v1, v2)]
    assert fps[0] != fps[1]
    yield fs, tmp, fps
    fs.close()


BODY = {"entity_rows": [{"origin": "JFK"}], "request_data": {"ts": [NOW.isoformat()]}}


def test_refuse_mode_over_http(store):
    fs, tmp, (fp1, fp2) = store
    conf = tmp / "refuse.yaml"
    conf.write_text(yaml.safe_dump({"project": "test", "data_dir": fs.config.data_dir,
                                    "serving": {"transform_guard": "refuse"}}))
    port = _free_port()
    log = str(tmp / "serve.log")
    proc = _start(["--config", str(conf), "serve", "--repo", str(tmp / "repo_v2.py"),
                   "--port", str(port), "--workers", "1", "--log-level", "warning"], log)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log, timeout=300)
        r = httpx.post(base + "/deployments/new/predict", json=BODY, timeout=60)
        assert r.status_code == 200, r.text
        r = httpx.post(base + "/deployments/old/predict", json=BODY, timeout=60)
        assert r.status_code == 503, r.text
        detail = r.json()["detail"]
        assert "'hour_of'" in detail and fp1 in detail and fp2 in detail
        assert "deployment 'old'" in detail and "Traceback" not in r.text
        health = httpx.get(base + "/health", timeout=30).json()
        assert health["status"] == "degraded"
        assert health["transform_guard"] == {
            "mode": "refuse", "unchecked": [],
            "mismatches": [{"deployment": "old", "transform": "on_demand:hour_of"}]}
        assert fp1 not in str(health)  # /health is open to everyone: names only
        metrics = httpx.get(base + "/metrics", timeout=30).text
        assert ('sparkfs_transform_guard_mismatches{deployment="old",'
                'transform="on_demand:hour_of"} 1.0') in metrics
        assert 'sparkfs_transform_guard_refused_total{deployment="old"} 1.0' in metrics
        assert 'deployment="new"' not in metrics.split("sparkfs_transform_guard_refused")[0] \
            .split("sparkfs_transform_guard_mismatches")[-1]
    finally:
        _stop(proc)
    text = open(log).read()
    assert "transform guard (refuse)" in text and fp1 in text  # said at start-up


def test_warn_mode_serves_and_reports_and_off_is_silent(store):
    from fastapi.testclient import TestClient

    from sparkfs.serving.app import create_app

    fs, _, (fp1, fp2) = store
    assert fs.config.serving.transform_guard == "warn"  # the default
    client = TestClient(create_app(fs))
    r = client.post("/deployments/old/predict", json=BODY)
    assert r.status_code == 200, r.text
    health = client.get("/health").json()
    assert health["status"] == "degraded"
    assert health["transform_guard"]["mismatches"] == [
        {"deployment": "old", "transform": "on_demand:hour_of"}]
    guard = client.app.state.transform_guard
    (m,) = guard.mismatches("old")
    assert (m.kind, m.name, m.trained, m.served, m.training_set) == \
        ("on_demand", "hour_of", fp1, fp2, "trained_v1@1")
    assert guard.mismatches("new") == []

    off = FeatureStore({"project": "test", "data_dir": fs.config.data_dir,
                        "serving": {"transform_guard": "off"}})
    try:
        health = TestClient(create_app(off)).get("/health").json()
        assert health["status"] == "ok" and "transform_guard" not in health
    finally:
        off.close()


def test_bad_mode_is_refused_in_config(store):
    from sparkfs.errors import ConfigError

    fs, _, _ = store
    with pytest.raises(ConfigError, match="transform_guard"):
        FeatureStore({"project": "test", "data_dir": fs.config.data_dir,
                      "serving": {"transform_guard": "maybe"}})
