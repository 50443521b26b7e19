"""The skew report's per-row rules (``_compare``, run by both engines over the join
output): null vs NaN, two NaNs, two nulls, infinities, the relative tolerance, integers
beyond 2**53 and strings, each with the state the report must give."""

from __future__ import annotations

import math

import pyarrow as pa

from sparkfs.monitoring.skew import _compare

INF = math.inf
MATCH, MISSING_ONLINE, MISSING_OFFLINE, MISMATCH = 0, 1, 2, 3


def _states(served: list, offline: list, typ: pa.DataType) -> tuple[list, object]:
    state, diff = _compare(pa.chunked_array([pa.array(served, typ)]),
                           pa.chunked_array([pa.array(offline, typ)]))
    return state.tolist(), diff


def test_floats_null_nan_infinities_and_tolerance():
    cases = [  # served, offline, state
        (1.0, 1.0, MATCH), (None, None, MATCH), (math.nan, math.nan, MATCH),
        (None, math.nan, MISSING_ONLINE), (math.nan, None, MISSING_OFFLINE),
        (2.0, 2.5, MISMATCH), (3.0, 3.0 + 1e-12, MATCH), (INF, INF, MATCH),
        (INF, 5.0, MISMATCH), (-INF, INF, MISMATCH), (1e308, -1e308, MISMATCH),
        (0.0, -0.0, MATCH), (math.nan, 1.0, MISMATCH)]
    states, diff = _states([c[0] for c in cases], [c[1] for c in cases], pa.float64())
    assert states == [c[2] for c in cases]
    assert diff[5] == 0.5 and math.isinf(diff[8])  # |served - offline| of mismatches


def test_integers_beyond_float_precision_and_strings():
    assert _states([1, None, 3, None, 2**53 + 1, 7], [1, 2, None, None, 2**53 + 1, 8],
                   pa.int64())[0] == [MATCH, MISSING_ONLINE, MISSING_OFFLINE, MATCH, MATCH,
                                      MISMATCH]
    states, diff = _states(["a", None, "b", None, "c"], ["a", "x", None, None, "d"],
                           pa.string())
    assert states == [MATCH, MISSING_ONLINE, MISSING_OFFLINE, MATCH, MISMATCH]
    assert diff is None
