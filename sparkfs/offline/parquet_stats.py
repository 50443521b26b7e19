"""Delta ``add`` statistics from Parquet footers, so the driver can commit files the
executors wrote without reading their data.

Rules (see the deltalake traps in the platform notes): a column appears in ``nullCount``
only together with its ``minValues`` and ``maxValues``; timestamps are written as
ISO-8601 UTC with milliseconds, the minimum truncated down and the maximum rounded up, so
file skipping never drops a matching row; strings longer than 32 characters and NaN
or infinite bounds get no statistics (JSON cannot hold them); nested columns (arrays) get none.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

MAX_STRING_STAT = 32


def _fs(uri: str, storage_options: dict[str, str] | None = None) -> tuple[pafs.FileSystem, str]:
    if "://" not in uri:
        return pafs.LocalFileSystem(), uri
    return pafs.FileSystem.from_uri(uri)


def list_parquet(dir_uri: str, storage_options: dict[str, str] | None = None) -> list[tuple[str, int, int]]:
    """``(uri, size, mtime_ms)`` of each ``*.parquet`` file directly in ``dir_uri``."""
    fs, path = _fs(dir_uri, storage_options)
    prefix = dir_uri[: len(dir_uri) - len(path)] if "://" in dir_uri else ""
    out = []
    for info in fs.get_file_info(pafs.FileSelector(path, recursive=False)):
        if info.is_file and info.base_name.endswith(".parquet"):
            mtime = int(info.mtime.timestamp() * 1000) if info.mtime else 0
            out.append((prefix + info.path, info.size, mtime))
    return sorted(out)


def delete_dir(dir_uri: str, storage_options: dict[str, str] | None = None) -> None:
    """Remove a staging directory (best effort: its files were never committed)."""
    fs, path = _fs(dir_uri, storage_options)
    try:
        fs.delete_dir(path)
    except (FileNotFoundError, OSError):
        pass


def delete_file(uri: str, storage_options: dict[str, str] | None = None) -> None:
    """Remove a file sparkfs left beside its staged ones (best effort, like ``delete_dir``:
    a failure to delete never hides the error being handled).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x"); open(path, "w").close()
    >>> delete_file(path); delete_file(path); os.path.exists(path)
    False
    """
    fs, path = _fs(uri, storage_options)
    try:
        fs.delete_file(path)
    except OSError:  # FileNotFoundError included
        pass


def parquet_add_stats(uri: str, storage_options: dict[str, str] | None = None) -> dict:
    """The Delta stats JSON object (as a dict) for one Parquet file."""
    fs, path = _fs(uri, storage_options)
    with fs.open_input_file(path) as f:
        meta = pq.ParquetFile(f).metadata
    return metadata_add_stats(meta)


def metadata_add_stats(meta: Any) -> dict:
    """The Delta stats JSON object (as a dict) from a Parquet file's footer
    (``pyarrow.parquet.FileMetaData``), e.g. the one a ``ParquetWriter`` just wrote.

    >>> import io, pyarrow as pa
    >>> collected = []
    >>> pq.write_table(pa.table({"x": [1, None, 3]}), io.BytesIO(), metadata_collector=collected)
    >>> metadata_add_stats(collected[0])
    {'numRecords': 3, 'minValues': {'x': 1}, 'maxValues': {'x': 3}, 'nullCount': {'x': 1}}
    """
    schema = meta.schema.to_arrow_schema()
    n = meta.num_rows
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    top_level = {name: i for i, name in enumerate(schema.names)}
    for name, _ in top_level.items():
        field = schema.field(name)
        if field.type.num_fields:  # nested: no stats
            continue
        col_idx = _leaf_index(meta, name)
        if col_idx is None:
            continue
        lo = hi = None
        null_count = 0
        ok = True
        for rg in range(meta.num_row_groups):
            st = meta.row_group(rg).column(col_idx).statistics
            if st is None:
                ok = False
                break
            null_count += st.null_count or 0
            if st.has_min_max:
                lo = st.min if lo is None else min(lo, st.min)
                hi = st.max if hi is None else max(hi, st.max)
            elif (st.null_count or 0) < meta.row_group(rg).num_rows:
                ok = False
                break
        if not ok or lo is None:
            continue
        lo_j, hi_j = _json_value(lo, field.type, "min"), _json_value(hi, field.type, "max")
        if lo_j is None or hi_j is None:
            continue
        mins[name], maxs[name], nulls[name] = lo_j, hi_j, null_count
    return {"numRecords": n, "minValues": mins, "maxValues": maxs, "nullCount": nulls}


def _leaf_index(meta: Any, name: str) -> int | None:
    for i in range(meta.num_columns):
        if meta.schema.column(i).path == name:
            return i
    return None


def _json_value(value: Any, arrow_type: Any, bound: str) -> Any:
    import pyarrow as pa

    if isinstance(value, bool) or pa.types.is_boolean(arrow_type):
        return None  # boolean bounds help no filter
    if isinstance(value, float):  # JSON has no NaN or infinity: no bound for the column
        return value if math.isfinite(value) else None
    if isinstance(value, int) and not pa.types.is_timestamp(arrow_type) and not pa.types.is_date(arrow_type):
        return value
    if isinstance(value, (bytes, str)):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return text if len(text) <= MAX_STRING_STAT else None
    if pa.types.is_timestamp(arrow_type):
        if isinstance(value, int):  # raw micros
            value = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        if bound == "max" and value.microsecond % 1000:
            value = value + dt.timedelta(microseconds=1000 - value.microsecond % 1000)
        ms = value.microsecond // 1000
        return value.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"
    if pa.types.is_date(arrow_type):
        if isinstance(value, int):
            value = dt.date(1970, 1, 1) + dt.timedelta(days=value)
        return value.isoformat()
    return None
