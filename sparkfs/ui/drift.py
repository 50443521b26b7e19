"""Drift between two Delta versions of a group from their stored statistics (no Spark):
what the UI's drift page shows.

Each side is the batch committed at one Delta version (its ``Statistics``). Numeric
features: both histograms are spread onto the union of their bin edges (rows assumed
uniform within a bin), PSI (``sparkfs.monitoring.drift.psi``) is taken over those bins
and the KS statistic is the largest gap between the two binned CDFs at the edges (its
p-value from ``sparkfs.monitoring.drift``'s asymptotic formula when scipy is installed).
Categorical features: PSI over the stored value counts. These are bin-level approximations
of ``fs.monitor`` (``sparkfs monitor``), which recomputes exact values from the rows in
Spark; the page says so.

>>> rows, shares = _rebin({"edges": [0.0, 2.0], "counts": [4]}, [0.0, 1.0, 2.0])
>>> shares
[0.5, 0.5]
"""

from __future__ import annotations

from typing import Any

from ..monitoring.drift import psi
from .charts import overlay_spec


def _rebin(hist: dict, edges: list[float]) -> tuple[int, list[float]]:
    """``hist``'s counts spread over ``edges`` (uniform within each source bin) as shares."""
    src_e, src_c = hist["edges"], hist["counts"]
    total = sum(c or 0 for c in src_c)
    out = [0.0] * (len(edges) - 1)
    for (a, b), c in zip(zip(src_e[:-1], src_e[1:]), src_c):
        if not c:
            continue
        for i, (x, y) in enumerate(zip(edges[:-1], edges[1:])):
            lo, hi = max(a, x), min(b, y)
            if b == a:  # a zero-width bin: all of it where it sits
                if x <= a <= y:
                    out[i] += c
                    break
            elif hi > lo:
                out[i] += c * (hi - lo) / (b - a)
    return total, [v / total if total else 0.0 for v in out]


def _ks_pvalue(d: float, n: int, m: int) -> float | None:
    try:
        from ..monitoring.drift import _ks_pvalue as exact
        return exact(d, n, m)
    except Exception:  # scipy missing (the serve extra): the page shows "-" and says why
        return None


def compare(a: Any, b: Any, labels: tuple[str, str], psi_threshold: float) -> list[dict]:
    """One row per feature both statistics cover: kind, PSI, KS, null rates, drifted, and
    a Vega-Lite ``chart`` of the two overlaid distributions (numeric: each side's own
    histogram as a density, so bins of different widths compare)."""
    out = []
    for name, sa in a.features.items():
        sb = b.features.get(name)
        if sb is None:
            continue
        row: dict[str, Any] = {"feature": name, "kind": sa.get("kind"), "psi": None,
                               "ks_stat": None, "ks_pvalue": None, "chart": None,
                               "null_a": _null_rate(sa), "null_b": _null_rate(sb)}
        ha, hb = sa.get("histogram"), sb.get("histogram")
        va, vb = sa.get("values"), sb.get("values")
        if ha and hb:
            edges = sorted(set(ha["edges"]) | set(hb["edges"]))
            n, pa = _rebin(ha, edges)
            m, pb = _rebin(hb, edges)
            row["psi"] = psi(pa, pb)
            cdf_a = cdf_b = d = 0.0
            for x, y in zip(pa, pb):
                cdf_a, cdf_b = cdf_a + x, cdf_b + y
                d = max(d, abs(cdf_a - cdf_b))
            row["ks_stat"] = d
            row["ks_pvalue"] = _ks_pvalue(d, n, m)
            rows = [{"start": s, "end": e, "density": c / total / (e - s), "side": side}
                    for side, h, total in zip(labels, (ha, hb), (n, m)) if total
                    for s, e, c in zip(h["edges"][:-1], h["edges"][1:], h["counts"]) if e > s]
            row["chart"] = overlay_spec(name, rows, labels, numeric=True)
        elif va and vb:
            keys = sorted(set(va) | set(vb), key=str)
            ta, tb = sum(va.values()) or 1, sum(vb.values()) or 1
            pa = [va.get(k, 0) / ta for k in keys]
            pb = [vb.get(k, 0) / tb for k in keys]
            row["psi"] = psi(pa, pb)
            rows = [{"value": str(k), "share": p, "side": side}
                    for side, shares in zip(labels, (pa, pb)) for k, p in zip(keys, shares)]
            row["chart"] = overlay_spec(name, rows, labels, numeric=False)
        else:
            continue
        row["drifted"] = row["psi"] is not None and row["psi"] >= psi_threshold
        out.append(row)
    return out


def _null_rate(s: dict) -> float | None:
    count, nulls = s.get("count"), s.get("nulls")
    if count is None or nulls is None or count + nulls == 0:
        return None
    return nulls / (count + nulls)


def served(fs: Any, deployment: str) -> tuple[Any, list[dict]] | None:
    """Training set vs served traffic of ``deployment``: ``fs.monitor_served``'s
    ``DriftReport`` and its per-feature rows, each with a Vega-Lite
    ``chart`` of the two overlaid distributions (numeric: shared bin edges over both sides'
    non-missing values, as densities; categorical: each value's share). None when no online
    request is logged yet."""
    from collections import Counter

    import numpy as np

    from ..errors import NotFoundError
    from ..monitoring.skew import read_requests

    d = fs.inference.deployments.get(deployment)
    fs.inference.flush()
    try:
        log = read_requests(d.log_path, None, None, dict(fs.config.offline.storage_options))
    except NotFoundError:  # nothing was ever logged: the evaluation table does not exist yet
        return None
    if log.num_rows == 0:
        return None
    report = fs.monitor_served(deployment)
    tname, _, tver = d.training_set.partition("@")
    base = fs.get_training_set(tname, int(tver) if tver else None).to_arrow()
    labels = (f"training set {d.training_set}", "served")
    bins = fs.config.monitoring.bins
    rows = []
    for f in report.features:
        col = f["feature"]
        if col not in base.column_names or col not in log.column_names:
            rows.append({**f, "chart": None})  # the prediction row: its two sides are scored
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
    return report, rows


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
