"""Statistics per Delta version (and their HTML report) and drift monitoring, on real
Spark and Delta tables."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from sparkfs import Entity, FeatureGroup, Field
from sparkfs.errors import NotFoundError
from sparkfs.monitoring import render_html

SENSOR = Entity("sensor", join_keys=["sensor_id"])


def readings_group() -> FeatureGroup:
    return FeatureGroup(
        "readings", [SENSOR], "ts",
        [Field("temp", "double", "Temperature"), Field("load", "long", "Load"),
         Field("site", "string", "Site code")],
        online=False, description="Sensor readings", tags={"domain": "iot"})


def readings(n: int, seed: int, start: int = 0, temp_mean: float = 20.0, temp_sd: float = 5.0,
             sites=("a", "b", "c"), p_sites=None, null_temp: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    temp = rng.normal(temp_mean, temp_sd, n)
    temp[rng.random(n) < null_temp] = np.nan
    ids = np.arange(start, start + n)
    return pd.DataFrame({
        "sensor_id": [f"s{i}" for i in ids],
        "ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(ids, unit="s"),
        "temp": temp, "load": rng.poisson(30, n).astype("int64"),
        "site": rng.choice(list(sites), n, p=p_sites),
    })


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("monitoring")


@pytest.fixture(scope="module")
def module_fs(spark, store_dir):
    from sparkfs import FeatureStore

    store = FeatureStore({"project": "test", "data_dir": str(store_dir / "data")}, spark=spark)
    yield store
    store.close()


@pytest.fixture(scope="module")
def loaded(module_fs, spark):
    """Versions 1 and 2: fresh samples of one distribution; 3: temp shifted, sites skewed.
    Shared by the read-only tests of this module (built once)."""
    fs = module_fs
    g = readings_group()
    fs.apply([g])
    frames = [readings(3000, 1), readings(3000, 2, start=10_000),
              readings(3000, 3, start=20_000, temp_mean=23.0, p_sites=[0.7, 0.2, 0.1],
                       null_temp=0.05)]
    for i, pdf in enumerate(frames):
        fs.ingest("readings", spark.createDataFrame(pdf), run_id=f"v{i + 1}")
    return g, frames


def test_statistics_per_delta_version(module_fs, loaded):
    fs = module_fs
    g, frames = loaded
    for version, pdf in enumerate(frames, start=1):
        s = fs.statistics("readings", version=version)
        assert s.delta_version == version and s.rows == len(pdf)
        t = s["temp"]
        temp = pdf["temp"].dropna()
        assert t["count"] == len(temp) and t["nulls"] == len(pdf) - len(temp)
        assert t["min"] == pytest.approx(temp.min()) and t["max"] == pytest.approx(temp.max())
        assert t["mean"] == pytest.approx(temp.mean()) and t["stddev"] == pytest.approx(temp.std())
        assert t["quantiles"]["p50"] == pytest.approx(temp.median(), abs=0.2)
        assert abs(t["distinct"] - temp.nunique()) <= 0.1 * temp.nunique()
        assert sum(t["histogram"]["counts"]) == len(temp)
        assert len(t["histogram"]["edges"]) == len(t["histogram"]["counts"]) + 1
        assert s["site"]["values"] == pdf["site"].value_counts().to_dict()
        assert s["load"]["histogram"]["counts"] and s["load"]["min"] == pdf["load"].min()
    assert fs.statistics("readings").delta_version == 3  # latest by default
    with pytest.raises(NotFoundError, match="versions with statistics: \\[1, 2, 3\\]"):
        fs.statistics("readings", version=7)
    assert "temp" in fs.statistics("readings").to_pandas()["feature"].tolist()


def test_statistics_can_be_turned_off(spark, store_config):
    from sparkfs import FeatureStore

    fs = FeatureStore({**store_config, "ingest": {"statistics": False}}, spark=spark)
    fs.apply([readings_group()])
    fs.ingest("readings", spark.createDataFrame(readings(50, 1)), run_id="x")
    with pytest.raises(NotFoundError, match="no statistics yet"):
        fs.statistics("readings")


def test_html_report_has_one_histogram_per_numeric_feature(module_fs, loaded, tmp_path, store_dir,
                                                           capsys):
    fs = module_fs
    store_config = {"project": "test", "data_dir": str(store_dir / "data")}
    from sparkfs.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(store_config))
    out = tmp_path / "reports" / "readings.html"
    assert main(["--config", str(cfg), "stats", "readings", "--html", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Delta version 3" in printed and "temp" in printed
    page = out.read_text()
    hists = re.findall(r"class='card histogram' data-feature='(\w+)'", page)
    assert sorted(hists) == ["load", "temp"]
    pngs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(pngs) == 3  # two histograms, one bar chart of site values
    import base64

    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert render_html(fs.statistics("readings", version=1)).count("class='card histogram'") == 2


def test_describe_shows_latest_statistics(module_fs, loaded):
    fs = module_fs
    from sparkfs.monitoring import describe_statistics

    text = describe_statistics(fs.catalog, fs.get_feature_group("readings"))
    assert "Delta version 3" in text and "temp" in text and "3000 rows" in text


# -- drift ----------------------------------------------------------------------------------------
def test_no_drift_for_a_fresh_sample_of_the_same_distribution(module_fs, loaded):
    fs = module_fs
    report = fs.monitor("readings", baseline=1, versions=2)
    assert report.rows_baseline == report.rows_current == 3000
    assert not report.drifted, str(report)
    for f in report.features:
        assert f["psi"] < 0.05
    assert report["temp"]["ks_pvalue"] > 0.01 and report["temp"]["wasserstein_std"] < 0.1


def test_drift_flagged_for_a_shifted_distribution(module_fs, loaded):
    fs = module_fs
    report = fs.monitor("readings", baseline=1, versions=3)
    assert report.drifted
    assert set(report.drifted_features) == {"temp", "site"}, str(report)
    assert report["temp"]["ks_pvalue"] < 1e-6 and report["temp"]["psi"] > 0.2
    assert report["temp"]["null_rate_current"] == pytest.approx(0.05, abs=0.015)
    assert report["temp"]["wasserstein"] == pytest.approx(3.0, abs=0.5)
    assert report["site"]["psi"] > 0.2 and report["site"]["ks_stat"] is None
    assert not report["load"]["drifted"]
    df = report.to_pandas()
    assert set(df["feature"]) == {"temp", "load", "site"}
    # default window after a version baseline: every later commit
    assert fs.monitor("readings", baseline=2).current == "Delta version 3"


def test_drift_against_a_dataframe_and_event_time_window(module_fs, loaded, spark):
    fs = module_fs
    g, frames = loaded
    report = fs.monitor("readings", baseline=spark.createDataFrame(frames[0]),
                        start="2024-01-01T05:30:00", end="2024-01-01T06:30:00",
                        features=["temp"])
    assert report.current.startswith("event time") and report.rows_current == 3000
    assert [f["feature"] for f in report.features] == ["temp"] and report.drifted
    report = fs.monitor("readings", baseline=frames[0], versions=(1, 2), features=["temp"])
    assert not report.drifted


def test_drift_against_a_training_set(module_fs, loaded, spark):
    fs = module_fs
    g, frames = loaded
    spine = frames[0][["sensor_id", "ts"]]
    fs.create_training_set("temps", spine, ["readings:temp", "readings:site"],
                           timestamp_col="ts", engine="duckdb")
    assert fs.monitor("readings", baseline="temps", versions=3).drifted
    assert not fs.monitor("readings", baseline="temps", versions=2).drifted


def test_monitor_cli_exits_nonzero_on_drift(module_fs, loaded, tmp_path, store_dir, capsys):
    store_config = {"project": "test", "data_dir": str(store_dir / "data")}
    from sparkfs.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(store_config))
    assert main(["--config", str(cfg), "monitor", "readings", "--baseline", "1",
                 "--versions", "2"]) == 0
    assert "no drift" in capsys.readouterr().out
    assert main(["--config", str(cfg), "monitor", "readings", "--baseline", "1",
                 "--versions", "3"]) == 1
    out = capsys.readouterr().out
    assert "DRIFT in 2 feature(s)" in out and "temp" in out
    assert main(["--config", str(cfg), "monitor", "readings", "--baseline", "1..2",
                 "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["drifted"] is True
    assert main(["--config", str(cfg), "monitor", "readings", "--baseline", "9"]) == 2
