"""The web UI through FastAPI's TestClient (no browser): pages over a real store (real
Spark ingest into real Delta tables, statistics and validation reports in the real
registry), 404 pages for unknown names, escaping of user text, read-only routes, the
mount in the online service, and the notebook cards. The browser tests (drawn charts,
console errors, no outside requests) are in test_ui_browser.py and share the store
(``shared_store``)."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from sparkfs import Entity, FeatureGroup, FeatureStore, Field
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
    quarantined rows, materialized once), a training set over
    it (DuckDB), weather@2 (one more field, never ingested) and a group ``evil`` whose text
    holds markup and quotes."""
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
    assert re.search(r"\b2 WRITE \S+ \S+ 395 1 WRITE \S+ \S+ 400 0 CREATE TABLE", squash(t))
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


def test_drift_page_compares_two_versions(client):
    r = client.get("/ui/groups/weather@1/drift", params={"a": 1, "b": 2})
    assert r.status_code == 200
    t = text_of(r.text)
    # temp moved by 2.5 standard deviations and sky changed categories: both drift
    assert t.count("DRIFT") >= 2
    assert r.text.count("chart overlay") == 2
    same = text_of(client.get("/ui/groups/weather@1/drift", params={"a": 1, "b": 1}).text)
    assert "DRIFT" not in same.replace("drift (PSI", "")


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
                                 "/ui/search?q=alert", "/ui/groups/%3Cscript%3E"])
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
