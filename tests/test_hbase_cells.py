"""The HBase store's column-at-a-time write stores exactly the bytes of the per-cell path.

``HBaseOnlineStore.write_batch`` encodes cell values a whole Arrow column at a time
(``codec.json_cells``) and row keys a whole key column at a time (``keys.row_keys``). The
reference here is the per-cell path it replaced, written out: ``prepare_rows`` (the rows'
stored forms through ``RowCodec``), ``RowCodec.decode`` per row, one ``codec.dumps`` per
value, ``encode_key`` per row. Every dtype with None, NaN, ±inf, extreme and unicode values
is written to the HBase emulator and to a real HBase, and every stored cell (row key,
qualifier, value, timestamp) is compared byte for byte.
"""

from __future__ import annotations

import datetime as dt
import math

import happybase
import numpy as np
import pyarrow as pa
import pytest

from sparkfs import FeatureStore
from sparkfs.dtypes import arrow_type
from sparkfs.online import codec
from sparkfs.online.keys import encode_key, row_keys
from sparkfs.online.sqlite import prepare_rows
from sparkfs.testing.conformance import ALL_DTYPES

UTC = dt.UTC
NAN, INF = float("nan"), float("inf")
STRINGS = ["JFK", "", "Zürich", "東京 ✈", "emoji 🛫", 'quote " and \\ backslash', "a,b,[c]",
           "nul \x00 byte", "tab\tnew\nline", "\u2028\u2029", "null", "NaN"]


def kitchen_sink_rows(n: int = 60) -> pa.Table:
    """``ALL_DTYPES`` rows: every value kind of every dtype, nulls in every feature,
    several rows per event millisecond and several milliseconds."""
    rng = np.random.default_rng(3)
    t0 = dt.datetime(2013, 1, 1, tzinfo=UTC)
    doubles = [0.0, -0.0, 1.0, 0.1, -2.5, 1e16, 1e-7, 123456789.123, 5e-324,
               1.7976931348623157e308, NAN, INF, -INF, None]
    floats = [0.1, 1.0, 3.4e38, -1.5e-45, 1e16, NAN, INF, -INF, None]
    ints = [0, 1, -1, 2**31 - 1, -(2**31), None]
    longs = [0, -1, 2**63 - 1, -(2**63), 1357016400000000, None]
    arrays = [[], [1.0, None, NAN], [INF, -INF, 0.1], [1e16, -0.0], None]
    pick = lambda values, i: values[i % len(values)]  # noqa: E731
    cols = {
        "year": [2013 - (i % 3) * 4000 for i in range(n)],       # negative years too
        "code": [f"{pick(STRINGS, i)}-{i}" for i in range(n)],
        "ts": [t0 + dt.timedelta(milliseconds=int(i // 7), microseconds=int(i % 7) * 3)
               for i in range(n)],
        "b": [pick([True, False, None], i) for i in range(n)],
        "i": [pick(ints, i) for i in range(n)],
        "l": [pick(longs, i) for i in range(n)],
        "f": [pick(floats, i) for i in range(n)],
        "d": [pick(doubles, i) if i % 5 else float(rng.standard_normal()) for i in range(n)],
        "s": [pick(STRINGS + [None], i) for i in range(n)],
        "t": [pick([t0, dt.datetime(1969, 7, 20, 20, 17, 40, 123456, tzinfo=UTC),
                    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), None], i)
              for i in range(n)],
        "dt": [pick([dt.date(2013, 6, 1), dt.date(1, 1, 1), dt.date(1969, 12, 31), None], i)
               for i in range(n)],
        "af": [pick(arrays, i) for i in range(n)],
        "ad": [pick(arrays, i + 2) for i in range(n)],
        "_commit_time": [t0 + dt.timedelta(days=1, microseconds=i) for i in range(n)],
    }
    types = {"year": pa.int32(), "code": pa.string(), "ts": pa.timestamp("us", tz="UTC"),
             "_commit_time": pa.timestamp("us", tz="UTC"),
             # float features arrive as doubles: the store rounds them to float32
             "f": pa.float64(),
             **{f.name: arrow_type(f.dtype) for f in ALL_DTYPES.features if f.name != "f"}}
    return pa.table({c: pa.array(v, types[c]) for c, v in cols.items()})


def per_cell_reference(rows: pa.Table, family: bytes, salt: int) -> dict:
    """{row key: {qualifier: value}} as the per-cell path wrote them (see the docstring)."""
    group = ALL_DTYPES
    columns = prepare_rows(group, rows)
    nk = len(group.join_keys)
    row_codec = codec.RowCodec([f.dtype for f in group.features])
    quals = [family + b":" + f.name.encode() for f in group.features]
    out: dict = {}
    for row in zip(*columns):
        key = encode_key(row[:nk], list(group.key_dtypes.values()), salt)
        cells = {q: codec.dumps(v).encode() for q, v in zip(quals, row_codec.decode(row[nk + 2]))}
        cells[family + b":_m"] = codec.dumps([row[nk], row[nk + 1]]).encode()
        out[key] = (cells, row[nk] // 1000)
    return out


@pytest.mark.parametrize("salt", [0, 16])
def test_every_cell_is_byte_identical_to_the_per_cell_path(tmp_path, hbase_online_config, salt):
    rows = kitchen_sink_rows()
    # small calls: rows cut by event millisecond and by batch_size
    online = {**hbase_online_config, "salt_buckets": salt, "batch_size": 4}
    fs = FeatureStore({"project": "t", "data_dir": str(tmp_path / "d"), "online": online})
    try:
        fs.apply([ALL_DTYPES])
        group = fs.get_feature_group(ALL_DTYPES.name)
        assert fs.online.write_batch(group, rows) == rows.num_rows
        c = fs.online.config
        con = happybase.Connection(c.host, c.port, timeout=60_000)
        try:
            table = con.table(fs.online.table_name_of(group.table_name))
            stored = {key: ({q: v for q, (v, _) in cells.items()},
                            {ts for _, ts in cells.values()})
                      for key, cells in table.scan(include_timestamp=True)}
        finally:
            con.close()
        expected = per_cell_reference(rows, fs.online.family, salt)
        assert set(stored) == set(expected)
        for key, (cells, ts_ms) in expected.items():
            assert stored[key][0] == cells, key
            assert stored[key][1] == {ts_ms}, key       # cell timestamp = event time (ms)
        # ... and the values read back as written (NaN, ±inf, None, unicode)
        [back] = fs.online.read(group, [(2013, f"{STRINGS[3]}-3")], ["s", "d", "f"])
        assert back.values[0] == rows["s"][3].as_py()
    finally:
        fs.online.drop(ALL_DTYPES)
        fs.close()


def test_json_cells_equal_one_dumps_per_value_for_every_dtype():
    rows = kitchen_sink_rows(200)
    for f in ALL_DTYPES.features:
        stored = codec.arrow_column_to_stored(rows[f.name], f.dtype)
        if f.dtype == "float":  # the per-cell path stores the float32 value, widened
            stored = [None if v is None else float(np.float32(v)) for v in stored]
        expected = [codec.dumps(v).encode() for v in stored]
        got = codec.json_cells(rows[f.name], f.dtype)
        assert got == expected, f.name
    assert codec.json_cells(pa.array([], pa.float64()), "double") == []
    assert codec.json_cells(pa.chunked_array([[1.0], [None, 2.5]]), "double") == [
        b"1.0", b"null", b"2.5"]
    assert math.isnan(codec.loads(codec.json_cells(pa.array([NAN]), "double")[0]))


def test_row_keys_equal_encode_key_per_row():
    rng = np.random.default_rng(5)
    ints = [0, -1, 1, 2**63 - 1, -(2**63), *rng.integers(-(2**63), 2**63 - 1, 50).tolist()]
    strs = [STRINGS[i % len(STRINGS)] + "\x00" * (i % 3) for i in range(len(ints))]
    dtypes = ("long", "string", "int")
    small = [int(v) % 1000 - 500 for v in ints]
    cols = [pa.array(ints, pa.int64()), pa.array(strs), pa.array(small, pa.int32())]
    for salt in (0, 7):
        expected = [encode_key(t, dtypes, salt) for t in zip(ints, strs, small)]
        assert row_keys(cols, dtypes, salt) == expected
        assert row_keys([pa.array(strs)], ("string",), salt) == [
            encode_key((s,), ("string",), salt) for s in strs]
