"""Training sets under concurrency: two real processes create the same name at once.

Both succeed with two distinct versions, each version holds the rows its writer built,
nothing a winner wrote is deleted by a loser, and no staging is left behind. Staging
left by a killed writer is removed by the next create of that name; a live writer's is
not touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
from test_training_reference import T

from sparkfs import Entity, FeatureGroup, FeatureStore, Field

airport = Entity("airport", join_keys=["origin"])
WEATHER = FeatureGroup("weather", [airport], "time_hour", [Field("temp", "double")])

WRITER = textwrap.dedent("""
    import json, os, sys, time
    import pandas as pd
    from sparkfs import FeatureStore
    from sparkfs.training import sets
    data_dir, go, who = sys.argv[1], sys.argv[2], int(sys.argv[3])
    write = sets._write
    def slow_write(*args, **kwargs):  # a slow disk: both writers are mid-write together
        time.sleep(1.5)
        return write(*args, **kwargs)
    sets._write = slow_write
    fs = FeatureStore({"project": "race", "data_dir": data_dir,
                       "offline": {"engine": "delta-rs"}})
    spine = pd.DataFrame({"origin": ["JFK", "LGA"] * 50,
                          "ts": pd.to_datetime(["2024-03-01 00:30"] * 100),
                          "label": [who] * 100})
    open(go + f".ready{who}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.005)
    ts = fs.create_training_set("race", spine, ["weather:temp"], "ts", engine="duckdb")
    print(json.dumps({"who": who, "version": ts.version}))
""")


@pytest.fixture
def store(store_config):
    """A store without Spark: delta-rs writes, DuckDB joins."""
    fs = FeatureStore(dict(store_config, offline={"engine": "delta-rs"}))
    fs.apply([airport, WEATHER])
    fs.ingest("weather", pd.DataFrame({"origin": ["JFK", "LGA"], "time_hour": [T(0), T(0)],
                                       "temp": [1.0, 2.0]}), run_id="w", materialize=False)
    yield fs
    fs.close()


def _race(data_dir: str, go: str) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, data_dir, go, str(who)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for who in (1, 2)]
    deadline = time.monotonic() + 120
    # start both at once, once both have imported everything and opened the store
    while time.monotonic() < deadline and not all(
            os.path.exists(f"{go}.ready{who}") or p.poll() is not None
            for who, p in zip((1, 2), procs)):
        time.sleep(0.05)
    open(go, "w").close()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_two_processes_create_the_same_name(store, tmp_path):
    data_dir = store.config.data_dir
    root = os.path.join(data_dir, "training_sets", "race")
    seen = 0
    for trial in range(2):
        results = _race(data_dir, str(tmp_path / f"go{trial}"))
        versions = sorted(r["version"] for r in results)
        assert versions == [seen + 1, seen + 2], results  # two distinct versions, no gap
        seen += 2
        fresh = FeatureStore({"project": "race", "data_dir": data_dir,
                              "offline": {"engine": "delta-rs"}})
        for r in results:  # each version holds exactly its own writer's rows
            got = fresh.get_training_set("race", r["version"]).to_pandas()
            assert got["label"].tolist() == [r["who"]] * 100
            assert got["temp"].tolist() == [1.0, 2.0] * 50
        assert fresh.registry.versions("training_set", "race") == list(range(1, seen + 1))
        # every directory is a registered version's: no staging left, nothing extra
        used = {os.path.basename(s["path"]) for s in fresh.registry.list("training_set")}
        assert set(os.listdir(root)) == used


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_abandoned_staging_is_cleaned_by_the_next_create(store):
    root = os.path.join(store.config.data_dir, "training_sets", "kept")
    os.makedirs(root)
    import socket

    def staging(name: str, pid: int) -> str:
        path = os.path.join(root, name)
        os.makedirs(os.path.join(path, "data"))
        with open(os.path.join(path, ".owner"), "w") as f:
            json.dump({"host": socket.gethostname(), "pid": pid, "time": time.time()}, f)
        return path

    dead = staging(".staging-deadbeef", _dead_pid())
    dead_published = staging("v1-deadbeef", _dead_pid())  # renamed, never registered
    live = staging(".staging-cafe", os.getpid())  # a writer still at work
    spine = pd.DataFrame({"origin": ["JFK"], "ts": [T(30)]})
    ts = store.create_training_set("kept", spine, ["weather:temp"], "ts", engine="duckdb")
    assert ts.version == 1 and ts.to_pandas()["temp"].tolist() == [1.0]
    assert not os.path.exists(dead) and not os.path.exists(dead_published)
    assert os.path.isdir(live)
    assert sorted(os.listdir(root)) == sorted([".staging-cafe", os.path.basename(
        store.registry.get("training_set", "kept", 1)["path"])])


def test_a_failed_write_removes_only_its_own_staging(store, monkeypatch):
    from sparkfs.training import sets

    spine = pd.DataFrame({"origin": ["JFK"], "ts": [T(30)]})
    first = store.create_training_set("fails", spine, ["weather:temp"], "ts", engine="duckdb")

    def broken(*args, **kwargs):  # a fault: the disk fills up mid-write
        raise OSError("No space left on device")

    monkeypatch.setattr(sets, "_write", broken)
    with pytest.raises(OSError, match="No space left"):
        store.create_training_set("fails", spine, ["weather:temp"], "ts", engine="duckdb")
    root = os.path.join(store.config.data_dir, "training_sets", "fails")
    assert os.listdir(root) == [os.path.basename(
        store.registry.get("training_set", "fails", 1)["path"])]
    assert store.get_training_set("fails").to_arrow().equals(first.to_arrow())
