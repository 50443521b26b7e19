"""A replay of a committed batch under a new run id, on a strict group (the fused path):
when the batch holds exactly the rows one commit wrote and every expectation is row-level,
the verdicts are that commit's (each depends only on the rows), so its stored report is
taken and great-expectations does not run again
(``sparkfs.validation.run.replayed_outcome``). Anything else runs great-expectations as
before: a suite changed since (which may now refuse the stored rows), a batch-level
expectation, rows stored by several commits."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from sparkfs import Entity, FeatureGroup, Field, ValidationError
from sparkfs.validation import expect, reports
from sparkfs.validation import run as vrun

UTC = dt.UTC
ROWS = [("a", 1, 0.5, "x"), ("b", 2, None, "y"), ("c", 3, 0.25, None), ("a", 4, 1.0, "x")]
ROW_LEVEL = [expect("column_values_to_be_between", column="v", min_value=0, max_value=1),
             expect("column_values_to_be_in_set", column="s", value_set=["x", "y"]),
             expect("column_values_to_not_be_null", column="v", mostly=0.5)]


def frame(spark, rows, parts: int = 1):
    keys, minutes, vs, ss = zip(*rows)
    t = pa.table({"key": pa.array(keys, pa.string()),
                  "ts": pa.array([dt.datetime(2013, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=m)
                                  for m in minutes], pa.timestamp("us", tz="UTC")),
                  "v": pa.array(vs, pa.float64()), "s": pa.array(ss, pa.string())})
    return spark.createDataFrame(t).repartition(parts)


def group(expectations) -> FeatureGroup:
    return FeatureGroup("rp", [Entity("thing", ["key"])], "ts",
                        [Field("v", "double"), Field("s", "string")],
                        expectations=expectations, validation="strict", online=False)


@pytest.fixture
def gx_runs(monkeypatch):
    """How many times great-expectations judged a suite: its own run on a batch, or its
    verdicts from the counts a write pass took (``CountedSuite.outcome``)."""
    calls: list[int] = []

    def spy(real):
        def judged(*a, **k):
            calls.append(1)
            return real(*a, **k)
        return judged

    monkeypatch.setattr(vrun, "_run_gx", spy(vrun._run_gx))
    monkeypatch.setattr(vrun.CountedSuite, "outcome", spy(vrun.CountedSuite.outcome))
    return calls


def comparable(report) -> tuple:
    return (report.status, report.rows_input, report.policy, report.engine,
            [{k: r[k] for k in ("label", "type", "kwargs", "success", "unexpected_count",
                                "unexpected_percent", "row_level")} for r in report.results])


def test_a_replay_takes_the_report_of_the_commit_that_wrote_its_rows(fs, spark, gx_runs):
    g = group(ROW_LEVEL)
    fs.apply([g])
    first = fs.ingest("rp", frame(spark, ROWS), run_id="r1")
    assert first.rows_written == len(ROWS) and len(gx_runs) == 1
    again = fs.ingest("rp", frame(spark, ROWS[::-1], 2), run_id="r2")
    assert (again.rows_skipped, again.rows_written, len(gx_runs)) == (len(ROWS), 0, 1)
    stored = reports(fs.catalog, g)
    # a replay's report names the version its rows were found in, under its own run id
    assert [(r.run_id, r.delta_version) for r in stored] == [("r1", first.delta_version),
                                                            ("r2", first.delta_version)]
    assert comparable(stored[1]) == comparable(stored[0])
    # the `mostly` expectation's count came along: one null of four
    assert [r["unexpected_count"] for r in stored[1].results] == [0, 0, 1]


def test_a_replay_takes_its_own_commits_report_not_another_replays(fs, spark, gx_runs):
    """Batch B is committed after batch A; A's replay then stores a report naming B's
    version. B's replay takes B's report (no null: counts 0), not that one (one null)."""
    g = group(ROW_LEVEL)
    fs.apply([g])
    other = [("d", 5, 0.5, "x"), ("e", 6, 0.75, "y"), ("f", 7, 0.25, "x"), ("d", 8, 1.0, "x")]
    fs.ingest("rp", frame(spark, ROWS), run_id="a")
    fs.ingest("rp", frame(spark, other), run_id="b")
    fs.ingest("rp", frame(spark, ROWS), run_id="a-again")
    fs.ingest("rp", frame(spark, other), run_id="b-again")
    assert len(gx_runs) == 2
    stored = {r.run_id: r for r in reports(fs.catalog, g)}
    assert stored["a-again"].delta_version == stored["b"].delta_version
    assert [r["unexpected_count"] for r in stored["b-again"].results] == [0, 0, 0]
    assert [r["unexpected_count"] for r in stored["a-again"].results] == [0, 0, 1]


def test_a_suite_changed_since_is_run_and_may_refuse_the_replay(fs, spark, gx_runs):
    fs.apply([group(ROW_LEVEL)])
    fs.ingest("rp", frame(spark, ROWS), run_id="r1")
    stricter = [expect("column_values_to_be_between", column="v", min_value=0, max_value=0.9),
                *ROW_LEVEL[1:]]
    fs.apply([group(stricter)])
    version = fs.offline.current_version(group(stricter))
    with pytest.raises(ValidationError, match="refused"):
        fs.ingest("rp", frame(spark, ROWS), run_id="r2")
    assert len(gx_runs) == 2 and fs.offline.current_version(group(stricter)) == version
    assert reports(fs.catalog, group(stricter))[-1].status == "refused"


def test_a_batch_level_expectation_is_run_again(fs, spark, gx_runs):
    fs.apply([group([*ROW_LEVEL, expect("column_mean_to_be_between", column="v", max_value=1)])])
    fs.ingest("rp", frame(spark, ROWS), run_id="r1")
    again = fs.ingest("rp", frame(spark, ROWS), run_id="r2")
    assert again.rows_skipped == len(ROWS) and len(gx_runs) == 2


def test_rows_stored_by_several_commits_are_run_again(fs, spark, gx_runs):
    fs.apply([group(ROW_LEVEL)])
    fs.ingest("rp", frame(spark, ROWS[:2]), run_id="r1")
    fs.ingest("rp", frame(spark, ROWS[2:]), run_id="r2")
    again = fs.ingest("rp", frame(spark, ROWS), run_id="r3")
    assert again.rows_skipped == len(ROWS) and len(gx_runs) == 3
