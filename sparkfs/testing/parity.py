"""``assert_transform_parity``: prove a transform gives the same outputs in Spark, pandas
and one row at a time. For users' own test suites.

Values are compared as plain Python values after each path's own conversion: NaN and
null are the same missing value; floats must be equal exactly (all paths run the same
function on the same float64 inputs); timestamps are compared as UTC instants. Dtypes
are checked too: the pandas output has the declared pandas dtype, the Spark column the
declared Spark type, and each row value the Python type of the declared dtype.

The pandas and row paths need no Spark:

>>> import pandas as pd
>>> from sparkfs import transform
>>> @transform(output="double")
... def half(x):
...     return x / 2
>>> assert_transform_parity(half, pd.DataFrame({"x": [1.0, None, -3.0]}), spark=False)
>>> @transform(output="double")
... def rowwise_differs(x):
...     return x - x.mean()
>>> assert_transform_parity(rowwise_differs, {"x": [1.0, 3.0]}, spark=False)
Traceback (most recent call last):
...
AssertionError: transform 'rowwise_differs': pandas and row outputs differ in 2 of 2 row(s); first: row 0 rowwise_differs: pandas -1.0, row 0.0
"""  # noqa: E501 (doctest output)

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..definitions import DTYPES
from ..transforms import Transform, coerce, pandas_dtype, to_python

_PY_TYPES = {"boolean": (bool,), "int": (int,), "long": (int,), "float": (float,),
             "double": (float,), "string": (str,), "timestamp": (dt.datetime,),
             "date": (dt.date,), "array<float>": (list,), "array<double>": (list,)}


def _frame(sample: Any) -> pd.DataFrame:
    if isinstance(sample, pd.DataFrame):
        return sample.reset_index(drop=True)
    if isinstance(sample, Mapping):
        return pd.DataFrame(dict(sample))
    if isinstance(sample, Sequence):
        return pd.DataFrame(list(sample))
    raise TypeError("sample must be a pandas DataFrame, a dict of columns or a list of dicts")


def _norm(v: Any) -> Any:
    v = to_python(v)
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.astimezone(dt.UTC)
    return v


def _columns(t: Transform, out: Any) -> dict[str, list]:
    if isinstance(out, pd.DataFrame):
        return {f.name: [_norm(v) for v in out[f.name].tolist()] for f in t.outputs}
    return {t.outputs[0].name: [_norm(v) for v in out.tolist()]}


def _compare(t: Transform, label: str, a: dict[str, list], b: dict[str, list]) -> None:
    bad = []
    n = len(next(iter(a.values())))
    for i in range(n):
        for f in t.outputs:
            x, y = a[f.name][i], b[f.name][i]
            if x != y:
                bad.append((i, f.name, x, y))
    if bad:
        rows = sorted({i for i, *_ in bad})
        i, name, x, y = bad[0]
        left, right = label.split(" and ")
        raise AssertionError(f"transform {t.name!r}: {label} outputs differ in {len(rows)} of {n} "
                             f"row(s); first: row {i} {name}: {left} {x!r}, {right} {y!r}")


def _spark_frame(spark: Any, t: Transform, df: pd.DataFrame, dtypes: Mapping[str, str]):
    import pyarrow as pa

    from ..offline.tables import arrow_type

    arrays, names = [], []
    for c in t.inputs:
        d = dtypes.get(c)
        values = df[c]
        if d == "timestamp":
            values = coerce(values, "timestamp", c)
        py = [None if v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v))
              else v for v in values.astype(object).tolist()]
        if d is None:
            arrays.append(pa.array(py, from_pandas=True))
        else:
            arrays.append(pa.array(py, type=arrow_type(d), from_pandas=True))
        names.append(c)
    arrays.append(pa.array(range(len(df)), type=pa.int64()))
    names.append("__row")
    return spark.createDataFrame(pa.table(arrays, names=names))


def assert_transform_parity(t: Transform, sample: Any, spark: Any = None,
                            input_dtypes: Mapping[str, str] | None = None) -> None:
    """Run ``t`` on ``sample`` (a DataFrame, a dict of columns or a list of row dicts
    holding its input columns) through pandas, ``t.row`` per row and a Spark pandas UDF;
    raise ``AssertionError`` naming the first row/output that differs.

    ``spark``: a SparkSession (default: the active one, else the Spark path is an error);
    ``False`` skips the Spark path. ``input_dtypes`` types undeclared inputs (e.g. from
    the group's schema) when building the Spark frame and the pandas inputs.
    """
    if not isinstance(t, Transform):
        raise TypeError(f"{t!r} is not a transform: decorate the function with @transform")
    df = _frame(sample)
    missing = [c for c in t.inputs if c not in df.columns]
    if missing:
        raise ValueError(f"sample lacks input column(s) {missing} of transform {t.name!r}")
    dtypes = {**dict(input_dtypes or {}), **t.input_dtypes}

    pandas_out = t.run_pandas({c: df[c] for c in t.inputs}, dtypes)
    frame = pandas_out if isinstance(pandas_out, pd.DataFrame) else pandas_out.to_frame()
    for f in t.outputs:
        if frame[f.name].dtype != pd.api.types.pandas_dtype(pandas_dtype(f.dtype)):
            raise AssertionError(f"transform {t.name!r}: pandas output {f.name!r} has dtype "
                                 f"{frame[f.name].dtype}, expected {pandas_dtype(f.dtype)}")
    expected = _columns(t, pandas_out)

    rows: dict[str, list] = {f.name: [] for f in t.outputs}
    records = df[list(t.inputs)].astype(object).to_dict("records")
    for i, rec in enumerate(records):
        got = t.row_from(rec, dtypes)
        got = got if t.multi else {t.outputs[0].name: got}
        for f in t.outputs:
            v = got[f.name]
            if v is not None and not isinstance(v, _PY_TYPES[f.dtype]):
                raise AssertionError(f"transform {t.name!r}: row {i} {f.name} is "
                                     f"{type(v).__name__}, expected {f.dtype}")
            rows[f.name].append(_norm(v))
    _compare(t, "pandas and row", expected, rows)

    if spark is False:
        return
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            raise RuntimeError("assert_transform_parity needs a SparkSession: pass spark=... "
                               "(or spark=False to skip the Spark path)")
    sdf = _spark_frame(spark, t, df, dtypes)
    sdf = t.with_columns(sdf, *t.inputs, dtypes=dtypes)
    for f in t.outputs:
        got_type = sdf.schema[f.name].dataType.simpleString()
        if got_type != DTYPES[f.dtype][0]:
            raise AssertionError(f"transform {t.name!r}: Spark output {f.name!r} has type "
                                 f"{got_type}, expected {DTYPES[f.dtype][0]}")
    table = sdf.select("__row", *t.output_names).toArrow().sort_by("__row")
    spark_out = {f.name: [_norm(v) for v in table.column(f.name).to_pylist()] for f in t.outputs}
    _compare(t, "pandas and spark", expected, spark_out)
