"""Inference: a feature view, a model in MLflow, deployed next to its features

A feature view names what the delay model consumes; a training set is built from it,
a model trained and logged to MLflow bound to that training set, then deployed with a
scoring table. The same deployment scores three ways: live flights over HTTP
(``POST /deployments/flight_delay/predict`` on ``sparkfs serve``), a month of 2013
flights in batch on Spark (point-in-time features), and rows appended to its scoring
table (a Structured Streaming query). Every prediction lands in the evaluation log,
read back at the end with the exact feature values and Delta versions behind one.
Runs after the serving section (which replays live weather) and the training section.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import pandas as pd

from jobs.flights import data
from jobs.flights.demo_serving import free_port, wait_for_service
from sparkfs import FeatureView

FEATURES = ["weather:temp", "weather:humid", "weather:wind_speed", "weather:visib",
            "weather:precip", "planes:year_built", "planes:seats",
            "dep_calendar:hour_of_day", "dep_calendar:day_of_week", "weather_risk:weather_risk"]


def _flights() -> pd.DataFrame:
    f = data.flights_frame()
    return f[f["tailnum"].notna()].reset_index(drop=True)


def _train(fs) -> tuple:
    from sklearn.ensemble import HistGradientBoostingRegressor

    f = _flights()
    f = f[f["arr_delay"].notna() & (f["sched_dep_ts"].dt.month <= 11)]
    spine = f.sample(40_000, random_state=3)[["origin", "tailnum", "sched_dep_ts", "distance",
                                               "arr_delay"]].reset_index(drop=True)
    t = time.perf_counter()
    ts = fs.create_training_set("flight_delay_minutes", spine, view="flight_delay",
                                timestamp_col="sched_dep_ts", engine="duckdb",
                                description="arrival delay (minutes) at scheduled departure")
    df = ts.to_pandas()
    cols = [c for c in df.columns if c not in spine.columns and not c.startswith("_")]
    model = HistGradientBoostingRegressor(max_iter=40, random_state=0)  # NaN-aware
    model.fit(df[cols].astype("float64"), df["arr_delay"])
    print(f"training set {ts.name!r} v{ts.version} from view flight_delay@1: {len(df):,} flights "
          f"x {len(cols)} features ({time.perf_counter() - t:.1f}s incl. training); manifest "
          f"pins {dict((g['label'], g['delta_version']) for g in ts.manifest['groups'])}")
    return ts, model


def _predict_over_http(ctx: dict) -> None:
    import httpx

    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="sparkfs-serve-", suffix=".log", delete=False)
    config = ctx.get("config_path", "conf/local.yaml")
    cmd = ["serve", "--config", config, "--repo", "jobs/flights/features.py", "--port", str(port),
           "--workers", "1"]
    code = "import sys; from sparkfs.cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, *cmd], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    started = time.perf_counter()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            wait_for_service(client, proc, log, started)
            now = pd.Timestamp.now(tz="UTC").floor("min")
            live = _flights().groupby("origin").head(1)
            body = {"entity_rows": [{"origin": o, "tailnum": t}
                                    for o, t in zip(live["origin"], live["tailnum"])],
                    "request_data": {"sched_dep_ts": [now.isoformat()] * len(live),
                                     "distance": live["distance"].astype(float).tolist()}}
            lat = []
            for _ in range(30):
                t = time.perf_counter()
                r = client.post("/deployments/flight_delay/predict", json=body)
                lat.append((time.perf_counter() - t) * 1000)
            out = r.json()
            print(f"$ sparkfs {' '.join(cmd[:1])} ...; POST /deployments/flight_delay/predict, "
                  f"{len(live)} live flights departing now -> HTTP {r.status_code}, model "
                  f"{out['model']['name']}@{out['model']['version']}, request {out['request_id']}")
            for o, t, p in zip(live["origin"], live["tailnum"], out["predictions"]):
                print(f"  {o} {t:>7}: predicted arrival delay {p:6.1f} min")
            lat.sort()
            print(f"latency over 30 requests: p50 {statistics.median(lat):.1f} ms, "
                  f"max {lat[-1]:.1f} ms (lookup + on-demand transforms + model + logging)")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the service flushes its log rows on SIGTERM
        proc.wait(60)


def run(fs, ctx: dict) -> None:
    view = FeatureView("flight_delay", features=FEATURES, owner="demo",
                       description="what the arrival-delay model consumes")
    fs.apply([view])
    ts, model = _train(fs)
    info = fs.log_model(model, "delay_minutes", training_set=ts,
                        serialization_format="cloudpickle")
    print(f"logged model {info.name}@{info.version} to MLflow: view {info.binding.view}, "
          f"training set {info.training_set}, signature "
          f"{[c.name for c in info.signature_inputs.inputs][:4]}...")
    d = fs.deploy("flight_delay", model="delay_minutes", version=info.version, table=True)
    print(f"deployed {d.name!r} rev {d.revision} -> {d.model_label}; scoring table "
          f"{os.path.relpath(d.request_table)}")

    _predict_over_http(ctx)

    december = _flights()
    december = december[december["sched_dep_ts"].dt.month == 12][
        ["flight_id", "origin", "tailnum", "sched_dep_ts", "distance"]].reset_index(drop=True)
    t = time.perf_counter()
    scored = fs.score_batch("flight_delay", december, timestamp_col="sched_dep_ts",
                            run_id="december-2013")
    n = scored.count()
    worst = scored.where("prediction_error IS NULL").orderBy("prediction", ascending=False) \
        .limit(3).toPandas()
    print(f"batch on Spark: {n:,} December flights scored with point-in-time features in "
          f"{time.perf_counter() - t:.1f}s (model on the executors, each logged once); worst:")
    print(worst[["flight_id", "origin", "sched_dep_ts", "temp", "visib", "prediction"]]
          .round(2).to_string(index=False))

    rows = december.sample(5, random_state=1)
    requests = pd.DataFrame({"request_id": [f"req-{i}" for i in rows["flight_id"]],
                             "origin": rows["origin"], "tailnum": rows["tailnum"],
                             "request_time": rows["sched_dep_ts"],
                             "sched_dep_ts": rows["sched_dep_ts"],
                             "distance": rows["distance"].astype(float)})
    requests.loc[requests.index[-1], "origin"] = None  # a bad row: reported, not lost
    version = fs.append_requests("flight_delay", requests)
    t = time.perf_counter()
    fs.score_table("flight_delay", once=True)
    log = fs.read_log("flight_delay")
    table = log[log.scoring_path == "table"]
    print(f"scoring table: 5 rows appended (Delta version {version}); `sparkfs score --follow "
          f"flight_delay --once` scored them in {time.perf_counter() - t:.1f}s:")
    print(table[["request_id", "entity", "prediction", "error"]].round(2)
          .to_string(index=False, max_colwidth=60))

    counts = log.groupby("scoring_path").size().to_dict()
    one = table[table.error.isna()].iloc[0]
    print(f"evaluation log: {counts} predictions; one of them in full:")
    shown = {"request_id": one.request_id, "model": f"{one.model_name}@{one.model_version}",
             "view": one["view"], "training_set": one["training_set"],
             "features": {c: (None if pd.isna(one[c]) else round(float(one[c]), 3),
                              one[f"{c}__status"]) for c in info.binding.column_names[:5]},
             "prediction": round(float(one.prediction), 2),
             "data_versions": json.loads(one.data_versions)}
    print(json.dumps(shown, indent=1, default=str))
    ctx["inference"] = {"batch_rows": n, "table_rows": len(table), "log": counts}
