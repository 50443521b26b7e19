"""Batch fingerprints (sparkfs.offline.fingerprint): each batch the one-pass writer commits
records its row count and event-time range, and a later batch with that count and range is
compared with the files that commit added (count and a sum of row hashes): the same rows,
in any order or partitioning, are a replay known without a write pass or an identity join.
Rows that differ only by where a null sits, by one value or by a repeated row are other
rows; and a batch whose files were removed since is written again."""

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


ROWS = [("a", ts(1), 1.0, [1.0, None], 1), ("b", ts(2), None, None, None),
        ("c", ts(3), NAN, [], 3), ("d", ts(4), -0.0, [NAN], -4),
        ("a", ts(5), float("inf"), [2.0], 2**31 - 1)]


def frame(spark, rows: list[tuple], parts: int = 1):
    keys, times, xs, vs, ns = zip(*rows) if rows else ((), (), (), (), ())
    t = pa.table({"key": pa.array(keys, pa.string()),
                  "ts": pa.array(times, pa.timestamp("us", tz="UTC")),
                  "x": pa.array(xs, pa.float64()),
                  "v": pa.array(vs, pa.list_(pa.float64())),
                  "n": pa.array(ns, pa.int64())})
    return spark.createDataFrame(t).repartition(parts)


@pytest.fixture
def group(fs):
    g = FeatureGroup(name="fp", entities=[Entity("thing", join_keys=["key"])], event_time="ts",
                     schema=[Field("x", "double"), Field("v", "array<double>"),
                             Field("n", "int")])
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


def recorded(fs, group) -> list[tuple]:
    """(batch, rows) recorded by the group's ingest commits, oldest first."""
    out = []
    for h in reversed(fs.offline.table(group).history()):
        meta = commit_metadata(h)
        if meta.get("sparkfs.operation") == "ingest":
            out.append((meta.get(fingerprint.COMMIT_KEY), meta.get("sparkfs.rows")))
    return out


def described(rows: list[tuple]) -> str:
    times = [r[1] for r in rows]
    return fingerprint.batch_key(len(rows), min(times), max(times))


def summed(spark, group, rows: list[tuple], parts: int = 1):
    df = frame(spark, rows, parts)
    cols = [f.name for f in history_schema(group)][:5]
    return fingerprint.total(df.agg(*fingerprint.aggregates(df, cols)).first())


def test_a_replay_in_another_order_is_known_without_a_pass_or_a_join(fs, group, spark, passes):
    first = fs.ingest("fp", frame(spark, ROWS, 2), run_id="r1")
    assert first.rows_written == len(ROWS) and passes == ["pass"]
    assert recorded(fs, group) == [(described(ROWS), str(len(ROWS)))]
    fs.ingest("fp", frame(spark, [("e", ts(9), 1.0, None, 0)]), run_id="r2")  # a later batch
    version, passes[:] = fs.offline.current_version(group), []
    again = fs.ingest("fp", frame(spark, ROWS[::-1], 3), run_id="r3")
    assert (again.rows_input, again.rows_skipped, again.rows_written, again.noop) == \
        (len(ROWS), len(ROWS), 0, True)
    assert passes == [] and fs.offline.current_version(group) == version
    # a partial replay is no replay: its new row is written once, the others skipped
    more = fs.ingest("fp", frame(spark, [*ROWS, ("f", ts(2), 3.0, [], 0)]), run_id="r4")
    assert (more.rows_written, more.rows_skipped) == (1, len(ROWS))
    assert passes == ["pass"]


def test_the_same_count_and_range_with_other_rows_is_no_replay(fs, group, spark, passes):
    """Count and range match the stored batch's; the files it added decide: a corrected
    value is written, an int that does not fit is refused as ever."""
    from sparkfs.errors import ValidationError

    fs.ingest("fp", frame(spark, ROWS), run_id="r1")
    passes[:] = []
    corrected = [("b", ts(2), 2.0, None, None), *ROWS[:1], *ROWS[2:]]
    r = fs.ingest("fp", frame(spark, corrected), run_id="r2")
    assert (r.rows_written, r.rows_skipped) == (1, len(ROWS) - 1)
    with pytest.raises(ValidationError, match="do not fit"):
        fs.ingest("fp", frame(spark, [*ROWS[:4], ("a", ts(5), float("inf"), [2.0], 2**31)]),
                  run_id="r3")


def test_a_moved_null_a_value_or_a_repeated_row_changes_the_sum(spark, group):
    base = summed(spark, group, ROWS)
    assert base is not None and base[0] == len(ROWS)
    assert summed(spark, group, ROWS[::-1], 3) == base
    moved = [("a", ts(1), 1.0, [None, 1.0], 1), *ROWS[1:]]
    assert summed(spark, group, moved) != base
    swapped = [("b", ts(2), None, [1.0], 1), ("b", ts(2), 1.0, None, 1)]
    assert summed(spark, group, swapped) != summed(spark, group, [("b", ts(2), 1.0, [1.0], 1),
                                                                   ("b", ts(2), None, None, 1)])
    # -0.0 equals 0.0 here as in the dedupe (``rowhash``) and in SQL
    assert summed(spark, group, [("b", ts(2), -0.0, None, 1)]) == \
        summed(spark, group, [("b", ts(2), 0.0, None, 1)])
    twice = summed(spark, group, [*ROWS, ROWS[0], ROWS[0]])
    assert twice is not None and twice[1] != summed(spark, group, ROWS)[1]


def test_a_batch_whose_files_were_removed_is_written_again(fs, group, spark, passes):
    """A DELETE since the batch was committed removed some of its rows: the comparison
    alone would skip them (and lose them); the files check sends the batch to the
    row-by-row dedupe, which writes back what is missing."""
    fs.ingest("fp", frame(spark, ROWS), run_id="r1")
    fs.offline.table(group).delete("key = 'a'")
    passes[:] = []
    again = fs.ingest("fp", frame(spark, ROWS), run_id="r2")
    assert (again.rows_written, again.rows_skipped) == (2, len(ROWS) - 2)
    assert passes == ["pass"]
    stored = fs.offline.read_arrow(group).to_pydict()
    assert sorted(zip(stored["key"], stored["ts"])) == sorted((r[0], r[1]) for r in ROWS)


def sums(fs, group) -> list:
    """The row-hash sums recorded by the group's ingest commits, oldest first."""
    return [commit_metadata(h).get(fingerprint.HASH_KEY)
            for h in reversed(fs.offline.table(group).history())
            if commit_metadata(h).get("sparkfs.operation") == "ingest"]


def test_the_commit_records_its_rows_hash_sum_and_a_replay_reads_no_file(fs, group, spark,
                                                                         passes, monkeypatch):
    """The write pass sums its rows' hashes on the way; the commit records the sum, and a
    replay is compared with it: the stored files are not read (a read here would fail)."""
    from sparkfs.offline import tables

    fs.ingest("fp", frame(spark, ROWS, 2), run_id="r1")
    assert sums(fs, group) == [str(summed(spark, group, ROWS)[1])]

    def no_read(*a, **k):
        raise AssertionError("the stored files were read")

    monkeypatch.setattr(tables, "read_files_spark", no_read)
    passes[:] = []
    again = fs.ingest("fp", frame(spark, ROWS[::-1], 3), run_id="r2")
    assert (again.rows_skipped, again.rows_written, passes) == (len(ROWS), 0, [])
    # the same count and range with one value changed: the recorded sum tells them apart
    corrected = [("b", ts(2), 2.0, None, None), *ROWS[:1], *ROWS[2:]]
    r = fs.ingest("fp", frame(spark, corrected), run_id="r3")
    assert (r.rows_written, r.rows_skipped, passes) == (1, len(ROWS) - 1, ["fully_stored", "pass"])


def test_a_commit_without_a_recorded_sum_is_compared_by_its_files(fs, group, spark, passes,
                                                                  monkeypatch):
    """A commit made before sparkfs recorded the sum (here: its sum dropped before the
    commit) is compared by an aggregate over the files it added."""
    from sparkfs.offline import fused, tables

    stage = fused.FusedDeltaRsWriter._stage

    def without_sum(self, batch, df, subdir):
        out = stage(self, batch, df, subdir)
        batch.batch_hash = None
        return out

    monkeypatch.setattr(fused.FusedDeltaRsWriter, "_stage", without_sum)
    fs.ingest("fp", frame(spark, ROWS), run_id="r1")
    monkeypatch.undo()
    assert sums(fs, group) == [None] and recorded(fs, group) == [(described(ROWS), "5")]
    reads: list = []
    read = tables.read_files_spark
    monkeypatch.setattr(tables, "read_files_spark", lambda *a, **k: reads.append(1) or read(*a, **k))
    passes[:] = []
    again = fs.ingest("fp", frame(spark, ROWS[::-1], 2), run_id="r2")
    assert (again.rows_skipped, again.rows_written, passes) == (len(ROWS), 0, [])
    assert reads == [1]


def test_only_committed_batches_are_recorded(fs, group, spark):
    """A refused batch commits nothing; a batch with nothing new commits nothing; a batch
    written in part records the rows it wrote (no replay is compared with it)."""
    from sparkfs.errors import ValidationError

    with pytest.raises(ValidationError):
        fs.ingest("fp", frame(spark, [*ROWS, (None, ts(7), 1.0, None, 0)]), run_id="bad")
    assert recorded(fs, group) == []
    fs.ingest("fp", frame(spark, ROWS[:2]), run_id="r1")
    fs.ingest("fp", frame(spark, ROWS[:1]), run_id="r2")  # all stored, another batch
    fs.ingest("fp", frame(spark, ROWS), run_id="r3")
    assert recorded(fs, group) == [(described(ROWS[:2]), "2"), (described(ROWS), "3")]


def test_which_inputs_are_read_again_instead_of_kept(spark, tmp_path):
    """Plain scans of files or of rows in the plan, filtered, projected and unioned, are
    read again to look for a replay; anything costly or nondeterministic to compute again
    is kept first."""
    from pyspark.sql import functions as F

    from sparkfs.offline.fused import rereadable

    frame(spark, ROWS).write.parquet(f"file://{tmp_path}/src")
    src = spark.read.parquet(f"file://{tmp_path}/src")
    local = spark.createDataFrame(pa.table({"key": ["a"], "x": [1.0]}))
    assert rereadable(src) and rereadable(local)
    assert rereadable(src.where(F.col("x") > 0).select("key", (F.col("x") * 2).alias("x")))
    assert rereadable(src.unionByName(src.withColumn("key", F.concat(F.lit("n"), "key"))))
    assert not rereadable(src.withColumn("r", F.rand()))
    assert not rereadable(src.groupBy("key").count())
    assert not rereadable(src.join(local, "key"))
    assert not rereadable(src.repartition(3))
    assert not rereadable(src.localCheckpoint())

    @F.pandas_udf("double")
    def twice(s):
        return s * 2

    assert not rereadable(src.withColumn("y", twice("x")))


def test_a_replay_of_a_plain_scan_keeps_no_rows(fs, group, spark, passes, tmp_path,
                                                monkeypatch):
    """A replay of a Parquet scan is found on the scan itself: nothing is kept
    (``ingest._read_once``), no pass runs. A batch that is written is kept first."""
    from sparkfs.offline import ingest

    frame(spark, ROWS, 2).write.parquet(f"file://{tmp_path}/src")
    kept: list = []
    real = ingest._read_once
    monkeypatch.setattr(ingest, "_read_once", lambda d, data: kept.append(d) or real(d, data))

    def src():
        return spark.read.parquet(f"file://{tmp_path}/src")

    fs.ingest("fp", src(), run_id="r1")
    fs.ingest("fp", frame(spark, [("e", ts(9), 1.0, None, 9)]), run_id="r2")
    kept[:], passes[:] = [], []
    again = fs.ingest("fp", src(), run_id="r3")
    assert (again.rows_skipped, again.rows_written, kept, passes) == (len(ROWS), 0, [], [])
    more = fs.ingest("fp", src().unionByName(frame(spark, [("f", ts(2), 3.0, [], 6)])),
                     run_id="r4")
    assert (more.rows_written, more.rows_skipped, len(kept), passes) == \
        (1, len(ROWS), 1, ["pass"])


def test_a_written_scan_the_pass_reads_alone_is_not_kept(fs, group, spark, passes, tmp_path,
                                                         monkeypatch):
    """A plain scan that overlaps stored rows but holds more rows than they, for a group
    without expectations, is read by the write pass alone: it is not kept
    (``ingest._read_once``), its stored rows are skipped and its new ones written once. A
    conflict in such a scan is still refused: its exact check reads the scan again."""
    from sparkfs.errors import ValidationError
    from sparkfs.offline import ingest

    def parquet(name: str, rows: list[tuple]):
        frame(spark, rows).write.parquet(f"file://{tmp_path}/{name}")
        return lambda: spark.read.parquet(f"file://{tmp_path}/{name}")

    old = parquet("old", ROWS)
    new = parquet("new", [("f", ts(2), 3.0, [], 6), ("g", ts(3), 4.0, None, 7)])
    clash = parquet("clash", [("f", ts(2), 5.0, [], 6)])
    kept: list = []
    real = ingest._read_once
    monkeypatch.setattr(ingest, "_read_once", lambda d, data: kept.append(d) or real(d, data))
    fs.ingest("fp", old(), run_id="r1")
    kept[:], passes[:] = [], []
    more = fs.ingest("fp", old().unionByName(new()), run_id="r2")
    assert (more.rows_written, more.rows_skipped, kept, passes) == (2, len(ROWS), [], ["pass"])
    assert sorted(fs.offline.read_arrow(group).column("key").to_pylist()) == \
        ["a", "a", "b", "c", "d", "f", "g"]
    version = fs.offline.current_version(group)
    with pytest.raises(ValidationError, match="different values for the same join keys"):
        fs.ingest("fp", old().unionByName(new()).unionByName(clash()), run_id="r3")
    assert fs.offline.current_version(group) == version and kept == []


def test_an_input_that_changes_between_reads_is_refused(fs, group, spark, tmp_path,
                                                        monkeypatch):
    """Fault injected: an input taken for a plain scan whose event times differ at each
    read (as files rewritten during the ingest would). The pass reads another range than
    the range job did: refused, nothing committed, no staged file left."""
    import os

    from pyspark.sql import functions as F

    from sparkfs.errors import SparkfsError
    from sparkfs.offline import fused

    fs.ingest("fp", frame(spark, ROWS), run_id="r1")
    version = fs.offline.current_version(group)
    monkeypatch.setattr(fused, "rereadable", lambda df: True)
    # each Spark job fixes its own current time: every read gives other event times
    moving = frame(spark, [(f"z{i}", ts(6), 1.0, None, i) for i in range(50)]).withColumn(
        "ts", F.current_timestamp())
    with pytest.raises(SparkfsError, match="gave the write pass other rows"):
        fs.ingest("fp", moving, run_id="r2")
    assert fs.offline.current_version(group) == version
    table = fs.offline.table_uri(group).removeprefix("file://")
    staged = [d for d in os.listdir(table) if d.startswith("ingest-") and
              any(f.endswith(".parquet") for f in os.listdir(os.path.join(table, d)))]
    stored = {f.rsplit("/", 1)[-1] for f in fs.offline.files(group)}
    assert [f for d in staged for f in os.listdir(os.path.join(table, d))
            if f.endswith(".parquet") and f not in stored] == []
