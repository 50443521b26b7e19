"""``sparkfs get-online --view name@v`` as a user runs it: a real subprocess on a real
data directory; the view's columns (and its key_map) come back, bad input exits 2 with
one readable line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from deltalake import write_deltalake

from sparkfs import FeatureView
from sparkfs.testing.conformance import T0, rows, weather_group

SPARKFS = [sys.executable, "-c", "import sys; from sparkfs.cli import main; sys.exit(main())"]


def _run(args, data_dir):
    env = dict(os.environ, SPARKFS_DATA_DIR=str(data_dir))
    env.pop("SPARKFS_CONFIG", None)
    return subprocess.run(SPARKFS + args, capture_output=True, text=True, env=env, timeout=180)


def test_get_online_of_a_view(fs_nospark, tmp_path):
    g = weather_group()
    view = FeatureView("w", features=["weather:temp"], key_map={"origin": "airport"})
    fs_nospark.apply([g, view])
    write_deltalake(fs_nospark.offline.table_uri(g),
                    rows(g, [{"origin": "JFK", "time_hour": T0, "temp": 39.0}]), mode="append")
    fs_nospark.materialize("weather", engine="local")
    data_dir = tmp_path / "data"
    out = _run(["get-online", "--view", "w@1", "-e", "airport=JFK", "-e", "airport=EWR",
                "--status"], data_dir)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"airport": ["JFK", "EWR"], "temp": [39.0, None],
                                      "temp__status": ["present", "missing"]}
    assert json.loads(_run(["get-online", "--view", "w", "-e", "airport=JFK"],
                           data_dir).stdout)["temp"] == [39.0]

    bad = _run(["get-online", "--view", "nope", "-e", "airport=JFK"], data_dir)
    assert bad.returncode == 2
    assert "feature view 'nope' is not registered" in bad.stderr
    assert "Traceback" not in bad.stderr
    both = _run(["get-online", "--view", "w", "-f", "weather:temp", "-e", "origin=JFK"], data_dir)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    neither = _run(["get-online", "-e", "origin=JFK"], data_dir)
    assert neither.returncode == 2 and "one of the arguments" in neither.stderr
    missing = _run(["get-online", "--view", "w", "-e", "origin=JFK"], data_dir)
    assert missing.returncode == 2 and "airport" in missing.stderr
    assert "Traceback" not in missing.stderr
