"""The `sparkfs` command: apply, list, describe, ingest, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPARKFS = os.path.join(os.path.dirname(sys.executable), "sparkfs")


def run(args, data_dir, check=True):
    env = dict(os.environ, SPARKFS_DATA_DIR=str(data_dir))
    env.pop("SPARKFS_CONFIG", None)
    out = subprocess.run([SPARKFS, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=300)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_apply_list_describe_the_flights_repo(tmp_path):
    out = run(["apply", "jobs/flights/features.py"], tmp_path)
    assert "created  feature_group:weather@1" in out.stdout
    assert "no changes" in run(["apply", "jobs/flights/features.py"], tmp_path).stdout
    listed = run(["list"], tmp_path).stdout
    assert "weather" in listed and "planes" in listed
    described = run(["describe", "weather"], tmp_path).stdout
    assert "wind_speed" in described and "Delta version 0" in described


def test_incompatible_change_is_refused_with_a_one_line_error(tmp_path):
    repo = tmp_path / "repo.py"
    body = textwrap.dedent("""
        from sparkfs import Entity, FeatureGroup, Field
        e = Entity("user", join_keys=["user_id"])
        g = FeatureGroup("clicks", [e], "ts", [Field("n", "{dtype}")])
    """)
    repo.write_text(body.format(dtype="long"))
    run(["apply", str(repo)], tmp_path)
    repo.write_text(body.format(dtype="double"))
    out = run(["apply", str(repo)], tmp_path, check=False)
    assert out.returncode == 2
    assert "Bump the version" in out.stderr and "Traceback" not in out.stderr


def test_unknown_group_and_bad_config(tmp_path):
    out = run(["describe", "nope"], tmp_path, check=False)
    assert out.returncode == 2 and "'nope' is not registered" in out.stderr
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("online:\n  type: sqlite\n  pth: x.db\n")
    out = run(["--config", str(cfg), "list"], tmp_path, check=False)
    assert out.returncode == 2 and "online.sqlite.pth: unknown key" in out.stderr


@pytest.mark.slow
def test_cli_ingest_a_csv(tmp_path, spark):
    csv = tmp_path / "w.csv"
    csv.write_text("origin,time_hour,temp,dewp,humid,wind_dir,wind_speed,wind_gust,precip,"
                   "pressure,visib\nJFK,2013-01-01T05:00:00Z,39.0,26.1,59.4,270.0,10.4,20.1,0.0,"
                   "1012.0,10.0\n")
    run(["apply", "jobs/flights/features.py"], tmp_path)
    out = run(["ingest", "weather", str(csv), "--run-id", "csv-1",
               "--repo", "jobs/flights/features.py"], tmp_path)
    assert '"rows_written": 1' in out.stdout
