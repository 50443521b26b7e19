"""The web UI through FastAPI's TestClient (no browser): pages over a real store (real
Spark ingest into real Delta tables, statistics and validation reports in the real
registry), 404 pages for unknown names, escaping of user text, read-only routes, the
mount in the online service, and the notebook cards. The browser tests (drawn charts,
console errors, no outside requests) are in test_ui_browser.py and share the store
(``shared_store``)."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from sparkfs import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from sparkfs.ui import create_ui_app
from sparkfs.validation import Expectations, expect

EVIL = "<script>alert('x')</script>\"quoted\" & 'single'"
AIRPORT = Entity("airport", join_keys=["origin"])


def weather_group(version: int = 1, extra: tuple[Field, ...] = ()) -> FeatureGroup:
    suite = Expectations([expect("column_values_to_be_between", column="temp",
                                 min_value=-60, max_value=130)], name="weather")
    return FeatureGroup(
        "weather", [AIRPORT], "time_hour",
        [Field("temp", "double", "Temperature at the airport, F"),
         Field("sky", "string", "Sky condition"), *extra],
        version=version, online=True, ttl="2d", owner="data-team",
        description="Hourly NOAA weather " + EVIL, tags={"source": "noaa"},
        expectations=suite, validation="quarantine")


def weather_batch(seed: int, shift: float, n: int = 400, bad: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    temp = rng.normal(40 + shift, 10, n)
    temp[:bad] = 500.0  # out of range: quarantined
    temp[bad:bad + 7] = np.nan  # missing values are counted, not charted
    return pd.DataFrame({
        "origin": rng.choice(["JFK", "LGA", "EWR"], n),
        "time_hour": pd.Timestamp("2013-01-01", tz="UTC")
        + pd.to_timedelta(np.arange(n) + seed * n, unit="h"),
        "temp": temp,
        "sky": rng.choice(["clear", "cloudy", "rain"] if shift < 10 else ["rain", "snow"], n),
    })


def build_store(spark, data_dir: str) -> FeatureStore:
    """A store with weather@1 (two ingests with different distributions, one with
    quarantined rows, materialized once), a training set ``delays`` over it (DuckDB), a
    group ``traffic`` (no ttl, materialized), a view ``delay`` over both with a training set
    ``flights``, a model ``delay_model`` trained on it and a deployment ``delay`` serving it
    (no request logged yet), weather@2 (one more field, never ingested) and a group ``evil``
    whose text holds markup and quotes."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    fs = FeatureStore({"project": "ui", "data_dir": data_dir,
                       "ingest": {"statistics": True, "materialize": False}}, spark=spark)
    evil = FeatureGroup("evil", [AIRPORT], "ts", [Field("x", "double", EVIL, tags={"k": EVIL})],
                        description=EVIL, owner=EVIL, tags={"note": EVIL}, online=False)
    fs.apply([AIRPORT, weather_group(), evil])
    fs.ingest("weather", weather_batch(1, 0.0), run_id="weather-1")
    fs.materialize("weather")
    fs.ingest("weather", weather_batch(2, 25.0, bad=5), run_id="weather-2")
    spine = pd.DataFrame({"origin": ["JFK", "LGA", "EWR"],
                          "at": pd.to_datetime(["2013-01-05", "2013-01-20", "2013-02-10"], utc=True)})
    fs.create_training_set("delays", spine, ["weather@1:temp", "weather@1:sky"], "at",
                           engine="duckdb")
    # a view, a training set built from it, a model trained on that and a deployment
    # serving it: the lineage and deployment pages
    # (weather's ttl has long expired online, so it is served null; traffic has no ttl)
    traffic = FeatureGroup("traffic", [AIRPORT], "ts", [Field("planes", "double")],
                           online=True, description="Planes on the ground")
    fs.apply([traffic, FeatureView("delay", features=["weather@1:temp", "traffic:planes"])])
    fs.ingest("traffic", pd.DataFrame({
        "origin": ["JFK", "LGA", "EWR"], "planes": [40.0, 25.0, 18.0],
        "ts": pd.to_datetime(["2013-01-02"] * 3, utc=True)}), materialize=True)
    labelled = spine.assign(y=[1.0, 2.0, 3.0])
    flights = fs.create_training_set("flights", labelled, view="delay", timestamp_col="at",
                                     engine="duckdb").to_pandas()
    model = make_pipeline(SimpleImputer(keep_empty_features=True), LinearRegression())
    fs.log_model(model.fit(flights[["temp", "planes"]], flights["y"]), "delay_model",
                 training_set="flights", skops_trusted_types=["numpy.dtype"])
    fs.deploy("delay", model="delay_model")
    fs.apply([weather_group(2, (Field("wind_speed", "double"),))])
    return fs


_SHARED: dict[str, FeatureStore] = {}


def shared_store(spark, request) -> FeatureStore:
    """``build_store`` once per test session, for this module and the browser tests (the
    Spark ingests are most of their time); closed when the session ends."""
    if "fs" not in _SHARED:
        factory = request.getfixturevalue("tmp_path_factory")
        _SHARED["fs"] = build_store(spark, str(factory.mktemp("ui") / "data"))
        request.config.add_cleanup(_SHARED["fs"].close)
    return _SHARED["fs"]


@pytest.fixture(scope="module")
def store(spark, request):
    return shared_store(spark, request)


@pytest.fixture(scope="module")
def client(store):
    return TestClient(create_ui_app(store))


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def text_of(page: str) -> str:
    """The page's visible text (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_group_page_shows_definition_versions_statistics_and_reports(client):
    r = client.get("/ui/groups/weather@1")
    assert r.status_code == 200
    t = text_of(r.text)
    for expected in ("Temperature at the airport, F", "data-team", "source=noaa", "2d",
                     "materialized up to Delta version 1 (1 behind)", "weather-2"):
        assert expected in t, expected
    # both commits with the rows each added (400, then 395 after 5 quarantined)
    # delta-rs appends (WRITE) or delta-spark's insert-only MERGE, by the session's writer
    assert re.search(r"\b2 (WRITE|MERGE) \S+ \S+ 395 1 (WRITE|MERGE) \S+ \S+ 400 0 CREATE TABLE",
                     squash(t)), squash(t)[:3000]
    assert re.search(r"weather-2 \S+ quarantined quarantine 400 5 2", squash(t))
    # one histogram spec per numeric feature, value bars per categorical one
    assert r.text.count("chart histogram") == 1 and r.text.count("chart values") == 1
    # weather@2 added wind_speed: the diff says so
    assert "wind_speed (double)" in t
    # the latest registered version is the default and was never ingested: empty states
    t2 = text_of(client.get("/ui/groups/weather").text)
    assert "weather @2" in t2 or "weather@2" in t2
    assert "No data ingested yet" in t2 and "No statistics yet" in t2
    assert "never materialized" in t2


def test_feature_page_and_search(client):
    r = client.get("/ui/search", params={"q": "temperature"})
    assert r.status_code == 200
    assert 'href="/ui/features/weather:temp"' in r.text
    f = client.get("/ui/features/weather@1:temp")
    assert f.status_code == 200
    t = text_of(f.text)
    assert "Temperature at the airport, F" in t and "nulls 7" in t
    assert "chart histogram" in f.text
    empty = client.get("/ui/search", params={"q": "no-such-word"})
    assert empty.status_code == 200 and "Nothing matches" in empty.text


def page_drift_table(page: str) -> dict[str, list[str]]:
    """The drift table of a page: feature -> its cells as shown."""
    table = re.search(r'<table class="grid drift">(.*?)</table>', page, re.S).group(1)
    return {m.group(1): [html.unescape(c).strip() for c in
                         re.findall(r"<td>(.*?)</td>", m.group(2), re.S)]
            for m in re.finditer(r'<tr class="[^"]*" data-feature="([^"]+)">(.*?)</tr>',
                                 table, re.S)}


def test_drift_page_shows_the_numbers_of_fs_monitor(store, client):
    from sparkfs.monitoring.compare import drift_table

    r = client.get("/ui/groups/weather@1/drift", params={"a": 1, "b": 2})
    assert r.status_code == 200
    shown = page_drift_table(r.text)
    # the page's numbers are fs.monitor's (what `sparkfs monitor` prints), cell for cell
    report = store.monitor(store.get_feature_group("weather", 1), 1, versions=2)
    assert shown == {f["feature"]: cells
                     for f, cells in zip(report.features, drift_table(report))}
    # temp moved by 2.5 standard deviations and sky changed categories: both drift
    assert shown["temp"][-1] == shown["sky"][-1] == "DRIFT"
    assert abs(float(shown["temp"][2]) - report["temp"]["psi"]) < 1e-4
    assert r.text.count("chart overlay") == 2
    assert "DRIFT in 2 feature(s)" in text_of(r.text)
    same = page_drift_table(client.get("/ui/groups/weather@1/drift",
                                       params={"a": 1, "b": 1}).text)
    assert {cells[-1] for cells in same.values()} == {"ok"}
    assert same["temp"][2] == "0.0000"
    # no second version: the empty state says what to run
    empty = text_of(client.get("/ui/groups/traffic/drift").text)
    assert "sparkfs ingest traffic" in empty


def test_drift_page_compares_a_version_with_an_event_time_window(store, client):
    import datetime as dt

    from sparkfs.monitoring.compare import drift_table

    # the second batch's rows (event times from 2013-02-03) against Delta version 1
    r = client.get("/ui/groups/weather@1/drift", params={"a": 1, "start": "2013-02-03"})
    assert r.status_code == 200
    start = dt.datetime(2013, 2, 3, tzinfo=dt.UTC)
    report = store.monitor(store.get_feature_group("weather", 1), 1, start=start)
    assert page_drift_table(r.text) == {f["feature"]: cells for f, cells in
                                        zip(report.features, drift_table(report))}
    # 8 late rows of the first batch (to 2013-02-03 07:00) and the 395 of the second
    assert report.rows_current == 403 and "DRIFT in 2 feature(s)" in text_of(r.text)
    assert "--start 2013-02-03T00:00:00+00:00" in text_of(r.text)
    bad = client.get("/ui/groups/weather@1/drift", params={"a": 1, "end": "<b>soon</b>"})
    assert bad.status_code == 400
    assert "is not an ISO 8601 time" in text_of(bad.text) and "<b>soon" not in bad.text


@pytest.mark.parametrize("url, names", [
    ("/ui/groups/nope", "'nope'"),
    ("/ui/groups/weather@9", "no version 9"),
    ("/ui/features/weather:nope", "'nope'"),
    ("/ui/features/weather", "'weather'"),
    ("/ui/views/nope", "'nope'"),
    ("/ui/training-sets/nope", "'nope'"),
    ("/ui/groups/weather@1/drift?a=1&b=7", "7"),
    ("/ui/no/such/page", "/ui/no/such/page"),
])
def test_unknown_names_give_a_404_page_naming_them(client, url, names):
    r = client.get(url)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    message = re.search(r'<p class="notfound">(.*?)</p>', r.text, re.S).group(1)
    assert names in html.unescape(message)
    assert 'href="/ui/search"' in r.text


@pytest.mark.parametrize("url", ["/ui/groups/evil", "/ui/features/evil:x", "/ui/groups",
                                 "/ui/search?q=alert", "/ui/groups/%3Cscript%3E",
                                 "/ui/lineage/group:evil@1", "/ui/lineage/%3Cscript%3E:x"])
def test_user_text_is_escaped(client, url):
    r = client.get(url)
    assert "&lt;script&gt;" in r.text  # the text is shown, escaped
    assert "<script>alert" not in r.text and "'x')</script>" not in r.text
    # every <script> on the page is one of ours: the vendored bundles or a JSON spec
    for tag in re.findall(r"<script[^>]*>", r.text):
        assert tag.startswith(('<script src="/ui/static/', '<script type="application/json"')), tag


def test_ui_is_read_only_and_offline(client):
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)("/ui/groups/weather").status_code == 405
    page = client.get("/ui/groups/weather@1").text
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from another host
    assert client.get("/ui/static/vendor/vega.min.js").status_code == 200


def test_online_service_mounts_the_ui(store):
    from sparkfs.serving.app import create_app

    client = TestClient(create_app(store))
    assert client.get("/ui/groups/weather@1").status_code == 200
    assert client.get("/health").json()["status"] == "ok"
    assert "/ui" not in client.get("/openapi.json").text  # not part of the API


def test_notebook_cards(store):
    from sparkfs.monitoring.drift import DriftReport

    g = store.get_feature_group("evil")
    card = g._repr_html_()
    assert "&lt;script&gt;" in card and "<script>" not in card
    stats = store.statistics("weather", group_version=1)
    s = stats._repr_html_()
    assert s.count("<svg") == 2 and "<rect" in s  # inline histogram and value bars
    report = store.validation_report("weather", group_version=1)
    v = report._repr_html_()
    assert "QUARANTINED" in v and "5 quarantined" in v
    d = DriftReport("weather", 1, "Delta version 1", "Delta version 2", 10, 10,
                    {"psi_threshold": 0.2}, [{"feature": "temp", "kind": "numeric", "psi": 0.5,
                                              "ks_stat": None, "ks_pvalue": None,
                                              "wasserstein_std": None, "null_rate_baseline": 0.0,
                                              "null_rate_current": float("nan"),
                                              "drifted": True}])
    assert "DRIFT in temp" in d._repr_html_()
    m = store.get_training_set("delays")._repr_html_()
    assert "Training set delays@1" in m and "weather@1" in m and "3 rows" in m


def test_training_set_pages(client):
    listing = text_of(client.get("/ui/training-sets").text)
    assert "delays" in listing and "weather@1 (2)" in listing  # pinned Delta version
    page = client.get("/ui/training-sets/delays@1")
    assert page.status_code == 200
    assert "weather@1:temp" in text_of(page.text)


def layered(page: str) -> dict[str, int]:
    """Node id -> layer of the lineage graph on a page (negative: upstream)."""
    out = {}
    for level, body in re.findall(r'data-level="(-?\d+)">(.*?)(?=<div class="layer[ "]|$)', page,
                                  re.S):
        for node in re.findall(r'data-node="([^"]+)"', body):
            out[html.unescape(node)] = int(level)
    return out


def test_lineage_page_lays_out_upstream_and_downstream_nodes(client):
    up = client.get("/ui/lineage/model:delay_model@1", params={"direction": "up"})
    assert up.status_code == 200
    nodes = layered(up.text)
    assert nodes["model:delay_model@1"] == 0 and nodes["training_set:flights@1"] == -1
    assert nodes["view:delay@1"] == -2 and nodes["feature:weather@1:temp"] == -3
    assert nodes["group:weather@1"] == -4
    # the training set read Delta version 2, written by the second ingest run
    assert nodes["delta:weather@1:v2"] == -2 and nodes["run:weather@1/weather-2"] == -3
    assert "training_set:delays@1" not in nodes and "deployment:delay" not in nodes
    assert "feature:weather@1:sky" not in nodes  # not selected by the view
    assert 'href="/ui/lineage/view:delay@1"' in up.text  # each node links to its lineage
    assert 'href="/ui/views/delay@1"' in up.text  # ... and to its page
    # both ways from the training set (the default): the model and deployment downstream
    both = layered(client.get("/ui/lineage/training_set:flights@1").text)
    assert both["model:delay_model@1"] == 1 and both["deployment:delay"] == 2
    assert both["view:delay@1"] == -1
    shallow = layered(client.get("/ui/lineage/training_set:flights@1",
                                 params={"depth": 1}).text)
    assert set(shallow) == {"training_set:flights@1", "view:delay@1", "delta:weather@1:v2",
                            "delta:traffic@1:v1", "model:delay_model@1"}
    # a name without @version is the latest version
    assert "Lineage of group:weather@2" in text_of(client.get("/ui/lineage/group:weather").text)


def test_pages_link_to_their_lineage(client):
    for page, node in [("/ui/groups/weather@1", "group:weather@1"),
                       ("/ui/features/weather@1:temp", "feature:weather@1:temp"),
                       ("/ui/views/delay@1", "view:delay@1"),
                       ("/ui/training-sets/flights@1", "training_set:flights@1"),
                       ("/ui/models", "model:delay_model@1"),
                       ("/ui/deployments", "deployment:delay"),
                       ("/ui/deployments/delay", "deployment:delay")]:
        r = client.get(page)
        assert r.status_code == 200, page
        assert f'href="/ui/lineage/{node}"' in r.text, page
        assert client.get(f"/ui/lineage/{node}").status_code == 200, node


@pytest.mark.parametrize("url, status, names", [
    ("/ui/lineage/model:nope@1", 404, "'model:nope@1'"),
    ("/ui/lineage/nonsense", 404, "'nonsense'"),
    ("/ui/deployments/nope", 404, "'nope'"),
    ("/ui/lineage/group:weather@1?direction=sideways", 400, "'sideways'"),
    ("/ui/lineage/group:weather@1?depth=-1", 400, "'-1'"),
])
def test_bad_lineage_and_deployment_urls(client, url, status, names):
    r = client.get(url)
    assert r.status_code == status
    assert names in text_of(r.text)


def test_deployment_page_drift_of_served_traffic(store, client):
    before = text_of(client.get("/ui/deployments/delay").text)
    assert "No online requests are logged for delay" in before
    assert "fs.predict(\"delay\", rows)" in before  # what to run
    store.predict("delay", [{"origin": k} for k in ["JFK", "LGA", "EWR", "JFK", "nope"]])
    r = client.get("/ui/deployments/delay")
    assert r.status_code == 200
    t = squash(text_of(r.text))
    assert "training set flights@1 (3 rows)" in t and "(5 requests logged)" in t
    assert r.text.count("chart overlay") == 2  # temp and planes: training set vs served
    # weather's ttl expired online: temp is served null; planes is null for the unknown key
    # (columns: PSI, KS, KS p, Wasserstein/std, nulls, NaNs)
    assert re.search(r"temp numeric \S+ - - - 33\.3% → 100\.0% 0\.0% → 0\.0% DRIFT", t), t
    assert re.search(r"planes numeric \S+ \S+ \S+ \S+ 0\.0% → 20\.0% 0\.0% → 0\.0%", t), t
    specs = [json.loads(s) for s in re.findall(
        r'<script type="application/json" class="vl-spec">(.*?)</script>', r.text, re.S)]
    planes = next(s for s in specs if s["title"]["text"] == "planes")["data"]["values"]
    assert {row["side"] for row in planes if row["density"] > 0} == {
        "training set flights@1", "served"}  # both histograms, overlaid


def test_lineage_notebook_card(store):
    card = store.lineage("deployment:delay")._repr_html_()
    assert "Lineage of deployment:delay (up)" in card
    for node in ("model:delay_model@1", "training_set:flights@1", "group:weather@1"):
        assert f'data-node="{node}"' in card
    evil = store.lineage("group:evil@1", direction="both")._repr_html_()
    assert "&lt;script&gt;" in evil and "<script>" not in evil.replace("<style>", "")


def test_a_feature_with_only_missing_values_renders_without_a_chart(spark, tmp_path):
    """A numeric feature whose batch is all None/NaN has statistics but no histogram (and
    no value counts): its group, feature and statistics pages still render, with no chart
    for it (the demo's weather has such hours)."""
    fs = FeatureStore({"project": "ui_missing", "data_dir": str(tmp_path)}, spark=spark)
    try:
        g = FeatureGroup("gusts", [AIRPORT], "time_hour",
                         [Field("gust", "double"), Field("note", "string")])
        fs.apply([g])
        fs.ingest("gusts", pd.DataFrame({
            "origin": ["JFK", "LGA", "EWR"],
            "time_hour": pd.to_datetime(["2013-01-01", "2013-01-02", "2013-01-03"], utc=True),
            "gust": [None, np.nan, None], "note": [None, None, None]}))
        stats = fs.statistics("gusts")
        assert "histogram" not in stats["gust"] and "values" not in stats["gust"]
        client = TestClient(create_ui_app(fs))
        for url in ("/ui/groups/gusts@1", "/ui/features/gusts:gust", "/ui/features/gusts:note"):
            page = client.get(url)
            assert page.status_code == 200, (url, page.text[-500:])
        assert 'aria-label="histogram of gust"' not in client.get("/ui/groups/gusts@1").text
    finally:
        fs.close()
