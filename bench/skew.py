"""Skew-report benchmark: ``fs.skew_report`` over N logged requests x F features against
the floor, a plain point-in-time join of the same spine (``fs.get_historical_features``,
as known at the served time, same engine).

Setup (synthetic, in a temporary data directory): one online group with ``--features``
double features (one value in ten missing) over ``--keys`` keys and ``--history`` readings
each, materialized; a view of all of them, a training set, a scikit-learn model that
imputes missing values, logged to MLflow and deployed. The evaluation log gets
``--requests`` online requests written directly with ``sparkfs.inference.evaluation``
(what the online path logs: the values, statuses and event times the online store
returned for each key, read once with ``fs.get_online_features``), so the report is
clean (every feature matches) and the benchmark measures the report, not serving.

Measured per engine (``duckdb``, ``spark``), the same run, best of ``--repeat``:
``skew_report`` (log read, spine, the recompute with its fused comparison and causes)
and the floor (the recompute's PIT join alone, ``as_known_at=True``, on the same engine,
over the same spine: one row per logged request, its key, the served time and the row
number, as an Arrow table like the report's own, fully materialized to Arrow; the floor
asks for no event times, so it is the cheaper join).
Reported: seconds and the ratio report/floor (goal: within 1.5x). With ``--profile``,
one more report per engine runs under cProfile and ``profiled_phases_s`` gives the
cumulative seconds of its phases (``PHASES``; cProfile adds overhead).

    .venv/bin/python bench/skew.py [--requests 5000] [--features 20] [--keys 500]
    .venv/bin/python bench/skew.py --full [--repeat 2] [--profile]   # the issue's size: 1M x 20

Prints one JSON document (progress on stderr). The defaults keep a run under two minutes
on 2 busy cores, where setup (Spark start, ingest, materialize, MLflow) takes most of it.
The log is written with Arrow ``take`` over the per-key online answers, so ``--full``
needs no per-request Python objects.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def _setup(data_dir: str, n_features: int, n_keys: int, history: int):
    import numpy as np
    import pandas as pd

    from sparkfs import Entity, FeatureGroup, FeatureStore, FeatureView, Field

    fs = FeatureStore({"project": "bench", "data_dir": data_dir, "spark": {
        "master": "local[2]", "conf": {"spark.sql.shuffle.partitions": "4",
                                       "spark.driver.memory": "2g"}}})
    names = [f"f{i:02d}" for i in range(n_features)]
    fs.apply([FeatureGroup("g", [Entity("k", join_keys=["k"])], "t",
                           [Field(n, "double") for n in names], online=True),
              FeatureView("v", features=[f"g:{n}" for n in names])])
    rng = np.random.default_rng(1)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    keys = [f"K{i:05d}" for i in range(n_keys)]
    hist = pd.DataFrame({"k": np.repeat(keys, history),
                         "t": np.tile([now - pd.Timedelta(minutes=history - j)
                                       for j in range(history)], n_keys)})
    for n in names:
        v = rng.normal(0, 1, len(hist))
        v[rng.random(len(hist)) < 0.1] = np.nan
        hist[n] = v
    fs.ingest("g", hist, run_id="h1", materialize=False)
    fs.materialize("g", engine="local")  # no Spark until the spark engine is measured
    spine = pd.DataFrame({"k": keys, "ts": [now] * n_keys, "y": rng.normal(0, 1, n_keys)})
    ts = fs.create_training_set("train", spine, view="v", timestamp_col="ts", engine="duckdb")
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    data = ts.to_pandas()
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(data[names], data["y"])
    fs.log_model(model, "m", training_set="train", skops_trusted_types=["numpy.dtype"])
    fs.deploy("d", model="m")
    return fs, keys


def _log(fs, keys: list[str], n_requests: int) -> dt.datetime:
    """Write ``n_requests`` online log rows (what ``fs.predict`` logs) in one commit: the
    online answer per key, read once, taken (Arrow ``take``) for the requested keys."""
    import numpy as np
    import pyarrow as pa

    from sparkfs.inference.evaluation import append, create_log_table, log_schema

    d = fs.get_deployment("d")
    resp = fs.get_online_features(list(d.binding.features), [{"k": k} for k in keys])
    values, statuses, times = resp.to_dict(), resp.statuses, resp.event_times
    pick = pa.array(np.random.default_rng(2).integers(0, len(keys), n_requests))
    served = dt.datetime.now(dt.UTC)
    schema = log_schema(d.binding)
    per_key: dict[str, list] = {"entity": [json.dumps({"k": k}) for k in keys]}
    for col in d.binding.column_names:
        per_key[col] = values[col]
        per_key[f"{col}__status"] = statuses[col]
        per_key[f"{col}__event_time"] = times[col]
    constant: dict[str, object] = {
        "row": 0, "time": served, "deployment": "d", "deployment_revision": d.revision,
        "scoring_path": "online", "model_name": d.model_name, "model_version": d.model_version,
        "view": d.view, "training_set": d.training_set, "request_data": None,
        "prediction": 0.0, "prediction_json": "0.0", "latency_ms": 1.0, "error": None,
        "data_versions": None}
    arrays = []
    for f in schema:
        if f.name == "request_id":
            arrays.append(pa.array([f"r{i:08d}" for i in range(n_requests)], f.type))
        elif f.name in per_key:
            arrays.append(pa.array(per_key[f.name], f.type).take(pick))
        elif constant[f.name] is None:
            arrays.append(pa.nulls(n_requests, f.type))
        else:
            arrays.append(pa.repeat(pa.scalar(constant[f.name], f.type), n_requests))
    create_log_table(d.log_path, d.binding)
    append(d.log_path, pa.Table.from_arrays(arrays, schema=schema))
    return served


def _floor_spine(fs, served: dt.datetime):
    """The floor's spine, as the report builds its own: Arrow, one row per logged request
    in log order (its key, the served time, the row number), so that neither side pays a
    pandas conversion the other does not."""
    import numpy as np
    import pyarrow as pa

    from sparkfs.monitoring.skew import _AT, _ROW, read_requests

    d = fs.get_deployment("d")
    log = read_requests(d.log_path, None, None, {}, columns=["entity"])
    keys = [json.loads(e)["k"] for e in log.column("entity").to_pylist()]
    spine = pa.table({"k": pa.array(keys, pa.string()),
                      _AT: pa.repeat(pa.scalar(served, pa.timestamp("us", "UTC")), len(keys)),
                      _ROW: pa.array(np.arange(len(keys), dtype=np.int64))})
    return spine, _AT


#: The report's phases, by the function that runs each (cumulative seconds in ``--profile``):
#: the first read of the log (the spine's columns), the spine, the comparison (with the read
#: of statuses and event times of skewed columns); ``pit_join`` is the rest of
#: ``_fused_pass``: the join, run to Arrow (Spark executes it there), and the wait for the
#: read of the served values, which runs on a second thread during the join (cProfile does
#: not follow that thread).
PHASES = {"read_log": "__init__", "spine": "_spine_arrow", "compare": "_local_pass",
          "fused": "_fused_pass"}


def _phases(fn) -> dict:
    """Run ``fn`` once under cProfile; the cumulative seconds of each of ``PHASES`` (the
    functions of ``sparkfs/monitoring/skew.py``), the join and the total."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    fn()
    prof.disable()
    total = time.perf_counter() - t
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    out = {}
    for phase, func in PHASES.items():
        secs = [v[3] for (file, _, name), v in stats.items()
                if name == func and file.endswith(os.path.join("monitoring", "skew.py"))]
        out[phase] = round(sum(secs), 3)
    out["pit_join"] = round(out.pop("fused") - out["spine"] - out["compare"], 3)
    out["total"] = round(total, 3)
    return out


def _best(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return round(min(out), 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=5_000)
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--keys", type=int, default=500)
    p.add_argument("--history", type=int, default=10)
    p.add_argument("--engines", default="duckdb,spark")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--profile", action="store_true",
                   help="add one more report per engine run under cProfile: seconds per phase")
    p.add_argument("--full", action="store_true",
                   help="the issue's size: 1,000,000 logged requests x 20 features")
    args = p.parse_args(argv)
    if args.full:
        args.requests, args.features = 1_000_000, 20
    engines = [e for e in args.engines.split(",") if e]
    with tempfile.TemporaryDirectory(prefix="sparkfs-bench-skew-") as tmp:
        t0 = time.perf_counter()
        fs, keys = _setup(os.path.join(tmp, "data"), args.features, args.keys, args.history)
        print(f"setup {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        served = _log(fs, keys, args.requests)
        print(f"logged {args.requests} requests {time.perf_counter() - t0:.1f}s",
              file=sys.stderr)
        spine, at = _floor_spine(fs, served)
        features = list(fs.get_deployment("d").binding.features)
        out: dict[str, dict] = {}
        for engine in engines:
            report = fs.skew_report("d", engine=engine)
            if report.requests != args.requests or report.failing():
                raise SystemExit(f"bench setup is wrong: {report}")

            def floor(engine: str = engine) -> None:
                fs.get_historical_features(spine, features, at, engine=engine,
                                           as_known_at=True).to_arrow()

            floor()  # warm-up (Spark: JVM, plans)
            t_report = _best(lambda engine=engine: fs.skew_report("d", engine=engine),
                             args.repeat)
            t_floor = _best(floor, args.repeat)
            out[engine] = {"skew_report_s": t_report, "pit_join_floor_s": t_floor,
                           "ratio_report_over_floor": round(t_report / t_floor, 2)}
            if args.profile:
                out[engine]["profiled_phases_s"] = _phases(
                    lambda engine=engine: fs.skew_report("d", engine=engine))
            print(f"{engine} done {time.perf_counter() - t0:.1f}s: {json.dumps(out[engine])}",
                  file=sys.stderr)
        fs.close()
    print(json.dumps({"benchmark": "skew", "requests": args.requests,
                      "features": args.features, "keys": args.keys,
                      "history_per_key": args.history, "repeat": args.repeat,
                      "engines": out, "goal": "ratio_report_over_floor <= 1.5"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
