"""The spark-submit jobs are thin: ``jobs/ingest.py``, ``jobs/materialize.py`` and
``jobs/training_set.py`` hand their flags to the ``sparkfs`` command (no ``sys.path``
edits, no copied logic), and run as scripts from any working directory the way
``spark-submit`` runs them (``python path/to/job.py``: only the script's own directory is
on ``sys.path``). Real subprocesses, real Delta, SQLite and (for ingest) a local Spark."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, Field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOBS = ("ingest.py", "materialize.py", "training_set.py")

REPO = '''
from sparkfs import Entity, FeatureGroup, Field

airport = Entity("airport", join_keys=["origin"])
weather = FeatureGroup("weather", [airport], "time_hour", [Field("temp", "double")])
'''


@pytest.mark.parametrize("job", JOBS)
def test_a_job_only_hands_its_flags_to_the_cli(job):
    source = open(os.path.join(ROOT, "jobs", job)).read()
    tree = ast.parse(source)
    assert "sys.path" not in source
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "argparse", "sys", "sparkfs.cli", "sparkfs.jobs_common"}
    defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert defs == ["main"]                     # nothing but the flag mapping


def _run(job: str, args: list[str], cwd, data_dir) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKFS_")}
    env.update(SPARKFS_DATA_DIR=str(data_dir), SPARKFS_SPARK_MASTER="local[1]")
    return subprocess.run([sys.executable, os.path.join(ROOT, "jobs", job), *args],
                          capture_output=True, text=True, env=env, timeout=600, cwd=str(cwd))


def test_ingest_job_ingests_and_materializes_from_another_directory(tmp_path):
    repo = tmp_path / "features.py"
    repo.write_text(REPO)
    data = tmp_path / "weather.parquet"
    pq.write_table(pa.table({"origin": ["JFK", "EWR"], "temp": [39.0, 20.5],
                             "time_hour": pa.array([pd.Timestamp("2013-01-01 05:00", tz="UTC")] * 2,
                                                   pa.timestamp("us", tz="UTC"))}), data)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    args = ["--repo", str(repo), "--group", "weather", "--input", str(data),
            "--run-id", "w-1", "--materialize"]
    out = _run("ingest.py", args, elsewhere, tmp_path / "data")
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rows_written"] == 2 and result["materialization"]["keys_written"] == 2
    fs = FeatureStore({"data_dir": str(tmp_path / "data")})
    assert fs.get_online_features(["weather:temp"], [{"origin": "EWR"}]).to_dict() == \
        {"origin": ["EWR"], "temp": [20.5]}
    fs.close()
    bad = _run("ingest.py", [*args[:6], "--input", str(tmp_path / "missing.parquet")],
               elsewhere, tmp_path / "data")
    assert bad.returncode == 2 and "missing.parquet" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_training_set_job_creates_and_recreates_from_another_directory(tmp_path):
    fs = FeatureStore({"data_dir": str(tmp_path / "data")})
    weather = FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
                           [Field("temp", "double")])
    fs.apply([weather])
    fs.push("weather", pd.DataFrame({"origin": ["JFK"], "temp": [39.0], "time_hour": [
        pd.Timestamp("2013-01-01 05:00", tz="UTC")]}), to="offline")
    fs.close()                                      # flushes the push to Delta
    spine = tmp_path / "spine.parquet"
    pq.write_table(pa.table({"origin": ["JFK", "JFK"], "ts": pa.array(
        [pd.Timestamp("2013-01-01 04:00", tz="UTC"), pd.Timestamp("2013-01-01 06:00", tz="UTC")],
        pa.timestamp("us", tz="UTC"))}), spine)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    out = _run("training_set.py", ["create", "delays", "--spine", str(spine), "--features",
                                   "weather:temp", "--timestamp-col", "ts", "--engine", "duckdb"],
               elsewhere, tmp_path / "data")
    assert out.returncode == 0, out.stderr[-3000:]
    fs = FeatureStore({"data_dir": str(tmp_path / "data")})
    got = fs.get_training_set("delays").to_pandas()
    assert got["temp"].tolist()[1] == 39.0 and pd.isna(got["temp"].tolist()[0])
    fs.close()
    again = _run("training_set.py", ["recreate", "delays"], elsewhere, tmp_path / "data")
    assert again.returncode == 0, again.stderr[-3000:]
