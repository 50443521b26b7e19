"""The skew report's vectorised pieces against per-row references: the sparse comparison
(``_compare_rows``) on random values across chunk boundaries, the log scan (``_LogScan``:
window, online rows without errors, log order, dictionary-encoded columns, the second
read of the same rows) on a real Delta table, and the spine's JSON columns over
dictionary chunks with different dictionaries and nulls."""

from __future__ import annotations

import datetime as dt
import json
import math
import random

import numpy as np
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from sparkfs.monitoring.skew import REL_TOL, _compare_rows, _json_columns, _LogScan, read_requests


def _reference(s, o) -> tuple[int, float | None]:
    """One row's state and |difference| by the rules as written (module docstring)."""
    s_null, o_null = s is None, o is None
    if s_null and o_null:
        return 0, None
    if s_null:
        return 1, None
    if o_null:
        return 2, None
    if isinstance(s, float) and isinstance(o, float):
        if math.isnan(s) or math.isnan(o):
            return (0, None) if math.isnan(s) and math.isnan(o) else (3, math.nan)
        if s == o:
            return 0, None
        d = abs(s - o)
        if math.isfinite(d) and d <= REL_TOL * max(1.0, abs(s), abs(o)):
            return 0, None
        return 3, d
    return (0, None) if s == o else (3, None)


@pytest.mark.parametrize("typ,values", [
    (pa.float64(), [None, math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, 1.0 + 1e-12, 2.5,
                    1e308, -1e308]),
    (pa.string(), [None, "", "a", "b"]),
    (pa.bool_(), [None, True, False]),
    (pa.list_(pa.float64()), [None, [], [1.0], [2.0, None]]),
])
def test_sparse_comparison_equals_the_per_row_rules(typ, values):
    rng = random.Random(7)
    for _ in range(50):
        n = rng.randint(0, 40)
        served = [rng.choice(values) for _ in range(n)]
        offline = [rng.choice(values) for _ in range(n)]
        cut = rng.randint(0, n)  # chunks that do not line up between the two sides
        s = pa.chunked_array([pa.array(served[:cut], typ), pa.array(served[cut:], typ)])
        o = pa.chunked_array([pa.array(offline, typ)])
        rows, state, diff = _compare_rows(s, o)
        dense = np.zeros(n, dtype=np.int8)
        dense[rows] = state
        want = [_reference(a, b) for a, b in zip(served, offline)]
        assert dense.tolist() == [w[0] for w in want], (served, offline)
        assert list(rows) == sorted(rows)
        for i, st, d in zip(rows, state, diff if diff is not None else [None] * len(rows)):
            if st == 3 and typ == pa.float64():
                w = want[i][1]
                assert (math.isnan(d) and math.isnan(w)) or d == w


T0 = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def _log_rows(times: list[int], **extra) -> pa.Table:
    n = len(times)
    cols = {"request_id": [f"r{i % 3}" for i in range(n)], "row": list(range(n)),
            "time": [T0 + dt.timedelta(seconds=t) for t in times],
            "scoring_path": ["online"] * n, "error": [None] * n,
            "entity": [json.dumps({"k": f"K{i % 4}"}) for i in range(n)],
            "request_data": [None] * n, "x": [float(i) for i in range(n)],
            "x__status": ["ok"] * n}
    cols.update(extra)
    return pa.table(cols, schema=pa.schema([
        ("request_id", pa.string()), ("row", pa.int64()), ("time", pa.timestamp("us", "UTC")),
        ("scoring_path", pa.string()), ("error", pa.string()), ("entity", pa.string()),
        ("request_data", pa.string()), ("x", pa.float64()), ("x__status", pa.string())]))


def test_log_scan_window_online_rows_order_and_second_read(tmp_path):
    path = str(tmp_path / "log")
    write_deltalake(path, _log_rows([5, 1, 3, 9]))  # out of order within one file
    write_deltalake(path, _log_rows([2, 4, 7], scoring_path=["online", "batch", "online"],
                                    error=[None, None, "model failed"]), mode="append")
    write_deltalake(path, _log_rows([6, 8]), mode="append")
    want = read_requests(path, T0 + dt.timedelta(seconds=2), T0 + dt.timedelta(seconds=9), {})
    scan = _LogScan(path, T0 + dt.timedelta(seconds=2), T0 + dt.timedelta(seconds=9), {},
                    columns=["entity", "x"], dictionary=("entity", "x__status"))
    got = scan.table
    secs = [int((t - T0).total_seconds()) for t in got.column("time").to_pylist()]
    assert secs == [2, 3, 5, 6, 8]  # window [2, 9), no batch row, no failed row, in order
    assert got.column("x").to_pylist() == want.column("x").to_pylist()
    assert pa.types.is_dictionary(got.schema.field("entity").type)
    assert got.column("entity").to_pylist() == want.column("entity").to_pylist()
    more = scan.columns(["x", "x__status"])  # the same rows, in the same order
    assert more.column("x").to_pylist() == got.column("x").to_pylist()
    assert more.column("x__status").to_pylist() == ["ok"] * 5
    # in order already: no sort; the plain reader returns plain strings
    write_deltalake(str(tmp_path / "sorted"), _log_rows([1, 2, 3]))
    ordered = _LogScan(str(tmp_path / "sorted"), None, None, {})
    assert ordered.order is None and ordered.keep is None
    assert ordered.table.schema.field("entity").type == pa.string()


def test_json_columns_over_dictionary_chunks_with_nulls():
    chunks = [pa.array(['{"k": "a"}', None]).dictionary_encode(),
              pa.array([None, '{"k": "c", "n": 2.5}', '{"k": "a"}', ""]).dictionary_encode(),
              pa.array([None, None], pa.string()).dictionary_encode()]
    got = _json_columns(pa.chunked_array(chunks))
    plain = _json_columns(pa.chunked_array([c.cast(pa.string()) for c in chunks]))
    assert {k: v.to_pylist() for k, v in got.items()} == \
        {k: v.to_pylist() for k, v in plain.items()} == {
            "k": ["a", None, None, "c", "a", None, None, None],
            "n": [None, None, None, 2.5, None, None, None, None]}
