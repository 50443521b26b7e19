"""Reproducible training sets: create, get, recreate after new ingests; the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from conftest import WRITER_MATRIX
from test_training_reference import T

from sparkfs import Entity, FeatureGroup, Field, NotFoundError, SparkfsError
from sparkfs.cli import main

pytestmark = WRITER_MATRIX  # every test here also runs on tables written by delta-spark

airport = Entity("airport", join_keys=["origin"])


def weather():
    return FeatureGroup("weather", [airport], "time_hour",
                        [Field("temp", "double"), Field("wind", "double")], ttl="2h")


def batch(rows):
    return pd.DataFrame(rows, columns=["origin", "time_hour", "temp", "wind"])


@pytest.fixture
def store(fs):
    fs.apply([weather()])
    fs.ingest("weather", batch([("JFK", T(0), 1.0, 10.0), ("JFK", T(60), 2.0, 20.0),
                                ("LGA", T(0), 5.0, None)]), run_id="w1", materialize=False)
    return fs


SPINE = pd.DataFrame({"origin": ["JFK", "LGA", "JFK", None], "ts": [T(30), T(30), T(90), T(90)],
                      "label": [1, 0, 1, 0]})


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_create_get_recreate_after_new_ingest(store, engine):
    ts = store.create_training_set("delays", SPINE, ["weather:temp", "weather:wind"], "ts",
                                   engine=engine, description="test set")
    assert (ts.name, ts.version) == ("delays", 1)
    first = ts.to_arrow()
    assert first.column("temp").to_pylist() == [1.0, 5.0, 2.0, None]
    assert first.column("label").to_pylist() == [1, 0, 1, 0]
    pinned = ts.manifest["groups"][0]["delta_version"]

    # new history, including a correction of an old event: fresh joins see it...
    store.ingest("weather", batch([("JFK", T(30), 1.5, 15.0), ("JFK", T(80), 3.0, 30.0)]),
                 run_id="w2", materialize=False)
    fresh = store.get_historical_features(SPINE, ["weather:temp", "weather:wind"], "ts",
                                          engine=engine)
    assert fresh.to_arrow().column("temp").to_pylist() == [1.5, 5.0, 3.0, None]
    # ...the stored and the recreated set do not
    stored = store.get_training_set("delays")
    assert stored.to_arrow().equals(first)
    assert stored.manifest == ts.manifest
    again = store.recreate_training_set("delays")
    assert again.to_arrow().equals(first)
    assert again.manifest["groups"][0]["delta_version"] == pinned
    assert again.manifest["spine"] == ts.manifest["spine"]
    if engine == "spark":
        assert stored.to_spark().count() == 4
        assert stored.to_spark().columns == ["origin", "ts", "label", "temp", "wind"]

    # a second create is a new version pinned to the new Delta version
    v2 = store.create_training_set("delays", SPINE, ["weather:temp"], "ts", engine=engine)
    assert v2.version == 2
    assert v2.manifest["groups"][0]["delta_version"] > pinned
    assert store.get_training_set("delays").version == 2


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_recreate_refuses_a_spine_whose_files_were_changed(store, engine):
    """A pair of equal rows added to the stored spine leaves its hash (an XOR of row
    hashes) as it was: recreating compares the row count as well, and refuses."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store.create_training_set("tampered", SPINE, ["weather:temp"], "ts", engine=engine)
    spine_path = store.catalog.registry.get("training_set", "tampered", 1)["spine_path"]
    row = pq.read_table(spine_path).slice(0, 1)
    pq.write_table(pa.concat_tables([row, row]), f"{spine_path}/part-99999-added.parquet")
    with pytest.raises(SparkfsError, match="6 rows.*its files were changed"):
        store.recreate_training_set("tampered")


def test_recreate_keeps_recorded_ttl(store):
    ts = store.create_training_set("ttl_set", SPINE, ["weather:temp"], "ts", engine="duckdb")
    store.apply([FeatureGroup("weather", [airport], "time_hour",
                              [Field("temp", "double"), Field("wind", "double")], ttl="10m")])
    assert store.recreate_training_set("ttl_set").to_arrow().equals(ts.to_arrow())


def test_missing_training_set_and_bad_options(store):
    with pytest.raises(NotFoundError, match="training set 'nope' does not exist"):
        store.get_training_set("nope")
    with pytest.raises(SparkfsError, match="unknown option"):
        store.create_training_set("x", SPINE, ["weather:temp"], "ts", engine="duckdb", color=1)
    with pytest.raises(NotFoundError):  # refused before anything is written
        store.create_training_set("x", SPINE, ["weather:nope"], "ts", engine="duckdb")
    with pytest.raises(NotFoundError):
        store.get_training_set("x")


def test_cli_create_show_recreate(store, store_config, tmp_path, capsys):
    cfg = tmp_path / "sparkfs.yaml"
    cfg.write_text(yaml.safe_dump(store_config))
    spine_path = tmp_path / "spine.parquet"
    SPINE.rename(columns={"origin": "airport"}).to_parquet(spine_path)
    base = ["--config", str(cfg), "training-set"]
    assert main(base + ["create", "cli_set", "--spine", str(spine_path), "--features",
                        "weather:temp,weather:wind", "--timestamp-col", "ts", "--engine",
                        "duckdb", "--key-map", "origin=airport"]) == 0
    out = capsys.readouterr().out
    assert "created training set 'cli_set' version 1: 4 rows" in out
    assert main(base + ["show", "cli_set"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["manifest"]["key_map"] == {"origin": "airport"}
    assert shown["manifest"]["groups"][0]["label"] == "weather@1"
    store.ingest("weather", batch([("JFK", T(29), 9.0, 9.0)]), run_id="w3", materialize=False)
    assert main(base + ["recreate", "cli_set"]) == 0
    assert "identical to the stored data" in capsys.readouterr().out
    from jobs.training_set import main as job_main  # the spark-submit entry point

    assert job_main(["recreate", "cli_set", "--config", str(cfg)]) == 0
    assert "identical to the stored data" in capsys.readouterr().out
    assert main(base + ["list"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0][:4] == ["NAME", "VERSION", "ROWS", "ENGINE"]
    assert rows[1][:4] == ["cli_set", "1", "4", "duckdb"]  # a Rich table since the Typer CLI
    assert main(base + ["show", "missing"]) == 2
    assert "training set 'missing' does not exist" in capsys.readouterr().err


def test_versions_through_the_facade_and_the_cli(store, store_config, tmp_path, capsys):
    v1 = store.create_training_set("vers", SPINE, ["weather:temp"], "ts", engine="duckdb")
    store.ingest("weather", batch([("JFK", T(29), 9.0, 9.0)]), run_id="w4", materialize=False)
    v2 = store.create_training_set("vers", SPINE, ["weather:temp"], "ts", engine="duckdb")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.to_arrow().column("temp").to_pylist() == [1.0, 5.0, 2.0, None]
    assert v2.to_arrow().column("temp").to_pylist() == [9.0, 5.0, 2.0, None]
    # the facade takes a version, and None means the latest
    assert store.get_training_set("vers", 1).to_arrow().equals(v1.to_arrow())
    assert store.get_training_set("vers", version=2).to_arrow().equals(v2.to_arrow())
    assert store.get_training_set("vers").version == 2
    old = store.recreate_training_set("vers", 1)
    assert (old.version, old.to_arrow().equals(v1.to_arrow())) == (1, True)
    assert store.recreate_training_set("vers", version=None).version == 2
    with pytest.raises(NotFoundError, match="training set 'vers' version 3 does not exist"):
        store.get_training_set("vers", 3)
    # the CLI's --version (it used to raise TypeError)
    cfg = tmp_path / "sparkfs.yaml"
    cfg.write_text(yaml.safe_dump(store_config))
    base = ["--config", str(cfg), "training-set"]
    assert main(base + ["recreate", "vers", "--version", "1"]) == 0
    assert "recreated training set 'vers' version 1: 4 rows; identical" in capsys.readouterr().out
    assert main(base + ["recreate", "vers"]) == 0
    assert "recreated training set 'vers' version 2: 4 rows; identical" in capsys.readouterr().out
    assert main(base + ["recreate", "vers", "--version", "7"]) == 2
    assert "training set 'vers' version 7 does not exist" in capsys.readouterr().err
