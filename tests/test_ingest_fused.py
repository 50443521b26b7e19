"""The fused ingest (sparkfs.offline.fused): row checks, dedupe and statistics in the
delta-rs writer's one write pass. A refused batch leaves nothing behind, conflicting rows
in different tasks are found (and a mere hash collision is not refused), a replay writes
no file, a partial replay writes the new rows once, quarantine keeps its accounting and
run ids stay idempotent."""

from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pyarrow as pa
import pytest

from sparkfs import Entity, FeatureGroup, Field
from sparkfs.errors import ValidationError
from sparkfs.offline import checks as checks_mod
from sparkfs.offline import onepass

UTC = dt.UTC
NAN = float("nan")


def ts(minute: int) -> dt.datetime:
    return dt.datetime(2013, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=minute)


def table(rows: list[tuple]) -> pa.Table:
    keys, times, xs, ns = zip(*rows)
    return pa.table({"key": pa.array(keys, pa.string()),
                     "ts": pa.array(times, pa.timestamp("us", tz="UTC")),
                     "x": pa.array(xs, pa.float64()), "n": pa.array(ns, pa.int64())})


def with_system_columns(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """``t`` with the history's ``_commit_time`` and ``_run_id`` (of ``schema``) filled in."""
    n = t.num_rows
    return t.append_column("_commit_time", pa.array([ts(0)] * n, schema.field("_commit_time").type)) \
            .append_column("_run_id", pa.array(["r"] * n))


def frame(spark, *parts: list[tuple]):
    """One Spark partition (one write task) per part."""
    out = None
    for rows in parts:
        df = spark.createDataFrame(table(rows)).coalesce(1)
        out = df if out is None else out.union(df)
    return out


@pytest.fixture
def group(fs):
    g = FeatureGroup(name="fz", entities=[Entity("thing", join_keys=["key"])], event_time="ts",
                     schema=[Field("x", "double"), Field("n", "int")])
    fs.apply([g])
    return g


@pytest.fixture
def fused_calls(monkeypatch):
    """The write passes run with row checks (the fused path), counted."""
    calls: list[dict] = []
    real = onepass.stage_with_spark

    def spy(*a, **k):
        out = real(*a, **k)
        if (a[4] if len(a) > 4 else k.get("checks")) is not None:
            calls.append(out[2])
        return out

    monkeypatch.setattr(onepass, "stage_with_spark", spy)
    return calls


def files_under(path: str) -> set[str]:
    return {os.path.join(d, f) for d, _, names in os.walk(path) for f in names}


def data_files(path: str) -> set[str]:
    return {f for f in files_under(path) if "_delta_log" not in f}


BASE = [("a", ts(1), 1.0, 1), ("b", ts(2), None, 2), ("c", ts(3), NAN, None),
        ("d", ts(4), -0.0, 4)]


@pytest.mark.parametrize("parts, message", [
    ([BASE[:2], [(None, ts(5), 1.0, 1)]], "1 row(s) have a null join key 'key'"),
    ([BASE[:2], [("e", None, 1.0, 1), ("f", None, 1.0, 1)]],
     "2 row(s) have a null event time 'ts'"),
    ([BASE[:2], [("e", ts(5), 1.0, 2**40)]], "1 value(s) of 'n' do not fit its dtype int"),
])
def test_refused_batch_commits_nothing_and_leaves_no_file(fs, group, spark, fused_calls,
                                                          parts, message):
    uri = fs.offline.table_uri(group)
    before = files_under(uri)
    with pytest.raises(ValidationError) as err:
        fs.ingest("fz", frame(spark, *parts), run_id="bad")
    assert message in str(err.value) and "nothing was written" in str(err.value)
    assert len(fused_calls) == 1  # refused after the write pass, before the commit
    assert fs.offline.current_version(group) == 0 and files_under(uri) == before
    ok = fs.ingest("fz", frame(spark, BASE), run_id="bad")  # the run id stays usable
    assert ok.rows_written == len(BASE)


def test_conflict_across_tasks_is_refused_and_duplicates_are_not(fs, group, spark, fused_calls):
    with pytest.raises(ValidationError, match="2 row.s. give different values"):
        fs.ingest("fz", frame(spark, [("a", ts(1), 1.0, 1)], [("a", ts(1), 2.0, 1)]))
    with pytest.raises(ValidationError, match="3 row.s. give different values"):  # NaN vs null
        fs.ingest("fz", frame(spark, [("a", ts(1), NAN, 1), ("a", ts(1), NAN, 1)],
                              [("a", ts(1), None, 1)]))
    assert fs.offline.current_version(group) == 0
    assert [c["suspects"] for c in fused_calls] == [1, 1]
    # the same row in two tasks (-0.0 equal to 0.0, NaN to NaN) is no conflict: both land,
    # as on the old path
    r = fs.ingest("fz", frame(spark, [("a", ts(1), -0.0, 1), ("b", ts(1), NAN, None)],
                              [("a", ts(1), 0.0, 1), ("b", ts(1), NAN, None)]), run_id="dups")
    assert (r.rows_input, r.rows_written) == (4, 4) and fused_calls[-1]["suspects"] == 0
    # the tasks' key-hash side files are read and gone, refused or committed
    assert not [f for f in files_under(fs.offline.table_uri(group))
                if onepass.KEY_HASHES_DIR in f]


def test_hash_collision_is_confirmed_exactly_before_refusing(fs, group, spark, fused_calls,
                                                             monkeypatch):
    from sparkfs.offline import fused

    monkeypatch.setattr(checks_mod, "conflict_hashes", lambda parts: 1)  # "a collision"
    read: list = []
    real = fused.exact_conflicts
    monkeypatch.setattr(fused, "exact_conflicts",
                        lambda g, df: read.append(df.inputFiles()) or real(g, df))
    r = fs.ingest("fz", frame(spark, BASE[:2], BASE[2:]), run_id="r1")
    assert r.rows_written == len(BASE) and fused_calls[-1]["suspects"] == 1
    # confirmed on the files the pass wrote (it matched no stored row): what is committed
    uri = fs.offline.table_uri(group)
    assert read[-1] and all(f.startswith(f"file://{uri}/ingest-") for f in read[-1])


def test_full_replay_writes_no_file_and_partial_replay_writes_new_rows_once(fs, group, spark,
                                                                            fused_calls):
    first = fs.ingest("fz", frame(spark, BASE[:2], BASE[2:]), run_id="r1")
    assert first.rows_written == len(BASE)
    uri = fs.offline.table_uri(group)
    before = data_files(uri)
    again = fs.ingest("fz", frame(spark, list(reversed(BASE[2:])), BASE[:2]), run_id="r2")
    assert (again.rows_input, again.rows_written, again.rows_skipped, again.noop) == (4, 0, 4, True)
    assert fs.offline.current_version(group) == first.delta_version
    assert data_files(uri) == before
    assert len(fused_calls) == 1  # the replay was found stored by Spark alone: no write pass
    # partly new: a correction (d), a new key (e), stored rows with null and NaN values
    part = frame(spark, [BASE[1], ("d", ts(4), 4.5, 4)], [BASE[2], ("e", ts(2), 1.0, 1)])
    r = fs.ingest("fz", part, run_id="r3")
    assert (r.rows_input, r.rows_written, r.rows_skipped) == (4, 2, 2)
    assert r.delta_version == first.delta_version + 1
    hist = fs.read_history("fz").to_pandas()
    assert len(hist) == len(BASE) + 2
    assert sorted(hist[hist["_run_id"] == "r3"]["key"]) == ["d", "e"]
    stats = fs.statistics("fz")
    assert stats.delta_version == r.delta_version and stats.rows == 2
    assert len(fused_calls) == 2
    noop = fs.ingest("fz", part, run_id="r3")  # same run id: a no-op, nothing staged
    assert noop.noop and noop.delta_version == r.delta_version and len(fused_calls) == 2


@pytest.mark.parametrize("stored_by", ["broadcast", "saved index", "old path"])
def test_partial_replay_of_an_int_keyed_group_writes_only_new_rows(fs, spark, fused_calls,
                                                                  monkeypatch, stored_by):
    """A partly new batch of a group with an int join key and an int feature (both read
    as bigint by the pass, stored as int): its stored rows -- with -0.0 for a stored 0.0,
    NaN, nulls -- are found in the stored identities and dropped in the pass; corrections
    and new rows are written, once. The same whether the tasks get the stored identities
    as a broadcast, map the index the driver saved in the staging folder (then deleted
    before the commit), or the overlap is too large for either (the old path's join)."""
    from sparkfs.offline import fused

    if stored_by == "saved index":
        monkeypatch.setattr(fused, "BROADCAST_MAX_ROWS", 0)
    if stored_by == "old path":
        monkeypatch.setattr(fused, "INDEX_MAX_ROWS", 0)
    mapped: list[str] = []
    real_stage = onepass.stage_with_spark

    def stage(df, stage_uri, schema, specs, checks=None):  # what the tasks were given
        if checks is not None and isinstance(checks.stored, str):
            assert os.path.exists(checks.stored)  # the tasks map it: no broadcast
            mapped.append(os.path.relpath(checks.stored, stage_uri.removeprefix("file://")))
        return real_stage(df, stage_uri, schema, specs, checks)

    monkeypatch.setattr(onepass, "stage_with_spark", stage)
    g = FeatureGroup(name="fi", entities=[Entity("thing", join_keys=["id"], dtypes={"id": "int"})],
                     event_time="ts",
                     schema=[Field("x", "double"), Field("n", "int")])
    fs.apply([g])

    def rows(data):
        ids, times, xs, ns = zip(*data)
        return spark.createDataFrame(pa.table({
            "id": pa.array(ids, pa.int64()), "ts": pa.array(times, pa.timestamp("us", tz="UTC")),
            "x": pa.array(xs, pa.float64()), "n": pa.array(ns, pa.int64())})).coalesce(1)

    stored = [(1, ts(1), 0.0, 1), (2, ts(2), NAN, None), (3, ts(3), None, 3), (4, ts(4), 1.5, 4)]
    fs.ingest("fi", rows(stored), run_id="s1")
    batch = [(1, ts(1), -0.0, 1), (2, ts(2), NAN, None), (3, ts(3), None, 3),
             (4, ts(4), 1.5, 5), (4, ts(5), 1.5, 4), (5, ts(2), None, None)]
    r = fs.ingest("fi", rows(batch), run_id="s2")
    assert (r.rows_input, r.rows_written, r.rows_skipped) == (6, 3, 3)
    # the partial replay took the write pass, unless the overlap was too large
    assert len(fused_calls) == (1 if stored_by == "old path" else 2)
    assert mapped == ([onepass.STORED_INDEX_FILE] if stored_by == "saved index" else [])
    uri = fs.offline.table_uri(g)
    assert not [f for f in files_under(uri) if onepass.STORED_INDEX_FILE in f]
    hist = fs.read_history("fi").to_pandas()
    new = hist[hist["_run_id"] == "s2"]
    assert sorted(zip(new["id"], new["ts"].dt.minute, new["n"].fillna(-1))) == [
        (4, 4, 5), (4, 5, 4), (5, 2, -1)]
    again = fs.ingest("fi", rows(batch[::-1]), run_id="s3")  # every row stored now
    assert (again.rows_written, again.rows_skipped) == (0, 6)


def test_a_failed_pass_reports_its_error_when_the_saved_index_is_already_gone(
        fs, group, spark, monkeypatch):
    """The driver deletes the index it saved for the tasks after the pass, best effort:
    a file that cannot be deleted (here: removed meanwhile) does not hide why the pass
    failed, and nothing is committed."""
    from sparkfs.errors import SparkfsError
    from sparkfs.offline import fused

    fs.ingest("fz", frame(spark, BASE), run_id="s1")
    monkeypatch.setattr(fused, "BROADCAST_MAX_ROWS", 0)

    def failing(df, stage_uri, schema, specs, checks=None):
        os.remove(checks.stored)
        raise RuntimeError("the executors ran out of disk")

    monkeypatch.setattr(onepass, "stage_with_spark", failing)
    with pytest.raises(SparkfsError, match="the executors ran out of disk"):
        fs.ingest("fz", frame(spark, BASE + [("e", ts(5), 2.0, 5)]), run_id="s2")
    assert fs.offline.current_version(group) == 1


def test_a_replay_is_found_stored_only_when_nothing_contradicts_it(fs, group, spark,
                                                                   fused_calls):
    """``dedupe.fully_stored`` lets a batch skip the write pass only when each row is stored
    and every stored row at its keys and time has its values: a stored correction, a
    value that does not fit its int, a null key or one new row sends it down the general
    path, which decides as before."""
    fs.ingest("fz", frame(spark, BASE), run_id="r1")
    fs.ingest("fz", frame(spark, [("a", ts(1), 2.0, 1)]), run_id="r2")  # a correction of a
    fs.ingest("fz", frame(spark, [("e", ts(5), 1.0, None)]), run_id="r3")
    version, passes = fs.offline.current_version(group), len(fused_calls)
    # both stored values of a in one batch: still two values for one key and time
    with pytest.raises(ValidationError, match="2 row.s. give different values"):
        fs.ingest("fz", frame(spark, [BASE[0], ("a", ts(1), 2.0, 1)]), run_id="x1")
    # 2**40 does not fit int: not the stored null, refused as before
    with pytest.raises(ValidationError, match="1 value.s. of 'n' do not fit"):
        fs.ingest("fz", frame(spark, [("e", ts(5), 1.0, 2**40)]), run_id="x2")
    with pytest.raises(ValidationError, match="null join key"):
        fs.ingest("fz", frame(spark, BASE[1:], [(None, ts(2), None, 2)]), run_id="x3")
    assert len(fused_calls) == passes + 3  # each took the write pass
    one = fs.ingest("fz", frame(spark, [BASE[0]]), run_id="x4")  # stored, a corrected since
    assert (one.rows_skipped, one.noop, len(fused_calls)) == (1, True, passes + 4)
    r = fs.ingest("fz", frame(spark, BASE[1:], [("e", ts(5), 1.0, None)]), run_id="x5")
    assert (r.rows_input, r.rows_skipped, r.noop, len(fused_calls)) == (4, 4, True, passes + 4)
    assert fs.offline.current_version(group) == version


@pytest.mark.parametrize("validation", ["none", "quarantine"])
def test_nulls_in_other_columns_are_other_values_on_both_paths(fs, spark, fused_calls,
                                                               validation):
    """(null, 1.0) and (1.0, null) at one key and time are two values: refused as a
    conflict by the one pass (whose Arrow hashes flag it and whose exact Spark check used
    to clear it) and by the separate check pass (quarantine groups); once stored, the
    other one is a correction, not a replay."""
    from sparkfs.validation import expect

    quarantine = validation == "quarantine"
    g = FeatureGroup(name=f"nn_{validation}", entities=[Entity("thing", join_keys=["key"])],
                     event_time="ts", schema=[Field("x", "double"), Field("y", "double")],
                     expectations=[expect("column_values_to_not_be_null", column="key")]
                     if quarantine else None, validation="quarantine" if quarantine else "strict")
    fs.apply([g])

    def rows(*xy):
        return spark.createDataFrame(pa.table({
            "key": ["a"] * len(xy), "ts": pa.array([ts(1)] * len(xy), pa.timestamp("us", tz="UTC")),
            "x": pa.array([p[0] for p in xy], pa.float64()),
            "y": pa.array([p[1] for p in xy], pa.float64())}))

    with pytest.raises(ValidationError, match="2 row.s. give different values"):
        fs.ingest(g.name, rows((None, 1.0), (1.0, None)), run_id="both")
    assert fs.offline.current_version(g) == 0
    assert fs.ingest(g.name, rows((None, 1.0)), run_id="one").rows_written == 1
    other = fs.ingest(g.name, rows((1.0, None)), run_id="other")
    assert (other.rows_written, other.rows_skipped) == (1, 0)
    assert len(fused_calls) == (0 if quarantine else 3)


def test_quarantine_keeps_the_old_path_and_its_accounting(fs, spark, fused_calls):
    from sparkfs.validation import expect

    g = FeatureGroup(name="fq", entities=[Entity("thing", join_keys=["key"])], event_time="ts",
                     schema=[Field("x", "double"), Field("n", "int")],
                     expectations=[expect("column_values_to_be_between", column="n",
                                          min_value=0, max_value=3)],
                     validation="quarantine")
    fs.apply([g])
    rows = BASE[:2] + [("c", ts(3), NAN, 7), ("d", ts(4), -0.0, 4)]
    r = fs.ingest("fq", frame(spark, rows[:2], rows[2:]), run_id="q1")
    assert r.rows_written + r.rows_quarantined + r.rows_skipped == r.rows_input == 4
    assert (r.rows_written, r.rows_quarantined) == (2, 2)
    again = fs.ingest("fq", frame(spark, rows), run_id="q2")
    assert again.rows_written + again.rows_quarantined + again.rows_skipped == 4
    assert again.rows_written == 0 and again.rows_skipped == 2
    assert fused_calls == []


def test_strict_expectations_refuse_after_the_pass(fs, spark, fused_calls):
    from sparkfs.validation import expect

    g = FeatureGroup(name="fs1", entities=[Entity("thing", join_keys=["key"])], event_time="ts",
                     schema=[Field("x", "double"), Field("n", "int")],
                     expectations=[expect("column_values_to_be_between", column="n",
                                          min_value=0, max_value=3)])
    fs.apply([g])
    uri = fs.offline.table_uri(g)
    before = files_under(uri)
    with pytest.raises(ValidationError, match="refused by its expectations"):
        fs.ingest("fs1", frame(spark, BASE), run_id="s1")
    assert fs.offline.current_version(g) == 0 and files_under(uri) == before
    ok = fs.ingest("fs1", frame(spark, BASE[:3]), run_id="s1")
    assert ok.rows_written == 3 and len(fused_calls) == 2
    # a full replay runs no write pass, but its expectations still run and are recorded
    again = fs.ingest("fs1", frame(spark, list(reversed(BASE[:3]))), run_id="s2")
    assert (again.rows_skipped, again.noop, len(fused_calls)) == (3, True, 2)
    assert fs.validation_report("fs1").run_id == "s2"


def test_stage_partition_with_checks_counts_hashes_and_drops_stored(tmp_path):
    """The task function alone (no Spark): its counts, its key hashes and its dedupe."""
    from sparkfs.offline.dedupe import read_stored_identities
    from sparkfs.offline.tables import history_schema

    g = FeatureGroup(name="t", entities=[Entity("thing", join_keys=["key"])], event_time="ts",
                     schema=[Field("x", "double"), Field("n", "int")])
    schema = history_schema(g)
    value_cols = [f.name for f in schema if not f.name.startswith("_")]

    def fed(t: pa.Table) -> pa.Table:  # with the hash columns the JVM adds to the input
        n = t.num_rows
        return with_system_columns(t, schema) \
            .append_column(onepass.ROW_HASH, pa.array(range(100, 100 + n), pa.int64())) \
            .append_column(onepass.KEY_HASH, pa.array(range(n), pa.int64()))

    stored_rows = with_system_columns(table(BASE), schema)
    os.makedirs(tmp_path / "stored")
    import pyarrow.parquet as pq

    pq.write_table(stored_rows.cast(schema), tmp_path / "stored" / "f.parquet")
    ids = read_stored_identities(g, [str(tmp_path / "stored" / "f.parquet")], (ts(0), ts(9)),
                                 value_cols)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, ids.schema) as w:
        w.write_table(ids)
    task = onepass.TaskChecks(["key"], "ts", ["x", "n"], ["n"], True, sink.getvalue().to_pybytes())
    run = onepass.stage_partition(str(tmp_path / "stage"), schema, [("x", "double")], "p", task)
    assert task.hash_columns == [onepass.ROW_HASH, onepass.KEY_HASH]
    batch = fed(table([("a", ts(1), 1.0, 1), ("c", ts(3), NAN, None), ("d", ts(4), 0.0, 4),
                        ("e", ts(5), 2.0, 2**40)]))
    out = pa.Table.from_batches(list(run(iter(batch.to_batches()))))
    assert out.column("rows").to_pylist() == [1]  # only "e" is new (-0.0 equals 0.0)
    counts = json.loads(out.column("checks")[0].as_py())
    assert counts["n"] == 4 and counts["range:n"] == 1 and counts["null:key"] == 0
    side = out.column("key_hashes")[0].as_py()  # the pairs' side file in the stage
    assert side.startswith(onepass.KEY_HASHES_DIR + "/")
    pairs = np.fromfile(tmp_path / "stage" / side, np.uint64).reshape(-1, 2)
    assert pairs.tolist() == [[0, 100], [1, 101], [2, 102], [3, 103]]  # the JVM's hashes
    # every row stored: no file, one row with the checks (and its pairs)
    again = pa.Table.from_batches(list(run(iter(fed(table(BASE)).to_batches()))))
    assert again.column("path").to_pylist() == [None]
    assert json.loads(again.column("checks")[0].as_py())["n"] == 4
    assert again.column("key_hashes")[0].as_py() != side
    assert sorted(os.listdir(tmp_path / "stage")) == sorted([out.column("path")[0].as_py(),
                                                              onepass.KEY_HASHES_DIR])
    # the driver reads the side files, then deletes their folder
    parts = onepass._read_pairs(str(tmp_path / "stage"), [side])
    assert np.frombuffer(parts[0], np.uint64).reshape(-1, 2).tolist() == pairs.tolist()
    assert os.listdir(tmp_path / "stage") == [out.column("path")[0].as_py()]


@pytest.mark.parametrize("seed", range(8))
def test_drop_stored_keeps_exactly_the_rows_not_stored_like_a_brute_force(tmp_path, seed):
    """Stored rows read back as identities (``read_stored_identities``) and a batch drawn
    from the same few keys, times and values (nulls, NaN, -0.0 and 0.0, repeats):
    ``drop_stored`` keeps, in order, exactly the rows whose keys, time and values (null
    equal to null, NaN to NaN, -0.0 to 0.0) are not stored."""
    import pyarrow.parquet as pq

    from sparkfs.offline.dedupe import StoredIndex, drop_stored, read_stored_identities
    from sparkfs.offline.tables import history_schema

    g = FeatureGroup(name="t", entities=[Entity("thing", join_keys=["key"])], event_time="ts",
                     schema=[Field("x", "double"), Field("n", "int")])
    schema = history_schema(g)
    value_cols = [f.name for f in schema if not f.name.startswith("_")]
    rng = np.random.default_rng(seed)
    xs = [None, NAN, 0.0, -0.0, 1.5]

    def draw(count: int, first: int, last: int) -> list[tuple]:
        return [(str(rng.choice(list("abcde"))), ts(int(rng.integers(first, last + 1))),
                 xs[int(rng.integers(0, len(xs)))], [None, 1, 2][int(rng.integers(0, 3))])
                for _ in range(count)]

    def same(row: tuple) -> tuple:
        x = row[2]
        return (row[0], row[1], "nan" if x is not None and x != x else
                (None if x is None else x + 0.0), row[3])

    def kept(t: pa.Table) -> list[tuple]:
        return [same(r) for r in zip(*[t.column(c).to_pylist() for c in value_cols])]

    # batch rows before, within and after the stored rows' times (only those within can
    # be stored: ``StoredIndex.without_stored`` hashes no other)
    stored_rows = draw(int(rng.integers(1, 60)), 1, 3)
    batch_rows = draw(int(rng.integers(1, 120)), 0, 5)
    pq.write_table(with_system_columns(table(stored_rows), schema).cast(schema),
                   tmp_path / "f.parquet", row_group_size=16)
    ids = read_stored_identities(g, [str(tmp_path / "f.parquet")], (ts(0), ts(3)), value_cols)
    batch = table(batch_rows).cast(pa.schema([schema.field(c) for c in value_cols]))
    seen = {same(r) for r in stored_rows}
    expected = [same(r) for r in batch_rows if same(r) not in seen]
    assert kept(drop_stored(batch, ids, g, value_cols)) == expected
    # the identities in another order, as an index built beforehand (a write task's)
    index = StoredIndex(ids.take(rng.permutation(ids.num_rows)), ["key", "ts"])
    assert kept(drop_stored(batch, index, g, value_cols)) == expected
    # saved by the driver, mapped by a task
    index.save(str(tmp_path / "index.arrow"))
    loaded = StoredIndex.load(str(tmp_path / "index.arrow"), ["key", "ts"])
    assert kept(drop_stored(batch, loaded, g, value_cols)) == expected


@pytest.mark.parametrize("size", [0, 1, 7, 1000, 100_000])
def test_stored_index_finds_each_probe_where_a_binary_search_of_all_hashes_does(size):
    """The index searches only a probe's bucket of the sorted hashes: each probe's position
    is ``np.searchsorted``'s over the whole array -- repeated hashes, the smallest and
    largest ones, probes between and beyond them."""
    from sparkfs.offline.dedupe import StoredIndex

    rng = np.random.default_rng(size)
    hashes = rng.integers(0, 2**64, size, dtype=np.uint64)
    if size > 10:  # repeats, and the ends of the range
        hashes[: size // 10] = hashes[size // 10: 2 * (size // 10)]
        hashes[-2:] = [0, 2**64 - 1]
    index = StoredIndex.__new__(StoredIndex)
    index.joint, index.size = np.sort(hashes), size
    index._directory()
    probes = np.concatenate([hashes, hashes + np.uint64(1), hashes - np.uint64(1),
                             rng.integers(0, 2**64, 1000, dtype=np.uint64)])
    assert (index._lower_bound(probes) == np.searchsorted(index.joint, probes)).all()


@pytest.mark.parametrize("seed", range(6))
def test_conflict_hashes_counts_keys_with_several_values_like_a_brute_force(seed):
    """Random (key hash, value hash) pairs split over tasks, with pairs repeated within and
    across tasks and some keys given a second value: the count equals a plain Python one."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    keys = rng.integers(0, 60, n).astype(np.uint64)  # few keys: many repeats
    values = rng.integers(0, 3, n).astype(np.uint64) * (keys % 4 == 0)  # some keys conflict
    pairs = np.stack([keys, values], axis=1)
    cuts = sorted(rng.integers(0, n + 1, int(rng.integers(0, 4))).tolist())
    parts = [p.tobytes() for p in np.split(pairs, cuts)]
    seen: dict[int, set] = {}
    for k, v in pairs.tolist():
        seen.setdefault(k, set()).add(v)
    assert checks_mod.conflict_hashes(parts) == sum(len(v) > 1 for v in seen.values())


def test_strict_expectations_check_the_written_files_or_else_the_whole_batch(fs, spark,
                                                                           monkeypatch):
    """With no stored row to match, the strict expectations read the files the pass
    wrote (the rows as they will be committed, in the batch's columns and types) instead
    of a kept copy of the batch; when the pass dropped stored rows, they check the whole
    batch. The reports are the same either way."""
    import sparkfs.validation as validation
    from sparkfs.validation import expect

    g = FeatureGroup(name="fw", entities=[Entity("thing", join_keys=["key"])], event_time="ts",
                     schema=[Field("x", "double"), Field("n", "int")],
                     expectations=[
                         expect("column_values_to_be_between", column="n", min_value=0,
                                max_value=3, mostly=0.5),
                         expect("table_columns_to_match_ordered_list",
                                column_list=["key", "ts", "x", "n"]),
                         expect("column_values_to_not_be_null", column="x", mostly=0.5)])
    fs.apply([g])
    seen: list = []
    real = validation.validate_batch

    def spy(catalog, group, df, *a, **k):
        seen.append((df.inputFiles(), dict(df.dtypes)))
        return real(catalog, group, df, *a, **k)

    monkeypatch.setattr(validation, "validate_batch", spy)
    uri = fs.offline.table_uri(g)
    first = [("a", ts(1), 1.0, 1), ("b", ts(2), None, 7), ("c", ts(3), NAN, None)]
    r = fs.ingest("fw", frame(spark, first[:1], first[1:]), run_id="w1")
    assert r.rows_written == 3
    files, dtypes = seen[-1]
    assert files and all(f.startswith(f"file://{uri}/ingest-") for f in files)
    assert dtypes == {"key": "string", "ts": "timestamp", "x": "double", "n": "int"}
    report = fs.validation_report("fw")
    assert report.rows_input == 3
    assert [x["unexpected_count"] for x in report.results] == [1, None, 1]
    assert [x["success"] for x in report.results] == [True, True, True]
    # stored rows overlap: the pass drops them, so the expectations check the whole batch
    more = first + [("d", ts(4), 2.0, 2), ("e", ts(5), None, 3)]
    r = fs.ingest("fw", frame(spark, more), run_id="w2")
    assert (r.rows_written, r.rows_skipped) == (2, 3)
    assert not seen[-1][0]  # the batch itself (rows from the driver: no input file)
    report = fs.validation_report("fw")
    assert report.rows_input == 5
    assert [x["unexpected_count"] for x in report.results] == [1, None, 2]



def test_row_level_expectations_are_judged_from_the_pass_counts(fs, spark, monkeypatch):
    """A suite of counted row-level expectations (``validation.run.CountedSuite``) is judged
    from what the write pass counted as the rows went by: great-expectations does not read
    the batch or the written files again. The counts cover the whole batch, stored rows
    included, and the verdicts equal great-expectations' own run on the same rows; a
    refusal commits nothing and leaves no file."""
    import sparkfs.validation as validation
    from sparkfs.validation import expect

    def fc(policy: str) -> FeatureGroup:
        return FeatureGroup(
            name="fc", entities=[Entity("thing", join_keys=["key"])], event_time="ts",
            schema=[Field("x", "double"), Field("n", "int")], validation=policy,
            expectations=[
                expect("column_values_to_be_between", column="n", min_value=0, max_value=3,
                       mostly=0.5),
                expect("column_values_to_not_be_null", column="x", mostly=0.5),
                expect("column_values_to_be_between", column="x", min_value=-1, max_value=2,
                       mostly=0.6)])

    g = fc("strict")
    fs.apply([g])
    read: list = []
    real = validation.validate_batch
    monkeypatch.setattr(validation, "validate_batch",
                        lambda *a, **k: read.append(1) or real(*a, **k))

    def own_run(rows: list[tuple]) -> list:
        """great-expectations' own run on the rows (quarantine: nothing stored)."""
        report = real(fs.catalog, fc("quarantine"), frame(spark, rows), "own").report
        return [(x["success"], x["unexpected_count"]) for x in report.results]

    def judged() -> list:
        report = fs.validation_report("fc")
        return [report.rows_input] + [(x["success"], x["unexpected_count"])
                                      for x in report.results]

    uri = fs.offline.table_uri(g)
    before = files_under(uri)
    # NaN is not null, and Spark orders it above every number: 1 of 2 non-null x break
    # x <= 2, more than mostly=0.6 allows
    bad = [("a", ts(1), 1.0, 1), ("b", ts(2), None, 7), ("c", ts(3), NAN, None)]
    with pytest.raises(ValidationError, match=r"refused by its expectations.*x\)"):
        fs.ingest("fc", frame(spark, bad[:1], bad[1:]), run_id="c1")
    assert fs.offline.current_version(g) == 0 and files_under(uri) == before
    assert judged() == [3, (True, 1), (True, 1), (False, 1)]
    assert judged()[1:] == own_run(bad)
    first = [*bad[:2], ("c", ts(3), 0.5, None)]
    assert fs.ingest("fc", frame(spark, first[:1], first[1:]), run_id="c1").rows_written == 3
    assert judged() == [3, (True, 1), (True, 1), (True, 0)]
    # stored rows overlap: the pass drops them, the counts still cover the whole batch
    more = first + [("d", ts(4), 2.0, 2), ("e", ts(5), None, 3)]
    r = fs.ingest("fc", frame(spark, more), run_id="c2")
    assert (r.rows_written, r.rows_skipped) == (2, 3)
    assert judged() == [5, (True, 1), (True, 2), (True, 0)]
    assert judged()[1:] == own_run(more)
    assert read == []  # great-expectations never read a batch of these ingests
