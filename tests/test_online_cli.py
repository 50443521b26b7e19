"""``sparkfs materialize``, ``sparkfs get-online`` and ``sparkfs dev-hbase`` as a user runs
them: real subprocesses on a real data directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from deltalake import write_deltalake
from online_conformance import T0, rows, weather_group

SPARKFS = [sys.executable, "-c", "import sys; from sparkfs.cli import main; sys.exit(main())"]


def _run(args, data_dir, timeout=180):
    env = dict(os.environ, SPARKFS_DATA_DIR=str(data_dir))
    env.pop("SPARKFS_CONFIG", None)
    return subprocess.run(SPARKFS + args, capture_output=True, text=True, env=env, timeout=timeout)


def test_materialize_then_get_online(fs_nospark, tmp_path):
    g = weather_group()
    fs_nospark.apply([g])
    write_deltalake(fs_nospark.offline.table_uri(g),
                    rows(g, [{"origin": "JFK", "time_hour": T0, "temp": 39.0}]), mode="append")
    data_dir = tmp_path / "data"
    out = _run(["materialize", "weather", "--engine", "local"], data_dir)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["keys_written"] == 1
    out = _run(["get-online", "-f", "weather:temp", "-e", "origin=JFK", "-e", "origin=EWR",
                "--status"], data_dir)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"origin": ["JFK", "EWR"], "temp": [39.0, None],
                                      "temp__status": ["present", "missing"]}
    bad = _run(["get-online", "-f", "weather:nope", "-e", "origin=JFK"], data_dir)
    assert bad.returncode == 2
    assert "has no feature 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_dev_hbase_serves_happybase(tmp_path):
    import happybase

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(SPARKFS + ["dev-hbase", "--port", str(port)],
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert "emulator" in proc.stderr.readline()
        deadline = time.time() + 30
        while True:
            try:
                con = happybase.Connection("127.0.0.1", port)
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        con.create_table("t", {"f": {}})
        con.table("t").put(b"r", {b"f:q": b"v"})
        assert con.table("t").row(b"r") == {b"f:q": b"v"}
        con.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_materialize_job_applies_repo_and_materializes(tmp_path):
    repo = tmp_path / "repo.py"
    repo.write_text(
        "from sparkfs import Entity, FeatureGroup, Field\n"
        "airport = Entity('airport', join_keys=['origin'])\n"
        "weather = FeatureGroup('weather', [airport], 'time_hour', [Field('temp', 'double')])\n")
    data_dir = tmp_path / "data"
    env = dict(os.environ, SPARKFS_DATA_DIR=str(data_dir))
    env.pop("SPARKFS_CONFIG", None)
    job = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "jobs", "materialize.py")
    out = subprocess.run([sys.executable, job, "--repo", str(repo), "--engine", "local"],
                         capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    first = json.loads(out.stdout.strip().splitlines()[-1])
    assert (first["group"], first["to_delta_version"], first["keys_written"]) == ("weather", 0, 0)
    out = subprocess.run([sys.executable, job, "--group", "nosuch", "--engine", "local"],
                         capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 2 and "'nosuch' is not registered" in out.stderr
