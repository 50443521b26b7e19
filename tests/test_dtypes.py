"""``sparkfs.dtypes``: each dtype's Spark, DuckDB, Arrow and pandas forms agree with what
the engines really do (a column with None and NaN round-tripped through each), join-key
rules, and the inputs each dtype accepts or refuses with an error naming the column."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sparkfs.definitions import DTYPES, Entity, FeatureGroup, Field
from sparkfs.dtypes import ALL, KEY_DTYPES, dtype
from sparkfs.errors import DefinitionError, TransformError, ValidationError
from sparkfs.transform_dtypes import coerce, pandas_dtype, series_from_values, to_values

UTC = dt.UTC
NAN = float("nan")

#: A column of each dtype: values, a missing one and (for floats) NaN.
SAMPLES = {
    "boolean": [True, None, False],
    "int": [-7, None, 2**31 - 1],
    "long": [2**40, None, -(2**63)],
    "float": [1.5, None, NAN],
    "double": [-2.25, None, NAN],
    "string": ["é\x00'x\"", None, ""],
    "timestamp": [dt.datetime(2013, 1, 1, 5, 30, 0, 123456, tzinfo=UTC), None,
                  dt.datetime(1970, 1, 1, tzinfo=UTC)],
    "date": [dt.date(2024, 2, 29), None, dt.date(1970, 1, 1)],
    "array<float>": [[1.0, None, NAN], None, []],
    "array<double>": [[-0.5, NAN, None], None, []],
}


def _norm(v):
    """Compare NaN as a value (NaN != NaN), recursively."""
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    return v


def _nan_is_missing(v):
    """What the pandas path gives back: NaN and null are one missing value there."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, list):
        return [_nan_is_missing(x) for x in v]
    return v


def _column(d: str) -> pa.Table:
    return pa.table({"v": pa.array(SAMPLES[d], type=ALL[d].arrow, from_pandas=False)})


def test_every_dtype_has_one_record_and_the_old_tables_are_views_of_it():
    assert list(ALL) == list(DTYPES) == list(SAMPLES)
    from sparkfs.models.binding import MLFLOW_TYPES
    from sparkfs.offline.tables import ARROW_TYPES
    from sparkfs.streaming.parse import AVRO_TYPES

    for name, rec in ALL.items():
        assert rec.name == name
        assert DTYPES[name] == (rec.spark, rec.duckdb)
        assert ARROW_TYPES[name] == rec.arrow
        assert pandas_dtype(name) == rec.pandas
        assert AVRO_TYPES[name] == rec.avro
        assert MLFLOW_TYPES.get(name) == rec.mlflow
    assert sorted(MLFLOW_TYPES) == sorted(n for n in ALL if not n.startswith("array"))


@pytest.mark.parametrize("d", list(ALL))
def test_arrow_column_round_trips_through_duckdb(d):
    rec = ALL[d]
    src = _column(d)
    con = duckdb.connect()
    try:
        con.register("src", src)
        same = con.sql(f"SELECT typeof(v) = typeof(CAST(v AS {rec.duckdb})) FROM src LIMIT 1")
        assert same.fetchall() == [(True,)], f"DuckDB reads {rec.arrow} as another type than {rec.duckdb}"
        back = con.sql(f"SELECT CAST(v AS {rec.duckdb}) AS v FROM src").to_arrow_table()
    finally:
        con.close()
    got = back.column("v").cast(rec.arrow)
    assert _norm(got.to_pylist()) == _norm(SAMPLES[d])


@pytest.mark.parametrize("d", list(ALL))
def test_arrow_column_round_trips_through_spark(spark, d):
    rec = ALL[d]
    df = spark.createDataFrame(_column(d))
    assert df.schema["v"].dataType.simpleString() == rec.spark
    got = df.toArrow().column("v")
    if pa.types.is_timestamp(got.type) and got.type.tz is None:  # session time, UTC here
        got = pc.assume_timezone(got, "UTC")
    assert _norm(got.cast(rec.arrow).to_pylist()) == _norm(SAMPLES[d])


@pytest.mark.parametrize("d", list(ALL))
def test_pandas_form_holds_the_column_and_gives_it_back(d):
    rec = ALL[d]
    s = coerce(_column(d).column("v").to_pandas(), d, "column 'v'")
    assert s.dtype == pd.api.types.pandas_dtype(rec.pandas)
    assert s.isna().tolist() == [v is None or _norm(v) == "NaN" for v in SAMPLES[d]]
    assert to_values(s, d, "column 'v'") == [_nan_is_missing(v) for v in SAMPLES[d]]


def test_column_dtypes_gives_keys_event_time_and_stored_fields_in_history_order():
    from sparkfs.offline.tables import SYSTEM_COLUMNS, history_schema
    from sparkfs.transforms import transform

    @transform(output="long")
    def twice(n):
        return n * 2

    g = FeatureGroup("g", [Entity("e", ["a", "b"], dtypes={"b": "int"})], "t",
                     [Field("n", "int"), Field("x", "double")], transforms=[twice])
    assert g.column_dtypes == {"a": "string", "b": "int", "t": "timestamp", "n": "int",
                               "x": "double", "twice": "long"}
    schema = history_schema(g)
    assert schema.names == list(g.column_dtypes) + list(SYSTEM_COLUMNS)
    assert [schema.field(c).type for c in g.column_dtypes] == \
        [ALL[d].arrow for d in g.column_dtypes.values()]


# -- join keys ---------------------------------------------------------------------------------
@pytest.mark.parametrize("d", list(ALL))
def test_only_key_dtypes_make_join_keys(d):
    if d in ("string", "int", "long"):
        assert ALL[d].can_be_key and d in KEY_DTYPES
        assert Entity("e", ["k"], dtypes={"k": d}).key_dtypes == {"k": d}
    else:
        assert not ALL[d].can_be_key and d not in KEY_DTYPES
        with pytest.raises(DefinitionError, match=r"join key 'k' of entity 'e' has dtype"):
            Entity("e", ["k"], dtypes={"k": d})
        with pytest.raises(DefinitionError, match="cannot be a join key"):
            ALL[d].key_dtype  # noqa: B018


def test_int_and_long_keys_are_compared_as_long_in_every_engine():
    from sparkfs.training.duckdb_sql import KEY_SQL
    from sparkfs.training.spark import SPARK_KEY_TYPES

    for d in KEY_DTYPES:
        want = "string" if d == "string" else "long"
        assert ALL[d].key_dtype is ALL[want]
        assert KEY_SQL[d] == ALL[want].duckdb and SPARK_KEY_TYPES[d] == ALL[want].spark


def test_int_and_long_key_columns_match_one_another_in_duckdb():
    """An ``int`` key stored as int32 finds a spine's int64 key once both are cast to the
    key's compare type."""
    t = ALL["int"].key_dtype.duckdb
    hist = pa.table({"k": pa.array([1, None, 3], pa.int32())})
    spine = pa.table({"k": pa.array([3, 1, 2], pa.int64())})
    con = duckdb.connect()
    try:
        con.register("hist", hist)
        con.register("spine", spine)
        rows = con.sql(f"SELECT CAST(s.k AS {t}) FROM spine s JOIN hist h "
                       f"ON CAST(s.k AS {t}) = CAST(h.k AS {t}) ORDER BY 1").fetchall()
    finally:
        con.close()
    assert rows == [(1,), (3,)]


# -- accepted inputs --------------------------------------------------------------------------
def _group(d: str) -> FeatureGroup:
    return FeatureGroup("g", [Entity("e", ["k"])], "t", [Field("v", d)])


#: Spark types ingest refuses for each dtype (one per dtype is enough to name the column).
WRONG_SPARK = {"boolean": "int", "int": "double", "long": "string", "float": "bigint",
               "double": "string", "string": "bigint", "timestamp": "date", "date": "timestamp",
               "array<float>": "string", "array<double>": "double"}


@pytest.mark.parametrize("d", list(ALL))
def test_ingest_accepts_the_spark_sources_of_a_dtype_and_refuses_others_naming_the_column(spark, d):
    from pyspark.sql import functions as F

    from sparkfs.offline.checks import conform

    rec = ALL[d]
    base = spark.range(1).select(F.lit("a").alias("k"), F.current_timestamp().alias("t"))
    accepted = sorted(rec.spark_sources | rec.spark_narrows | {"void"})
    for src in accepted:
        col = F.lit(None) if src == "void" else F.lit(None).cast(src)
        out, ignored, narrowed = conform(_group(d), base.withColumn("v", col))
        assert out.schema["v"].dataType.simpleString() == \
            (src if src in rec.spark_narrows else rec.spark), src
        assert narrowed == (["v"] if src in rec.spark_narrows else [])
        assert rec.accepts_spark(src) or rec.narrows_spark(src)
    wrong = WRONG_SPARK[d]
    assert not rec.accepts_spark(wrong) and not rec.narrows_spark(wrong)
    with pytest.raises(ValidationError) as exc:
        conform(_group(d), base.withColumn("v", F.lit(None).cast(wrong)))
    assert f"column 'v' has type {wrong}, expected {d} ({rec.spark})" in str(exc.value)
    assert "nothing was written" in str(exc.value)


def test_arrow_input_is_checked_against_the_declared_dtype(spark):
    from sparkfs.offline.checks import conform, to_spark

    batch = pa.table({"k": ["a"], "t": pa.array([dt.datetime(2013, 1, 1)], pa.timestamp("us")),
                      "v": pa.array([1.5], pa.float64())})
    df = to_spark(spark, batch, _group("long"))
    with pytest.raises(ValidationError, match=r"column 'v' has type double, expected long \(bigint\)"):
        conform(_group("long"), df)
    out, _, _ = conform(_group("double"), df)
    assert out.collect()[0]["v"] == 1.5


#: Python values of the right kind, and one wrong value, for each dtype with a fast path.
PYTHON_INPUTS = {
    "boolean": ([True, None], 1),
    "int": ([3, None], "3"),
    "long": ([2**40, None], 1.5),
    "float": ([1.5, 2, None], "1.5"),
    "double": ([1.5, 2, None], True),
    "string": (["x", None], 7),
    "timestamp": (["2013-01-01T05:00:00Z", dt.datetime(2013, 1, 1, tzinfo=UTC), None], "now"),
}


@pytest.mark.parametrize("d", list(PYTHON_INPUTS))
def test_python_inputs_a_dtype_accepts_and_the_error_naming_the_column(d):
    rec = ALL[d]
    good, bad = PYTHON_INPUTS[d]
    assert {type(v) for v in good if v is not None} <= set(rec.python)
    s = series_from_values(good, d, "column 'v'")
    assert s.dtype == pd.api.types.pandas_dtype(rec.pandas)
    assert s.isna().tolist() == [v is None for v in good]
    assert type(bad) not in rec.python or d == "timestamp"  # "now" is text, but not ISO 8601
    with pytest.raises(TransformError, match=r"^column 'v': cannot hold .* as " + d):
        series_from_values([bad], d, "column 'v'")


def test_integer_inputs_out_of_range_are_refused_naming_the_column():
    lo, hi = ALL["int"].bounds
    assert series_from_values([lo, hi], "int", "column 'n'").tolist() == [lo, hi]
    with pytest.raises(TransformError, match=r"column 'n': .*outside the int range"):
        series_from_values([hi + 1], "int", "column 'n'")
    with pytest.raises(DefinitionError, match="not an integer dtype"):
        ALL["double"].bounds  # noqa: B018


def test_unknown_dtype_names_the_column_and_the_supported_ones():
    assert dtype(" LONG ").name == "long"
    with pytest.raises(DefinitionError) as exc:
        dtype("decimal(10,2)", "field 'price'")
    assert str(exc.value).startswith("field 'price' has dtype 'decimal(10,2)'")
    assert ", ".join(ALL) in str(exc.value)


def test_sum_dtype_and_numeric_rules_drive_aggregations():
    from sparkfs.definitions import Aggregation

    for name, rec in ALL.items():
        if rec.numeric:
            assert Aggregation("v", "sum", ["1d"]).output_dtype(name) == rec.sum_as
    assert [n for n, r in ALL.items() if r.sum_as == "long"] == ["boolean", "int", "long"]
    with pytest.raises(DefinitionError, match="needs a numeric column, but it is string"):
        FeatureGroup("g", [Entity("e", ["k"])], "t", [Field("v", "string")],
                     aggregations=[Aggregation("v", "mean", ["1d"])])
