"""Training sets: point-in-time join, a delay model, reproducible rebuilds

Spine: every 2013 flight with a known arrival delay, at its *scheduled departure* time;
label: arrived more than 15 minutes late. Features: weather at the origin (as of the
departure hour, ttl 2d), plane attributes, and on-demand features computed by the same
transform code the online service runs. Built with the DuckDB engine (all flights) and
cross-checked on a sample with the Spark engine; stored as a reproducible training set,
then rebuilt after a new ingest to show that nothing changed.
"""

from __future__ import annotations

import json
import time

import pandas as pd

from jobs.flights import data

FEATURES = [
    "weather:temp", "weather:dewp", "weather:humid", "weather:wind_speed", "weather:precip",
    "weather:visib", "weather:pressure",
    "planes:year_built", "planes:seats", "planes:engines",
    "dep_calendar:hour_of_day", "dep_calendar:day_of_week", "weather_risk:weather_risk",
]
NUMERIC = ["temp", "dewp", "humid", "wind_speed", "precip", "visib", "pressure", "year_built",
           "seats", "engines", "hour_of_day", "day_of_week", "weather_risk", "distance"]


def spine() -> pd.DataFrame:
    f = data.flights_frame()
    f = f[f["arr_delay"].notna()].copy()
    f["delayed"] = (f["arr_delay"] > 15).astype("int64")
    return f[["flight_id", "origin", "tailnum", "sched_dep_ts", "distance", "delayed"]] \
        .reset_index(drop=True)


def run(fs, ctx: dict) -> None:
    s = spine()
    print(f"spine: {len(s):,} flights with a known arrival; "
          f"{s['delayed'].mean():.1%} arrived >15 min late")

    t = time.perf_counter()
    ts = fs.create_training_set("flight_delays", s, FEATURES, "sched_dep_ts", engine="duckdb",
                                description="arrival delayed > 15 min, features at scheduled departure")
    df = ts.to_pandas()
    print(f"training set {ts.name!r} v{ts.version} (DuckDB engine): {len(df):,} rows x "
          f"{len(df.columns)} columns in {time.perf_counter() - t:.1f}s")
    print(df[["flight_id", "origin", "sched_dep_ts", "temp", "visib", "seats", "hour_of_day",
              "weather_risk", "delayed"]].head(3).to_string(index=False))

    sample = s.sample(2000, random_state=7).reset_index(drop=True)
    t = time.perf_counter()
    by_spark = fs.get_historical_features(sample, FEATURES, "sched_dep_ts", engine="spark")
    by_duck = fs.get_historical_features(sample, FEATURES, "sched_dep_ts", engine="duckdb")
    same = by_spark.to_arrow().equals(by_duck.to_arrow())
    print(f"Spark engine on a 2,000-flight sample: identical to DuckDB = {same} "
          f"({time.perf_counter() - t:.1f}s for both)")

    auc = _train(df)
    print(f"model: gradient boosting, trained Jan-Sep, tested Oct-Dec -> ROC AUC {auc:.3f} "
          "(0.5 = chance)")

    m = ts.manifest
    short = {"engine": m["engine"], "as_known_at": m["as_known_at"],
             "spine": m["spine"], "on_demand": m["on_demand"],
             "groups": [{k: g[k] for k in ("label", "delta_version", "ttl", "transforms")}
                        for g in m["groups"]]}
    print("manifest:", json.dumps(short, indent=1))

    # A late correction arrives: JFK's weather for the first days of 2013 is re-issued.
    w = data.weather_frame()
    fix = w[(w["origin"] == "JFK") & (w["time_hour"] < "2013-01-08")].copy()
    fix["temp"] = fix["temp"] + 5.0
    r = fs.ingest("weather", fix, run_id="weather-2013-01-correction")
    fresh = fs.get_historical_features(s, ["weather:temp"], "sched_dep_ts", engine="duckdb")
    a, b = fresh.to_pandas()["temp"], df["temp"]
    changed = int((~((a == b) | (a.isna() & b.isna()))).sum())
    print(f"new ingest: {r.rows_written} corrected weather rows (Delta version {r.delta_version}); "
          f"a fresh join now differs on {changed:,} rows")
    t = time.perf_counter()
    again = fs.recreate_training_set("flight_delays")
    identical = again.to_arrow().equals(fs.get_training_set("flight_delays").to_arrow())
    print(f"recreate_training_set('flight_delays') pinned to "
          f"{ {g['label']: g['delta_version'] for g in again.manifest['groups']} }: "
          f"identical to the stored data = {identical} ({time.perf_counter() - t:.1f}s)")
    ctx["training_set"] = {"rows": len(df), "auc": auc, "recreate_identical": identical,
                           "engines_identical": same}


def _train(df: pd.DataFrame) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    month = df["sched_dep_ts"].dt.month
    x = df[NUMERIC].astype("float64")
    train, test = month <= 9, month > 9
    model = HistGradientBoostingClassifier(max_iter=60, learning_rate=0.15, random_state=0)
    model.fit(x[train], df.loc[train, "delayed"])
    return float(roc_auc_score(df.loc[test, "delayed"], model.predict_proba(x[test])[:, 1]))
