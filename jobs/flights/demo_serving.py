"""Online feature service: `sparkfs serve`, vectors with on-demand features over HTTP

Weather has a 2-day ttl and the data is from 2013, so first the last real 2013 reading
per airport is replayed as a live observation (stamped one hour ago) through the normal
path: Spark ingest (the derived ``dewpoint_spread`` is computed there) and materialize.
Then the service runs in its own process (no Spark), is asked for a few real flights'
vectors, and is stopped.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

FEATURES = ["weather:temp", "weather:visib", "weather:dewpoint_spread", "planes:manufacturer",
            "planes:seats", "dep_calendar:hour_of_day", "dep_calendar:day_of_week",
            "weather_risk:weather_risk", "route_key:route_key"]


def _replay_live_weather(fs) -> str:
    import pandas as pd

    from jobs.flights import data

    w = data.weather_frame().sort_values("time_hour").groupby("origin").tail(1).copy()
    stamp = pd.Timestamp(dt.datetime.now(dt.UTC).replace(minute=0, second=0,
                                                                   microsecond=0)
                         - dt.timedelta(hours=1))
    w["time_hour"] = stamp
    r = fs.ingest("weather", w, run_id=f"weather-live-replay-{stamp:%Y%m%d%H}")
    [m] = fs.materialize("weather")
    print(f"replayed {len(w)} readings (2013-12-30 23:00 UTC) as live at {stamp:%Y-%m-%d %H:%M} "
          f"UTC: Delta version {r.delta_version}, {r.rows_written} rows, derived "
          f"dewpoint_spread fingerprint {r.transform_fingerprints.get('dewpoint_spread')}; "
          f"materialized {m.keys_written} keys")
    return f"{stamp:%H:%M}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_service(client, proc: subprocess.Popen, log, started: float) -> dict:
    """``GET /health`` on the service ``proc`` started until it answers (its JSON); raise
    with the service's log when it exits or takes more than 120 s."""
    import httpx

    while True:
        try:
            return client.get("/health").json()
        except httpx.HTTPError as exc:
            if proc.poll() is not None or time.perf_counter() - started > 120:
                log.seek(0)
                raise RuntimeError("the service did not start:\n" + log.read()) from exc
            time.sleep(0.2)


def _december_flights():
    from jobs.flights import data

    f = data.flights_frame()
    return f[f["tailnum"].notna() & (f["sched_dep_ts"].dt.month == 12)].reset_index(drop=True)


def _body(rows) -> dict:
    return {"features": FEATURES,
            "entity_rows": [{"origin": o, "tailnum": t} for o, t in zip(rows["origin"], rows["tailnum"])],
            "request_data": {"sched_dep_ts": [t.isoformat() for t in rows["sched_dep_ts"]],
                             "distance": rows["distance"].tolist(), "dest": rows["dest"].tolist()}}


def run(fs, ctx: dict) -> None:
    import httpx
    import pandas as pd

    _replay_live_weather(fs)
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="sparkfs-serve-", suffix=".log", delete=False)
    code = "import sys; from sparkfs.cli import main; sys.exit(main())"
    config = ctx.get("config_path", "conf/local.yaml")
    cmd = ["serve", "--config", config, "--repo", "jobs/flights/features.py", "--port", str(port)]
    print("$ sparkfs " + " ".join(cmd))
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *cmd], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            health = wait_for_service(client, proc, log, started)
            print(f"service up in {time.perf_counter() - started:.1f}s on {base} "
                  f"(pyspark loaded: {health['pyspark_loaded']})")

            december = _december_flights()
            rows = december.groupby("origin").head(2)
            t = time.perf_counter()
            r = client.post("/features", json=_body(rows))
            ms = (time.perf_counter() - t) * 1000
            got = r.json()
            names = got["metadata"]["feature_names"]
            table = pd.DataFrame({n: res["values"] for n, res in zip(names, got["results"])})
            table.insert(1, "flight", rows["flight_id"].tolist())
            for c in ("temp", "visib", "dewpoint_spread", "weather_risk"):
                table[c] = table[c].map(lambda v: None if v is None else round(v, 3))
            print(f"POST /features: {len(rows)} flights x {len(FEATURES)} features -> HTTP "
                  f"{r.status_code} in {ms:.1f} ms")
            with pd.option_context("display.width", 200, "display.max_columns", 20):
                print(table.drop(columns=["tailnum"]).to_string(index=False))
            statuses = {n: sorted(set(res["statuses"])) for n, res in zip(names, got["results"])}
            print("statuses:", {k: v for k, v in statuses.items() if k not in ("origin", "tailnum")})

            one = _body(rows.head(1))
            lat = []
            for _ in range(50):
                t = time.perf_counter()
                client.post("/features", json=one)
                lat.append((time.perf_counter() - t) * 1000)
            lat.sort()
            many = _body(december.head(500))
            lat500 = []
            for _ in range(5):
                t = time.perf_counter()
                client.post("/features", json=many)
                lat500.append((time.perf_counter() - t) * 1000)
            print(f"HTTP latency, 1 flight (3 on-demand transforms): p50 "
                  f"{statistics.median(lat):.1f} ms, max of 50 {lat[-1]:.1f} ms; "
                  f"{len(many['entity_rows'])} flights: median {statistics.median(lat500):.1f} ms "
                  "(machine shared; see bench/serving.py)")
            bad = client.post("/features", json={"features": ["weather:snow"],
                                                 "entity_rows": [{"origin": "JFK"}]})
            print(f"unknown feature -> HTTP {bad.status_code}: {bad.json()['detail'][:90]}...")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.seek(0)
        access = [ln for ln in log.read().splitlines() if "sparkfs.serving.access" in ln]
        log.close()
        os.unlink(log.name)
    print(f"service stopped; {len(access)} access-log lines, e.g.:")
    for ln in access[:1] + access[-1:]:
        print("  " + ln.split(" sparkfs.serving.access INFO ")[-1])
    ctx["serving"] = {"p50_ms_batch1": statistics.median(lat)}
