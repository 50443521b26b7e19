"""The evaluation-log writer gathers rows into few Delta appends and loses none (real
delta-rs tables in a temp dir; no Spark)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from deltalake import DeltaTable

from sparkfs.inference.evaluation import EvaluationLogger, create_log_table, read_log
from sparkfs.models.binding import FeatureBinding

BINDING = FeatureBinding(None, (), (("temp", "double"),))
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def rows(request: str, n: int) -> list[dict]:
    return [{"request_id": request, "row": i, "time": T0, "deployment": "d", "temp": float(i),
             "temp__status": "present", "prediction": 1.0} for i in range(n)]


def writes(path: str) -> int:
    return [h["operation"] for h in DeltaTable(path).history()].count("WRITE")


def test_rows_submitted_together_share_one_append(tmp_path):
    path = str(tmp_path / "log")
    create_log_table(path, BINDING)
    logger = EvaluationLogger(flush_s=60)  # nothing is written before a flush asks
    try:
        for i in range(20):
            assert logger.submit("d", path, BINDING, rows(f"r{i}", 2))
        assert logger.flush(30)
        assert writes(path) == 1
        assert logger.submit("d", path, BINDING, lambda: rows("late", 3), n=3)
        assert logger.flush(30)
        assert writes(path) == 2
    finally:
        logger.close(30)
    log = read_log(path)
    assert len(log) == 43 and log.request_id.nunique() == 21
    assert logger.counters()["logged"] == {"d": 43}


def wait_until(cond, seconds: float = 30) -> bool:
    pause = threading.Event()
    for _ in range(int(seconds / 0.05)):
        if cond():
            return True
        pause.wait(0.05)
    return cond()


def test_rows_are_written_without_a_flush_and_a_full_batch_goes_at_once(tmp_path):
    path = str(tmp_path / "log")
    create_log_table(path, BINDING)
    logger = EvaluationLogger(batch_rows=10, flush_s=0.05)
    big = EvaluationLogger(batch_rows=10, flush_s=3600)
    try:
        logger.submit("d", path, BINDING, rows("a", 1))
        # the writer's own deadline writes it, no flush asked
        assert wait_until(lambda: logger.counters()["logged"] == {"d": 1})
        # a full batch wakes the writer although its wait is an hour
        big.submit("d", path, BINDING, rows("b", 10))
        assert wait_until(lambda: big.counters()["logged"] == {"d": 10})
    finally:
        logger.close(30)
        big.close(30)
    assert len(read_log(path)) == 11


def test_close_writes_what_is_queued_and_later_rows_are_counted_as_dropped(tmp_path):
    path = str(tmp_path / "log")
    create_log_table(path, BINDING)
    logger = EvaluationLogger(flush_s=3600)
    logger.submit("d", path, BINDING, rows("a", 4))
    logger.close(30)
    assert len(read_log(path)) == 4
    assert not logger.submit("d", path, BINDING, rows("b", 2))
    assert logger.counters()["dropped"] == {"d": 2}


SIGTERM_CHILD = r'''
import sys, time
from sparkfs.config import InferenceConfig
from sparkfs.inference.evaluation import EvaluationLogger, create_log_table, install_sigterm_flush
from sparkfs.models.binding import FeatureBinding
from test_inference_logging import rows

path, n, flush_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
binding = FeatureBinding(None, (), (("temp", "double"),))
create_log_table(path, binding)
c = InferenceConfig()  # the service's defaults: 20,000 rows, 1 s per append
logger = EvaluationLogger(c.log_queue_rows, c.log_batch_rows, flush_s or c.log_flush_s)
assert install_sigterm_flush(logger.flush)
for i in range(n):  # rows built by the writer, as the service's requests queue them
    assert logger.submit("d", path, binding, lambda i=i: rows(f"r{i}", 3), n=3)
print("queued", flush=True)
time.sleep(120)  # SIGTERM arrives while the rows are still gathering
'''


@pytest.mark.parametrize("flush_s", [0.0, 3600.0], ids=["default_wait", "hour_wait"])
def test_sigterm_writes_every_queued_row_before_the_process_ends(tmp_path, flush_s):
    """SIGTERM to a process whose rows are still gathering (with the default
    ``inference.log_flush_s`` and with an hour's wait) loses none: the handler flushes,
    then the process ends as SIGTERM ends it."""
    import os
    import signal
    import subprocess
    import sys

    from sparkfs.config import InferenceConfig

    assert (InferenceConfig().log_batch_rows, InferenceConfig().log_flush_s) == (20_000, 1.0)
    path = str(tmp_path / "log")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(__file__), os.path.dirname(os.path.dirname(__file__)),
         os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_CHILD, path, "200", str(flush_s)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "queued", proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGTERM, proc.stderr.read()
    log = read_log(path)
    assert len(log) == 600 and log.request_id.nunique() == 200
    assert not log.duplicated(["request_id", "row"]).any()
    assert writes(path) == 1  # one gathered append
