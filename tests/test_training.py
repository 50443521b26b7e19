"""Point-in-time joins: both engines against the brute-force reference and each other,
leakage, as-known-at, ttl, null keys, duplicates, time zones, empty groups, skew."""

from __future__ import annotations

import datetime as dt
import tempfile

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_training_reference import T, append_history, features_of, reference

from sparkfs import Entity, FeatureGroup, FeatureStore, Field, NotFoundError, SparkfsError
from sparkfs.training.duckdb_sql import commit_layout
from sparkfs.training.spark_broadcast import SparkBroadcastEngine

ENGINES = ["duckdb", "spark"]

airport = Entity("airport", join_keys=["origin"])
plane = Entity("plane", join_keys=["tailnum"])


def weather_group(ttl=None):
    return FeatureGroup("weather", [airport], "time_hour",
                        [Field("temp", "double"), Field("cond", "string")], ttl=ttl)


def planes_group():
    return FeatureGroup("planes", [plane], "registered_at", [Field("seats", "int")])


@pytest.fixture
def store(fs):
    """fs with weather (ttl 1h) and planes applied and a little history."""
    w, p = weather_group(ttl="1h"), planes_group()
    fs.apply([w, p])
    append_history(fs, w, [
        {"origin": "JFK", "time_hour": T(0), "temp": 1.0, "cond": "a", "_commit_time": T(1)},
        {"origin": "JFK", "time_hour": T(30), "temp": 2.0, "cond": "b", "_commit_time": T(31)},
        {"origin": "LGA", "time_hour": T(0), "temp": 9.0, "cond": None, "_commit_time": T(2)},
    ])
    append_history(fs, w, [  # a correction of JFK@30 committed much later
        {"origin": "JFK", "time_hour": T(30), "temp": 2.5, "cond": "c", "_commit_time": T(300)},
    ])
    append_history(fs, p, [
        {"tailnum": "N1", "registered_at": T(-1000), "seats": 100, "_commit_time": T(-1000)},
        {"tailnum": "N2", "registered_at": T(20), "seats": 50, "_commit_time": T(20)},
    ])
    return fs


def spine_frame():
    return pd.DataFrame({
        "airport": ["JFK", "JFK", "JFK", "LGA", None, "EWR", "JFK", "JFK"],
        "tailnum": ["N1", "N2", "N2", None, "N1", "N1", "N1", "N1"],
        "ts": [T(-5), T(10), T(40), T(30), T(40), T(40), T(200), T(40)],
        "label": [0, 1, 0, 1, 1, 0, 1, 0],
    })


@pytest.mark.parametrize("engine", ENGINES)
def test_several_groups_key_map_and_passthrough(store, engine):
    spine = spine_frame()
    ts = store.get_historical_features(
        spine, ["weather:temp", "weather:cond", "planes:seats"], "ts", engine=engine,
        key_map={"origin": "airport"})
    df = ts.to_pandas()
    assert list(df.columns) == ["airport", "tailnum", "ts", "label", "temp", "cond", "seats"]
    assert df["label"].tolist() == spine["label"].tolist()
    assert df["airport"].tolist() == spine["airport"].tolist()
    got = features_of(ts, ["temp", "cond", "seats"])
    assert [r["temp"] for r in got] == [None, 1.0, 2.5, 9.0, None, None, None, 2.5]
    assert [r["cond"] for r in got] == [None, "a", "c", None, None, None, None, "c"]
    assert [r["seats"] for r in got] == [100, None, 50, None, 100, 100, 100, 100]
    m = ts.manifest
    assert m["engine"] == engine
    assert {g["label"]: g["delta_version"] for g in m["groups"]} == {"weather@1": 2, "planes@1": 1}
    assert m["features"] == ["weather@1:temp", "weather@1:cond", "planes@1:seats"]
    assert m["spine"]["rows"] == 8


@pytest.mark.parametrize("engine", ENGINES)
def test_as_known_at_hides_late_commits(store, engine):
    spine = spine_frame()
    common = dict(key_map={"origin": "airport"}, engine=engine)
    known = features_of(store.get_historical_features(
        spine, ["weather:temp", "planes:seats"], "ts", as_known_at=True, **common),
        ["temp", "seats"])
    # JFK@30 was first known (2.0) at 31, its correction (2.5) only at 300
    assert [r["temp"] for r in known] == [None, 1.0, 2.0, 9.0, None, None, None, 2.0]
    assert [r["seats"] for r in known] == [100, None, 50, None, 100, 100, 100, 100]


@pytest.mark.parametrize("as_known_at", [False, True])
@pytest.mark.parametrize("engine", ENGINES)
def test_ties_across_commits_go_to_the_latest_commit_time(fs, engine, as_known_at):
    """One commit time per file, as ingest writes them (the DuckDB engine's 64-bit
    positions). Commits are appended out of time order: the latest commit *time* wins a
    tie on event time, not the latest Delta version."""
    w = weather_group()
    fs.apply([w])
    commits = {50: [("JFK", 10, 2.0), ("LGA", 10, 20.0)],
               5: [("JFK", 10, 1.0), ("JFK", 20, 5.0), ("LGA", 10, 10.0)],
               90: [("JFK", 10, 3.0), ("LGA", 30, 30.0)],
               70: [("LGA", 10, 40.0)]}
    hist = []
    for c, rows in commits.items():
        part = [{"origin": o, "time_hour": T(e), "temp": x, "_commit_time": T(c)} for o, e, x in rows]
        append_history(fs, w, part)
        hist += part
    assert len(commit_layout([f.removeprefix("file://") for f in fs.offline.files(w)], "time_hour")[2]) == 4
    spine = pd.DataFrame({"origin": ["JFK", "JFK", "JFK", "JFK", "LGA", "LGA", "LGA", "LGA"],
                          "ts": [T(m) for m in (12, 19, 60, 95, 12, 55, 80, 95)]})
    got = features_of(fs.get_historical_features(spine, ["weather:temp"], "ts", engine=engine,
                                                 as_known_at=as_known_at), ["temp"])
    assert got == reference(w, hist, spine.to_dict("records"), "ts", ["temp"], as_known_at=as_known_at)
    expect = ([1.0, 1.0, 5.0, 5.0, 10.0, 20.0, 40.0, 30.0] if as_known_at
              else [3.0, 3.0, 5.0, 5.0, 40.0, 30.0, 30.0, 30.0])
    assert [r["temp"] for r in got] == expect


@pytest.mark.parametrize("engine", ENGINES)
def test_future_rows_never_leak(fs, engine):
    w = weather_group()
    fs.apply([w])
    append_history(fs, w, [
        {"origin": "JFK", "time_hour": T(m), "temp": float(m), "_commit_time": T(m)}
        for m in range(0, 100, 7)])
    spine = pd.DataFrame({"origin": ["JFK"] * 20, "ts": [T(m) for m in range(0, 100, 5)]})
    got = features_of(fs.get_historical_features(spine, ["weather:temp"], "ts", engine=engine),
                      ["temp"])
    for m, r in zip(range(0, 100, 5), got):
        assert r["temp"] is not None and r["temp"] <= m
        assert r["temp"] == float(m - m % 7)


@pytest.mark.parametrize("engine", ENGINES)
def test_null_keys_duplicates_and_order_preserved(store, engine):
    spine = pd.DataFrame({"origin": ["JFK", None, "JFK", "JFK", None, "LGA", "JFK"],
                          "ts": [T(40), T(40), T(40), T(5), pd.NaT, T(10), pd.NaT],
                          "i": range(7)})
    ts = store.get_historical_features(spine, ["weather:temp"], "ts", engine=engine)
    df = ts.to_pandas()
    assert df["i"].tolist() == list(range(7))
    assert features_of(ts, ["temp"]) == [{"temp": t} for t in
                                         [2.5, None, 2.5, 1.0, None, 9.0, None]]


@pytest.mark.parametrize("broadcast", [None, 0])
def test_spark_result_is_in_spine_order_unless_asked_not_to_be(store, broadcast):
    """``to_spark()`` of a Spark-engine result is in spine order (both strategies);
    ``to_spark(ordered=False)`` (what batch scoring reads) skips the global sort and gives
    the same rows, each with its own spine row's values and ``_spine_id`` on request."""
    n = 40
    spine = pd.DataFrame({"origin": ["JFK", "LGA", None, "JFK"] * (n // 4),
                          "ts": [T(40 - i) for i in range(n)], "i": range(n)})
    ts = store.get_historical_features(spine, ["weather:temp"], "ts", engine="spark",
                                       broadcast_spine_rows=broadcast)
    ordered = ts.to_spark()
    assert [r["i"] for r in ordered.collect()] == list(range(n))
    assert "rangepartitioning(_spine_id" in ordered._jdf.queryExecution().executedPlan().toString()
    loose = ts.to_spark(ordered=False, spine_id=True)
    assert "rangepartitioning(_spine_id" not in loose._jdf.queryExecution().executedPlan().toString()
    rows = sorted(loose.collect(), key=lambda r: r["i"])
    assert [r["_spine_id"] for r in rows] == list(range(n))
    by_i = {r["i"]: r["temp"] for r in ordered.collect()}
    assert {r["i"]: r["temp"] for r in rows} == by_i
    assert "_spine_id" not in ts.to_spark(ordered=False).columns


@pytest.mark.parametrize("engine", ENGINES)
def test_time_zones(store, engine):
    instants = [T(-5), T(10), T(40)]
    ny = pd.DataFrame({"origin": ["JFK"] * 3,
                       "ts": pd.DatetimeIndex(instants).tz_convert("America/New_York")})
    naive = pd.DataFrame({"origin": ["JFK"] * 3, "ts": [t.replace(tzinfo=None) for t in instants]})
    a = store.get_historical_features(ny, ["weather:temp"], "ts", engine=engine).to_arrow()
    b = store.get_historical_features(naive, ["weather:temp"], "ts", engine=engine).to_arrow()
    assert a.equals(b)
    assert a.column("temp").to_pylist() == [None, 1.0, 2.5]
    assert a.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert a.column("ts").to_pylist() == instants


@pytest.mark.parametrize("engine", ENGINES)
def test_empty_group_gives_nulls(fs, engine):
    w = weather_group()
    fs.apply([w])
    spine = pd.DataFrame({"origin": ["JFK", "LGA"], "ts": [T(1), T(2)]})
    ts = fs.get_historical_features(spine, ["weather:temp", "weather:cond"], "ts", engine=engine)
    assert features_of(ts, ["temp", "cond"]) == [{"temp": None, "cond": None}] * 2
    assert ts.manifest["groups"][0]["delta_version"] == 0


def test_engines_agree_on_spark_and_arrow_spines(store, spark):
    pdf = spine_frame().drop(columns=["tailnum"])
    sdf = spark.createDataFrame(pdf)
    feats = ["weather:temp", "weather:cond"]
    km = {"origin": "airport"}
    by_spark = store.get_historical_features(sdf, feats, "ts", engine="spark", key_map=km)
    by_duck = store.get_historical_features(sdf, feats, "ts", engine="duckdb", key_map=km)
    by_arrow = store.get_historical_features(pa.Table.from_pandas(pdf), feats, "ts",
                                             engine="duckdb", key_map=km)
    assert by_spark.to_arrow().equals(by_duck.to_arrow())
    assert by_duck.to_arrow().equals(by_arrow.to_arrow())
    assert by_spark.to_spark().count() == len(pdf)


@pytest.mark.parametrize("engine", ENGINES)
def test_delta_version_is_pinned(store, engine):
    spine = pd.DataFrame({"origin": ["JFK"], "ts": [T(40)]})
    old = store.get_historical_features(spine, ["weather:temp"], "ts", engine=engine,
                                        delta_versions={"weather@1": 1})
    assert features_of(old, ["temp"]) == [{"temp": 2.0}]
    assert old.manifest["groups"][0]["delta_version"] == 1


def test_lazy_spark_result_reads_the_version_pinned_at_call(store):
    w = store.get_feature_group("weather")
    spine = pd.DataFrame({"origin": ["JFK"], "ts": [T(500)]})
    ts = store.get_historical_features(spine, ["weather:temp"], "ts", engine="spark")
    append_history(store, w, [{"origin": "JFK", "time_hour": T(499), "temp": 7.0,
                               "_commit_time": T(499)}])
    assert features_of(ts, ["temp"]) == [{"temp": None}]  # ttl 1h: T(30) is too old
    again = store.get_historical_features(spine, ["weather:temp"], "ts", engine="spark")
    assert features_of(again, ["temp"]) == [{"temp": 7.0}]


@pytest.mark.parametrize("engine", ENGINES)
def test_composite_integer_keys(fs, engine):
    flight = Entity("flight", join_keys=["carrier", "flight_no"], dtypes={"flight_no": "int"})
    g = FeatureGroup("fl", [flight], "et", [Field("delay", "double")])
    fs.apply([g])
    append_history(fs, g, [
        {"carrier": "UA", "flight_no": 1, "et": T(0), "delay": 1.0, "_commit_time": T(0)},
        {"carrier": "UA", "flight_no": 2, "et": T(0), "delay": 2.0, "_commit_time": T(0)},
        {"carrier": "AA", "flight_no": 1, "et": T(0), "delay": 3.0, "_commit_time": T(0)}])
    spine = pd.DataFrame({"carrier": ["UA", "AA", "UA", "AA"], "flight_no": [2, 1, 1, 2],
                          "ts": [T(1)] * 4})
    got = features_of(fs.get_historical_features(spine, ["fl:delay"], "ts", engine=engine),
                      ["delay"])
    assert [r["delay"] for r in got] == [2.0, 3.0, 1.0, None]


@pytest.mark.parametrize("engine", ENGINES + ["spark-read"])
def test_every_dtype_comes_back_with_its_value_and_type(fs, engine):
    """Each feature dtype through each engine (``spark-read``: the broadcast strategy over
    rows Spark read, as for files the workers cannot open). Two commits, so the DuckDB
    readers scan per commit."""
    from sparkfs.definitions import DTYPES

    dtypes = list(DTYPES)
    g = FeatureGroup("all", [Entity("e", ["k"], dtypes={"k": "long"})], "et",
                     [Field(d.replace("<", "_").replace(">", ""), d) for d in dtypes])
    names = [f.name for f in g.features]
    fs.apply([g])
    values = {"boolean": True, "int": -7, "long": 2**40, "float": 1.5, "double": -2.25,
              "string": "é\x00'x\"", "timestamp": T(3), "date": dt.date(2024, 2, 29),
              "array<float>": [1.0, None, -0.5], "array<double>": []}
    first = {"k": 1, "et": T(0), "_commit_time": T(0), **{n: None for n in names}}
    second = {"k": 1, "et": T(1), "_commit_time": T(5),
              **{n: values[d] for n, d in zip(names, dtypes)}}
    append_history(fs, g, [first])
    append_history(fs, g, [second])
    spine = pd.DataFrame({"k": [1, 1, 2], "ts": [T(0), T(2), T(2)]})
    # "spark-read": Spark reads the files for the tasks (as on object storage)
    chosen = SparkBroadcastEngine(spark_reads_files=True) if engine == "spark-read" else engine
    got = fs.get_historical_features(spine, [f"all:{n}" for n in names], "ts",
                                     engine=chosen).to_arrow()
    want = {n: [None, values[d], None] for n, d in zip(names, dtypes)}
    assert {n: got.column(n).to_pylist() for n in names} == want
    from sparkfs.offline.tables import arrow_type

    assert [got.schema.field(n).type for n in names] == [arrow_type(d) for d in dtypes]


@pytest.mark.parametrize("engine", ENGINES)
def test_name_collisions_and_full_feature_names(store, engine):
    spine = pd.DataFrame({"origin": ["JFK"], "ts": [T(40)], "temp": [0.0]})
    with pytest.raises(SparkfsError, match="'temp'.*full_feature_names=True"):
        store.get_historical_features(spine, ["weather:temp"], "ts", engine=engine)
    ts = store.get_historical_features(spine, ["weather:temp", "weather:cond"], "ts",
                                       engine=engine, full_feature_names=True)
    assert ts.columns == ["origin", "ts", "temp", "weather__temp", "weather__cond"]
    assert features_of(ts, ["temp", "weather__temp"]) == [{"temp": 0.0, "weather__temp": 2.5}]


def test_bad_input_is_refused_clearly(store):
    spine = pd.DataFrame({"origin": ["JFK"], "ts": [T(1)]})
    with pytest.raises(NotFoundError, match="no feature 'nope'"):
        store.get_historical_features(spine, ["weather:nope"], "ts", engine="duckdb")
    with pytest.raises(NotFoundError, match="no timestamp column 'when'"):
        store.get_historical_features(spine, ["weather:temp"], "when", engine="duckdb")
    with pytest.raises(NotFoundError, match="joins on 'tailnum'.*key_map"):
        store.get_historical_features(spine, ["planes:seats"], "ts", engine="duckdb")
    with pytest.raises(SparkfsError, match="engine 'polars'"):
        store.get_historical_features(spine, ["weather:temp"], "ts", engine="polars")
    with pytest.raises(SparkfsError, match="unknown option"):
        store.get_historical_features(spine, ["weather:temp"], "ts", engine="duckdb", bogus=1)
    with pytest.raises(SparkfsError, match="key_map names \\['orign'\\]"):
        store.get_historical_features(spine, ["weather:temp"], "ts", engine="duckdb",
                                      key_map={"orign": "origin"})
    bad_key = pd.DataFrame({"origin": [1], "ts": [T(1)]})
    with pytest.raises(SparkfsError, match="spine column 'origin' has type int64.*'weather'"):
        store.get_historical_features(bad_key, ["weather:temp"], "ts", engine="duckdb")
    bad_ts = pd.DataFrame({"origin": ["JFK"], "ts": ["2024-01-01"]})
    with pytest.raises(SparkfsError, match="'ts' has type string"):
        store.get_historical_features(bad_ts, ["weather:temp"], "ts", engine="duckdb")
    with pytest.raises(SparkfsError, match="reserves"):
        store.get_historical_features(spine.assign(_spine_id=1), ["weather:temp"], "ts",
                                      engine="duckdb")


def test_hot_key_split_over_time_buckets(fs):
    """One key holds nearly all rows; small time buckets force the carry-over path."""
    w = weather_group(ttl="2h")
    fs.apply([w])
    hist = [{"origin": "HOT", "time_hour": T(m), "temp": float(m), "_commit_time": T(m + (m % 3) * 20)}
            for m in range(0, 600, 3)]
    hist += [{"origin": "COLD", "time_hour": T(250), "temp": -1.0, "_commit_time": T(250)}]
    append_history(fs, w, hist)
    spine = pd.DataFrame({"origin": ["HOT"] * 150 + ["COLD"] * 10,
                          "ts": [T(m * 4 + 1) for m in range(150)] + [T(100 + 50 * i) for i in range(10)]})
    for akn in (False, True):
        expect = reference(w, hist, spine.to_dict("records"), "ts", ["temp"], as_known_at=akn)
        for buckets in (1, 7, 64):
            got = fs.get_historical_features(spine, ["weather:temp"], "ts", engine="spark",
                                             as_known_at=akn, time_buckets=buckets,
                                             hot_key_rows=100, broadcast_spine_rows=0)
            assert features_of(got, ["temp"]) == expect, (akn, buckets)
            plan = got.to_spark()._jdf.queryExecution().optimizedPlan().toString()
            assert ("_carry" in plan) == (buckets > 1)  # HOT is split over time slices
        # the broadcast strategy never groups the history by key: nothing to split
        got = fs.get_historical_features(spine, ["weather:temp"], "ts", engine="spark",
                                         as_known_at=akn)
        assert features_of(got, ["temp"]) == expect
        plan = got.to_spark()._jdf.queryExecution().optimizedPlan().toString()
        assert "MapInArrow" in plan and "_carry" not in plan
        duck = fs.get_historical_features(spine, ["weather:temp"], "ts", engine="duckdb",
                                          as_known_at=akn)
        assert features_of(duck, ["temp"]) == expect


def test_broadcast_strategy_only_for_driver_spines_within_the_limit(store, spark):
    feats = ["weather:temp", "planes:seats"]
    pdf = spine_frame()

    def optimized_plan(spine, engine="spark", **opts):
        ts = store.get_historical_features(spine, feats, "ts", engine=engine,
                                           key_map={"origin": "airport"}, **opts)
        return ts.to_spark()._jdf.queryExecution().optimizedPlan().toString()

    def uses_broadcast(spine, **opts):
        return "MapInArrow" in optimized_plan(spine, **opts)

    assert uses_broadcast(pdf)
    # local files: the tasks read them with DuckDB, Spark reads no Parquet
    assert "parquet" not in optimized_plan(pdf).lower()
    # e.g. object storage: Spark reads the files
    assert "parquet" in optimized_plan(pdf, engine=SparkBroadcastEngine(
        spark_reads_files=True)).lower()
    assert uses_broadcast(pdf, broadcast_spine_rows=len(pdf))
    assert not uses_broadcast(pdf, broadcast_spine_rows=len(pdf) - 1)
    assert not uses_broadcast(spark.createDataFrame(pdf))  # a Spark spine is never collected
    with pytest.raises(SparkfsError, match="broadcast_spine_rows must be >= 0, got -1"):
        store.get_historical_features(pdf, feats, "ts", engine="spark", broadcast_spine_rows=-1)


# -- property tests against the reference ---------------------------------------------------
_keys = st.sampled_from(["a", "b", "c"])
_hist_row = st.tuples(_keys, st.integers(0, 40), st.integers(0, 60),
                      st.one_of(st.none(), st.integers(-5, 5)))
_spine_row = st.tuples(st.one_of(st.none(), _keys), st.one_of(st.none(), st.integers(-5, 70)))
_case = st.fixed_dictionaries({
    "hist": st.lists(_hist_row, max_size=25),
    "spine": st.lists(_spine_row, max_size=15),
    "ttl": st.one_of(st.none(), st.integers(1, 30)),
    "as_known_at": st.booleans(),
    "split": st.integers(0, 60),
    "buckets": st.sampled_from([1, 3, 64]),
    # one append per commit time, as sparkfs's ingest writes (the DuckDB engine then packs
    # positions into 64 bits), or two appends holding many commit times each
    "per_commit": st.booleans(),
    "rng": st.randoms(use_true_random=False),  # the order those appends are written in
})


def _run_case(fs_factory, case, engines):
    fs = fs_factory()
    g = FeatureGroup("g", [Entity("e", ["k"])], "et", [Field("x", "double")],
                     ttl=None if case["ttl"] is None else f"{case['ttl']}m")
    fs.apply([g])
    seen, hist = set(), []
    for k, e, c, x in case["hist"]:  # one value per (key, event time, commit): ingest's rule
        if (k, e, c) not in seen:
            seen.add((k, e, c))
            hist.append({"k": k, "et": T(e), "_commit_time": T(c),
                         "x": None if x is None else float(x)})
    if case["per_commit"]:
        commits = sorted({r["_commit_time"] for r in hist})
        case["rng"].shuffle(commits)  # a later Delta version may hold an earlier commit time
        parts = [[r for r in hist if r["_commit_time"] == c] for c in commits]
    else:
        parts = [[r for r in hist if r["_commit_time"] <= T(case["split"])],
                 [r for r in hist if r["_commit_time"] > T(case["split"])]]
    for part in parts:
        if part:
            append_history(fs, g, part)
    if hist:  # the DuckDB engine packs positions exactly when every file holds one commit time
        packed = commit_layout([f.removeprefix("file://") for f in fs.offline.files(g)], "et")
        assert (packed is not None) == all(len({r["_commit_time"] for r in p}) == 1
                                           for p in parts if p)
    spine = pd.DataFrame({"k": pd.Series([k for k, _ in case["spine"]], dtype=object),
                          "t": pd.Series([None if m is None else T(m) for _, m in case["spine"]],
                                         dtype="datetime64[us, UTC]")})
    expect = reference(g, hist, spine.to_dict("records"), "t", ["x"],
                       as_known_at=case["as_known_at"])
    runs = {"duckdb": ("duckdb", {}),
            # the pandas spine is broadcast to tasks that read the files with DuckDB...
            "spark": ("spark", {}),
            # ...or to the partitions Spark read, when the workers cannot open the files
            # (object storage: simulated by reporting the local files as not local)...
            "spark-read": (SparkBroadcastEngine(spark_reads_files=True), {}),
            # ...or, with broadcasting off, shuffled with the history by key
            "spark-shuffle": ("spark", {"time_buckets": case["buckets"], "hot_key_rows": 3,
                                        "broadcast_spine_rows": 0})}
    results = {}
    for name in engines:
        engine, opts = runs[name]
        ts = fs.get_historical_features(spine, ["g:x"], "t", engine=engine,
                                        as_known_at=case["as_known_at"], **opts)
        assert features_of(ts, ["x"]) == expect, name
        results[name] = ts.to_arrow()
    for name in engines[1:]:
        assert results[name].equals(results[engines[0]]), name


def _factory(spark=None):
    return lambda: FeatureStore({"data_dir": tempfile.mkdtemp(prefix="sfs-pit-")}, spark=spark)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_case)
def test_property_duckdb_matches_reference(case):
    _run_case(_factory(), case, ["duckdb"])


@settings(max_examples=10, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=_case)
def test_property_spark_matches_reference_and_duckdb(spark, case):
    _run_case(_factory(spark), case, ["duckdb", "spark", "spark-read", "spark-shuffle"])


# -- on-demand features -----------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_on_demand_features_use_the_transform_code(store, engine):
    from sparkfs import transform

    @transform(output="double", on_demand=True, inputs={"bonus": "double"},
               features={"temp": "weather:temp"})
    def warmer(bonus, temp):
        return temp + bonus

    store.apply([warmer])
    spine = pd.DataFrame({"origin": ["JFK", "JFK", "EWR"], "ts": [T(10), T(40), T(40)],
                          "bonus": [1.0, 2.0, 3.0]})
    only = store.get_historical_features(spine, ["warmer:warmer"], "ts", engine=engine)
    assert only.columns == ["origin", "ts", "bonus", "warmer"]  # temp was only an input
    assert features_of(only, ["warmer"]) == [{"warmer": 2.0}, {"warmer": 4.5}, {"warmer": None}]
    assert only.manifest["on_demand"] == {"warmer": warmer.fingerprint}
    both = store.get_historical_features(spine, ["weather:temp", "warmer:warmer"], "ts",
                                         engine=engine, full_feature_names=True)
    # one naming rule online and offline: {transform}__{output} (sparkfs.request)
    assert both.columns == ["origin", "ts", "bonus", "weather__temp", "warmer__warmer"]
    assert features_of(both, ["weather__temp", "warmer__warmer"]) == [
        {"weather__temp": 1.0, "warmer__warmer": 2.0},
        {"weather__temp": 2.5, "warmer__warmer": 4.5},
        {"weather__temp": None, "warmer__warmer": None}]
    pinned = store.get_historical_features(spine, ["weather@1:temp", "warmer:warmer"], "ts",
                                           engine=engine)  # "weather:temp" inside warmer
    assert pinned.columns == ["origin", "ts", "bonus", "temp", "warmer"]
    if engine == "duckdb":
        made = store.create_training_set("warm", spine, ["warmer:warmer"], "ts", engine=engine)
        assert made.manifest["features"] == ["warmer:warmer"]
        assert store.recreate_training_set("warm").to_arrow().equals(made.to_arrow())
    with pytest.raises(NotFoundError, match="request column\\(s\\) \\['bonus'\\]"):
        store.get_historical_features(spine.drop(columns=["bonus"]), ["warmer:warmer"], "ts",
                                      engine=engine)
