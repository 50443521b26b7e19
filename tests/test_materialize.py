"""Materialization from Delta history to the online store, on real Spark, Delta, SQLite,
happybase over TCP to the HBase emulator, and a real HBase 2.6 (``real_hbase``)."""

from __future__ import annotations

import datetime as dt
import math
import threading

import pandas as pd
import pytest
from conftest import WRITER_MATRIX
from deltalake import write_deltalake

from sparkfs import FeatureStore
from sparkfs.errors import DefinitionError, OnlineStoreError
from sparkfs.online.materialize import materialize
from sparkfs.testing.conformance import ALL_DTYPES, T0, UTC, rows, same_value, weather_group
from sparkfs.testing.hbase import HBaseEmulator
from sparkfs.testing.plugin import unique_prefix


@pytest.fixture(params=["sqlite", "hbase_emulator", "real_hbase"])
def mfs(request, spark, store_config):
    """A FeatureStore whose online store is SQLite, the HBase emulator or a real HBase (and
    whose offline writer is the test's ``writer_engine``)."""
    config = dict(store_config)
    if request.param == "hbase_emulator":
        emu = request.getfixturevalue("hbase_emulator")
        config["online"] = {"type": "hbase", "host": emu.host, "port": emu.port}
    elif request.param == "real_hbase":
        config["online"] = request.getfixturevalue("real_hbase").online_config(
            table_prefix=unique_prefix(), timeout_ms=60_000)
    store = FeatureStore(config, spark=spark)
    yield store
    for g in store.list_feature_groups():
        store.online.drop(g)
    store.close()


def append(fs, g, data, commit=None):
    write_deltalake(fs.offline.table_uri(g), rows(g, data, commit), mode="append")


@WRITER_MATRIX
def test_incremental_out_of_order_and_replayed_ingests(mfs):
    fs = mfs
    g = weather_group(ttl="36500d")
    fs.apply([g])
    h = lambda n: pd.Timestamp(T0) + pd.Timedelta(hours=n)  # noqa: E731
    first = pd.DataFrame({"origin": ["JFK", "JFK", "EWR"], "time_hour": [h(5), h(4), h(1)],
                          "temp": [39.0, 35.1, 20.0], "wind_speed": [1.0, 2.0, 3.0]})
    r1 = fs.ingest("weather", first, run_id="w-1")
    [m1] = fs.materialize("weather")
    assert (m1.from_delta_version, m1.to_delta_version, m1.rows_read, m1.keys_written) == \
        (None, r1.delta_version, 3, 2)
    # late data: an older JFK reading (must not win) and a newer EWR one
    late = pd.DataFrame({"origin": ["JFK", "EWR"], "time_hour": [h(3), h(7)],
                         "temp": [-5.0, 22.0], "wind_speed": [9.0, 4.0]})
    r2 = fs.ingest("weather", late, run_id="w-2", materialize=True)
    m2 = r2.materialization
    assert (m2.from_delta_version, m2.to_delta_version, m2.rows_read, m2.keys_written) == \
        (r1.delta_version, r2.delta_version, 2, 2)
    fs.ingest("weather", late, run_id="w-2")           # replayed run: a no-op
    [m3] = fs.materialize("weather")
    assert (m3.rows_read, m3.keys_written) == (0, 0)
    resp = fs.get_online_features(["weather:temp", "weather:wind_speed"],
                                  [{"origin": "JFK"}, {"origin": "EWR"}, {"origin": "LGA"}])
    assert resp.to_dict() == {"origin": ["JFK", "EWR", "LGA"], "temp": [39.0, 22.0, None],
                              "wind_speed": [1.0, 4.0, None]}
    assert resp.event_times["temp"][:2] == [h(5).to_pydatetime(), h(7).to_pydatetime()]


@WRITER_MATRIX
def test_every_dtype_round_trips_from_delta_with_both_engines(mfs):
    fs = mfs
    g = ALL_DTYPES
    fs.apply([g])
    data = [{"year": 2013, "code": "A", "ts": T0, "b": True, "i": 7, "l": -(2 ** 62), "f": 0.1,
             "d": float("nan"), "s": "ünï", "t": dt.datetime(2013, 5, 5, 1, 2, 3, 4, tzinfo=UTC),
             "dt": dt.date(2013, 12, 31), "af": [1.5, None, float("nan")], "ad": []},
            {"year": 2013, "code": "B", "ts": T0, "d": None, "af": None}]
    append(fs, g, data)
    expected = fs.offline.read_arrow(g).to_pylist()
    feats = [f.name for f in g.features]
    keys = [(r["year"], r["code"]) for r in expected]
    for engine in ("spark", "local"):
        fs.online.drop(g)
        res = materialize(fs.offline, fs.online, g, engine=engine, spark=lambda: fs.spark,
                          config=fs.config)
        assert res.keys_written == 2
        for key, want in zip(keys, expected):
            [got] = fs.online.read(g, [key], feats)
            for name, value in zip(feats, got.values):
                assert same_value(value, want[name]), (engine, name, value, want[name])
    assert math.isnan(expected[0]["d"]) and expected[1]["d"] is None


@WRITER_MATRIX
def test_newest_per_key_within_and_across_commits(mfs):
    fs = mfs
    g = weather_group()
    fs.apply([g])
    later = T0 + dt.timedelta(days=1)
    append(fs, g, [{"origin": "JFK", "time_hour": T0, "temp": 1.0},
                   {"origin": "JFK", "time_hour": T0 + dt.timedelta(hours=1), "temp": 2.0}], commit=T0)
    # same event time, committed later: a correction that must win
    append(fs, g, [{"origin": "JFK", "time_hour": T0 + dt.timedelta(hours=1), "temp": 3.0}], commit=later)
    res = materialize(fs.offline, fs.online, g, engine="spark", spark=lambda: fs.spark,
                      config=fs.config)
    assert (res.rows_read, res.keys_written) == (3, 1)
    assert fs.online.read(g, [("JFK",)], ["temp"])[0].values == (3.0,)


def test_unknown_engine_and_offline_only_group(fs):
    g = weather_group()
    fs.apply([g])
    with pytest.raises(DefinitionError, match="engine 'dask' is unknown"):
        materialize(fs.offline, fs.online, g, engine="dask")
    off = weather_group("archive")
    off.online = False
    fs.apply([off])
    with pytest.raises(DefinitionError, match="'archive' version 1 has online=False"):
        fs.materialize("archive")


def test_hbase_dying_mid_materialization_then_rerun(spark, tmp_path):
    emu = HBaseEmulator().start()
    port = emu.port
    config = {"project": "test", "data_dir": str(tmp_path / "d"),
              "online": {"type": "hbase", "host": "127.0.0.1", "port": port, "retries": 1,
                         "backoff_ms": 10, "timeout_ms": 1000}}
    fs = FeatureStore(config, spark=spark)
    g = weather_group()
    fs.apply([g])
    data = [{"origin": f"A{i:02d}", "time_hour": T0 + dt.timedelta(hours=i), "temp": float(i)}
            for i in range(40)]
    append(fs, g, data)
    calls = []
    real = emu.handler.mutateRowsTs
    dead = threading.Event()

    def kill() -> None:
        emu.stop()  # drops every client connection
        dead.set()

    def dies_after_some_writes(*args):
        calls.append(1)
        if len(calls) < 5:
            return real(*args)
        if len(calls) == 5:  # the server goes away half way through
            threading.Thread(target=kill).start()
        dead.wait(30)  # this write never lands: its connection is gone when it returns
        return None

    emu.handler.mutateRowsTs = dies_after_some_writes
    with pytest.raises(OnlineStoreError, match="watermark was not advanced|unreachable"):
        fs.materialize("weather")
    # the server comes back with what it had stored; the watermark never moved
    emu2 = HBaseEmulator(port=port)
    emu2.handler._tables = emu.handler._tables
    emu2.start()
    try:
        partial = sum(r is not None for r in fs.online.read(g, [(d["origin"],) for d in data], ["temp"]))
        assert 0 < partial < 40
        assert fs.online.get_watermark(g) is None
        [res] = fs.materialize("weather")
        assert (res.from_delta_version, res.keys_written) == (None, 40)
        got = fs.online.read(g, [(d["origin"],) for d in data], ["temp"])
        assert [r.values[0] for r in got] == [float(i) for i in range(40)]
        assert fs.online.get_watermark(g) == res.to_delta_version
    finally:
        fs.close()
        emu2.stop()
