"""Windowed aggregates: carrier and origin-airport departure delays over 1 and 7 days

Raw departure events (one per flight that left, at its actual departure time) feed two
groups that declare ``Aggregation``s instead of features. A training set computes them
exactly at each prediction time, and the delay model is trained with and without them.
The same values are then served online, finished against the read clock.

The departures from ``STREAM_START`` (2013-12-31 06:00 New York) on are left out of this
batch backfill: the streaming section replays them through Kafka into the same two groups.
"""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd

from jobs.flights import data

AGG_GROUPS = ("carrier_delays", "origin_delays")
LEAD = pd.Timedelta(hours=2)  # predictions are made 2 hours before scheduled departure
#: Departures from here on arrive by stream (demo_streaming), not by this backfill.
STREAM_START = pd.Timestamp("2013-12-31 06:00", tz=data.NY).tz_convert("UTC")


def departures() -> pd.DataFrame:
    f = data.flights_frame()
    f = f[f["dep_ts"].notna()].copy()
    f["delayed"] = f["dep_delay"] > 15
    return f


def spine() -> pd.DataFrame:
    f = data.flights_frame()
    f = f[f["arr_delay"].notna()].copy()
    f["delayed"] = (f["arr_delay"] > 15).astype("int64")
    f["predict_at"] = f["sched_dep_ts"] - LEAD
    return f[["flight_id", "carrier", "origin", "tailnum", "predict_at", "distance", "delayed"]] \
        .reset_index(drop=True)


def run(fs, ctx: dict) -> None:
    deps = departures()
    deps = deps[deps["dep_ts"] < STREAM_START]
    cols = ["flight_id", "dep_ts", "dep_delay", "delayed"]
    for name, key in (("carrier_delays", "carrier"), ("origin_delays", "origin")):
        t = time.perf_counter()
        r = fs.ingest(name, deps[[key] + cols], run_id=f"{name}-departures-2013",
                      materialize=False)
        print(f"ingest {name}: {r.rows_written:,} departure events up to "
              f"{STREAM_START.tz_convert(data.NY):%Y-%m-%d %H:%M} New York (the rest arrive by "
              f"stream) -> Delta version {r.delta_version} ({time.perf_counter() - t:.1f}s)")
    agg_features = [f"{g}:{f.name}" for g in AGG_GROUPS
                    for f in fs.get_feature_group(g).features]
    print("declared aggregates:", ", ".join(r.split(":")[1] for r in agg_features))

    base_features, base_numeric = _base_features(fs)
    s = spine()
    t = time.perf_counter()
    ts = fs.get_historical_features(s, base_features + agg_features, "predict_at",
                                    engine="duckdb")
    df = ts.to_pandas()
    print(f"training set at scheduled departure - 2h: {len(df):,} rows, "
          f"{len(agg_features)} aggregates exact at each row ({time.perf_counter() - t:.1f}s, "
          "DuckDB engine)")
    print(df[["carrier", "origin", "predict_at", "carrier_dep_delay_mean_1d",
              "carrier_departures_1d", "origin_dep_delay_mean_1d", "origin_departures_7d"]]
          .iloc[[1000, 150_000, 300_000]].to_string(index=False))

    sample = s.sample(3000, random_state=11).reset_index(drop=True)
    refs = [r for r in agg_features if r.startswith("carrier_delays")]
    by_spark = fs.get_historical_features(sample, refs, "predict_at", engine="spark").to_pandas()
    by_duck = fs.get_historical_features(sample, refs, "predict_at", engine="duckdb").to_pandas()
    names = [r.split(":")[1] for r in refs]
    diff = (by_spark[names].astype("float64") - by_duck[names].astype("float64")).abs().max().max()
    print(f"Spark engine on a 3,000-row sample: max |Spark - DuckDB| = {diff:.2e}")

    agg_numeric = [r.split(":")[1] for r in agg_features]
    without = _auc(df, base_numeric)
    with_aggs = _auc(df, base_numeric + agg_numeric)
    print(f"delay model (gradient boosting, train Jan-Sep, test Oct-Dec), ROC AUC: "
          f"without aggregates {without:.3f} -> with aggregates {with_aggs:.3f} "
          f"({with_aggs - without:+.3f})")

    _online(fs, deps)
    ctx["aggregations"] = {"auc_without": without, "auc_with": with_aggs,
                           "spark_duckdb_max_abs_diff": float(diff)}


def _base_features(fs) -> tuple[list[str], list[str]]:
    """The training section's weather and plane features when they are ingested."""
    try:
        from jobs.flights.demo_training import FEATURES, NUMERIC

        have = {g.name for g in fs.list_feature_groups()}
        refs = [r for r in FEATURES if r.split(":")[0] in have and ":" in r]
        probe = fs.get_historical_features(spine().head(5), refs, "predict_at", engine="duckdb")
        numeric = [c for c in NUMERIC if c in probe.to_pandas().columns or c == "distance"]
        return refs, numeric
    except Exception as exc:  # the training section's groups are not there: stand alone
        print(f"(training-section features unavailable: {exc}; baseline = distance only)")
        return [], ["distance"]


def _auc(df: pd.DataFrame, columns: list[str]) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    columns = [c for c in columns if df[c].notna().any()]  # groups left empty add nothing
    month = (df["predict_at"] + LEAD).dt.month
    x = df[columns].astype("float64")
    train, test = month <= 9, month > 9
    model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, random_state=0)
    model.fit(x[train], df.loc[train, "delayed"])
    return float(roc_auc_score(df.loc[test, "delayed"], model.predict_proba(x[test])[:, 1]))


def _online(fs, deps: pd.DataFrame) -> None:
    from sparkfs.serving.online import get_online_features

    [r] = fs.materialize("carrier_delays")
    print(f"materialize carrier_delays: {r.keys_written} carriers' event state online "
          f"({r.duration_s:.1f}s)")
    refs = ["carrier_delays:carrier_dep_delay_mean_1d", "carrier_delays:carrier_departures_1d",
            "carrier_delays:carrier_departures_7d"]
    rows = [{"carrier": c} for c in ("UA", "DL", "HA")]
    end = deps["dep_ts"].max().to_pydatetime()
    for label, now in (("at the last departure", end),
                       ("2 days later (1d window emptied)", end + dt.timedelta(days=2)),
                       ("8 days later (all windows emptied)", end + dt.timedelta(days=8))):
        out = get_online_features(fs.catalog, fs.online, refs, rows, now=now).to_dict()
        vals = ", ".join(f"{c['carrier']}: mean_1d={_fmt(out['carrier_dep_delay_mean_1d'][i])} "
                         f"n_1d={out['carrier_departures_1d'][i]} "
                         f"n_7d={out['carrier_departures_7d'][i]}"
                         for i, c in enumerate(rows))
        print(f"online {label} ({now:%Y-%m-%d %H:%M} UTC): {vals}")
    spine_now = pd.DataFrame({"carrier": ["UA", "DL", "HA"], "at": [end] * 3})
    off = fs.get_historical_features(spine_now, refs, "at", engine="duckdb").to_pandas()
    online_now = get_online_features(fs.catalog, fs.online, refs, rows, now=end).to_dict()
    same = all(
        (pd.isna(off[n][i]) and online_now[n][i] is None) or abs(off[n][i] - online_now[n][i]) < 1e-9
        for n in (r.split(":")[1] for r in refs) for i in range(3))
    print(f"online == offline training-set values at the same instant: {same}")


def _fmt(v) -> str:
    return "null" if v is None else f"{v:.1f}"
