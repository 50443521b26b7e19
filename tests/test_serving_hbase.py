"""``sparkfs serve`` on HBase: the service (its own process, no pyspark) reads vectors from
the HBase emulator and from a real HBase 2.6, and answers what the in-process reader does."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pandas as pd
import pyarrow as pa
import yaml
from test_serving import NOW, _body, _free_port, _start, _stop, _wait_healthy

from jobs.flights import features as repo
from sparkfs import FeatureStore
from sparkfs.offline.derived import apply_derived_pandas
from sparkfs.repo import definitions_in
from sparkfs.serving.app import encode_response


def test_the_service_serves_vectors_from_hbase(tmp_path, hbase_online_config):
    from jobs.flights import data

    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump({"project": "serving", "data_dir": str(tmp_path / "data"),
                                    "online": hbase_online_config}))
    fs = FeatureStore.from_config(str(conf))
    fs.apply(definitions_in(repo))
    weather = fs.get_feature_group("weather")
    w = data.weather_frame()
    latest = w.sort_values("time_hour").groupby("origin").tail(1).copy()
    latest["time_hour"] = pd.Timestamp(NOW - dt.timedelta(hours=1))
    latest = apply_derived_pandas(weather, latest)
    fs.online.write_batch(weather, pa.Table.from_pandas(latest, preserve_index=False))
    port = _free_port()
    log_path = str(tmp_path / "server.log")
    proc = _start(["serve", "--config", str(conf), "--repo", "jobs/flights/features.py",
                   "--port", str(port), "--host", "127.0.0.1"], log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log_path)
        health = httpx.get(base + "/health").json()
        assert health["online_store"] == "hbase" and health["pyspark_loaded"] is False
        body = _body(["JFK", "LGA", "EWR", "ORD"])
        r = httpx.post(base + "/features", json=body, timeout=60)
        assert r.status_code == 200, r.text
        got = r.json()
        cols = dict(zip(got["metadata"]["feature_names"], got["results"]))
        by_origin = latest.set_index("origin")
        assert cols["temp"]["values"] == [float(by_origin.loc[o, "temp"])
                                          for o in ("JFK", "LGA", "EWR")] + [None]
        assert cols["temp"]["statuses"] == ["present"] * 3 + ["missing"]
        expected = encode_response(fs.get_online_features(
            body["features"], body["entity_rows"], request_data=body["request_data"]))
        got["metadata"].pop("transform_fingerprints")
        assert json.loads(json.dumps(expected)) == got
    finally:
        _stop(proc)
        fs.online.drop(weather)
        fs.close()
