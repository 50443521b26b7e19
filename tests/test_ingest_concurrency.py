"""Concurrent writers (real processes, each with its own Spark): two ingests of the same
batch under the same run id, of the same rows under different run ids, and of disjoint
rows, started at the same moment, several times each — nothing lost, nothing duplicated,
exactly one winner. And the staging folder of a killed ingest is cleaned by the next
ingest of the group and by ``sparkfs gc``."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, Field

UTC = dt.UTC
ROWS = 2_000
TRIALS = 3
MODES = ("same-run", "same-rows", "disjoint")

WORKER = textwrap.dedent('''
    import datetime as dt, json, os, sys, time
    import pandas as pd
    from sparkfs import FeatureStore, SparkfsError
    data_dir, role, sync, plan = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    engine = sys.argv[5]
    fs = FeatureStore({"project": "t", "data_dir": data_dir, "offline": {"engine": engine},
                       "ingest": {"statistics": False},
                       "spark": {"master": "local[1]", "delta_jars": engine == "delta-spark",
                                 "conf": {"spark.sql.shuffle.partitions": "2",
                                          "spark.driver.memory": "512m"}}})
    fs.spark.range(1).count()  # start the JVM before the race
    for group, mode, rows in plan:
        origins = [f"{role}-{i % 50}" if mode == "disjoint" else f"K{i % 50}" for i in range(rows)]
        t0 = dt.datetime(2013, 1, 1, tzinfo=dt.timezone.utc)
        df = pd.DataFrame({"origin": origins,
                           "time_hour": [t0 + dt.timedelta(hours=i // 50) for i in range(rows)],
                           "temp": [float(i) for i in range(rows)]})
        run_id = "the-run" if mode == "same-run" else f"run-{role}"
        open(os.path.join(sync, f"ready-{group}-{role}"), "w").close()
        while not os.path.exists(os.path.join(sync, f"go-{group}")):
            time.sleep(0.005)
        try:
            out = fs.ingest(group, df, run_id=run_id).to_dict()
        except SparkfsError as e:
            out = {"error": type(e).__name__ + ": " + str(e)}
        print(json.dumps({"group": group, **out}, default=str), flush=True)
''')


def _group(name: str) -> FeatureGroup:
    return FeatureGroup(name=name, entities=[Entity("airport", ["origin"])], event_time="time_hour",
                        schema=[Field("temp", "double")])


@pytest.fixture
def nospark_store(tmp_path):
    store = FeatureStore({"project": "t", "data_dir": str(tmp_path / "data")})
    yield store
    store.close()


def _start(script: Path, args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


#: delta-spark races: same rows under different run ids is the case its blind append lost
#: (issue 14); two trials of it and one of each other mode keep the JVM-heavy run short
PLANS = {"delta-rs": [(m, TRIALS) for m in MODES],
         "delta-spark": [("same-rows", 2), ("same-run", 1), ("disjoint", 1)]}


@pytest.mark.parametrize("engine", ["delta-rs",
                                    pytest.param("delta-spark", marks=pytest.mark.delta_spark)])
def test_two_processes_racing_commit_exactly_once(nospark_store, tmp_path, engine):
    if engine == "delta-spark":
        from conftest import NO_DELTA_JARS, delta_jars_fetched

        if not delta_jars_fetched():
            pytest.skip(NO_DELTA_JARS)
    fs = nospark_store
    plan = [(f"{mode.replace('-', '_')}_{i}", mode, ROWS)
            for mode, trials in PLANS[engine] for i in range(trials)]
    fs.apply([Entity("airport", ["origin"])] + [_group(g) for g, _, _ in plan])
    script, sync = tmp_path / "worker.py", tmp_path / "sync"
    script.write_text(WORKER)
    sync.mkdir()
    procs = [_start(script, [str(fs.config.data_dir), role, str(sync), json.dumps(plan), engine])
             for role in ("a", "b")]
    try:
        for group, _, _ in plan:
            deadline = time.monotonic() + 900
            while not all((sync / f"ready-{group}-{r}").exists() for r in "ab"):
                assert all(p.poll() is None for p in procs), [p.stderr.read()[-3000:] for p in procs]
                assert time.monotonic() < deadline, "workers did not get ready"
                time.sleep(0.01)
            (sync / f"go-{group}").touch()
        outs = [p.communicate(timeout=1800) for p in procs]
    finally:
        for p in procs:
            _stop(p)
    results: dict[str, list[dict]] = {}
    for (stdout, stderr), p in zip(outs, procs):
        assert p.returncode == 0, stderr[-3000:]
        for line in stdout.splitlines():
            r = json.loads(line)
            results.setdefault(r["group"], []).append(r)
    for group, mode, rows in plan:
        got = results[group]
        assert len(got) == 2 and not any("error" in r for r in got), (group, got)
        assert {r["engine"] for r in got} == {engine}, got
        g = fs.get_feature_group(group)
        hist = fs.offline.read_arrow(g).to_pandas()
        writers = [r for r in got if r["rows_written"] > 0]
        if mode == "disjoint":  # nothing lost: both commit, all rows stored once
            assert len(hist) == 2 * rows and len(writers) == 2, (group, got)
            assert fs.offline.current_version(g) == 2
        else:  # exactly one winner, nothing duplicated
            assert len(writers) == 1 and writers[0]["rows_written"] == rows, (group, got)
            assert len(hist) == rows, (group, len(hist), got)
            assert not hist.duplicated(["origin", "time_hour"]).any()
            assert fs.offline.current_version(g) == 1, (group, got)
            loser = next(r for r in got if r is not writers[0])
            assert loser["noop"] and loser["rows_written"] == 0
            if mode == "same-run":
                assert loser["delta_version"] == 1


KILLED = textwrap.dedent('''
    import sys, pandas as pd, datetime as dt
    from sparkfs import FeatureStore
    fs = FeatureStore({"project": "t", "data_dir": sys.argv[1], "offline": {"engine": "delta-rs"},
                       "ingest": {"statistics": False},
                       "spark": {"master": "local[1]", "conf": {"spark.sql.shuffle.partitions": "2"}}})
    n = 200_000
    t0 = dt.datetime(2013, 1, 1, tzinfo=dt.timezone.utc)
    df = fs.spark.range(n).selectExpr("concat('K', cast(id % 1000 as string)) as origin",
        "timestamp_seconds(1356998400 + (id div 1000) * 3600) as time_hour", "cast(id as double) as temp")
    fs.ingest("weather", df, run_id="killed")
''')


def test_staging_of_a_killed_ingest_is_cleaned_by_the_next_ingest_and_gc(nospark_store, tmp_path,
                                                                        spark):
    import pandas as pd

    from sparkfs.cli import main

    fs = nospark_store
    g = _group("weather")
    fs.apply([Entity("airport", ["origin"]), g])
    table = Path(fs.offline.table_uri(g))
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    proc = _start(script, [str(fs.config.data_dir)])
    try:  # kill the ingest (and its JVM: same process group) while it writes its staging folder
        deadline = time.monotonic() + 600
        while not list(table.glob("ingest-*.sparkfs-stage")):
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.5)  # let it write some staging files
    finally:
        _stop(proc)
    assert len(list(table.glob("ingest-*.sparkfs-stage"))) == 1
    assert fs.offline.current_version(g) == 0  # nothing was committed

    config = tmp_path / "c.yaml"
    config.write_text(f"project: t\ndata_dir: {fs.config.data_dir}\n")
    assert main(["--config", str(config), "gc"]) == 0  # dry run: lists, removes nothing
    assert len(list(table.glob("ingest-*.sparkfs-stage"))) == 1
    # gc --apply on one copy of the state, the next ingest on the other
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(str(fs.config.data_dir), copy)
    config2 = tmp_path / "c2.yaml"
    config2.write_text(f"project: t\ndata_dir: {copy}\n")
    assert main(["--config", str(config2), "gc", "--apply"]) == 0
    copied = copy / table.relative_to(str(fs.config.data_dir))
    assert not list(copied.glob("ingest-*")), list(copied.iterdir())

    spark_fs = FeatureStore({"project": "t", "data_dir": str(fs.config.data_dir),
                             "offline": {"engine": "delta-rs"}, "ingest": {"statistics": False}},
                            spark=spark)
    r = spark_fs.ingest("weather", pd.DataFrame({
        "origin": ["JFK"], "time_hour": [pd.Timestamp("2013-01-01", tz="UTC")], "temp": [1.0]}))
    assert r.rows_written == 1
    left = [p.name for p in table.iterdir() if p.name.startswith("ingest-")]
    assert len(left) == 1 and not left[0].endswith(".sparkfs-stage"), left  # only the new commit
    assert fs.offline.read_arrow(g).num_rows == 1

