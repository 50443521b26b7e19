"""Governance: where a prediction came from, training/serving skew, drift of served traffic

Runs after the inference section (deployment ``flight_delay``, model ``delay_minutes``,
predictions over HTTP in the evaluation log). Shows the model's lineage (``sparkfs lineage``),
one served prediction explained (``sparkfs explain``), a skew report of live traffic
against the same requests recomputed offline (clean: every feature matches), then a
deliberately broken step: new weather for one airport arrives but its materialization is
skipped, the flights are served again, and the skew report flags the lagging weather
features with their cause. Both reports are stored (``sparkfs skew --list``). Last, the
drift of served traffic against the model's training set (``sparkfs monitor-served``).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from jobs.flights import data
from jobs.flights.demo_inference import _flights

LAG_AIRPORT = "JFK"


def _head(text: str, n: int) -> str:
    lines = str(text).splitlines()
    more = f"\n  ... ({len(lines) - n} more lines)" if len(lines) > n else ""
    return "\n".join(lines[:n]) + more


def _serve_live(fs) -> dt.datetime:
    """Score one live flight per airport in process (logged like the HTTP ones)."""
    start = dt.datetime.now(dt.UTC)
    live = _flights().groupby("origin").head(1)
    now = pd.Timestamp.now(tz="UTC").floor("min")
    fs.predict("flight_delay", [{"origin": o, "tailnum": t}
                                for o, t in zip(live["origin"], live["tailnum"])],
               {"sched_dep_ts": [now.isoformat()] * len(live),
                "distance": live["distance"].astype(float).tolist()})
    return start


def run(fs, ctx: dict) -> None:
    from sparkfs.cli.governance import _reports_table

    d = fs.get_deployment("flight_delay")
    print(f"$ sparkfs lineage model:{d.model_label}")
    print(_head(fs.lineage(f"model:{d.model_label}"), 14))

    log = fs.read_log("flight_delay")
    request_id = log[log.scoring_path == "online"].request_id.iloc[0]
    print(f"\n$ sparkfs explain {request_id}")
    print(_head(fs.explain_prediction(request_id), 9))

    start = _serve_live(fs)
    since = start.isoformat(timespec="seconds")
    print(f"\n$ sparkfs skew flight_delay --since {since} --save   # live flights, served now")
    clean = fs.skew_report("flight_delay", start=start, save=True)
    print(clean)

    # the broken step: a newer JFK reading lands in the offline history, not online
    w = data.weather_frame().sort_values("time_hour")
    w = w[w["origin"] == LAG_AIRPORT].tail(1).copy()
    w["time_hour"] = pd.Timestamp(dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
                                  - dt.timedelta(minutes=5))
    w["temp"] = w["temp"] + 4.0
    w["visib"] = w["visib"] / 2
    fs.ingest("weather", w, run_id=f"weather-late-jfk-{w['time_hour'].iloc[0]:%Y%m%d%H%M}",
              materialize=False)  # a run id per minute: an ingest run is written once
    start = _serve_live(fs)
    print(f"\nnew {LAG_AIRPORT} weather ingested, materialization skipped; served again:")
    print(f"$ sparkfs skew flight_delay --since {start.isoformat(timespec='seconds')} --save")
    lagged = fs.skew_report("flight_delay", start=start, save=True)
    print(lagged)
    fs.materialize("weather")  # repaired: online catches up

    print("\n$ sparkfs skew flight_delay --list")
    print(_reports_table(fs.list_skew_reports("flight_delay")))

    print("\n$ sparkfs monitor-served flight_delay   # served traffic vs the training set")
    drift = fs.monitor_served("flight_delay")
    print(_head(drift, 16))
    ctx["governance"] = {"clean_failing": clean.failing(), "lagged_failing": lagged.failing(),
                         "drifted": drift.drifted}
