"""Transforms of the flights feature repo. Plain pandas; importing this module does not
import pyspark, so the online service can import it.

- ``dewpoint_spread``: a derived feature of the ``weather`` group (computed at ingest).
- ``dep_calendar``: on-demand; hour of day and day of week of the scheduled departure, in
  New York local time (request data ``sched_dep_ts``).
- ``weather_risk``: on-demand; a score over the flight's distance (request data) and the
  looked-up weather at its origin.
- ``route_key``: on-demand; ``"JFK-LAX"`` from request data ``origin``/``dest``.

>>> import pandas as pd
>>> dep_calendar.row(sched_dep_ts=pd.Timestamp("2013-01-01 10:15", tz="UTC"))
{'hour_of_day': 5, 'day_of_week': 1}
>>> route_key.row(origin=" jfk", dest="")  is None
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparkfs import transform

NY = "America/New_York"


@transform(output="double", description="Temperature minus dew point, F (low = humid, fog risk)")
def dewpoint_spread(temp: pd.Series, dewp: pd.Series) -> pd.Series:
    return temp - dewp


@transform(outputs={"hour_of_day": "int", "day_of_week": "int"}, on_demand=True,
           inputs={"sched_dep_ts": "timestamp"},
           description="Local (New York) hour and weekday (0 = Monday) of the scheduled departure")
def dep_calendar(sched_dep_ts: pd.Series) -> pd.DataFrame:
    local = sched_dep_ts.dt.tz_convert(NY)
    return pd.DataFrame({"hour_of_day": local.dt.hour, "day_of_week": local.dt.dayofweek})


def _clip01(x: pd.Series) -> np.ndarray:
    return np.clip(x.to_numpy(dtype="float64", na_value=np.nan), 0.0, 1.0)


@transform(output="double", on_demand=True, inputs={"distance": "double"},
           features={"wind_speed": "weather:wind_speed", "visib": "weather:visib",
                     "precip": "weather:precip"},
           description="0..1 weather risk at the origin, weighted up for short hops")
def weather_risk(distance: pd.Series, wind_speed: pd.Series, visib: pd.Series,
                 precip: pd.Series) -> pd.Series:
    wind = _clip01(wind_speed.fillna(0.0) / 40.0)
    fog = _clip01((10.0 - visib.fillna(10.0)) / 10.0)
    rain = _clip01(precip.fillna(0.0) / 0.5)
    # short flights spend a larger share of their time in departure weather
    hops = np.log1p(np.maximum(distance.to_numpy(dtype="float64", na_value=np.nan), 0.0))
    weight = 1.0 / (1.0 + hops / np.log1p(5000.0))
    return pd.Series(np.clip((0.4 * wind + 0.4 * fog + 0.2 * rain) * 2.0 * weight, 0.0, 1.0),
                     index=distance.index)


@transform(output="string", on_demand=True, inputs={"origin": "string", "dest": "string"},
           description="ORIGIN-DEST airport pair; null when either end is missing or blank")
def route_key(origin: pd.Series, dest: pd.Series) -> pd.Series:
    o = origin.str.strip().str.upper()
    d = dest.str.strip().str.upper()
    both = o.fillna("").ne("") & d.fillna("").ne("")
    return (o + "-" + d).where(both, None)


ON_DEMAND = [dep_calendar, weather_risk, route_key]
