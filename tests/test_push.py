"""``fs.push``: online at once, Delta in batched asynchronous commits; nothing lost on
SIGTERM; bad rows refused whole. No Spark involved."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, Field
from sparkfs.errors import ValidationError

ROOT = Path(__file__).resolve().parents[1]
USER = Entity("user", join_keys=["user_id"])


def clicks_group() -> FeatureGroup:
    return FeatureGroup("clicks", [USER], "ts", [Field("clicks", "long"), Field("score", "double")],
                        online=True)


def test_push_online_and_offline_newest_event_wins(fs_nospark):
    fs = fs_nospark
    fs.apply([clicks_group()])
    fs.push("clicks", [{"user_id": "a", "ts": "2026-01-01T10:00:00Z", "clicks": 5, "score": None}])
    fs.push("clicks", [{"user_id": "a", "ts": "2026-01-01T09:00:00Z", "clicks": 1, "score": 1.0}])
    resp = fs.get_online_features(["clicks:clicks", "clicks:score"], [{"user_id": "a"}]).to_dict()
    assert (resp["clicks"], resp["score"]) == ([5], [None])
    fs._pusher().flush()
    stored = fs.offline.read_arrow(fs.get_feature_group("clicks")).column("clicks")
    assert sorted(stored.to_pylist()) == [1, 5]
    stats = fs._pusher().stats()
    assert stats["rows_committed"] == 2 and stats["failed_attempts"] == 0


def test_push_refuses_bad_rows_whole(fs_nospark):
    fs = fs_nospark
    g = clicks_group()
    fs.apply([g])
    with pytest.raises(ValidationError, match=r"'clicks'.*wrong type.*nothing was written"):
        fs.push("clicks", [{"user_id": "a", "ts": "2026-01-01T10:00:00Z", "clicks": "many", "score": 1.0}])
    with pytest.raises(ValidationError, match=r"1 of 2 row\(s\) have a null 'user_id'"):
        fs.push("clicks", [{"user_id": "a", "ts": "2026-01-01T10:00:00Z", "clicks": 1, "score": 1.0},
                           {"user_id": None, "ts": "2026-01-01T10:00:00Z", "clicks": 1, "score": 1.0}])
    with pytest.raises(ValidationError, match="lack column"):
        fs.push("clicks", [{"user_id": "a", "clicks": 1, "score": 1.0}])
    fs.close()
    assert fs.offline.read_arrow(g).num_rows == 0
    assert fs.get_online_features(["clicks:clicks"], [{"user_id": "a"}]).to_dict()["clicks"] == [None]


PUSHER = """
import json, signal, sys
from sparkfs import Entity, FeatureGroup, Field, FeatureStore
fs = FeatureStore({"project": "test", "data_dir": sys.argv[1]})
g = FeatureGroup("clicks", [Entity("user", join_keys=["user_id"])], "ts",
                 [Field("clicks", "long"), Field("score", "double")], online=True)
fs.apply([g])
pushed = 0
stopping = False
def stop(*_):  # a driver's SIGTERM handler: finish the current push, then close the store
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, stop)
i = 0
while not stopping:
    rows = [{"user_id": f"u{i}-{j}", "ts": "2026-01-01T00:00:00Z", "clicks": j, "score": j / 2}
            for j in range(20)]
    fs.push("clicks", rows)
    pushed += len(rows)
    i += 1
    if i == 5:
        print("ready", flush=True)
fs.close()  # flushes the queued rows to Delta
print(json.dumps({"pushed": pushed}), flush=True)
"""


def test_push_loses_nothing_on_sigterm(tmp_path):
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-c", PUSHER, str(data)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    pushed = json.loads(out.strip().splitlines()[-1])["pushed"]
    fs = FeatureStore({"project": "test", "data_dir": str(data)})
    try:
        g = fs.get_feature_group("clicks")
        hist = fs.offline.read_arrow(g)
        assert hist.num_rows == pushed >= 100
        assert len(set(hist.column("user_id").to_pylist())) == pushed
        commits = [h for h in fs.offline.table(g).history() if h.get("sparkfs.operation") == "push"]
        assert 1 <= len(commits) < pushed // 20  # batched: fewer commits than push calls
    finally:
        fs.close()
