"""Inference benchmark: online predictions through the service against a floor, and batch
scoring on Spark against a hand-written point-in-time join + ``mlflow.pyfunc.spark_udf``.

Setup (synthetic, in a temporary data directory): a ``weather`` group (``--keys`` airports,
``--history`` readings each, one value in ten missing), the flights repo's on-demand
``dep_calendar`` transform, a view of both, a training set, a scikit-learn model that
imputes missing values, logged to MLflow and deployed.

Online, measured in the same run, one client, ``--requests`` requests per batch size:
- ``service``: ``POST /deployments/{name}/predict`` on ``sparkfs serve`` (own process,
  one worker): lookup + on-demand transform + model + evaluation logging + HTTP.
- ``in_process``: ``fs.predict`` (the same work without HTTP).
- ``floor``: the plain feature read (``fs.get_online_features`` of the same view) plus
  ``model.predict`` on a pre-fetched, pre-built input frame: what any design must do.
Reported: p50/p99 ms and the ratio service/floor.

Logging cost (``online.logging_cost``), same service: server CPU per request (the
process's user + system time, read from ``/proc``) predicting with deployment ``d``
(evaluation logging on) and ``d_unlogged`` (the same model and view, ``sample_rate=0``),
in alternating rounds, a logged round's CPU read only once all its rows are committed
(the bench counts them in the Delta table, which costs the server nothing), so the
logged side pays for its Delta appends; and the rows sent against the rows in the table,
and those the log counted as committed, dropped and failed (goal: CPU ratio <= 1.1,
none lost).

Two-hop peer (``online.two_hop``), at batch 1 and 100, 1 and ``--clients`` clients:
sparkfs's one hop against Feast 0.67's feature server (``feast serve``: lookup + the same
on-demand ``hour_of_day``) then ``mlflow models serve`` (the same model), called in
sequence by one client. Each client thread keeps one persistent HTTP client for both
architectures (connections warmed first), and the measurement runs in rounds that
alternate the two, so a change in the machine's load hits both alike; the machine's
load average is printed beside the numbers. Feast 0.67 cannot share sparkfs's environment (it pins
``prometheus_client<0.25``; sparkfs pins 0.26), so it runs from ``--feast-python`` (a venv
with ``pip install feast==0.67.0``; ``bench/inference_feast.py`` builds its repo). Without
it the section says so. Reported: p50/p99 ms, requests/s, sparkfs p99 / two-hop p99
(goal <= 0.5).

Batch, on one local Spark session, both fully evaluated (``noop`` writes), same spine,
same model: ``fs.score_batch`` (PIT features by the sparkfs engine, model in a pandas UDF,
without logging; and with logging) against a hand-written PIT join (join on key, keep
the latest reading at or before the spine time with a window) + ``spark_udf``. Reported:
rows/s and the ratio sparkfs/peer.

    .venv/bin/python bench/inference.py [--requests 200] [--spine 20000] [--keys 200]
        [--feast-python /path/to/feast-venv/bin/python] [--clients 8]
        [--sections online,two_hop,batch]

Prints one JSON document. Keep a run under two minutes (defaults do on 2 cores).
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
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

T0 = dt.datetime(2013, 1, 1, tzinfo=dt.UTC)
ROUNDS = 4  # two-hop comparison: rounds alternating the two architectures
LOG_ROUNDS = 6  # logging cost: rounds alternating logged and unlogged (CPU is read in ticks)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


def _setup(n_keys: int, history: int, data_dir: str):
    import numpy as np
    import pandas as pd

    from jobs.flights.transforms import dep_calendar
    from sparkfs import Entity, FeatureGroup, FeatureStore, FeatureView, Field

    fs = FeatureStore({"project": "bench", "data_dir": data_dir, "spark": {
        "master": "local[2]", "conf": {"spark.sql.shuffle.partitions": "4",
                                       "spark.driver.memory": "2g"}}})
    weather = FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
                           [Field("temp", "double"), Field("wind", "double")], online=True)
    fs.apply([weather, dep_calendar, FeatureView("v", features=[
        "weather:temp", "weather:wind", "dep_calendar:hour_of_day"])])
    rng = np.random.default_rng(0)
    keys = [f"A{i:04d}" for i in range(n_keys)]
    n = n_keys * history
    hist = pd.DataFrame({"origin": np.repeat(keys, history),
                         "time_hour": [T0 + dt.timedelta(hours=int(h)) for h in
                                       np.tile(np.arange(history) * 6, n_keys)],
                         "temp": rng.normal(10, 8, n), "wind": rng.gamma(2, 5, n)})
    hist.loc[rng.random(n) < 0.1, "wind"] = None
    fs.ingest("weather", hist, run_id="bench")
    fs.materialize("weather", engine="local")
    spine = pd.DataFrame({"origin": rng.choice(keys, 2000),
                          "ts": [T0 + dt.timedelta(hours=float(h)) for h in
                                 rng.uniform(0, history * 6, 2000)]})
    spine["sched_dep_ts"] = spine["ts"]
    spine["delay"] = rng.normal(5, 10, len(spine))
    ts = fs.create_training_set("train", spine, view="v", timestamp_col="ts", engine="duckdb")
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    data = ts.to_pandas()
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(
        data[["temp", "wind", "hour_of_day"]], data["delay"])
    info = fs.log_model(model, "m", training_set=ts, serialization_format="cloudpickle")
    fs.deploy("d", model="m", version=info.version)
    # the same model and view with logging off: the logging cost is the difference
    fs.deploy("d_unlogged", model="m", version=info.version, sample_rate=0.0)
    return fs, keys, model, info, hist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _service_files(data_dir: str) -> tuple[str, str]:
    """The repo module and config ``sparkfs serve`` is started with."""
    repo = os.path.join(data_dir, "repo.py")
    with open(repo, "w") as f:
        f.write("from jobs.flights.transforms import dep_calendar  # noqa: F401\n")
    conf = os.path.join(data_dir, "conf.yaml")
    with open(conf, "w") as f:
        f.write(f"project: bench\ndata_dir: {data_dir}\n")
    return repo, conf


def _online(fs, keys, n_requests: int, data_dir: str, batch_sizes: list[int]) -> dict:
    import httpx

    from sparkfs.inference.online import model_input

    repo, conf = _service_files(data_dir)
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from sparkfs.cli import main; "
                             "sys.exit(main())", "serve", "--config", conf, "--repo", repo,
                             "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env, cwd=ROOT)
    out: dict = {"load_avg_before": _load_avg()}
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.time() + 120
        while True:
            try:
                client.get("/health")
                break
            except httpx.HTTPError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("sparkfs serve did not start") from None
                time.sleep(0.2)
        now = dt.datetime.now(dt.UTC).isoformat()
        pyfunc = fs.inference.model(fs.get_deployment("d"))
        for b in batch_sizes:
            rows = [{"origin": keys[i % len(keys)]} for i in range(b)]
            request = {"sched_dep_ts": [now] * b}
            body = {"entity_rows": rows, "request_data": request}
            for _ in range(20):  # warm-up: model load, plan cache, connections
                client.post("/deployments/d/predict", json=body).raise_for_status()
                fs.predict("d", rows, request_data=request)
            service, in_process, floor = [], [], []
            vector = fs.get_online_features(view="v", entity_rows=rows,
                                            request_data=request).to_dict()
            frame = model_input(vector, [("temp", "double"), ("wind", "double"),
                                         ("hour_of_day", "int")])
            for _ in range(n_requests):
                t = time.perf_counter()
                client.post("/deployments/d/predict", json=body)
                service.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                fs.predict("d", rows, request_data=request)
                in_process.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                fs.get_online_features(view="v", entity_rows=rows, request_data=request)
                pyfunc.predict(frame)
                floor.append((time.perf_counter() - t) * 1000)
            out[f"batch_{b}"] = {
                "service_ms": {"p50": pct(service, 0.5), "p99": pct(service, 0.99)},
                "in_process_ms": {"p50": pct(in_process, 0.5), "p99": pct(in_process, 0.99)},
                "floor_ms": {"p50": pct(floor, 0.5), "p99": pct(floor, 0.99)},
                "service_over_floor": {"p50": round(pct(service, 0.5) / pct(floor, 0.5), 2),
                                       "p99": round(pct(service, 0.99) / pct(floor, 0.99), 2)},
            }
        fs.inference.flush()  # the in-process predictions' rows, before counting the table
        out["logging_cost"] = _logging_cost(client, proc.pid, fs.get_deployment("d").log_path,
                                            keys, batch_sizes, n_requests)
        metrics = client.get("/metrics").text
        out["service_log_lines"] = [ln for ln in metrics.splitlines()
                                    if ln.startswith("sparkfs_evaluation_log")][:6]
        client.close()
        out["load_avg_after"] = _load_avg()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    return out


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _log_counts(client) -> dict:
    """``{(deployment, outcome): rows}`` from the service's ``/metrics``."""
    import re

    out = {}
    for m in re.finditer(r'sparkfs_evaluation_log_rows_total\{deployment="([^"]+)",'
                         r'outcome="([^"]+)"\} ([0-9.e+]+)', client.get("/metrics").text):
        out[(m.group(1), m.group(2))] = int(float(m.group(3)))
    return out


def _log_rows(path: str) -> int:
    """Rows committed to the evaluation table at ``path`` (read by the bench from Delta's
    add actions: no work for the server)."""
    from deltalake import DeltaTable

    adds = DeltaTable(path).get_add_actions(flatten=True)
    return int(sum(adds.column("num_records").to_pylist())) if adds.num_rows else 0


def _committed(path: str, want: int, seconds: float = 60) -> int:
    """Wait until the table at ``path`` holds ``want`` rows (or ``seconds`` pass)."""
    deadline = time.time() + seconds
    rows = _log_rows(path)
    while rows < want and time.time() < deadline:
        time.sleep(0.05)
        rows = _log_rows(path)
    return rows


def _settled_rows(path: str, quiet_s: float = 2.5, seconds: float = 60) -> int:
    """``_log_rows`` once no writer has appended for ``quiet_s`` (longer than the
    writer's ``log_flush_s``)."""
    last, since = _log_rows(path), time.time()
    deadline = since + seconds
    while time.time() < deadline and time.time() - since < quiet_s:
        time.sleep(0.25)
        now = _log_rows(path)
        if now != last:
            last, since = now, time.time()
    return last


def _logging_cost(client, pid: int, log_path: str, keys, batch_sizes: list[int],
                  n_requests: int) -> dict:
    """Server CPU per request with evaluation logging on (deployment ``d``) and off
    (``d_unlogged``: the same model and view, ``sample_rate=0``), one client, in
    alternating rounds. The CPU of a logged round is read only once all its rows are
    committed to the evaluation table (the bench counts them in Delta, costing the server
    nothing), so the logged side pays for its Delta appends; both sides then idle the same
    0.2 s. Also: rows sent vs rows the log committed (counted in the table), dropped and
    failed (goal: none lost)."""
    now = dt.datetime.now(dt.UTC).isoformat()
    out: dict = {"load_avg_before": _load_avg()}
    rows_before = _settled_rows(log_path)  # earlier sections' rows committed first
    before = _log_counts(client)
    sent = 0
    per_round = max(20, n_requests // 2)
    for b in batch_sizes:
        body = {"entity_rows": [{"origin": keys[i % len(keys)]} for i in range(b)],
                "request_data": {"sched_dep_ts": [now] * b}}
        cpu = {"d": 0.0, "d_unlogged": 0.0}
        count = {"d": 0, "d_unlogged": 0}
        for _ in range(LOG_ROUNDS):
            for name in ("d_unlogged", "d"):
                start = _cpu_s(pid)
                for _ in range(per_round):
                    client.post(f"/deployments/{name}/predict", json=body).raise_for_status()
                count[name] += per_round
                if name == "d":
                    sent += b * per_round
                    _committed(log_path, rows_before + sent)
                time.sleep(0.2)
                cpu[name] += _cpu_s(pid) - start
        on = cpu["d"] / count["d"] * 1000
        off = cpu["d_unlogged"] / count["d_unlogged"] * 1000
        out[f"batch_{b}"] = {"server_cpu_ms_per_request_logged": round(on, 3),
                             "server_cpu_ms_per_request_unlogged": round(off, 3),
                             "logged_over_unlogged": round(on / off, 3) if off else None}
    after = _log_counts(client)
    diff = {o: after.get(("d", o), 0) - before.get(("d", o), 0)
            for o in ("logged", "dropped", "failed")}
    in_table = _log_rows(log_path) - rows_before
    out["rows"] = {"sent": sent, **diff, "in_table": in_table, "lost": sent - in_table}
    out["load_avg_after"] = _load_avg()
    return out


def _wait(client, path: str, proc, what: str, seconds: float = 180) -> None:
    import httpx

    deadline = time.time() + seconds
    while True:
        try:
            if client.get(path).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            tail = ""
            if getattr(proc, "log_path", None):
                with open(proc.log_path, errors="replace") as f:
                    tail = ": " + " | ".join(f.read().splitlines()[-5:])
            raise RuntimeError(f"{what} did not start{tail}")
        time.sleep(0.3)


def _serve(args: list[str], cwd: str, env: dict | None = None, log: str | None = None):
    """Start a server in its own session, its output to ``log`` (or nowhere)."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.log_path = log  # type: ignore[attr-defined]
    return proc


def _stop(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _load(post, pool: list, bodies: list, n: int, clients: int) -> tuple[list[float], float]:
    """``clients`` threads each sending ``n`` requests, thread ``i`` on its own persistent
    client ``pool[i]`` (connections opened and warmed before): the latencies (ms) and the
    wall seconds."""
    import threading

    lat: list[float] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        mine = []
        c = pool[i]
        for j in range(n):
            t = time.perf_counter()
            post(c, bodies[(i + j) % len(bodies)])
            mine.append((time.perf_counter() - t) * 1000)
        with lock:
            lat.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, time.perf_counter() - started


def _summary(lat: list[float], secs: float) -> dict:
    return {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
            "requests_per_s": round(len(lat) / secs, 1) if secs else None}


def _load_avg() -> list[float]:
    """The machine's 1/5/15-minute load averages (the bench shares its cores)."""
    return [round(x, 2) for x in os.getloadavg()]


def _two_hop(fs, keys, info, hist, n_requests: int, data_dir: str, batch_sizes: list[int],
             feast_python: str | None, clients: int) -> dict:
    """sparkfs's one hop (``POST /deployments/d/predict``) against the two hops users
    build today: Feast 0.67's feature server (lookup + on-demand ``hour_of_day``), then
    ``mlflow models serve`` (the model), called in sequence by the same client."""
    import httpx

    if not feast_python:
        return {"unavailable": "no --feast-python (feast 0.67 cannot be installed beside "
                               "sparkfs: it pins prometheus_client<0.25)"}
    repo, parquet = os.path.join(data_dir, "feast"), os.path.join(data_dir, "weather.parquet")
    hist.to_parquet(parquet)
    subprocess.run([feast_python, os.path.join(HERE, "inference_feast.py"), repo, parquet],
                   check=True, capture_output=True, timeout=600)
    feast_port, mlflow_port, sparkfs_port = _free_port(), _free_port(), _free_port()
    feast = _serve([os.path.join(os.path.dirname(feast_python), "feast"), "serve", "-h",
                    "127.0.0.1", "-p", str(feast_port), "--workers", "1"], repo,
                   log=os.path.join(data_dir, "feast.log"))
    model = _serve([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                    fs.models.download_uri(info), "--env-manager", "local", "-h", "127.0.0.1",
                    "-p", str(mlflow_port), "-w", "1"], data_dir,
                   # it execs ``uvicorn``: this interpreter's scripts first on the PATH
                   env=dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
                            + os.environ.get("PATH", "")),
                   log=os.path.join(data_dir, "mlflow.log"))
    _, conf = _service_files(data_dir)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    service = _serve([sys.executable, "-c", "import sys; from sparkfs.cli import main; "
                      "sys.exit(main())", "serve", "--config", conf, "--repo",
                      os.path.join(data_dir, "repo.py"), "--port", str(sparkfs_port),
                      "--workers", "1"], ROOT, env, log=os.path.join(data_dir, "sparkfs.log"))
    out: dict = {"feast": "0.67 feature server (feast serve, 1 worker, SQLite online store)",
                 "model_server": "mlflow models serve (1 worker)",
                 "method": f"{ROUNDS} rounds alternating sparkfs and the two hops (which goes "
                           "first alternates too); each client thread keeps one persistent "
                           "HTTP client for both architectures, warmed before measuring",
                 "load_avg_before": _load_avg()}
    pool = [httpx.Client(timeout=60) for _ in range(max(1, clients))]
    try:
        base = pool[0]
        _wait(base, f"http://127.0.0.1:{feast_port}/health", feast, "feast serve")
        _wait(base, f"http://127.0.0.1:{mlflow_port}/ping", model, "mlflow models serve")
        _wait(base, f"http://127.0.0.1:{sparkfs_port}/health", service, "sparkfs serve")

        def two_hop(c, body: tuple) -> None:
            r = c.post(f"http://127.0.0.1:{feast_port}/get-online-features", json=body[0])
            r.raise_for_status()
            got = r.json()
            values = {n: res["values"] for n, res in
                      zip(got["metadata"]["feature_names"], got["results"])}
            split = {"columns": ["temp", "wind", "hour_of_day"],
                     "data": [list(x) for x in zip(values["temp"], values["wind"],
                                                   values["hour_of_day"])]}
            c.post(f"http://127.0.0.1:{mlflow_port}/invocations",
                   json={"dataframe_split": split}).raise_for_status()

        def one_hop(c, body: tuple) -> None:
            c.post(f"http://127.0.0.1:{sparkfs_port}/deployments/d/predict",
                   json=body[1]).raise_for_status()

        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        for b in batch_sizes:
            bodies = []
            for k in range(8):
                rows = [keys[(k * b + i) % len(keys)] for i in range(b)]
                bodies.append((
                    {"features": ["weather:temp", "weather:wind", "dep_calendar:hour_of_day"],
                     "entities": {"origin": rows, "sched_dep_epoch": [int(now.timestamp())] * b}},
                    {"entity_rows": [{"origin": o} for o in rows],
                     "request_data": {"sched_dep_ts": [now.isoformat()] * b}}))
            for fn in (two_hop, one_hop):  # warm-up: every pooled client's connections too
                _load(fn, pool, bodies, 3, len(pool))
            res: dict = {}
            for n_clients in (1, clients):
                n = max(2, n_requests // n_clients // ROUNDS)  # per round and client
                lat: dict = {"one": [], "two": []}
                secs = {"one": 0.0, "two": 0.0}
                for r in range(ROUNDS):
                    order = [("one", one_hop), ("two", two_hop)]
                    for side, fn in (order if r % 2 == 0 else order[::-1]):
                        got, s = _load(fn, pool, bodies, n, n_clients)
                        lat[side] += got
                        secs[side] += s
                r = res[f"clients_{n_clients}"] = {
                    "sparkfs_one_hop_ms": _summary(lat["one"], secs["one"]),
                    "feast_mlflow_two_hop_ms": _summary(lat["two"], secs["two"])}
                r["sparkfs_p99_over_two_hop_p99"] = round(
                    r["sparkfs_one_hop_ms"]["p99"] / r["feast_mlflow_two_hop_ms"]["p99"], 2)
            out[f"batch_{b}"] = res
    finally:
        for c in pool:
            c.close()
        for proc in (feast, model, service):
            _stop(proc)
    out["load_avg_after"] = _load_avg()
    return out


def _batch(fs, keys, info, n_spine: int, history: int) -> dict:
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rng = np.random.default_rng(1)
    spine = pd.DataFrame({"origin": rng.choice(keys, n_spine),
                          "sched_dep_ts": [T0 + dt.timedelta(hours=float(h)) for h in
                                           rng.uniform(0, history * 6, n_spine)]})
    spark = fs.spark
    out: dict = {}

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    def sparkfs_nolog():
        fs.score_batch("d", spine, timestamp_col="sched_dep_ts", log=False, ordered=False) \
            .write.format("noop").mode("overwrite").save()

    def sparkfs_log():
        fs.score_batch("d", spine, timestamp_col="sched_dep_ts", run_id=f"b{time.time_ns()}",
                       ordered=False)

    uri = fs.models.download_uri(info)
    udf = mlflow.pyfunc.spark_udf(spark, uri, result_type="double", env_manager="local")
    history_df = fs.offline.read_spark(spark, fs.get_feature_group("weather"))

    def peer():
        s = spark.createDataFrame(spine).withColumn("_id", F.monotonically_increasing_id())
        h = history_df.select(F.col("origin").alias("h_origin"), "time_hour", "temp", "wind")
        j = s.join(h, (s.origin == h.h_origin) & (h.time_hour <= s.sched_dep_ts), "left")
        w = Window.partitionBy("_id").orderBy(F.col("time_hour").desc_nulls_last())
        latest = (j.withColumn("_rn", F.row_number().over(w)).where("_rn = 1")
                  .withColumn("hour_of_day", F.hour(F.from_utc_timestamp(
                      "sched_dep_ts", "America/New_York")).cast("int")))
        latest.withColumn("prediction", udf(F.struct("temp", "wind", "hour_of_day"))) \
            .write.format("noop").mode("overwrite").save()

    for fn in (sparkfs_nolog, peer):
        fn()  # warm-up (JIT, model load in the Python workers)
    runs = {"sparkfs_score_batch": sparkfs_nolog, "peer_pit_join_spark_udf": peer,
            "sparkfs_score_batch_logged": sparkfs_log}
    for name, fn in runs.items():
        secs = min(timed(fn) for _ in range(2))
        out[name] = {"seconds": round(secs, 3), "rows_per_s": round(n_spine / secs)}
    out["sparkfs_over_peer_rows_per_s"] = round(
        out["sparkfs_score_batch"]["rows_per_s"] / out["peer_pit_join_spark_udf"]["rows_per_s"], 2)
    out["spine_rows"] = n_spine
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--spine", type=int, default=20_000)
    p.add_argument("--keys", type=int, default=200)
    p.add_argument("--history", type=int, default=50)
    p.add_argument("--batch-sizes", default="1,100")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--sections", default="online,two_hop,batch",
                   help="which parts to run (comma-separated): a loaded host cannot run "
                        "all three in two minutes")
    p.add_argument("--feast-python", default=os.environ.get("SPARKFS_BENCH_FEAST_PYTHON"),
                   help="a Python with feast==0.67 installed (it cannot share sparkfs's "
                        "environment: it pins prometheus_client<0.25)")
    args = p.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sparkfs-bench-inference-") as tmp:
        fs, keys, _, info, hist = _setup(args.keys, args.history, tmp)
        try:
            sizes = [int(b) for b in args.batch_sizes.split(",")]
            sections = set(args.sections.split(","))
            online: dict = {}
            batch: dict = {}
            if "online" in sections:
                online = _online(fs, keys, args.requests, tmp, sizes)
            if "two_hop" in sections:
                online["two_hop"] = _two_hop(fs, keys, info, hist, args.requests, tmp, sizes,
                                             args.feast_python, args.clients)
            if "batch" in sections:
                batch = _batch(fs, keys, info, args.spine, args.history)
        finally:
            fs.close()
    print(json.dumps({"benchmark": "inference", "online": online, "batch": batch,
                      "seconds": round(time.perf_counter() - started, 1),
                      "note": "ratios only: absolute times depend on the host and its load"},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
