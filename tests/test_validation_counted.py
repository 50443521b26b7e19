"""A strict suite judged from counts the write pass takes (``validation.run.CountedSuite``):
its verdicts and bad-row counts equal great-expectations' own run on the same batch, for
every counted type, with nulls, NaN, +-inf, empty strings, ``mostly`` tolerances and
empty batches; and the suites it cannot judge are left to great-expectations. Real Spark,
real great-expectations."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from sparkfs import Entity, FeatureGroup, Field, ValidationError
from sparkfs.validation import expect, validate_batch
from sparkfs.validation.run import counted_suite

INF, NAN = math.inf, math.nan
DTYPES = {"key": "string", "ts": "timestamp", "x": "double", "n": "int", "s": "string"}

SUITES = {
    "values": [
        expect("column_values_to_be_between", column="x", min_value=0, max_value=1),
        expect("column_values_to_be_between", column="x", min_value=0, strict_min=True),
        expect("column_values_to_be_between", column="x", max_value=1, strict_max=True,
               mostly=0.5),
        expect("column_values_to_be_between", column="n", min_value=-2, max_value=3),
        expect("column_values_to_not_be_null", column="x"),
        expect("column_values_to_not_be_null", column="x", mostly=0.6),
        expect("column_values_to_be_null", column="n", mostly=0.1),
        expect("column_values_to_be_in_set", column="s", value_set=["a", "b", ""]),
        expect("column_values_to_not_be_in_set", column="n", value_set=[0, 7]),
    ],
    "strings": [
        expect("column_values_to_match_regex", column="s", regex="^[ab]"),
        expect("column_values_to_not_match_regex", column="s", regex="z", mostly=0.8),
        expect("column_value_lengths_to_be_between", column="s", min_value=1, max_value=2),
        expect("column_value_lengths_to_equal", column="s", value=1, mostly=0.5),
        expect("column_values_to_be_in_set", column="s", value_set=["a"], mostly=0.25),
    ],
}

ROWS = {
    "mixed": [(0.5, 1, "a"), (None, None, None), (NAN, 7, ""), (INF, -2, "bz"),
              (-INF, 3, "abc"), (-0.0, 0, "b"), (1.0, 4, "z"), (0.0, None, "a")],
    "clean": [(0.5, 1, "a"), (0.25, 2, "b"), (0.75, 3, "a")],
    "nulls": [(None, None, None), (None, None, None)],
    # ``mostly`` counts over the non-null rows: 2 of 3 non-null x break x < 1 (refused),
    # which would be 2 of 5 if the nulls were counted in
    "sparse": [(NAN, 1, "z"), (2.0, None, None), (None, None, None), (None, None, "a"),
               (0.5, None, "bz")],
    "empty": [],
}


def group(suite: list, name: str = "cs") -> FeatureGroup:
    return FeatureGroup(name, [Entity("thing", join_keys=["key"])], "ts",
                        [Field("x", "double"), Field("n", "int"), Field("s", "string")],
                        expectations=suite, validation="strict", online=False)


def batch(spark, rows: list[tuple]):
    import datetime as dt

    t0 = dt.datetime(2013, 1, 1, tzinfo=dt.UTC)
    xs, ns, ss = zip(*rows) if rows else ((), (), ())
    return spark.createDataFrame(pa.table({
        "key": pa.array([f"k{i}" for i in range(len(rows))], pa.string()),
        "ts": pa.array([t0 + dt.timedelta(minutes=i) for i in range(len(rows))],
                       pa.timestamp("us", tz="UTC")),
        "x": pa.array(xs, pa.float64()), "n": pa.array(ns, pa.int32()),
        "s": pa.array(ss, pa.string())}))


def tallies(df, counted) -> tuple[list[int], list[int]]:
    """How many rows of ``df`` have each of ``counted``'s flags set, and how many nulls
    each of its columns holds: what the write pass's tasks count."""
    import numpy as np

    flags = counted.flags()
    rows = df.select(*counted.columns, *([flags.alias("_f")] if flags is not None else []))
    t = rows.toArrow()
    ones = []
    if flags is not None:
        v = t.column("_f").to_numpy()
        ones = [int(np.count_nonzero(v & (1 << b))) for b in range(len(counted.flagged))]
    return ones, [t.column(c).null_count for c in counted.columns]


def outcomes(fs, g, df):
    """(counted outcome or its ValidationError, great-expectations' own or its error)."""
    counted = counted_suite(g, dict(df.dtypes))
    assert counted is not None
    ones, nulls = tallies(df, counted)
    out = []
    for run in (lambda: counted.outcome(fs.catalog, df.count(), ones, nulls, df, "r"),
                lambda: validate_batch(fs.catalog, g, df, "r")):
        try:
            out.append(run().report)
        except ValidationError as exc:
            out.append(str(exc))
    return out


@pytest.mark.parametrize("suite", sorted(SUITES))
@pytest.mark.parametrize("rows", sorted(ROWS))
def test_counted_verdicts_equal_great_expectations_own_run(fs, spark, suite, rows):
    g = group(SUITES[suite])
    fs.apply([g])
    counted, gx = outcomes(fs, g, batch(spark, ROWS[rows]))
    if isinstance(gx, str):
        assert counted == gx  # the same refusal, naming the same failures
        return
    assert counted.rows_input == gx.rows_input == len(ROWS[rows])
    assert [(r["label"], r["success"]) for r in counted.results] == \
        [(r["label"], r["success"]) for r in gx.results]
    assert [r["unexpected_count"] for r in counted.results] == \
        [r["unexpected_count"] for r in gx.results]


def test_mixed_rows_break_what_they_should(fs, spark):
    """The mixed rows refuse the value suite for the expectations they break, and no other."""
    g = group(SUITES["values"])
    fs.apply([g])
    df = batch(spark, ROWS["mixed"])
    counted = counted_suite(g, dict(df.dtypes))
    # the null checks (4, 5, 6) take the null counts, the others a flag each
    assert counted.columns == ["x", "n", "s"] and counted.flagged == [0, 1, 2, 3, 7, 8]
    ones, nulls = tallies(df, counted)
    # x: NaN, inf and 1.0 > 1 break [0, 1] (Spark orders NaN above inf); -inf, -0.0 and
    # 0.0 break x > 0; NaN, inf and 1.0 break x < 1; 4 and 7 break n in [-2, 3];
    # "bz", "abc" and "z" are not in the set; 0 and 7 are
    assert ones == [3, 3, 3, 2, 3, 2]
    assert nulls == [1, 2, 1]  # in x, n and s
    with pytest.raises(ValidationError, match="refused by its expectations") as err:
        counted.outcome(fs.catalog, 8, ones, nulls, df, "r")
    assert "expect_column_values_to_not_be_null(x)#2" not in str(err.value)  # 7/8 >= 0.6


@pytest.mark.parametrize("suite, why", [
    ([expect("column_values_to_be_unique", column="s")], "be_unique"),
    ([expect("table_row_count_to_be_between", min_value=1)], "batch-level"),
    ([expect("column_values_to_be_between", column="x", min_value=0,
             row_condition='n>0', condition_parser="spark")], "row_condition"),
    ([expect("column_values_to_be_between", column="s", min_value="a")], "string bound"),
    ([expect("column_values_to_be_between", column="s", min_value=1)], "string column"),
    ([expect("column_values_to_be_between", column="ts", min_value=1)], "timestamp column"),
    ([expect("column_values_to_match_regex", column="x", regex="1")], "regex on a double"),
    ([expect("column_values_to_be_in_set", column="n", value_set=["1"])], "strings for ints"),
    ([expect("column_value_lengths_to_equal", column="n", value=1)], "length of an int"),
])
def test_suites_the_counts_cannot_judge_are_left_to_great_expectations(suite, why):
    assert counted_suite(group(suite), DTYPES) is None, why


def test_quarantine_and_missing_columns():
    quarantine = FeatureGroup("cq", [Entity("thing", join_keys=["key"])], "ts",
                              [Field("x", "double")], validation="quarantine", online=False,
                              expectations=[expect("column_values_to_not_be_null", column="x")])
    assert counted_suite(quarantine, DTYPES) is None
    with pytest.raises(ValidationError, match=r"names column\(s\) \['y'\]"):
        counted_suite(group([expect("column_values_to_not_be_null", column="y")]), DTYPES)
