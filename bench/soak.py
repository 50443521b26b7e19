"""Soak test of the online feature service: a fixed request rate for a long time.

Serves the real flights repo (``sparkfs serve``, SQLite store, the same 20-feature request
as ``bench/serving.py``: weather, planes and three on-demand transforms) and sends
``--rate`` requests per second in total from ``--clients`` client processes (open loop:
each request is due at a fixed time; its latency counts from then, so a stalled server
cannot hide its backlog). Every ``--window-s`` seconds (default a minute) it reports the
requests, errors (any non-200 or transport failure), p50/p99 latency and the server's
resident memory (all its processes, from /proc), and at the end a least-squares slope of
p99 and memory per window: the goal is zero errors and no upward trend.

    .venv/bin/python bench/soak.py [--seconds 600] [--rate 80] [--clients 8] [--batch 1]
                                   [--window-s 60] [--workers 1]

Prints one JSON document. ``tests/test_soak.py`` runs it for 60 s and asserts zero errors.
Predictions join the mix once ``POST /deployments/{name}/predict`` exists (``--predict``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from serving import body_for, pct, setup_store, start_server  # noqa: E402


def _client(port: int, bodies: list[bytes], start_at: float, seconds: float, interval: float,
            offset: float, out) -> None:
    """One open-loop client: a request every ``interval`` s from ``start_at + offset``;
    records (due time relative to start, latency s, ok)."""
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
        ok, kind = False, ""
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/features", body=bodies[k % len(bodies)], headers=headers)
            r = conn.getresponse()
            r.read()
            ok, kind = r.status == 200, str(r.status)
        except (OSError, http.client.HTTPException) as exc:
            kind = type(exc).__name__
            if conn is not None:
                conn.close()
            conn = None
        records.append((due - start_at, time.time() - due, ok, "" if ok else kind))
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--rate", type=float, default=80, help="requests per second, all clients")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--window-s", type=float, default=60)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rows", type=int, default=2000)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="sparkfs-soak-")
    fs, conf, flights = setup_store(tmp, args.rows)
    fs.close()
    bodies = [json.dumps(body_for(flights, args.batch, i)).encode() for i in range(200)]
    proc, port = start_server(conf, args.workers)
    try:
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        start_at = time.time() + 3.0
        interval = args.clients / args.rate
        clients = [ctx.Process(target=_client, args=(
            port, bodies[i::args.clients], start_at, args.seconds, interval,
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
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)

    windows = []
    n_windows = max(1, int(round(args.seconds / args.window_s)))
    for w in range(n_windows):
        lo, hi = w * args.window_s, (w + 1) * args.window_s
        mine = [r for r in records if lo <= r[0] < hi]
        lat = [r[1] for r in mine]
        mem = [m for t, m in rss if lo <= t < hi] or [rss[-1][1]]
        windows.append({"window": w + 1, "requests": len(mine),
                        "errors": sum(1 for r in mine if not r[2]),
                        "p50_ms": round(pct(lat, 0.5) * 1e3, 3),
                        "p99_ms": round(pct(lat, 0.99) * 1e3, 3),
                        "rss_mb": max(mem)})
    lat = [r[1] for r in records]
    print(json.dumps({
        "benchmark": "soak", "seconds": args.seconds, "rate_per_s": args.rate,
        "clients": args.clients, "batch": args.batch, "workers": args.workers,
        "window_s": args.window_s, "features_per_row": len(json.loads(bodies[0])["features"]),
        "requests": len(records), "errors": sum(1 for r in records if not r[2]),
        "error_kinds": {k: sum(1 for r in records if r[3] == k)
                        for k in sorted({r[3] for r in records if r[3]})},
        "p50_ms": round(pct(lat, 0.5) * 1e3, 3), "p99_ms": round(pct(lat, 0.99) * 1e3, 3),
        "windows": windows,
        "p99_slope_ms_per_window": slope([w["p99_ms"] for w in windows]),
        "rss_slope_mb_per_window": slope([w["rss_mb"] for w in windows]),
    }, indent=1))


if __name__ == "__main__":
    main()
