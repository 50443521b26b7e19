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
    local = sched_dep_ts.array.tz_convert(NY)  # the DatetimeArray: fields without a Series each
    return pd.DataFrame({"hour_of_day": local.hour, "day_of_week": local.dayofweek},
                        index=sched_dep_ts.index, copy=False)


def _values(x: pd.Series, fill: float = np.nan) -> np.ndarray:
    """The column as float64 numbers, missing values replaced by ``fill``."""
    a = x.to_numpy(dtype="float64", na_value=np.nan)
    return a if fill != fill else np.where(np.isnan(a), fill, a)


def _clip01(a: np.ndarray) -> np.ndarray:
    return np.clip(a, 0.0, 1.0)


@transform(output="double", on_demand=True, inputs={"distance": "double"},
           features={"wind_speed": "weather:wind_speed", "visib": "weather:visib",
                     "precip": "weather:precip"},
           description="0..1 weather risk at the origin, weighted up for short hops")
def weather_risk(distance: pd.Series, wind_speed: pd.Series, visib: pd.Series,
                 precip: pd.Series) -> pd.Series:
    # numpy on the values: the same arithmetic as on Series (which also ignores overflow:
    # 1e308 / 0.5 is inf, clipped to 1), without building a Series per step
    with np.errstate(all="ignore"):
        wind = _clip01(_values(wind_speed, 0.0) / 40.0)
        fog = _clip01((10.0 - _values(visib, 10.0)) / 10.0)
        rain = _clip01(_values(precip, 0.0) / 0.5)
    # short flights spend a larger share of their time in departure weather
    hops = np.log1p(np.maximum(_values(distance), 0.0))
    weight = 1.0 / (1.0 + hops / np.log1p(5000.0))
    return pd.Series(np.clip((0.4 * wind + 0.4 * fog + 0.2 * rain) * 2.0 * weight, 0.0, 1.0),
                     index=distance.index)


@transform(output="string", on_demand=True, inputs={"origin": "string", "dest": "string"},
           description="ORIGIN-DEST airport pair; null when either end is missing or blank")
def route_key(origin: pd.Series, dest: pd.Series) -> pd.Series:
    # str methods on an object column loop in Python anyway; one comprehension is cheaper
    # than a chain of .str calls (each builds a Series). Non-text (None/NaN) -> missing.
    o = [v.strip().upper() if isinstance(v, str) else None for v in origin.tolist()]
    d = [v.strip().upper() if isinstance(v, str) else None for v in dest.tolist()]
    return pd.Series([f"{a}-{b}" if a and b else None for a, b in zip(o, d)],
                     index=origin.index, dtype=object)


ON_DEMAND = [dep_calendar, weather_risk, route_key]
