"""The pandas dtypes transforms see, and the coercions every path shares.

Inside a transform, whichever engine runs it (Spark pandas UDF, pandas, one row), a
column of sparkfs dtype ``d`` has pandas dtype ``pandas_dtype(d)``: timestamps are
``datetime64[ns, UTC]``, ints nullable ``Int32``/``Int64``, booleans ``boolean``,
strings ``object`` with ``None`` for missing. NaN and null are one missing value.

>>> coerce(pd.Series(["2013-01-01T05:00:00-05:00", None]), "timestamp", "x").tolist()
[Timestamp('2013-01-01 10:00:00+0000', tz='UTC'), NaT]
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .definitions import check_dtype
from .errors import TransformError

__all__ = ["pandas_dtype", "coerce", "to_python", "series_from_values", "to_values"]

_PANDAS_DTYPES: dict[str, Any] = {
    "boolean": "boolean", "int": "Int32", "long": "Int64", "float": "float32",
    "double": "float64", "string": object, "timestamp": "datetime64[ns, UTC]",
    "date": object, "array<float>": object, "array<double>": object,
}
_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def pandas_dtype(dtype: str) -> Any:
    """The pandas dtype a sparkfs dtype has inside a transform (inputs and outputs).

    >>> pandas_dtype("long"), pandas_dtype("timestamp")
    ('Int64', 'datetime64[ns, UTC]')
    """
    return _PANDAS_DTYPES[check_dtype(dtype, "transform column")]


# -- dtype coercion (shared by all three paths) -------------------------------------------
def _to_utc(s: pd.Series, tz: str) -> pd.Series:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        out = s if str(s.dtype.tz) == "UTC" else s.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(s.dtype):
        out = s.dt.tz_localize(tz).dt.tz_convert("UTC") if tz != "UTC" else s.dt.tz_localize("UTC")
    else:
        values = _missing_to_none(s)
        obj = pd.Series(values, dtype=object, index=s.index)
        out = None
        if all(v is None or isinstance(v, str) for v in values):
            try:  # request data arrives as ISO 8601 text; parsing it as such is ~4x faster
                out = pd.to_datetime(obj, utc=True, format="ISO8601")
            except ValueError:
                out = None
        if out is None:
            out = pd.to_datetime(obj, utc=True)
    return out if out.dtype == _UTC_NS else out.astype(_UTC_NS)


_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _missing_to_none(s: pd.Series) -> list:
    return [None if _is_missing(v) else v for v in s.tolist()]


def _check_ints(s: pd.Series, dtype: str) -> None:
    vals = s.to_numpy(dtype="float64", na_value=np.nan) if s.dtype.kind == "f" else None
    if vals is not None:
        vals = vals[~np.isnan(vals)]
        if len(vals) and (not np.all(np.isfinite(vals)) or (vals != np.round(vals)).any()):
            raise ValueError("not whole numbers")
    if len(s) and s.notna().any():
        lo, hi = _INT_RANGES[dtype]
        if s.min() < lo or s.max() > hi:
            raise ValueError(f"outside the {dtype} range [{lo}, {hi}]")


def coerce(s: pd.Series, dtype: str | None, what: str, tz: str = "UTC") -> pd.Series:
    """``s`` as the pandas dtype of sparkfs ``dtype`` (``None``: only normalise timestamps).

    Naive timestamps are read in ``tz`` (Spark hands pandas UDFs naive session-time values).

    >>> coerce(pd.Series([1.0, None]), "long", "x").tolist()
    [1, <NA>]
    >>> coerce(pd.Series([1.5]), "int", "column 'x'")
    Traceback (most recent call last):
    ...
    sparkfs.errors.TransformError: column 'x': cannot hold [1.5] as int (...)
    """
    try:
        if dtype is None:
            if pd.api.types.is_datetime64_any_dtype(s.dtype):
                return _to_utc(s, tz)
            return s
        target = _PANDAS_DTYPES[dtype]
        if dtype == "timestamp":
            return _to_utc(s, tz)
        if dtype in ("double", "float"):
            if s.dtype == target:
                return s
            if s.dtype == object:
                vals = _missing_to_none(s)
                if any(isinstance(v, (str, bytes)) for v in vals):
                    raise ValueError("text is not a number")
                return pd.Series(np.array([np.nan if v is None else v for v in vals],
                                          dtype=target), index=s.index)
            return s.astype(target)
        if dtype in ("int", "long"):
            if s.dtype == target:
                return s
            if s.dtype == object:
                vals = _missing_to_none(s)
                if any(isinstance(v, (str, bytes, bool)) for v in vals):
                    raise ValueError("not an integer")
                s = pd.Series(vals, dtype="Float64" if any(isinstance(v, float) for v in vals)
                              else "Int64", index=s.index)
            elif s.dtype.kind not in "iuf" and not pd.api.types.is_integer_dtype(s.dtype) \
                    and not pd.api.types.is_float_dtype(s.dtype):
                raise ValueError(f"{s.dtype} is not an integer type")
            if not (s.dtype.kind in "iu" and isinstance(s.dtype, np.dtype)
                    and np.iinfo(s.dtype).min >= _INT_RANGES[dtype][0]
                    and np.iinfo(s.dtype).max <= _INT_RANGES[dtype][1]):
                _check_ints(s, dtype)
            return s.astype(target)
        if dtype == "boolean":
            if s.dtype == object:
                vals = _missing_to_none(s)
                if any(v is not None and not isinstance(v, (bool, np.bool_)) for v in vals):
                    raise ValueError("not a boolean")
                return pd.Series(vals, dtype="boolean", index=s.index)
            return s if s.dtype == "boolean" else s.astype("boolean")
        if dtype == "string":
            vals = _missing_to_none(s)
            bad = [v for v in vals if v is not None and not isinstance(v, str)]
            if bad:
                raise ValueError(f"{len(bad)} non-string value(s)")
            return pd.Series(vals, dtype=object, index=s.index)
        return pd.Series(_missing_to_none(s), dtype=object, index=s.index)
    except TransformError:
        raise
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        sample = [v for v in s.head(3).tolist()]
        raise TransformError(f"{what}: cannot hold {sample} as {dtype} ({exc})") from None


def to_python(value: Any, dtype: str | None = None) -> Any:
    """One pandas/numpy value as a plain Python value (missing -> None)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_python(v, None) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
        return None if isinstance(value, float) and np.isnan(value) else value
    return value


def _is_missing(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


# -- fast paths for the online service: Python lists in, Python lists out ---------------------
# Each fast path gives exactly what the general path gives (``coerce`` of an object Series,
# and ``to_python`` of each coerced value); anything it does not recognise takes the general path.
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
_NAT = np.iinfo("int64").min


def _utc_ns(values: Sequence[Any]) -> list[int] | None:
    """ISO 8601 texts / datetimes as UTC ns since the epoch (naive = UTC, like
    ``pd.to_datetime(utc=True)``); None when a value needs the general parser."""
    out = []
    aware = set()
    for v in values:
        if v is None:
            out.append(_NAT)
            continue
        if type(v) is str:
            if not _ISO.fullmatch(v):
                return None
            v = dt.datetime.fromisoformat(v)
        elif type(v) is not dt.datetime:
            return None
        aware.add(v.tzinfo is not None)
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.UTC)
        out.append((v - _EPOCH) // _US * 1000)
    # pandas reads naive values next to offset ones in a way of its own: leave that to it
    return out if len(aware) < 2 else None


def _fast_series(values: Sequence[Any], dtype: str | None) -> pd.Series | None:
    if dtype in ("double", "float"):
        if all(v is None or type(v) is float or type(v) is int for v in values):
            return pd.Series(np.array([np.nan if v is None else v for v in values],
                                      dtype=_PANDAS_DTYPES[dtype]))
    elif dtype == "string":
        if all(v is None or type(v) is str for v in values):
            return pd.Series(values, dtype=object)
    elif dtype in ("int", "long"):
        lo, hi = _INT_RANGES[dtype]
        if all(v is None or (type(v) is int and lo <= v <= hi) for v in values):
            return pd.Series(values, dtype=_PANDAS_DTYPES[dtype])
    elif dtype == "boolean":
        if all(v is None or type(v) is bool for v in values):
            return pd.Series(values, dtype="boolean")
    elif dtype == "timestamp":
        ns = _utc_ns(values)
        if ns is not None:
            return pd.Series(np.array(ns, dtype="int64").view("datetime64[ns]"), dtype=_UTC_NS)
    return None


def series_from_values(values: Sequence[Any], dtype: str | None, what: str) -> pd.Series:
    """A Python list as the transform input Series of sparkfs ``dtype``: the same as
    ``coerce(pd.Series(values, dtype=object), dtype, what)``, built in one step for the
    common cases.

    >>> series_from_values(["2013-01-01T05:00:00-05:00", None], "timestamp", "x").tolist()
    [Timestamp('2013-01-01 10:00:00+0000', tz='UTC'), NaT]
    >>> series_from_values([1, None], "long", "x").tolist()
    [1, <NA>]
    """
    values = list(values)
    try:
        s = _fast_series(values, dtype)
    except (ValueError, OverflowError):
        s = None  # e.g. an out-of-range date: the general path names the error
    if s is None:
        s = coerce(pd.Series(values, dtype=object), dtype, what)
    return s


def to_values(s: pd.Series, dtype: str, what: str) -> list:
    """Output Series ``s`` as Python values of sparkfs ``dtype`` (missing -> None): the same
    as ``[to_python(v) for v in coerce(s, dtype, what).tolist()]``, vectorised.

    >>> to_values(pd.Series([1.5, float("nan")]), "double", "x")
    [1.5, None]
    >>> to_values(pd.Series([3, 4], dtype="int32"), "int", "x")
    [3, 4]
    """
    target = _PANDAS_DTYPES[dtype]
    kind = s.dtype.kind if isinstance(s.dtype, np.dtype) else ""
    if dtype in ("double", "float") and s.dtype == target:
        return [None if v != v else v for v in s.to_numpy().tolist()]
    if dtype in ("int", "long") and kind in "iu" and kind:
        info = np.iinfo(s.dtype)
        lo, hi = _INT_RANGES[dtype]
        if info.min >= lo and info.max <= hi:
            return s.to_numpy().tolist()
    if dtype == "string" and s.dtype == object:
        vals = s.tolist()
        if all(v is None or type(v) is str for v in vals):
            return vals
    return [to_python(v, dtype) for v in coerce(s, dtype, what).tolist()]
