"""The online service loads the model of every current deployment at startup
(``sparkfs.serving.deployments.warm_models``, a background thread), so the first request
does not pay for it; a model that does not load is logged and left to its first request.
Real MLflow registry and SQLite stores in a temp dir; the app runs its startup events in
FastAPI's test client. No Spark."""

from __future__ import annotations

import datetime as dt
import logging
import time

from deployed_weather import deploy_weather_model
from fastapi.testclient import TestClient

from sparkfs import FeatureStore
from sparkfs.serving.app import create_app
from sparkfs.serving.deployments import warm_models

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _deployed(tmp_path) -> dict:
    config = {"project": "test", "data_dir": str(tmp_path / "data")}
    fs = FeatureStore(config)
    deploy_weather_model(fs, NOW)
    fs.close()
    return config


def test_startup_loads_the_deployed_models_before_any_request(tmp_path):
    fs = FeatureStore(_deployed(tmp_path))  # a fresh process's store: nothing loaded yet
    loads: list[tuple[str, int]] = []
    load = fs.models.load

    def counted(name, version):
        loads.append((name, int(version)))
        return load(name, version)

    fs.models.load = counted
    with TestClient(create_app(fs)) as client:
        deadline = time.monotonic() + 120
        while not loads and time.monotonic() < deadline:
            time.sleep(0.05)
        assert loads == [("m", 1)]  # loaded by the warm-up, before any request
        r = client.post("/deployments/d/predict", json={"entity_rows": [{"origin": "JFK"}]})
        assert r.status_code == 200, r.text
        assert r.json()["model"] == {"name": "m", "version": 1}
    fs.close()


def test_a_model_that_does_not_load_is_logged_and_left_to_its_first_request(tmp_path,
                                                                            caplog):
    fs = FeatureStore(_deployed(tmp_path))

    def broken(d):
        raise RuntimeError("artifact missing\nstack ...")

    fs.inference.model = broken
    with caplog.at_level(logging.WARNING, logger="sparkfs.serving"):
        assert warm_models(fs.inference) == []
    assert "deployment 'd' (m@1) did not load: artifact missing" in caplog.text
    fs.close()
