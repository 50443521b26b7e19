"""Models in MLflow, deployments, online scoring and the evaluation store, on a real MLflow
registry (SQLite in a temp dir), real Delta tables and the real online store."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pandas as pd
import pytest

from jobs.flights.transforms import dep_calendar
from sparkfs import Entity, FeatureGroup, FeatureStore, Field
from sparkfs.errors import NotFoundError, PredictionError, RegistryError, ValidationError
from sparkfs.online.materialize import materialize

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
FEATURES = ["weather:temp", "weather:wind", "dep_calendar:hour_of_day"]
airport = Entity("airport", join_keys=["origin"])


def weather():
    return FeatureGroup("weather", [airport], "time_hour",
                        [Field("temp", "double"), Field("wind", "double")])


def hours(h):
    return pd.Timestamp(NOW - dt.timedelta(hours=h))


def history():
    rows = [("JFK", hours(10), 30.0, 5.0), ("JFK", hours(2), 35.0, 12.0),
            ("LGA", hours(9), 28.0, 20.0), ("EWR", hours(3), 40.0, None)]
    return pd.DataFrame(rows, columns=["origin", "time_hour", "temp", "wind"])


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory):
    """A store with weather history, materialized online, a training set and a model."""
    from sklearn.linear_model import LinearRegression

    fs = FeatureStore({"project": "test", "data_dir": str(tmp_path_factory.mktemp("inf"))},
                      spark=spark)
    fs.apply([weather(), dep_calendar])
    fs.ingest("weather", history(), run_id="w1")
    materialize(fs.offline, fs.online, fs.get_feature_group("weather"), engine="local")
    spine = pd.DataFrame({"origin": ["JFK", "JFK", "LGA", "JFK", "LGA"],
                          "sched_dep_ts": [hours(9), hours(5), hours(8), hours(1), hours(1)],
                          "delay": [3.0, 8.0, 15.0, 9.0, 16.0]})
    ts = fs.create_training_set("delays", spine, FEATURES, "sched_dep_ts", engine="duckdb")
    data = ts.to_pandas()
    model = LinearRegression().fit(data[["temp", "wind", "hour_of_day"]], data["delay"])
    info = fs.log_model(model, "delay_model", training_set="delays")
    yield fs, info, model
    fs.close()


def test_log_model_records_view_training_set_manifest_and_signature(store):
    fs, info, _ = store
    assert (info.name, info.version, info.training_set) == ("delay_model", 1, "delays@1")
    assert info.binding.columns == (("temp", "double"), ("wind", "double"),
                                    ("hour_of_day", "int"))
    assert info.manifest["delta_versions"] == {"weather@1": 1} or \
        list(info.manifest["delta_versions"]) == ["weather@1"]
    assert info.manifest["spine"]["rows"] == 5
    assert "dep_calendar" in info.manifest["on_demand"]
    assert [c.name for c in info.signature_inputs.inputs] == ["temp", "wind", "hour_of_day"]


def test_deploy_predict_and_log_exactly_once(store):
    fs, info, model = store
    d = fs.deploy("delay", model="delay_model", version=1)
    assert (d.revision, d.model_label, d.training_set) == (1, "delay_model@1", "delays@1")
    assert [x.name for x in fs.list_deployments()] == ["delay"]
    ts = [NOW.isoformat()]
    r = fs.predict("delay", [{"origin": "JFK"}], request_data={"sched_dep_ts": ts})
    assert r.features["temp"] == [35.0] and r.statuses["temp"] == ["present"]
    X = pd.DataFrame({"temp": [35.0], "wind": [12.0],
                      "hour_of_day": [pd.Timestamp(NOW).tz_convert("America/New_York").hour]})
    X = X.astype({"hour_of_day": "int32"})
    assert r.predictions == pytest.approx(model.predict(X).tolist())
    assert r.model_version == 1 and len(r.request_id) == 32

    # 8 concurrent clients: every prediction is logged exactly once
    ids, errors = [], []

    def client():
        try:
            for _ in range(5):
                res = fs.predict("delay", [{"origin": "JFK"}, {"origin": "LGA"}],
                                 request_data={"sched_dep_ts": ts * 2})
                ids.append(res.request_id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    log = fs.read_log("delay")
    mine = log[log.request_id.isin(ids)]
    assert len(mine) == 80
    assert not mine.duplicated(["request_id", "row"]).any()
    one = log[log.request_id == r.request_id].iloc[0]
    assert (one.temp, one.wind, one.temp__status) == (35.0, 12.0, "present")
    assert one.prediction == pytest.approx(r.predictions[0])
    assert (one.model_name, one.model_version, one.training_set, one.scoring_path) == \
        ("delay_model", 1, "delays@1", "online")
    assert one.temp__event_time == hours(2)
    assert fs.inference.logger.counters()["dropped"] == {}


def test_the_log_is_compacted_as_it_grows_and_keeps_every_row(store):
    """A service appends to the log about twice a second: every ``compact_every`` appends
    the writer compacts the table, so it does not grow one small file per append."""
    from deltalake import DeltaTable

    fs, _, _ = store
    logger = fs.inference.logger
    fs.deploy("compacted", model="delay_model")
    path = fs.inference.deployments.get("compacted").log_path
    old, logger.compact_every = logger.compact_every, 3
    try:
        ids = []
        for _ in range(7):  # one append each: compacted after the 3rd and the 6th
            ids.append(fs.predict("compacted", [{"origin": "JFK"}],
                                  request_data={"sched_dep_ts": [NOW.isoformat()]}).request_id)
            assert logger.flush(30)
    finally:
        logger.compact_every = old
    table = DeltaTable(path)
    ops = [h["operation"] for h in table.history()]
    assert ops.count("OPTIMIZE") >= 2
    assert len(table.file_uris()) <= 3  # two compacted files at most, plus the last append
    log = fs.read_log("compacted")
    assert len(log) == 7 and set(log.request_id) == set(ids)
    assert logger.counters()["failed"] == {}


def test_bad_input_is_refused_with_names(store):
    fs, info, _ = store
    fs.deploy("delay2", model="delay_model")
    with pytest.raises(NotFoundError, match=r"deployment 'nope' does not exist; deployments: .*delay"):
        fs.predict("nope", [{"origin": "JFK"}])
    with pytest.raises(ValidationError, match="origin"):
        fs.predict("delay2", [{"airport": "JFK"}], request_data={"sched_dep_ts": [NOW]})
    with pytest.raises(ValidationError, match="sched_dep_ts"):
        fs.predict("delay2", [{"origin": "JFK"}])
    with pytest.raises(NotFoundError,
                       match=r"model 'nope' is not registered; registered models: \['delay_model'\]"):
        fs.deploy("x", model="nope")
    with pytest.raises(NotFoundError, match=r"no version 9; registered versions: \[1"):
        fs.deploy("x", model="delay_model", version=9)
    assert "x" not in [d.name for d in fs.list_deployments()]


def test_deploy_refuses_unbound_model_and_signature_mismatch(store):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from sklearn.dummy import DummyRegressor

    fs, _, _ = store
    m = DummyRegressor().fit([[1.0]], [1.0])
    sig = ModelSignature(inputs=Schema([ColSpec("double", "temp")]))
    loose = fs.log_model(m, "loose_model", signature=sig)
    with pytest.raises(RegistryError, match="logged without a training set.*Nothing was deployed"):
        fs.deploy("loose", model="loose_model", version=loose.version)
    wrong = fs.log_model(m, "wrong_model", training_set="delays", signature=sig)
    with pytest.raises(RegistryError, match="signature's input columns .* differ from the view's"):
        fs.deploy("wrong", model="wrong_model", version=wrong.version)
    names = [d.name for d in fs.list_deployments()]
    assert "loose" not in names and "wrong" not in names


def _deploy_bad(fs):
    """A model trained on 2 columns, given the view's 3: sklearn raises at predict time."""
    from sklearn.linear_model import LinearRegression

    if "bad" in [d.name for d in fs.list_deployments()]:
        return
    bad = LinearRegression().fit(pd.DataFrame({"temp": [1.0, 2.0], "wind": [1.0, 0.0]}), [1, 2])
    info = fs.log_model(bad, "bad_model", training_set="delays")
    fs.deploy("bad", model="bad_model", version=info.version)


def test_model_failure_is_one_line_with_request_id_and_logged(store):
    fs, _, _ = store
    _deploy_bad(fs)
    with pytest.raises(PredictionError) as err:
        fs.predict("bad", [{"origin": "JFK"}], request_data={"sched_dep_ts": [NOW]})
    msg = str(err.value)
    assert "\n" not in msg and err.value.request_id in msg and "bad_model@" in msg
    log = fs.read_log("bad")
    row = log[log.request_id == err.value.request_id]
    assert len(row) == 1 and row.error.iloc[0] and pd.isna(row.prediction.iloc[0])


def test_redeploy_switches_version_and_read_log_window(store):
    from sklearn.linear_model import LinearRegression

    fs, _, _ = store
    data = fs.get_training_set("delays").to_pandas()
    m2 = LinearRegression(fit_intercept=False).fit(data[["temp", "wind", "hour_of_day"]],
                                                   data["delay"])
    v2 = fs.log_model(m2, "delay_model", training_set="delays")
    fs.deploy("swap", model="delay_model", version=1)
    before = fs.predict("swap", [{"origin": "LGA"}], request_data={"sched_dep_ts": [NOW]})
    d = fs.deploy("swap", model="delay_model", version=v2.version)
    assert d.revision == 2 and fs.get_deployment("swap").model_version == v2.version
    after = fs.predict("swap", [{"origin": "LGA"}], request_data={"sched_dep_ts": [NOW]})
    assert (before.model_version, after.model_version) == (1, v2.version)
    log = fs.read_log("swap")
    assert log.model_version.tolist() == [1, v2.version]
    assert fs.read_log("swap", start=dt.datetime(2100, 1, 1)).empty


# -- the HTTP service: a real server process ------------------------------------------------

def _serve(fs, tmp_path):
    import yaml
    from test_serving import _free_port, _start, _wait_healthy

    cfg = tmp_path / "conf.yaml"
    cfg.write_text(yaml.safe_dump({"project": "test", "data_dir": fs.config.data_dir}))
    repo = tmp_path / "repo.py"
    repo.write_text("from jobs.flights.transforms import dep_calendar  # noqa: F401\n")
    port = _free_port()
    log = str(tmp_path / "serve.log")
    proc = _start(["--config", str(cfg), "serve", "--repo", str(repo), "--port", str(port),
                   "--workers", "1", "--log-level", "warning"], log)
    base = f"http://127.0.0.1:{port}"
    _wait_healthy(base, proc, log, timeout=300)
    return proc, base, log


def test_http_predict_concurrent_redeploy_and_sigterm_lose_nothing(store, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from test_serving import _stop

    fs, info, _ = store
    fs.deploy("live", model="delay_model", version=1)
    _deploy_bad(fs)
    local = fs.predict("live", [{"origin": "JFK"}], request_data={"sched_dep_ts": [NOW.isoformat()]})
    proc, base, log = _serve(fs, tmp_path)
    try:
        body = {"entity_rows": [{"origin": "JFK"}], "request_data": {"sched_dep_ts": [NOW.isoformat()]}}
        r = httpx.post(base + "/deployments/live/predict", json=body, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["predictions"] == pytest.approx(local.predictions)  # online == in process
        assert out["features"]["temp"] == [35.0] and out["model"]["version"] == 1

        # bad input over HTTP
        r = httpx.post(base + "/deployments/nope/predict", json=body, timeout=30)
        assert r.status_code == 404 and "live" in r.json()["detail"]
        r = httpx.post(base + "/deployments/live/predict", json={"entity_rows": [{"x": 1}]},
                       timeout=30)
        assert r.status_code == 422 and "origin" in r.json()["detail"]
        r = httpx.post(base + "/deployments/bad/predict", json=body, timeout=60)
        assert r.status_code == 500 and r.json()["request_id"] in r.json()["detail"]
        assert "Traceback" not in r.text and "\n" not in r.json()["detail"]

        # 8 clients while the deployment is switched to another model version: no request fails
        v2 = max(fs.models.versions("delay_model"))
        ids, versions, statuses = [], set(), []

        def client(i):
            with httpx.Client(timeout=60) as c:
                for j in range(6):
                    resp = c.post(base + "/deployments/live/predict", json=body)
                    statuses.append(resp.status_code)
                    if resp.status_code == 200:
                        ids.append(resp.json()["request_id"])
                        versions.add(resp.json()["model"]["version"])
                    if i == 0 and j == 1:
                        fs.deploy("live", model="delay_model", version=v2)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client, range(8)))
        assert statuses == [200] * 48
        # picked up without a restart: at once, or within the cache's max_age_s (1 s) when
        # a request's registry read raced the redeploy (``Deployments.get``)
        deadline = time.monotonic() + 10
        while True:
            r = httpx.post(base + "/deployments/live/predict", json=body, timeout=60)
            assert r.status_code == 200, r.text
            ids.append(r.json()["request_id"])
            if r.json()["model"]["version"] == v2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.json()["model"]["version"] == v2
        metrics = httpx.get(base + "/metrics", timeout=30).text
        assert "sparkfs_evaluation_log_rows_total" in metrics
    finally:
        _stop(proc)  # SIGTERM: the service flushes its log before exiting
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: -15 is a clean exit here
    assert proc.returncode in (0, -15), open(log).read()
    logged = fs.read_log("live")
    got = logged[logged.scoring_path == "online"]
    assert set(ids) <= set(got.request_id)
    assert not got.duplicated(["request_id", "row"]).any()
    assert len(got[got.request_id.isin(ids)]) == len(ids) >= 49


def test_batch_scoring_on_spark_equals_online_and_logs_each_prediction_once(store):
    fs, _, _ = store
    fs.deploy("nightly", model="delay_model", version=1)
    at = pd.Timestamp(NOW)
    spine = pd.DataFrame({"origin": ["JFK", "LGA", "JFK"],
                          "sched_dep_ts": [at, at, hours(5)]})
    scored = fs.score_batch("nightly", spine, timestamp_col="sched_dep_ts", run_id="run1")
    out = scored.toPandas().sort_values(["origin", "sched_dep_ts"]).reset_index(drop=True)
    online = fs.predict("nightly", [{"origin": o} for o in ["JFK", "LGA"]],
                        request_data={"sched_dep_ts": [NOW.isoformat()] * 2})
    now_rows = out.groupby("origin").tail(1)  # sorted by time: each origin's row at NOW
    assert now_rows.prediction.tolist() == pytest.approx(online.predictions)  # same instant
    assert now_rows.temp.tolist() == online.features["temp"]
    log = fs.read_log("nightly")
    batch = log[log.scoring_path == "batch"]
    assert len(batch) == 3 and batch.request_id.unique().tolist() == ["run1"]
    assert not batch.duplicated(["request_id", "row"]).any()
    assert sorted(batch.prediction.dropna().round(6)) == sorted(out.prediction.dropna().round(6))
    # each feature's event time: the row the point-in-time join chose (pandas merge_asof)
    want = pd.merge_asof(spine.sort_values("sched_dep_ts"),
                         history().sort_values("time_hour"), left_on="sched_dep_ts",
                         right_on="time_hour", by="origin", direction="backward")
    entity = [json.loads(e)["origin"] for e in batch.entity]
    assert sorted(zip(entity, batch.temp__event_time, batch.wind__event_time)) == \
        sorted(zip(want.origin, want.time_hour, want.time_hour))
    assert batch.hour_of_day__event_time.isna().all()  # an on-demand output, as online
