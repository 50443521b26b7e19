"""Training/serving skew: "is what we served what training would have seen?"

``skew_report(catalog, offline, spark, inference, deployment, start=None, end=None,
engine="duckdb", storage_options=...)`` (collaborators: the ``Catalog``, the
``OfflineStore``, a ``SparkProvider`` called only by the Spark engine, the
``sparkfs.inference.Inference`` holding the deployments and evaluation log):

1. Reads the deployment's online requests in ``[start, end)`` from its evaluation log
   (``_LogScan``: the window pushed into the scan, the online/no-error rows by a mask,
   log order checked without a sort), only the columns it needs, in three reads: the
   spine's (entity and request JSON dictionary-encoded, so that each distinct string is
   parsed once and no row's string is decoded), then the served values (typed columns,
   Arrow, no pandas: a null and a NaN stay distinct) on a second thread while the join
   runs, then statuses and event times only for the group columns with skewed rows.
2. Recomputes each request's features offline at its logged time with the same view,
   references and on-demand transforms: ``get_historical_features(..., as_known_at=True,
   event_times=True)`` (only rows committed before the request was served; the event time
   of the row chosen per group is the newest one offline knew then), engine ``"duckdb"``
   or ``"spark"``.
3. Compares in one vectorised pass over the join output beside the log (``_local_pass``,
   Arrow compute then numpy on the rows not plainly equal, no per-row Python; the Spark
   engine's join rows reach the driver as Arrow), per model input column, logged vs
   recomputed value:

   - ``match``: both null, both NaN, or equal (numbers: equal, or finite and within
     ``1e-9`` relative; an infinity matches only the same infinity);
   - ``missing_online``: served null, offline has a value (NaN counts as a value);
   - ``missing_offline``: served a value, offline null;
   - ``mismatch``: both have values and they differ (NaN vs a number included).

   ``skew_rate`` = (missing_online + missing_offline + mismatch) / requests; for numbers
   also the mean and max absolute difference of the mismatches (NaN when a mismatch
   involves a NaN). A sample of the first skewed requests (log order) keeps both values.
4. Explains each skewed value (in the same pass; only skewed rows get a cause) with the
   first cause that applies:

   - ``materialization_lag``: the served value's event time is older than the newest event
     time offline knew at serve time (or nothing was served while offline had a row);
   - ``ttl_expiry``: the served value was older than the group's ttl at serve time
     (offline expired it), or the online store marked it expired while offline had it;
   - ``transform_changed``: the column comes from a transform whose fingerprint in the
     model's training-set manifest differs from the registered (served) one; every request
     is counted, whatever its value, since the recompute runs the served code too;
   - an on-demand column takes the cause found on the same request for a column of a
     group the transform reads (a lagging ``weather`` row makes ``weather_risk`` lag);
   - ``unexplained``.

Refused with the reason: a window with no logged online requests, and logs written for
another view than the deployment's current one (a view change since).

>>> r = SkewReport("delay", 1, "m@1", "v@1", "t@1", "duckdb", None, None, 2, 0.0, features=[
...     {"feature": "temp", "requests": 2, "skew_rate": 0.5, "causes": {"unexplained": 1}}])
>>> r.failing(), r.failing(0.6)
(['temp'], [])
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import NotFoundError, SparkfsError

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import Catalog, SparkProvider
    from ..offline.tables import OfflineStore

__all__ = ["CAUSES", "SkewReport", "skew_report"]

CAUSES = ("materialization_lag", "ttl_expiry", "transform_changed", "unexplained")
SAMPLE = 5
REL_TOL = 1e-9
_ROW = "skew_row_"
_AT = "skew_served_at_"


@dataclass
class SkewReport:
    """One skew report: the deployment (revision, model, view, training set), the engine,
    the window, ``requests`` compared, the ``threshold`` and per model input column a dict
    in ``features``: ``feature``, ``dtype``, ``source`` (group label or ``on_demand:<t>``),
    ``requests``, ``matches``, ``missing_online``, ``missing_offline``, ``mismatches``,
    ``skew_rate``, ``mean_abs_diff`` / ``max_abs_diff`` (numbers, else None), ``causes``
    ({cause: requests}) and ``sample`` (skewed requests: request id, row, served time,
    entity, served and offline values, cause). ``findings`` are report-level causes
    (changed transforms)."""

    deployment: str
    revision: int
    model: str
    view: str | None
    training_set: str
    engine: str
    start: str | None
    end: str | None
    requests: int
    threshold: float
    features: list[dict] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    report_id: str | None = None  # set when stored (``save_report``)

    @classmethod
    def from_dict(cls, d: dict) -> "SkewReport":
        """The report of ``to_dict()`` (a stored report read back).

        >>> r = SkewReport("d", 1, "m@1", None, "t@1", "duckdb", None, None, 1, 0.0)
        >>> SkewReport.from_dict(json.loads(r.to_json())) == r
        True
        """
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**fields)

    def failing(self, threshold: float | None = None) -> list[str]:
        """Columns whose skew rate is above ``threshold`` (default: the report's), or
        that a changed transform computes."""
        t = self.threshold if threshold is None else threshold
        return [f["feature"] for f in self.features
                if f["skew_rate"] > t or f["causes"].get("transform_changed")]

    def feature(self, name: str) -> dict:
        for f in self.features:
            if f["feature"] == name:
                return f
        raise NotFoundError(f"skew report of {self.deployment!r} has no feature {name!r}; "
                            f"features: {[f['feature'] for f in self.features]}")

    def to_dict(self) -> dict:
        return {**asdict(self), "failing": self.failing()}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def __str__(self) -> str:
        def num(v: Any) -> str:
            return "-" if v is None else f"{v:.4g}"

        rows = [("FEATURE", "SOURCE", "MATCH", "MISS ONLINE", "MISS OFFLINE", "MISMATCH",
                 "SKEW", "MAX |DIFF|", "CAUSES")]
        for f in self.features:
            causes = ", ".join(f"{k} {v}" for k, v in sorted(f["causes"].items()) if v) or "-"
            rows.append((f["feature"], f["source"], str(f["matches"]), str(f["missing_online"]),
                         str(f["missing_offline"]), str(f["mismatches"]),
                         f"{f['skew_rate']:.3f}", num(f["max_abs_diff"]), causes))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
        bad = self.failing()
        verdict = (f"SKEW in {len(bad)} feature(s) above {self.threshold}: {', '.join(bad)}"
                   if bad else f"no skew above {self.threshold}")
        stored = f" [stored as {self.report_id}]" if self.report_id else ""
        return "\n".join([f"skew of deployment {self.deployment} (revision {self.revision}, "
                          f"model {self.model}, training set {self.training_set}): "
                          f"{self.requests} request(s), engine {self.engine}, window "
                          f"{self.start or 'the start'} .. {self.end or 'now'}{stored}", table]
                         + [f"finding: {x}" for x in self.findings] + [verdict])


# -- reading the log --------------------------------------------------------------------------
def _utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    import pandas as pd

    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _iso(value: Any) -> str | None:
    t = _utc(value)
    return t.isoformat() if t is not None else None


def read_requests(log_path: str, start: Any, end: Any, storage_options: dict,
                  columns: list[str] | None = None) -> pa.Table:
    """The online rows of an evaluation table in ``[start, end)`` without errors (Arrow),
    oldest first; only ``columns`` (plus ``time``, ``request_id`` and ``row``, the order)
    when given."""
    return _LogScan(log_path, start, end, storage_options, columns).table


class _LogScan:
    """One read of an evaluation table's online rows in ``[start, end)`` without errors,
    oldest first (``table``), and later reads of more columns for the same rows in the
    same order (``columns``): the Delta version is loaded once, so rows appended meanwhile
    are not seen.

    The time window is pushed into the scan (files and row groups outside it are skipped);
    the online/no-error condition is a mask computed from its two columns and applied only
    when some row fails it (a filter in the scan copies every column read even when all
    rows pass). The string columns in ``dictionary`` are read dictionary-encoded (the
    entity and request JSON, statuses: few distinct values, decoded once each)."""

    def __init__(self, log_path: str, start: Any, end: Any, storage_options: dict,
                 columns: list[str] | None = None, dictionary: tuple[str, ...] = ()) -> None:
        import pyarrow.dataset as ds
        from deltalake import DeltaTable

        from ..offline.tables import arrow_dataset

        try:
            data = arrow_dataset(DeltaTable(log_path, storage_options=storage_options))
        except Exception:
            raise NotFoundError(f"no evaluation log at {log_path}") from None
        if dictionary:
            data = _dictionary_dataset(data, dictionary)
        self.data = data
        ts_type = pa.timestamp("us", "UTC")
        expr = None
        if start is not None:
            expr = ds.field("time") >= pa.scalar(_utc(start), ts_type)
        if end is not None:
            e = ds.field("time") < pa.scalar(_utc(end), ts_type)
            expr = e if expr is None else expr & e
        self.expr = expr
        read = None
        if columns is not None:
            read = list(dict.fromkeys(["time", "request_id", "row", *columns,
                                       "scoring_path", "error"]))
        table = data.to_table(columns=read, filter=expr)
        online = _equals(table.column("scoring_path"), "online")
        keep = pc.and_(online, table.column("error").is_null())
        self.keep = None if pc.all(keep).as_py() is not False else keep
        if self.keep is not None:
            table = table.filter(self.keep)
        if read is not None:
            table = table.drop_columns([c for c in ("scoring_path", "error")
                                        if c not in columns])  # type: ignore[operator]
        self.order = None
        if not _in_order(table):  # appended in order (the usual case): no copy of any column
            self.order = pc.sort_indices(
                table.select(["time", "request_id", "row"]),
                sort_keys=[("time", "ascending"), ("request_id", "ascending"),
                           ("row", "ascending")])
        self.table = table if self.order is None else table.take(self.order)

    def columns(self, names: list[str]) -> pa.Table:
        """``names`` for the rows of ``table``, in its order (one more scan)."""
        table = self.data.to_table(columns=list(names), filter=self.expr)
        if self.keep is not None:
            table = table.filter(self.keep)
        return table if self.order is None else table.take(self.order)


def _equals(col: pa.ChunkedArray, value: str) -> pa.ChunkedArray:
    """``col == value`` per row, null: False (a dictionary-encoded column is compared
    through its dictionary).

    >>> col = pa.chunked_array([pa.array(["a", None, "b"]).dictionary_encode()])
    >>> _equals(col, "a").to_pylist(), _equals(col.cast(pa.string()), "a").to_pylist()
    ([True, False, False], [True, False, False])
    """
    if not pa.types.is_dictionary(col.type):
        return pc.fill_null(pc.equal(col, value), False)
    return pa.chunked_array(
        [pc.fill_null(pc.equal(c.dictionary, value).take(c.indices), False) for c in col.chunks],
        pa.bool_())


def _in_order(table: pa.Table) -> bool:
    """Whether ``table``'s rows are already ordered by (``time``, ``request_id``, ``row``),
    nulls last (one vectorised comparison of each row with the next, no sort).

    >>> import datetime as dt
    >>> t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    >>> table = pa.table({"time": [t, t, t], "request_id": ["a", "a", "b"], "row": [0, 1, 0]})
    >>> _in_order(table), _in_order(table.take([0, 2, 1]))
    (True, False)
    """
    n = table.num_rows
    if n < 2:
        return True
    if any(table.column(c).null_count for c in ("time", "request_id", "row")):
        return False  # rare (rows from outside the logger): let the sort place the nulls
    prev, nxt = table.slice(0, n - 1), table.slice(1)
    ok = None
    for c in ("row", "request_id", "time"):  # from the last key to the first
        a, b = prev.column(c), nxt.column(c)
        ok = pc.less_equal(a, b) if ok is None else pc.or_(pc.less(a, b),
                                                            pc.and_(pc.equal(a, b), ok))
    return bool(pc.all(ok).as_py())


def _dictionary_dataset(data: Any, names: tuple[str, ...]) -> Any:
    """``data`` (a parquet dataset) with the string columns ``names`` read
    dictionary-encoded."""
    import pyarrow.dataset as ds

    names = tuple(n for n in names if n in data.schema.names
                  and pa.types.is_string(data.schema.field(n).type))
    if not names:
        return data
    fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=names))
    schema = pa.schema([f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in names
                        else f for f in data.schema])
    fragments = [fmt.make_fragment(f.path, data.filesystem,
                                   partition_expression=f.partition_expression)
                 for f in data.get_fragments()]
    return ds.FileSystemDataset(fragments, schema, fmt, data.filesystem)


def _spine(log: pa.Table):
    import pandas as pd

    entities = [json.loads(e) for e in log.column("entity").to_pylist()]
    requests = [json.loads(r) if r else {} for r in log.column("request_data").to_pylist()]
    data: dict[str, list] = {}
    for key in sorted({k for e in entities for k in e}):
        data[key] = [e.get(key) for e in entities]
    for key in sorted({k for r in requests for k in r}):
        data[key] = [r.get(key) for r in requests]
    spine = pd.DataFrame(data)
    spine[_AT] = pd.Series(log.column("time").to_pandas(), dtype="datetime64[us, UTC]")
    spine[_ROW] = range(len(spine))
    return spine, entities


# -- comparing -------------------------------------------------------------------------------
def _masks(col: Any):
    """(null, NaN) masks of ``col`` as numpy bools."""
    import numpy as np

    n = len(col)
    null = (np.zeros(n, dtype=bool) if col.null_count == 0
            else col.is_null().to_numpy(zero_copy_only=False))
    if pa.types.is_floating(col.type):
        nan = pc.fill_null(pc.is_nan(col), False).to_numpy(zero_copy_only=False)
    else:
        nan = np.zeros(n, dtype=bool)
    return null, nan


def _compare(served: pa.ChunkedArray, offline: pa.ChunkedArray):
    """Per row: 0 match, 1 missing online, 2 missing offline, 3 mismatch; and for numbers
    the absolute differences (read them where the state is 3; None for other types). Two
    NaNs match; null against NaN is missing on the null side; an infinity matches only the
    same infinity; numbers match within ``REL_TOL``. The dense form of ``_compare_rows``."""
    import numpy as np

    rows, sub, sub_diff = _compare_rows(served, offline)
    state = np.zeros(len(served), dtype=np.int8)
    state[rows] = sub
    if sub_diff is None:
        return state, None
    diff = np.full(len(served), np.nan)
    diff[rows] = sub_diff
    return state, diff


def _compare_rows(served: Any, offline: Any):
    """``_compare``'s rules, vectorised and sparse: ``(rows, state, diff)`` for the rows
    whose values are not plainly equal (Arrow ``equal``, or both null, or both NaN),
    ascending, with their state (0 to 3) and, for numbers, absolute difference; every
    other row matches. Numbers are compared as float64 (as before: integers beyond 2**53
    that float64 cannot tell apart match); nested types Arrow cannot compare are compared
    with Python equality."""
    import numpy as np

    numeric = pa.types.is_integer(served.type) or pa.types.is_floating(served.type)
    try:
        plain = pc.or_(pc.fill_null(pc.equal(served, offline), False),
                       pc.and_(served.is_null(), offline.is_null()))
        if pa.types.is_floating(served.type) and pa.types.is_floating(offline.type):
            plain = pc.or_(plain, pc.fill_null(pc.and_(pc.is_nan(served), pc.is_nan(offline)),
                                               False))
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        if numeric:
            raise
        # lists, maps, structs; types Arrow will not compare
        sv, ov = served.to_pylist(), offline.to_pylist()
        plain = pa.array([x == y for x, y in zip(sv, ov)], pa.bool_())
    rows = pc.indices_nonzero(pc.invert(plain)).to_numpy(zero_copy_only=False).astype(np.int64)
    if not len(rows):
        return rows, np.zeros(0, dtype=np.int8), (np.zeros(0) if numeric else None)
    idx = pa.array(rows)
    s, o = served.take(idx), offline.take(idx)
    s_null, s_nan = _masks(s)
    o_null, o_nan = _masks(o)
    both = ~s_null & ~o_null
    diff = None
    if numeric:
        a = pc.cast(s, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        b = pc.cast(o, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.abs(a - b)
            close = (a == b) | (np.isfinite(d) & (
                d <= REL_TOL * np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))))
        equal = (s_nan & o_nan) | (~s_nan & ~o_nan & close)
        diff = np.where(both & ~s_nan & ~o_nan, d, np.nan)
    else:
        equal = np.zeros(len(rows), dtype=bool)  # not plainly equal: two nulls only match
    state = np.zeros(len(rows), dtype=np.int8)
    state[s_null & ~o_null] = 1
    state[~s_null & o_null] = 2
    state[both & ~equal] = 3
    return rows, state, diff


def skew_report(catalog: "Catalog", offline: "OfflineStore", spark: "SparkProvider",
                inference: Any, deployment: str, start: Any = None, end: Any = None,
                engine: str = "duckdb", threshold: float = 0.0, sample: int = SAMPLE, *,
                storage_options: dict | None = None) -> SkewReport:
    """Compare what ``deployment`` served in ``[start, end)`` with what offline
    recomputation gives (see the module docstring). ``inference``: the
    ``sparkfs.inference.Inference`` (deployments, evaluation log); ``storage_options``:
    ``config.offline.storage_options``."""
    from ..training.sets import get_training_set

    if engine not in ("duckdb", "spark"):
        raise SparkfsError(f"skew report engine {engine!r} is unknown; use 'duckdb' or 'spark'")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not 0.0 <= threshold <= 1.0 or math.isnan(threshold):
        raise SparkfsError(f"skew threshold must be a rate within [0, 1], got {threshold!r}")
    d = inference.deployments.get(deployment)
    inference.flush()
    b = d.binding
    # the spine's columns now; the served values while the join runs (``_fused_pass``);
    # statuses and event times last, of the skewed columns only (``_local_pass``)
    scan = _LogScan(d.log_path, start, end, dict(storage_options or {}),
                    columns=["entity", "request_data", "view"],
                    dictionary=("entity", "request_data", "view", "scoring_path", "error",
                                *(f"{c}__status" for c in b.column_names)))
    log = scan.table
    start_s, end_s = _iso(start), _iso(end)
    window = f"from {start_s or 'the start'} until {end_s or 'now'}"
    if log.num_rows == 0:
        raise SparkfsError(f"deployment {deployment!r} has no logged online requests {window}; "
                           "nothing to compare")
    views = sorted(_distinct(log.column("view")), key=str)
    if views != [d.view]:
        raise SparkfsError(
            f"deployment {deployment!r}: requests {window} were logged for view(s) {views} but "
            f"it now serves {d.view!r}; the view changed since, so recomputing them with the "
            f"current one would compare different features. Narrow the window (start=) to "
            f"after revision {d.revision} was deployed ({d.created_at})")
    tname, _, tver = d.training_set.partition("@")
    manifest = get_training_set(catalog, tname, int(tver) if tver else None).manifest

    # which group (or on-demand transform) makes each column, and changed transforms
    source: dict[str, tuple[str, dict]] = {}
    for gr in manifest.get("groups", []):
        for c in gr.get("columns", []):
            source[c] = ("group", gr)
    od_specs = {s["name"]: s for s in catalog.registry.list("on_demand")}
    registered = {name: s.get("fingerprint") for name, s in od_specs.items()}
    changed: dict[str, str] = {}
    for name, fp in (manifest.get("on_demand") or {}).items():
        now = registered.get(name)
        if now != fp:
            changed[name] = (f"on-demand transform {name!r}: fingerprint {fp} in training set "
                             f"{d.training_set}, {now} registered (served)")
    for gr in manifest.get("groups", []):
        current = catalog.get_group(gr["name"], gr["version"])
        now_t = {t.name: getattr(t, "fingerprint", "") for t in current.transforms}
        if now_t != gr.get("transforms", {}):
            changed[gr["label"]] = (f"transforms of group {gr['label']}: {gr.get('transforms')} "
                                    f"in training set {d.training_set}, {now_t} now")
    od_columns = _on_demand_columns(manifest, b)
    cols = _columns(catalog, b, source, od_columns, od_specs, changed, scan.data.schema)
    fused, log = _fused_pass(catalog, offline, spark, b, log, cols, engine, sample,
                             scan.columns)
    if int(fused["rows"]) != log.num_rows:
        raise SparkfsError(f"skew of {deployment!r}: the offline recompute returned "
                           f"{fused['rows']} rows for {log.num_rows} requests")

    report = SkewReport(d.name, d.revision, d.model_label, d.view, d.training_set, engine,
                        start_s, end_s,
                        log.num_rows, float(threshold), findings=sorted(changed.values()))
    n = log.num_rows
    entities = log.column("entity")
    report.features = []
    for c in cols:
        j = c.j
        counts = [int(fused[f"n{k}_{j}"]) for k in (1, 2, 3)]
        skewed = sum(counts)
        if c.kind == "changed":  # every request: the recompute ran the served code too
            causes = {"transform_changed": n}
        else:
            causes = {k: int(fused[f"c{i}_{j}"]) for i, k in enumerate(CAUSES)
                      if k != "transform_changed" and fused[f"c{i}_{j}"]}
        picked = fused.get(f"smp_{j}") or []
        report.features.append({
            "feature": c.name, "dtype": c.dtype, "source": c.source,
            "requests": n, "matches": n - skewed, "missing_online": counts[0],
            "missing_offline": counts[1], "mismatches": counts[2], "skew_rate": skewed / n,
            "mean_abs_diff": _float(fused.get(f"mean_{j}")) if counts[2] else None,
            "max_abs_diff": _float(fused.get(f"max_{j}")) if counts[2] else None,
            "causes": causes,
            "sample": [_sample(log, c.name, entities, x["i"], x["o"], x["c"])
                       for x in picked[:sample]],
        })
    return report


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


@dataclass
class _Col:
    """One model input column as the fused comparison sees it: ``j`` its position,
    ``kind`` ``group`` / ``on_demand`` / ``changed`` (a changed transform computes it),
    ``group`` the group name and ``known`` the column with the newest event time offline
    knew at serve time (group columns), ``ttl_us`` the group's ttl, ``reads`` the groups an
    on-demand transform reads (sorted)."""

    j: int
    name: str
    dtype: str
    source: str
    kind: str
    numeric: bool
    group: str | None = None
    group_version: int | None = None
    key_columns: dict = field(default_factory=dict)
    known: str | None = None
    ttl_us: int | None = None
    reads: tuple[str, ...] = ()


def _columns(catalog: "Catalog", binding: Any, source: dict, od_columns: dict, od_specs: dict,
             changed: dict, schema: pa.Schema) -> list["_Col"]:
    from ..training.plan import EVENT_TIME_PREFIX, micros

    out = []
    groups: dict[tuple[str, int], Any] = {}
    for j, (col, dtype) in enumerate(binding.columns):
        t = schema.field(col).type
        numeric = pa.types.is_integer(t) or pa.types.is_floating(t)
        kind, info = source.get(col, ("on_demand", {}))
        if kind == "group":
            label = info.get("label")
            c = _Col(j, col, dtype, label, "group", numeric, group=info["name"],
                     group_version=info["version"], key_columns=dict(info["key_columns"]))
            at = (info["name"], info["version"])
            group = groups[at] = groups.get(at) or catalog.get_group(*at)
            c.ttl_us = micros(group.ttl) if group.ttl is not None else None
            # the event time of the row the as-known-at join chose is the newest one
            # offline knew at serve time; aggregation groups have no such row
            c.known = None if group.aggregations else EVENT_TIME_PREFIX + label
            if label in changed:
                c.kind = "changed"
        else:
            transform = od_columns.get(col)
            c = _Col(j, col, dtype, f"on_demand:{transform}", "on_demand", numeric)
            if transform in changed:
                c.kind = "changed"
            c.reads = tuple(sorted({ref.split(":", 1)[0].split("@", 1)[0] for ref in
                                    (od_specs.get(transform or "", {}).get("features")
                                     or {}).values()}))
        out.append(c)
    return out


def _served_name(kind: str, j: int) -> str:
    return f"skew_{kind}{j}_"


def _served_side(log: pa.Table, cols: list["_Col"], known: dict[str, pa.Array]) -> dict:
    """What the comparison needs from the log, by name: per column the served value
    (``skew_s{j}_``), plus the newest known event times computed outside the join
    (aggregation groups)."""
    out: dict[str, Any] = {_served_name("s", c.j): log.column(c.name) for c in cols}
    out.update(known)
    return out


def _fused_pass(catalog: "Catalog", offline: "OfflineStore", spark: "SparkProvider",
                binding: Any, log: pa.Table, cols: list["_Col"], engine: str,
                sample: int, more: Any) -> tuple[dict, pa.Table]:
    """Recompute the logged requests with the point-in-time join (as known at the served
    time, with the chosen rows' event times, on ``engine``) and compare in one pass over
    its output beside the log (``_local_pass``). ``log`` has the spine's columns;
    ``more(names)`` reads further log columns for the same rows: the served values are
    read on a second thread while the join runs (Arrow's scan, DuckDB and the JVM release
    the GIL). Returns the aggregates by name and the log with the served values."""
    from concurrent.futures import ThreadPoolExecutor

    from ..training import get_historical_features

    spine = _spine_arrow(log)
    known = {}
    for c in cols:  # aggregation groups: the newest known event time, outside the join
        if c.kind == "group" and c.known is None and c.group is not None:
            name = _served_name("k", c.j)
            group = catalog.get_group(c.group, c.group_version)
            known[name] = _known_at_serving(offline, group, c.key_columns, spine)
            c.known = name
    with ThreadPoolExecutor(1, thread_name_prefix="sparkfs-skew-read") as pool:
        values = pool.submit(more, [c.name for c in cols])
        ts = get_historical_features(catalog, offline, spark, spine, list(binding.features),
                                     _AT, engine=engine, as_known_at=True, event_times=True,
                                     key_map=dict(binding.key_map) or None,
                                     full_feature_names=binding.full_feature_names)
        # both engines: the join's rows (in log order) compared in one vectorised pass; on
        # Spark the rows reach the driver as Arrow, measured faster than the same rules as
        # one Spark SQL aggregation (whose wide CASE stages dominated)
        recomputed = ts.to_arrow()
        read = values.result()
    for name in read.column_names:
        log = log.append_column(read.schema.field(name), read.column(name))
    served = _served_side(log, cols, known)
    return _local_pass(recomputed, log, served, cols, sample, more), log


def _micros(col: Any) -> tuple[Any, Any]:
    """A timestamp column as (epoch µs int64 numpy, valid mask)."""
    arr = pc.cast(col, pa.timestamp("us", "UTC")).cast(pa.int64())
    return (pc.fill_null(arr, 0).to_numpy(zero_copy_only=False),
            arr.is_valid().to_numpy(zero_copy_only=False))


def _local_pass(recomputed: pa.Table, log: pa.Table, served: dict, cols: list["_Col"],
                sample: int, more: Any) -> dict:
    """Both engines' comparison: the rules of ``_compare`` vectorised over the join result
    (Arrow/numpy, one pass per column; measured faster here than the same rules as one
    DuckDB query, whose wide CASE expressions dominated), causes computed only for the
    skewed rows: the served statuses and event times are read (``more(names)``, one scan)
    only for the group columns with skewed rows. Returns the report's aggregates by name."""
    import numpy as np

    n = recomputed.num_rows
    out: dict[str, Any] = {"rows": n}
    if n != log.num_rows:
        return out
    code = {k: i for i, k in enumerate(CAUSES)}
    unexplained = code["unexplained"]
    group_cause: dict[str, Any] = {}  # group -> per row the first known cause (-1: none)
    results: dict[int, tuple[Any, Any, Any, Any]] = {}
    skew: dict[int, tuple[Any, Any, Any]] = {}  # j -> skewed rows, their states and diffs
    for c in cols:
        rows, state, diff = _compare_rows(served[_served_name("s", c.j)],
                                          recomputed.column(c.name))
        bad = state != 0
        skew[c.j] = (rows[bad], state[bad], None if diff is None else diff[bad])
    why = [c for c in cols if c.kind == "group" and len(skew[c.j][0])]
    extra = more([f"{c.name}{x}" for c in why for x in ("__status", "__event_time")]) \
        if why else None
    order = sorted(cols, key=lambda c: c.kind != "group")
    for c in order:
        skewed, st, diff = skew[c.j]
        cause = np.full(len(skewed), unexplained, dtype=np.int8)
        if c.kind == "changed":
            cause[:] = code["transform_changed"]
        elif c.kind == "group" and len(skewed) and extra is not None:
            idx = pa.array(skewed)
            status = extra.column(f"{c.name}__status").take(idx)
            expired = pc.fill_null(pc.equal(status.cast(pa.string()), "expired"), False
                                   ).to_numpy(zero_copy_only=False)
            e, e_ok = _micros(extra.column(f"{c.name}__event_time").take(idx))
            ttl = expired.astype(bool)
            if c.ttl_us is not None:
                at, _ = _micros(recomputed.column(_AT).take(idx))
                ttl |= (st == 2) & e_ok & (at - e > c.ttl_us)
            lag = np.zeros(len(skewed), dtype=bool)
            if c.known is not None:
                known_col = (recomputed.column(c.known) if c.known in recomputed.column_names
                             else served[c.known])
                k, k_ok = _micros(known_col.take(idx))
                lag = k_ok & (~e_ok | (e < k))
            cause = np.where(ttl, code["ttl_expiry"],
                             np.where(lag, code["materialization_lag"], unexplained))
            if c.group is not None:
                g = group_cause.setdefault(c.group, np.full(n, -1, dtype=np.int8))
                take = (g[skewed] == -1) & (cause != unexplained)
                g[skewed[take]] = cause[take]
        elif c.kind == "on_demand" and len(skewed):
            for grp in c.reads:
                g = group_cause.get(grp)
                if g is None:
                    continue
                found = (cause == unexplained) & (g[skewed] != -1)
                cause[found] = g[skewed][found]
        results[c.j] = (st, skewed, cause, diff)
    for c in cols:
        st, skewed, cause, diff = results[c.j]
        counts = np.bincount(st, minlength=4)
        for k in (1, 2, 3):
            out[f"n{k}_{c.j}"] = int(counts[k])
        if diff is not None:
            mism = diff[st == 3]
            out[f"mean_{c.j}"] = float(mism.mean()) if len(mism) else None
            out[f"max_{c.j}"] = float(mism.max()) if len(mism) else None
        per_cause = np.bincount(cause, minlength=len(CAUSES))
        for i, k in enumerate(CAUSES):
            if k != "transform_changed":
                out[f"c{i}_{c.j}"] = int(per_cause[i])
        offline = recomputed.column(c.name)
        out[f"smp_{c.j}"] = [{"i": int(i), "o": offline[int(i)].as_py(), "c": CAUSES[x]}
                             for i, x in zip(skewed[:sample], cause[:sample])]
    return out


def _json_columns(col: pa.ChunkedArray) -> dict[str, pa.Array]:
    """The keys of a column of JSON objects (null or empty: no keys) as Arrow columns;
    each distinct string is parsed once (dictionary-encoded columns, as ``_LogScan``
    reads them, are used as they are: no pass over every row's string)."""
    import numpy as np

    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    ids: dict[str, int] = {}
    objs: list[dict] = [{}]  # 0: null or empty
    parts = []
    for chunk in col.chunks:
        strings = chunk.dictionary.to_pylist()
        remap = np.zeros(max(len(strings), 1), dtype=np.int64)
        for i in pc.unique(chunk.indices).drop_null().to_pylist():
            x = strings[i]
            if not x:
                continue
            if x not in ids:
                ids[x] = len(objs)
                objs.append(json.loads(x))
            remap[i] = ids[x]
        valid = chunk.indices.is_valid().to_numpy(zero_copy_only=False)
        at = pc.fill_null(chunk.indices, 0).to_numpy(zero_copy_only=False)
        parts.append(np.where(valid, remap[at], 0))
    take = pa.array(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
    keys = sorted({k for o in objs for k in o})
    return {k: pa.array([o.get(k) for o in objs]).take(take) for k in keys}


def _distinct(col: pa.ChunkedArray) -> list:
    """The distinct values of ``col`` (dictionary-encoded or not), as Python values."""
    if not pa.types.is_dictionary(col.type):
        return pc.unique(col).to_pylist()
    out: dict[Any, None] = {}
    for chunk in col.chunks:
        out.update(dict.fromkeys(chunk.dictionary.take(pc.unique(chunk.indices)).to_pylist()))
    return list(out)


def _spine_arrow(log: pa.Table) -> pa.Table:
    """The recompute's spine (Arrow): entity keys, request data, the served time
    (``_AT``) and the log position (``_ROW``)."""
    import numpy as np

    cols: dict[str, Any] = _json_columns(log.column("entity"))
    cols.update(_json_columns(log.column("request_data")))
    cols[_AT] = log.column("time").cast(pa.timestamp("us", "UTC"))
    cols[_ROW] = pa.array(np.arange(log.num_rows, dtype=np.int64))
    return pa.table(cols)


def _known_at_serving(offline: "OfflineStore", group: Any, key_columns: dict,
                      spine: pa.Table) -> pa.ChunkedArray:
    """Per spine row (in order): the newest event time of its key in ``group``'s history
    among rows with event time and commit time <= the served time (what offline knew);
    for groups the join has no chosen row for (aggregations)."""
    import duckdb

    from ..offline.tables import COMMIT_TIME
    from ..sql import quote_ident

    def q(name: str) -> str:
        return quote_ident(name, "duckdb")

    keys = list(key_columns)
    con = duckdb.connect()
    try:
        con.register("h", offline.read_arrow(group))
        con.register("s", spine.select([key_columns[k] for k in keys] + [_AT, _ROW]))
        on = " AND ".join(f"h.{q(k)} = s.{q(key_columns[k])}" for k in keys)
        et = q(group.event_time)
        sql = (f"SELECT max(h.{et}) AS known FROM s LEFT JOIN h ON {on} AND h.{et} <= s.{_AT} "
               f"AND h.{COMMIT_TIME} <= s.{_AT} GROUP BY s.{_ROW} ORDER BY s.{_ROW}")
        return con.sql(sql).to_arrow_table().column("known")
    finally:
        con.close()


def _sample(log: pa.Table, col: str, entities: pa.ChunkedArray, i: int, offline: Any,
            cause: str) -> dict:
    """One skewed request of the report's sample: the log's row ``i`` and the offline value
    the comparison kept for it."""
    return {"request_id": log.column("request_id")[i].as_py(),
            "row": log.column("row")[i].as_py(),
            "served_at": log.column("time")[i].as_py().isoformat(),
            "entity": json.loads(entities[i].as_py()),
            "served": _jsonable(log.column(col)[i].as_py()),
            "offline": _jsonable(offline), "cause": cause}


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.astimezone(dt.UTC).isoformat()
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return v


def _on_demand_columns(manifest: dict, binding: Any) -> dict[str, str]:
    """Model input column -> the on-demand transform that computes it."""
    from ..definitions import FeatureRef

    groups = {gr["name"] for gr in manifest.get("groups", [])}
    od = set(manifest.get("on_demand") or {})
    out = {}
    for ref, (col, _) in zip(binding.features, binding.columns):
        r = FeatureRef.parse(ref)
        if r.group in od and r.group not in groups:
            out[col] = r.group
    return out
