"""get_online_features on the embedded store: requests, key dtypes, caching, processes,
and HBase being unreachable. No Spark here."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, Field
from sparkfs.errors import DefinitionError, OnlineStoreError, ValidationError
from sparkfs.registry import Registry
from sparkfs.testing.conformance import T0, UTC, rows, weather_group

flight = Entity("flight", ["year", "flight_no"], dtypes={"year": "int", "flight_no": "long"})
flights = FeatureGroup("flight_stats", [flight], "ts", [Field("delay", "double")])


@pytest.fixture
def fs(fs_nospark):
    g = weather_group()
    fs_nospark.apply([g, flights])
    fs_nospark.online.write_batch(g, rows(g, [
        {"origin": "JFK", "time_hour": T0, "temp": 39.0, "wind_speed": 10.0},
        {"origin": "EWR", "time_hour": T0, "temp": 35.5, "wind_speed": None}]))
    fs_nospark.online.write_batch(flights, rows(flights, [
        {"year": 2013, "flight_no": 1545, "ts": T0, "delay": 2.5}]))
    return fs_nospark


def test_to_dict_keeps_request_order_and_to_pandas_types(fs):
    resp = fs.get_online_features(["weather:wind_speed", "weather:temp"],
                                  [{"origin": "EWR"}, {"origin": "LGA"}, {"origin": "JFK"}])
    assert resp.to_dict() == {"origin": ["EWR", "LGA", "JFK"], "wind_speed": [None, None, 10.0],
                              "temp": [35.5, None, 39.0]}
    # EWR's row holds no wind speed: missing, as in batch scoring and the evaluation log
    assert resp.statuses == {"wind_speed": ["missing", "missing", "present"],
                             "temp": ["present", "missing", "present"]}
    df = resp.to_pandas(include_status=True)
    assert list(df.columns) == ["origin", "wind_speed", "wind_speed__status", "temp", "temp__status"]
    assert str(df["temp"].dtype) == "float64" and df["temp"].isna().tolist() == [False, True, False]


def test_star_ref_and_full_feature_names(fs):
    resp = fs.get_online_features(["weather:*"], [{"origin": "JFK"}], full_feature_names=True)
    assert resp.to_dict() == {"origin": ["JFK"], "weather__temp": [39.0],
                              "weather__wind_speed": [10.0]}


def test_name_clash_and_duplicates_are_refused(fs):
    g2 = FeatureGroup("weather2", [Entity("airport", ["origin"])], "time_hour",
                      [Field("temp", "double")])
    fs.apply([g2])
    with pytest.raises(DefinitionError, match="'temp' is requested twice; pass full_feature_names"):
        fs.get_online_features(["weather:temp", "weather2:temp"], [{"origin": "JFK"}])
    resp = fs.get_online_features(["weather:temp", "weather2:temp"], [{"origin": "JFK"}],
                                  full_feature_names=True)
    assert resp.to_dict()["weather2__temp"] == [None]


def test_key_values_must_have_the_key_dtype(fs):
    ok = fs.get_online_features(["flight_stats:delay"],
                                [{"year": np.int32(2013), "flight_no": 1545}])
    assert ok.to_dict()["delay"] == [2.5]
    with pytest.raises(ValidationError, match=r"entity row 1: join key 'year' must be an int, got '2013'"):
        fs.get_online_features(["flight_stats:delay"], [{"year": 2013, "flight_no": 1},
                                                        {"year": "2013", "flight_no": 1}])
    with pytest.raises(ValidationError, match="join key 'year' must be an int, got True"):
        fs.get_online_features(["flight_stats:delay"], [{"year": True, "flight_no": 1}])
    with pytest.raises(ValidationError, match="out of range for a int key"):
        fs.get_online_features(["flight_stats:delay"], [{"year": 2 ** 40, "flight_no": 1}])
    with pytest.raises(ValidationError, match="join key 'origin' must be a string, got 1"):
        fs.get_online_features(["weather:temp"], [{"origin": 1}])
    with pytest.raises(ValidationError, match="entity row 0 has no value for join key 'flight_no'"):
        fs.get_online_features(["flight_stats:delay"], [{"year": 2013}])


def test_batch_limit_and_request_data_shape(fs):
    with pytest.raises(ValidationError, match="exceed serving.max_batch_size=1000"):
        fs.get_online_features(["weather:temp"], [{"origin": "JFK"}] * 1001)
    with pytest.raises(ValidationError, match="request_data column 'x' has 2 values for 1"):
        fs.get_online_features(["weather:temp"], [{"origin": "JFK"}], request_data={"x": [1, 2]})
    empty = fs.get_online_features(["weather:temp"], [])
    assert empty.to_dict() == {"origin": [], "temp": []}


def test_definitions_are_cached_until_the_registry_changes(fs, monkeypatch):
    calls = []
    real = Registry.get

    def counting(self, *a, **k):
        calls.append(a)
        return real(self, *a, **k)

    monkeypatch.setattr(Registry, "get", counting)
    fs.get_online_features(["weather:temp"], [{"origin": "JFK"}])
    first = len(calls)
    assert first > 0
    for _ in range(5):
        fs.get_online_features(["weather:temp"], [{"origin": "JFK"}])
    assert len(calls) == first  # served from the cache
    fs.apply([weather_group().__class__(
        "weather", [Entity("airport", ["origin"])], "time_hour",
        [Field("temp", "double"), Field("wind_speed", "double")], version=2)])
    fs.get_online_features(["weather:temp"], [{"origin": "JFK"}])
    assert len(calls) > first  # the registry changed: definitions were read again
    assert fs.get_online_features(["weather:temp"], [{"origin": "JFK"}]).to_dict()["temp"] == [None]


def test_serving_path_imports_no_pyspark(fs, tmp_path):
    code = textwrap.dedent(f"""
        import sys, json
        from sparkfs import FeatureStore
        fs = FeatureStore({{"project": "test", "data_dir": {str(tmp_path / "data")!r}}})
        r = fs.get_online_features(["weather:temp"], [{{"origin": "JFK"}}]).to_dict()
        import sparkfs.online.materialize, sparkfs.online.hbase, sparkfs.testing.hbase
        spark = sorted(m for m in sys.modules if "pyspark" in m or "py4j" in m)
        print(json.dumps({{"r": r, "spark": spark}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"r": {"origin": ["JFK"], "temp": [39.0]}, "spark": []}


def test_a_reader_process_reads_while_another_writes(fs, tmp_path):
    g = weather_group()
    n = 40
    reader = textwrap.dedent(f"""
        import sys, time, json
        from sparkfs import FeatureStore
        fs = FeatureStore({{"project": "test", "data_dir": {str(tmp_path / "data")!r}}})
        print("ready", flush=True)
        seen, reads, deadline = set(), 0, time.time() + 120
        while time.time() < deadline:
            r = fs.get_online_features(["weather:temp"], [{{"origin": "JFK"}}])
            v = r.to_dict()["temp"][0]
            reads += 1
            seen.add(v)
            if v == {float(n)}:
                break
        print(json.dumps({{"reads": reads, "seen": sorted(seen)}}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", reader], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    for i in range(1, n + 1):  # each write is its own transaction
        fs.online.write_batch(g, rows(g, [{"origin": "JFK", "time_hour": T0 + dt.timedelta(hours=i),
                                           "temp": float(i)}]))
    out, err = proc.communicate(timeout=150)
    assert proc.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert got["seen"][-1] == float(n)                 # it saw the last write
    assert all(v == 39.0 or 1 <= v <= n for v in got["seen"])  # and only committed values


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_hbase_unreachable_is_a_clear_error_after_bounded_retries(tmp_path):
    port = _closed_port()
    fs = FeatureStore({"project": "test", "data_dir": str(tmp_path / "d"),
                       "online": {"type": "hbase", "host": "127.0.0.1", "port": port,
                                  "retries": 2, "backoff_ms": 20, "timeout_ms": 500}})
    g = weather_group()
    fs.apply([g])
    with pytest.raises(OnlineStoreError, match=rf"HBase at 127.0.0.1:{port} is unreachable: .* "
                                               r"failed after 3 attempts"):
        fs.get_online_features(["weather:temp"], [{"origin": "JFK"}])
    with pytest.raises(OnlineStoreError, match="unreachable"):
        fs.online.write_batch(g, rows(g, [{"origin": "JFK", "time_hour": T0, "temp": 1.0}]))
    fs.close()


def test_hbase_going_down_mid_session_then_back(tmp_path):
    from sparkfs.testing.hbase import HBaseEmulator

    emu = HBaseEmulator().start()
    port = emu.port
    fs = FeatureStore({"project": "test", "data_dir": str(tmp_path / "d"),
                       "online": {"type": "hbase", "host": "127.0.0.1", "port": port,
                                  "retries": 2, "backoff_ms": 20, "timeout_ms": 500}})
    g = weather_group()
    fs.apply([g])
    fs.online.write_batch(g, rows(g, [{"origin": "JFK", "time_hour": T0, "temp": 1.0}]))
    emu.stop()
    with pytest.raises(OnlineStoreError, match="unreachable"):
        fs.online.read(g, [("JFK",)], ["temp"])
    data = emu.handler
    emu2 = HBaseEmulator(port=port)
    emu2.handler._tables = data._tables  # the "restarted" server keeps its data
    emu2.start()
    try:
        assert fs.online.read(g, [("JFK",)], ["temp"])[0].values == (1.0,)
    finally:
        fs.close()
        emu2.stop()
    assert time is not None and UTC is not None
