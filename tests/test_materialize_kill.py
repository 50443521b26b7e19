"""A materialization process killed half way (SIGKILL, a real subprocess) and run again:
the second run finishes the work and never lets an older value win. No Spark: the
subprocess uses the local (DuckDB) engine, writing many small transactions."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from deltalake import write_deltalake

from sparkfs.online.materialize import materialize
from sparkfs.testing.conformance import T0, rows, weather_group

N = 20_000


def test_killed_materialization_is_finished_by_the_next_run(fs_nospark, tmp_path):
    fs = fs_nospark
    g = weather_group()
    fs.apply([g])
    uri = fs.offline.table_uri(g)
    write_deltalake(uri, rows(g, [{"origin": f"K{i:05d}", "time_hour": T0 + dt.timedelta(minutes=i),
                                   "temp": float(i)} for i in range(N)]), mode="append")
    db = fs.config.sqlite_path
    child = textwrap.dedent(f"""
        from sparkfs import FeatureStore
        from sparkfs.online.materialize import materialize
        fs = FeatureStore({{"project": "test", "data_dir": {str(tmp_path / "data")!r}}})
        materialize(fs.offline, fs.online, fs.get_feature_group("weather"), engine="local", batch_rows=10)
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    written = 0
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            con = sqlite3.connect(db, timeout=5)
            written = con.execute("SELECT count(*) FROM weather__v1").fetchone()[0]
            con.close()
        except sqlite3.OperationalError:  # the table does not exist yet
            written = 0
        if written > 0:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    assert 0 < written < N
    assert fs.online.get_watermark(g) is None          # the killed run never advanced it

    # Meanwhile newer values arrive for some keys, and late, older ones for others.
    write_deltalake(uri, rows(g, [
        {"origin": f"K{i:05d}", "time_hour": T0 + dt.timedelta(minutes=i + (1 if i % 2 else -1)),
         "temp": -float(i)} for i in range(0, N, 1001)]), mode="append")
    res = materialize(fs.offline, fs.online, g, engine="local")
    assert (res.from_delta_version, res.to_delta_version, res.keys_written) == (None, 2, N)
    got = fs.online.read(g, [(f"K{i:05d}",) for i in range(N)], ["temp"])
    want = [-float(i) if i % 1001 == 0 and i % 2 else float(i) for i in range(N)]
    assert sum(w < 0 for w in want) == 10
    assert [r.values[0] for r in got] == want
    assert fs.online.get_watermark(g) == 2


def test_killed_materialization_into_hbase_is_finished_by_the_next_run(tmp_path,
                                                                        hbase_online_config):
    """The same on HBase (emulator, then a real HBase): a child process materializing row
    by row is SIGKILLed once the table holds rows; the next run completes the work."""
    import happybase

    from sparkfs import FeatureStore

    n = 3_000
    config = {"project": "test", "data_dir": str(tmp_path / "data"), "online": hbase_online_config}
    fs = FeatureStore(config)
    g = weather_group()
    fs.apply([g])
    uri = fs.offline.table_uri(g)
    write_deltalake(uri, rows(g, [{"origin": f"K{i:05d}", "time_hour": T0 + dt.timedelta(minutes=i),
                                   "temp": float(i)} for i in range(n)]), mode="append")
    child = textwrap.dedent(f"""
        from sparkfs import FeatureStore
        from sparkfs.online.materialize import materialize
        fs = FeatureStore({config!r})
        materialize(fs.offline, fs.online, fs.get_feature_group("weather"), engine="local", batch_rows=10)
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    name = fs.online.table_name_of(g.table_name)
    con = happybase.Connection(fs.online.config.host, fs.online.config.port, timeout=60_000)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if name in con.tables() and next(con.table(name).scan(limit=1), None) is not None:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
        written = sum(1 for _ in con.table(name).scan())
    finally:
        con.close()
    assert 0 < written < n
    assert fs.online.get_watermark(g) is None          # the killed run never advanced it
    write_deltalake(uri, rows(g, [
        {"origin": f"K{i:05d}", "time_hour": T0 + dt.timedelta(minutes=i + (1 if i % 2 else -1)),
         "temp": -float(i)} for i in range(0, n, 101)]), mode="append")
    try:
        res = materialize(fs.offline, fs.online, g, engine="local")
        assert (res.from_delta_version, res.to_delta_version, res.keys_written) == (None, 2, n)
        got = fs.online.read(g, [(f"K{i:05d}",) for i in range(n)], ["temp"])
        want = [-float(i) if i % 101 == 0 and i % 2 else float(i) for i in range(n)]
        assert sum(w < 0 for w in want) == 15
        assert [r.values[0] for r in got] == want
        assert fs.online.get_watermark(g) == 2
    finally:
        fs.online.drop(g)
        fs.close()
