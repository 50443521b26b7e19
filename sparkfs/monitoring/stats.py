"""Per-feature statistics of each committed batch, keyed by Delta version.

``record_statistics`` computes them in one pass over the rows one ingest committed
(``sparkfs.monitoring.sketches``): each Spark partition (or Arrow batch) gives mergeable
partials -- counts, nulls, NaNs, min, max, mean and variance (Chan's parallel merge), a KLL
quantile sketch and an HLL distinct-count sketch (Apache DataSketches) -- merged on the
driver. Quantiles and the equal-width histogram of every numeric feature (over p1..p99
when the tails are long, the edge bins holding the tails) come from the merged KLL sketch;
low-cardinality string/boolean features get exact value counts. Error bounds: a quantile's
rank is within 0.28% and a histogram bin within 0.37% of the count (KLL k=1000, 99%
confidence; exact below 1000 values); a distinct count within 1.7% (HLL lg_k=14, two
standard deviations). Counts, nulls, NaNs, min, max, mean and stddev are exact.
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
from .sketches import (
    CATEGORICAL,
    HISTOGRAM_BINS,
    MAX_VALUE_COUNTS,
    NUMERIC,
    QUANTILES,
    TEMPORAL,
    Partial,
    kind_of,
    spark_partial,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import Catalog

__all__ = ["CATEGORICAL", "HISTOGRAM_BINS", "KIND", "MAX_VALUE_COUNTS", "NUMERIC", "QUANTILES",
           "TEMPORAL", "Statistics", "compute_statistics", "describe_statistics", "kind_of",
           "record_statistics", "statistics", "statistics_versions"]

KIND = "statistics"


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


def compute_statistics(group: FeatureGroup, data: Any, delta_version: int) -> Statistics:
    """Statistics of ``data`` (a Spark DataFrame, an Arrow table/batch, or a merged
    ``Partial`` already computed from them) holding rows of ``group``, in one pass:
    mergeable partials per partition or batch (``sparkfs.monitoring.sketches``) merged
    into counts, moments, KLL quantiles and histograms and HLL distinct counts.

    >>> import pyarrow as pa
    >>> from sparkfs import Entity, FeatureGroup, Field
    >>> g = FeatureGroup("g", [Entity("e", ["k"])], "t", [Field("x", "double")])
    >>> s = compute_statistics(g, pa.table({"x": [1.0, 3.0, None]}), 1)
    >>> s.rows, s["x"]["mean"], s["x"]["nulls"], s["x"]["histogram"]["counts"][0]
    (3, 2.0, 1, 1)
    """
    if isinstance(data, Partial):  # already computed, e.g. by the delta-rs write pass
        return _finished(group, data, delta_version)
    specs = [(f.name, f.dtype) for f in group.stored_fields
             if f.name in (data.columns if hasattr(data, "sparkSession") else data.schema.names)]
    if hasattr(data, "sparkSession"):
        partial = spark_partial(data, specs)
    else:
        partial = Partial.empty(specs)
        partial.update(data)
    return _finished(group, partial, delta_version)


def _finished(group: FeatureGroup, partial: Partial, delta_version: int) -> Statistics:
    features = {name: {k: (v if k in ("histogram", "values", "quantiles") else _num(v))
                       for k, v in s.items()}
                for name, s in partial.finish().items()}
    return Statistics(group=group.name, group_version=group.version, delta_version=delta_version,
                      rows=partial.rows, features=features)


def record_statistics(catalog: "Catalog", group: FeatureGroup, data: Any,
                      delta_version: int) -> Statistics:
    """Compute the statistics of the batch committed at ``delta_version`` (``data``: its
    rows, Spark or Arrow, or their merged ``Partial``) and store them in ``catalog``'s registry.

    >>> import os, tempfile, pyarrow as pa
    >>> from sparkfs import Entity, FeatureGroup, Field
    >>> from sparkfs.catalog import Catalog
    >>> from sparkfs.registry import Registry
    >>> catalog = Catalog(Registry(os.path.join(tempfile.mkdtemp(), "r.db")))
    >>> g = FeatureGroup("g", [Entity("e", ["k"])], "t", [Field("x", "double")])
    >>> record_statistics(catalog, g, pa.table({"x": [1.0, 2.0]}), 1).rows
    2
    >>> statistics(catalog, g)["x"]["max"], statistics_versions(catalog, g)
    (2.0, [1])
    """
    stats = compute_statistics(group, data, delta_version)
    catalog.registry.put(KIND, group.table_name, int(delta_version), stats.to_dict())
    return stats


def statistics(catalog: "Catalog", group: FeatureGroup, version: int | None = None) -> Statistics:
    """Stored statistics of the batch committed at Delta ``version`` (default: the latest
    version that has statistics). See ``record_statistics`` for an example."""
    spec = catalog.registry.get(KIND, group.table_name, version)
    if spec is None:
        have = catalog.registry.versions(KIND, group.table_name)
        if not have:
            raise NotFoundError(
                f"feature group {group.name!r} v{group.version} has no statistics yet: they are "
                "computed when a batch is ingested (ingest.statistics: true)")
        raise NotFoundError(f"feature group {group.name!r} v{group.version} has no statistics "
                            f"for Delta version {version}; versions with statistics: {have}")
    return Statistics.from_dict(spec)


def statistics_versions(catalog: "Catalog", group: FeatureGroup) -> list[int]:
    """Delta versions of ``group`` that have statistics. See ``record_statistics``."""
    return catalog.registry.versions(KIND, group.table_name)


def describe_statistics(catalog: "Catalog", group: FeatureGroup) -> str:
    """The latest statistics as text for ``sparkfs describe`` ("" when there are none).

    >>> import os, tempfile
    >>> from sparkfs import Entity, FeatureGroup, Field
    >>> from sparkfs.catalog import Catalog
    >>> from sparkfs.registry import Registry
    >>> catalog = Catalog(Registry(os.path.join(tempfile.mkdtemp(), "r.db")))
    >>> describe_statistics(catalog, FeatureGroup("g", [Entity("e", ["k"])], "t", []))
    ''
    """
    try:
        s = statistics(catalog, group)
    except NotFoundError:
        return ""
    body = "\n".join("    " + line for line in s.table().splitlines())
    return (f"  latest statistics (Delta version {s.delta_version}, {s.rows} rows, "
            f"{s.computed_at[:19]}Z):\n{body}")
