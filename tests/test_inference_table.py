"""The scoring table (``fs.deploy(..., table=True)``, ``fs.score_table``, ``sparkfs score
--follow``) on a real MLflow registry, real Delta tables and a real local Spark: rows
appended get scored exactly once across a replayed micro-batch, with the Delta versions
behind them; bad rows are reported, not lost; and a missing value (None, NaN, an unknown
entity) flows identically through online, batch and table scoring."""

from __future__ import annotations

import datetime as dt
import json
import math
import os

import pandas as pd
import pytest
from deltalake import DeltaTable

from jobs.flights.transforms import dep_calendar
from sparkfs import Entity, FeatureGroup, FeatureStore, Field
from sparkfs.errors import NotFoundError, ValidationError
from sparkfs.online.materialize import materialize

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
FEATURES = ["weather:temp", "weather:wind", "weather:obs", "dep_calendar:hour_of_day"]
airport = Entity("airport", join_keys=["origin"])
# JFK: every value; EWR: wind and obs (an int) None; BOS: temp NaN in the history;
# ORD: never seen
ORIGINS = ["JFK", "EWR", "BOS", "ORD"]


def hours(h):
    return pd.Timestamp(NOW - dt.timedelta(hours=h))


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory):
    """Weather history with a None and a NaN, online; a model that imputes (so missing
    values reach it and give a prediction); deployed with a scoring table."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    fs = FeatureStore({"project": "test", "data_dir": str(tmp_path_factory.mktemp("tbl"))},
                      spark=spark)
    fs.apply([FeatureGroup("weather", [airport], "time_hour",
                           [Field("temp", "double"), Field("wind", "double"),
                            Field("obs", "int")]), dep_calendar])
    rows = [("JFK", hours(10), 30.0, 5.0, 3), ("JFK", hours(2), 35.0, 12.0, 4),
            ("LGA", hours(9), 28.0, 20.0, 5), ("EWR", hours(3), 40.0, None, None),
            ("BOS", hours(4), float("nan"), 7.0, 6)]
    frame = pd.DataFrame(rows, columns=["origin", "time_hour", "temp", "wind", "obs"])
    fs.ingest("weather", frame.astype({"obs": "Int32"}), run_id="w1")
    materialize(fs.offline, fs.online, fs.get_feature_group("weather"), engine="local")
    spine = pd.DataFrame({"origin": ["JFK", "JFK", "LGA", "JFK", "LGA"],
                          "sched_dep_ts": [hours(9), hours(5), hours(8), hours(1), hours(1)],
                          "delay": [3.0, 8.0, 15.0, 9.0, 16.0]})
    ts = fs.create_training_set("delays", spine, FEATURES, "sched_dep_ts", engine="duckdb")
    data = ts.to_pandas()
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(
        data[["temp", "wind", "obs", "hour_of_day"]].astype("float64"), data["delay"])
    fs.log_model(model, "delay_model", training_set="delays",
                 skops_trusted_types=["numpy.dtype"])  # the imputer keeps a dtype
    d = fs.deploy("tbl", model="delay_model", table=True)
    yield fs, d
    fs.close()


def _requests(ids, origins, at):
    return pd.DataFrame({"request_id": ids, "origin": origins,
                         "request_time": [pd.Timestamp(at)] * len(ids),
                         "sched_dep_ts": [pd.Timestamp(at)] * len(ids)})


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b or (a is None and b is None)


def test_the_request_table_has_the_views_columns(store):
    fs, d = store
    schema = DeltaTable(d.request_table).schema().to_arrow()
    assert [f.name for f in schema] == ["request_id", "origin", "request_time", "sched_dep_ts"]
    assert fs.get_deployment("tbl").request_table == d.request_table
    with pytest.raises(ValidationError, match=r"no column\(s\) \['nope'\]"):
        fs.append_requests("tbl", [{"origin": "JFK", "nope": 1}])
    with pytest.raises(ValidationError, match=r"lack column\(s\) \['origin'\]"):
        fs.append_requests("tbl", [{"sched_dep_ts": NOW}])
    with pytest.raises(ValidationError, match="do not fit the scoring table"):
        fs.append_requests("tbl", [{"origin": "JFK", "sched_dep_ts": "not a time"}])
    assert DeltaTable(d.request_table).version() == 0  # nothing half-written
    fs.deploy("plain", model="delay_model")
    with pytest.raises(ValidationError, match="deployment 'plain' has no scoring table"):
        fs.score_table("plain", once=True)
    with pytest.raises(NotFoundError, match="deployment 'nope' does not exist"):
        fs.score_table("nope", once=True)


def test_missing_values_flow_identically_online_batch_and_table(store, tmp_path):
    fs, _ = store
    at = NOW
    fs.append_requests("tbl", _requests([f"p{i}" for i in range(4)], ORIGINS, at))
    fs.score_table("tbl", checkpoint=str(tmp_path / "ck"), once=True)
    log = fs.read_log("tbl")
    table = log[log.request_id.isin([f"p{i}" for i in range(4)])].set_index("request_id")
    table = table.loc[[f"p{i}" for i in range(4)]]
    assert (table.scoring_path == "table").all() and table.error.isna().all()

    online = fs.predict("tbl", [{"origin": o} for o in ORIGINS],
                        request_data={"sched_dep_ts": [at.isoformat()] * 4})
    spine = pd.DataFrame({"origin": ORIGINS, "sched_dep_ts": [pd.Timestamp(at)] * 4})
    batch = fs.score_batch("tbl", spine, timestamp_col="sched_dep_ts", log=False).toPandas()
    batch = batch.set_index("origin").loc[ORIGINS]

    for col in ("temp", "wind", "obs"):
        on = online.features[col]
        assert on == [v if not (isinstance(v, float) and math.isnan(v)) else None
                      for v in on]  # online: NaN reads as null
        bt = [None if pd.isna(v) else float(v) for v in batch[col]]
        tb = [None if pd.isna(v) else float(v) for v in table[col]]
        assert on == bt == tb, col
    assert online.features["wind"][1] is None and online.features["temp"][2] is None
    assert online.features["obs"] == [4, None, 6, None]  # an int feature, missing twice
    assert online.features["temp"][3] is None  # unknown entity
    assert list(table.wind__status) == ["present", "missing", "present", "missing"]
    # the chosen rows' event times (ORD: none), the same as online
    assert table.temp__event_time.tolist()[:3] == [hours(2), hours(3), hours(4)]
    assert pd.isna(table.temp__event_time.iloc[3])
    assert table.temp__event_time.tolist()[:3] == online.event_times["temp"][:3]
    preds = online.predictions
    assert all(p is not None and math.isfinite(p) for p in preds)  # the model imputed
    assert batch.prediction.tolist() == pytest.approx(preds)
    assert table.prediction.tolist() == pytest.approx(preds)

    versions = json.loads(table.data_versions.iloc[0])
    assert versions["delta_versions"] == {"weather@1": fs.offline.table(
        fs.get_feature_group("weather")).version()}
    assert list(versions["transforms"]) == ["dep_calendar"]


def test_each_row_exactly_once_across_a_replay_and_bad_rows_reported(store, tmp_path):
    fs, _ = store
    ck = str(tmp_path / "ck")
    fs.append_requests("tbl", _requests(["a1", "a2"], ["JFK", "EWR"], NOW))
    fs.append_requests("tbl", pd.DataFrame({
        "request_id": ["bad1", "bad2"], "origin": [None, "JFK"],
        "request_time": [pd.Timestamp(NOW), None], "sched_dep_ts": [pd.Timestamp(NOW)] * 2}))
    fs.score_table("tbl", checkpoint=ck, once=True)
    fs.append_requests("tbl", _requests(["a3"], ["LGA"], NOW))
    fs.score_table("tbl", checkpoint=ck, once=True)  # a restart: only the new row

    # A crash after the log commit, before Spark recorded the batch: Spark replays it
    commits = sorted(os.listdir(os.path.join(ck, "commits")), key=lambda n: (len(n), n))
    last = [n for n in commits if n.isdigit()][-1]
    os.remove(os.path.join(ck, "commits", last))
    crc = os.path.join(ck, "commits", f".{last}.crc")
    if os.path.exists(crc):
        os.remove(crc)
    replay = fs.score_table("tbl", checkpoint=ck, once=True)
    assert [(p["batchId"], p["numInputRows"]) for p in replay.recentProgress
            if p["numInputRows"]] == [(int(last), 1)]  # Spark did run a3's batch again

    log = fs.read_log("tbl")
    mine = log[log.request_id.isin(["a1", "a2", "a3", "bad1", "bad2"])]
    assert sorted(mine.request_id) == ["a1", "a2", "a3", "bad1", "bad2"]  # once each
    bad = mine.set_index("request_id").loc[["bad1", "bad2"]]
    assert "entity column 'origin' is null" in bad.error.iloc[0]
    assert "'request_time' is null" in bad.error.iloc[1]
    assert bad.prediction.isna().all()
    assert json.loads(bad.entity.iloc[1]) == {"origin": "JFK"}
    good = mine.set_index("request_id").loc[["a1", "a2", "a3"]]
    assert good.error.isna().all() and good.prediction.notna().all()

    # a fresh checkpoint is another query: it scores the table from the start again,
    # and is not mistaken for the old one's batches
    other = str(tmp_path / "ck2")
    fs.score_table("tbl", checkpoint=other, once=True)
    again = fs.read_log("tbl")
    assert (again.request_id == "a3").sum() == 2
    fs.deploy("plain2", model="delay_model", table=True)
    with pytest.raises(ValidationError, match="belongs to the scoring table of deployment "
                                              "'tbl', not 'plain2'"):
        fs.score_table("plain2", checkpoint=ck, once=True)


def test_cli_score_follow_errors_are_one_line(tmp_path):
    from test_cli_core import run
    from test_cli_errors import _one_line_error

    _one_line_error(run(["score", "--follow", "nope", "--once"], tmp_path, check=False),
                    "deployment 'nope' does not exist")
    _one_line_error(run(["score", "--follow", "x", "--interval-s", "0"], tmp_path, check=False),
                    "--interval-s must be > 0")


def test_a_stored_null_has_one_status_online_in_batch_and_in_the_table_log(store):
    """One rule on every path: ``present`` is a value; ``missing`` is no row (ORD) or a
    row holding null (EWR's wind and obs) or NaN (BOS's temp) for that feature."""
    from sparkfs.inference.table import score_micro_batch

    fs, _ = store
    at = NOW
    want = {"temp": ["present", "present", "missing", "missing"],
            "wind": ["present", "missing", "present", "missing"],
            "obs": ["present", "missing", "present", "missing"],
            "hour_of_day": ["present"] * 4}
    online = fs.get_online_features(FEATURES, [{"origin": o} for o in ORIGINS],
                                    request_data={"sched_dep_ts": [at.isoformat()] * 4})
    assert {c: online.statuses[c] for c in want} == want
    res = fs.predict("tbl", [{"origin": o} for o in ORIGINS],
                     request_data={"sched_dep_ts": [at.isoformat()] * 4})
    assert {c: res.statuses[c] for c in want} == want
    spine = pd.DataFrame({"origin": ORIGINS, "sched_dep_ts": [pd.Timestamp(at)] * 4})
    fs.score_batch("tbl", spine, timestamp_col="sched_dep_ts", run_id="status-batch")
    score_micro_batch(fs.inference, "tbl", _requests([f"s{i}" for i in range(4)], ORIGINS, at),
                      0, "status-test")
    log = fs.read_log("tbl")
    paths = {"online": log[log.request_id == res.request_id],
             "batch": log[log.request_id == "status-batch"],
             "table": log[log.request_id.isin([f"s{i}" for i in range(4)])]}
    for path, rows in paths.items():
        by_origin = {json.loads(e)["origin"]: r for e, (_, r) in zip(rows.entity, rows.iterrows())}
        assert sorted(by_origin) == sorted(ORIGINS), path
        got = {c: [by_origin[o][f"{c}__status"] for o in ORIGINS] for c in want}
        assert got == want, path
    # the row behind a stored null is still named: its event time, as online
    table = paths["table"].set_index("request_id").loc["s1"]
    assert table.wind__event_time == hours(3) == online.event_times["wind"][1]
