"""Mergeable partial statistics of Arrow batches: the one-pass statistics of an ingest.

Each batch (an Arrow ``RecordBatch`` or ``Table``) gives a ``Partial``: per feature the
row counts (values, nulls, NaNs, +-inf), min and max, the mean and sum of squared
deviations of the finite values (merged with Chan et al.'s parallel algorithm, so mean and
variance stay exact to float tolerance however the rows are split), a KLL quantile sketch
and an HLL distinct-count sketch (Apache DataSketches), and the exact value counts of a
string/boolean feature while it has few distinct values. Partials merge in any order;
``Partial.finish`` turns the merged one into the stored statistics format
(``sparkfs.monitoring.stats.Statistics``). Quantiles and histogram counts both come from
the merged KLL sketch: no sample pass, no histogram pass.

On Spark, ``spark_partial`` computes one partial per partition in the executors
(``mapInArrow``), returns each serialized, and merges them on the driver.

Error bounds (the guarantees of the sketches, see https://datasketches.apache.org):

* quantiles: KLL with ``k = KLL_K`` (1000) has a normalized rank error of at most
  ``QUANTILE_RANK_ERROR`` (0.28%) with 99% confidence: the value reported as ``p50`` has a
  true rank within 0.5 +- 0.0028. A histogram bin count is a difference of two such ranks
  (error 0.362% of the count, 99% confidence; ``HISTOGRAM_RANK_ERROR`` = 0.37%). Below
  ``KLL_K`` values a feature's sketch is exact.
* distinct counts: HLL (``lg_k = HLL_LG_K`` = 14, HLL_8) after merging has a relative
  error of 1.62% with 95.4% confidence (two standard deviations;
  ``DISTINCT_RELATIVE_ERROR`` = 1.7%); small counts are exact in practice.

Cost: each numeric batch is sorted once; min/max come from its ends, NaN and +-inf counts
from binary search, KLL is updated with the sorted array and HLL with its distinct values
only (one binding call per distinct value: datasketches 5.x has no array update for HLL).
Mean and M2 are summed over the finite values in their original order, so they are
bit-identical to a plain numpy pass. ``bench/sketch_update.py`` measures the cost.

>>> import pyarrow as pa
>>> p = Partial.empty([("x", "double"), ("s", "string")])
>>> p.update(pa.table({"x": [1.0, 2.0, None, float("nan")], "s": ["a", "b", "a", None]}))
>>> q = Partial.from_bytes(p.to_bytes())
>>> q.update(pa.table({"x": [3.0], "s": ["c"]}))
>>> f = q.finish()
>>> f["x"]["count"], f["x"]["nulls"], f["x"]["nans"], f["x"]["mean"], f["x"]["max"]
(3, 1, 1, 2.0, 3.0)
>>> f["s"]["values"], f["s"]["distinct"]
({'a': 2, 'b': 1, 'c': 1}, 3)
"""

from __future__ import annotations

import datetime as dt
import math
import pickle
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from pyspark.sql import DataFrame

__all__ = ["DISTINCT_RELATIVE_ERROR", "HISTOGRAM_RANK_ERROR", "KLL_K", "HLL_LG_K",
           "Partial", "QUANTILE_RANK_ERROR", "spark_partial"]

NUMERIC = ("int", "long", "float", "double")
CATEGORICAL = ("string", "boolean")
TEMPORAL = ("timestamp", "date")
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 20
#: String/boolean features with at most this many distinct values get value counts.
MAX_VALUE_COUNTS = 30

KLL_K = 1000
HLL_LG_K = 14
#: KLL rank error of a single quantile at KLL_K (99% confidence)
QUANTILE_RANK_ERROR = 0.0028
#: KLL rank error of a PMF / histogram bin at KLL_K (99% confidence)
HISTOGRAM_RANK_ERROR = 0.0037
#: HLL relative error of a merged sketch at HLL_LG_K, two standard deviations
DISTINCT_RELATIVE_ERROR = 0.017


def kind_of(dtype: str) -> str:
    """The statistics kind of a dtype: numeric, categorical, temporal or other.

    >>> kind_of("long"), kind_of("string"), kind_of("date"), kind_of("array<float>")
    ('numeric', 'categorical', 'temporal', 'other')
    """
    if dtype in NUMERIC:
        return "numeric"
    if dtype in CATEGORICAL:
        return "categorical"
    if dtype in TEMPORAL:
        return "temporal"
    return "other"


def _new_kll():
    from datasketches import kll_doubles_sketch

    return kll_doubles_sketch(KLL_K)


def _new_hll():
    from datasketches import HLL_8, hll_sketch

    return hll_sketch(HLL_LG_K, HLL_8)


class _Feature:
    """The partial statistics of one feature (see the module docstring)."""

    __slots__ = ("name", "dtype", "kind", "count", "nulls", "nans", "pos_inf", "neg_inf",
                 "finite", "mean", "m2", "min", "max", "kll", "hll", "values")

    def __init__(self, name: str, dtype: str) -> None:
        self.name, self.dtype, self.kind = name, dtype, kind_of(dtype)
        self.count = self.nulls = self.nans = self.pos_inf = self.neg_inf = self.finite = 0
        self.mean = self.m2 = 0.0
        self.min: Any = None
        self.max: Any = None
        self.kll = _new_kll() if self.kind == "numeric" else None
        self.hll = _new_hll() if self.kind in ("numeric", "categorical", "temporal") else None
        #: exact value counts while a categorical feature has few values (None: too many)
        self.values: dict[str, int] | None = {} if self.kind == "categorical" else None

    # -- one batch ------------------------------------------------------------------------
    def update(self, column: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        self.nulls += column.null_count
        if self.kind == "numeric":
            self._update_numeric(column)
        elif self.kind == "categorical":
            self._update_categorical(column, pa, pc)
        elif self.kind == "temporal":
            self._update_temporal(column, pa, pc)
        else:
            self.count += len(column) - column.null_count

    def _update_numeric(self, column: Any) -> None:
        """Sort the batch's values once: min and max are its ends, NaNs (sorted last) and
        +-inf are counted by binary search, KLL takes the sorted array (its fastest update)
        and HLL only the distinct values (the heads of the sorted array's runs). Mean and
        M2 are summed over the finite values in their original order, as before."""
        import numpy as np

        valid = column.drop_null() if column.null_count else column
        if not len(valid):
            return
        raw = valid.to_numpy(zero_copy_only=False)
        assert self.kll is not None and self.hll is not None
        if self.dtype in ("int", "long"):
            ints = raw.astype(np.int64, copy=False)
            ordered = np.sort(ints)
            self.count += len(ordered)
            self._min_max(int(ordered[0]), int(ordered[-1]))
            self._merge_moments(*_moments(ints.astype(np.float64)))
            self.kll.update(ordered.astype(np.float64))
            _feed(self.hll, _run_heads(ordered))
            return
        values = raw.astype(np.float64, copy=False)
        ordered = np.sort(values)  # NaNs last
        n = int(np.searchsorted(ordered, np.nan))
        nans = len(ordered) - n
        if nans:
            self.nans += nans
            ordered = ordered[:n]
        if not n:
            return
        self.count += n
        lo, hi = float(ordered[0]), float(ordered[-1])
        self._min_max(lo, hi)
        finite = values
        if math.isinf(lo) or math.isinf(hi):
            neg = int(np.searchsorted(ordered, -np.inf, side="right"))
            pos = n - int(np.searchsorted(ordered, np.inf, side="left"))
            self.neg_inf += neg
            self.pos_inf += pos
            finite = values[np.isfinite(values)]
        elif nans:
            finite = values[~np.isnan(values)]
        if len(finite):
            self._merge_moments(*_moments(finite))
        self.kll.update(ordered)
        _feed(self.hll, _run_heads(ordered))

    def _update_categorical(self, column: Any, pa: Any, pc: Any) -> None:
        valid = column.drop_null()
        if not len(valid):
            return
        self.count += len(valid)
        mm = pc.min_max(valid)
        self._min_max(mm["min"].as_py(), mm["max"].as_py())
        counts = pc.value_counts(valid)
        keys = counts.field("values").to_pylist()
        if self.dtype == "boolean":  # stored as Spark's string form of a boolean
            keys = ["true" if k else "false" for k in keys]
        assert self.hll is not None
        _feed(self.hll, keys)
        if self.values is not None:
            for k, c in zip(keys, counts.field("counts").to_pylist()):
                self.values[k] = self.values.get(k, 0) + int(c)
            if len(self.values) > MAX_VALUE_COUNTS:
                self.values = None

    def _update_temporal(self, column: Any, pa: Any, pc: Any) -> None:
        valid = column.drop_null() if column.null_count else column
        if not len(valid):
            return
        self.count += len(valid)
        as_int = valid.cast(pa.int64() if pa.types.is_timestamp(valid.type) else pa.int32())
        mm = pc.min_max(as_int)
        self._min_max(mm["min"].as_py(), mm["max"].as_py())
        assert self.hll is not None
        # distinct values in order of first appearance (HLL's HIP estimate of an unmerged
        # sketch depends on the order of its updates; this keeps it as it was)
        _feed(self.hll, pc.unique(as_int).to_numpy(zero_copy_only=False))

    def _min_max(self, lo: Any, hi: Any) -> None:
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)

    def _merge_moments(self, n_b: int, mean_b: float, m2_b: float) -> None:
        """Chan, Golub and LeVeque's pairwise update of (n, mean, M2)."""
        n_a = self.finite
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * n_a * n_b / n
        self.finite = n

    # -- merging --------------------------------------------------------------------------
    def merge(self, other: "_Feature") -> None:
        self.count += other.count
        self.nulls += other.nulls
        self.nans += other.nans
        self.pos_inf += other.pos_inf
        self.neg_inf += other.neg_inf
        if other.finite:
            self._merge_moments(other.finite, other.mean, other.m2)
        if other.min is not None:
            self._min_max(other.min, other.max)
        if self.kll is not None and other.kll is not None:
            self.kll.merge(other.kll)
        if self.hll is not None and other.hll is not None:
            from datasketches import HLL_8, hll_union

            u = hll_union(HLL_LG_K)
            u.update(self.hll)
            u.update(other.hll)
            self.hll = u.get_result(HLL_8)
        if self.values is None or other.values is None:
            self.values = None
        else:
            for k, c in other.values.items():
                self.values[k] = self.values.get(k, 0) + c
            if len(self.values) > MAX_VALUE_COUNTS:
                self.values = None

    def to_state(self) -> dict:
        state = {s: getattr(self, s) for s in self.__slots__ if s not in ("kll", "hll")}
        state["kll"] = None if self.kll is None else self.kll.serialize()
        state["hll"] = None if self.hll is None else self.hll.serialize_compact()
        return state

    @classmethod
    def from_state(cls, state: dict) -> "_Feature":
        from datasketches import hll_sketch, kll_doubles_sketch

        f = cls.__new__(cls)
        for s in cls.__slots__:
            setattr(f, s, state[s])
        f.kll = None if state["kll"] is None else kll_doubles_sketch.deserialize(state["kll"])
        f.hll = None if state["hll"] is None else hll_sketch.deserialize(state["hll"])
        return f

    # -- the stored format ----------------------------------------------------------------
    def finish(self, rows: int) -> dict:
        s: dict[str, Any] = {"dtype": self.dtype, "kind": self.kind, "count": self.count,
                             "nulls": self.nulls}
        if self.kind == "numeric":
            s.update(nans=self.nans, min=self.min, max=self.max, mean=self._mean(),
                     stddev=self._stddev(), distinct=self._distinct(),
                     quantiles=self._quantiles())
            if self.count and self.min is not None:
                s["histogram"] = self._histogram(s["quantiles"])
        elif self.kind == "categorical":
            s.update(min=self.min, max=self.max, distinct=self._distinct())
            if self.count and self.values is not None:
                s["distinct"] = len(self.values)  # exact while the values are counted
                s["values"] = dict(sorted(self.values.items(), key=lambda kv: (-kv[1], kv[0])))
        elif self.kind == "temporal":
            s.update(min=self._temporal(self.min), max=self._temporal(self.max),
                     distinct=self._distinct())
        return s

    def _mean(self) -> float | None:
        if self.pos_inf and self.neg_inf:
            return None  # inf - inf: undefined (stored as missing, like NaN)
        if self.pos_inf:
            return math.inf
        if self.neg_inf:
            return -math.inf
        return self.mean if self.finite else None

    def _stddev(self) -> float | None:
        """Sample standard deviation (n - 1), like Spark's ``stddev`` and pandas' ``std``."""
        if self.pos_inf or self.neg_inf or self.finite < 2:
            return None
        return math.sqrt(max(self.m2, 0.0) / (self.finite - 1))

    def _distinct(self) -> int:
        if self.hll is None or self.hll.is_empty():
            return 0
        return int(round(self.hll.get_estimate()))

    def _quantiles(self) -> dict[str, float | None]:
        if self.kll is None or self.kll.is_empty():
            return {f"p{round(q * 100)}": None for q in QUANTILES}
        return {f"p{round(q * 100)}": float(self.kll.get_quantile(q)) for q in QUANTILES}

    def _histogram(self, quantiles: dict) -> dict:
        """Equal-width bins over [min, max] (over p1..p99 when the tails are long, the edge
        bins then holding the tails), counted from the KLL sketch."""
        assert self.kll is not None
        lo, hi = float(self.min), float(self.max)
        clipped = False
        p1, p99 = quantiles.get("p1"), quantiles.get("p99")
        if not (math.isfinite(lo) and math.isfinite(hi)):
            lo = p1 if p1 is not None and math.isfinite(p1) else 0.0
            hi = p99 if p99 is not None and math.isfinite(p99) else lo
            clipped = True
        elif p1 is not None and p99 is not None and p1 < p99 and (p99 - p1) < 0.5 * (hi - lo):
            lo, hi = float(p1), float(p99)
            clipped = True
        if hi > lo:
            width = (hi - lo) / HISTOGRAM_BINS
            edges = [lo + j * width for j in range(HISTOGRAM_BINS)] + [hi]
        else:
            edges = [lo, lo + 1.0]
        inner = edges[1:-1]
        masses = self.kll.get_pmf(inner) if inner else [1.0]
        return {"edges": edges, "counts": _apportion(masses, self.count), "clipped": clipped}

    def _temporal(self, v: Any) -> str | None:
        if v is None:
            return None
        epoch = dt.datetime(1970, 1, 1)
        if self.dtype == "date":
            return (epoch.date() + dt.timedelta(days=int(v))).isoformat()
        return (epoch + dt.timedelta(microseconds=int(v))).isoformat()  # naive UTC


def _feed(hll: Any, items: Any) -> None:
    """Update ``hll`` with every item of a list or a 1-d numpy array (datasketches 5.x has
    no array update for HLL, so one call per item; a numpy array is iterated through a
    memoryview, which makes its Python ints/floats one at a time instead of a list).

    >>> import numpy as np
    >>> h = _new_hll(); _feed(h, np.array([1.5, 2.5, 2.5])); _feed(h, [1.5, 3.5])
    >>> round(h.get_estimate())
    3
    """
    if hasattr(items, "dtype"):
        items = memoryview(items)
    deque(map(hll.update, items), maxlen=0)


def _run_heads(ordered: Any) -> Any:
    """The distinct values of a sorted 1-d numpy array: the first value of each run of
    equal values (``np.unique`` without its sort; -0.0 and 0.0 are one value, as in HLL).

    >>> import numpy as np
    >>> _run_heads(np.array([1, 1, 2, 5, 5, 5])).tolist(), _run_heads(np.array([3.0])).tolist()
    ([1, 2, 5], [3.0])
    """
    import numpy as np

    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered if keep.all() else ordered[keep]


def _moments(finite: Any) -> tuple[int, float, float]:
    """(n, mean, sum of squared deviations) of a non-empty float64 array."""
    import numpy as np

    mean = float(finite.mean())
    return len(finite), mean, float(np.square(finite - mean).sum())


def _apportion(masses: Sequence[float], total: int) -> list[int]:
    """Integer counts summing to ``total`` in proportion to ``masses`` (largest remainder).

    >>> _apportion([0.25, 0.25, 0.5], 5)
    [1, 1, 3]
    """
    raw = [max(m, 0.0) * total for m in masses]
    counts = [int(math.floor(r)) for r in raw]
    left = total - sum(counts)
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[:max(left, 0)]:
        counts[i] += 1
    return counts


class Partial:
    """Mergeable statistics of some rows of a feature group's batch: ``rows`` and one
    partial per feature (``specs``: (name, dtype) pairs). ``update`` adds an Arrow batch,
    ``merge`` another partial, ``to_bytes``/``from_bytes`` carry it between processes and
    ``finish`` gives the per-feature statistics dict of ``Statistics.features``.

    >>> import pyarrow as pa
    >>> a, b = Partial.empty([("x", "long")]), Partial.empty([("x", "long")])
    >>> a.update(pa.table({"x": [1, 2]})); b.update(pa.table({"x": [5, None]}))
    >>> a.merge(b); a.rows, a.finish()["x"]["max"], a.finish()["x"]["nulls"]
    (4, 5, 1)
    """

    def __init__(self, rows: int, features: dict[str, _Feature]) -> None:
        self.rows = rows
        self.features = features

    @classmethod
    def empty(cls, specs: Iterable[tuple[str, str]]) -> "Partial":
        return cls(0, {name: _Feature(name, dtype) for name, dtype in specs})

    def update(self, batch: "pa.RecordBatch | pa.Table") -> None:
        """Add the rows of an Arrow batch or table holding (at least) every feature."""
        self.rows += batch.num_rows
        if not batch.num_rows:
            return
        for name, f in self.features.items():
            f.update(batch.column(name))

    def merge(self, other: "Partial") -> None:
        self.rows += other.rows
        for name, f in self.features.items():
            f.merge(other.features[name])

    def to_bytes(self) -> bytes:
        return pickle.dumps({"rows": self.rows,
                             "features": [f.to_state() for f in self.features.values()]})

    @classmethod
    def from_bytes(cls, data: bytes) -> "Partial":
        state = pickle.loads(data)  # noqa: S301 - our own executors' output
        feats = [_Feature.from_state(s) for s in state["features"]]
        return cls(int(state["rows"]), {f.name: f for f in feats})

    @classmethod
    def merged(cls, specs: Iterable[tuple[str, str]], blobs: Iterable[bytes]) -> "Partial":
        """One partial from the serialized partials ``blobs`` (``to_bytes``) of ``specs``.

        >>> import pyarrow as pa
        >>> a = Partial.empty([("x", "long")]); a.update(pa.table({"x": [1, 2]}))
        >>> Partial.merged([("x", "long")], [a.to_bytes(), a.to_bytes()]).rows
        4
        """
        out = cls.empty(specs)
        for blob in blobs:
            out.merge(cls.from_bytes(blob))
        return out

    def finish(self) -> dict[str, dict]:
        """The statistics of every feature, in the stored format."""
        return {name: f.finish(self.rows) for name, f in self.features.items()}


def _partition_partials(specs: list[tuple[str, str]]):
    def run(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        import pyarrow as pa

        p = Partial.empty(specs)
        for b in batches:
            p.update(b)
        yield pa.RecordBatch.from_arrays([pa.array([p.to_bytes()], pa.binary())], ["partial"])

    return run


def spark_partial(df: "DataFrame", specs: list[tuple[str, str]]) -> Partial:
    """One pass over ``df``: a partial per partition in the executors (``mapInArrow``),
    merged on the driver. ``specs`` are the (name, dtype) pairs of the features.

    >>> spark_partial.__name__  # needs Spark; exercised by tests/test_stats_onepass.py
    'spark_partial'
    """
    from ..sparkutil import arrow_batches_by_rows
    from ..sql import quote_ident

    cols = [quote_ident(name, "spark") for name, _ in specs]
    with arrow_batches_by_rows(df.sparkSession):
        rows = df.select(*cols).mapInArrow(_partition_partials(specs),
                                           "partial binary").collect()
    return Partial.merged(specs, (bytes(r["partial"]) for r in rows))
