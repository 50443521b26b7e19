"""A stream's commit pushed online straight from its files (sparkfs.streaming.online) puts
exactly what materialization puts: real Spark ingests, real Delta, real SQLite."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from sparkfs import Entity, FeatureGroup, Field, transform
from sparkfs.streaming.online import commit_files, push_commit

CARRIER = Entity("carrier", join_keys=["carrier"])
T0 = dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)
KEYS = [("UA",), ("AA",), ("DL",), ("B6",), ("WN",)]


@transform(output="double")
def doubled(delay):
    return delay * 2


def pushed_group() -> FeatureGroup:
    return FeatureGroup("pushed", [CARRIER], "ts", [Field("delay", "double"), Field("n", "long")],
                        online=True, transforms=[doubled])


def batch(rows: list[tuple]) -> pa.Table:
    carrier, minutes, delay, n = zip(*rows)
    return pa.table({"carrier": list(carrier),
                     "ts": pa.array([T0 + dt.timedelta(minutes=m) for m in minutes],
                                    pa.timestamp("us", tz="UTC")),
                     "delay": pa.array(delay, pa.float64()), "n": pa.array(n, pa.int64())})


def online_rows(fs, g) -> list[str]:
    # repr: NaN equals NaN, and None stays apart from NaN
    return [repr(r) for r in fs.online.read(g, KEYS, ["delay", "n", "doubled"])]


def test_a_pushed_commit_lands_online_as_materialization_puts_it(fs, spark):
    g = pushed_group()
    fs.apply([g])
    first = fs.ingest(g.name, batch([("UA", 10, 1.0, 1), ("AA", 10, 2.0, 2), ("DL", 10, 3.0, 3)]),
                      materialize=False)
    assert push_commit(fs.offline, fs.online, g, first.delta_version) is None  # never pushed
    assert fs.online.get_watermark(g) is None
    fs.materialize(g.name, engine="local")
    # newer and older events, two rows of one key, a NaN and a missing value, a new key
    second = fs.ingest(g.name, batch([("UA", 20, float("nan"), 4), ("AA", 5, 9.0, 5),
                                      ("DL", 30, None, 6), ("DL", 40, 7.0, 7),
                                      ("B6", 1, 8.0, None)]), materialize=False)
    v = second.delta_version
    assert push_commit(fs.offline, fs.online, g, v) == 4  # the newest row of each of 4 keys
    assert fs.online.get_watermark(g) == v
    pushed = online_rows(fs, g)
    assert push_commit(fs.offline, fs.online, g, v) == 0  # already online
    fs.rebuild_online(g.name, engine="local")
    assert pushed == online_rows(fs, g)
    got = fs.get_online_features(["pushed:delay", "pushed:doubled", "pushed:n"],
                                 [{"carrier": k} for k, in KEYS]).to_dict()
    assert got["n"] == [4, 2, 7, None, None] and got["doubled"][2] == 14.0
    assert got["delay"][3] == 8.0 and got["delay"][4] is None


def test_a_gap_or_a_commit_that_is_not_a_plain_append_is_left_to_materialization(fs, spark):
    g = pushed_group()
    fs.apply([g])
    fs.materialize(g.name, engine="local")
    fs.ingest(g.name, batch([("UA", 10, 1.0, 1)]), materialize=False)
    v = fs.ingest(g.name, batch([("AA", 10, 2.0, 2)]), materialize=False).delta_version
    before = fs.online.get_watermark(g)
    assert before == v - 2
    assert push_commit(fs.offline, fs.online, g, v) is None  # version v-1 is not online yet
    assert fs.online.get_watermark(g) == before and fs.online.read(g, KEYS[:2], ["n"]) == [None, None]
    fs.materialize(g.name, engine="local")
    fs.offline.table(g).optimize.compact()  # removes and re-adds files: not a plain append
    compacted = fs.offline.current_version(g)
    assert commit_files(fs.offline.table_uri(g), compacted) is None
    assert push_commit(fs.offline, fs.online, g, compacted) is None
    assert commit_files(fs.offline.table_uri(g), compacted + 1) is None  # no such commit


def test_a_stream_pushes_its_commits_and_catches_up_after_a_crash_before_the_push(fs, spark,
                                                                                 tmp_path):
    from sparkfs.online.materialize import materialize
    from sparkfs.streaming import MicroBatchWriter, claim
    from sparkfs.streaming.ingest import _Tracker
    from sparkfs.streaming.status import StreamStatus

    g = pushed_group()
    fs.apply([g])
    stream_id = claim(str(tmp_path / "ck"), g, "test")
    tracker = _Tracker(StreamStatus(stream_id, g.name, 1, str(tmp_path / "ck"), "test"),
                       str(tmp_path / "streams"))
    caught_up = []

    def catch_up(group):
        caught_up.append(group.name)
        return materialize(fs.offline, fs.online, group, engine="local")

    writer = MicroBatchWriter(fs.catalog, fs.offline, g, stream_id, tracker,
                              ingest=lambda gr, df, run_id: fs.ingest(gr, df, run_id=run_id,
                                                                      materialize=False),
                              materialize=catch_up, online=fs.online)
    schema = "carrier string, ts timestamp, delay double, n long"
    writer(spark.createDataFrame([("UA", T0, 1.0, 1)], schema), 0)
    assert caught_up == ["pushed"]  # never materialized before: a catch-up
    writer(spark.createDataFrame([("UA", T0 + dt.timedelta(hours=1), 2.0, 2)], schema), 1)
    assert caught_up == ["pushed"]  # one version behind: pushed from the commit
    # batch 2 commits, then the driver dies before the online push; Spark replays batch 2
    late = spark.createDataFrame([("UA", T0 + dt.timedelta(hours=2), 3.0, 3)], schema)
    v = fs.ingest(g, late, run_id=writer.run_id(2), materialize=False).delta_version
    writer(late, 2)
    assert caught_up == ["pushed"] and fs.online.get_watermark(g) == v
    got = fs.get_online_features(["pushed:n", "pushed:doubled"], [{"carrier": "UA"}]).to_dict()
    assert (got["n"], got["doubled"]) == ([3], [6.0])
    assert [b.materialized_keys for b in fs.stream_batches(stream_id)] == [1, 1, 1]
