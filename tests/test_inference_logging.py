"""The evaluation-log writer gathers rows into few Delta appends and loses none (real
delta-rs tables in a temp dir; no Spark)."""

from __future__ import annotations

import datetime as dt
import threading

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
