"""The delta-rs writer's one executor pass (sparkfs.offline.onepass): the files it stages
carry the same Delta statistics as their footers, the statistics it returns equal those of
the committed rows read back, and nothing is read back to get them."""

from __future__ import annotations

import datetime as dt
import json
import math
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sparkfs import Entity, FeatureGroup, Field
from sparkfs.monitoring.stats import compute_statistics
from sparkfs.offline import parquet_stats

UTC = dt.UTC


@pytest.fixture
def group(fs):
    g = FeatureGroup(name="one", entities=[Entity("thing", join_keys=["key"])], event_time="ts",
                     schema=[Field("x", "double"), Field("n", "long"), Field("s", "string"),
                             Field("b", "boolean"), Field("i", "int")])
    fs.apply([g])
    return g


def assert_same(got: dict, want: dict) -> None:
    """Stored statistics equal, floats to rounding (partials merge in another order)."""
    assert set(got) == set(want)
    for name, feature in want.items():
        assert set(got[name]) == set(feature), name
        for k, v in feature.items():
            if isinstance(v, float) and math.isfinite(v):
                assert got[name][k] == pytest.approx(v, rel=1e-12), (name, k)
            else:
                assert got[name][k] == v, (name, k)


def rows(count: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(5.0, 2.0, count)
    x[::7] = np.nan
    x[3::11] = np.inf
    return pa.table({
        "key": pa.array([f"k{i % 97}" for i in range(count)]),
        "ts": pa.array([dt.datetime(2013, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=i)
                        for i in range(count)], pa.timestamp("us", tz="UTC")),
        "x": pa.array(x, mask=rng.random(count) < 0.1),
        "n": pa.array(rng.integers(-50, 50, count), pa.int64(), mask=rng.random(count) < 0.2),
        "s": pa.array(rng.choice(["a", "b", "c"], count).tolist(), mask=rng.random(count) < 0.1),
        "b": pa.array(rng.random(count) < 0.5),
        "i": pa.array(rng.integers(0, 9, count), pa.int32()),
    })


def test_statistics_and_file_stats_come_from_the_write_pass(fs, group, spark, monkeypatch):
    """The statistics stored for the commit equal those computed from the committed rows
    read back, the add actions' stats equal a re-read of each footer, and the ingest
    itself neither lists nor re-reads a staged file."""
    reads: list[str] = []
    real = parquet_stats.parquet_add_stats
    monkeypatch.setattr(parquet_stats, "parquet_add_stats",
                        lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    monkeypatch.setattr(parquet_stats, "list_parquet",
                        lambda *a, **k: reads.append(a[0]) or [])
    data = rows(900, 1)  # below KLL_K values: the sketches are exact, so quantiles compare
    sdf = spark.createDataFrame(data).repartition(3)
    r = fs.ingest("one", sdf, run_id="r1")
    assert (r.rows_written, r.engine) == (900, "delta-rs")
    assert reads == []

    stored = fs.statistics("one")
    assert stored.delta_version == r.delta_version and stored.rows == 900
    history = fs.read_history("one").to_arrow()
    expected = compute_statistics(group, history, r.delta_version)
    assert set(stored.features) == {"x", "n", "s", "b", "i"}
    assert_same(stored.features, expected.features)
    pdf = history.to_pandas()
    assert stored["x"]["nans"] == int(np.isnan(data.column("x").to_numpy(zero_copy_only=False)).sum()
                                      - data.column("x").null_count)
    assert stored["n"]["mean"] == pytest.approx(pdf["n"].mean(), rel=1e-12)
    assert stored["n"]["stddev"] == pytest.approx(pdf["n"].std(), rel=1e-9)
    assert stored["x"]["stddev"] is None and stored["x"]["max"] == math.inf  # +inf rows

    uri = fs.offline.table_uri(group)
    with open(f"{uri}/_delta_log/{r.delta_version:020d}.json") as f:
        adds = [json.loads(line)["add"] for line in f if '"add"' in line]
    assert len(adds) == 3  # one file per non-empty partition
    for add in adds:
        assert json.loads(add["stats"]) == real(f"{uri}/{add['path']}")
        assert add["size"] == os.path.getsize(f"{uri}/{add['path']}")
    # filtered reads skip files on these statistics and still find every row
    late = pd.Timestamp("2013-01-01 10:00", tz="UTC")
    got = fs.read_history("one").to_pandas()
    assert (got["ts"] >= late).sum() == int((pdf["ts"] >= late).sum())


def test_partial_replay_writes_only_the_new_rows_and_counts_them(fs, group, spark):
    data = rows(300, 2)
    fs.ingest("one", data.slice(0, 200), run_id="a")
    r = fs.ingest("one", spark.createDataFrame(data).repartition(4), run_id="b")
    assert (r.rows_input, r.rows_written, r.rows_skipped) == (300, 100, 200)
    stats = fs.statistics("one")
    assert stats.delta_version == r.delta_version and stats.rows == 100
    hist = fs.read_history("one").to_pandas()
    assert len(hist) == 300 and hist.groupby("_run_id").size().to_dict() == {"a": 200, "b": 100}
    r2 = fs.ingest("one", data, run_id="c")
    assert (r2.rows_written, r2.noop) == (0, True)


@pytest.mark.parametrize("given", [None, "32m"])
def test_the_write_pass_cuts_arrow_batches_by_rows_and_leaves_a_users_setting(
        fs, group, spark, monkeypatch, given):
    """In a session sparkfs did not build (no ``ARROW_BATCH_BYTES`` set), the write pass
    runs with the byte cap off and unsets it after; a value the user set is kept."""
    from sparkfs.sparkutil import ARROW_BATCH_BYTES, UNCAPPED_ARROW_BATCH_BYTES

    DataFrame = type(spark.range(1))  # the session's own DataFrame class (classic or connect)
    before = spark.conf.get(ARROW_BATCH_BYTES)
    seen: list = []
    real = DataFrame.collect
    monkeypatch.setattr(DataFrame, "collect", lambda self: seen.append(
        spark.conf.get(ARROW_BATCH_BYTES, None)) or real(self))
    try:
        if given is None:
            spark.conf.unset(ARROW_BATCH_BYTES)
        else:
            spark.conf.set(ARROW_BATCH_BYTES, given)
        r = fs.ingest("one", spark.createDataFrame(rows(50, 3)).repartition(2), run_id="r")
        after = spark.conf.get(ARROW_BATCH_BYTES, None)
    finally:
        spark.conf.set(ARROW_BATCH_BYTES, before)
    assert r.rows_written == 50
    assert (given or UNCAPPED_ARROW_BATCH_BYTES) in seen
    assert after == given


def test_sessions_sparkfs_builds_cut_arrow_batches_by_rows(spark):
    from sparkfs.sparkutil import ARROW_BATCH_BYTES, UNCAPPED_ARROW_BATCH_BYTES

    assert spark.conf.get(ARROW_BATCH_BYTES) == UNCAPPED_ARROW_BATCH_BYTES


def test_stage_partition_cast_and_empty_partition(tmp_path):
    """An empty partition writes no file; a batch arriving with Spark's timestamp zone is
    stored as UTC microseconds with the table's schema."""
    import pyarrow.parquet as pq

    from sparkfs.offline.onepass import stage_partition

    schema = pa.schema([("k", pa.string()), ("t", pa.timestamp("us", tz="UTC")),
                        ("v", pa.int32())])
    run = stage_partition(str(tmp_path), schema, [("v", "int")], "p")
    assert list(run(iter([]))) == []
    assert list(tmp_path.iterdir()) == []
    b = pa.record_batch({"t": pa.array([0, 1], pa.timestamp("us", tz="America/New_York")),
                         "v": pa.array([1, None], pa.int64()), "k": ["a", "b"]})
    out = pa.Table.from_batches(list(run(iter([b.slice(0, 0), b]))))
    assert out.num_rows == 1 and out.column("rows").to_pylist() == [2]
    written = pq.read_table(tmp_path / out.column("path")[0].as_py())
    assert written.schema == schema
    assert written.column("t").to_pylist()[1] == dt.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    stats = json.loads(out.column("stats")[0].as_py())
    assert stats["nullCount"]["v"] == 1 and stats["minValues"]["t"] == "1970-01-01T00:00:00.000Z"


def test_rows_committed_meanwhile_are_left_out_of_write_and_statistics(fs, group, spark,
                                                                       store_config, monkeypatch):
    """Another ingest commits some of the rows between this one's staging and its commit:
    the writer re-dedupes, re-stages only the rest, and the statistics it stores are those
    of the rows it committed."""
    from sparkfs import FeatureStore
    from sparkfs.offline import onepass

    data = rows(300, 3)
    # the Spark path's race (the local engine's: tests/test_ingest_local.py)
    main = FeatureStore({**store_config, "ingest": {"local_max_rows": 0}}, spark=spark)
    other = FeatureStore(store_config, spark=spark)
    real = onepass.stage_with_spark
    raced: list[int] = []

    def staged_then_raced(*a, **k):
        out = real(*a, **k)
        if not raced:  # fault injection: a concurrent writer lands right after our staging
            raced.append(-1)  # (its own staging comes through here too)
            raced[0] = other.ingest("one", data.slice(0, 120), run_id="meanwhile").rows_written
        return out

    monkeypatch.setattr(onepass, "stage_with_spark", staged_then_raced)
    r = main.ingest("one", data, run_id="main")
    other.close()
    main.close()
    assert not r.local
    assert raced == [120]
    assert (r.rows_input, r.rows_written, r.rows_skipped) == (300, 180, 120)
    hist = fs.read_history("one").to_arrow()
    assert hist.num_rows == 300
    assert hist.to_pandas().duplicated(["key", "ts"]).sum() == 0
    stats = fs.statistics("one")
    assert stats.delta_version == r.delta_version and stats.rows == 180
    mine = hist.filter(pa.compute.equal(hist.column("_run_id"), "main"))
    assert_same(stats.features, compute_statistics(group, mine, r.delta_version).features)
