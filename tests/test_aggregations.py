"""Windowed aggregations offline: both engines against a brute-force reference.

The reference (``reference``) reads the semantics straight from the package docstring:
for each spine row and feature it scans every event. Hypothesis draws small random
histories and spines whose times sit on and next to window edges.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sparkfs import Aggregation, Entity, FeatureGroup, Field
from sparkfs.aggregations import duckdb as agg_duckdb
from sparkfs.aggregations import spark as agg_spark
from sparkfs.aggregations.plan import DUCKDB, AggregationPlan, tile_size
from sparkfs.aggregations.sliding import sliding_sql
from sparkfs.errors import DefinitionError, NotFoundError
from sparkfs.offline.tables import history_schema

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
US = dt.timedelta(microseconds=1)
FUNCTIONS = ("count", "sum", "mean", "min", "max", "stddev", "last")

user = Entity("user", join_keys=["user_id"])
EVENTS = FeatureGroup(
    name="events", entities=[user], event_time="ts",
    schema=[Field("amount", "double"), Field("qty", "int"), Field("ok", "boolean"),
            Field("eid", "long")],
    aggregations=[Aggregation("amount", f, ["1h", "1d"]) for f in FUNCTIONS] + [
        Aggregation("qty", "sum", ["90m"], filter="ok", name="qty_ok_sum"),
        Aggregation("qty", "count", ["90m"], filter="ok", name="qty_ok_count"),
        Aggregation("qty", "last", ["90m", "1d"]),
        Aggregation("qty", "min", ["90m"]),
        Aggregation("qty", "stddev", ["90m"]),
        Aggregation("ok", "mean", ["1h"]),
    ])
WINDOWS = {"1h": dt.timedelta(hours=1), "90m": dt.timedelta(minutes=90), "1d": dt.timedelta(days=1)}


# -- reference ------------------------------------------------------------------------------
def reference(group, events: list[dict], spine: list[dict], as_known_at: bool) -> dict:
    """{spine_id: {feature: value}} by scanning every event for every spine row."""
    out = {}
    for row in spine:
        t = row["t"]
        vals = {}
        for a in group.aggregations:
            for label, w in a.window_durations.items():
                kept = [e for e in events
                        if e["user_id"] == row["user_id"] and t - w < e["ts"] <= t
                        and (not as_known_at or e["_commit_time"] <= t)
                        and e[a.column] is not None
                        and (a.filter is None or e[a.filter] is True)]
                vals[a.feature_name(label)] = _apply(a.function, kept, a.column)
        out[row["_spine_id"]] = vals
    return out


def _apply(function: str, kept: list[dict], column: str):
    xs = [e[column] for e in kept]
    if function == "count":
        return len(xs)
    if not xs:
        return None
    if function == "sum":
        return sum(xs)
    if function == "mean":
        return sum(xs) / len(xs)
    if function == "min":
        return min(xs)
    if function == "max":
        return max(xs)
    if function == "stddev":
        return statistics.stdev([float(x) for x in xs]) if len(xs) > 1 else None
    if function == "last":
        return max(kept, key=lambda e: (e["ts"], e["_commit_time"], e[column]))[column]
    raise AssertionError(function)


def assert_matches(expected: dict, got: dict, label: str) -> None:
    assert set(got) == set(expected), f"{label}: spine ids differ"
    for sid, vals in expected.items():
        for name, want in vals.items():
            have = got[sid][name]
            where = f"{label}: spine row {sid}, feature {name}"
            if want is None or have is None:
                assert have == want, f"{where}: expected {want!r}, got {have!r}"
            elif isinstance(want, float) or isinstance(have, float):
                assert math.isclose(have, want, rel_tol=1e-9, abs_tol=1e-9), \
                    f"{where}: expected {want!r}, got {have!r}"
            else:
                assert have == want and type(have) is type(want), \
                    f"{where}: expected {want!r}, got {have!r}"


# -- data -------------------------------------------------------------------------------------
def history_table(group, events: list[dict]) -> pa.Table:
    rows = [dict(e, _run_id="r") for e in events]
    return pa.Table.from_pylist(rows, schema=history_schema(group))


def spine_table(spine: list[dict]) -> pa.Table:
    return pa.table({
        "_spine_id": pa.array([r["_spine_id"] for r in spine], pa.int64()),
        "uid": pa.array([r["user_id"] for r in spine], pa.string()),
        "t": pa.array([r["t"] for r in spine], pa.timestamp("us", tz="UTC")),
    })


def by_id(table: pa.Table) -> dict:
    return {r.pop("_spine_id"): r for r in table.to_pylist()}


@st.composite
def scenarios(draw, max_events=25):
    """Events of two users over ~2 days and spine times on, before and after edges."""
    n = draw(st.integers(0, max_events))
    events = []
    for i in range(n):
        ts = T0 + dt.timedelta(minutes=draw(st.integers(0, 2 * 1440)),
                               seconds=draw(st.sampled_from([0, 0, 30])))
        events.append({
            "user_id": draw(st.sampled_from(["a", "b"])),
            "ts": ts,
            # quarters are exact in binary: sums do not depend on the order of addition
            "amount": draw(st.one_of(st.none(), st.integers(-4000, 4000).map(lambda x: x / 4))),
            "qty": draw(st.one_of(st.none(), st.integers(-50, 50))),
            "ok": draw(st.one_of(st.none(), st.booleans())),
            "eid": i,
            "_commit_time": ts + dt.timedelta(minutes=draw(st.integers(-10, 1500))),
        })
    spine = []
    deltas = (dt.timedelta(0), US, -US)
    shifts = [*deltas, *(w + s for w in WINDOWS.values() for s in deltas)]
    for j in range(draw(st.integers(1, 12))):
        if events and draw(st.booleans()):
            e = draw(st.sampled_from(events))
            t = e[draw(st.sampled_from(["ts", "_commit_time"]))] + draw(st.sampled_from(shifts))
            uid = e["user_id"] if draw(st.integers(0, 5)) else "c"
        else:
            t = T0 + dt.timedelta(minutes=draw(st.integers(-60, 3 * 1440)))
            uid = draw(st.sampled_from(["a", "b", "c"]))
        spine.append({"_spine_id": j, "user_id": uid, "t": t})
    return events, spine


# -- DuckDB ---------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.booleans())
def test_duckdb_feature_subset_without_stddev(scenario, as_known_at):
    """A request without stddev skips the shift pass over the history, and each
    requested feature still matches the brute force."""
    events, spine = scenario
    wanted = ["amount_sum_1d", "amount_count_1h", "qty_last_90m", "qty_ok_count_90m", "ok_mean_1h"]
    sql = AggregationPlan.build(EVENTS, wanted).sql(DUCKDB, as_known_at)
    assert "shift" not in sql
    got = agg_duckdb.aggregate_history(history_table(EVENTS, events), EVENTS, wanted,
                                       spine_table(spine), ["uid"], "t", as_known_at)
    assert got.column_names == ["_spine_id"] + wanted
    expected = {sid: {f: v[f] for f in wanted}
                for sid, v in reference(EVENTS, events, spine, as_known_at).items()}
    assert_matches(expected, by_id(got), "duckdb subset")


def equal_values_case() -> tuple[list[dict], list[dict]]:
    """Three equal amounts in the window, other values outside it: the standard deviation
    is exactly 0 (sums of squares around the history's mean, 0.6 here, left 1.05e-08)."""
    def event(i: int, minute: int, amount: float | None) -> dict:
        t = T0 + dt.timedelta(minutes=minute)
        return {"user_id": "a", "ts": t, "amount": amount, "qty": None, "ok": None, "eid": i,
                "_commit_time": t}

    events = [event(0, 1, 0.5), event(1, 1, 0.5), event(2, 0, None), event(3, 0, 0.0),
              event(4, 0, -2.0), event(5, 1, 0.5)]
    return events, [{"_spine_id": 0, "user_id": "a", "t": T0 + dt.timedelta(hours=1)}]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.booleans())
@example(equal_values_case(), False)
@example(equal_values_case(), True)
def test_duckdb_matches_brute_force(scenario, as_known_at):
    events, spine = scenario
    got = agg_duckdb.aggregate_history(history_table(EVENTS, events), EVENTS, None,
                                       spine_table(spine), ["uid"], "t", as_known_at)
    assert got.num_rows == len(spine)
    assert_matches(reference(EVENTS, events, spine, as_known_at), by_id(got), "duckdb")


# -- the sliding plan (Spark's plan without as_known_at), run on DuckDB for many examples ---
def run_sliding_on_duckdb(events: list[dict], spine: pa.Table, features=None) -> pa.Table:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("h", history_table(EVENTS, events))
    con.register("s", spine)
    query = sliding_sql(AggregationPlan.build(EVENTS, features), DUCKDB, "h", "s", ["uid"], "t")
    try:
        return con.sql(query).to_arrow_table()
    finally:
        con.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
@example(equal_values_case())
def test_sliding_plan_matches_brute_force(scenario):
    events, spine = scenario
    got = run_sliding_on_duckdb(events, spine_table(spine))
    assert got.num_rows == len(spine)
    assert_matches(reference(EVENTS, events, spine, False), by_id(got), "sliding")


def null_key_case() -> tuple[list[dict], pa.Table, dict]:
    """Events with a null key or a null event time never count; a spine row with a null
    key or time gets count 0 and nulls."""
    events = [_event("a", 10, 1.0, 0), _event(None, 10, 5.0, 1), _event("a", 20, 2.0, 2)]
    events.append(dict(_event("a", 30, 7.0, 3), ts=None))
    spine = pa.table({"_spine_id": pa.array([0, 1, 2], pa.int64()),
                      "uid": pa.array(["a", None, "a"], pa.string()),
                      "t": pa.array([T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(minutes=30),
                                     None], pa.timestamp("us", tz="UTC"))})
    want = {0: {"amount_sum_1h": 3.0, "amount_count_1h": 2},
            1: {"amount_sum_1h": None, "amount_count_1h": 0},
            2: {"amount_sum_1h": None, "amount_count_1h": 0}}
    return events, spine, want


def test_sliding_plan_ignores_null_keys_and_times():
    events, spine, want = null_key_case()
    assert by_id(run_sliding_on_duckdb(events, spine, list(want[0]))) == want


# -- Spark ------------------------------------------------------------------------------------------
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(scenarios(max_events=40))
def test_spark_matches_brute_force(spark, scenario):
    events, spine = scenario
    hist = spark.createDataFrame(history_table(EVENTS, events))
    sp = spark.createDataFrame(spine_table(spine))
    for as_known_at in (False, True):
        got = agg_spark.aggregate_history(hist, EVENTS, None, sp, {"user_id": "uid"}, "t",
                                          as_known_at)
        table = pa.Table.from_pylist([r.asDict() for r in got.collect()])
        assert table.num_rows == len(spine)
        got_rows = {r["_spine_id"]: {k: _utc(v) for k, v in r.items() if k != "_spine_id"}
                    for r in table.to_pylist()}
        assert_matches(reference(EVENTS, events, spine, as_known_at), got_rows,
                       f"spark as_known_at={as_known_at}")


def test_spark_null_keys_and_times_and_one_shuffle_for_all_windows(spark):
    events, spine, want = null_key_case()
    hist = spark.createDataFrame(history_table(EVENTS, events))
    sp = spark.createDataFrame(spine)
    for as_known_at in (False, True):
        got = agg_spark.aggregate_history(hist, EVENTS, list(want[0]), sp, ["uid"], "t",
                                          as_known_at)
        assert {r["_spine_id"]: {k: r[k] for k in want[0]} for r in got.collect()} == want
    # without as_known_at every window runs over one shuffle of the rows by key; the
    # only other exchange brings each spine row's probes together
    got = agg_spark.aggregate_history(hist, EVENTS, None, sp, ["uid"], "t")
    plan = got._jdf.queryExecution().executedPlan().toString()
    assert plan.count("Exchange hashpartitioning") == 2, plan


def _utc(v):
    if isinstance(v, dt.datetime) and v.tzinfo is None:
        return v.replace(tzinfo=dt.UTC)
    return v


# -- edges, empty windows, late events: explicit cases ---------------------------------------------
def _event(uid, minutes, amount, eid, commit_minutes=None, qty=1, ok=True):
    ts = T0 + dt.timedelta(minutes=minutes)
    ct = T0 + dt.timedelta(minutes=minutes if commit_minutes is None else commit_minutes)
    return {"user_id": uid, "ts": ts, "amount": amount, "qty": qty, "ok": ok, "eid": eid,
            "_commit_time": ct}


def test_window_edges_exact_at_t_minus_window_and_at_t():
    events = [_event("a", 0, 1.0, 0), _event("a", 60, 2.0, 1)]
    spine = [{"_spine_id": 0, "user_id": "a", "t": T0 + dt.timedelta(minutes=60)},
             {"_spine_id": 1, "user_id": "a", "t": T0 + dt.timedelta(minutes=60) - US},
             {"_spine_id": 2, "user_id": "a", "t": T0 + dt.timedelta(minutes=120)}]
    got = by_id(agg_duckdb.aggregate_history(
        history_table(EVENTS, events), EVENTS, ["amount_sum_1h", "amount_count_1h"],
        spine_table(spine), ["uid"], "t"))
    # at t=60m: the event at 0 is exactly t - 1h (out); the one at 60m is exactly t (in)
    assert got[0] == {"amount_sum_1h": 2.0, "amount_count_1h": 1}
    assert got[1] == {"amount_sum_1h": 1.0, "amount_count_1h": 1}
    assert got[2] == {"amount_sum_1h": None, "amount_count_1h": 0}  # emptied window


def test_late_event_counts_after_it_is_committed():
    # An event at 10:00 committed at 15:00 (late): seen by a spine row at 12:00 in the
    # default mode, but only from 15:00 on with as_known_at.
    events = [_event("a", 600, 5.0, 0, commit_minutes=900), _event("a", 590, 1.0, 1)]
    spine = [{"_spine_id": i, "user_id": "a", "t": T0 + dt.timedelta(minutes=m)}
             for i, m in enumerate([720, 899, 900])]
    hist, sp = history_table(EVENTS, events), spine_table(spine)
    plain = by_id(agg_duckdb.aggregate_history(hist, EVENTS, ["amount_sum_1d"], sp, ["uid"], "t"))
    known = by_id(agg_duckdb.aggregate_history(hist, EVENTS, ["amount_sum_1d"], sp, ["uid"], "t",
                                               as_known_at=True))
    assert [plain[i]["amount_sum_1d"] for i in range(3)] == [6.0, 6.0, 6.0]
    assert [known[i]["amount_sum_1d"] for i in range(3)] == [1.0, 1.0, 6.0]


def test_tile_size_cuts_windows_into_equal_whole_tiles():
    assert tile_size(dt.timedelta(days=1)) == (3_600_000_000, 24)
    assert tile_size(dt.timedelta(minutes=90)) == (225_000_000, 24)
    assert tile_size(dt.timedelta(milliseconds=7)) == (350, 20)


def test_unknown_feature_and_missing_columns_are_refused():
    with pytest.raises(NotFoundError, match="has no aggregate feature"):
        AggregationPlan.build(EVENTS, ["amount_sum_7d"])
    spine = spine_table([{"_spine_id": 0, "user_id": "a", "t": T0}])
    with pytest.raises(NotFoundError, match=r"spine has no column\(s\) \['user_id'\]"):
        agg_duckdb.aggregate_history(history_table(EVENTS, []), EVENTS, None, spine, None, "t")
    with pytest.raises(NotFoundError, match="lacks column"):
        agg_duckdb.aggregate_history(pa.table({"user_id": ["a"]}), EVENTS, None, spine,
                                     ["uid"], "t")
    plain = FeatureGroup(name="plain", entities=[user], event_time="ts",
                         schema=[Field("amount", "double")])
    with pytest.raises(DefinitionError, match="declares no aggregations"):
        AggregationPlan.build(plain)
