"""Batch scoring runs a view's on-demand transforms and the model in one pass over the
point-in-time join (``sparkfs.inference.batch``): the scored rows equal the training-set
path (``get_historical_features`` on Spark, where each transform is its own pandas UDF)
followed by the model, for a multi-output transform that reads a looked-up feature nobody
requested, with ``full_feature_names``, for pandas and Spark spines."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from sparkfs import Entity, FeatureGroup, FeatureView, Field, transform

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
COLUMNS = ["weather__temp", "gusts__windy", "gusts__hour"]


@transform(outputs={"windy": "double", "hour": "int"}, on_demand=True,
           inputs={"sched_dep_ts": "timestamp"}, features={"wind": "weather:wind"})
def gusts(sched_dep_ts: pd.Series, wind: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"windy": wind * 2.0, "hour": sched_dep_ts.dt.hour}, index=wind.index)


def expected(frame: pd.DataFrame) -> np.ndarray:
    """What the model computes (missing temp 0, missing windy -1), here in the test."""
    return (np.nan_to_num(frame["weather__temp"].to_numpy(dtype="float64"))
            + 10 * np.nan_to_num(frame["gusts__windy"].to_numpy(dtype="float64"), nan=-1.0)
            + 100 * frame["gusts__hour"].to_numpy(dtype="float64"))


def formula_model():
    import mlflow.pyfunc

    class Formula(mlflow.pyfunc.PythonModel):  # self-contained: Spark's workers unpickle it
        def predict(self, context, model_input, params=None):
            import numpy as np

            m = model_input
            return (np.nan_to_num(m["weather__temp"].to_numpy(dtype="float64"))
                    + 10 * np.nan_to_num(m["gusts__windy"].to_numpy(dtype="float64"), nan=-1.0)
                    + 100 * m["gusts__hour"].to_numpy(dtype="float64"))

    return Formula()


def test_fused_pass_equals_transforms_as_udfs_then_the_model(fs, spark):
    airport = Entity("airport", join_keys=["origin"])
    weather = FeatureGroup("weather", [airport], "at",
                           [Field("temp", "double"), Field("wind", "double")])
    fs.apply([weather, gusts, FeatureView("v", features=["weather:temp", "gusts:*"])])
    fs.ingest("weather", pd.DataFrame({
        "origin": ["JFK", "JFK", "LGA", "EWR"],
        "at": [T0, T0 + dt.timedelta(hours=5), T0 + dt.timedelta(hours=1), T0],
        "temp": [10.0, 12.5, None, 7.0], "wind": [3.0, None, 4.5, 1.0]}), run_id="w")
    spine = pd.DataFrame({"origin": ["JFK", "JFK", "LGA", "ORD", "EWR"],
                          "sched_dep_ts": [T0 + dt.timedelta(hours=h) for h in (2, 7, 3, 4, 23)],
                          "label": [1.0, 2.0, 3.0, 4.0, 5.0]})
    fs.create_training_set("t", spine, view="v", timestamp_col="sched_dep_ts",
                           engine="duckdb", full_feature_names=True)
    fs.log_model(formula_model(), "formula", training_set="t")
    fs.deploy("fused", model="formula")

    features = fs.get_historical_features(spine, view="v", timestamp_col="sched_dep_ts",
                                          engine="spark", full_feature_names=True).to_pandas()
    assert list(features.columns) == ["origin", "sched_dep_ts", "label"] + COLUMNS
    assert features["gusts__windy"].isna().tolist() == [False, True, False, True, False]
    want = expected(features)

    scored = fs.score_batch("fused", spine, timestamp_col="sched_dep_ts", run_id="p")
    assert scored.columns == list(features.columns) + [
        "prediction", "prediction_json", "prediction_error"]
    got = scored.toPandas()
    assert got.prediction_error.isna().all()
    pd.testing.assert_frame_equal(got[COLUMNS], features[COLUMNS], check_dtype=False)
    np.testing.assert_allclose(got.prediction.to_numpy(), want)

    # a Spark spine: the shuffle join and its Spark summary, the same fused pass
    sdf = spark.createDataFrame(spine)
    rows = fs.score_batch("fused", sdf, timestamp_col="sched_dep_ts", log=False).toPandas()
    pd.testing.assert_frame_equal(rows[COLUMNS], features[COLUMNS], check_dtype=False)
    np.testing.assert_allclose(rows.prediction.to_numpy(), want)

    log = fs.read_log("fused")
    assert len(log) == 5 and set(log.request_id) == {"p"}
    assert sorted(log["gusts__hour"]) == sorted(features["gusts__hour"])
    assert sorted(log["gusts__windy__status"]) == ["missing"] * 2 + ["present"] * 3
    np.testing.assert_allclose(np.sort(log.prediction.to_numpy()), np.sort(want))
