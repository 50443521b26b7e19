"""``sparkfs gc`` and training sets: data of crashed ``create_training_set`` calls (killed
while writing its staging, or after publishing its directory but before registering it)
under a name with no registry entry is listed by a dry run and removed by ``--apply``;
a registered version is never removed, not even while a create in another process
races the collector. Real processes, a real registry, DuckDB joins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from test_training_reference import T

from sparkfs import Entity, FeatureGroup, FeatureStore, Field
from sparkfs.cli import main

airport = Entity("airport", join_keys=["origin"])
WEATHER = FeatureGroup("weather", [airport], "time_hour", [Field("temp", "double")])

# A create in its own process; "crash-write" dies mid-write, "crash-register" right
# after its directory is published and before it is registered, "loop" makes N versions.
CREATOR = textwrap.dedent("""
    import os, sys, time
    import pandas as pd
    from sparkfs import FeatureStore
    from sparkfs.training import sets
    data_dir, name, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    fs = FeatureStore({"project": "gc", "data_dir": data_dir, "offline": {"engine": "delta-rs"}})
    write = sets._write
    def faulty_write(*args, **kwargs):
        write(*args, **kwargs)
        if mode == "crash-write":
            os._exit(9)                      # killed with its staging half-done
        time.sleep(0.3)                      # a slow disk: gc runs while this writes
    sets._write = faulty_write
    if mode == "crash-register":
        put = fs.registry.put
        def dying_put(*args, **kwargs):
            os._exit(9)                      # killed between publish and register
        fs.registry.put = dying_put
    spine = pd.DataFrame({"origin": ["JFK", "LGA"], "ts": pd.to_datetime(["2024-03-01 00:30"] * 2)})
    for i in range(n):
        print(fs.create_training_set(name, spine, ["weather:temp"], "ts", engine="duckdb").version,
              flush=True)
""")


@pytest.fixture
def store(tmp_path):
    """A store without Spark: rows pushed to Delta (delta-rs), DuckDB joins."""
    config = {"project": "gc", "data_dir": str(tmp_path / "data"),
              "offline": {"engine": "delta-rs"}}
    fs = FeatureStore(config)
    fs.apply([airport, WEATHER])
    fs.push("weather", pd.DataFrame({"origin": ["JFK", "LGA"], "time_hour": [T(0), T(0)],
                                     "temp": [1.0, 2.0]}), to="offline")
    fs.close()                             # flushes the push to Delta
    fs = FeatureStore(config)
    yield fs
    fs.close()


def _env() -> dict:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))


def _creator(data_dir: str, name: str, mode: str, n: int = 1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CREATOR, data_dir, name, mode, str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())


def _gc(tmp_path, data_dir: str, *flags: str, capsys) -> dict:
    config = tmp_path / "gc.yaml"
    config.write_text(f"project: gc\ndata_dir: {data_dir}\noffline: {{engine: delta-rs}}\n")
    capsys.readouterr()
    assert main(["--config", str(config), "gc", "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_gc_finds_and_removes_the_data_of_crashed_creates(store, tmp_path, capsys):
    data_dir = store.config.data_dir
    spine = pd.DataFrame({"origin": ["JFK"], "ts": [T(30)]})
    kept = store.create_training_set("kept", spine, ["weather:temp"], "ts", engine="duckdb")
    for name, mode in (("orphan", "crash-write"), ("kept", "crash-register")):
        p = _creator(data_dir, name, mode)
        _, err = p.communicate(timeout=300)
        assert p.returncode == 9, err[-3000:]
    root = os.path.join(data_dir, "training_sets")
    assert store.registry.versions("training_set", "orphan") == []   # never registered
    assert any(e.startswith(".staging-") for e in os.listdir(os.path.join(root, "orphan")))

    dry = _gc(tmp_path, data_dir, capsys=capsys)                      # dry run: lists only
    found = sorted((g["name"], g["kind"]) for g in dry["training_sets"])
    assert found == [("kept", "unregistered"), ("orphan", "staging")], dry
    assert all(g["bytes"] > 0 and g["owner"]["pid"] for g in dry["training_sets"])
    assert all(os.path.isdir(g["path"]) for g in dry["training_sets"])

    applied = _gc(tmp_path, data_dir, "--apply", capsys=capsys)
    assert sorted(g["path"] for g in applied["training_sets"]) == \
        sorted(g["path"] for g in dry["training_sets"])
    assert not any(os.path.exists(g["path"]) for g in dry["training_sets"])
    assert not os.path.exists(os.path.join(root, "orphan"))          # nothing was left in it
    assert os.listdir(os.path.join(root, "kept")) == [os.path.basename(
        store.registry.get("training_set", "kept", 1)["path"])]
    assert store.get_training_set("kept").to_arrow().equals(kept.to_arrow())
    assert _gc(tmp_path, data_dir, capsys=capsys)["training_sets"] == []


def test_gc_never_removes_a_version_a_concurrent_create_registers(store, tmp_path, capsys):
    data_dir = store.config.data_dir
    p = _creator(data_dir, "racing", "loop", 4)
    runs = 0
    while p.poll() is None:                # collect over and over while it creates
        assert _gc(tmp_path, data_dir, "--apply", capsys=capsys)["training_sets"] == []
        runs += 1
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    assert runs > 0
    assert [int(v) for v in out.split()] == [1, 2, 3, 4]
    fresh = FeatureStore({"project": "gc", "data_dir": data_dir,
                          "offline": {"engine": "delta-rs"}})
    for v in (1, 2, 3, 4):
        assert fresh.get_training_set("racing", v).to_pandas()["temp"].tolist() == [1.0, 2.0]
    fresh.close()


def test_gc_refuses_a_non_positive_max_age(store, tmp_path, capsys):
    config = tmp_path / "gc.yaml"
    config.write_text(f"project: gc\ndata_dir: {store.config.data_dir}\n")
    assert main(["--config", str(config), "gc", "--max-age-hours", "0"]) == 2
    assert "--max-age-hours must be positive" in capsys.readouterr().err
