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


def _store(tmp_path):
    from sparkfs import Entity, FeatureGroup, FeatureStore, Field

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({"project": "test", "data_dir": str(tmp_path / "data")}))
    fs = FeatureStore.from_config(str(cfg))
    fs.apply([FeatureGroup("clicks", [Entity("user", join_keys=["user_id"])], "ts",
                           [Field("clicks", "long"), Field("score", "double")], online=True)])
    fs.close()
    return cfg


def test_push_file_lands_online_and_offline_with_missing_values(tmp_path, capsys):
    import math

    from sparkfs import FeatureStore

    cfg = _store(tmp_path)
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"user_id": "a", "ts": "2026-01-01T10:00:00Z", "clicks": 3, "score": NaN}\n'
                    '{"user_id": "b", "ts": "2026-01-01T10:00:00Z", "clicks": null, "score": 1.5}\n')
    assert main(["--config", str(cfg), "push", "clicks", str(rows)]) == 0
    assert "pushed 2 row(s)" in capsys.readouterr().out
    fs = FeatureStore.from_config(str(cfg))
    try:
        online = fs.get_online_features(["clicks:clicks", "clicks:score"],
                                        [{"user_id": "a"}, {"user_id": "b"}]).to_dict()
        stored = fs.offline.read_arrow(fs.get_feature_group("clicks")).sort_by("user_id")
    finally:
        fs.close()
    assert online["clicks"] == [3, None]
    assert online["score"][0] is None or math.isnan(online["score"][0])
    assert online["score"][1] == 1.5
    assert stored["clicks"].to_pylist() == [3, None]
    assert math.isnan(stored["score"][0].as_py()) and stored["score"][1].as_py() == 1.5


def test_push_file_bad_input_writes_nothing(tmp_path, capsys):
    from sparkfs import FeatureStore

    cfg = _store(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"user_id": "a", "ts": "2026-01-01T10:00:00Z", "clicks": 1, "score": 1}\n'
                   'not json\n')
    assert main(["--config", str(cfg), "push", "clicks", str(bad)]) == 2
    assert "line 2 is not JSON" in capsys.readouterr().err
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"user_id": "a", "ts": "2026-01-01T10:00:00Z", "clicks": "many", "score": 1}\n')
    assert main(["--config", str(cfg), "push", "clicks", str(wrong)]) == 2
    assert "wrong type" in capsys.readouterr().err
    assert main(["--config", str(cfg), "push", "clicks", str(tmp_path / "rows.txt")]) == 2
    assert "--format" in capsys.readouterr().err
    fs = FeatureStore.from_config(str(cfg))
    try:
        assert fs.offline.read_arrow(fs.get_feature_group("clicks")).num_rows == 0
        assert fs.get_online_features(["clicks:clicks"], [{"user_id": "a"}]).to_dict()["clicks"] == [None]
    finally:
        fs.close()


def test_streams_group_filter_and_stop(tmp_path, capsys):
    import os
    import subprocess
    import sys

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({"project": "test", "data_dir": str(tmp_path / "data")}))
    d = status_dir(str(tmp_path / "data"))
    # a stand-in driver: marks its status stopped on SIGTERM, as jobs/stream.py's query does
    driver = subprocess.Popen([sys.executable, "-c", f"""
import signal, sys, time
from sparkfs.streaming.status import StreamStatus
s = StreamStatus("mine", "carrier_delays", 1, "/ck/a", "kafka:t", pid={0})
import os; s.pid = os.getpid()
def stop(*_):
    s.state = "stopped"; s.write({str(d)!r}); sys.exit(0)
signal.signal(signal.SIGTERM, stop)
s.write({str(d)!r}); print("up", flush=True)
time.sleep(120)
"""], stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert driver.stdout.readline().strip() == "up"
        StreamStatus("other", "origin_delays", 1, "/ck/b", "files:/in", pid=os.getpid()).write(d)
        assert main(["--config", str(cfg), "streams", "--group", "carrier_delays", "--json"]) == 0
        assert [json.loads(x)["stream_id"] for x in capsys.readouterr().out.splitlines()] == ["mine"]
        assert main(["--config", str(cfg), "streams", "--stop", "nope"]) == 2
        assert "no stream 'nope'" in capsys.readouterr().err
        assert main(["--config", str(cfg), "streams", "--stop", "mine", "--wait", "60"]) == 0
        assert "mine: stopped" in capsys.readouterr().out
        assert driver.wait(30) == 0
        assert main(["--config", str(cfg), "streams", "--stop", "mine"]) == 2
        assert "is stopped, not running" in capsys.readouterr().err
    finally:
        if driver.poll() is None:
            driver.kill()
