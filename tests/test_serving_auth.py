"""API keys and scopes of the service (real app, registry and SQLite store, in process):
401 without a valid key, 403 naming the missing scope, listings filtered by scope, an
open /health that names no path, keys from config, environment and file, never logged."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from sparkfs import Entity, FeatureGroup, FeatureStore, Field, transform
from sparkfs.errors import ConfigError
from sparkfs.serving.app import create_app
from sparkfs.serving.auth import KeyRing, digest, new_key

READER, ADMIN, OTHER = new_key(), new_key(), new_key()


@transform(output="double", on_demand=True, inputs={"t": "double"},
           features={"t": "weather:temp"})
def warmer(t):
    return t + 1.0


def _app(tmp_path, auth: dict):
    fs = FeatureStore({"data_dir": str(tmp_path / "data"), "serving": {"auth": auth}})
    weather = FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
                           [Field("temp", "double")], owner="ops@example.com")
    planes = FeatureGroup("planes", [Entity("plane", ["tailnum"])], "time_hour",
                          [Field("seats", "int")], owner="fleet@example.com")
    fs.apply([weather, planes, warmer])
    fs.online.write_batch(weather, pa.table({
        "origin": ["JFK"], "temp": [39.0],
        "time_hour": [dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)]}))
    return fs, TestClient(create_app(fs), raise_server_exceptions=False)


KEYS = {"enabled": True, "keys": [
    {"name": "reader", "sha256": READER[1], "scopes": ["features:read:weather"]},
    {"name": "ops", "sha256": ADMIN[1], "scopes": ["admin"]},
    {"name": "pusher", "sha256": OTHER[1], "scopes": ["push:weather", "predict:delay"]},
]}
BODY = {"features": ["weather:temp"], "entity_rows": [{"origin": "JFK"}]}


def _bearer(key: str) -> dict:
    return {"authorization": f"Bearer {key}"}


def test_keys_and_scopes(tmp_path, caplog):
    fs, c = _app(tmp_path, KEYS)
    with caplog.at_level(logging.DEBUG):
        r = c.post("/features", json=BODY)
        assert r.status_code == 401 and "an API key is required" in r.json()["detail"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert c.post("/features", json=BODY, headers=_bearer("sfs_guess")).status_code == 401
        assert c.post("/features", json=BODY, headers={"authorization": "Basic x"}
                      ).status_code == 401
        r = c.post("/features", json=BODY, headers=_bearer(READER[0]))
        assert r.status_code == 200 and r.json()["results"][1]["values"] == [39.0]
        assert c.post("/features", json=BODY, headers={"x-api-key": READER[0]}).status_code == 200
        r = c.post("/features", json={"features": ["planes:seats"],
                                      "entity_rows": [{"tailnum": "N1"}]},
                   headers=_bearer(READER[0]))
        assert r.status_code == 403
        assert r.json()["detail"] == "API key 'reader' lacks scope 'features:read:planes'"
        r = c.post("/features", json={**BODY, "features": ["warmer:warmer"]},
                   headers=_bearer(READER[0]))
        assert r.status_code == 403 and "'features:read:warmer'" in r.json()["detail"]
        r = c.post("/features", json=BODY, headers=_bearer(OTHER[0]))
        assert r.status_code == 403 and "'features:read:weather'" in r.json()["detail"]
        r = c.post("/features", json={**BODY, "features": ["warmer:warmer"]},
                   headers=_bearer(ADMIN[0]))
        assert r.status_code == 200 and r.json()["results"][1]["values"] == [40.0]
    for key, _ in (READER, ADMIN, OTHER):
        assert key not in caplog.text              # keys are never logged
    fs.close()


def test_listings_show_only_what_the_key_may_read_and_health_is_open(tmp_path):
    fs, c = _app(tmp_path, KEYS)
    assert c.get("/feature-groups").status_code == 401
    mine = c.get("/feature-groups", headers=_bearer(READER[0])).json()
    assert [g["name"] for g in mine["feature_groups"]] == ["weather"]
    assert mine["on_demand"] == []             # warmer needs its own scope
    everything = c.get("/feature-groups", headers=_bearer(ADMIN[0])).json()
    assert sorted(g["name"] for g in everything["feature_groups"]) == ["planes", "weather"]
    assert [t["name"] for t in everything["on_demand"]] == ["warmer"]
    h = c.get("/health")
    assert h.status_code == 200 and h.json()["auth"] is True
    assert str(tmp_path) not in h.text and "/" not in "".join(map(str, h.json().values()))
    fs.close()


def test_keys_from_an_environment_variable_and_a_file(tmp_path):
    from sparkfs.config import AuthConfig

    entry = f"- {{name: envkey, sha256: {READER[1]}, scopes: [features:read]}}\n"
    path = tmp_path / "keys.yaml"
    path.write_text(f"- {{name: filekey, sha256: {ADMIN[1]}, scopes: [admin]}}\n")
    ring = KeyRing.from_config(AuthConfig(enabled=True, keys_env="KEYS", keys_file=str(path)),
                               env={"KEYS": entry})
    assert ring.authenticate({"x-api-key": READER[0]}).name == "envkey"
    assert ring.authenticate({"x-api-key": ADMIN[0]}).name == "filekey"
    with pytest.raises(ConfigError, match="KEYS is not set"):
        KeyRing.from_config(AuthConfig(enabled=True, keys_env="KEYS"), env={})
    path.write_text("- {name: bad, sha256: 'not-a-hash', scopes: [admin]}\n")
    with pytest.raises(ConfigError, match="64 lowercase hex digits"):
        KeyRing.from_config(AuthConfig(enabled=True, keys_file=str(path)), env={})
    with pytest.raises(ConfigError, match="no key is configured"):
        KeyRing.from_config(AuthConfig(enabled=True), env={})


def test_auth_is_off_locally_and_on_in_the_cluster_config():
    from sparkfs.config import load_config

    assert load_config("conf/local.yaml", env={}).serving.auth.enabled is False
    cluster = load_config("conf/cluster.yaml", env={"SPARKFS_SERVING_KEYS": "[]"})
    assert cluster.serving.auth.enabled is True


def test_the_cli_creates_a_key_prints_it_once_and_stores_only_its_hash(tmp_path):
    keys = tmp_path / "keys.yaml"
    out = subprocess.run([sys.executable, "-c", "import sys; from sparkfs.cli import main; "
                          "sys.exit(main())", "api-key", "create", "--name", "app", "--scope",
                          "features:read:weather", "--file", str(keys)],
                         capture_output=True, text=True, check=True).stdout
    key = out.split("): ", 1)[1].split()[0]
    assert key.startswith("sfs_") and out.count(key) == 1
    assert key not in keys.read_text() and digest(key) in keys.read_text()
    from sparkfs.config import AuthConfig

    ring = KeyRing.from_config(AuthConfig(enabled=True, keys_file=str(keys)), env={})
    assert ring.authenticate({"authorization": f"Bearer {key}"}).allows("features:read",
                                                                        "weather")
