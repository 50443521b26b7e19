"""The Spark skew report compares in one SQL aggregation; its per-row rules must be those
of the row-by-row reference ``_compare`` (which the DuckDB engine runs): null vs NaN, two
NaNs, two nulls, infinities, the relative tolerance, large integers and strings."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from sparkfs.monitoring.skew import _AT, _ROW, _Col, _compare, _comparison_sql, _served_name

INF = math.inf
FLOATS = ([1.0, None, math.nan, None, math.nan, 2.0, 3.0, INF, INF, -INF, 1e308, 0.0],
          [1.0, None, math.nan, math.nan, None, 2.5, 3.0 + 1e-12, INF, 5.0, INF, -1e308, -0.0])
INTS = ([1, None, 3, None, 2**53 + 1], [1, 2, None, None, 2**53 + 1])
STRINGS = (["a", None, "b", None, "c"], ["a", "x", None, None, "d"])


def _tables(served: list, offline: list, typ: pa.DataType) -> tuple[pa.Table, pa.Table]:
    n = len(served)
    s = pa.table({_served_name("s", 0): pa.array(served, typ)})
    o = pa.table({"f": pa.array(offline, typ), _ROW: pa.array(range(n), pa.int64()),
                  _AT: pa.array([0] * n, pa.timestamp("us", "UTC"))})
    return s, o


def _reference(served: list, offline: list, typ: pa.DataType):
    state, diff = _compare(pa.chunked_array([pa.array(served, typ)]),
                           pa.chunked_array([pa.array(offline, typ)]))
    return state.tolist(), diff


def _col(typ: pa.DataType) -> _Col:
    numeric = pa.types.is_integer(typ) or pa.types.is_floating(typ)
    return _Col(0, "f", "x", "g@1", "on_demand", numeric)


def test_spark_pass_agrees_with_the_reference(spark):
    from pyspark.sql import functions as F

    for (served, offline), typ in [(FLOATS, pa.float64()), (INTS, pa.int64()),
                                   (STRINGS, pa.string())]:
        s, o = _tables(served, offline, typ)
        both = o.append_column(_served_name("s", 0), s.column(0))
        df = spark.createDataFrame(both)  # Arrow: a null and a NaN stay distinct
        stages, aggs = _comparison_sql([_col(typ)], sample=3)
        for stage in stages:
            if stage:
                df = df.select("*", *[F.expr(e).alias(n) for n, e in stage])
        rows = df.orderBy(_ROW).select(_served_name("st", 0)).toArrow()
        assert rows.column(0).to_pylist() == _reference(served, offline, typ)[0]
        # the aggregates: counts per state and the first skewed rows, in log order
        agg = df.agg(*[F.expr(e).alias(n) for n, e in aggs]).toArrow().to_pylist()[0]
        state = _reference(served, offline, typ)[0]
        assert [agg[f"n{k}_0"] for k in (1, 2, 3)] == [state.count(k) for k in (1, 2, 3)]
        assert [x["i"] for x in agg["smp_0"]] == [i for i, k in enumerate(state) if k][:3]
        diff = _reference(served, offline, typ)[1]
        mism = [diff[i] for i, k in enumerate(state) if k == 3] if diff is not None else []
        if mism:  # the largest |diff| of the mismatches (an infinity: inf)
            assert agg["max_0"] == pytest.approx(max(mism))
