"""Windowed aggregations online: materialize real Delta history into the embedded SQLite
store, read through the serving path at an injected clock, compare with brute force."""

from __future__ import annotations

import datetime as dt
import tempfile

from deltalake import write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_aggregations import (
    EVENTS,
    T0,
    US,
    WINDOWS,
    _event,
    assert_matches,
    by_id,
    history_table,
    reference,
    scenarios,
    spine_table,
)

from sparkfs import FeatureStore
from sparkfs.aggregations import duckdb as agg_duckdb
from sparkfs.aggregations.online import state_group
from sparkfs.serving.online import get_online_features

FEATURES = [f"events:{f.name}" for f in EVENTS.features]


def _store(tmp: str) -> FeatureStore:
    fs = FeatureStore({"project": "t", "data_dir": tmp})
    fs.apply([EVENTS])
    return fs


def _append(fs: FeatureStore, events: list[dict]) -> None:
    write_deltalake(fs.offline.table_uri(EVENTS), history_table(EVENTS, events), mode="append")


def _read(fs: FeatureStore, users: list[str], now: dt.datetime) -> dict:
    resp = get_online_features(fs.catalog, fs.online, FEATURES, [{"user_id": u} for u in users], now=now)
    data = resp.to_dict()
    return {u: {f.name: data[f.name][i] for f in EVENTS.features} for i, u in enumerate(users)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sampled_from([dt.timedelta(0), US, -US, dt.timedelta(minutes=30)]
                                    + list(WINDOWS.values())
                                    + [w + US for w in WINDOWS.values()]
                                    + [dt.timedelta(days=3)]),
       st.integers(1, 3))
def test_online_matches_brute_force_at_read_time(scenario, after, batches):
    events, _ = scenario
    with tempfile.TemporaryDirectory() as tmp, _store(tmp) as fs:
        # several commits, materialized once: incremental reads of the new files
        for b in range(batches):
            part = events[b::batches]
            if part:
                _append(fs, part)
        fs.materialize("events")
        users = ["a", "b", "c"]
        latest = max((e["ts"] for e in events), default=T0)
        now = max(latest + after, latest)  # reads at or after the latest event
        spine = [{"_spine_id": u, "user_id": u, "t": now} for u in users]
        expected = reference(EVENTS, events, spine, as_known_at=False)
        got = _read(fs, users, now)
        for u in users:
            if not any(e["user_id"] == u for e in events):  # never seen online: missing
                assert all(v is None for v in got[u].values())
                del expected[u], got[u]
        assert_matches(expected, got, f"online at {now}")


def _ev(minutes, amount, eid):
    return {"user_id": "a", "ts": T0 + dt.timedelta(minutes=minutes), "amount": amount,
            "qty": 1, "ok": True, "eid": eid, "_commit_time": T0}


def test_window_that_emptied_since_last_event_reads_empty_without_materializing(tmp_path):
    with _store(str(tmp_path)) as fs:
        _append(fs, [_ev(0, 1.0, 0), _ev(30, 3.0, 1)])
        fs.materialize("events")
        at = lambda m: _read(fs, ["a"], T0 + dt.timedelta(minutes=m))["a"]  # noqa: E731
        assert (at(30)["amount_count_1h"], at(30)["amount_mean_1h"]) == (2, 2.0)
        assert (at(60)["amount_count_1h"], at(60)["amount_mean_1h"]) == (1, 3.0)  # 0 is out
        assert (at(90)["amount_count_1h"], at(90)["amount_mean_1h"]) == (0, None)
        assert at(90)["amount_count_1d"] == 2
        assert at(30 + 1440)["amount_count_1d"] == 0
        status = get_online_features(fs.catalog, fs.online, ["events:amount_count_1h"], [{"user_id": "a"}],
                                     now=T0 + dt.timedelta(days=5)).to_dict()
        assert status["amount_count_1h"] == [0]


def test_late_event_counts_after_the_next_materialization(tmp_path):
    with _store(str(tmp_path)) as fs:
        _append(fs, [_ev(600, 1.0, 0)])
        [first] = fs.materialize("events")
        assert first.keys_written == 1
        now = T0 + dt.timedelta(minutes=610)
        assert _read(fs, ["a"], now)["a"]["amount_sum_1d"] == 1.0
        _append(fs, [_ev(100, 5.0, 1)])  # late: older than what was aggregated
        assert _read(fs, ["a"], now)["a"]["amount_sum_1d"] == 1.0  # not materialized yet
        [second] = fs.materialize("events")
        assert (second.from_delta_version, second.keys_written) == (first.to_delta_version, 1)
        assert _read(fs, ["a"], now)["a"]["amount_sum_1d"] == 6.0
        assert _read(fs, ["a"], now)["a"]["amount_sum_1h"] == 1.0
        [again] = fs.materialize("events")  # nothing new: no key rewritten
        assert again.keys_written == 0 and again.rows_read == 0


def test_state_keeps_only_the_longest_window_before_the_latest_event(tmp_path):
    with _store(str(tmp_path)) as fs:
        _append(fs, [_ev(0, 1.0, 0), _ev(1440, 2.0, 1), _ev(3000, 4.0, 2)])
        fs.materialize("events")
        row = fs.online.read(state_group(EVENTS), [("a",)], ["state"])[0]
        import json

        state = json.loads(row.values[0])
        assert len(state["t"]) == 1  # 3000m - 1d = 1560m: the events at 0 and 1440m are out
        assert row.event_time_us == (T0 + dt.timedelta(minutes=3000) - dt.datetime(
            1970, 1, 1, tzinfo=dt.UTC)) // US


def test_nan_and_infinities_online_as_offline(tmp_path):
    """NaN and ±inf are values, as in the offline engines: a NaN makes sum, mean, stddev
    and max NaN, min skips it unless it is all there is, inf + -inf is NaN (math.fsum used
    to raise ValueError: the read failed), and ``last`` breaks ties with NaN above all."""
    nan, inf = float("nan"), float("inf")
    cases = {"a": [1.0, nan, 3.0], "b": [inf, 2.0], "c": [nan], "d": [inf, -inf], "e": [nan, inf]}
    events = [_event(u, 10 + i, v, 10 * n + i) for n, (u, vals) in enumerate(cases.items())
              for i, v in enumerate(vals)]
    events += [_event("f", 10, 5.0, 90), _event("f", 10, nan, 91)]  # a tie for last
    users = [*cases, "f"]
    now = T0 + dt.timedelta(minutes=30)
    names = [f"amount_{f}_1h" for f in ("sum", "mean", "min", "max", "stddev", "last", "count")]
    with _store(str(tmp_path)) as fs:
        _append(fs, events)
        fs.materialize("events")
        got = _read(fs, users, now)
    spine = [{"_spine_id": i, "user_id": u, "t": now} for i, u in enumerate(users)]
    offline = by_id(agg_duckdb.aggregate_history(history_table(EVENTS, events), EVENTS, None,
                                                 spine_table(spine), ["uid"], "t", False))
    want = {"a": [nan, nan, 1.0, nan, nan, 3.0, 3], "b": [inf, inf, 2.0, inf, nan, 2.0, 2],
            "c": [nan, nan, nan, nan, None, nan, 1], "d": [nan, nan, -inf, inf, nan, -inf, 2],
            "e": [nan, nan, inf, nan, nan, inf, 2], "f": [nan, nan, 5.0, nan, nan, nan, 2]}
    for i, u in enumerate(users):
        expected = [repr(v) for v in want[u]]
        assert [repr(got[u][n]) for n in names] == expected, u
        assert [repr(offline[i][n]) for n in names] == expected, u
