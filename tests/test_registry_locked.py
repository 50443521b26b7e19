"""A registry that is locked by another process or read-only never stops reads (the
facade, ``sparkfs list``, ``get-online``, the service); writes fail fast with a clear
message. The locks are real SQLite locks held by another process; read-only is a real
immutable file (``chattr +i``, honoured even for root)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from sparkfs import Entity, FeatureGroup, FeatureStore, Field
from sparkfs.errors import RegistryUnavailableError

CLI = "import sys; from sparkfs.cli import main; sys.exit(main())"
WEATHER = FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
                       [Field("temp", "double")])


@pytest.fixture
def repo(tmp_path):
    conf = tmp_path / "conf.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\nregistry: {{lock_timeout_s: 1}}\n")
    fs = FeatureStore.from_config(str(conf))
    fs.apply([WEATHER])
    fs.online.write_batch(WEATHER, pa.table({
        "origin": ["JFK"], "temp": [39.0],
        "time_hour": [dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)]}))
    fs.close()
    return {"conf": str(conf), "registry": str(tmp_path / "data" / "registry.db")}


def _hold_lock(path: str, exclusive_mode: bool) -> subprocess.Popen:
    """Another process holding the registry's write lock (``exclusive_mode``: SQLite's
    exclusive locking mode, which keeps readers out too)."""
    code = ("import sqlite3, sys, time\n"
            f"c = sqlite3.connect({path!r}, isolation_level=None)\n"
            + ("c.execute('PRAGMA locking_mode=EXCLUSIVE')\n" if exclusive_mode else "")
            + "c.execute('BEGIN EXCLUSIVE')\n"
            "c.execute(\"INSERT INTO meta VALUES ('probe', 'x')\")\n"
            "print('locked', flush=True)\ntime.sleep(120)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True,
                          timeout=120)


def test_a_write_lock_held_elsewhere_stops_no_read_and_writes_fail_fast(repo):
    locker = _hold_lock(repo["registry"], exclusive_mode=False)
    try:
        fs = FeatureStore.from_config(repo["conf"])           # opening writes nothing
        assert [g.name for g in fs.list_feature_groups()] == ["weather"]
        assert fs.get_online_features(["weather:temp"], [{"origin": "JFK"}]).to_dict() == \
            {"origin": ["JFK"], "temp": [39.0]}
        with pytest.raises(RegistryUnavailableError, match="is locked by another process"):
            fs.apply([WEATHER.__class__("storms", WEATHER.entities, "time_hour",
                                        [Field("rain", "double")])])
        fs.close()
        r = _cli("--config", repo["conf"], "list")
        assert r.returncode == 0 and "weather" in r.stdout, r.stderr
        r = _cli("--config", repo["conf"], "get-online", "-f", "weather:temp", "-e", "origin=JFK")
        assert r.returncode == 0 and "39.0" in r.stdout, r.stderr
    finally:
        locker.kill()
        locker.wait()


def test_a_registry_that_keeps_readers_out_is_a_clear_error_and_the_service_keeps_serving(repo):
    fs = FeatureStore.from_config(repo["conf"])
    client = TestClient(create_app_for(fs), raise_server_exceptions=False)
    body = {"features": ["weather:temp"], "entity_rows": [{"origin": "JFK"}]}
    assert client.post("/features", json=body).status_code == 200   # plan and snapshot read
    assert client.get("/feature-groups").status_code == 200
    locker = _hold_lock(repo["registry"], exclusive_mode=True)
    try:
        with pytest.raises(RegistryUnavailableError, match="locked by another process .reading"):
            FeatureStore.from_config(repo["conf"]).list_feature_groups()
        r = _cli("--config", repo["conf"], "list")
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert "registry" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        os.utime(repo["registry"])                  # the service notices "a change"...
        fs.catalog._caches.pop("online_plans", None)  # a cold plan cache (fault injection)
        r = client.post("/features", json=body)     # ...and cannot re-read: 503, not a hang
        assert r.status_code == 503 and "registry" in r.json()["detail"]
        assert client.get("/feature-groups").status_code == 200   # the snapshot serves
        assert client.get("/health").status_code == 200
    finally:
        locker.kill()
        locker.wait()
    assert client.post("/features", json=body).status_code == 200  # recovers by itself
    fs.close()


def create_app_for(fs):
    from sparkfs.serving.app import create_app

    fs.config = fs.config.with_overrides(serving={"registry_refresh_s": 0})
    return create_app(fs)


@pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr")
def test_a_read_only_registry_serves_reads(repo, tmp_path):
    if subprocess.run(["chattr", "+i", repo["registry"]]).returncode != 0:
        pytest.skip("this filesystem has no immutable flag")
    try:
        r = _cli("--config", repo["conf"], "list")
        assert r.returncode == 0 and "weather" in r.stdout, r.stderr
        fs = FeatureStore.from_config(repo["conf"])
        assert fs.get_online_features(["weather:temp"], [{"origin": "JFK"}]).to_dict()["temp"] \
            == [39.0]
        with pytest.raises(RegistryUnavailableError, match="read-only"):
            fs.apply([FeatureGroup("storms", WEATHER.entities, "time_hour",
                                   [Field("rain", "double")])])
        fs.close()
    finally:
        subprocess.run(["chattr", "-i", repo["registry"]])
