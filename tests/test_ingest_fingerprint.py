"""Batch fingerprints (sparkfs.offline.fingerprint): every batch the one-pass writer commits
records its fingerprint, and a later batch with the same rows (in any order or
partitioning) is a replay known from one aggregate: no write pass, no identity join, no
file. Rows that differ only by where a null sits, or by a repeated row, are other
batches; and a batch whose files were removed since is written again."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from sparkfs import Entity, FeatureGroup, Field
from sparkfs.offline import dedupe, fingerprint, onepass
from sparkfs.offline.tables import history_schema
from sparkfs.offline.writers import commit_metadata

UTC = dt.UTC
NAN = float("nan")


def ts(minute: int) -> dt.datetime:
    return dt.datetime(2013, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=minute)


ROWS = [("a", ts(1), 1.0, [1.0, None]), ("b", ts(2), None, None), ("c", ts(3), NAN, []),
        ("d", ts(4), -0.0, [NAN]), ("a", ts(5), float("inf"), [2.0])]


def frame(spark, rows: list[tuple], parts: int = 1):
    keys, times, xs, vs = zip(*rows) if rows else ((), (), (), ())
    t = pa.table({"key": pa.array(keys, pa.string()),
                  "ts": pa.array(times, pa.timestamp("us", tz="UTC")),
                  "x": pa.array(xs, pa.float64()),
                  "v": pa.array(vs, pa.list_(pa.float64()))})
    return spark.createDataFrame(t).repartition(parts)


@pytest.fixture
def group(fs):
    g = FeatureGroup(name="fp", entities=[Entity("thing", join_keys=["key"])], event_time="ts",
                     schema=[Field("x", "double"), Field("v", "array<double>")])
    fs.apply([g])
    return g


@pytest.fixture
def passes(monkeypatch):
    """The write passes and the identity joins (``dedupe.fully_stored``) run, by name."""
    calls: list[str] = []
    stage, stored = onepass.stage_with_spark, dedupe.fully_stored

    def stage_spy(*a, **k):
        calls.append("pass")
        return stage(*a, **k)

    def stored_spy(*a, **k):
        calls.append("fully_stored")
        return stored(*a, **k)

    monkeypatch.setattr(onepass, "stage_with_spark", stage_spy)
    monkeypatch.setattr(dedupe, "fully_stored", stored_spy)
    return calls


def recorded(fs, group) -> list[str]:
    """The fingerprints recorded in the group's commits, oldest first."""
    history = fs.offline.table(group).history()
    return [commit_metadata(h).get(fingerprint.COMMIT_KEY) for h in reversed(history)
            if commit_metadata(h).get("sparkfs.operation") == "ingest"]


def of(spark, group, rows: list[tuple], parts: int = 1) -> str | None:
    """The fingerprint the range job's side computes (``fingerprint.aggregates``)."""
    df = frame(spark, rows, parts)
    cols = [f.name for f in history_schema(group)][:4]
    times = [int(r[1].timestamp() * 1_000_000) for r in rows]
    return fingerprint.fingerprint(fingerprint.total(df.agg(*fingerprint.aggregates(df, cols))
                                                     .first()), len(rows),
                                   history_schema(group), min(times, default=None),
                                   max(times, default=None))


def test_a_replay_in_another_order_is_known_without_a_pass_or_a_join(fs, group, spark, passes):
    first = fs.ingest("fp", frame(spark, ROWS, 2), run_id="r1")
    assert first.rows_written == len(ROWS) and passes == ["pass"]
    # the write pass observed the fingerprint the range job computes for the same rows
    assert recorded(fs, group) == [of(spark, group, ROWS)]
    fs.ingest("fp", frame(spark, [("e", ts(9), 1.0, None)]), run_id="r2")  # a later batch
    version, passes[:] = fs.offline.current_version(group), []
    again = fs.ingest("fp", frame(spark, ROWS[::-1], 3), run_id="r3")
    assert (again.rows_input, again.rows_skipped, again.rows_written, again.noop) == \
        (len(ROWS), len(ROWS), 0, True)
    assert passes == [] and fs.offline.current_version(group) == version
    # a partial replay is no replay: its new row is written once, the others skipped
    more = fs.ingest("fp", frame(spark, [*ROWS, ("f", ts(2), 3.0, [])]), run_id="r4")
    assert (more.rows_written, more.rows_skipped) == (1, len(ROWS))
    assert passes == ["pass"]
    assert recorded(fs, group)[-1] == of(spark, group, [*ROWS, ("f", ts(2), 3.0, [])])


def test_a_moved_null_or_a_repeated_row_is_another_batch(spark, group):
    base = of(spark, group, ROWS)
    assert base is not None
    assert of(spark, group, ROWS[::-1], 3) == base
    moved = [("a", ts(1), 1.0, [None, 1.0]), *ROWS[1:]]
    assert of(spark, group, moved) != base
    swapped = [("b", ts(2), None, [1.0]), ("b", ts(2), 1.0, None)]
    assert of(spark, group, swapped) != of(spark, group, [("b", ts(2), 1.0, [1.0]),
                                                          ("b", ts(2), None, None)])
    assert of(spark, group, [*ROWS, ROWS[0]]) != base
    assert of(spark, group, [*ROWS, ROWS[0], ROWS[0]]) != of(spark, group, [*ROWS, ROWS[0]])
    assert of(spark, group, []) is None


def test_a_batch_whose_files_were_removed_is_written_again(fs, group, spark, passes):
    """A DELETE since the batch was committed removed some of its rows: the fingerprint
    alone would skip them (and lose them); the files check sends the batch to the
    row-by-row dedupe, which writes back what is missing."""
    fs.ingest("fp", frame(spark, ROWS), run_id="r1")
    fs.offline.table(group).delete("key = 'a'")
    passes[:] = []
    again = fs.ingest("fp", frame(spark, ROWS), run_id="r2")
    assert (again.rows_written, again.rows_skipped) == (2, len(ROWS) - 2)
    assert passes == ["pass"]
    stored = fs.offline.read_arrow(group).to_pydict()
    assert sorted(zip(stored["key"], stored["ts"])) == sorted((k, t) for k, t, _, _ in ROWS)


def test_only_committed_batches_are_recorded(fs, group, spark):
    """A refused batch commits nothing; a batch with nothing new commits nothing; the
    quarantine path (rows set aside) records no fingerprint."""
    from sparkfs.errors import ValidationError

    with pytest.raises(ValidationError):
        fs.ingest("fp", frame(spark, [*ROWS, (None, ts(7), 1.0, None)]), run_id="bad")
    assert recorded(fs, group) == []
    fs.ingest("fp", frame(spark, ROWS), run_id="r1")
    fs.ingest("fp", frame(spark, ROWS[:2]), run_id="r2")  # all stored, another batch
    assert recorded(fs, group) == [of(spark, group, ROWS)]
