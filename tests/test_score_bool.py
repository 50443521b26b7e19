"""A model with a boolean input scores rows where that flag is missing, online and in batch:
the flag reaches the model as None (never NaN, never True), as in its training set, and
MLflow's signature check accepts it (``sparkfs.inference.online``'s rule)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from sparkfs import Entity, FeatureGroup, Field
from sparkfs.online.materialize import materialize

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
ORIGINS = ["JFK", "LGA", "EWR", "ORD"]  # icy True, missing, False; ORD never seen
WANT = [10.0, -1.0, 0.0, -1.0]


def hours(h):
    return pd.Timestamp(NOW - dt.timedelta(hours=h))


def icy_model():
    """A pyfunc model that tells a missing flag (None) from False and True."""
    import mlflow.pyfunc

    class Icy(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [-1.0 if v is None else 10.0 if v else 0.0 for v in model_input["icy"]]

    return Icy()


def test_a_missing_boolean_scores_online_and_in_batch(fs):
    airport = Entity("airport", join_keys=["origin"])
    roads = FeatureGroup("roads", [airport], "at", [Field("icy", "boolean")])
    fs.apply([roads])
    fs.ingest("roads", pd.DataFrame({"origin": ORIGINS[:3], "at": [hours(3)] * 3,
                                     "icy": pd.array([True, None, False], dtype="boolean")}),
              run_id="r")
    materialize(fs.offline, fs.online, fs.get_feature_group("roads"), engine="local")
    spine = pd.DataFrame({"origin": ORIGINS[:3], "ts": [hours(1)] * 3})
    train = fs.create_training_set("t", spine, ["roads:icy"], "ts", engine="duckdb")
    assert train.to_pandas().icy.tolist() == [True, None, False]  # the training set's rule
    fs.log_model(icy_model(), "icy_model", training_set="t")
    fs.deploy("icy", model="icy_model")

    online = fs.predict("icy", [{"origin": o} for o in ORIGINS])
    assert online.predictions == WANT
    assert online.features["icy"] == [True, None, False, None]

    scored = fs.score_batch("icy", pd.DataFrame({"origin": ORIGINS, "ts": [pd.Timestamp(NOW)] * 4}),
                            timestamp_col="ts", run_id="b1").toPandas()
    assert scored.prediction_error.isna().all()
    assert scored.set_index("origin").loc[ORIGINS].prediction.tolist() == WANT
    log = fs.read_log("icy")
    batch = log[log.scoring_path == "batch"]
    assert sorted(batch.prediction) == sorted(WANT)
    assert sorted(batch.icy__status) == ["missing", "missing", "present", "present"]
    assert batch.icy.isna().sum() == 2
