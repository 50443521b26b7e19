"""A deployment to test the serving path against, shared by the serving tests: online
group ``weather`` (``temp`` at JFK 30.0 and LGA 28.0, an hour before ``now``, materialized),
training set ``t`` on it, model ``m`` (SimpleImputer + LinearRegression, logged
``versions`` times) and deployment ``d`` serving version 1. Needs no Spark."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from sparkfs import Entity, FeatureGroup, Field


def deploy_weather_model(fs, now: dt.datetime, versions: int = 1) -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    fs.apply([FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
                           [Field("temp", "double")], online=True)])
    fs.ingest("weather", pd.DataFrame({"origin": ["JFK", "LGA"], "temp": [30.0, 28.0],
                                       "time_hour": [now - dt.timedelta(hours=1)] * 2}),
              run_id="w1", materialize=False)
    fs.materialize("weather", engine="local")
    spine = pd.DataFrame({"origin": ["JFK", "LGA", "JFK"], "y": [1.0, 2.0, 4.0],
                          "ts": pd.to_datetime([now] * 3, utc=True)})
    data = fs.create_training_set("t", spine, ["weather:temp"], "ts", engine="duckdb").to_pandas()
    for _ in range(versions):
        model = make_pipeline(SimpleImputer(), LinearRegression()).fit(data[["temp"]], data["y"])
        fs.log_model(model, "m", training_set="t", serialization_format="cloudpickle")
    fs.deploy("d", model="m", version=1)
