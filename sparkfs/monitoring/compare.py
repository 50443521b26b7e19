"""One drift table for every front end: ``sparkfs monitor`` (Rich table), the web UI's
drift page and the notebook card show the cells :func:`drift_table` makes from the
``DriftReport`` that ``fs.monitor`` (``sparkfs.monitoring.drift.monitor``) computes, so the
numbers a person sees cannot differ between them.

>>> from sparkfs.monitoring.drift import DriftReport
>>> r = DriftReport("weather", 1, "Delta version 1", "Delta version 2", 400, 395,
...                 {"psi_threshold": 0.2, "ks_pvalue": 0.01, "wasserstein_threshold": None},
...                 [{"feature": "temp", "kind": "numeric", "psi": 2.71828, "ks_stat": 0.5,
...                   "ks_pvalue": 1.234e-40, "wasserstein": 20.1, "wasserstein_std": 2.01,
...                   "null_rate_baseline": 0.0175, "null_rate_current": 0.0177,
...                   "drifted": True}])
>>> DRIFT_COLUMNS[:4]
('FEATURE', 'KIND', 'PSI', 'KS')
>>> drift_table(r)[0]  # doctest: +NORMALIZE_WHITESPACE
['temp', 'numeric', '2.7183', '0.5000', '1.23e-40', '2.0100', '0.018 -> 0.018',
 'DRIFT']
>>> drift_verdict(r), drift_thresholds_text(r)
('DRIFT in 1 feature(s): temp', 'psi >= 0.2, ks p < 0.01')
"""

from __future__ import annotations

import math
from typing import Any

#: Column titles of :func:`drift_table`'s rows.
DRIFT_COLUMNS = ("FEATURE", "KIND", "PSI", "KS", "KS P", "WASSERSTEIN/STD", "NULLS B -> C",
                 "DRIFT")


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def drift_row(feature: dict) -> list[str]:
    """One feature of a ``DriftReport`` as display cells (``-`` for a missing value).

    >>> drift_row({"feature": "sky", "kind": "categorical", "psi": 0.0, "ks_stat": None,
    ...            "ks_pvalue": None, "wasserstein_std": None, "null_rate_baseline": 0.0,
    ...            "null_rate_current": None, "drifted": False})
    ['sky', 'categorical', '0.0000', '-', '-', '-', '0.000 -> -', 'ok']
    """
    return [str(feature["feature"]), str(feature["kind"]), _fmt(feature.get("psi"), ".4f"),
            _fmt(feature.get("ks_stat"), ".4f"), _fmt(feature.get("ks_pvalue"), ".3g"),
            _fmt(feature.get("wasserstein_std"), ".4f"),
            f"{_fmt(feature.get('null_rate_baseline'), '.3f')} -> "
            f"{_fmt(feature.get('null_rate_current'), '.3f')}",
            "DRIFT" if feature.get("drifted") else "ok"]


def drift_table(report: Any) -> list[list[str]]:
    """The rows (one per feature, in the report's order) of the drift table."""
    return [drift_row(f) for f in report.features]


def drift_verdict(report: Any) -> str:
    """``"no drift"`` or ``"DRIFT in N feature(s): a, b"``."""
    if not report.drifted:
        return "no drift"
    return (f"DRIFT in {len(report.drifted_features)} feature(s): "
            + ", ".join(report.drifted_features))


def drift_thresholds_text(report: Any) -> str:
    """The thresholds a report decided drift with, as one line."""
    t = report.thresholds
    text = f"psi >= {t['psi_threshold']}, ks p < {t['ks_pvalue']}"
    if t.get("wasserstein_threshold"):
        text += f", wasserstein/std > {t['wasserstein_threshold']}"
    return text
