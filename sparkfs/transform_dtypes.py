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
from .dtypes import ALL
from .errors import TransformError

__all__ = ["pandas_dtype", "coerce", "to_python", "series_from_values", "to_values",
           "infer_dtype", "spark_like_series"]

#: dtype -> pandas dtype inside a transform, and integer dtype -> range (views of
#: ``sparkfs.dtypes.ALL``).
_PANDAS_DTYPES: dict[str, Any] = {n: d.pandas for n, d in ALL.items()}
_INT_RANGES = {n: d.int_range for n, d in ALL.items() if d.int_range is not None}


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
        odd = [v for v in values if v is not None and (
            isinstance(v, (bool, int, float, np.number, bytes)))]
        if odd:
            raise ValueError(f"{odd[0]!r} ({type(odd[0]).__name__}) is not a timestamp")
        is_text = [isinstance(v, str) for v in values]
        if any(is_text):  # request data: ISO 8601 text only, never a guess ('1/2/2013', 'now')
            words = [v for v in values if isinstance(v, str) and v.strip().lower() in _RELATIVE]
            if words:
                raise ValueError(f"{words[0]!r} is not a timestamp; send ISO 8601 text like "
                                 "'2013-01-01T10:15:00Z'")
            try:
                out = pd.to_datetime(obj.where(is_text, None), utc=True, format="ISO8601")
            except (ValueError, OverflowError) as exc:
                raise ValueError(f"not ISO 8601 text like '2013-01-01T10:15:00Z' ({exc})") \
                    from None
            if any(v is not None and not t for v, t in zip(values, is_text)):
                # datetime objects beside the text (as the fast path takes them)
                others = pd.to_datetime(obj.where([not t for t in is_text], None), utc=True)
                out = out.where(pd.Series(is_text, index=s.index), others)
        else:
            out = pd.to_datetime(obj, utc=True)
    return out if out.dtype == _UTC_NS else out.astype(_UTC_NS)


_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")
#: Words pandas would read as a time relative to the clock: refused, never "now".
_RELATIVE = frozenset({"now", "today", "tomorrow", "yesterday"})


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
                if any(isinstance(v, (bool, np.bool_)) for v in vals):
                    raise ValueError("a boolean is not a number")
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


# -- undeclared inputs: the dtype Spark would give ---------------------------------------------
#: Inferred dtypes a Spark pandas UDF receives through an Arrow column of that dtype.
_THROUGH_ARROW = ("boolean", "long", "double", "string")


def infer_dtype(values: Sequence[Any]) -> str | None:
    """The sparkfs dtype Spark infers for a column of these Python values (as
    ``spark.createDataFrame`` does): bool -> boolean, int -> long, float (NaN too) ->
    double, ints mixed with floats -> double, str -> string, datetime -> timestamp,
    date -> date. ``None`` when every value is missing (None/NA/NaT) or the kinds mix.

    >>> infer_dtype([float("nan")]), infer_dtype([1, None]), infer_dtype([None])
    ('double', 'long', None)
    """
    kinds = set()
    for v in values:
        if v is None or v is pd.NA or v is pd.NaT:
            continue
        if isinstance(v, (bool, np.bool_)):
            kinds.add("boolean")
        elif isinstance(v, (int, np.integer)):
            kinds.add("long")
        elif isinstance(v, (float, np.floating)):
            kinds.add("double")
        elif isinstance(v, str):
            kinds.add("string")
        elif isinstance(v, (dt.datetime, np.datetime64)):
            kinds.add("timestamp")
        elif isinstance(v, dt.date):
            kinds.add("date")
        else:
            return None
    if kinds == {"long", "double"}:
        return "double"
    return kinds.pop() if len(kinds) == 1 else None


def spark_like_series(values: Sequence[Any]) -> pd.Series:
    """Python values of an input whose dtype nobody declared, as the pandas Series a Spark
    pandas UDF receives for the column Spark infers for them: Spark hands a UDF its
    columns through Arrow, so this goes through Arrow too (``infer_dtype``; a long column
    with a null arrives as float64 with NaN, a boolean one as object, a double keeps NaN
    and turns null into NaN; timestamps as UTC). All-missing values stay an object Series
    of None.

    >>> spark_like_series([float("nan")]).dtype, spark_like_series([1, None]).tolist()
    (dtype('float64'), [1.0, nan])
    >>> spark_like_series([True, None]).tolist(), spark_like_series([None]).dtype
    ([True, None], dtype('O'))
    """
    import pyarrow as pa

    values = list(values)
    dtype = infer_dtype(values)
    missing = [v is None or v is pd.NA or v is pd.NaT for v in values]
    if dtype in _THROUGH_ARROW:
        if dtype == "double":
            values = [None if m else float(v) for v, m in zip(values, missing)]
        else:
            values = [None if m else v for v, m in zip(values, missing)]
        return pa.array(values, type=ALL[dtype].arrow).to_pandas()
    if dtype == "timestamp":
        return _to_utc(pd.Series([None if m else v for v, m in zip(values, missing)],
                                 dtype=object), "UTC")
    return pd.Series([None if m else v for v, m in zip(values, missing)], dtype=object)


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
    texts: dict[str, tuple[int, bool]] = {}  # a text repeated in the batch is parsed once
    for v in values:
        if v is None:
            out.append(_NAT)
            continue
        if type(v) is str:
            hit = texts.get(v)
            if hit is None:
                if not _ISO.fullmatch(v):
                    return None
                t = dt.datetime.fromisoformat(v)
                hit = texts[v] = (_ns(t), t.tzinfo is not None)
            out.append(hit[0])
            aware.add(hit[1])
            continue
        if type(v) is not dt.datetime:
            return None
        aware.add(v.tzinfo is not None)
        out.append(_ns(v))
    # pandas reads naive values next to offset ones in a way of its own: leave that to it
    return out if len(aware) < 2 else None


def _ns(v: dt.datetime) -> int:
    """UTC ns since the epoch of ``v`` (naive = UTC)."""
    if v.tzinfo is None:
        v = v.replace(tzinfo=dt.UTC)
    return (v - _EPOCH) // _US * 1000


def _fast_series(values: Sequence[Any], dtype: str | None) -> pd.Series | None:
    rec = ALL.get(dtype) if dtype is not None else None
    if rec is None or not rec.python:
        return None
    if rec.name == "timestamp":
        ns = _utc_ns(values)
        if ns is not None:
            return pd.Series(np.array(ns, dtype="int64").view("datetime64[ns]"), dtype=_UTC_NS)
    elif rec.int_range is not None:
        lo, hi = rec.int_range
        if all(v is None or (type(v) is int and lo <= v <= hi) for v in values):
            return pd.Series(values, dtype=rec.pandas)
    elif all(v is None or type(v) in rec.python for v in values):
        if rec.is_floating:
            return pd.Series(np.array([np.nan if v is None else v for v in values],
                                      dtype=rec.pandas))
        return pd.Series(values, dtype=rec.pandas)
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
    if dtype is None:  # undeclared: what the Spark UDF would receive
        return spark_like_series(values)
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
