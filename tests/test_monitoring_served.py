"""Drift of served traffic against the model's training set, on a real deployment: an
unshifted window is not flagged, a shifted one is; null and NaN rates are counted apart."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from sparkfs.cli import main
from sparkfs.errors import SparkfsError

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
N = 200
airport = Entity("airport", join_keys=["origin"])
KEYS = [f"A{i:03d}" for i in range(N)]


def frame(temps, hours_ago):
    return pd.DataFrame({"origin": KEYS, "time_hour": [pd.Timestamp(NOW - dt.timedelta(
        hours=hours_ago))] * N, "temp": temps})


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(7)
    fs = FeatureStore({"project": "test",
                       "data_dir": str(tmp_path_factory.mktemp("served") / "data")}, spark=spark)
    fs.apply([FeatureGroup("weather", [airport], "time_hour", [Field("temp", "double")],
                           online=True),
              FeatureView("delay", features=["weather:temp"])])
    fs.ingest("weather", frame(rng.normal(20, 5, N), 5), run_id="w1", materialize=True)
    spine = pd.DataFrame({"origin": KEYS, "ts": [pd.Timestamp(NOW)] * N,
                          "y": rng.normal(0, 1, N)})
    ts = fs.create_training_set("delays", spine, view="delay", timestamp_col="ts",
                                engine="duckdb")
    data = ts.to_pandas()
    model = make_pipeline(SimpleImputer(), LinearRegression())  # unknown keys serve null
    fs.log_model(model.fit(data[["temp"]], data["y"]), "delay_model", training_set="delays",
                 skops_trusted_types=["numpy.dtype"])
    fs.deploy("delay", model="delay_model")
    config = tmp_path_factory.getbasetemp() / "served-sparkfs.yaml"
    config.write_text(f"project: test\ndata_dir: {fs.config.data_dir}\n")
    yield fs, rng, str(config)
    fs.close()


def test_served_traffic_drift_flags_a_shift_and_not_an_unshifted_window(store, capsys):
    fs, rng, config = store
    start = dt.datetime.now(dt.UTC)
    fs.predict("delay", [{"origin": k} for k in KEYS])
    same = fs.monitor_served("delay", start=start)
    assert (same.rows_baseline, same.rows_current) == (N, N)
    assert not same.drifted and same["temp"]["psi"] < 0.01
    assert main(["--config", config, "monitor-served", "delay", "--since",
                 start.isoformat()]) == 0
    # the served values shift by 3 standard deviations
    fs.ingest("weather", frame(rng.normal(35, 5, N), 1), run_id="w2", materialize=True)
    start = dt.datetime.now(dt.UTC)
    fs.predict("delay", [{"origin": k} for k in KEYS])
    shifted = fs.monitor_served("delay", start=start)
    temp = shifted["temp"]
    assert shifted.drifted and temp["drifted"]
    assert temp["psi"] > 1.0 and temp["ks_pvalue"] < 1e-6
    assert "training set delays@1" in str(shifted)
    assert main(["--config", config, "monitor-served", "delay", "--since", start.isoformat(),
                 "--json"]) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["drifted"] is True
    # unknown keys are served null: counted as nulls, not NaNs
    start = dt.datetime.now(dt.UTC)
    fs.predict("delay", [{"origin": "ZZZ"}, {"origin": KEYS[0]}])
    mixed = fs.monitor_served("delay", start=start)["temp"]
    assert (mixed["null_rate_current"], mixed["nan_rate_current"]) == (0.5, 0.0)
    with pytest.raises(SparkfsError, match="no logged online requests"):
        fs.monitor_served("delay", start=NOW + dt.timedelta(days=1))


def test_prediction_drift_against_the_training_set_and_another_window(store, capsys):
    fs, _, config = store
    trained = fs.get_training_set("delays").to_pandas().set_index("origin")["temp"]
    # serve exactly the training values again (newer event time), then shifted ones
    fs.ingest("weather", frame(trained.loc[KEYS].to_numpy(), 0.5), run_id="w3",
              materialize=True)
    a = dt.datetime.now(dt.UTC)
    fs.predict("delay", [{"origin": k} for k in KEYS])
    b = dt.datetime.now(dt.UTC)
    fs.ingest("weather", frame(trained.loc[KEYS].to_numpy() + 15.0, 0.25), run_id="w4",
              materialize=True)
    c = dt.datetime.now(dt.UTC)
    fs.predict("delay", [{"origin": k} for k in KEYS])
    clean = fs.monitor_served("delay", start=a, end=b)
    assert [f["feature"] for f in clean.features] == ["temp", "prediction"]
    assert not clean.drifted and clean["prediction"]["psi"] < 1e-9
    assert clean["prediction"]["ks_stat"] == pytest.approx(0.0)
    shifted = fs.monitor_served("delay", start=c)
    assert shifted["prediction"]["drifted"] and shifted["prediction"]["ks_pvalue"] < 1e-6
    assert fs.monitor_served("delay", start=c, predictions=False).features[-1]["feature"] \
        == "temp"
    # against another window of the log: window [a, b) is the baseline
    vs_window = fs.monitor_served("delay", start=c, baseline=(a, b))
    assert (vs_window.rows_baseline, vs_window.rows_current) == (N, N)
    assert vs_window.drifted_features == ["temp", "prediction"]
    assert vs_window.baseline.startswith("served from ")
    assert not fs.monitor_served("delay", start=a, end=b, baseline=(a, b)).drifted
    assert main(["--config", config, "monitor-served", "delay", "--since", c.isoformat(),
                 "--baseline-since", a.isoformat(), "--baseline-until", b.isoformat(),
                 "--json"]) == 1
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert out["rows_baseline"] == N and out["features"][-1]["feature"] == "prediction"
    with pytest.raises(SparkfsError, match="baseline 'last week' is unknown"):
        fs.monitor_served("delay", start=c, baseline="last week")
    with pytest.raises(SparkfsError, match="no logged online requests in the baseline window"):
        fs.monitor_served("delay", start=c, baseline=(NOW - dt.timedelta(days=9),
                                                      NOW - dt.timedelta(days=8)))
