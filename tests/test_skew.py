"""The skew report on a real deployment (MLflow model, SQLite online store, Delta
evaluation log): clean traffic has no skew; an injected materialization lag and a ttl
expiry are flagged on exactly the affected requests with their cause; DuckDB and Spark
recomputes give the same report; the CLI exit codes."""

from __future__ import annotations

import datetime as dt
import json
import math

import pandas as pd
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from sparkfs.cli import main
from sparkfs.errors import NotFoundError, SparkfsError

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
airport = Entity("airport", join_keys=["origin"])


def weather(ttl=None):
    return FeatureGroup("weather", [airport], "time_hour",
                        [Field("temp", "double"), Field("wind", "double")], online=True, ttl=ttl)


# an on-demand feature computed from a group's feature (it lags when the group lags), in a
# repo file so that the CLI can import the same code (`sparkfs skew --repo`)
REPO = '''
import pandas as pd
from sparkfs import transform


@transform(output="double", on_demand=True, features={"temp": "weather:temp"})
def temp_c(temp: pd.Series) -> pd.Series:
    return (temp - 32.0) * 5.0 / 9.0
'''


def hours(h):
    return pd.Timestamp(NOW - dt.timedelta(hours=h))


def _repo(config):
    """``--repo`` and the repo file next to ``config``: the CLI imports temp_c's code."""
    import os

    return ["--repo", os.path.join(os.path.dirname(config), "skew_repo.py")]


def _mark():
    return dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    from sparkfs.repo import load_repo

    root = tmp_path_factory.mktemp("skew")
    (root / "skew_repo.py").write_text(REPO)
    [temp_c] = [o for o in load_repo(str(root / "skew_repo.py")) if o.name == "temp_c"]
    fs = FeatureStore({"project": "test", "data_dir": str(root / "data")}, spark=spark)
    fs.apply([weather(), temp_c, FeatureView("delay", features=["weather:temp", "weather:wind",
                                                                "temp_c:temp_c"])])
    # EWR's wind is null: served null and recomputed null is a match, not skew
    rows = [("JFK", hours(10), 30.0, 5.0), ("JFK", hours(2), 35.0, 12.0),
            ("LGA", hours(9), 28.0, 20.0), ("EWR", hours(3), 40.0, None)]
    fs.ingest("weather", pd.DataFrame(rows, columns=["origin", "time_hour", "temp", "wind"]),
              run_id="w1", materialize=True)
    spine = pd.DataFrame({"origin": ["JFK", "LGA", "EWR"],
                          "ts": [hours(1), hours(1), hours(1)], "y": [1.0, 2.0, 3.0]})
    ts = fs.create_training_set("delays", spine, view="delay", timestamp_col="ts",
                                engine="duckdb")
    data = ts.to_pandas()
    model = make_pipeline(SimpleImputer(), LinearRegression())  # takes the NaN and the null
    fs.log_model(model.fit(data[["temp", "wind", "temp_c"]], data["y"]), "delay_model",
                 training_set="delays", skops_trusted_types=["numpy.dtype"])
    fs.deploy("delay", model="delay_model")
    config = root / "sparkfs.yaml"
    config.write_text(f"project: test\ndata_dir: {root / 'data'}\n")
    yield fs, str(config)
    fs.close()


def test_clean_traffic_has_no_skew_and_nulls_match(store, capsys):
    fs, config = store
    start = _mark()
    served = fs.predict("delay", [{"origin": "JFK"}, {"origin": "LGA"}, {"origin": "EWR"},
                                  {"origin": "SFO"}])
    assert served.features["wind"][2] is None and served.features["temp"][3] is None
    r = fs.skew_report("delay", start=start)
    assert r.requests == 4 and r.failing() == [] and r.findings == []
    for f in r.features:
        assert (f["matches"], f["skew_rate"], f["causes"], f["sample"]) == (4, 0.0, {}, [])
    assert main(["--config", config, "skew", "delay", "--since", start.isoformat(),
                 *_repo(config)]) == 0
    assert "no skew above 0.0" in capsys.readouterr().out


def test_lag_is_flagged_on_the_affected_requests_and_both_engines_agree(store, capsys):
    fs, config = store
    # new weather for JFK arrives but is not materialized
    fs.ingest("weather", pd.DataFrame({"origin": ["JFK"], "time_hour": [hours(1)],
                                       "temp": [36.5], "wind": [13.0]}), run_id="w2",
              materialize=False)
    start = _mark()
    fs.predict("delay", [{"origin": "JFK"}, {"origin": "LGA"}])
    fs.predict("delay", [{"origin": "JFK"}])
    r = fs.skew_report("delay", start=start, threshold=0.1)
    assert r.requests == 3 and r.failing() == ["temp", "wind", "temp_c"]
    temp = r.feature("temp")
    assert (temp["mismatches"], temp["matches"], temp["causes"]) == \
        (2, 1, {"materialization_lag": 2})
    assert temp["max_abs_diff"] == pytest.approx(1.5)
    # the on-demand feature reads the lagging group: the same requests, the same cause
    assert r.feature("temp_c")["causes"] == {"materialization_lag": 2}
    assert [(s["entity"], s["served"], s["offline"], s["cause"]) for s in temp["sample"]] == \
        [({"origin": "JFK"}, 35.0, 36.5, "materialization_lag")] * 2
    spark_r = fs.skew_report("delay", start=start, threshold=0.1, engine="spark")
    assert spark_r.features == r.features
    assert main(["--config", config, "skew", "delay", "--since", start.isoformat(),
                 *_repo(config), "--threshold", "0.1", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["failing"] == ["temp", "wind", "temp_c"]
    # a threshold above the skew rate passes
    assert main(["--config", config, "skew", "delay", "--since", start.isoformat(),
                 *_repo(config), "--threshold", "0.7"]) == 0
    capsys.readouterr()
    fs.materialize("weather", engine="local")


def test_ttl_expiry_is_flagged_with_its_cause(store):
    fs, _ = store
    start = _mark()
    fs.predict("delay", [{"origin": "EWR"}, {"origin": "JFK"}])  # EWR's row is 3 h old
    fs.apply([weather(ttl="2h")])  # a ttl shorter than EWR's age: offline expires it
    r = fs.skew_report("delay", start=start)
    temp = r.feature("temp")
    assert (temp["missing_offline"], temp["matches"], temp["causes"]) == \
        (1, 1, {"ttl_expiry": 1})
    assert temp["sample"][0]["entity"] == {"origin": "EWR"}
    assert temp["sample"][0]["served"] == 40.0 and temp["sample"][0]["offline"] is None
    assert r.feature("temp_c")["causes"] == {"ttl_expiry": 1}
    wind = r.feature("wind")  # EWR's wind is null either way: not skew
    assert wind["matches"] == 2 and wind["causes"] == {}


def test_bad_input_is_refused(store, capsys):
    fs, config = store
    with pytest.raises(NotFoundError, match="deployment 'nope' does not exist"):
        fs.skew_report("nope")
    future = NOW + dt.timedelta(days=1)
    with pytest.raises(SparkfsError, match="no logged online requests"):
        fs.skew_report("delay", start=future)
    with pytest.raises(SparkfsError, match="engine 'polars'"):
        fs.skew_report("delay", engine="polars")
    with pytest.raises(SparkfsError, match="threshold"):
        fs.skew_report("delay", threshold=1.5)
    assert main(["--config", config, "skew", "delay", "--since", future.isoformat()]) == 2
    assert "no logged online requests" in capsys.readouterr().err


def test_reports_are_stored_listed_and_read_back(store, capsys):
    import subprocess
    import sys

    fs, config = store
    start = _mark()
    fs.predict("delay", [{"origin": "JFK"}, {"origin": "LGA"}])
    r = fs.skew_report("delay", start=start, save=True)
    assert r.report_id and f"stored as {r.report_id}" in str(r)
    code = main(["--config", config, "skew", "delay", "--since", start.isoformat(),
                 *_repo(config), "--save", "--json"])
    cli = json.loads(capsys.readouterr().out)
    assert code == (1 if cli["failing"] else 0) and cli["report_id"] not in (None, r.report_id)
    rows = fs.list_skew_reports("delay")
    assert [x["report_id"] for x in rows][-2:] == [r.report_id, cli["report_id"]]
    mine = rows[-2]
    assert mine["skew_rates"] == {f["feature"]: f["skew_rate"] for f in r.features}
    assert (mine["deployment"], mine["model"], mine["requests"], mine["failing"]) == \
        ("delay", r.model, 2, r.failing())
    assert fs.get_skew_report(r.report_id[:8]).to_dict() == r.to_dict()  # a prefix will do
    assert fs.list_skew_reports("delay", start=_mark()) == []  # by when they were made

    assert main(["--config", config, "skew", "--list", "--json"]) == 0
    assert [x["report_id"] for x in json.loads(capsys.readouterr().out)][-2:] == \
        [r.report_id, cli["report_id"]]
    assert main(["--config", config, "skew", "delay", "--list"]) == 0
    assert r.report_id[:12] in capsys.readouterr().out
    assert main(["--config", config, "skew", "--show", r.report_id]) == \
        (1 if r.failing() else 0)
    assert f"stored as {r.report_id}" in capsys.readouterr().out

    # read back without Spark, in a fresh process
    code = ("import sys; from sparkfs import FeatureStore; "
            f"fs = FeatureStore.from_config({config!r}); "
            f"print(fs.get_skew_report({r.report_id!r}).requests, "
            "len(fs.list_skew_reports()), 'pyspark' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    assert out == ["2", str(len(fs.list_skew_reports())), "False"]

    # bad input
    with pytest.raises(NotFoundError, match=r"deployments with stored reports: \['delay'\]"):
        fs.list_skew_reports("nope")
    with pytest.raises(NotFoundError, match="did you mean"):
        fs.get_skew_report(r.report_id[:-1] + ("0" if r.report_id[-1] != "0" else "1"))
    assert main(["--config", config, "skew", "--show", "zzzzzzzz"]) == 2
    assert "no stored skew report 'zzzzzzzz'" in capsys.readouterr().err
    assert main(["--config", config, "skew"]) == 2
    assert main(["--config", config, "skew", "delay", "--list", "--save"]) == 2
    capsys.readouterr()


def test_null_and_nan_are_compared_exactly():
    """A null and a NaN are different values; two NaNs or two nulls match."""
    import pyarrow as pa

    from sparkfs.monitoring.skew import _compare

    served = pa.chunked_array([[1.0, None, math.nan, None, math.nan, 2.0, 3.0]], pa.float64())
    offline = pa.chunked_array([[1.0, None, math.nan, math.nan, None, 2.5, 3.0 + 1e-12]],
                               pa.float64())
    state, diff = _compare(served, offline)
    # 0 match, 1 missing online (served null), 2 missing offline, 3 mismatch
    assert state.tolist() == [0, 0, 0, 1, 2, 3, 0]
    assert diff[5] == pytest.approx(0.5)
    s = pa.chunked_array([["a", None, "b"]])
    o = pa.chunked_array([["a", "x", "c"]])
    assert _compare(s, o)[0].tolist() == [0, 1, 3]
