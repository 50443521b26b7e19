"""The pictures and rows of the UI's drift pages (no Spark here, no store).

The numbers come from one place: a ``DriftReport`` computed by
``sparkfs.monitoring.drift.monitor`` (``fs.monitor``, what ``sparkfs monitor`` prints) or
``fs.monitor_served`` (``sparkfs monitor-served``), shown as the cells of
``sparkfs.monitoring.compare.drift_table``. This module adds the overlaid distributions:
for two Delta versions of a group, each version's stored histogram (numeric, as a density,
so bins of different widths compare) or value counts (categorical, as shares); for a
deployment, the training set's and the served requests' values.

>>> from sparkfs.monitoring import Statistics
>>> a = Statistics("g", 1, 1, 4, {"x": {"kind": "numeric",
...                "histogram": {"edges": [0.0, 1.0, 2.0], "counts": [1, 3]}}})
>>> sorted(overlay_charts(a, a, ("v1", "v2")))
['x']
"""

from __future__ import annotations

from typing import Any

from ..monitoring.compare import drift_table
from .charts import overlay_spec


def overlay_charts(a: Any, b: Any, labels: tuple[str, str]) -> dict[str, dict]:
    """Per feature both ``Statistics`` describe, a Vega-Lite spec of the two overlaid
    distributions (numeric: each side's histogram as a density; categorical: each value's
    share). Features without a histogram or value counts on both sides get none."""
    out = {}
    for name, sa in a.features.items():
        sb = b.features.get(name)
        if sb is None:
            continue
        ha, hb = sa.get("histogram"), sb.get("histogram")
        va, vb = sa.get("values"), sb.get("values")
        if ha and hb:
            rows = []
            for side, h in zip(labels, (ha, hb)):
                total = sum(c or 0 for c in h["counts"])
                if not total:
                    continue
                rows += [{"start": s, "end": e, "density": (c or 0) / total / (e - s),
                          "side": side}
                         for s, e, c in zip(h["edges"][:-1], h["edges"][1:], h["counts"])
                         if e > s]
            out[name] = overlay_spec(name, rows, labels, numeric=True)
        elif va and vb:
            keys = sorted(set(va) | set(vb), key=str)
            ta, tb = sum(va.values()) or 1, sum(vb.values()) or 1
            shares = ([va.get(k, 0) / ta for k in keys], [vb.get(k, 0) / tb for k in keys])
            rows = [{"value": str(k), "share": p, "side": side}
                    for side, ps in zip(labels, shares) for k, p in zip(keys, ps)]
            out[name] = overlay_spec(name, rows, labels, numeric=False)
    return out


def report_rows(report: Any, charts: dict[str, dict] | None = None) -> list[dict]:
    """The drift table of ``report`` (``drift_table``'s cells) with each feature's chart.

    >>> from sparkfs.monitoring.drift import DriftReport
    >>> r = DriftReport("g", 1, "a", "b", 1, 1, {}, [{"feature": "x", "kind": "numeric",
    ...     "psi": 0.5, "drifted": True, "null_rate_baseline": 0.0, "null_rate_current": 0.0}])
    >>> row = report_rows(r)[0]
    >>> row["cells"][2], row["drifted"], row["chart"]
    ('0.5000', True, None)
    """
    charts = charts or {}
    return [{"feature": f["feature"], "cells": cells, "drifted": bool(f["drifted"]),
             "chart": charts.get(f["feature"])}
            for f, cells in zip(report.features, drift_table(report))]


def served_rows(report: Any, base: Any, log: Any, labels: tuple[str, str],
                bins: int) -> list[dict]:
    """Training set (Arrow ``base``) vs served requests (Arrow ``log``) of a deployment:
    the rows of ``report`` (``fs.monitor_served``'s ``DriftReport``), each with a
    Vega-Lite ``chart`` of the two overlaid distributions (numeric: ``bins`` shared bin
    edges over both sides' non-missing values, as densities; categorical: each value's
    share). The prediction row has no chart (its two sides are scored, not stored)."""
    from collections import Counter

    import numpy as np

    rows = []
    for f in report.features:
        col = f["feature"]
        if col not in base.column_names or col not in log.column_names:
            rows.append({**f, "chart": None})
            continue
        b, c = _present(base.column(col)), _present(log.column(col))
        chart = None
        if f["kind"] == "numeric" and (len(b) or len(c)):
            both = np.concatenate([np.asarray(b, dtype=float), np.asarray(c, dtype=float)])
            edges = np.histogram_bin_edges(both, bins=bins)
            points = []
            for side, values in zip(labels, (b, c)):
                if not len(values):
                    continue
                counts, _ = np.histogram(values, bins=edges)
                points += [{"start": float(s), "end": float(e), "side": side,
                            "density": float(k) / len(values) / float(e - s)}
                           for s, e, k in zip(edges[:-1], edges[1:], counts)]
            chart = overlay_spec(col, points, labels, numeric=True)
        elif f["kind"] != "numeric" and (len(b) or len(c)):
            keys = sorted({str(v) for v in b} | {str(v) for v in c})
            shares = [(side, Counter(str(v) for v in values), len(values))
                      for side, values in zip(labels, (b, c)) if len(values)]
            points = [{"value": k, "share": counts[k] / n, "side": side}
                      for side, counts, n in shares for k in keys]
            chart = overlay_spec(col, points, labels, numeric=False)
        rows.append({**f, "chart": chart})
    return rows


def _present(col: Any) -> Any:
    """The non-missing values of an Arrow column (numbers: floats without NaN; else Python
    values without None)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
        values = pc.drop_null(pc.cast(col, pa.float64())).to_numpy(zero_copy_only=False)
        return values[~np.isnan(values)]
    return pc.drop_null(col).to_pylist()
