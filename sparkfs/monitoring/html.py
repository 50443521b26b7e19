"""A self-contained HTML statistics report: a summary table and one histogram (PNG,
embedded as base64, drawn with matplotlib's Agg backend) per numeric feature, and a bar
chart of value counts per low-cardinality categorical feature. Needs no Spark.
"""

from __future__ import annotations

import base64
import html
import io
import os
from typing import TYPE_CHECKING

from .stats import Statistics, _fmt

if TYPE_CHECKING:  # pragma: no cover
    from ..definitions import FeatureGroup


def _figure() -> type:
    """matplotlib's ``Figure`` (the ``monitoring`` extra)."""
    from .._extras import require

    require("matplotlib", extra="monitoring", what="the HTML report's charts")
    from matplotlib.figure import Figure

    return Figure


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def histogram_png(name: str, hist: dict) -> str:
    """A base64 PNG of one numeric feature's histogram."""
    Figure = _figure()

    edges, counts = hist["edges"], hist["counts"]
    fig = Figure(figsize=(5.2, 2.6))
    ax = fig.add_subplot()
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    ax.bar(edges[:-1], counts, width=widths, align="edge", color="#4C72B0", edgecolor="white")
    ax.set_title(name + (" (p1..p99; edge bins hold the tails)" if hist.get("clipped") else ""),
                 fontsize=10)
    ax.set_ylabel("rows")
    ax.tick_params(labelsize=8)
    return _png(fig)


def values_png(name: str, values: dict) -> str:
    """A base64 PNG bar chart of a categorical feature's value counts."""
    Figure = _figure()

    items = list(values.items())[:20]
    fig = Figure(figsize=(5.2, 0.4 + 0.22 * len(items)))
    ax = fig.add_subplot()
    ax.barh([str(k) for k, _ in items][::-1], [v for _, v in items][::-1], color="#55A868")
    ax.set_title(name, fontsize=10)
    ax.tick_params(labelsize=8)
    return _png(fig)


def render_html(stats: Statistics, group: "FeatureGroup | None" = None) -> str:
    """The report as one HTML string."""
    e = html.escape
    title = f"{stats.group} v{stats.group_version} — Delta version {stats.delta_version}"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>sparkfs statistics: {e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}"
        ".grid{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;padding:.5em}"
        "</style></head><body>",
        f"<h1>Feature statistics: {e(title)}</h1>",
        f"<p>{stats.rows} rows committed at Delta version {stats.delta_version}; computed "
        f"{e(stats.computed_at[:19])}Z.</p>",
    ]
    if group is not None and group.description:
        parts.append(f"<p>{e(group.description)}</p>")
    cols = ("feature", "dtype", "count", "nulls", "min", "max", "mean", "stddev", "p1", "p50",
            "p99", "distinct")
    parts.append("<h2>Summary</h2><table><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>")
    for name, s in stats.features.items():
        q = s.get("quantiles") or {}
        vals = (name, s.get("dtype"), s.get("count"), s.get("nulls"), s.get("min"), s.get("max"),
                s.get("mean"), s.get("stddev"), q.get("p1"), q.get("p50"), q.get("p99"),
                s.get("distinct"))
        parts.append("<tr>" + "".join(f"<td>{e(_fmt(v))}</td>" for v in vals) + "</tr>")
    parts.append("</table>")
    hists = [(n, s["histogram"]) for n, s in stats.features.items() if s.get("histogram")]
    if hists:
        parts.append("<h2>Histograms</h2><div class='grid'>")
        for name, h in hists:
            parts.append(f"<div class='card histogram' data-feature='{e(name)}'>"
                         f"<img alt='histogram of {e(name)}' "
                         f"src='data:image/png;base64,{histogram_png(name, h)}'></div>")
        parts.append("</div>")
    cats = [(n, s["values"]) for n, s in stats.features.items() if s.get("values")]
    if cats:
        parts.append("<h2>Value counts</h2><div class='grid'>")
        for name, v in cats:
            parts.append(f"<div class='card values' data-feature='{e(name)}'>"
                         f"<img alt='value counts of {e(name)}' "
                         f"src='data:image/png;base64,{values_png(name, v)}'></div>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(stats: Statistics, path: str | os.PathLike,
               group: "FeatureGroup | None" = None) -> str:
    """Write the report to ``path`` (directories are created); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render_html(stats, group))
    return path
