"""Web UI: the demo's store in a real browser, screenshots of the main pages in docs/screenshots

The UI (``sparkfs.ui``, what ``sparkfs serve`` shows at /ui and ``sparkfs ui --port``
serves alone) runs on a free 127.0.0.1 port; Playwright drives Debian's Chromium
(``make chromium``) to each page, waits until its Vega-Lite charts are drawn and writes a
PNG. The pages shown are chosen from what the earlier sections stored: the group with the
most statistics versions (flight_facts: two weekly batches, one quarantined), its first
numeric feature, the drift between its two largest batches, the training sets, and the
inference section's deployment (training set vs served traffic) with its lineage.
"""

from __future__ import annotations

import os
import time

OUT = os.path.join("docs", "screenshots")


def pages(fs) -> list[tuple[str, str]]:
    """(file name, path) of the pages to shoot."""
    from sparkfs.monitoring import statistics_versions

    groups = fs.list_feature_groups(latest_only=True)
    best = max(groups, key=lambda g: (len(statistics_versions(fs.catalog, g)), g.name == "flight_facts"))
    have = statistics_versions(fs.catalog, best)
    ref = f"{best.name}@{best.version}"
    stats = fs.statistics(best.name, group_version=best.version)
    numeric = next(n for n, s in stats.features.items() if s.get("histogram"))
    out = [("home.png", "/ui"), ("search.png", "/ui/search?q=delay"),
           ("group.png", f"/ui/groups/{ref}"), ("feature.png", f"/ui/features/{ref}:{numeric}")]
    if len(have) >= 2:  # the two largest batches (not a few replayed rows)
        rows = {v: fs.statistics(best.name, version=v, group_version=best.version).rows
                for v in have}
        a, b = sorted(sorted(have, key=lambda v: -rows[v])[:2])
        out.append(("drift.png", f"/ui/groups/{ref}/drift?a={a}&b={b}"))
    out.append(("training_sets.png", "/ui/training-sets"))
    for d in fs.list_deployments()[:1]:  # the inference section's: served-traffic drift, lineage
        out.append(("deployment.png", f"/ui/deployments/{d.name}"))
        out.append(("lineage.png", f"/ui/lineage/deployment:{d.name}?direction=up"))
    return out


def run(fs, ctx: dict) -> None:
    from playwright.sync_api import sync_playwright

    from sparkfs.ui import create_ui_app
    from sparkfs.ui.browser import chromium, serve

    t0 = time.perf_counter()
    os.makedirs(OUT, exist_ok=True)
    written = []
    with serve(create_ui_app(fs)) as url, sync_playwright() as p, chromium(p) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        for name, path in pages(fs):
            # the drift page computes fs.monitor in Spark before it answers
            response = page.goto(url + path, timeout=600_000)
            if response is None or response.status != 200:
                raise RuntimeError(f"{path}: HTTP {response and response.status}")
            page.wait_for_selector("body[data-charts=done]", timeout=60_000)
            target = os.path.join(OUT, name)
            page.screenshot(path=target, full_page=True)
            written.append(target)
            print(f"  {path:<55} -> {target}")
        if errors:
            raise RuntimeError(f"the UI logged console errors: {errors}")
    print("sparkfs ui --port 8000   (or `sparkfs serve`: the same pages at /ui)")
    print(f"{len(written)} screenshots in {OUT}/ ({time.perf_counter() - t0:.1f}s)")
    ctx["ui"] = {"screenshots": written}
