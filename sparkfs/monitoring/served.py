"""Drift of served traffic: the features a deployment was served (its evaluation log) against
the model's training set, with the drift report's PSI / KS / Wasserstein and thresholds.

Per model input column, baseline = the column of the deployment's training set (the stored
rows), current = the column of the online requests logged in ``[start, end)``. Numbers:
PSI over ``bins`` quantile bins of the baseline plus one bin for missing values, the
two-sample KS test (``scipy.stats.ks_2samp``) and the Wasserstein distance
(``scipy.stats.wasserstein_distance``, also divided by the baseline's standard deviation) of
the non-missing values. Strings and booleans: PSI over the values seen plus the missing bin.
A null and a NaN are both missing for the distributions; ``null_rate_*`` counts nulls and
``nan_rate_*`` NaNs separately. The result is a ``DriftReport`` (its ``group`` is the
deployment's name), so ``str()``, ``drifted`` and the HTML report work as for groups.

Baseline: the training set (default), or another window of the same evaluation log
(``baseline=(start, end)``: last week against this week). Prediction drift: the report's
last row, ``prediction``, compares the predictions logged in the window with the model's
predictions on the training-set rows (the deployed model loaded and run on them), or with
the predictions logged in the baseline window. Numeric outputs use the ``prediction``
column; other outputs (labels, lists) the exact output (``prediction_json``), compared as
categories.

>>> import numpy as np
>>> round(_psi_numeric(np.array([1.0, 2, 3, 4]), 0, np.array([1.0, 2, 3, 4]), 0, 2), 6)
0.0
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SparkfsError
from .drift import DriftReport, is_drifted, psi

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import Catalog
    from ..config import MonitoringConfig

__all__ = ["served_drift"]


def _split(col: pa.ChunkedArray | pa.Array):
    """(non-missing values, null count, NaN count) of a column."""
    import numpy as np

    nulls = col.null_count
    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
        values = pc.drop_null(pc.cast(col, pa.float64())).to_numpy(zero_copy_only=False)
        nan = np.isnan(values)
        return values[~nan], nulls, int(nan.sum())
    return pc.drop_null(col).to_pylist(), nulls, 0


def _psi_numeric(b: Any, b_missing: int, c: Any, c_missing: int, bins: int) -> float:
    import numpy as np

    nb, nc = len(b) + b_missing, len(c) + c_missing
    edges = (np.unique(np.quantile(b, [k / bins for k in range(1, bins)])) if len(b)
             else np.array([], dtype=float))
    bc = np.bincount(np.searchsorted(edges, b, side="right"), minlength=len(edges) + 1)
    cc = np.bincount(np.searchsorted(edges, c, side="right"), minlength=len(edges) + 1)
    e = [int(x) / nb for x in bc] + [b_missing / nb]
    a = [int(x) / nc for x in cc] + [c_missing / nc]
    return float(psi(e, a))


def served_drift(catalog: "Catalog", inference: Any, deployment: str, start: Any = None,
                 end: Any = None, baseline: Any = "training_set",
                 psi_threshold: float | None = None, ks_pvalue: float | None = None,
                 wasserstein_threshold: float | None = None, bins: int | None = None,
                 predictions: bool = True, *, monitoring: "MonitoringConfig",
                 storage_options: dict | None = None) -> DriftReport:
    """Drift of what ``deployment`` served in ``[start, end)`` against ``baseline``: its
    model's training set (``"training_set"``, the default) or another window of its
    evaluation log (``(baseline_start, baseline_end)``). With ``predictions`` the report
    also has a ``prediction`` row: the logged predictions against the model's predictions
    on the training set, or against the predictions logged in the baseline window (see the
    module docstring). Collaborators: the ``Catalog`` (the training set), the
    ``sparkfs.inference.Inference`` (deployments, log, models), the ``monitoring`` config
    section (thresholds, bins) and ``config.offline.storage_options``."""
    from .._extras import require
    from ..training.sets import get_training_set
    from .drift import drift_thresholds
    from .skew import _iso, read_requests

    require("scipy", extra="monitoring", what="drift of served traffic")
    from scipy import stats

    cfg = monitoring
    thresholds = drift_thresholds(cfg, psi_threshold, ks_pvalue, wasserstein_threshold)
    bins = bins or cfg.bins
    window_base = None
    if not (isinstance(baseline, str) and baseline == "training_set"):
        if not isinstance(baseline, tuple | list) or len(baseline) != 2:
            raise SparkfsError(f"drift baseline {baseline!r} is unknown; use 'training_set' "
                               "or a window of the log: (start, end), either may be None")
        window_base = (baseline[0], baseline[1])
    d = inference.deployments.get(deployment)
    inference.flush()
    options = dict(storage_options or {})
    log = read_requests(d.log_path, start, end, options)
    window = f"served from {_iso(start) or 'the start'} until {_iso(end) or 'now'}"
    if log.num_rows == 0:
        raise SparkfsError(f"deployment {deployment!r} has no logged online requests "
                           f"{window.removeprefix('served ')}; nothing to compare")
    if window_base is None:
        tname, _, tver = d.training_set.partition("@")
        base = get_training_set(catalog, tname, int(tver) if tver else None).to_arrow()
        base_label = f"training set {d.training_set}"
        if base.num_rows == 0:
            raise SparkfsError(f"training set {d.training_set} has no rows to compare with")
    else:
        base = read_requests(d.log_path, window_base[0], window_base[1], options)
        base_label = (f"served from {_iso(window_base[0]) or 'the start'} until "
                      f"{_iso(window_base[1]) or 'now'}")
        if base.num_rows == 0:
            raise SparkfsError(f"deployment {deployment!r} has no logged online requests in "
                               f"the baseline window {base_label.removeprefix('served ')}; "
                               "nothing to compare with")
    report = DriftReport(d.name, d.revision, base_label, window, base.num_rows, log.num_rows,
                         thresholds)
    for col, dtype in d.binding.columns:
        if col not in base.column_names:
            raise SparkfsError(f"{base_label} has no column {col!r} that deployment "
                               f"{deployment!r} serves")
        kind = "numeric" if dtype in ("int", "long", "float", "double") else "categorical"
        report.features.append(_column(col, kind, base.column(col), log.column(col), bins,
                                       thresholds, stats, deployment))
    if predictions:
        report.features.append(_prediction_row(inference, d, base, window_base is None, log, bins,
                                               thresholds, stats))
    return report


def _prediction_row(inference: Any, d: Any, base: pa.Table, from_training: bool,
                    log: pa.Table, bins: int, thresholds: dict, stats: Any) -> dict:
    """Drift of the logged predictions; numeric when the model's outputs are numbers (the
    ``prediction`` column), else over the exact outputs (``prediction_json``)."""
    current = log.column("prediction")
    numeric = current.null_count < len(current)
    if from_training:
        from ..inference.online import model_input, prediction_values

        cols = {c: base.column(c).to_pylist() for c, _ in d.binding.columns}
        raw = prediction_values(inference.model(d).predict(
            model_input(cols, d.binding.columns)), base.num_rows)
        if numeric:
            from ..inference.online import numeric as as_number

            b = pa.chunked_array([pa.array([as_number(v) for v in raw], pa.float64())])
        else:
            b = pa.chunked_array([pa.array([json.dumps(_plain(v), default=str)
                                            for v in raw], pa.string())])
    else:
        b = base.column("prediction" if numeric else "prediction_json")
    c = current if numeric else log.column("prediction_json")
    return _column("prediction", "numeric" if numeric else "categorical", b, c, bins,
                   thresholds, stats, d.name)


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v.item() if hasattr(v, "item") else v


def _column(col: str, kind: str, bcol: Any, ccol: Any, bins: int, thresholds: dict,
            stats: Any, deployment: str) -> dict:
    """One row of the report: ``bcol`` (baseline) against ``ccol`` (served)."""
    b, b_null, b_nan = _split(bcol)
    c, c_null, c_nan = _split(ccol)
    nb, nc = len(bcol), len(ccol)
    out: dict[str, Any] = {
        "feature": col, "kind": kind, "psi": 0.0, "ks_stat": None, "ks_pvalue": None,
        "wasserstein": None, "wasserstein_std": None,
        "null_rate_baseline": b_null / nb, "null_rate_current": c_null / nc,
        "nan_rate_baseline": b_nan / nb, "nan_rate_current": c_nan / nc}
    if kind == "numeric":
        out["psi"] = _psi_numeric(b, b_null + b_nan, c, c_null + c_nan, bins)
        if len(b) and len(c):
            ks = stats.ks_2samp(b, c)
            out["ks_stat"], out["ks_pvalue"] = float(ks.statistic), float(ks.pvalue)
            w = float(stats.wasserstein_distance(b, c))
            std = float(b.std(ddof=1)) if len(b) > 1 else 0.0
            out["wasserstein"] = w
            out["wasserstein_std"] = w / std if std > 0 else None
    else:
        keys = sorted({str(v) for v in b} | {str(v) for v in c})
        bcount = {k: 0 for k in keys}
        ccount = dict(bcount)
        for v in b:
            bcount[str(v)] += 1
        for v in c:
            ccount[str(v)] += 1
        out["psi"] = psi([bcount[k] / nb for k in keys] + [b_null / nb],
                         [ccount[k] / nc for k in keys] + [c_null / nc])
    out["drifted"] = is_drifted(out, thresholds)
    if math.isnan(out["psi"]):
        raise SparkfsError(f"drift of {deployment!r}: PSI of {col!r} is undefined")
    return out
