"""Evaluation-log rows built column-wise (``JsonColumn``, ``json_values``, the writer's one
append per gathering) hold exactly what the row-at-a-time builder wrote, missing values
included; the writer's reused table handle loses no row (real delta-rs tables, no Spark)."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from sparkfs.inference.deployments import Deployment
from sparkfs.inference.evaluation import (
    EvaluationLogger,
    columns_table,
    create_log_table,
    json_objects,
    json_values,
    merge_columns,
    read_log,
    to_table,
)
from sparkfs.inference.online import (
    PredictionResult,
    _copied,
    _json_safe,
    log_columns,
    log_rows,
    numeric,
    numeric_column,
)
from sparkfs.models.binding import FeatureBinding

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BINDING = FeatureBinding(None, (), (("temp", "double"), ("n", "long"), ("flag", "boolean"),
                                    ("name", "string"), ("at", "timestamp")))
NAN, INF = float("nan"), float("inf")

VALUES = {
    "str": ["JFK", "", None, 'say "hi"', "back\\slash", "tab\there", "é", "日本", "\x7f"],
    "int": [0, -3, None, 2**62, 7],
    "big_int": [2**70, 1],
    "float": [1.5, 5.0, -0.0, None, NAN, INF, -INF, 1e-07, 1e16, 0.1, 1e-5, 123456.789],
    "np_float": [np.float64(1.5), np.float64(NAN), np.float64(-INF), np.float64(1e-07),
                 np.float64(2.0 ** 70), np.float64(0.1)],
    "float_extremes": [5e-324, 1.7976931348623157e308, -1e-300, 1e22, 2.0 ** 53 + 1, 1 / 3],
    "bool": [True, False, None],
    "none": [None, None],
    "mixed": [1, 1.5, "x", None, True],
    "timestamp": [T0, None, dt.datetime(2026, 1, 1, 5, 30, 0, 123000)],
    "pandas_ts": [pd.Timestamp("2013-01-01 05:00"), pd.Timestamp("2013-01-01 05:00:00.5")],
    "list": [[1, 2], None, {"a": NAN}],
    "empty": [],
}


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_json_values_are_the_text_json_dumps_writes(kind):
    values = VALUES[kind]
    assert json_values(values).to_pylist() == [json.dumps(v, default=str) for v in values]
    safe = [json.dumps(_json_safe(v), default=str) for v in values]
    assert json_values(values, finite_only=True).to_pylist() == safe


def test_float_json_text_is_repr_on_random_values_of_every_magnitude():
    """The float text is built by Arrow's cast with a fix-up, not by ``repr``: checked
    against ``json.dumps`` on random values of every magnitude, random bit patterns (NaN,
    infinities, subnormals) and missing values."""
    rng = np.random.default_rng(7)
    n = 40_000
    samples = [rng.random(n), rng.normal(0, 1e3, n), np.exp(rng.uniform(-30, 60, n)),
               rng.integers(-10**6, 10**6, n).astype(float), np.round(rng.normal(0, 99, n), 2),
               rng.integers(0, 2**63, n, dtype=np.uint64).view(np.float64),
               -rng.random(n).astype(np.float32).astype(np.float64), 1 / rng.integers(1, 10**9, n)]
    for sample in samples:
        values: list = sample.tolist()
        values[::97] = [None] * len(values[::97])
        assert json_values(values).to_pylist() == [json.dumps(v) for v in values]
        assert json_values(values, finite_only=True).to_pylist() == \
            [json.dumps(_json_safe(v)) for v in values]


@pytest.mark.parametrize("values", [
    [T0, None, T0 + dt.timedelta(microseconds=7)], [None, None], [dt.datetime(2013, 1, 1, 5)],
    [dt.datetime(2013, 1, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))],
    [pd.Timestamp("2013-01-01 05:00:00.5", tz="UTC"), T0],
    [T0, dt.datetime(2013, 1, 1)],  # naive mixed with aware: Arrow's rule
    [dt.datetime(3000, 1, 1, tzinfo=dt.UTC), None],  # beyond pandas' range
    [T0, dt.datetime(2013, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5)))]])
def test_timestamp_columns_convert_as_arrow_converts_them(values):
    from sparkfs.inference.logcolumns import timestamp_array

    ts = pa.timestamp("us", "UTC")
    assert timestamp_array(values, ts).equals(pa.array(values, ts))


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_the_prediction_column_is_numeric_of_each_value(kind):
    values = VALUES[kind]
    got, want = numeric_column(values), [numeric(v) for v in values]
    assert [type(v) for v in got] == [type(v) for v in want]
    assert json.dumps(got) == json.dumps(want)  # NaN included


def test_json_objects_are_the_text_of_a_dict_per_row():
    cols = {"origin": ["JFK", None, 'q"'], "n": [1, 2, None], "x": [NAN, 1.0, 2.5]}
    want = [json.dumps(dict(zip(cols, row)), default=str) for row in zip(*cols.values())]
    assert json_objects(cols, 3).to_pylist() == want


def _deployment(path: str = "/log") -> Deployment:
    return Deployment("d", 3, "m", 2, "v@1", "t@1", BINDING, 1.0, path, "")


def _result(request_id: str, n: int, preds: list) -> PredictionResult:
    feats = {"temp": [1.5, NAN, None][:n], "n": [1.0, None, 3.0][:n],
             "flag": [True, None, False][:n], "name": ["a", None, "é"][:n],
             "at": [T0, None, T0][:n]}
    statuses = {c: ["present" if v is not None and v == v else "missing" for v in vs]
                for c, vs in feats.items()}
    times = {c: [T0, None, T0][:n] for c in feats}
    return PredictionResult(request_id, "d", "m", 2, preds, feats, statuses, times, 1.25)


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_json_objects_of_one_column_are_the_text_of_a_dict_per_row(kind):
    """One column (a deployment's key or request time) takes the per-distinct-value path
    when it holds text: the same text as json.dumps either way, names quoted as JSON."""
    values = VALUES[kind] * 3
    for name in ("origin", 'a "b"'):
        want = [json.dumps({name: v}, default=str) for v in values]
        assert json_objects({name: values}, len(values)).to_pylist() == want


def test_columns_sharing_a_list_log_what_separate_lists_log():
    """The event times of one group's features are one list: the writer merges and
    converts it once, and every column still holds its own values."""
    d = _deployment()
    keys = {"origin": ["JFK", "LGA", "EWR"]}
    parts, separate = [], []
    for i, at in enumerate(([T0, None, T0], [None, T0, T0])):
        r = _result(f"r{i}", 3, [1.0, 2.0, 3.0])
        r.event_times = {c: at for c in r.event_times}  # one list, as an online read gives
        parts.append(log_columns(d, r, keys, None, T0, "online", None))
        r2 = _result(f"r{i}", 3, [1.0, 2.0, 3.0])
        r2.event_times = {c: list(at) for c in r2.event_times}
        separate.append(log_columns(d, r2, keys, None, T0, "online", None))
    merged = merge_columns(parts)
    assert merged["temp__event_time"] is merged["name__event_time"]
    shared = columns_table(merged, BINDING)
    want = columns_table(merge_columns(separate), BINDING)
    assert repr(shared.to_pylist()) == repr(want.to_pylist())
    assert shared.column("at__event_time").to_pylist() == [T0, None, T0, None, T0, T0]


def test_a_logged_prediction_keeps_its_shared_event_times_shared():
    t = [T0]
    copied = _copied({"temp": t, "wind": t, "hour": [None]})
    assert copied["temp"] is copied["wind"] and copied["temp"] is not t
    assert copied == {"temp": [T0], "wind": [T0], "hour": [None]}


def _frame(table) -> pd.DataFrame:
    return table.to_pandas()


@pytest.mark.parametrize("error", [None, "model m@2 failed: ValueError: bad"])
def test_column_wise_log_rows_equal_the_row_builder_with_missing_values(error):
    d = _deployment()
    r = _result("r1", 3, [1.5, NAN, None])
    keys = {"origin": ["JFK", "LGA", None]}
    request = {"sched_dep_ts": ["2026-01-01T00:00:00", None, "x"]}
    for req in (request, None):
        rows = to_table(log_rows(d, r, keys, req, T0, "online", error), BINDING)
        cols = columns_table(log_columns(d, r, keys, req, T0, "online", error), BINDING)
        assert cols.schema == rows.schema
        # repr tells NaN from null (Arrow keeps both; pandas would fold them)
        assert repr(cols.to_pylist()) == repr(rows.to_pylist())
    temp = cols.column("temp").to_pylist()
    assert temp[0] == 1.5 and math.isnan(temp[1]) and temp[2] is None
    assert cols.column("entity").to_pylist() == ['{"origin": "JFK"}', '{"origin": "LGA"}',
                                                 '{"origin": null}']
    assert cols.column("prediction_json").to_pylist() == (
        [None] * 3 if error else ["1.5", "null", "null"])


def test_the_writer_builds_one_append_from_parts_of_every_shape(tmp_path):
    """Requests with and without request data, a failed model (no prediction text) and
    row dicts, gathered into one append: each row as its own builder would write it."""
    path = str(tmp_path / "log")
    create_log_table(path, BINDING)
    d = _deployment(path)
    keys = {"origin": ["JFK", "LGA"]}
    parts = [
        log_columns(d, _result("a", 2, [1.0, 2.0]), keys, {"t": ["x", "y"]}, T0, "online",
                    None),
        log_columns(d, _result("b", 2, [3.0, NAN]), keys, None, T0, "online", None),
        log_columns(d, _result("c", 1, [None]), {"origin": ["EWR"]}, {"u": [1]}, T0,
                    "online", "model m@2 failed: boom"),
    ]
    rows = log_rows(d, _result("e", 1, [9.0]), {"origin": ["JFK"]}, None, T0, "online", None)
    logger = EvaluationLogger(flush_s=60)
    try:
        for p in parts:
            assert logger.submit("d", path, BINDING, p)
        assert logger.submit("d", path, BINDING, rows)
        assert logger.flush(30)
    finally:
        logger.close(30)
    assert [h["operation"] for h in DeltaTable(path).history()].count("WRITE") == 1
    log = read_log(path).set_index("request_id").sort_index()
    want = pd.concat([
        _frame(to_table(log_rows(d, _result("a", 2, [1.0, 2.0]), keys, {"t": ["x", "y"]},
                                 T0, "online", None), BINDING)),
        _frame(to_table(log_rows(d, _result("b", 2, [3.0, NAN]), keys, None, T0, "online",
                                 None), BINDING)),
        _frame(to_table(log_rows(d, _result("c", 1, [None]), {"origin": ["EWR"]}, {"u": [1]},
                                 T0, "online", "model m@2 failed: boom"), BINDING)),
        _frame(to_table(rows, BINDING))]).set_index("request_id").sort_index()
    pd.testing.assert_frame_equal(log, want[log.columns], check_dtype=False)
    assert log.loc["b", "prediction_json"].tolist() == ["3.0", "null"]
    assert log.loc["c", "request_data"] == '{"u": 1}'
    assert pd.isna(log.loc["c", "prediction_json"])


def test_the_reused_handle_loses_no_row_beside_other_writers_and_on_close(tmp_path):
    """The writer's open table handle commits after another process's appends, a
    compaction and another writer's new column (it never re-reads the whole log, yet loses
    nothing), and close() writes every queued row."""
    path = str(tmp_path / "log")
    create_log_table(path, BINDING)
    d = _deployment(path)
    logger = EvaluationLogger(flush_s=60, compact_every=3)
    sent = 0
    try:
        for i in range(8):
            for j in range(5):
                assert logger.submit("d", path, BINDING, log_columns(
                    d, _result(f"r{i}-{j}", 2, [1.0, NAN]), {"origin": ["A", "B"]}, None, T0,
                    "online", None))
                sent += 2
            assert logger.flush(30)
            other = to_table(log_rows(d, _result(f"other{i}", 1, [0.0]), {"origin": ["C"]},
                                      None, T0, "batch", None), BINDING)
            if i == 5:  # another writer adds a column: the handle's next commit is refused
                other = other.append_column("extra", pa.array(["x"]))
            write_deltalake(path, other, mode="append", schema_mode="merge")
            sent += 1
        for j in range(50):  # still queued at close
            logger.submit("d", path, BINDING, log_columns(
                d, _result(f"late{j}", 1, [2.0]), {"origin": ["A"]}, None, T0, "online", None))
            sent += 1
    finally:
        logger.close(60)
    log = read_log(path)
    assert len(log) == sent
    assert log.groupby("request_id").size().max() == 2
    assert logger.counters()["logged"] == {"d": sent - 8}
    assert not logger.counters()["failed"] and not logger.counters()["dropped"]
    ops = [h["operation"] for h in DeltaTable(path).history()]
    assert "OPTIMIZE" in ops


def test_the_routes_json_is_the_bytes_of_to_dict():
    """``PredictionResult.to_json`` (the predict route's body) writes what
    ``orjson.dumps(to_dict(), default=str)`` wrote, missing and odd values included."""
    import numpy as np
    import orjson

    odd = [1.5, NAN, INF, None, np.float64(2.5), np.float64("nan"), np.int64(3),
           pd.Timestamp("2013-01-01 05:00", tz="UTC"), T0, dt.datetime(2026, 1, 1),
           dt.date(2026, 1, 2), True, "é", [1, NAN]]
    n = len(odd)
    times = [T0, None, pd.Timestamp("2013-01-01", tz="UTC"), dt.date(2026, 1, 1)] * 4
    for ets in ([T0, None] * n, times[:n]):
        r = PredictionResult("r", "d", "m", 2, odd, {"x": odd, "y": list(reversed(odd))},
                             {"x": ["present"] * n, "y": ["missing"] * n},
                             {"x": ets[:n], "y": [None] * n}, 1.5, True)
        assert r.to_json() == orjson.dumps(r.to_dict(), default=str)


def test_batch_log_rows_hold_what_the_row_builder_wrote():
    """``batch.log_table`` (column-wise) against the per-row text and values it replaced:
    entity JSON of each spine row (timestamps, NaN, None), values with NaN as null,
    statuses and event times (NaT as null); and ``score_frame``'s prediction text."""
    import numpy as np

    from sparkfs.inference.batch import log_table, pd_utc, score_frame

    binding = FeatureBinding(None, (), (("temp", "double"),))
    d = Deployment("d", 1, "m", 2, "v@1", "t@1", binding, 1.0, "/log", "")
    pdf = pd.DataFrame({
        "origin": ["JFK", None, 'q"é'],
        "sched_dep_ts": pd.to_datetime(["2013-01-01 05:00:00", "2013-01-01 06:00:00.5", None],
                                       format="ISO8601"),
        "n": [1.5, NAN, 3.0],
        "temp": [1.0, NAN, None],
        "__event_time__g": pd.to_datetime(["2013-01-01 04:00", None, "2013-01-01"],
                                          format="ISO8601")})

    class Model:
        def predict(self, frame):
            return np.array([0.1, 5.0, 1e-07])

    spec = {"columns": [("temp", "double")], "out": list(pdf.columns), "run_id": "r",
            "other": ["origin", "sched_dep_ts", "n"], "versions": "{}",
            "event_times": {"temp": "__event_time__g"}}
    out, error = score_frame(Model(), pdf, spec, "m@2")
    assert error is None
    assert out["prediction_json"].tolist() == [json.dumps(p) for p in [0.1, 5.0, 1e-07]]
    table = log_table(d, pdf, out, spec, T0, 7)
    others = pdf[spec["other"]].astype(object).where(pdf[spec["other"]].notna(), None)
    assert table.column("entity").to_pylist() == [
        json.dumps(r, default=str) for r in others.to_dict("records")]
    assert table.column("temp").to_pylist() == [1.0, None, None]
    assert table.column("temp__status").to_pylist() == ["present", "missing", "missing"]
    assert table.column("temp__event_time").to_pylist() == pd_utc(pdf["__event_time__g"])
    assert table.column("row").to_pylist() == [7, 8, 9]
    assert table.column("time").to_pylist() == [T0] * 3
    assert table.column("prediction_json").to_pylist() == ["0.1", "5.0", "1e-07"]
