"""Online feature service benchmark: HTTP latency and throughput, and the cost of ``t.row``.

Serves the real flights repo (``sparkfs serve`` in its own process, SQLite store) and asks
for 20 features per row: 10 from ``weather`` (incl. the derived ``dewpoint_spread``), 6
from ``planes`` and 4 outputs of three on-demand transforms (``dep_calendar``,
``weather_risk``, ``route_key``). Entity rows and request data come from real 2013 flights.
8 client threads (keep-alive connections) send requests for a bounded time per batch size.

Peers/floors measured in the same run: the same request in-process
(``fs.get_online_features``, no HTTP) and an HTTP ``GET /health`` (the framework floor).
Published anchors (other hardware): Hopsworks p99 3 ms (batch 1), 68 ms (batch 500);
Feast Python feature server p99 7.2 ms (batch 1). Goals: p99 < 5 ms (batch 1) and < 50 ms
(batch 500).

    .venv/bin/python bench/serving.py [--seconds 10] [--clients 8] [--batch-sizes 1,500]

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

WEATHER = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure",
           "visib", "dewpoint_spread"]
PLANES = ["year_built", "plane_type", "manufacturer", "model", "engines", "seats"]
ON_DEMAND = ["dep_calendar:hour_of_day", "dep_calendar:day_of_week", "weather_risk:weather_risk",
             "route_key:route_key"]
FEATURES = [f"weather:{f}" for f in WEATHER] + [f"planes:{f}" for f in PLANES] + ON_DEMAND


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


def summary(lat_s: list[float], seconds: float, batch: int) -> dict:
    return {"requests": len(lat_s), "p50_ms": round(pct(lat_s, 0.5) * 1e3, 3),
            "p99_ms": round(pct(lat_s, 0.99) * 1e3, 3),
            "requests_per_s": round(len(lat_s) / seconds, 1),
            "rows_per_s": round(len(lat_s) * batch / seconds, 1)}


def setup_store(data_dir: str):
    """Apply the repo; put the latest real weather per airport and every plane online,
    re-stamped to an hour ago (the weather ttl is 2d)."""
    import pandas as pd
    import pyarrow as pa

    from jobs.flights import data, features
    from sparkfs import FeatureStore
    from sparkfs.repo import definitions_in
    from sparkfs.transforms import apply_derived_pandas

    conf = os.path.join(data_dir, "conf.yaml")
    with open(conf, "w") as f:
        f.write(f"data_dir: {data_dir}\nserving: {{max_batch_size: 1000}}\n")
    fs = FeatureStore.from_config(conf)
    fs.apply(definitions_in(features))
    now = pd.Timestamp(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    w = data.weather_frame().sort_values("time_hour").groupby("origin").tail(1).copy()
    w["time_hour"] = now
    g = fs.get_feature_group("weather")
    fs.online.write_batch(g, pa.Table.from_pandas(apply_derived_pandas(g, w), preserve_index=False))
    p = data.planes_frame()
    fs.online.write_batch(fs.get_feature_group("planes"), pa.Table.from_pandas(p, preserve_index=False))
    flights = data.flights_frame().dropna(subset=["tailnum"]).sample(5000, random_state=7)
    return fs, conf, flights


def body_for(flights, batch: int, offset: int) -> dict:
    rows = flights.iloc[(offset * batch) % (len(flights) - batch):][:batch]
    return {"features": FEATURES,
            "entity_rows": [{"origin": o, "tailnum": t} for o, t in zip(rows["origin"], rows["tailnum"])],
            "request_data": {"sched_dep_ts": [t.isoformat() for t in rows["sched_dep_ts"]],
                             "distance": rows["distance"].tolist(), "dest": rows["dest"].tolist()}}


def start_server(conf: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = "import sys; from sparkfs.cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--config", conf, "--repo",
                             "jobs/flights/features.py", "--port", str(port),
                             "--log-level", "warning"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    import httpx

    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError("the service did not start")


def load(base: str, bodies: list, clients: int, seconds: float, method: str = "POST") -> list:
    import httpx

    lat: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        mine, bad = [], 0
        with httpx.Client(base_url=base, timeout=30) as c:
            k = i
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = (c.post("/features", json=bodies[k % len(bodies)]) if method == "POST"
                     else c.get("/health"))
                mine.append(time.perf_counter() - t0)
                bad += r.status_code != 200
                k += clients
        with lock:
            lat.extend(mine)
            errors.append(bad)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sum(errors):
        raise RuntimeError(f"{sum(errors)} requests failed")
    return lat


def in_process(fs, bodies: list, seconds: float) -> list:
    lat = []
    stop = time.perf_counter() + seconds
    k = 0
    while time.perf_counter() < stop:
        b = bodies[k % len(bodies)]
        t0 = time.perf_counter()
        fs.get_online_features(b["features"], b["entity_rows"], request_data=b["request_data"])
        lat.append(time.perf_counter() - t0)
        k += 1
    return lat


def row_cost(number: int) -> dict:
    import pandas as pd

    from jobs.flights.transforms import dep_calendar, route_key, weather_risk

    ts = pd.Timestamp("2013-06-01 14:05", tz="UTC")
    risk_in = {"distance": 944.0, "wind_speed": 12.7, "visib": 6.0, "precip": 0.02}
    risk_dtypes = {k: "double" for k in risk_in}
    cases = {
        "dep_calendar": (lambda: dep_calendar.row(sched_dep_ts=ts),
                         lambda: dep_calendar.func(pd.Series([ts]))),
        "weather_risk": (lambda: weather_risk.row_from(risk_in, risk_dtypes),
                         lambda: weather_risk.func(**{k: pd.Series([v]) for k, v in risk_in.items()})),
        "route_key": (lambda: route_key.row(origin="JFK", dest="LAX"),
                      lambda: route_key.func(pd.Series(["JFK"]), pd.Series(["LAX"]))),
    }
    out = {}
    for name, (row, bare) in cases.items():
        r = min(timeit.repeat(row, number=number, repeat=3)) / number
        b = min(timeit.repeat(bare, number=number, repeat=3)) / number
        out[name] = {"row_us": round(r * 1e6, 1), "bare_pandas_us": round(b * 1e6, 1),
                     "overhead_us": round((r - b) * 1e6, 1), "ratio": round(r / b, 2)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="load time per scenario")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch-sizes", default="1,500")
    ap.add_argument("--row-calls", type=int, default=300, help="t.row calls per timing")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    os.chdir(ROOT)
    result: dict = {"benchmark": "serving", "features_per_row": len(FEATURES),
                    "on_demand_transforms": 3, "clients": args.clients,
                    "seconds_per_scenario": args.seconds, "online_store": "sqlite",
                    "cpus": os.cpu_count(), "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
                    "anchors": {"hopsworks_p99_ms": {"1": 3, "500": 68},
                                "feast_python_server_p99_ms": {"1": 7.2},
                                "goal_p99_ms": {"1": 5, "500": 50}},
                    "http": {}, "in_process": {}}
    with tempfile.TemporaryDirectory(prefix="sparkfs-bench-serving-") as tmp:
        fs, conf, flights = setup_store(tmp)
        proc, base = start_server(conf)
        try:
            import httpx

            httpx.post(base + "/features", json=body_for(flights, 1, 0), timeout=30)  # warm up
            floor = load(base, [], args.clients, min(args.seconds, 5.0), method="GET")
            result["http_floor_get_health"] = summary(floor, min(args.seconds, 5.0), 1)
            for b in batches:
                bodies = [body_for(flights, b, i) for i in range(50)]
                lat = load(base, bodies, args.clients, args.seconds)
                result["http"][str(b)] = summary(lat, args.seconds, b)
                single = in_process(fs, bodies, min(args.seconds, 5.0))
                result["in_process"][str(b)] = summary(single, min(args.seconds, 5.0), b)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
            fs.close()
    result["row_vs_bare_pandas"] = row_cost(args.row_calls)
    result["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
