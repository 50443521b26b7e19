"""Sliced batch scoring (``sliced_history_bytes``, ``sparkfs.training.spark_broadcast``'s
``sliced_join``): each scoring task joins its slice of the spine against the whole (small)
history with DuckDB and scores it in the same pass. It must give what the Spark join
gives (``sliced_history_bytes=0``) row for row - values, dtypes, nulls and NaN - on data
with event-time ties settled by the later commit, ttl expiries, missing entities, null
keys and times, NaN and null values of every scalar dtype; and its log rows (one Parquet
file per task, one Delta commit per run) must appear exactly once, also when a run is
retried with the same run id."""

from __future__ import annotations

import datetime as dt
import math
import os

import numpy as np
import pandas as pd
import pytest

from sparkfs import Entity, FeatureGroup, FeatureView, Field
from sparkfs.errors import SparkfsError

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def h(x: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=x)


def sum_model():
    import mlflow.pyfunc

    class Sum(mlflow.pyfunc.PythonModel):  # self-contained: Spark's workers unpickle it
        def predict(self, context, model_input, params=None):
            import numpy as np
            import pandas as pd

            m = model_input
            num = lambda c: np.nan_to_num(pd.to_numeric(m[c], errors="coerce")  # noqa: E731
                                          .to_numpy(dtype="float64"), nan=-1.0)
            return (num("temp") + 10 * num("planes") + 100 * num("gates")
                    + 1000 * np.array([v is None for v in m["icy"]], dtype="float64"))

    return Sum()


@pytest.fixture
def deployed(fs):
    """Two groups (a string and a long key), ties across two commits, a ttl, NaN and null
    values of every scalar dtype; a view of both, a model, a deployment ``d``."""
    airport = Entity("airport", join_keys=["origin"])
    plane = Entity("plane", join_keys=["tail"], dtypes={"tail": "long"})
    weather = FeatureGroup("weather", [airport], "at", [
        Field("temp", "double"), Field("icy", "boolean"), Field("note", "string"),
        Field("seen", "timestamp"), Field("day", "date")], ttl="6h")
    traffic = FeatureGroup("traffic", [plane], "at", [Field("planes", "long"),
                                                      Field("gates", "int"),
                                                      Field("load", "float")])
    fs.apply([weather, traffic, FeatureView("v", features=[
        "weather:temp", "weather:icy", "weather:note", "traffic:*"])])
    w = pd.DataFrame({
        "origin": ["JFK", "JFK", "JFK", "LGA", "LGA", "EWR"],
        "at": [h(0), h(2), h(5), h(1), h(3), h(0)],
        "temp": [1.0, np.nan, 3.0, None, 5.0, 6.0],
        "icy": pd.array([True, None, False, True, None, False], dtype="boolean"),
        "note": ["a", None, "c", "d", "", "f"],
        "seen": [h(-1), None, h(4), h(0), h(2), None],
        "day": [dt.date(2024, 3, 1), None, dt.date(2024, 3, 2), None, dt.date(2024, 2, 29),
                dt.date(2024, 3, 1)]})
    fs.ingest("weather", w, run_id="w1")
    # a later commit at the same event times: it wins the tie (a correction)
    fs.ingest("weather", pd.DataFrame({
        "origin": ["JFK", "LGA"], "at": [h(2), h(3)], "temp": [2.5, np.nan],
        "icy": pd.array([None, False], dtype="boolean"), "note": ["b2", None],
        "seen": [None, h(3)], "day": [None, dt.date(2024, 3, 3)]}), run_id="w2")
    t = pd.DataFrame({"tail": [1, 1, 2, 3], "at": [h(0), h(4), h(1), h(2)],
                      "planes": pd.array([10, None, 30, 40], dtype="Int64"),
                      "gates": pd.array([1, 2, None, 4], dtype="Int32"),
                      "load": np.array([0.5, np.nan, 1.5, 2.5], dtype="float32")})
    fs.ingest("traffic", t, run_id="t1")
    spine = pd.DataFrame({
        # JFK at 2.5h: the tie's later commit; at 12h: expired (ttl 6h); BOS/tail 9: missing
        "origin": ["JFK", "JFK", "JFK", "LGA", "LGA", "EWR", "BOS", None, "JFK", "LGA",
                   "EWR", "JFK"],
        "tail": pd.array([1, 1, 2, 3, 9, None, 1, 2, 3, 1, 2, 1], dtype="Int64"),
        "ts": [h(2.5), h(5), h(12), h(3), h(3.5), h(0), h(1), h(2), h(-1), h(9.1), h(6.5),
               None],
        "label": np.arange(12, dtype="float64")})
    train = spine.dropna(subset=["ts"]).reset_index(drop=True)
    fs.create_training_set("t", train, view="v", timestamp_col="ts", engine="duckdb")
    fs.log_model(sum_model(), "sum_model", training_set="t")
    fs.deploy("d", model="sum_model")
    return fs, spine


def rows(df) -> list[dict]:
    """The rows as Python values, NaN told apart from null."""
    return [{k: ("NaN" if isinstance(v, float) and math.isnan(v) else v)
             for k, v in r.items()} for r in df.toArrow().to_pylist()]


def shuffles(df) -> bool:
    return "Exchange" in df._jdf.queryExecution().executedPlan().toString()


def test_sliced_scoring_equals_the_spark_join(deployed):
    fs, spine = deployed
    sliced = fs.score_batch("d", spine, timestamp_col="ts", log=False)
    spark = fs.score_batch("d", spine, timestamp_col="ts", log=False, sliced_history_bytes=0)
    assert sliced.schema == spark.schema
    got, want = rows(sliced), rows(spark)
    assert got == want
    assert all(r["prediction_error"] is None for r in got)
    # the semantics themselves: the later commit wins a tie, the ttl expires, misses are null
    assert [r["temp"] for r in got[:3]] == [2.5, 3.0, None]
    assert got[0]["note"] == "b2" and got[0]["icy"] is None
    # LGA at 3h: the corrected row, NaN (null once out of the pandas pass, on both paths)
    assert got[3]["temp"] is None and got[3]["icy"] is False and got[3]["planes"] == 40
    assert [r["temp"] for r in got[6:8]] == [None, None]  # BOS, a null key
    assert got[4]["planes"] is None and got[5]["planes"] is None  # tail 9, a null tail
    assert got[9]["temp"] is None and got[10]["temp"] is None  # LGA, EWR expired
    assert got[11]["temp"] is None and got[11]["planes"] is None  # a null time
    assert got[1]["planes"] is None and got[1]["gates"] == 2  # tail 1 at 4h: a null value
    # pandas forms too (dtypes as toPandas gives them)
    pd.testing.assert_frame_equal(sliced.toPandas(), spark.toPandas())
    # unordered: one stage, no shuffle at all; the Spark join shuffles
    assert not shuffles(fs.score_batch("d", spine, timestamp_col="ts", log=False,
                                       ordered=False))
    assert shuffles(fs.score_batch("d", spine, timestamp_col="ts", log=False, ordered=False,
                                   sliced_history_bytes=0))
    # a history over the limit takes the Spark join as well
    assert shuffles(fs.score_batch("d", spine, timestamp_col="ts", log=False, ordered=False,
                                   sliced_history_bytes=100))
    with pytest.raises(SparkfsError, match="sliced_history_bytes"):
        fs.score_batch("d", spine, timestamp_col="ts", log=False, sliced_history_bytes=-1)


def test_sliced_scoring_logs_each_row_once_in_one_commit(deployed):
    from deltalake import DeltaTable

    from sparkfs.inference.batch_log import run_app_id, stage_log_files

    fs, spine = deployed
    path = fs.get_deployment("d").log_path
    # an earlier attempt of run r1 that staged a file and died before its commit
    stale = stage_log_files(path, "r1")
    with open(os.path.join(stale, "part-00099.parquet"), "wb") as f:
        f.write(b"not parquet")
    before = DeltaTable(path).version()
    scored = fs.score_batch("d", spine, timestamp_col="ts", run_id="r1").toPandas()
    table = DeltaTable(path)
    assert table.version() == before + 1  # one commit for the run
    assert table.transaction_version(run_app_id("r1")) == 1
    fs.score_batch("d", spine, timestamp_col="ts", run_id="r1")  # a retry: logs nothing
    fs.score_batch("d", spine, timestamp_col="ts", run_id="r0", sliced_history_bytes=0)
    assert DeltaTable(path).version() == before + 2
    log = fs.read_log("d")
    assert log.groupby("request_id").size().to_dict() == {"r0": 12, "r1": 12}
    assert not log.duplicated(["request_id", "row"]).any()
    # sliced and Spark-joined runs log the same features, statuses and event times
    cols = ["entity", "temp", "temp__status", "temp__event_time", "icy", "note", "planes",
            "planes__status", "gates", "load", "load__event_time", "prediction"]

    def run(r):
        out = log[log.request_id == r][cols].astype(str)
        return out.sort_values(cols).reset_index(drop=True)

    pd.testing.assert_frame_equal(run("r1"), run("r0"))
    assert sorted(log[log.request_id == "r1"].prediction) == sorted(scored.prediction)
