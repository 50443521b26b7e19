"""Per-feature statistics of each committed batch, keyed by Delta version.

``record_statistics`` computes them from the Spark DataFrame of the rows one ingest
committed, in two Spark passes: (1) count, nulls, NaNs, min, max, mean, stddev, approximate
quantiles and approximate distinct count of every feature; (2) an equal-width histogram of
every numeric feature (over p1..p99 when the tails are long, the edge bins holding the
tails) and the value counts of low-cardinality string/boolean features.
They are stored in the registry (kind ``statistics``, version = Delta version), so reading
them needs no Spark.

>>> s = Statistics(group="g", group_version=1, delta_version=3, rows=4, features={
...     "x": {"dtype": "double", "kind": "numeric", "count": 4, "nulls": 0, "mean": 2.5}})
>>> s["x"]["mean"]
2.5
>>> Statistics.from_dict(s.to_dict()) == s
True
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..definitions import FeatureGroup
from ..errors import NotFoundError
from ..sql import quote_ident

if TYPE_CHECKING:  # pragma: no cover
    from ..store import FeatureStore

KIND = "statistics"
NUMERIC = ("int", "long", "float", "double")
CATEGORICAL = ("string", "boolean")
TEMPORAL = ("timestamp", "date")
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
QUANTILE_SAMPLE = 200_000
HISTOGRAM_BINS = 20
#: String/boolean features with at most this many distinct values get value counts.
MAX_VALUE_COUNTS = 30


@dataclass
class Statistics:
    """Statistics of the batch committed at one Delta version. ``features`` maps a feature
    name to a dict: ``dtype``, ``kind`` (numeric, categorical, temporal, other), ``count``
    (non-null), ``nulls``, ``nans``, ``min``, ``max``, ``mean``, ``stddev``, ``quantiles``
    ({"p50": ...}), ``distinct`` (approximate), ``histogram`` ({"edges": [...], "counts":
    [...]}) or ``values`` ({value: count})."""

    group: str
    group_version: int
    delta_version: int
    rows: int
    features: dict[str, dict] = field(default_factory=dict)
    computed_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    def __getitem__(self, feature: str) -> dict:
        try:
            return self.features[feature]
        except KeyError:
            raise NotFoundError(f"no statistics for feature {feature!r} of {self.group!r}; "
                                f"features: {list(self.features)}") from None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Statistics":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def to_pandas(self):
        """One row per feature (histograms and value counts left out)."""
        import pandas as pd

        rows = []
        for name, s in self.features.items():
            row = {"feature": name, **{k: v for k, v in s.items()
                                       if k not in ("histogram", "values", "quantiles")}}
            row.update(s.get("quantiles") or {})
            rows.append(row)
        return pd.DataFrame(rows)

    def table(self) -> str:
        """A fixed-width text table, one line per feature."""
        head = ("FEATURE", "DTYPE", "COUNT", "NULLS", "MIN", "MAX", "MEAN", "STDDEV", "P50",
                "DISTINCT")
        rows = [head]
        for name, s in self.features.items():
            q = s.get("quantiles") or {}
            rows.append((name, s.get("dtype", ""), _fmt(s.get("count")), _fmt(s.get("nulls")),
                         _fmt(s.get("min")), _fmt(s.get("max")), _fmt(s.get("mean")),
                         _fmt(s.get("stddev")), _fmt(q.get("p50")), _fmt(s.get("distinct"))))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def _repr_html_(self) -> str:
        """A notebook card with an inline histogram per feature (``sparkfs.ui.cards``)."""
        from ..ui.cards import statistics_card

        return statistics_card(self)

    def __str__(self) -> str:
        return (f"statistics of {self.group} v{self.group_version} at Delta version "
                f"{self.delta_version} ({self.rows} rows, computed {self.computed_at[:19]}Z)\n"
                + self.table())


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    return str(v)[:24]


def kind_of(dtype: str) -> str:
    if dtype in NUMERIC:
        return "numeric"
    if dtype in CATEGORICAL:
        return "categorical"
    if dtype in TEMPORAL:
        return "temporal"
    return "other"


def _num(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return None if isinstance(v, float) and math.isnan(v) else v
    return str(v)


def compute_statistics(group: FeatureGroup, df: Any, delta_version: int) -> Statistics:
    """Statistics of the Spark DataFrame ``df`` holding rows of ``group``: one pass for the
    exact moments and distinct counts, quantiles on a bounded sample, one histogram pass."""
    from pyspark.sql import functions as F

    fields = [f for f in group.stored_fields if f.name in df.columns]
    aggs = [F.count(F.lit(1)).alias("__n")]
    for i, f in enumerate(fields):
        c, k = F.col(quote_ident(f.name, "spark")), kind_of(f.dtype)
        aggs.append(F.count(c).alias(f"c{i}"))
        if k == "numeric":
            is_float = f.dtype in ("float", "double")
            v = F.when(~F.isnan(c), c) if is_float else c
            aggs += [F.sum(F.isnan(c).cast("long")).alias(f"nan{i}") if is_float
                     else F.lit(0).alias(f"nan{i}"),
                     F.min(v).alias(f"min{i}"), F.max(v).alias(f"max{i}"),
                     F.mean(v).alias(f"mean{i}"), F.stddev(v).alias(f"std{i}"),
                     F.approx_count_distinct(v).alias(f"d{i}")]
        elif k in ("categorical", "temporal"):
            aggs += [F.min(c).alias(f"min{i}"), F.max(c).alias(f"max{i}"),
                     F.approx_count_distinct(c).alias(f"d{i}")]
    row = df.agg(*aggs).first().asDict()
    n = int(row["__n"])
    row.update(_quantiles(df, fields, n))
    features: dict[str, dict] = {}
    for i, f in enumerate(fields):
        k = kind_of(f.dtype)
        count = int(row[f"c{i}"])
        s: dict[str, Any] = {"dtype": f.dtype, "kind": k, "count": count, "nulls": n - count}
        if k == "numeric":
            nans = int(row[f"nan{i}"] or 0)
            s.update(count=count - nans, nans=nans, min=_num(row[f"min{i}"]),
                     max=_num(row[f"max{i}"]), mean=_num(row[f"mean{i}"]),
                     stddev=_num(row[f"std{i}"]), distinct=int(row[f"d{i}"]),
                     quantiles={f"p{round(q * 100)}": _num(v) for q, v in
                                zip(QUANTILES, row[f"q{i}"] or [None] * len(QUANTILES))})
        elif k in ("categorical", "temporal"):
            s.update(min=_num(row[f"min{i}"]), max=_num(row[f"max{i}"]),
                     distinct=int(row[f"d{i}"]))
        features[f.name] = s
    _histograms(df, fields, features)
    return Statistics(group=group.name, group_version=group.version, delta_version=delta_version,
                      rows=n, features=features)


def _quantiles(df: Any, fields: list, n: int) -> dict:
    """Approximate quantiles of the numeric features, from a uniform sample of at most
    ``QUANTILE_SAMPLE`` rows (a percentile sketch over every row costs several times the
    rest of the statistics; a 200k-row sample is within about 0.3% in rank)."""
    from pyspark.sql import functions as F

    numeric = [(i, f) for i, f in enumerate(fields) if kind_of(f.dtype) == "numeric"]
    if not numeric or n == 0:
        return {f"q{i}": None for i, _ in numeric}
    sample = df if n <= QUANTILE_SAMPLE else df.sample(fraction=QUANTILE_SAMPLE / n, seed=17)
    aggs = []
    for i, f in numeric:
        c = F.col(quote_ident(f.name, "spark"))
        v = F.when(~F.isnan(c), c) if f.dtype in ("float", "double") else c
        aggs.append(F.percentile_approx(v.cast("double"), list(QUANTILES), 10000).alias(f"q{i}"))
    return sample.agg(*aggs).first().asDict()


def _histograms(df: Any, fields: list, features: dict[str, dict]) -> None:
    """Second pass: histogram bins of numeric features and value counts of
    low-cardinality categorical ones, all in one stacked group-by."""
    from pyspark.sql import functions as F

    parts, edges, clipped = [], {}, set()
    for f in fields:
        s = features[f.name]
        c = F.col(quote_ident(f.name, "spark"))
        if s["kind"] == "numeric" and s["count"] and s["min"] is not None:
            lo, hi = float(s["min"]), float(s["max"])
            q = s.get("quantiles") or {}
            p1, p99 = q.get("p1"), q.get("p99")
            if p1 is not None and p99 is not None and p1 < p99 and (p99 - p1) < 0.5 * (hi - lo):
                # Long tails: bin p1..p99 so the bulk is readable; the edge bins take the tails.
                lo, hi = float(p1), float(p99)
                clipped.add(f.name)
            width = (hi - lo) / HISTOGRAM_BINS if hi > lo else 1.0
            nbins = HISTOGRAM_BINS if hi > lo else 1
            edges[f.name] = [lo + j * width for j in range(nbins)] + [hi if hi > lo else lo + 1.0]
            valid = c.isNotNull() & ~F.isnan(c.cast("double"))
            b = F.least(F.greatest(F.floor((c.cast("double") - F.lit(lo)) / F.lit(width)),
                                   F.lit(0)), F.lit(nbins - 1))
            parts.append(F.struct(F.lit(f.name).alias("f"),
                                  F.when(valid, b.cast("long").cast("string")).alias("k")))
        elif s["kind"] == "categorical" and s["count"] and s.get("distinct", 0) <= MAX_VALUE_COUNTS:
            parts.append(F.struct(F.lit(f.name).alias("f"), c.cast("string").alias("k")))
    if not parts:
        return
    rows = (df.select(F.explode(F.array(*parts)).alias("e"))
              .where(F.col("e.k").isNotNull())
              .groupBy(F.col("e.f").alias("f"), F.col("e.k").alias("k")).count().collect())
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["f"], {})[r["k"]] = int(r["count"])
    for name, got in counts.items():
        s = features[name]
        if name in edges:
            e = edges[name]
            s["histogram"] = {"edges": e, "counts": [got.get(str(j), 0) for j in range(len(e) - 1)],
                              "clipped": name in clipped}
        else:
            s["values"] = dict(sorted(got.items(), key=lambda kv: (-kv[1], kv[0])))


def record_statistics(fs: "FeatureStore", group: FeatureGroup, df: Any,
                      delta_version: int) -> Statistics:
    """Compute the statistics of the batch committed at ``delta_version`` and store them."""
    stats = compute_statistics(group, df, delta_version)
    fs.registry.put(KIND, group.table_name, int(delta_version), stats.to_dict())
    return stats


def statistics(fs: "FeatureStore", group: FeatureGroup, version: int | None = None) -> Statistics:
    """Stored statistics of the batch committed at Delta ``version`` (default: the latest
    version that has statistics)."""
    spec = fs.registry.get(KIND, group.table_name, version)
    if spec is None:
        have = fs.registry.versions(KIND, group.table_name)
        if not have:
            raise NotFoundError(
                f"feature group {group.name!r} v{group.version} has no statistics yet: they are "
                "computed when a batch is ingested (ingest.statistics: true)")
        raise NotFoundError(f"feature group {group.name!r} v{group.version} has no statistics "
                            f"for Delta version {version}; versions with statistics: {have}")
    return Statistics.from_dict(spec)


def statistics_versions(fs: "FeatureStore", group: FeatureGroup) -> list[int]:
    """Delta versions of ``group`` that have statistics."""
    return fs.registry.versions(KIND, group.table_name)


def describe_statistics(fs: "FeatureStore", group: FeatureGroup) -> str:
    """The latest statistics as text for ``sparkfs describe`` ("" when there are none)."""
    try:
        s = statistics(fs, group)
    except NotFoundError:
        return ""
    body = "\n".join("    " + line for line in s.table().splitlines())
    return (f"  latest statistics (Delta version {s.delta_version}, {s.rows} rows, "
            f"{s.computed_at[:19]}Z):\n{body}")
