"""The local engine of ingest (sparkfs.offline.local): a small pandas or Arrow batch runs in
this process with no Spark job, and gives what the Spark path gives — the same counts,
stored rows (None vs NaN, ±inf, -0.0, time zones), statistics and refusals — run side by
side on two stores (``ingest.local_max_rows`` on and 0)."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pyarrow as pa
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, Field, ValidationError, transform
from sparkfs.offline.local import runs_locally
from sparkfs.validation import Expectations, expect

UTC = dt.UTC
NAN, INF = float("nan"), float("inf")
ALL_DTYPES = ["boolean", "int", "long", "float", "double", "string", "timestamp", "date",
              "array<float>", "array<double>"]


@transform(output="double")
def ratio(f_double, f_long):
    """NaN (a missing value on Spark's pandas UDF path too) where f_long is 0."""
    return f_double / f_long.astype("float64").replace(0.0, float("nan"))


def make_group(name: str = "every", transforms=()) -> FeatureGroup:
    return FeatureGroup(name, [Entity("thing", join_keys=["k", "n"], dtypes={"n": "long"})], "t",
                        [Field(f"f_{d.replace('<', '_').replace('>', '')}", d) for d in ALL_DTYPES],
                        transforms=list(transforms))


@pytest.fixture
def stores(spark, tmp_path):
    """(local, spark): two stores, the second with the local engine off."""
    out = []
    for name, limit in (("local", 200_000), ("spark", 0)):
        out.append(FeatureStore({"data_dir": str(tmp_path / name), "offline": {"engine": "delta-rs"},
                                 "ingest": {"local_max_rows": limit}}, spark=spark))
    yield out
    for s in out:
        s.close()


def ts(minute: int, tz: str = "UTC") -> pd.Timestamp:
    return (pd.Timestamp(2026, 1, 1, 12, tz="UTC") + pd.Timedelta(minutes=minute)).tz_convert(tz)


def every_dtype(first: int, count: int) -> pa.Table:
    """Rows with every dtype, missing values of every kind, NaN, ±inf, -0.0, event times in
    another time zone, an int field given as int64 (narrowed) and an extra column."""
    i = list(range(first, first + count))
    dbl = [[1.5, None, NAN, INF, -INF, -0.0][j % 6] for j in i]
    ny = pa.timestamp("us", tz="America/New_York")
    return pa.table({
        "k": [f"k{j % 3}" for j in i],
        "n": pa.array([j % 2 for j in i], pa.int32()),
        "t": pa.array([ts(j).to_pydatetime() for j in i], ny),
        "f_boolean": [None if j % 4 == 0 else j % 2 == 0 for j in i],
        "f_int": pa.array([None if j % 5 == 0 else j * 10 for j in i], pa.int64()),
        "f_long": pa.array([None if j % 3 == 0 else j - 7 for j in i], pa.int64()),
        "f_float": pa.array(dbl, pa.float32()),
        "f_double": pa.array(dbl, pa.float64()),
        "f_string": [None if j % 4 == 1 else f"s{j}" for j in i],
        "f_timestamp": pa.array([None if j % 3 == 2 else ts(j, "Asia/Tokyo").to_pydatetime()
                                 for j in i], pa.timestamp("ns", tz="Asia/Tokyo")),
        "f_date": pa.array([None if j % 5 == 3 else dt.date(2026, 1, 1 + j % 28) for j in i]),
        "f_array_float": pa.array([None if j % 6 == 1 else [1.0, NAN, None][: j % 4] for j in i],
                                  pa.list_(pa.float32())),
        "f_array_double": pa.array([None if j % 6 == 2 else [float(j), -INF] for j in i],
                                   pa.list_(pa.float64())),
        "extra": [0] * count,
    })


def stored(fs: FeatureStore, group: str) -> list[tuple]:
    """The stored rows without system columns, sorted, NaN made comparable."""
    tbl = fs.read_history(group).to_arrow().drop_columns(["_commit_time", "_run_id"])
    return sorted((tuple(_plain(v) for v in row.values()) for row in tbl.to_pylist()), key=repr)


def _plain(v):
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, float) and v == 0:
        return repr(v)  # -0.0 and 0.0 stay apart
    if isinstance(v, list):
        return tuple(_plain(x) for x in v)
    return v


def counts(r) -> tuple:
    return (r.rows_input, r.rows_written, r.rows_skipped, r.rows_quarantined, r.noop,
            r.delta_version, r.columns_ignored, r.engine)


def assert_same_statistics(a, b) -> None:
    assert a.rows == b.rows and a.delta_version == b.delta_version
    assert set(a.features) == set(b.features)
    for name, feature in b.features.items():
        for key, value in feature.items():
            got = a.features[name][key]
            if isinstance(value, float) and math.isfinite(value):
                assert got == pytest.approx(value, rel=1e-9), (name, key)
            else:
                assert got == value or (got != got and value != value), (name, key, got, value)


def both(stores, group, data, run_id):
    """Ingest ``data`` into both stores; the results (local first)."""
    out = [fs.ingest(group, data, run_id=run_id) for fs in stores]
    assert [r.local for r in out] == [True, False]
    return out


def test_both_paths_store_count_and_describe_every_dtype_alike(stores):
    local, spark = stores
    for fs in stores:
        fs.apply([make_group()])
    first = both(stores, "every", every_dtype(0, 60), "r1")
    assert counts(first[0]) == counts(first[1])
    assert first[0].rows_written == 60 and first[0].columns_ignored == ["extra"]
    assert stored(local, "every") == stored(spark, "every")
    assert_same_statistics(local.statistics("every"), spark.statistics("every"))

    # a partly stored batch: only its 30 new rows are written, once
    again = both(stores, "every", every_dtype(30, 60), "r2")
    assert counts(again[0]) == counts(again[1])
    assert (again[0].rows_written, again[0].rows_skipped) == (30, 30)
    assert stored(local, "every") == stored(spark, "every")
    assert len(stored(local, "every")) == 90
    assert_same_statistics(local.statistics("every"), spark.statistics("every"))

    # the same run id again: a no-op; the same rows under a new one: nothing written
    replay = [fs.ingest("every", every_dtype(30, 60), run_id="r2") for fs in stores]
    assert counts(replay[0]) == counts(replay[1]) and replay[0].noop
    full = both(stores, "every", every_dtype(0, 90), "r3")
    assert counts(full[0]) == counts(full[1])
    assert (full[0].rows_written, full[0].rows_skipped, full[0].noop) == (0, 90, True)
    assert local.offline.current_version(local.get_feature_group("every")) == 2


def test_pandas_batches_and_derived_features_alike(stores):
    for fs in stores:
        fs.apply([make_group("derived", [ratio])])
    base = every_dtype(0, 24).drop_columns(["extra"]).to_pandas()
    base["f_long"] = base["f_long"].where(base.index % 4 != 1, 0)  # ratio: NaN (missing)
    base.loc[2, "f_double"] = NAN  # pandas: NaN is missing, as on Spark's pandas path
    base["k"] = base["k"].astype("category")  # categoricals: their values, on both paths
    results = both(stores, "derived", base, "p1")
    assert counts(results[0]) == counts(results[1])
    a, b = (stored(fs, "derived") for fs in stores)
    assert a == b
    assert_same_statistics(stores[0].statistics("derived"), stores[1].statistics("derived"))


def _batch(rows: list[tuple]) -> pa.Table:
    keys, ns, minutes, values = zip(*rows)
    return pa.table({"k": list(keys), "n": pa.array(ns, pa.int64()),
                     "t": pa.array([None if m is None else ts(m).to_pydatetime() for m in minutes],
                                   pa.timestamp("us", tz="UTC")),
                     "x": pa.array(values, pa.float64()),
                     "i": pa.array([1 << 40 if v == 7.0 else 1 for v in values], pa.int64())})


BAD = {
    "null key": _batch([(None, 1, 1, 1.0), ("a", None, 2, 1.0), ("a", 1, 3, 1.0)]),
    "null event time": _batch([("a", 1, None, 1.0), ("a", 1, 1, 1.0)]),
    "int out of range": _batch([("a", 1, 1, 7.0), ("a", 1, 2, 1.0)]),
    "conflicting values": _batch([("a", 1, 1, 1.0), ("a", 1, 1, 2.0), ("a", 1, 1, 1.0)]),
    "null against NaN": _batch([("a", 1, 1, None), ("a", 1, 1, NAN), ("b", 1, 1, NAN)]),
    "everything at once": _batch([(None, 1, None, 7.0), ("a", 1, 1, 1.0), ("a", 1, 1, 3.0)]),
    "missing column": pa.table({"k": ["a"], "n": [1]}),
    "wrong type": pa.table({"k": ["a"], "n": ["1"], "t": pa.array([0], pa.timestamp("s")),
                            "x": ["x"], "i": [1.5]}),
}
FINE = {  # same identity, values that Spark's hashes call equal: one row each, no conflict
    "NaN twice": _batch([("a", 1, 1, NAN), ("a", 1, 1, NAN)]),
    "null twice": _batch([("a", 1, 1, None), ("a", 1, 1, None)]),
}


@pytest.fixture
def small(stores):
    g = FeatureGroup("small", [Entity("thing", join_keys=["k", "n"], dtypes={"n": "long"})], "t",
                     [Field("x", "double"), Field("i", "int")])
    for fs in stores:
        fs.apply([g])
    return g


@pytest.mark.parametrize("case", sorted(BAD))
def test_both_paths_refuse_alike(stores, small, case):
    errors = []
    for fs in stores:
        with pytest.raises(ValidationError) as info:
            fs.ingest("small", BAD[case], run_id="bad")
        errors.append(str(info.value))
        assert fs.offline.current_version(small) == 0
    assert errors[0] == errors[1]
    assert "nothing was written" in errors[0]


def test_duplicates_spark_calls_equal_are_not_conflicts_on_either_path(stores, small):
    for case, data in FINE.items():
        results = both(stores, "small", data, f"fine-{case}")
        assert counts(results[0]) == counts(results[1]), case
    assert stored(stores[0], "small") == stored(stores[1], "small")


def test_local_engine_starts_no_spark(tmp_path, monkeypatch):
    """No SparkSession at all: the provider raises, and the batch still lands. (The engine
    is pinned: ``auto`` follows whatever Spark earlier tests left running in this process,
    see ``test_size_limit_expectations_and_spark_input_take_the_spark_path``.)"""
    fs = FeatureStore({"data_dir": str(tmp_path / "d"), "offline": {"engine": "delta-rs"}})

    def no_spark(self):
        raise AssertionError("the local engine asked for Spark")

    monkeypatch.setattr(FeatureStore, "spark", property(no_spark))
    fs.apply([make_group("derived", [ratio])])
    pdf = every_dtype(0, 12).to_pandas()
    r = fs.ingest("derived", pdf, run_id="a")
    assert r.local and r.rows_written == 12 and fs.statistics("derived").rows == 12
    with pytest.raises(ValidationError, match="null join key"):
        fs.ingest("derived", pdf.assign(k=None), run_id="b")
    again = fs.ingest("derived", pdf, run_id="c")
    assert again.noop and again.rows_skipped == 12
    fs.close()


def test_size_limit_expectations_and_spark_input_take_the_spark_path(stores, spark, tmp_path):
    fs = FeatureStore({"data_dir": str(tmp_path / "x"), "offline": {"engine": "delta-rs"},
                       "ingest": {"local_max_rows": 5}}, spark=spark)
    g = make_group("limits")
    checked = FeatureGroup("checked", g.entities, "t", [Field("f_double", "double")],
                           expectations=Expectations([expect("column_values_to_not_be_null",
                                                             column="f_double")]))
    fs.apply([g, checked])
    assert fs.ingest("limits", every_dtype(0, 5), run_id="a").local
    assert not fs.ingest("limits", every_dtype(5, 6), run_id="b").local
    assert not fs.ingest("limits", spark.createDataFrame(every_dtype(20, 2)), run_id="c").local
    # a group with expectations stays on Spark (great-expectations' pandas engine differs on
    # NaN); asked without ingesting, to spare the great-expectations import
    data = every_dtype(0, 3).select(["k", "n", "t", "f_double"])
    assert runs_locally(data, g, fs.offline, "delta-rs", 5, False)
    assert not runs_locally(data, checked, fs.offline, "delta-rs", 5, False)
    assert not runs_locally(data, g, fs.offline, "delta-spark", 5, False)
    assert not runs_locally(data, g, fs.offline, "delta-rs", 0, False)
    # auto: delta-spark exactly when this process's running Spark can load the Delta jars
    from sparkfs.sparkutil import has_delta_jars

    auto = runs_locally(data.to_batches()[0], g, fs.offline, "auto", 5, True)
    assert auto == (not has_delta_jars(spark))
    fs.close()


def test_rows_committed_meanwhile_are_left_out(stores, small, monkeypatch):
    """Another ingest commits part of the batch between the local engine's staging and its
    commit: the shared retry loop re-dedupes (on Arrow), re-stages only the rest, and the
    statistics are those of the rows committed."""
    from sparkfs.offline.local import LocalDeltaRsWriter

    local = stores[0]
    other = FeatureStore({"data_dir": local.config.data_dir, "offline": {"engine": "delta-rs"}},
                         spark=stores[1].spark)
    data = _batch([("a", j % 2, j, j + 0.5) for j in range(40)])
    real = LocalDeltaRsWriter._stage_arrow
    raced: list[int] = []

    def staged_then_raced(self, *a, **k):
        out = real(self, *a, **k)
        if not raced:  # fault injection: a concurrent writer lands right after our staging
            raced.append(-1)
            raced[0] = other.ingest("small", data.slice(0, 15), run_id="meanwhile").rows_written
        return out

    monkeypatch.setattr(LocalDeltaRsWriter, "_stage_arrow", staged_then_raced)
    r = local.ingest("small", data, run_id="main")
    other.close()
    assert raced == [15] and r.local
    assert (r.rows_input, r.rows_written, r.rows_skipped) == (40, 25, 15)
    assert len(stored(local, "small")) == 40
    assert local.statistics("small").rows == 25
    assert local.ingest("small", data, run_id="main").noop


@pytest.mark.parametrize("kind", ["pandas", "arrow", "spark"])
def test_lists_with_no_value_fit_every_array_dtype(stores, spark, kind):
    """A batch whose lists are all empty or hold only missing values has no element type
    to infer (pandas and Arrow give list<null>, Spark array<void>); like an all-null column
    it fits the field's array dtype, on both engines, and is stored as given."""
    g = FeatureGroup("lists", [Entity("thing", join_keys=["k"])], "t",
                     [Field("v", "array<double>"), Field("w", "array<float>")])
    lists = [[], [None], None]
    when = [ts(i).to_pydatetime() for i in range(3)]
    if kind == "pandas":
        data = pd.DataFrame({"k": ["a", "b", "c"], "t": when, "v": lists, "w": lists})
    else:
        data = pa.table({"k": ["a", "b", "c"], "t": pa.array(when, pa.timestamp("us", tz="UTC")),
                         "v": pa.array(lists, pa.list_(pa.null())),
                         "w": pa.array(lists, pa.list_(pa.null()))})
        if kind == "spark":
            data = spark.createDataFrame(data)
    for fs in stores:
        fs.apply([g])
        assert fs.ingest("lists", data, run_id="r1").rows_written == 3
        assert stored(fs, "lists") == [("a", when[0], (), ()), ("b", when[1], (None,), (None,)),
                                       ("c", when[2], None, None)]
