"""Drift of a feature group's recent data against a baseline.

The baseline is a training set (a ``TrainingSet``; ``fs.monitor`` also takes its name), a
Delta version of the group (the rows committed
in it; a ``(first, last)`` tuple for a range of versions), or a Spark/pandas DataFrame. The
current window is, unless given: the rows committed after a Delta-version baseline, else the
rows of the latest commit. Pass ``versions=N`` or ``(first, last)``, an event-time range
``start=``/``end=`` (over the whole history), or ``current=<DataFrame>`` to choose it.

Per feature: PSI (population stability index) over ``monitoring.bins`` baseline-quantile
bins (numeric) or over values (categorical; hash buckets above 50 distinct values), with
nulls as their own bin; for numeric features also the two-sample Kolmogorov-Smirnov
statistic, evaluated exactly at the baseline's percentiles, with its asymptotic p-value, and
the Wasserstein-1 distance from the two quantile functions (also divided by the baseline
standard deviation). A feature drifts when PSI >= ``monitoring.psi_threshold``, or the KS
p-value < ``monitoring.ks_pvalue``, or (if set) the normalised Wasserstein distance >
``monitoring.wasserstein_threshold``. Everything is computed in Spark (two passes per side).

>>> psi([0.5, 0.5], [0.5, 0.5])
0.0
>>> round(psi([0.9, 0.1], [0.5, 0.5]), 3)
0.879
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..definitions import FeatureGroup
from ..errors import NotFoundError, SparkfsError
from ..sql import quote_ident
from .stats import kind_of

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import SparkProvider
    from ..config import MonitoringConfig
    from ..offline.tables import OfflineStore

FINE = 100  # percentiles the KS statistic is evaluated at
MAX_CATEGORIES = 50
EPS = 1e-4


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two distributions over the same bins."""
    total = 0.0
    for e, a in zip(expected, actual):
        e, a = max(e, EPS), max(a, EPS)
        total += (a - e) * math.log(a / e)
    return total


@dataclass
class DriftReport:
    """What ``fs.monitor`` found. ``features``: one dict per feature with ``feature``,
    ``kind``, ``psi``, ``ks_stat``, ``ks_pvalue``, ``wasserstein``, ``wasserstein_std``,
    null rates and ``drifted``.

    >>> r = DriftReport("weather", 1, "Delta version 1", "Delta version 2", 100, 90,
    ...                 {"psi": 0.2}, [{"feature": "temp", "drifted": True},
    ...                                {"feature": "visib", "drifted": False}])
    >>> r.drifted, r.drifted_features, r["visib"]["drifted"]
    (True, ['temp'], False)
    """

    group: str
    group_version: int
    baseline: str
    current: str
    rows_baseline: int
    rows_current: int
    thresholds: dict
    features: list[dict] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return any(f["drifted"] for f in self.features)

    @property
    def drifted_features(self) -> list[str]:
        return [f["feature"] for f in self.features if f["drifted"]]

    def __getitem__(self, feature: str) -> dict:
        for f in self.features:
            if f["feature"] == feature:
                return f
        raise NotFoundError(f"drift report of {self.group!r} has no feature {feature!r}")

    def to_dict(self) -> dict:
        return {**asdict(self), "drifted": self.drifted}

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(self.features)

    def _repr_html_(self) -> str:
        """The report as a notebook card (``sparkfs.ui.cards``)."""
        from ..ui.cards import drift_card

        return drift_card(self)

    def __str__(self) -> str:
        def f(v: Any, p: str = ".4f") -> str:
            return "-" if v is None else format(v, p)

        rows = [("FEATURE", "KIND", "PSI", "KS", "KS P", "WASSERSTEIN/STD", "NULLS B->C", "DRIFT")]
        for x in self.features:
            rows.append((x["feature"], x["kind"], f(x["psi"]), f(x.get("ks_stat")),
                         f(x.get("ks_pvalue"), ".3g"), f(x.get("wasserstein_std")),
                         f"{x['null_rate_baseline']:.3f}->{x['null_rate_current']:.3f}",
                         "DRIFT" if x["drifted"] else "ok"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
        t = self.thresholds
        verdict = (f"DRIFT in {len(self.drifted_features)} feature(s): "
                   + ", ".join(self.drifted_features)) if self.drifted else "no drift"
        return (f"drift of {self.group} v{self.group_version}: baseline {self.baseline} "
                f"({self.rows_baseline} rows) vs current {self.current} ({self.rows_current} rows)\n"
                f"thresholds: psi >= {t['psi_threshold']}, ks p < {t['ks_pvalue']}"
                + (f", wasserstein/std > {t['wasserstein_threshold']}"
                   if t.get("wasserstein_threshold") else "") + f"\n{table}\n{verdict}")


# -- choosing the data ------------------------------------------------------------------------
def _committed(offline: OfflineStore, spark: SparkProvider, group: FeatureGroup, first: int,
               last: int):
    from ..offline.tables import read_files_spark

    current = offline.current_version(group)
    if not 0 < first <= last <= current:
        raise NotFoundError(f"feature group {group.name!r} has Delta versions 1..{current} with "
                            f"data; versions {first}..{last} do not exist")
    files = offline.files_added_between(group, first - 1, last)
    return read_files_spark(spark(), group, files)


def _versions(v: Any) -> tuple[int, int] | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v, v
    if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return v
    return None


def _frame(spark: SparkProvider, df: Any):
    if type(df).__module__.startswith("pyspark"):
        return df
    if type(df).__module__.startswith("pandas"):
        return spark().createDataFrame(df)
    if type(df).__module__.startswith("pyarrow"):
        return spark().createDataFrame(df.to_pandas())
    return None


def _baseline(offline: OfflineStore, spark: SparkProvider, group: FeatureGroup, baseline: Any):
    rng = _versions(baseline)
    if rng is not None:
        label = f"Delta version {rng[0]}" if rng[0] == rng[1] else f"Delta versions {rng[0]}..{rng[1]}"
        return _committed(offline, spark, group, *rng), label, rng
    if isinstance(baseline, str):
        raise SparkfsError(f"baseline {baseline!r}: pass the TrainingSet "
                           "(sparkfs.training.sets.get_training_set); fs.monitor takes its name")
    from ..training.result import TrainingSet

    if isinstance(baseline, TrainingSet):
        return baseline.to_spark(), f"training set {baseline.name!r}", None
    frame = _frame(spark, baseline)
    if frame is None:
        raise SparkfsError(f"baseline {baseline!r} is not usable: pass a training-set name, a Delta "
                           "version (or a (first, last) tuple) or a Spark/pandas DataFrame")
    return frame, "a DataFrame", None


def _current(offline: OfflineStore, spark: SparkProvider, group: FeatureGroup,
             base_range: tuple[int, int] | None, versions: Any, start: Any, end: Any,
             current: Any):
    from pyspark.sql import functions as F

    if current is not None:
        frame = _frame(spark, current)
        if frame is None:
            raise SparkfsError("current= must be a Spark or pandas DataFrame")
        return frame, "a DataFrame"
    if start is not None or end is not None:
        from ..offline.tables import _as_utc

        df = offline.read_spark(spark(), group)
        parts = []
        if start is not None:
            df = df.where(F.col(group.event_time) >= F.lit(_as_utc(start)))
            parts.append(f"from {_as_utc(start).isoformat()}")
        if end is not None:
            df = df.where(F.col(group.event_time) < F.lit(_as_utc(end)))
            parts.append(f"until {_as_utc(end).isoformat()}")
        return df, "event time " + " ".join(parts)
    latest = offline.current_version(group)
    rng = _versions(versions)
    if versions is not None and rng is None:
        raise SparkfsError(f"versions={versions!r}: give a Delta version or a (first, last) tuple")
    if rng is None:
        rng = (base_range[1] + 1, latest) if base_range else (latest, latest)
        if rng[0] > rng[1]:
            raise NotFoundError(f"feature group {group.name!r}: nothing was committed after the "
                                f"baseline (latest Delta version is {latest})")
    label = f"Delta version {rng[0]}" if rng[0] == rng[1] else f"Delta versions {rng[0]}..{rng[1]}"
    return _committed(offline, spark, group, *rng), label


def _column_for(group: FeatureGroup, feature: str, columns: Sequence[str]) -> str | None:
    for name in (feature, f"{group.name}__{feature}", f"{group.name}_v{group.version}__{feature}"):
        if name in columns:
            return name
    return None


# -- the computation ----------------------------------------------------------------------------
def is_drifted(out: dict, thresholds: dict) -> bool:
    """Whether one feature's PSI, KS p-value or Wasserstein/std crosses ``thresholds``."""
    wt = thresholds.get("wasserstein_threshold")
    return bool(out["psi"] >= thresholds["psi_threshold"]
                or (out["ks_pvalue"] is not None and out["ks_pvalue"] < thresholds["ks_pvalue"])
                or (wt and out["wasserstein_std"] is not None and out["wasserstein_std"] > wt))


def drift_thresholds(cfg: Any, psi_threshold: float | None, ks_pvalue: float | None,
                     wasserstein_threshold: float | None) -> dict:
    """The thresholds a drift report uses: each argument given, else the config's
    (``monitoring.psi_threshold``, ``ks_pvalue``, ``wasserstein_threshold``)."""
    def pick(given: float | None, default: Any) -> Any:
        return given if given is not None else default

    return {"psi_threshold": pick(psi_threshold, cfg.psi_threshold),
            "ks_pvalue": pick(ks_pvalue, cfg.ks_pvalue),
            "wasserstein_threshold": pick(wasserstein_threshold, cfg.wasserstein_threshold)}


def monitor(offline: OfflineStore, spark: SparkProvider, group: FeatureGroup, baseline: Any,
            features: Sequence[str] | None = None, versions: Any = None, start: Any = None,
            end: Any = None, current: Any = None, psi_threshold: float | None = None,
            ks_pvalue: float | None = None, wasserstein_threshold: float | None = None,
            bins: int | None = None, *, monitoring: MonitoringConfig | None = None) -> DriftReport:
    """Compare ``group``'s current window (its Delta history in ``offline``) with
    ``baseline`` (see the module docstring), in Spark from ``spark``. Thresholds and bins
    not given come from ``monitoring`` (the config section; None: its defaults).

    >>> import tempfile
    >>> from sparkfs import Entity, Field, FeatureGroup
    >>> from sparkfs.offline.tables import OfflineStore
    >>> g = FeatureGroup("w", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
    >>> monitor(OfflineStore(tempfile.mkdtemp()), lambda: None, g, baseline="nightly")
    Traceback (most recent call last):
    ...
    sparkfs.errors.SparkfsError: baseline 'nightly': pass the TrainingSet (sparkfs.training.sets.get_training_set); fs.monitor takes its name
    """  # noqa: E501 (doctest output)
    if monitoring is None:
        from ..config import MonitoringConfig

        monitoring = MonitoringConfig()
    cfg = monitoring
    thresholds = drift_thresholds(cfg, psi_threshold, ks_pvalue, wasserstein_threshold)
    bins = bins or cfg.bins
    base_df, base_label, base_range = _baseline(offline, spark, group, baseline)
    cur_df, cur_label = _current(offline, spark, group, base_range, versions, start, end, current)
    wanted = [f for f in group.stored_fields if features is None or f.name in features]
    if features is not None:
        unknown = sorted(set(features) - {f.name for f in group.stored_fields})
        if unknown:
            raise NotFoundError(f"feature group {group.name!r} has no feature(s) {unknown}")
    pairs = []
    for f in wanted:
        if kind_of(f.dtype) not in ("numeric", "categorical"):
            continue
        b, c = _column_for(group, f.name, base_df.columns), _column_for(group, f.name, cur_df.columns)
        if b and c:
            pairs.append((f, b, c))
    if not pairs:
        raise SparkfsError(
            f"the baseline ({base_label}) and the current window share no numeric or categorical "
            f"feature of group {group.name!r} (baseline columns: {base_df.columns})")
    report = DriftReport(group.name, group.version, base_label, cur_label, 0, 0, thresholds)
    base_prof = _profile(base_df, [(f, b) for f, b, _ in pairs], bins)
    cur_prof = _profile(cur_df, [(f, c) for f, _, c in pairs], bins)
    report.rows_baseline, report.rows_current = base_prof["n"], cur_prof["n"]
    if not report.rows_baseline or not report.rows_current:
        raise SparkfsError(f"drift of {group.name!r}: the baseline has {report.rows_baseline} "
                           f"rows and the current window {report.rows_current}; both need rows")
    plan = _plan(pairs, base_prof, bins)
    base_counts = _bucket_counts(base_df, [(f, b) for f, b, _ in pairs], plan)
    cur_counts = _bucket_counts(cur_df, [(f, c) for f, _, c in pairs], plan)
    for f, _, _ in pairs:
        report.features.append(_compare(f, plan[f.name], base_prof, cur_prof,
                                        base_counts.get(f.name, {}), cur_counts.get(f.name, {}),
                                        thresholds))
    return report


def _profile(df: Any, cols: list, bins: int) -> dict:
    """Pass 1: row count; per numeric column the non-null count, stddev and 0..100th
    percentiles; per categorical column the non-null count and approximate distinct count."""
    from pyspark.sql import functions as F

    probs = sorted({j / FINE for j in range(FINE + 1)} | {k / bins for k in range(bins + 1)})
    aggs = [F.count(F.lit(1)).alias("__n")]
    for i, (f, col) in enumerate(cols):
        c = F.col(quote_ident(col, "spark"))
        if kind_of(f.dtype) == "numeric":
            v = F.when(~F.isnan(c.cast("double")), c.cast("double"))
            aggs += [F.count(v).alias(f"c{i}"), F.stddev(v).alias(f"s{i}"),
                     F.percentile_approx(v, probs, 10000).alias(f"q{i}")]
        else:
            aggs += [F.count(c).alias(f"c{i}"), F.approx_count_distinct(c).alias(f"d{i}")]
    row = df.agg(*aggs).first().asDict()
    out: dict = {"n": int(row["__n"]), "probs": probs}
    for i, (f, _) in enumerate(cols):
        d = {"count": int(row[f"c{i}"] or 0)}
        if kind_of(f.dtype) == "numeric":
            d["std"] = row[f"s{i}"]
            d["q"] = row[f"q{i}"]
        else:
            d["distinct"] = int(row[f"d{i}"] or 0)
        out[f.name] = d
    return out


def _plan(pairs: list, base: dict, bins: int) -> dict:
    """Per feature: the PSI bin edges and KS evaluation points (from the baseline's
    percentiles), or how categorical values are bucketed."""
    probs = base["probs"]
    plan = {}
    for f, _, _ in pairs:
        p = base[f.name]
        if kind_of(f.dtype) == "numeric":
            q = p.get("q") or []
            coarse = sorted({q[probs.index(k / bins)] for k in range(1, bins)}) if q else []
            fine = sorted({q[probs.index(j / FINE)] for j in range(1, FINE)}) if q else []
            plan[f.name] = {"kind": "numeric", "psi_edges": coarse, "ks_edges": fine}
        else:
            plan[f.name] = {"kind": "categorical", "hashed": p["distinct"] > MAX_CATEGORIES}
    return plan


def _bucket_counts(df: Any, cols: list, plan: dict) -> dict[str, dict[str, int]]:
    """Pass 2: counts per PSI bin ("p<i>"), per KS interval ("k<i>") and of nulls ("null")
    for every feature, in one stacked group-by."""
    from pyspark.ml.feature import Bucketizer
    from pyspark.sql import functions as F

    inputs, outputs, splits, parts = [], [], [], []
    tmp = df
    for i, (f, col) in enumerate(cols):
        p = plan[f.name]
        c = F.col(quote_ident(col, "spark"))
        if p["kind"] == "numeric":
            v = F.when(~F.isnan(c.cast("double")), c.cast("double"))
            tmp = tmp.withColumn(f"__v{i}", F.coalesce(v, F.lit(0.0)))
            for tag, edges in (("p", p["psi_edges"]), ("k", p["ks_edges"])):
                inputs.append(f"__v{i}")
                outputs.append(f"__{tag}{i}")
                splits.append([-math.inf, *edges, math.inf])
                null_key = F.lit("null" if tag == "p" else "knull")  # count nulls once
                parts.append(F.struct(F.lit(f.name).alias("f"), F.when(v.isNull(), null_key)
                                      .otherwise(F.concat(F.lit(tag), F.col(f"__{tag}{i}")
                                                          .cast("int").cast("string"))).alias("k")))
        else:
            key = (F.concat(F.lit("h"), F.pmod(F.xxhash64(c), F.lit(MAX_CATEGORIES)).cast("string"))
                   if p["hashed"] else F.concat(F.lit("v"), c.cast("string")))
            parts.append(F.struct(F.lit(f.name).alias("f"),
                                  F.when(c.isNull(), F.lit("null")).otherwise(key).alias("k")))
    if inputs:
        tmp = Bucketizer(splitsArray=splits, inputCols=inputs, outputCols=outputs).transform(tmp)
    rows = (tmp.select(F.explode(F.array(*parts)).alias("e"))
               .groupBy(F.col("e.f").alias("f"), F.col("e.k").alias("k")).count().collect())
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["f"], {})[r["k"]] = int(r["count"])
    return out


def _ks_pvalue(d: float, n: int, m: int) -> float:
    from .._extras import require

    require("scipy", extra="monitoring", what="the drift report's KS p-value")
    from scipy.special import kolmogorov

    if n == 0 or m == 0:
        return 1.0
    en = math.sqrt(n * m / (n + m))
    return float(min(1.0, max(0.0, kolmogorov(en * d))))


def _compare(f: Any, plan: dict, base: dict, cur: dict, bc: dict[str, int], cc: dict[str, int],
             thresholds: dict) -> dict:
    nb, nc = base["n"], cur["n"]
    # PSI over the numeric bins / the categories, plus a null bin; every bin either side has.
    if plan["kind"] == "numeric":
        keys = [f"p{i}" for i in range(len(plan["psi_edges"]) + 1)] + ["null"]
    else:
        keys = sorted(k for k in set(bc) | set(cc))
        if "null" not in keys:
            keys.append("null")
    e = [bc.get(k, 0) / nb for k in keys]
    a = [cc.get(k, 0) / nc for k in keys]
    out: dict[str, Any] = {
        "feature": f.name, "kind": plan["kind"] + (" (hashed)" if plan.get("hashed") else ""),
        "psi": psi(e, a), "ks_stat": None, "ks_pvalue": None, "wasserstein": None,
        "wasserstein_std": None, "null_rate_baseline": bc.get("null", 0) / nb,
        "null_rate_current": cc.get("null", 0) / nc,
    }
    if plan["kind"] == "numeric":
        b_n, c_n = base[f.name]["count"], cur[f.name]["count"]
        if b_n and c_n:
            # Empirical CDFs (of non-null values) just below each baseline percentile.
            d, fb, fc = 0.0, 0, 0
            for i in range(len(plan["ks_edges"])):
                fb += bc.get(f"k{i}", 0)
                fc += cc.get(f"k{i}", 0)
                d = max(d, abs(fb / b_n - fc / c_n))
            out["ks_stat"], out["ks_pvalue"] = d, _ks_pvalue(d, b_n, c_n)
            qb, qc = base[f.name]["q"], cur[f.name]["q"]
            w = sum(abs(x - y) for x, y in zip(qb, qc)) / len(qb)
            out["wasserstein"] = w
            std = base[f.name]["std"]
            out["wasserstein_std"] = w / std if std else None
    out["drifted"] = is_drifted(out, thresholds)
    return out
