"""A worker runs ``serving.predict_threads`` predictions at once, first come, first
served (``sparkfs.serving.deployments``): concurrent requests queue for a slot instead of
sharing the GIL. Real MLflow registry and SQLite stores in a temp dir, the app in FastAPI's
test client, requests from several threads at once. No Spark."""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from deployed_weather import deploy_weather_model
from fastapi.testclient import TestClient

from sparkfs import FeatureStore
from sparkfs.serving.app import create_app

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.mark.parametrize("threads", [1, 3])
def test_at_most_predict_threads_predictions_run_at_once(tmp_path, threads):
    config = {"project": "test", "data_dir": str(tmp_path / "data"),
              "serving": {"predict_threads": threads}}
    fs = FeatureStore(config)
    deploy_weather_model(fs, NOW)
    running, most, lock = [0], [0], threading.Lock()
    predict = fs.inference.predict

    def counted(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.05)  # waits without the GIL: other threads could run meanwhile
            return predict(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    fs.inference.predict = counted
    with TestClient(create_app(fs)) as client:
        def call(i: int) -> int:
            origin = "JFK" if i % 2 else "LGA"
            r = client.post("/deployments/d/predict", json={"entity_rows": [{"origin": origin}]})
            return r.status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(call, range(16)))
    fs.close()
    assert codes == [200] * 16
    assert most[0] == threads  # never more at once, and the slots are used


def test_predict_threads_must_be_positive(tmp_path):
    from sparkfs.errors import ConfigError

    with pytest.raises(ConfigError, match="predict_threads"):
        FeatureStore({"data_dir": str(tmp_path), "serving": {"predict_threads": 0}})
