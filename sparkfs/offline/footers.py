"""A plain Parquet scan's row count and event-time range from its files' footers, without a
Spark job (issue 17: the fused ingest's range job, ``fused.plan``, reads every event time
of a batch to learn what the footers already hold).

``scan_range`` answers only when the footers give exactly what Spark's read would:

- the batch's optimized plan is one scan of Parquet files on the local file system
  (``HadoopFsRelation`` with ``ParquetFileFormat`` itself, not a subclass such as Delta's,
  whose deletion vectors drop rows), at most under a projection that passes the event
  time through unchanged: no filter, no union, no cast;
- the event time is a data column (not a partition column) of Spark type ``timestamp``,
  stored in every file as INT64 ``TIMESTAMP(MILLIS|MICROS, isAdjustedToUTC=true)``;
- every row group with non-null event times has min/max statistics and a null count (a
  null event time is left to the write pass, which refuses it);
- no file asks for the legacy calendar rebase (``org.apache.spark.legacyDateTime``), and
  the earliest time is not before 1900 (where a rebase could shift it).

Anything else (a footer that cannot be read, too) returns None, and the caller runs its
Spark job, which reads the files as Spark does (``ignoreCorruptFiles``, its errors). The answer is checked
again by the write pass, which counts the rows it reads and their range
(``FusedPlan.expected``): a file rewritten in between refuses the batch.

>>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, os, datetime as dt
>>> d = tempfile.mkdtemp()
>>> t = pa.table({"ts": pa.array([dt.datetime(2013, 1, 1), None, dt.datetime(2013, 1, 2)],
...                               pa.timestamp("us", tz="UTC"))})
>>> pq.write_table(t, os.path.join(d, "a.parquet"))
>>> file_range(["file://" + os.path.join(d, "a.parquet")], "ts")
{'n': 3, 'lo_us': 1356998400000000, 'hi_us': 1357084800000000}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

__all__ = ["file_range", "scan_range"]

_PARQUET = "org.apache.spark.sql.execution.datasources.parquet.ParquetFileFormat"
_LEGACY_KEY = b"org.apache.spark.legacyDateTime"
_SCALE = {"milliseconds": 1000, "microseconds": 1}
#: 1900-01-01 UTC in µs: from here on Spark's calendar rebase changes no timestamp
_NO_REBASE_FROM_US = -2_208_988_800_000_000


def scan_range(df: "DataFrame", event_time: str) -> dict | None:
    """``{"n", "lo_us", "hi_us"}`` of ``df`` (the row count and the UTC µs range of its
    non-null ``event_time``, None when all are null) from its Parquet footers, or None when
    the plan or the files are not ones the footers answer exactly (module docstring).

    >>> scan_range.__name__  # needs Spark; exercised by tests/test_ingest_footers.py
    'scan_range'
    """
    plan = df._jdf.queryExecution().optimizedPlan()
    relation = plan
    if plan.nodeName() == "Project":
        exprs = plan.projectList()
        passed = [exprs.apply(i) for i in range(exprs.size())]
        mine = [e for e in passed if e.name() == event_time]
        if len(mine) != 1 or mine[0].getClass().getSimpleName() != "AttributeReference":
            return None
        relation = plan.child()
        attr = mine[0]
    else:
        out = plan.output()
        named = [out.apply(i) for i in range(out.size()) if out.apply(i).name() == event_time]
        if len(named) != 1:
            return None
        attr = named[0]
    if relation.nodeName() != "LogicalRelation":
        return None
    fs_relation = relation.relation()
    if fs_relation.getClass().getSimpleName() != "HadoopFsRelation" or \
            fs_relation.fileFormat().getClass().getName() != _PARQUET:
        return None
    if attr.dataType().typeName() != "timestamp" or \
            event_time in set(fs_relation.partitionSchema().fieldNames()):
        return None
    columns = fs_relation.dataSchema().fieldNames()
    if event_time not in set(columns):
        return None
    return file_range(list(df.inputFiles()), event_time)


def file_range(files: list[str], column: str) -> dict | None:
    """``{"n", "lo_us", "hi_us"}`` of the Parquet ``files`` (``file:`` URIs or paths) for
    the timestamp ``column`` from their footers, or None when a footer cannot say it
    exactly (module docstring).

    >>> file_range([], "ts")
    {'n': 0, 'lo_us': None, 'hi_us': None}
    """
    import pyarrow.parquet as pq

    n = 0
    lo: int | None = None
    hi: int | None = None
    for uri in files:
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file"):
            return None
        try:
            meta = pq.read_metadata(unquote(parsed.path))
        except (OSError, ValueError):  # gone or not Parquet: the Spark job says what Spark does
            return None
        if meta.metadata and _LEGACY_KEY in meta.metadata:
            return None
        scale = _scale(meta, column)
        if scale is None:
            return None
        index, at = scale
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            n += group.num_rows
            stats = group.column(index).statistics
            if group.num_rows == 0:
                continue
            if stats is None or not stats.has_null_count:
                return None
            if stats.null_count == group.num_rows:
                continue
            if not stats.has_min_max:
                return None
            low, high = stats.min_raw * at, stats.max_raw * at
            lo = low if lo is None or low < lo else lo
            hi = high if hi is None or high > hi else hi
    if lo is not None and lo < _NO_REBASE_FROM_US:
        return None
    return {"n": n, "lo_us": lo, "hi_us": hi}


def _scale(meta: Any, column: str) -> tuple[int, int] | None:
    """(index, µs per stored unit) of the top-level INT64 UTC timestamp ``column`` in the
    footer ``meta``, or None."""
    import json

    from .parquet_stats import _leaf_index

    i = _leaf_index(meta, column)
    if i is None:
        return None
    c = meta.schema.column(i)
    if c.physical_type != "INT64" or c.logical_type.type != "TIMESTAMP":
        return None
    spec = json.loads(c.logical_type.to_json())
    at = _SCALE.get(spec.get("timeUnit", ""))
    if at is None or spec.get("isAdjustedToUTC") is not True:
        return None
    return i, at
