"""The web UI in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium,
installed by `make chromium`) against the UI served by uvicorn on 127.0.0.1 over a real
store (Spark ingest, Delta, stored statistics). Charts must be drawn (SVG marks with
non-zero size), pages must log no console error, and no request may leave 127.0.0.1."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from sparkfs.ui import create_ui_app
from sparkfs.ui.browser import CHROMIUM, chromium, serve


@pytest.fixture(scope="module")
def store(spark, request):
    from test_ui import shared_store

    return shared_store(spark, request)


@pytest.fixture(scope="module")
def base_url(store):
    with serve(create_ui_app(store)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing: run `make chromium` (make setup installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI must run the browser tests
        pytest.skip(message)
    with sync_playwright() as p, chromium(p) as b:
        yield b


class Watched:
    """A page whose console errors, page errors and requests off 127.0.0.1 are recorded
    (requests elsewhere are aborted by route interception)."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.requests: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route):
        url = route.request.url
        self.requests.append(url)
        host = urlsplit(url).hostname
        if url.startswith("data:") or host == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def open(self, url: str):
        self.page.goto(url, timeout=180_000)  # the drift page computes in Spark first
        self.page.wait_for_selector("body[data-charts=done]", timeout=60_000)
        return self.page

    def close(self):
        self.context.close()


@pytest.fixture
def watched(browser):
    w = Watched(browser)
    yield w
    w.close()
    assert w.errors == [], f"console errors: {w.errors}"
    assert w.outside == [], f"requests off 127.0.0.1: {w.outside}"


def drawn_bars(page, chart_selector: str) -> list[dict]:
    """Size and fill of every bar Vega drew as SVG in the charts matching the selector."""
    return page.eval_on_selector_all(
        f"{chart_selector} .vl-target svg .mark-rect path",
        "els => els.map(e => { const b = e.getBBox(); return {w: b.width, h: b.height, "
        "fill: e.getAttribute('fill')}; })")


def test_search_finds_a_feature_whose_page_draws_its_histogram(base_url, watched):
    page = watched.open(base_url + "/ui")
    page.fill("form.search.big input[name=q]", "temperature")
    page.click("form.search.big button")
    page.wait_for_selector("table.results")
    link = page.locator("table.results a", has_text="weather:temp")
    assert link.count() == 1
    link.click()
    page.wait_for_selector("body[data-charts=done]")
    assert page.locator("h1").inner_text() == "Feature weather:temp"
    # the latest version (weather@2) has no data yet: the page says what to run
    assert "No statistics for this feature yet" in page.locator("main").inner_text()
    page = watched.open(base_url + "/ui/features/weather@1:temp")
    assert page.locator(".chart.histogram .vl-target").get_attribute("data-rendered") == "true"
    bars = drawn_bars(page, ".chart.histogram")
    assert len(bars) >= 10
    assert sum(1 for b in bars if b["h"] > 1 and b["w"] > 1) >= 10


def test_drift_page_overlays_two_histograms(base_url, watched):
    page = watched.open(base_url + "/ui/groups/weather@1/drift?a=1&b=2")
    charts = page.locator(".chart.overlay")
    assert charts.count() == 2
    assert page.locator(".chart.overlay .vl-target[data-rendered=true]").count() == 2
    bars = drawn_bars(page, ".chart.overlay:has-text('temp')")
    fills = {b["fill"] for b in bars if b["h"] > 0.5}
    assert len(fills) == 2, fills  # baseline and current, drawn in their own colours
    assert page.locator("table.drift tr.drifted").count() == 2


def test_drift_page_numbers_are_those_of_fs_monitor(base_url, watched, store):
    page = watched.open(base_url + "/ui/groups/weather@1")
    with page.expect_navigation(timeout=180_000):
        page.click("a[href$='/drift']")
    page.wait_for_selector("body[data-charts=done]", timeout=60_000)
    page.select_option("select[name=a]", "1")
    page.select_option("select[name=b]", "2")
    with page.expect_navigation(timeout=180_000):
        page.click("form.pick:not(.window) button")
    page.wait_for_selector("table.drift")
    page.wait_for_selector("body[data-charts=done]")
    header = page.eval_on_selector_all("table.drift th", "els => els.map(e => e.innerText)")
    shown = {row[0]: dict(zip(header, row)) for row in page.eval_on_selector_all(
        "table.drift tr[data-feature]",
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(td => td.innerText))")}
    report = store.monitor(store.get_feature_group("weather", 1), 1, versions=2)
    assert sorted(shown) == sorted(f["feature"] for f in report.features)
    for f in report.features:
        cells = shown[f["feature"]]
        for column, key, tolerance in (("PSI", "psi", 5e-5), ("KS", "ks_stat", 5e-5),
                                       ("WASSERSTEIN/STD", "wasserstein_std", 5e-5)):
            if f[key] is None:
                assert cells[column] == "-"
            else:
                assert abs(float(cells[column]) - f[key]) <= tolerance, (column, cells)
        if f["ks_pvalue"] is not None:
            assert float(cells["KS P"]) == pytest.approx(f["ks_pvalue"], rel=5e-3, abs=1e-300)
        assert cells["DRIFT"] == ("DRIFT" if f["drifted"] else "ok")
    assert page.locator(".verdict").inner_text() == (
        "DRIFT in 2 feature(s): " + ", ".join(report.drifted_features))


def test_deep_links_load_directly(base_url, watched):
    page = watched.open(base_url + "/ui/groups/weather@1")
    assert page.locator("h1").inner_text().startswith("Feature group weather")
    assert len(drawn_bars(page, ".chart.histogram")) >= 10
    assert len(drawn_bars(page, ".chart.values")) == 2  # rain, snow in the latest batch
    page = watched.open(base_url + "/ui/features/weather:temp")
    assert page.locator("h1").inner_text() == "Feature weather:temp"
    # only the page, its CSS and the vendored scripts were fetched, all from the server
    assert all(urlsplit(u).hostname == "127.0.0.1" for u in watched.requests)
    assert any(u.endswith("/ui/static/vendor/vega.min.js") for u in watched.requests)


def test_unknown_names_deep_link_to_a_404_page(base_url, browser):
    page = browser.new_page()  # Chromium logs the 404 itself as a console error
    try:
        missing = page.goto(base_url + "/ui/groups/nope@3")
        assert missing.status == 404
        assert "'nope'" in page.locator("p.notfound").inner_text()
        page.click("text=Search the feature store")
        assert page.url.endswith("/ui/search")
    finally:
        page.close()


def test_markup_in_names_is_shown_not_run(base_url, watched):
    page = watched.open(base_url + "/ui/groups/evil")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.reload()
    page.wait_for_selector("body[data-charts=done]")
    assert "<script>alert('x')</script>\"quoted\"" in page.locator(".description").inner_text()
    assert dialogs == []


def test_lineage_page_lays_out_layers_and_links_navigate(base_url, watched):
    page = watched.open(base_url + "/ui/lineage/training_set:flights@1")
    assert page.locator("h1").inner_text() == "Lineage of training_set:flights@1"
    # upstream layers are drawn left of the root, downstream ones right of it
    x = {node: page.locator(f'.lnode[data-node="{node}"]').bounding_box()["x"]
         for node in ("view:delay@1", "training_set:flights@1", "model:delay_model@1",
                      "deployment:delay")}
    assert x["view:delay@1"] < x["training_set:flights@1"] < x["model:delay_model@1"] \
        < x["deployment:delay"]
    page.click('.lnode[data-node="view:delay@1"] a.lname')
    page.wait_for_selector("body[data-charts=done]")
    assert page.url.endswith("/ui/lineage/view:delay@1")
    assert page.locator(".lnode.lroot").get_attribute("data-node") == "view:delay@1"
    page.click('.lnode[data-node="group:weather@1"] a.lpage')  # to the group's own page
    page.wait_for_selector("body[data-charts=done]")
    assert page.url.endswith("/ui/groups/weather@1")
    page.click("a.lineage-link")  # and back to its lineage
    page.wait_for_selector("body[data-charts=done]")
    assert page.locator("h1").inner_text() == "Lineage of group:weather@1"
