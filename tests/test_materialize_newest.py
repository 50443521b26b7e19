"""The vectorised newest-row-per-key reduction behind both materialization engines, the
Spark engine's two stages on real local Spark (several files, tasks and key buckets) into
SQLite (the driver writes) and the HBase emulator (executors write), and the numpy row
encoder, each checked against a brute-force reference."""

from __future__ import annotations

import datetime as dt
import os
import random

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from sparkfs import Entity, FeatureGroup, FeatureStore, Field
from sparkfs.errors import OnlineStoreError
from sparkfs.offline.tables import history_schema
from sparkfs.online import codec
from sparkfs.online.materialize import materialize
from sparkfs.online.newest import newest_per_key, reduce_batches
from sparkfs.testing.conformance import ALL_DTYPES, rows, same_value

UTC = dt.UTC
T0 = dt.datetime(2013, 1, 1, tzinfo=UTC)

GROUP = FeatureGroup("trips", [Entity("route", ["origin", "hop"], dtypes={"hop": "int"})], "ts",
                     [Field("x", "double"), Field("n", "long"), Field("s", "string")])


def history(n: int, seed: int, commit: dt.datetime | None) -> list[dict]:
    """Rows over few keys and few event times (many ties), with null keys, null event
    times, NaN and null values."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        out.append({
            "origin": None if rnd.random() < 0.03 else rnd.choice(["JFK", "EWR", "LGA", "ünï"]),
            "hop": rnd.randrange(6),
            "ts": None if rnd.random() < 0.03 else T0 + dt.timedelta(hours=rnd.randrange(5)),
            "x": rnd.choice([None, float("nan"), rnd.random()]),
            "n": rnd.choice([None, rnd.randrange(-(2**62), 2**62)]),
            "s": rnd.choice([None, "a", "b\u00e9"]),
            "_commit_time": commit if commit is not None else rnd.choice(
                [None, T0, T0 + dt.timedelta(days=1)])})
    return out


def table_of(group: FeatureGroup, data: list[dict]) -> pa.Table:
    """History rows with their own (possibly null) commit times."""
    schema = history_schema(group)
    return pa.table({f.name: [r.get(f.name, "test" if f.name == "_run_id" else None)
                              for r in data] for f in schema}, schema=schema)


def brute_force(data: list[dict]) -> dict[tuple, tuple]:
    """key -> (event time, commit time) of its newest row; a null commit time is oldest."""
    best: dict[tuple, tuple] = {}
    for r in data:
        if r["origin"] is None or r["ts"] is None:
            continue
        rank = (r["ts"], r["_commit_time"] or dt.datetime.min.replace(tzinfo=UTC))
        key = (r["origin"], r["hop"])
        if key not in best or rank > best[key]:
            best[key] = rank
    return best


def keyed(table: pa.Table) -> dict[tuple, dict]:
    out = {}
    for r in table.to_pylist():
        key = (r["origin"], r["hop"])
        assert key not in out, f"key {key} twice"
        out[key] = r
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_newest_per_key_matches_brute_force_and_chunking_changes_nothing(seed):
    data = history(400, seed, commit=None)
    table = table_of(GROUP, data)
    want = brute_force(data)
    got = keyed(newest_per_key(GROUP, table))
    assert set(got) == set(want)
    for key, r in got.items():
        rank = (r["ts"], r["_commit_time"] or dt.datetime.min.replace(tzinfo=UTC))
        assert rank == want[key], key
        # the row kept is one of the input rows with that rank, values intact
        assert any(same_value(r["x"], d["x"]) and r["n"] == d["n"] and r["s"] == d["s"]
                   for d in data if (d["origin"], d["hop"]) == key and d["ts"] == r["ts"]
                   and d["_commit_time"] == r["_commit_time"])
    chunked = reduce_batches(GROUP, table.to_batches(max_chunksize=7), chunk_rows=50)
    assert chunked is not None
    assert {k: (r["ts"], r["_commit_time"]) for k, r in keyed(chunked).items()} == \
        {k: (r["ts"], r["_commit_time"]) for k, r in got.items()}


def test_newest_per_key_of_nothing():
    empty = rows(GROUP, [])
    assert newest_per_key(GROUP, empty).num_rows == 0
    assert reduce_batches(GROUP, []) is None
    only_null_keys = rows(GROUP, [{"origin": None, "hop": 1, "ts": T0, "_commit_time": T0}])
    assert newest_per_key(GROUP, only_null_keys).num_rows == 0


def test_numpy_row_encoder_writes_the_same_bytes_as_the_row_encoder():
    dtypes = [f.dtype for f in ALL_DTYPES.features]
    data = [{"b": True, "i": 7, "l": -(2 ** 62), "f": 0.1, "d": float("nan"), "s": "ünï",
             "t": dt.datetime(2013, 5, 5, 1, 2, 3, 4, tzinfo=UTC), "dt": dt.date(2013, 12, 31),
             "af": [1.5, None, float("nan")], "ad": []},
            {"f": float("inf"), "d": -0.0, "t": dt.datetime(1960, 1, 1, tzinfo=UTC),
             "dt": dt.date(1900, 1, 1)},
            {"b": False, "i": -(2 ** 31), "l": 2 ** 63 - 1, "f": float("nan"), "d": 1e308}]
    table = rows(ALL_DTYPES, data)
    cols = [table[f.name] for f in ALL_DTYPES.features]
    c = codec.RowCodec(dtypes)
    fast = c.encode_arrow(cols, dtypes)
    slow = c.encode_rows([codec.arrow_column_to_stored(col, d) for col, d in zip(cols, dtypes)])
    assert fast == slow
    for blob, want in zip(fast, table.to_pylist()):  # what Delta holds (float32 for f)
        got = c.decode(blob)
        for f, value in zip(ALL_DTYPES.features, got):
            assert same_value(codec.decode_value(value, f.dtype), want.get(f.name)), f.name
    assert codec.RowCodec(["string"]).encode_arrow([pa.array(["a", None])], ["string"]) == \
        [b'["a"]', b"[null]"]


@pytest.fixture(params=["sqlite", "hbase_emulator"])
def sfs(request, spark, tmp_path):
    config = {"project": "test", "data_dir": str(tmp_path / "data")}
    if request.param == "hbase_emulator":
        emu = request.getfixturevalue("hbase_emulator")
        config["online"] = {"type": "hbase", "host": emu.host, "port": emu.port}
    store = FeatureStore(config, spark=spark)
    yield store
    store.close()


def test_spark_engine_over_many_files_and_buckets_equals_brute_force_and_local(sfs):
    fs = sfs
    g = GROUP
    fs.apply([g])
    everything: list[dict] = []
    for i in range(6):  # six commits, each its own file, later commits with later times
        batch = history(300, 10 + i, commit=T0 + dt.timedelta(days=i))
        everything += batch
        write_deltalake(fs.offline.table_uri(g), table_of(g, batch), mode="append")
    want = brute_force(everything)
    res = materialize(fs.offline, fs.online, g, engine="spark", spark=lambda: fs.spark,
                      config=fs.config)
    assert (res.files, res.rows_read, res.keys_written) == (6, 1800, len(want))
    keys = sorted(want)
    spark_rows = fs.online.read(g, keys, ["x", "n", "s"])
    for key, row in zip(keys, spark_rows):
        assert row is not None and row.event_time_us == codec.timestamp_to_us(want[key][0])
    fs.online.drop(g)
    local = materialize(fs.offline, fs.online, g, engine="local")
    assert local.keys_written == len(want)
    local_rows = fs.online.read(g, keys, ["x", "n", "s"])
    for a, b in zip(spark_rows, local_rows):
        assert a.event_time_us == b.event_time_us
        assert all(same_value(x, y) for x, y in zip(a.values, b.values))


@pytest.mark.parametrize("engine", ["spark", "local"])
def test_a_lost_history_file_is_a_clear_error_and_nothing_moves(fs, engine):
    g = GROUP
    fs.apply([g])
    write_deltalake(fs.offline.table_uri(g), rows(g, history(20, 5, commit=T0)), mode="append")
    [path] = fs.offline.files_added_between(g, None, fs.offline.current_version(g))
    os.remove(path)
    with pytest.raises(OnlineStoreError, match="'trips'.*watermark was not advanced"):
        materialize(fs.offline, fs.online, g, engine=engine, spark=lambda: fs.spark,
                    config=fs.config)
    assert fs.online.get_watermark(g) is None
