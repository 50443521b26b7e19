"""``bench/soak.py`` for 60 s: 8 client processes at a fixed rate against a real service,
half feature reads and half predictions of a deployed MLflow model (logged as in
production); zero errors on both endpoints and every answered prediction in the evaluation
log after the service's shutdown flush (no timing assertion: latencies, memory and their
trend are reported, not judged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_minute_of_features_and_predictions_has_no_errors_and_logs_every_prediction():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "soak.py"), "--seconds",
                        "60", "--rate", "40", "--clients", "8", "--window-s", "15",
                        "--predict-share", "0.5"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["requests"] >= 0.9 * 60 * 40
    assert report["errors"] == 0, report
    for endpoint in ("features", "predict"):
        assert report["endpoints"][endpoint]["errors"] == 0, report
        assert report["endpoints"][endpoint]["requests"] >= 0.4 * report["requests"]
    assert len(report["windows"]) == 4
    for w in report["windows"]:
        assert w["features"]["requests"] > 0 and w["predict"]["requests"] > 0, w
        assert w["rss_mb"] > 0
    assert set(report["trend"]) == {"features_p99_ms", "predict_p99_ms", "rss_mb"}
    log = report["log"]
    assert log["rows_answered"] >= report["endpoints"]["predict"]["requests"]
    assert log["rows_logged"] == log["rows_answered"], log
