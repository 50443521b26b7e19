"""The online-store conformance suite over happybase: against the HBase Thrift1 emulator
and against a real single-node HBase 2.6 (one per test run, ``real_hbase`` fixture), with
plain and salted row keys. Then the guarantees the README states for HBase, proven on the
server itself: TTL removes cells, cell timestamp = event time, salting, out-of-order writes.
"""

from __future__ import annotations

import datetime as dt
import time

import happybase
import pytest

from sparkfs import FeatureStore
from sparkfs.errors import ValidationError
from sparkfs.online.keys import encode_key
from sparkfs.testing.conformance import T0, UTC, OnlineConformance, rows, weather_group
from sparkfs.testing.plugin import unique_prefix


class TestHBaseEmulator(OnlineConformance):
    expired_status = "missing"  # HBase's column-family TTL removes the cells itself

    @pytest.fixture
    def online_config(self, hbase_emulator):
        return {"type": "hbase", "host": hbase_emulator.host, "port": hbase_emulator.port,
                "timeout_ms": 2000, "retries": 1, "backoff_ms": 10}


class TestSaltedKeys(OnlineConformance):
    expired_status = "missing"

    @pytest.fixture
    def online_config(self, hbase_emulator):
        return {"type": "hbase", "host": hbase_emulator.host, "port": hbase_emulator.port,
                "salt_buckets": 16}


@pytest.mark.real_hbase
class TestRealHBase(OnlineConformance):
    expired_status = "missing"

    @pytest.fixture
    def online_config(self, real_hbase):
        return real_hbase.online_config(table_prefix=unique_prefix(), timeout_ms=60_000)


@pytest.mark.real_hbase
class TestRealHBaseSalted(OnlineConformance):
    expired_status = "missing"

    @pytest.fixture
    def online_config(self, real_hbase):
        return real_hbase.online_config(table_prefix=unique_prefix(), timeout_ms=60_000,
                                        salt_buckets=16)


# -- the README's HBase guarantees, on the emulator and on the real server -----------------
@pytest.fixture
def hfs(tmp_path, hbase_online_config):
    store = FeatureStore({"project": "test", "data_dir": str(tmp_path / "data"),
                          "online": hbase_online_config})
    yield store
    for g in store.list_feature_groups():
        store.online.drop(g)
    store.close()


def _raw(hfs):
    c = hfs.online.config
    return happybase.Connection(c.host, c.port, timeout=60_000)


def test_cell_timestamp_is_the_event_time_and_older_events_never_win(hfs):
    g = weather_group()
    hfs.apply([g])
    hours = [5, 2, 9, 1, 9, 3]   # out of order, with a replay of the newest
    for n in hours:
        when = T0 + dt.timedelta(hours=n)
        hfs.online.write_batch(g, rows(g, [{"origin": "JFK", "time_hour": when, "temp": float(n)}]))
    con = _raw(hfs)
    try:
        table = con.table(hfs.online.table_name_of(g.table_name))
        cells = table.row(encode_key(("JFK",), ["string"], 0), include_timestamp=True)
    finally:
        con.close()
    newest_ms = int((T0 + dt.timedelta(hours=9)).timestamp() * 1000)
    assert cells[b"f:temp"] == (b"9.0", newest_ms)
    assert hfs.online.read(g, [("JFK",)], ["temp"])[0].values == (9.0,)


def test_salted_keys_spread_over_buckets_and_read_back(tmp_path, hbase_online_config):
    config = dict(hbase_online_config, salt_buckets=8)
    fs = FeatureStore({"project": "test", "data_dir": str(tmp_path / "d"), "online": config})
    g = weather_group()
    fs.apply([g])
    try:
        keys = [f"K{i:03d}" for i in range(200)]
        fs.online.write_batch(g, rows(g, [{"origin": k, "time_hour": T0, "temp": float(i)}
                                          for i, k in enumerate(keys)]))
        con = _raw(fs)
        try:
            stored = [k for k, _ in con.table(fs.online.table_name_of(g.table_name)).scan()]
        finally:
            con.close()
        assert len(stored) == 200 and len({k[:1] for k in stored}) == 8
        assert sorted(stored) == sorted(encode_key((k,), ["string"], 8) for k in keys)
        got = fs.online.read(g, [(k,) for k in reversed(keys)], ["temp"])
        assert [r.values[0] for r in got] == [float(i) for i in reversed(range(200))]
    finally:
        fs.online.drop(g)
        fs.close()


def test_a_cell_past_its_ttl_disappears_from_the_server(hfs, request):
    g = weather_group("short", ttl="3s")
    hfs.apply([g])
    if "emulator" in request.node.callspec.id:
        emu = request.getfixturevalue("hbase_emulator")
        start = emu.clock()
        emu.clock = lambda: start + 1_000         # 1 s after the write...
    hfs.online.write_batch(g, rows(g, [{"origin": "JFK", "time_hour": dt.datetime.now(UTC),
                                        "temp": 1.0}]))
    key = encode_key(("JFK",), ["string"], 0)
    name = hfs.online.table_name_of(g.table_name)
    con = _raw(hfs)
    try:
        assert con.table(name).row(key)[b"f:temp"] == b"1.0"   # fresh: the server has it
        if "emulator" in request.node.callspec.id:
            emu.clock = lambda: start + 5_000     # ...and 5 s after: past the 3 s ttl
        else:
            time.sleep(5)
        assert con.table(name).row(key) == {}                 # HBase itself dropped it
    finally:
        con.close()
    resp = hfs.get_online_features(["short:temp"], [{"origin": "JFK"}])
    assert resp.to_dict(include_status=True) == {"origin": ["JFK"], "temp": [None],
                                                 "temp__status": ["missing"]}


def test_event_times_before_1970_are_refused_whole(hfs):
    g = weather_group()
    hfs.apply([g])
    bad = rows(g, [{"origin": "JFK", "time_hour": T0, "temp": 1.0},
                   {"origin": "EWR", "time_hour": dt.datetime(1969, 7, 20, tzinfo=UTC),
                    "temp": 2.0}])
    with pytest.raises(ValidationError, match=r"weather.*1 rows have an event time before 1970"):
        hfs.online.write_batch(g, bad)
    assert hfs.online.read(g, [("JFK",), ("EWR",)], ["temp"]) == [None, None]


def test_a_ttl_longer_than_hbase_allows_is_kept_forever(hfs):
    g = weather_group("long", ttl="36500d")    # 100 years: more seconds than an int32 holds
    hfs.apply([g])
    hfs.online.write_batch(g, rows(g, [{"origin": "JFK", "time_hour": T0, "temp": 3.0}]))
    assert hfs.online.read(g, [("JFK",)], ["temp"])[0].values == (3.0,)
