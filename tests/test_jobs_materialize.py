"""``jobs/materialize.py`` and ``FeatureStore.materialize``: the job maps its flags onto
``sparkfs materialize`` (which goes through the facade); the facade returns one
``MaterializeResult`` per group, for one group or all, with the engine chosen by the caller.
Real subprocesses, a real data directory, no Spark (``engine="local"``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from deltalake import write_deltalake
from online_conformance import T0, rows, weather_group

from sparkfs import MaterializeResult

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = os.path.join(ROOT, "jobs", "materialize.py")

REPO = '''
from sparkfs import Entity, FeatureGroup, Field

airport = Entity("airport", join_keys=["origin"])
weather = FeatureGroup("weather", [airport], "time_hour",
                       [Field("temp", "double"), Field("wind_speed", "double")])
'''


def _job(args, data_dir):
    env = dict(os.environ, SPARKFS_DATA_DIR=str(data_dir))
    env.pop("SPARKFS_CONFIG", None)
    return subprocess.run([sys.executable, JOB, *args], capture_output=True, text=True,
                          env=env, timeout=180, cwd=str(data_dir.parent))


def test_job_applies_the_repo_and_materializes_through_the_cli(fs_nospark, tmp_path):
    g = weather_group()
    fs_nospark.apply([g])
    write_deltalake(fs_nospark.offline.table_uri(g),
                    rows(g, [{"origin": "JFK", "time_hour": T0, "temp": 39.0},
                             {"origin": "EWR", "time_hour": T0, "temp": 20.5}]), mode="append")
    repo = tmp_path / "features.py"
    repo.write_text(REPO)
    out = _job(["--repo", str(repo), "--group", "weather", "--engine", "local"],
               tmp_path / "data")
    assert out.returncode == 0, out.stderr
    [line] = out.stdout.splitlines()
    result = json.loads(line)
    assert (result["group"], result["keys_written"], result["engine"]) == ("weather", 2, "local")
    again = _job(["--engine", "local"], tmp_path / "data")  # every online group: nothing new
    assert again.returncode == 0, again.stderr
    assert [json.loads(x)["keys_written"] for x in again.stdout.splitlines()] == [0]
    resp = fs_nospark.get_online_features(["weather:temp"], [{"origin": "EWR"}])
    assert resp.to_dict() == {"origin": ["EWR"], "temp": [20.5]}


def test_job_error_is_one_line_and_exit_2(tmp_path):
    out = _job(["--group", "nope", "--engine", "local"], tmp_path / "data")
    assert out.returncode == 2
    assert "feature group 'nope' is not registered" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_facade_materialize_returns_one_type_for_one_group_or_all(fs_nospark):
    online_a, online_b, offline = weather_group("a"), weather_group("b"), weather_group("c")
    offline.online = False
    fs_nospark.apply([online_a, online_b, offline])
    write_deltalake(fs_nospark.offline.table_uri(online_b),
                    rows(online_b, [{"origin": "JFK", "time_hour": T0, "temp": 1.0}]),
                    mode="append")
    one = fs_nospark.materialize("b", engine="local")
    assert [type(r) for r in one] == [MaterializeResult]
    assert (one[0].group, one[0].keys_written, one[0].engine) == ("b", 1, "local")
    every = fs_nospark.materialize(engine="local")
    assert [(r.group, r.keys_written) for r in every] == [("a", 0), ("b", 0)]
    assert all(isinstance(r, MaterializeResult) for r in every)
