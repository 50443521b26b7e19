"""Streaming: departures replayed into Kafka, streamed into Delta and online by jobs/stream.py

A real single-node Kafka broker (KRaft, the jars ``python -m sparkfs.jvm fetch kafka``
fetched) is started on 127.0.0.1. ``jobs/stream.py`` runs as its own driver process (as it
would under ``spark-submit``) and streams the topic into the ``live_departures`` group with
a 1-second trigger: every micro-batch is one Delta commit plus an online catch-up. The demo
replays the first morning of 2013's departures into the topic at a multiple of real time,
in bursts, and after each burst waits until the burst's newest departure is readable by
``get_online_features``: that wait is the freshness (event appended to Kafka -> readable
online). The driver is stopped with SIGTERM (it finishes its micro-batch), then Delta is
checked to hold every departure exactly once and online to equal offline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd

from jobs.flights import data

REPO = '''
from sparkfs import Entity, FeatureGroup, Field
flight = Entity("flight", join_keys=["flight_id"])
live_departures = FeatureGroup(
    "live_departures", [flight], "dep_ts",
    [Field("carrier", "string"), Field("origin", "string"), Field("dep_delay", "double")],
    online=True, description="Departures as they happen, streamed from Kafka")
'''
BURSTS = 8
SPEEDUP = 3600.0  # one hour of departures per second of replay


def _events() -> list[dict]:
    f = data.flights_frame()
    f = f[f["dep_ts"].notna()].sort_values("dep_ts")
    day = f[f["dep_ts"] < f["dep_ts"].min() + pd.Timedelta(hours=6)]
    return [{"flight_id": str(r.flight_id), "dep_ts": r.dep_ts.isoformat(), "carrier": r.carrier,
             "origin": r.origin,
             "dep_delay": None if r.dep_delay != r.dep_delay else float(r.dep_delay)}
            for r in day.itertuples()]


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def run(fs, ctx: dict) -> None:
    from sparkfs import FeatureStore
    from sparkfs.testing.kafka import KafkaBroker

    work = os.path.abspath(os.path.join(ctx["data_dir"], "streaming"))
    os.makedirs(work, exist_ok=True)
    repo = os.path.join(work, "live_repo.py")
    with open(repo, "w") as f:
        f.write(REPO)
    cfg = os.path.join(work, "stream.yaml")
    with open(cfg, "w") as f:  # the driver's store: same data directory as the demo
        json.dump({"project": "flights", "data_dir": os.path.abspath(ctx["data_dir"]),
                   "ingest": {"statistics": False},
                   "spark": {"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": "2",
                                                            "spark.driver.memory": "1g"}}}, f)
    events = _events()
    started = time.perf_counter()
    with KafkaBroker(workdir=os.path.join(work, "kafka")) as kafka:
        kafka.create_topic("departures", partitions=2)
        print(f"kafka broker (KRaft) on {kafka.bootstrap_servers}; topic 'departures'; "
              f"{len(events):,} departures of 2013-01-01 06:00-12:00 local to replay")
        env = dict(os.environ, PYTHONPATH=os.getcwd(), PYSPARK_PYTHON=sys.executable)
        driver = subprocess.Popen(
            [sys.executable, "jobs/stream.py", "--config", cfg, "--repo", repo,
             "--group", "live_departures", "--source", "kafka",
             "--bootstrap-servers", kafka.bootstrap_servers, "--topic", "departures",
             "--checkpoint", os.path.join(work, "checkpoint"), "--trigger", "1 second"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        try:
            _wait_started(fs, driver)
            _replay(fs, kafka, driver, events)
        finally:
            if driver.poll() is None:
                # to the driver's Python process only (not its group: that would also stop
                # its Spark JVM under it); it stops after the micro-batch in flight
                os.kill(driver.pid, signal.SIGTERM)
            try:
                out, err = driver.communicate(timeout=300)
            finally:
                try:
                    os.killpg(driver.pid, signal.SIGKILL)  # whatever of it is left
                except ProcessLookupError:
                    pass
        if driver.returncode != 0:
            raise RuntimeError(f"the stream driver failed: {err.strip().splitlines()[-1:]}")
        final = json.loads(out.strip().splitlines()[-1])
    print(f"driver stopped on SIGTERM: state={final['state']}, {final['rows_total']:,} rows in "
          f"{(final['last_batch_id'] or 0) + 1} micro-batches, unparseable={final['unparseable_total']}")

    reader = FeatureStore(fs.config)
    try:
        hist = reader.read_history("live_departures").to_arrow()
        ids = hist.column("flight_id").to_pylist()
        print(f"Delta history: {len(ids):,} rows, {len(set(ids)):,} distinct departures; "
              f"every departure exactly once: {sorted(ids) == sorted(e['flight_id'] for e in events)}")
        rows = hist.to_pylist()
        online = reader.get_online_features(["live_departures:dep_delay", "live_departures:origin"],
                                            [{"flight_id": r["flight_id"]} for r in rows]).to_dict()
        same = (online["origin"] == [r["origin"] for r in rows]
                and str(online["dep_delay"]) == str([r["dep_delay"] for r in rows]))
        print(f"online equals offline for every departure: {same}")
        batches = reader.stream_batches("live_departures")
        if batches:
            b = batches[-1]
            print(f"run log: {len(batches)} micro-batch records; last: batch {b.batch_id}, "
                  f"{b.rows_written} rows, Delta v{b.delta_version}, Kafka offsets {b.offsets.get('end')}")
    finally:
        reader.close()
    print(f"streaming section: {time.perf_counter() - started:.1f}s")


def _wait_started(fs, driver, timeout: float = 600.0) -> None:
    """Wait until the driver's query runs (its status file names a query id)."""
    t = time.perf_counter()
    while not any(s.group == "live_departures" and s.query_id and s.state == "running"
                  for s in fs.list_streams()):
        if driver.poll() is not None:
            raise RuntimeError("the stream driver exited: " + driver.stderr.read()[-2000:])
        if time.perf_counter() - t > timeout:
            raise RuntimeError(f"the stream driver did not start its query within {timeout:.0f} s")
        time.sleep(0.2)
    print(f"stream driver (jobs/stream.py, its own Spark) running after {time.perf_counter() - t:.1f}s")


def _replay(fs, kafka, driver, events: list[dict]) -> None:
    """Produce ``events`` in bursts; after each, time until its newest event is online."""
    from sparkfs.errors import NotFoundError

    per = max(1, len(events) // BURSTS)
    freshness = []
    for b in range(BURSTS):
        burst = events[b * per:(b + 1) * per if b < BURSTS - 1 else len(events)]
        if not burst:
            continue
        kafka.produce("departures", [json.dumps(e) for e in burst],
                      keys=[e["origin"] for e in burst])
        appended = time.perf_counter()
        last = burst[-1]
        deadline = appended + 180
        while True:
            try:
                got = fs.get_online_features(["live_departures:origin"],
                                             [{"flight_id": last["flight_id"]}]).to_dict()["origin"]
            except NotFoundError:  # the driver has not registered the group yet
                got = None
            if got == [last["origin"]]:
                freshness.append(time.perf_counter() - appended)
                break
            if driver.poll() is not None:
                raise RuntimeError("the stream driver exited: " + driver.stderr.read()[-2000:])
            if time.perf_counter() > deadline:
                raise RuntimeError("a burst was not online within 180 s")
            time.sleep(0.05)
        span = (_ts(burst[-1]) - _ts(burst[0])) / SPEEDUP
        time.sleep(max(0.0, span - freshness[-1]))
    print(f"freshness (appended to Kafka -> readable online), {len(freshness)} bursts: "
          f"p50 {_quantile(freshness, 0.5):.2f}s, max {max(freshness):.2f}s "
          f"(trigger 1 s; this machine is shared, so absolute times vary)")


def _ts(event: dict) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(event["dep_ts"]).timestamp()
