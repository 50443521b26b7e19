"""Soak test of the online service: features and predictions at a fixed rate for a long time.

Serves the real flights repo (``sparkfs serve``, SQLite store) with a deployed MLflow model
and sends ``--rate`` requests per second in total from ``--clients`` client processes, a
``--predict-share`` of them ``POST /deployments/soak_delay/predict`` (a scikit-learn model
on a view of ``planes`` features and the on-demand ``dep_calendar``, every prediction
logged to the deployment's evaluation table, as in production) and the rest ``POST
/features`` (the 20-feature request of ``bench/serving.py``: weather, planes and three
on-demand transforms). Open loop: each request is due at a fixed time and its latency
counts from then, so a stalled server cannot hide its backlog.

Every ``--window-s`` seconds (default a minute) it reports, per endpoint, requests, errors
(any non-200 or transport failure) and p50/p99 latency, and the server's resident memory
(all its processes, from /proc). At the end: the least-squares slope of p99 (per endpoint)
and of memory over the windows after the first (warm-up; all windows when fewer than 3),
the fitted rise over the run (slope x (windows - 1)) and a verdict against stated
tolerances: p99 may rise by at most ``--p99-tolerance`` (fraction) of its median window
value or 5 ms, whichever is larger; memory by at most ``--rss-tolerance-mb``. After the
load the service is stopped with SIGTERM (it flushes its evaluation log) and the log is
read back: ``log.rows_logged`` must equal ``log.rows_answered`` (prediction rows answered
with 200, warm-up included). Goal: zero errors, nothing lost, no upward trend.

    .venv/bin/python bench/soak.py [--seconds 600] [--rate 80] [--clients 8] [--batch 1]
        [--predict-share 0.5] [--window-s 60] [--workers 1] [--p99-tolerance 0.25]
        [--rss-tolerance-mb 16]

Prints one JSON document. ``tests/test_soak.py`` runs it for 60 s and asserts zero errors
on both endpoints and a complete evaluation log.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from serving import FEATURES, body_for, pct, setup_store, start_server  # noqa: E402

DEPLOYMENT = "soak_delay"
PREDICT_PATH = f"/deployments/{DEPLOYMENT}/predict"
VIEW_FEATURES = ["planes:year_built", "planes:engines", "planes:seats",
                 "dep_calendar:hour_of_day", "dep_calendar:day_of_week"]


def _client(port: int, requests: list[tuple[str, bytes, int]], start_at: float, seconds: float,
            interval: float, offset: float, out) -> None:
    """One open-loop client: a request every ``interval`` s from ``start_at + offset``,
    cycling through ``requests`` (path, body, rows); records (due time relative to start,
    latency s, ok, error kind, path, rows)."""
    headers = {"Content-Type": "application/json"}
    conn = None
    records = []
    k = 0
    while True:
        due = start_at + offset + k * interval
        if due >= start_at + seconds:
            break
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        path, body, rows = requests[k % len(requests)]
        ok, kind = False, ""
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", path, body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            ok, kind = r.status == 200, str(r.status)
        except (OSError, http.client.HTTPException) as exc:
            kind = type(exc).__name__
            if conn is not None:
                conn.close()
            conn = None
        records.append((due - start_at, time.time() - due, ok, "" if ok else kind, path, rows))
        k += 1
    out.put(records)


def tree_rss_mb(pid: int) -> float:
    """Resident memory (MB) of ``pid`` and its descendants (Linux /proc)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def slope(ys: list[float]) -> float:
    """Least-squares slope of ``ys`` per step (0 for fewer than two points).

    >>> slope([1.0, 2.0, 3.0])
    1.0
    """
    n = len(ys)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(ys) / n
    return round(sum((i - mx) * (y - my) for i, y in enumerate(ys)) /
                 sum((i - mx) ** 2 for i in range(n)), 4)


def trend(ys: list[float], tolerance: float) -> dict:
    """Slope and fitted rise of ``ys`` after the first (warm-up) value when there are at
    least three, and whether the rise stays within ``tolerance``.

    >>> trend([50.0, 10.0, 10.5, 11.0], 2.0)
    {'slope_per_window': 0.5, 'rise': 1.0, 'tolerance': 2.0, 'ok': True}
    """
    fitted = ys[1:] if len(ys) >= 3 else ys
    s = slope(fitted)
    rise = round(s * max(0, len(fitted) - 1), 3)
    return {"slope_per_window": s, "rise": rise, "tolerance": round(tolerance, 3),
            "ok": rise <= tolerance}


def setup_model(fs, flights, rows: int = 3000) -> None:
    """The plane registry appended to ``planes``' Delta history (``fs.push``: delta-rs, no
    Spark), a view of ``planes`` + ``dep_calendar``, a training set on real flights (DuckDB),
    a scikit-learn model (imputing missing values) logged to MLflow and deployed as
    ``soak_delay``."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    from jobs.flights import data
    from sparkfs import FeatureView

    fs.push("planes", data.planes_frame(), to="offline")
    fs.flush_pushes()
    fs.apply([FeatureView(DEPLOYMENT, features=VIEW_FEATURES)])
    spine = flights.dropna(subset=["arr_delay"]).head(rows)[
        ["tailnum", "sched_dep_ts", "arr_delay"]].reset_index(drop=True)
    spine["ts"] = spine["sched_dep_ts"]
    ts = fs.create_training_set("soak_train", spine, view=DEPLOYMENT, timestamp_col="ts",
                                engine="duckdb")
    train = ts.to_pandas()
    cols = [f.split(":")[1] for f in VIEW_FEATURES]
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(train[cols],
                                                                   train["arr_delay"])
    info = fs.log_model(model, "soak_model", training_set=ts, serialization_format="cloudpickle")
    fs.deploy(DEPLOYMENT, model="soak_model", version=info.version)


def predict_body(flights, batch: int, offset: int) -> dict:
    rows = flights.iloc[(offset * batch) % (len(flights) - batch):][:batch]
    return {"entity_rows": [{"tailnum": t} for t in rows["tailnum"]],
            "request_data": {"sched_dep_ts": [t.isoformat() for t in rows["sched_dep_ts"]]}}


def _endpoint_window(recs: list) -> dict:
    lat = [r[1] for r in recs]
    return {"requests": len(recs), "errors": sum(1 for r in recs if not r[2]),
            "p50_ms": round(pct(lat, 0.5) * 1e3, 3), "p99_ms": round(pct(lat, 0.99) * 1e3, 3)}


def _warm_up(port: int, requests: list[tuple[str, bytes, int]]) -> int:
    """Send ``requests`` once (model load, plan cache); returns prediction rows answered."""
    answered = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for path, body, rows in requests:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read()
        if r.status != 200:
            raise RuntimeError(f"warm-up {path} answered {r.status}: {text[:300]!r}")
        answered += rows if path == PREDICT_PATH else 0
    conn.close()
    return answered


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--rate", type=float, default=80, help="requests per second, all clients")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--predict-share", type=float, default=0.5,
                    help="fraction of requests that are predictions (0..1)")
    ap.add_argument("--window-s", type=float, default=60)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--p99-tolerance", type=float, default=0.25)
    ap.add_argument("--rss-tolerance-mb", type=float, default=16.0)
    args = ap.parse_args()
    if not 0 <= args.predict_share <= 1:
        ap.error(f"--predict-share must be within 0..1, got {args.predict_share}")

    tmp = tempfile.mkdtemp(prefix="sparkfs-soak-")
    atexit.register(shutil.rmtree, tmp, True)  # removed however the run ends
    fs, conf, flights = setup_store(tmp, args.rows)
    setup_model(fs, flights)
    fs.close()
    # a fixed interleaving: request i is a prediction when floor((i + 1) x share) steps up
    requests: list[tuple[str, bytes, int]] = []
    for i in range(200):
        if int((i + 1) * args.predict_share) > int(i * args.predict_share):
            requests.append((PREDICT_PATH, json.dumps(predict_body(flights, args.batch, i))
                             .encode(), args.batch))
        else:
            requests.append(("/features", json.dumps(body_for(flights, args.batch, i)).encode(),
                             args.batch))
    proc, port = start_server(conf, args.workers)
    answered = 0
    try:
        answered += _warm_up(port, [r for r in requests if r[0] == PREDICT_PATH][:2] +
                             [r for r in requests if r[0] == "/features"][:2])
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        start_at = time.time() + 3.0
        interval = args.clients / args.rate
        clients = [ctx.Process(target=_client, args=(
            port, requests[i * 25:] + requests[:i * 25], start_at, args.seconds, interval,
            i * interval / args.clients, out)) for i in range(args.clients)]
        for c in clients:
            c.start()
        rss: list[tuple[float, float]] = []
        while time.time() < start_at + args.seconds:
            rss.append((time.time() - start_at, tree_rss_mb(proc.pid)))
            time.sleep(min(5.0, args.window_s / 4))
        records = [r for _ in clients for r in out.get(timeout=args.seconds + 120)]
        for c in clients:
            c.join(30)
        rss.append((args.seconds, tree_rss_mb(proc.pid)))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the service flushes its evaluation log
        proc.wait(60)
    answered += sum(r[5] for r in records if r[4] == PREDICT_PATH and r[2])

    from sparkfs import FeatureStore

    fs = FeatureStore.from_config(conf)
    try:
        logged = len(fs.read_log(DEPLOYMENT))
    finally:
        fs.close()

    windows = []
    n_windows = max(1, int(round(args.seconds / args.window_s)))
    for w in range(n_windows):
        lo, hi = w * args.window_s, (w + 1) * args.window_s
        mine = [r for r in records if lo <= r[0] < hi]
        mem = [m for t, m in rss if lo <= t < hi] or [rss[-1][1]]
        windows.append({"window": w + 1, "requests": len(mine),
                        "errors": sum(1 for r in mine if not r[2]),
                        "features": _endpoint_window([r for r in mine if r[4] == "/features"]),
                        "predict": _endpoint_window([r for r in mine if r[4] == PREDICT_PATH]),
                        "rss_mb": max(mem)})

    def p99_tolerance(key: str) -> float:
        return max(5.0, args.p99_tolerance * statistics.median(w[key]["p99_ms"] for w in windows))

    trends = {f"{key}_p99_ms": trend([w[key]["p99_ms"] for w in windows], p99_tolerance(key))
              for key in ("features", "predict")}
    trends["rss_mb"] = trend([w["rss_mb"] for w in windows], args.rss_tolerance_mb)
    by_path = {"features": [r for r in records if r[4] == "/features"],
               "predict": [r for r in records if r[4] == PREDICT_PATH]}
    print(json.dumps({
        "benchmark": "soak", "seconds": args.seconds, "rate_per_s": args.rate,
        "clients": args.clients, "batch": args.batch, "workers": args.workers,
        "predict_share": args.predict_share, "window_s": args.window_s,
        "features_per_row": len(FEATURES), "predict_view": VIEW_FEATURES,
        "requests": len(records), "errors": sum(1 for r in records if not r[2]),
        "error_kinds": {f"{r[4]} {r[3]}": sum(1 for x in records if (x[4], x[3]) == (r[4], r[3]))
                        for r in records if r[3]},
        "endpoints": {k: _endpoint_window(v) for k, v in by_path.items()},
        "windows": windows,
        "trend": trends,
        "no_upward_trend": all(t["ok"] for t in trends.values()),
        "log": {"deployment": DEPLOYMENT, "rows_answered": answered, "rows_logged": logged,
                "complete": answered == logged},
    }, indent=1))


if __name__ == "__main__":
    main()
