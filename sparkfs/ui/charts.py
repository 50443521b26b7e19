"""Charts: Vega-Lite specs for the web pages (rendered in the browser by the vendored
vega-embed, as SVG) and small inline SVG bar charts for notebook cards (no JavaScript, so
they show in Jupyter, Databricks and GitHub's notebook viewer alike).

>>> spec = histogram_spec("temp", {"edges": [0.0, 1.0, 2.0], "counts": [3, 1]})
>>> spec["mark"]["type"], len(spec["data"]["values"])
('bar', 2)
>>> svg = inline_bars([3, 1], "temp")
>>> svg.count("<rect")
2
"""

from __future__ import annotations

import html
import json
from typing import Any

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
BLUE, ORANGE, GREEN = "#4C72B0", "#DD8452", "#55A868"


def _base(title: str, width: int = 320, height: int = 150) -> dict:
    return {"$schema": SCHEMA, "title": {"text": title, "fontSize": 12}, "width": width,
            "height": height, "config": {"view": {"stroke": None}, "axis": {"labelFontSize": 10}}}


def histogram_spec(name: str, hist: dict) -> dict:
    """A numeric feature's stored histogram (``{"edges", "counts"}``) as bars."""
    edges, counts = hist["edges"], hist["counts"]
    rows = [{"start": a, "end": b, "rows": c} for a, b, c in zip(edges[:-1], edges[1:], counts)]
    title = name + (" (p1..p99; edge bins hold the tails)" if hist.get("clipped") else "")
    return {**_base(title), "data": {"values": rows},
            "mark": {"type": "bar", "color": BLUE, "stroke": "white", "strokeWidth": 0.5},
            "encoding": {"x": {"field": "start", "bin": {"binned": True}, "type": "quantitative",
                               "title": name},
                         "x2": {"field": "end"},
                         "y": {"field": "rows", "type": "quantitative", "title": "rows"},
                         "tooltip": [{"field": "start"}, {"field": "end"}, {"field": "rows"}]}}


def values_spec(name: str, values: dict) -> dict:
    """A categorical feature's value counts as horizontal bars (the 20 most frequent)."""
    items = sorted(values.items(), key=lambda kv: -kv[1])[:20]
    rows = [{"value": str(k), "rows": v} for k, v in items]
    return {**_base(name, height=max(40, 16 * len(rows))), "data": {"values": rows},
            "mark": {"type": "bar", "color": GREEN},
            "encoding": {"y": {"field": "value", "type": "nominal", "sort": "-x", "title": None},
                         "x": {"field": "rows", "type": "quantitative"},
                         "tooltip": [{"field": "value"}, {"field": "rows"}]}}


def overlay_spec(name: str, rows: list[dict], labels: tuple[str, str], numeric: bool) -> dict:
    """Two distributions of one feature, overlaid (drift page). ``rows``: ``{"start", "end",
    "density", "side"}`` (numeric) or ``{"value", "share", "side"}`` (categorical)."""
    color = {"field": "side", "type": "nominal", "title": None,
             "scale": {"domain": list(labels), "range": [BLUE, ORANGE]}}
    if numeric:
        enc = {"x": {"field": "start", "bin": {"binned": True}, "type": "quantitative",
                     "title": name},
               "x2": {"field": "end"},
               "y": {"field": "density", "type": "quantitative", "stack": None,
                     "title": "density (share of rows per unit)"},
               "color": color, "tooltip": [{"field": "side"}, {"field": "start"},
                                           {"field": "end"},
                                           {"field": "density", "format": ".4g"}]}
        return {**_base(name, 360), "data": {"values": rows},
                "mark": {"type": "bar", "opacity": 0.55}, "encoding": enc}
    enc = {"y": {"field": "value", "type": "nominal", "title": None},
           "yOffset": {"field": "side"},
           "x": {"field": "share", "type": "quantitative", "title": "share of rows",
                 "axis": {"format": "%"}},
           "color": color, "tooltip": [{"field": "side"}, {"field": "value"},
                                       {"field": "share", "format": ".2%"}]}
    n = len({r["value"] for r in rows})
    return {**_base(name, 360, max(40, 22 * n)), "data": {"values": rows},
            "mark": {"type": "bar"}, "encoding": enc}


def spec_json(spec: dict) -> str:
    """``spec`` as JSON safe inside ``<script type="application/json">`` (no ``</script>``,
    no HTML comment openers can close it).

    >>> spec_json({"t": "</script><b>"})
    '{"t": "\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
    """
    return (json.dumps(spec, allow_nan=False, default=str)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def inline_bars(counts: list[Any], title: str = "", width: int = 160, height: int = 36,
                color: str = BLUE) -> str:
    """A tiny SVG bar chart of ``counts`` (None counts as 0) for notebook cards."""
    vals = [float(c or 0) for c in counts]
    top = max(vals, default=0.0) or 1.0
    n = max(len(vals), 1)
    w = width / n
    bars = "".join(
        f"<rect x='{i * w:.1f}' y='{height - v / top * height:.1f}' width='{max(w - 1, 0.5):.1f}' "
        f"height='{v / top * height:.1f}' fill='{color}'></rect>" for i, v in enumerate(vals))
    label = html.escape(title, quote=True)
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"role='img' aria-label='{label}'><title>{label}</title>{bars}</svg>")
