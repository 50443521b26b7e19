"""Crafted column names never become SQL: spine keys (also through ``key_map``), the
timestamp column and pass-through columns, on DuckDB and on both Spark strategies, for
as-of and aggregation groups. Valid-but-odd names work and give the same numbers as plain
names; names that try to close the quoting (and read a local file) are just names."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from sparkfs import Aggregation, Entity, FeatureGroup, Field, SparkfsError
from sparkfs.sql import quote_ident, sql_literal

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)

CRAFTED = [
    'a"b', "a`b", "x; select 1", "it's", "has space", "ünï ç😀", "new\nline", "a{b}.c",
    "a{spine}", "x\" FROM read_text('/etc/passwd') --",
    "x` FROM (SELECT 1) --", "\"; SELECT * FROM read_text('/etc/hostname'); --",
]
#: (key column, timestamp column) pairs; every other crafted name rides along as a label
PAIRS = [('a"b', "a`b"), ("x\" FROM read_text('/etc/passwd') --", "x` FROM (SELECT 1) --"),
         ("new\nline", "ünï ç😀"), ("a{spine}", "it's")]

user = Entity("user", join_keys=["user_id"])
PROF = FeatureGroup("prof", [user], "ts", [Field("score", "double")], ttl="3h")
EV = FeatureGroup("ev", [user], "ts", [Field("amount", "double")],
                  aggregations=[Aggregation("amount", "sum", ["2h"]),
                                Aggregation("amount", "count", ["2h"])])
FEATURES = ["prof:score", "ev:amount_sum_2h", "ev:amount_count_2h"]


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_quote_ident_round_trips_every_crafted_name(dialect, spark):
    for name in CRAFTED:
        sql = f"SELECT 1 AS {quote_ident(name, dialect)}, {sql_literal(name, dialect)} AS v"
        if dialect == "duckdb":
            rel = duckdb.sql(sql)
            assert rel.columns == [name, "v"] and rel.fetchall() == [(1, name)]
        else:
            df = spark.sql(sql)
            assert df.columns == [name, "v"] and [tuple(r) for r in df.collect()] == [(1, name)]


def test_unusable_names_are_refused_clearly():
    with pytest.raises(SparkfsError, match="is empty"):
        quote_ident("")
    with pytest.raises(SparkfsError, match="NUL"):
        quote_ident("a\x00b", "spark")
    with pytest.raises(SparkfsError, match="must be a string"):
        quote_ident(3)
    with pytest.raises(SparkfsError, match="unknown SQL dialect"):
        quote_ident("a", "mysql")


@pytest.fixture
def store(fs):
    fs.apply([user, PROF, EV])
    rows = [("u1", T0 + i * H, float(i), float(10 * i)) for i in range(6)]
    rows += [("u2", T0 + i * H, -float(i), 1.0) for i in range(0, 6, 2)]
    fs.ingest("prof", pa.table({"user_id": [r[0] for r in rows], "ts": [r[1] for r in rows],
                                "score": [r[2] for r in rows]}), run_id="p", materialize=False)
    fs.ingest("ev", pa.table({"user_id": [r[0] for r in rows], "ts": [r[1] for r in rows],
                              "amount": [r[3] for r in rows]}), run_id="e", materialize=False)
    return fs


def spine(key: str, ts: str) -> pa.Table:
    users = ["u1", "u2", "u1", None, "u3", "u2", "u1"]
    times = [T0 + H * x for x in (0.5, 2, 5, 3, 4, 4.5, 9)]
    cols = {key: users, ts: times}
    for i, name in enumerate(n for n in CRAFTED if n not in (key, ts)):
        cols[name] = [f"{i}-{j}" for j in range(len(users))]
    return pa.table(cols)


def run(fs, tbl, key, ts, mode, as_known_at=False):
    opts = {"as_known_at": as_known_at, "key_map": {"user_id": key}}
    if mode == "duckdb":
        return fs.get_historical_features(tbl, FEATURES, ts, engine="duckdb", **opts).to_arrow()
    if mode == "spark-spine":  # a Spark DataFrame spine: the shuffle strategy
        sdf = fs.spark.createDataFrame(tbl)
        return fs.get_historical_features(sdf, FEATURES, ts, engine="spark", **opts).to_arrow()
    rows = 0 if mode == "spark-shuffle" else None
    return fs.get_historical_features(tbl, FEATURES, ts, engine="spark",
                                      broadcast_spine_rows=rows, **opts).to_arrow()


def expected(fs, as_known_at=False):
    plain = spine("uid", "t")
    out = fs.get_historical_features(plain, FEATURES, "t", engine="duckdb", key_map={
        "user_id": "uid"}, as_known_at=as_known_at).to_arrow()
    if not as_known_at:  # the data is there (as known at 2024, nothing was committed yet)
        assert out.column("score").to_pylist()[:3] == [0.0, -2.0, 5.0]
    return {f: out.column(f).to_pylist() for f in ("score", "amount_sum_2h", "amount_count_2h")}


@pytest.mark.parametrize("key,ts", PAIRS)
def test_crafted_spine_names_on_duckdb(store, key, ts):
    want = expected(store)
    tbl = spine(key, ts)
    for as_known_at in (False, True):
        out = run(store, tbl, key, ts, "duckdb", as_known_at)
        assert out.column_names == tbl.column_names + list(want)
        assert {f: out.column(f).to_pylist() for f in want} == expected(store, as_known_at)
        assert out.select(tbl.column_names).equals(tbl.cast(out.select(tbl.column_names).schema))
    assert want["amount_count_2h"] == [1, 1, 2, 0, 0, 1, 0]


@pytest.mark.parametrize("mode", ["spark-broadcast", "spark-shuffle", "spark-spine"])
@pytest.mark.parametrize("key,ts", PAIRS[:2])
def test_crafted_spine_names_on_spark(store, key, ts, mode):
    want = expected(store)
    tbl = spine(key, ts)
    out = run(store, tbl, key, ts, mode)
    assert out.column_names == tbl.column_names + list(want)
    assert {f: out.column(f).to_pylist() for f in want} == want
    assert out.column(key).to_pylist() == tbl.column(key).to_pylist()


def test_crafted_names_on_spark_as_known_at(store):
    key, ts = PAIRS[0]
    want = expected(store, as_known_at=True)
    out = run(store, spine(key, ts), key, ts, "spark-broadcast", as_known_at=True)
    assert {f: out.column(f).to_pylist() for f in want} == want


def test_stored_training_set_with_crafted_names(store):
    key, ts = PAIRS[1]
    tbl = spine(key, ts)
    for engine in ("duckdb", "spark"):
        made = store.create_training_set(f"odd_{engine}", tbl, FEATURES, ts, engine=engine,
                                         key_map={"user_id": key})
        again = store.recreate_training_set(f"odd_{engine}")
        assert again.to_arrow().equals(made.to_arrow())
        assert again.to_arrow().column("amount_sum_2h").to_pylist() == \
            expected(store)["amount_sum_2h"]
