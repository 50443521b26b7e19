"""Notebook cards: the ``_repr_html_`` of feature groups, statistics, training sets, drift
and validation reports. They render the same Jinja2 macros as the web pages
(``templates/cards.html``, autoescaped) with a small inline style and inline SVG charts, so
they need no JavaScript and show in Jupyter, Databricks and static notebook viewers.

>>> from sparkfs import Entity, FeatureGroup, Field
>>> g = FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
...                  [Field("temp", "double", "<b>F</b>")])
>>> card = group_card(g)
>>> "weather@1" in card, "&lt;b&gt;F&lt;/b&gt;" in card
(True, True)
"""

from __future__ import annotations

from typing import Any

STYLE = ("<style>.sfs-card{font:13px/1.4 system-ui,sans-serif;border:1px solid #d1d9e0;"
         "border-radius:8px;padding:.5em 1em;margin:.3em 0;max-width:1100px}"
         ".sfs-card h3{margin:.2em 0 .4em;font-size:14px}"
         ".sfs-card table.grid{border-collapse:collapse;margin:.3em 0}"
         ".sfs-card table.grid th,.sfs-card table.grid td{border:1px solid #d1d9e0;"
         "padding:2px 6px;text-align:left;vertical-align:top}"
         ".sfs-card table.grid th{background:#f6f8fa}.sfs-card table.kv th{text-align:left;"
         "color:#59636e;font-weight:500;padding-right:1em}"
         ".sfs-card .tag{background:#ddf4ff;border-radius:8px;padding:0 .4em}"
         ".sfs-card tr.drifted td{color:#cf222e}</style>")


def _render(macro: str, *args: Any) -> str:
    from .templating import environment

    env = environment()
    template = env.from_string("{% import 'cards.html' as c %}{{ c." + macro + "(*args) }}")
    return STYLE + template.render(args=args)


def group_card(group: Any) -> str:
    """A feature group's definition: entities, event time, owner, tags, ttl, features."""
    return _render("group_card", group)


def statistics_card(stats: Any) -> str:
    """Per-feature statistics with an inline histogram (or value bars) per feature."""
    return _render("stats_card", stats)


def manifest_card(manifest: dict, name: str | None = None, version: int | None = None) -> str:
    """A training set's manifest: engine, view, spine, pinned Delta version per group."""
    return _render("manifest_card", name, version, manifest)


def drift_card(report: Any) -> str:
    """A ``DriftReport``: verdict, both windows and the per-feature PSI/KS table."""
    return _render("drift_card", report)


def validation_card(report: Any) -> str:
    """A ``ValidationReport``: status, row accounting and each expectation's result."""
    return _render("validation_card", report)
