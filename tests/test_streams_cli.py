"""``sparkfs streams`` reads the status files stream drivers write (no Spark)."""

from __future__ import annotations

import json

from sparkfs.cli import main
from sparkfs.streaming.status import StreamStatus, status_dir


def test_streams_lists_running_and_dead_streams(tmp_path, capsys):
    import os

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({"project": "test", "data_dir": str(tmp_path / "data")}))
    d = status_dir(str(tmp_path / "data"))
    StreamStatus("live", "carrier_delays", 1, "/ck/a", "kafka:departures", pid=os.getpid(),
                 last_batch_id=4, rows_per_s=120.5, lag=7).write(d)
    StreamStatus("gone", "origin_delays", 2, "/ck/b", "files:/in", pid=2**22 + 12345,
                 last_error="boom").write(d)

    assert main(["--config", str(cfg), "streams"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["stream_id", "group", "state", "source"]
    assert len(out) == 2 and out[1].split()[:4] == ["live", "carrier_delays@1", "running", "kafka:departures"]

    assert main(["--config", str(cfg), "streams", "--all", "--json"]) == 0
    rows = {r["stream_id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["gone"]["state"] == "dead" and rows["gone"]["last_error"] == "boom"
    assert (rows["live"]["lag"], rows["live"]["rows_per_s"]) == (7, 120.5)


def test_streams_with_none_says_so(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({"project": "test", "data_dir": str(tmp_path / "data")}))
    assert main(["--config", str(cfg), "streams"]) == 0
    assert "no running streams" in capsys.readouterr().out
