"""explain_prediction on a real deployment (MLflow model, SQLite online store, Delta
evaluation log): the explained values, statuses and event times are what the online path
returned (a null and a NaN stay distinct); Delta versions and online freshness are right
before and after an injected materialization lag; the request id as a lineage node; the
CLI; unknown request ids."""

from __future__ import annotations

import datetime as dt
import json
import math

import pandas as pd
import pyarrow as pa
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from sparkfs.cli import main
from sparkfs.errors import NotFoundError

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
airport = Entity("airport", join_keys=["origin"])


def hours(h):
    return pd.Timestamp(NOW - dt.timedelta(hours=h))


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    root = tmp_path_factory.mktemp("explain")
    fs = FeatureStore({"project": "test", "data_dir": str(root / "data")}, spark=spark)
    fs.apply([FeatureGroup("weather", [airport], "time_hour",
                           [Field("temp", "double"), Field("wind", "double")], online=True),
              FeatureView("delay", features=["weather:temp", "weather:wind"])])
    # EWR's wind is null, LGA's is NaN: both must come back as served
    rows = [("JFK", hours(10), 30.0, 5.0), ("LGA", hours(9), 28.0, float("nan")),
            ("EWR", hours(3), 40.0, None)]
    table = pa.Table.from_pydict(  # Arrow: pandas would turn the NaN into a null
        {"origin": [r[0] for r in rows], "time_hour": [r[1].to_pydatetime() for r in rows],
         "temp": [r[2] for r in rows], "wind": [r[3] for r in rows]},
        pa.schema([("origin", pa.string()), ("time_hour", pa.timestamp("us", "UTC")),
                   ("temp", pa.float64()), ("wind", pa.float64())]))
    fs.ingest("weather", table, run_id="w1", materialize=True)
    spine = pd.DataFrame({"origin": ["JFK", "LGA", "EWR"], "ts": [hours(1)] * 3,
                          "y": [1.0, 2.0, 3.0]})
    ts = fs.create_training_set("delays", spine, view="delay", timestamp_col="ts",
                                engine="duckdb")
    data = ts.to_pandas()
    model = make_pipeline(SimpleImputer(), LinearRegression())
    fs.log_model(model.fit(data[["temp", "wind"]], data["y"]), "delay_model",
                 training_set="delays", skops_trusted_types=["numpy.dtype"])
    fs.deploy("delay", model="delay_model")
    config = root / "sparkfs.yaml"
    config.write_text(f"project: test\ndata_dir: {root / 'data'}\n")
    yield fs, str(config), fs.offline.current_version(fs.get_feature_group("weather"))
    fs.close()


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def test_explained_values_are_what_the_online_path_returned(store):
    fs, _, v = store
    served = fs.predict("delay", [{"origin": "JFK"}, {"origin": "LGA"}, {"origin": "EWR"},
                                  {"origin": "SFO"}])
    e = fs.explain_prediction(served.request_id)
    assert (e.deployment, e.revision, e.model, e.view, e.training_set, e.scoring_path) == \
        ("delay", 1, "delay_model@1", "delay@1", "delays@1", "online")
    assert e.mlflow_run_id and e.training["delta_versions"] == {"weather@1": v}
    assert [r["entity"] for r in e.rows] == [{"origin": k} for k in ("JFK", "LGA", "EWR", "SFO")]
    for i, r in enumerate(e.rows):
        assert r["prediction"] == pytest.approx(served.predictions[i])
        for col in ("temp", "wind"):
            f = r["features"][col]
            assert _same(f["value"], served.features[col][i]), (i, col)
            assert f["status"] == served.statuses[col][i]
            assert f["event_time"] == served.event_times[col][i]
            assert f["source"] == "weather@1" and f["delta_version"] == v
            assert f["trained_delta_version"] == v
    assert math.isnan(e.value("wind", 1)) and e.value("wind", 2) is None
    assert [r["features"]["temp"]["online"] for r in e.rows] == ["current"] * 3 + ["absent"]
    assert e.rows[3]["features"]["temp"]["value"] is None
    assert e.transforms == {} and e.warnings == []
    # JSON keeps the NaN apart from the null
    d = json.loads(e.to_json())
    assert d["rows"][1]["features"]["wind"]["value"] == "NaN"
    assert d["rows"][2]["features"]["wind"]["value"] is None
    assert f"request {served.request_id}" in str(e) and "online current" in str(e)


def test_a_lagging_materialization_shows_in_the_explanation_and_lineage(store, capsys):
    fs, config, v = store
    fs.ingest("weather", pd.DataFrame({"origin": ["JFK"], "time_hour": [hours(0.5)],
                                       "temp": [33.0], "wind": [9.0]}), run_id="w2")
    served = fs.predict("delay", [{"origin": "JFK"}, {"origin": "EWR"}])
    e = fs.explain_prediction(served.request_id)
    jfk, ewr = (r["features"]["temp"] for r in e.rows)
    assert jfk["value"] == 30.0 and jfk["delta_version"] == v + 1 and jfk["online"] == "lagging"
    assert jfk["newest_offline_event_time"] == hours(0.5).to_pydatetime()
    assert ewr["online"] == "current" and ewr["delta_version"] == v + 1
    # the request is a lineage node: up to the model, its training set and the Delta
    # version current when it was served
    for node in (f"request:{served.request_id}", served.request_id):
        up = fs.lineage(node)
        assert up.root == f"request:{served.request_id}"
        assert {"model:delay_model@1", "deployment:delay", "training_set:delays@1",
                f"delta:weather@1:v{v + 1}", "run:weather@1/w2"} <= set(up.ids())
    assert (f"delta:weather@1:v{v + 1}", f"request:{served.request_id}", "served_from") in {
        (x.source, x.target, x.relation) for x in up.edges}
    assert main(["--config", config, "explain", served.request_id, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"][0]["features"]["temp"]["online"] == "lagging"
    assert main(["--config", config, "lineage", f"request:{served.request_id}",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["root"] == f"request:{served.request_id}"


def test_unknown_request_ids_are_refused_with_close_matches(store, capsys):
    fs, config, _ = store
    served = fs.predict("delay", [{"origin": "JFK"}])
    typo = served.request_id[:-1] + ("0" if served.request_id[-1] != "0" else "1")
    with pytest.raises(NotFoundError, match=rf"request id '{typo}' was not logged.*"
                                            rf"close matches: \['{served.request_id}'"):
        fs.explain_prediction(typo)
    with pytest.raises(NotFoundError, match="non-empty string"):
        fs.explain_prediction("")
    with pytest.raises(NotFoundError, match="request id 'nope' was not logged"):
        fs.lineage("request:nope")
    assert main(["--config", config, "explain", "nope"]) == 2
    assert "request id 'nope' was not logged" in capsys.readouterr().err


def test_a_batch_scored_request_shows_the_delta_versions_it_read(store):
    fs, _, v = store
    spine = pd.DataFrame({"origin": ["JFK", "LGA"], "ts": [hours(0.1)] * 2})
    scored = fs.score_batch("delay", spine, timestamp_col="ts", run_id="batch-1").toPandas()
    e = fs.explain_prediction("batch-1")
    assert e.scoring_path == "batch" and len(e.rows) == 2
    now = fs.offline.current_version(fs.get_feature_group("weather"))
    by_origin = {r["entity"]["origin"]: r for r in e.rows}
    for _, s in scored.iterrows():
        f = by_origin[s["origin"]]["features"]["temp"]
        assert f["value"] == s["temp"] and f["delta_version"] == now
        assert f["online"] == "not_online" and f["trained_delta_version"] == v
        assert by_origin[s["origin"]]["prediction"] == pytest.approx(s["prediction"])
