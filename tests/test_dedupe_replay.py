"""Dedupe at ingest decides "nothing new" / "all new" from identities only
(sparkfs.offline.dedupe): the counts are exact (each batch row once, duplicates in the
history included, nulls and NaN compared as values), a full replay becomes a frame Spark
knows is empty (no file, no staging, no Delta version, with statistics on or off), a batch
with no stored row is passed through untouched, and a partial replay writes exactly the
new rows."""

from __future__ import annotations

import datetime as dt
import os

import pyarrow as pa
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, Field
from sparkfs.offline.dedupe import known_empty, stored_matches, without_stored_rows
from sparkfs.offline.tables import SYSTEM_COLUMNS, history_schema

UTC = dt.UTC
NAN = float("nan")


def ts(minute: int) -> dt.datetime:
    return dt.datetime(2013, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=minute)


def table(rows: list[tuple]) -> pa.Table:
    keys, times, xs, ss = zip(*rows) if rows else ((), (), (), ())
    return pa.table({"key": pa.array(keys, pa.string()),
                     "ts": pa.array(times, pa.timestamp("us", tz="UTC")),
                     "x": pa.array(xs, pa.float64()), "s": pa.array(ss, pa.string())})


STORED = [("a", ts(1), 1.0, "u"), ("a", ts(1), 1.0, "u"),  # stored twice (same batch)
          ("b", ts(2), None, None), ("c", ts(3), NAN, "w"), ("d", ts(4), 4.0, "v")]


@pytest.fixture
def group() -> FeatureGroup:
    return FeatureGroup(name="dd", entities=[Entity("thing", join_keys=["key"])], event_time="ts",
                        schema=[Field("x", "double"), Field("s", "string")])


@pytest.fixture(params=[True, False], ids=["statistics", "no-statistics"])
def store(request, spark, store_config, group):
    config = dict(store_config, ingest={"statistics": request.param})
    fs = FeatureStore(config, spark=spark)
    fs.apply([group])
    fs.ingest("dd", table(STORED), run_id="first")
    yield fs
    fs.close()


def dedupe_inputs(fs: FeatureStore, group: FeatureGroup, spark, rows: list[tuple]):
    df = spark.createDataFrame(table(rows)).repartition(3)
    value_cols = [f.name for f in history_schema(group) if f.name not in SYSTEM_COLUMNS]
    lo, hi = min(r[1] for r in rows), max(r[1] for r in rows)
    files = fs.offline.files(group, fs.offline.current_version(group), (lo, hi))
    return df, files, {"min_et": lo, "max_et": hi}, value_cols


def files_under(path: str) -> set[str]:
    return {os.path.join(d, f) for d, _, names in os.walk(path) for f in names}


def test_counts_are_exact_per_batch_row(store, group, spark):
    batch = [("a", ts(1), 1.0, "u"), ("a", ts(1), 1.0, "u"),  # stored (twice): 2 matches
             ("b", ts(2), None, None), ("c", ts(3), NAN, "w"),  # null and NaN values: stored
             ("d", ts(4), 4.5, "v"),                           # correction: not stored
             ("e", ts(2), 1.0, "u")]                           # new key: not stored
    df, files, checks, cols = dedupe_inputs(store, group, spark, batch)
    assert files
    assert stored_matches(spark, group, df, files, checks, cols) == (6, 4)
    kept = without_stored_rows(spark, group, df, files, checks, cols)
    assert not known_empty(kept)
    assert sorted((r["key"], r["x"]) for r in kept.collect()) == [("d", 4.5), ("e", 1.0)]


def test_full_replay_is_known_empty_and_no_match_is_the_batch_itself(store, group, spark):
    df, files, checks, cols = dedupe_inputs(store, group, spark, list(reversed(STORED)))
    replay = without_stored_rows(spark, group, df, files, checks, cols)
    assert known_empty(replay) and replay.count() == 0
    new = [("a", ts(1), 2.0, "u"), ("z", ts(3), 1.0, None)]
    df, files, checks, cols = dedupe_inputs(store, group, spark, new)
    assert without_stored_rows(spark, group, df, files, checks, cols) is df
    assert not known_empty(df)


def test_replay_writes_nothing_and_partial_replay_writes_the_new_rows_once(store, group):
    uri = store.offline.table_uri(group)
    version, before = store.offline.current_version(group), files_under(uri)
    r = store.ingest("dd", table(list(reversed(STORED))), run_id="again")
    assert (r.rows_input, r.rows_written, r.rows_skipped, r.noop) == (5, 0, 5, True)
    assert store.offline.current_version(group) == version and files_under(uri) == before
    r = store.ingest("dd", table(STORED[2:4] + [("f", ts(5), 5.0, "x"), ("d", ts(4), 4.5, "v")]),
                     run_id="partial")
    assert (r.rows_input, r.rows_written, r.rows_skipped) == (4, 2, 2)
    assert r.delta_version == version + 1
    hist = store.read_history("dd").to_pandas()
    assert len(hist) == len(STORED) + 2
    assert sorted(hist[hist["_run_id"] == "partial"]["key"]) == ["d", "f"]


def test_a_null_in_another_column_is_another_row(spark, store_config):
    """Spark's hashes skip null cells: (null, 1.0) and (1.0, null), or [null, 1.0] and
    [1.0, null], used to share their value hashes, so a row was taken for another one
    stored at the same key and time and silently dropped."""
    g = FeatureGroup(name="nulls", entities=[Entity("thing", join_keys=["key"])],
                     event_time="ts", schema=[Field("x", "double"), Field("y", "double"),
                                              Field("v", "array<double>")])
    fs = FeatureStore(store_config, spark=spark)
    fs.apply([g])

    def rows(x, y, v) -> pa.Table:
        return pa.table({"key": ["a"], "ts": pa.array([ts(1)], pa.timestamp("us", tz="UTC")),
                         "x": pa.array([x], pa.float64()), "y": pa.array([y], pa.float64()),
                         "v": pa.array([v], pa.list_(pa.float64()))})

    fs.ingest("nulls", rows(None, 1.0, [None, 1.0]), run_id="first")
    cols = [f.name for f in history_schema(g) if f.name not in SYSTEM_COLUMNS]
    files = fs.offline.files(g, fs.offline.current_version(g), (ts(1), ts(1)))
    checks = {"min_et": ts(1), "max_et": ts(1)}
    for swapped in (rows(1.0, None, [None, 1.0]), rows(None, 1.0, [1.0, None]),
                    rows(None, 1.0, [None, 1.0, None]), rows(None, 1.0, None)):
        df = spark.createDataFrame(swapped)
        assert stored_matches(spark, g, df, files, checks, cols) == (1, 0)
    same = spark.createDataFrame(rows(None, 1.0, [None, 1.0]))
    assert stored_matches(spark, g, same, files, checks, cols) == (1, 1)
    fs.close()
