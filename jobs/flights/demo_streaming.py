"""Streaming: the year's last departures replayed into Kafka, streamed into the aggregate groups

A real single-node Kafka broker (KRaft, the jars ``python -m sparkfs.jvm fetch kafka``
fetched) is started on 127.0.0.1. ``jobs/stream.py`` runs as its own driver process (as it
would under ``spark-submit``) with one query per group, ``carrier_delays`` and
``origin_delays``, reading the same ``departures`` topic with a 1-second trigger: every
micro-batch is one Delta commit plus an online update of the group's window state. The
aggregations section backfilled 2013 up to ``STREAM_START``; this section replays the rest
(2013-12-31 from 06:00 New York) at a multiple of real time, in bursts. After each burst it
waits until the burst's newest departure is counted by the *online* running aggregates of
both groups (read at that departure's time): that wait is the freshness (event appended to
Kafka -> readable online). Half-way, the driver and its Spark JVM are killed with SIGKILL
and started again from the same checkpoints. At the end (SIGTERM: the driver finishes its
micro-batches) Delta is checked to hold every 2013 departure exactly once, and the online
aggregates to equal a point-in-time training set at the same instant.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd

from jobs.flights.demo_aggregations import STREAM_START, departures

GROUPS = {"carrier_delays": "carrier", "origin_delays": "origin"}
REFS = {"carrier_delays": ["carrier_delays:carrier_departures_1d",
                           "carrier_delays:carrier_dep_delay_mean_1d",
                           "carrier_delays:carrier_dep_delay_stddev_7d"],
        "origin_delays": ["origin_delays:origin_departures_1d",
                          "origin_delays:origin_dep_delay_mean_1d",
                          "origin_delays:origin_dep_delay_stddev_7d"]}
BURSTS = 8
KILL_AFTER = 4  # bursts delivered before the SIGKILL
SPEEDUP = 3600.0  # one hour of departures per second of replay
EVENT_COLUMNS = ["flight_id", "dep_ts", "carrier", "origin", "dep_delay", "delayed"]


def _events(deps: pd.DataFrame) -> list[dict]:
    tail = deps[deps["dep_ts"] >= STREAM_START].sort_values(["dep_ts", "flight_id"])
    return [{"flight_id": str(r.flight_id), "dep_ts": r.dep_ts.isoformat(), "carrier": r.carrier,
             "origin": r.origin,
             "dep_delay": None if r.dep_delay != r.dep_delay else float(r.dep_delay),
             "delayed": bool(r.delayed)}
            for r in tail.itertuples()]


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


class _Driver:
    """``jobs/stream.py`` as its own process group (its Python and its Spark JVM)."""

    def __init__(self, cmd: list[str], env: dict) -> None:
        self.cmd, self.env = cmd, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self) -> str:
        assert self.proc is not None
        return "the stream driver exited: " + (self.proc.stderr.read() or "")[-2000:] \
            if self.proc.stderr else "the stream driver exited"

    def kill(self) -> None:
        """SIGKILL the whole process group: no micro-batch gets to finish."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate()

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM to the driver's Python process only (not its group: that would stop its
        Spark JVM under it); it stops after the micro-batches in flight."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=300)
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # whatever of it is left
            except ProcessLookupError:
                pass
        return self.proc.returncode, out, err


def run(fs, ctx: dict) -> None:
    from sparkfs.testing.kafka import KafkaBroker

    work = os.path.abspath(os.path.join(ctx["data_dir"], "streaming"))
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, "stream.yaml")
    with open(cfg, "w") as f:  # the driver's store: same data directory as the demo
        json.dump({"project": fs.config.project, "data_dir": os.path.abspath(ctx["data_dir"]),
                   "ingest": {"statistics": False},
                   "spark": {"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": "2",
                                                            "spark.driver.memory": "1g"}}}, f)
    deps = departures()
    events = _events(deps)
    started = time.perf_counter()
    for g in GROUPS:  # the backfill's window state online first (the stream then catches up)
        [m] = fs.materialize(g, engine="local")
        print(f"materialize {g} from the backfill: {m.keys_written} keys' window state online")
    with KafkaBroker(workdir=os.path.join(work, "kafka")) as kafka:
        kafka.create_topic("departures", partitions=2)
        print(f"kafka broker (KRaft) on {kafka.bootstrap_servers}; topic 'departures'; "
              f"{len(events):,} departures of 2013-12-31 from 06:00 New York to replay into "
              f"{' and '.join(GROUPS)}")
        env = dict(os.environ, PYTHONPATH=os.getcwd(), PYSPARK_PYTHON=sys.executable)
        cmd = [sys.executable, "jobs/stream.py", "--config", cfg,
               "--repo", "jobs/flights/features.py", "--source", "kafka",
               "--bootstrap-servers", kafka.bootstrap_servers, "--topic", "departures",
               "--checkpoint", os.path.join(work, "checkpoints"), "--trigger", "1 second"]
        for g in GROUPS:
            cmd += ["--group", g]
        driver = _Driver(cmd, env)
        driver.start()
        try:
            _wait_started(fs, driver, after=0.0)
            _replay(fs, kafka, driver, deps, events)
        finally:
            code, out, err = driver.stop() if driver.proc else (0, "", "")
        if code != 0:
            raise RuntimeError(f"the stream driver failed: {err.strip().splitlines()[-1:]}")
        finals = [json.loads(line) for line in out.strip().splitlines()[-len(GROUPS):]]
    for final in finals:
        print(f"driver stopped on SIGTERM: {final['group']} state={final['state']}, "
              f"{final['rows_total']:,} rows since the restart, "
              f"unparseable={final['unparseable_total']}")
    _check(fs, deps)
    print(f"streaming section: {time.perf_counter() - started:.1f}s")


def _wait_started(fs, driver: _Driver, after: float, timeout: float = 600.0) -> float:
    """Wait until the driver runs a query per group started after ``after`` (epoch s)."""
    t = time.perf_counter()
    while True:
        running = {s.group for s in fs.list_streams()
                   if s.query_id and s.state == "running" and _started_at(s) >= after}
        if set(GROUPS) <= running:
            break
        if not driver.alive():
            raise RuntimeError(driver.failure())
        if time.perf_counter() - t > timeout:
            raise RuntimeError(f"the stream driver did not start its queries within {timeout:.0f} s")
        time.sleep(0.2)
    took = time.perf_counter() - t
    print(f"stream driver (jobs/stream.py, its own Spark; one query per group) running after "
          f"{took:.1f}s")
    return took


def _started_at(status) -> float:
    v = status.to_dict().get("started_at")
    if not v:
        return 0.0
    try:
        return dt.datetime.fromisoformat(str(v)).timestamp()
    except ValueError:
        return 0.0


def _replay(fs, kafka, driver: _Driver, deps: pd.DataFrame, events: list[dict]) -> None:
    """Produce ``events`` in bursts; after each, time until both groups' online running
    aggregates count the burst's newest departure."""
    per = max(1, len(events) // BURSTS)
    known = deps[deps["dep_ts"] < STREAM_START]
    freshness: list[float] = []
    for b in range(BURSTS):
        burst = events[b * per:(b + 1) * per if b < BURSTS - 1 else len(events)]
        if not burst:
            continue
        if b == KILL_AFTER:
            driver.kill()
            print(f"SIGKILL the stream driver and its Spark JVM after {b} bursts "
                  "(no micro-batch gets to finish)")
        kafka.produce("departures", [json.dumps(e) for e in burst],
                      keys=[e["origin"] for e in burst])
        appended = time.perf_counter()
        if b == KILL_AFTER:  # produced while nothing reads the topic; now start again
            restarted = time.time()
            driver.start()
            _wait_started(fs, driver, after=restarted - 1)
        known = pd.concat([known, deps[deps["flight_id"].isin({e["flight_id"] for e in burst})]])
        last = burst[-1]
        now = dt.datetime.fromisoformat(last["dep_ts"])
        expect = {g: int(((known[key] == last[key]) & (known["dep_ts"] > now - dt.timedelta(days=1))
                          & (known["dep_ts"] <= now)).sum())
                  for g, key in GROUPS.items()}
        online = _wait_counted(fs, driver, last, now, expect, appended)
        took = time.perf_counter() - appended
        if b != KILL_AFTER:
            freshness.append(took)
        c, o = online["carrier_delays"], online["origin_delays"]
        local = now.astimezone(dt.timezone(dt.timedelta(hours=-5)))
        print(f"  burst {b + 1}/{BURSTS}: {len(burst):>3} departures up to {local:%H:%M} EST, "
              f"online after {took:.2f}s{' (with the restart)' if b == KILL_AFTER else ''}; "
              f"carrier {last['carrier']}: "
              f"{c['carrier_departures_1d']} departures in 1d, mean delay "
              f"{_fmt(c['carrier_dep_delay_mean_1d'])} min; origin {last['origin']}: "
              f"{o['origin_departures_1d']} in 1d, mean {_fmt(o['origin_dep_delay_mean_1d'])} min")
        span = (_ts(burst[-1]) - _ts(burst[0])) / SPEEDUP
        time.sleep(max(0.0, span - took))
    print(f"freshness (appended to Kafka -> counted by both groups' online aggregates), "
          f"{len(freshness)} bursts without a restart: p50 {_quantile(freshness, 0.5):.2f}s, "
          f"max {max(freshness):.2f}s (trigger 1 s; this machine is shared, so absolute times "
          "vary)")


def _wait_counted(fs, driver: _Driver, last: dict, now: dt.datetime, expect: dict,
                  appended: float, timeout: float = 300.0) -> dict:
    from sparkfs.serving.online import get_online_features

    while True:
        got = {g: {k: v[0] for k, v in get_online_features(
                   fs.catalog, fs.online, REFS[g], [{key: last[key]}],
                   now=now).to_dict().items()}
               for g, key in GROUPS.items()}
        counts = {g: got[g][REFS[g][0].split(":")[1]] for g in GROUPS}
        if all(counts[g] == expect[g] for g in GROUPS):
            return got
        if not driver.alive():
            raise RuntimeError(driver.failure())
        if time.perf_counter() - appended > timeout:
            raise RuntimeError(f"a burst was not online within {timeout:.0f} s: online counts "
                               f"{counts}, expected {expect}")
        time.sleep(0.05)


def _check(fs, deps: pd.DataFrame) -> None:
    """Every departure in Delta exactly once; online aggregates = offline at the end."""
    from sparkfs import FeatureStore
    from sparkfs.serving.online import get_online_features

    reader = FeatureStore(fs.config)
    try:
        want = sorted(deps["flight_id"].astype(str))
        end = deps["dep_ts"].max().to_pydatetime()
        for g, key in GROUPS.items():
            ids = reader.read_history(g).to_arrow().column("flight_id").to_pylist()
            print(f"Delta history of {g}: {len(ids):,} rows, {len(set(ids)):,} distinct "
                  f"departures; every 2013 departure exactly once: {sorted(ids) == want}")
            keys = sorted(deps[key].unique())
            online = get_online_features(reader.catalog, reader.online, REFS[g],
                                         [{key: k} for k in keys], now=end).to_dict()
            spine = pd.DataFrame({key: keys, "at": [end] * len(keys)})
            off = reader.get_historical_features(spine, REFS[g], "at",
                                                 engine="duckdb").to_pandas()
            same = all(_equal(off[n][i], online[n][i])
                       for n in (r.split(":")[1] for r in REFS[g]) for i in range(len(keys)))
            print(f"online {g} == offline training set at the last departure, "
                  f"{len(keys)} {key}s x {len(REFS[g])} aggregates: {same}")
        for g in GROUPS:
            batches = reader.stream_batches(g)
            if batches:
                b = batches[-1]
                print(f"run log {g}: {len(batches)} micro-batch records; last: batch "
                      f"{b.batch_id}, {b.rows_written} rows, Delta v{b.delta_version}, "
                      f"Kafka offsets {b.offsets.get('end')}")
    finally:
        reader.close()


def _equal(offline, online) -> bool:
    if online is None or (isinstance(online, float) and online != online):
        return bool(pd.isna(offline))
    return not pd.isna(offline) and abs(float(offline) - float(online)) < 1e-9


def _fmt(v) -> str:
    return "null" if v is None else f"{v:.1f}"


def _ts(event: dict) -> float:
    return dt.datetime.fromisoformat(event["dep_ts"]).timestamp()
