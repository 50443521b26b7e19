"""A transform declared without input dtypes sees, on one row and on a small batch, the
pandas dtypes the Spark UDF would give it on the same inputs: NaN stays a float64 NaN
(numpy ufuncs work), a long column with a null is float64, a boolean one object."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sparkfs import transform


@transform(output="double")
def root_plus(a, b):
    return np.sqrt(a) + b


@transform(output="string")
def seen_dtype(a):
    return pd.Series([str(a.dtype)] * len(a))


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def test_nan_on_one_row_reaches_numpy_as_float64():
    # the case: before, the NaN became an object Series and np.sqrt failed
    assert root_plus.row(a=float("nan"), b=2.0) is None
    assert root_plus.row(a=4.0, b=2.0) == 4.0
    assert root_plus.run_values({"a": [float("nan"), 9.0, None], "b": [2.0, 1.0, 1.0]}) == {
        "root_plus": [None, 4.0, None]}
    assert seen_dtype.row(a=float("nan")) == "float64"


def test_all_missing_undeclared_input_names_the_fix():
    from sparkfs import TransformError

    with pytest.raises(TransformError, match="held only missing values and no dtype.*"
                                             "inputs="):
        root_plus.row(a=None, b=2.0)


COLUMNS = [
    [float("nan"), 4.0, None],        # double with NaN and null
    [1, None, 3],                      # long with a null
    [1, 2, 3],                         # long
    [True, None, False],               # boolean with a null
    ["x", None, "y"],                  # string with a null
]


@pytest.mark.parametrize("values", COLUMNS, ids=["double", "long_null", "long", "bool_null",
                                                  "string"])
def test_small_batch_dtypes_match_the_spark_udf(spark, values):
    df = spark.createDataFrame([(v,) for v in values], ["a"]).coalesce(1)  # one Arrow batch
    spark_seen = [r[0] for r in df.select(seen_dtype.spark("a")).collect()]
    assert seen_dtype.run_values({"a": values})["seen_dtype"] == spark_seen


def test_one_row_values_match_the_spark_udf(spark):
    rows = [(float("nan"), 2.0), (4.0, None), (9.0, 1.0), (-1.0, 0.0), (float("inf"), 1.0)]
    df = spark.createDataFrame(rows, ["a", "b"])
    want = [r[0] for r in df.select(root_plus.spark("a", "b")).collect()]
    got = [root_plus.row(a=a, b=b) for a, b in rows]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (_missing(g) and _missing(w)) or g == w, (got, want)
    # one-row Spark frames: the dtype the function sees on one row is Spark's too
    for a, _ in rows:
        one = spark.createDataFrame([(a,)], ["a"]).select(seen_dtype.spark("a")).collect()
        assert seen_dtype.row(a=a) == one[0][0]
