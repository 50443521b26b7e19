"""``bench/soak.py`` for 60 s: 8 client processes at a fixed rate against a real service;
zero errors (no timing assertion: latencies and memory are reported, not judged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_minute_at_a_fixed_rate_has_no_errors():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "soak.py"), "--seconds",
                        "60", "--rate", "40", "--clients", "8", "--window-s", "15"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["requests"] >= 0.9 * 60 * 40
    assert report["errors"] == 0, report
    assert len(report["windows"]) == 4 and all(w["requests"] > 0 for w in report["windows"])
    assert all(w["rss_mb"] > 0 for w in report["windows"])
