"""Notebook cards: the ``_repr_html_`` of feature groups, statistics, training sets, drift
and validation reports and lineage. They render the same Jinja2 macros as the web pages
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
         ".sfs-card tr.drifted td{color:#cf222e}"
         ".sfs-card .lineage-graph{display:flex;gap:1em;align-items:flex-start;overflow-x:auto}"
         ".sfs-card .layer{display:flex;flex-direction:column;gap:.4em;min-width:12em}"
         ".sfs-card .layer-title,.sfs-card .lkind{color:#59636e;font-size:11px;"
         "text-transform:uppercase;display:block}"
         ".sfs-card .lnode{border:1px solid #d1d9e0;border-left:4px solid #0969da;"
         "border-radius:6px;padding:2px 6px;word-break:break-all}"
         ".sfs-card .lroot{background:#f6f8fa;font-weight:600}"
         ".sfs-card .ldetail,.sfs-card .lvia{color:#59636e;font-size:12px;font-weight:400}"
         "</style>")


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


def lineage_card(lin: Any) -> str:
    """A ``sparkfs.lineage.Lineage`` as the lineage page's layered layout: one column per
    hop from the root (upstream left, downstream right), each node with its kind, details
    and the edges that reach it; warnings below.

    >>> from sparkfs.lineage import Graph
    >>> g = Graph()
    >>> g.add_node("group:w@1", "group", "w", 1)
    >>> g.add_node("view:<v>@1", "view", "<v>", 1)
    >>> g.add_edge("group:w@1", "view:<v>@1", "selected_by")
    >>> card = lineage_card(g.walk("group:w@1", "down"))
    >>> "view:&lt;v&gt;@1" in card, "selected by group:w@1" in card
    (True, True)
    """
    from .lineage import layers

    return _render("lineage_card", lin, layers(lin))


def validation_card(report: Any) -> str:
    """A ``ValidationReport``: status, row accounting and each expectation's result."""
    return _render("validation_card", report)
