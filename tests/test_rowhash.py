"""Row hashes (``sparkfs.offline.rowhash``) are the same in every process and release:
the driver and Spark's Python workers compare identities by them. Fixed values pin them
(computed before ``row_hashes`` shared each column's preparation between the two seeds),
and ``row_hashes`` gives what ``row_hash`` gives per seed on every column type."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from sparkfs.offline.rowhash import row_hash, row_hashes

TABLE = pa.table({
    "f": [0.5, None, float("nan"), -0.0], "i": [1, None, 3, 4], "s": ["a", None, "é", ""],
    "ts": pa.array([dt.datetime(2013, 1, 1), None, dt.datetime(2013, 1, 2),
                    dt.datetime(2013, 1, 3)], pa.timestamp("us", "UTC")),
    "b": [True, None, False, True], "l": [[1.0], None, [float("nan")], []]})

PINNED = {1: [3479800666301132423, 8165106093608813961, 7168178436375617984,
              2307674013228905667],
          2: [11426772005527422335, 14030330026033352082, 12464719549185560436,
              5499686024152248273]}


@pytest.mark.parametrize("seed", [1, 2])
def test_row_hashes_keep_their_values(seed):
    assert [int(h) for h in row_hash(TABLE, TABLE.column_names, seed)] == PINNED[seed]


@pytest.mark.parametrize("column", TABLE.column_names + ["all"])
def test_both_seeds_at_once_equal_each_seed_alone(column):
    cols = TABLE.column_names if column == "all" else [column]
    rng = np.random.default_rng(3)
    table = TABLE.take(pa.array(rng.integers(0, TABLE.num_rows, 500)))
    h1, h2 = row_hashes(table, cols)
    assert (h1 == row_hash(table, cols, 1)).all() and (h2 == row_hash(table, cols, 2)).all()
    assert not (h1 == h2).all()


@pytest.mark.parametrize("type_", [pa.string(), pa.large_string(), pa.binary(),
                                   pa.large_binary()])
def test_repeated_values_hash_as_each_row_alone(type_):
    """Strings and binaries are hashed once per distinct value: each row still gets the
    hash of its own value (and null its null hash), as when it is hashed alone."""
    words = ["k1", None, "", "é", "k1", "k2", None, "k2", "k1"]
    values = [w if w is None or pa.types.is_string(type_) or pa.types.is_large_string(type_)
              else w.encode() for w in words]
    table = pa.table({"s": pa.array(values, type_), "x": pa.array(range(len(values)))})
    for cols in (["s"], ["x", "s"]):
        h1, h2 = row_hashes(table, cols)
        alone = [row_hashes(table.slice(i, 1), cols) for i in range(table.num_rows)]
        assert [int(h) for h in h1] == [int(a[0][0]) for a in alone]
        assert [int(h) for h in h2] == [int(a[1][0]) for a in alone]
    h = row_hash(table, ["s"], 1)
    assert h[0] == h[4] == h[8] and h[1] == h[6] and len({int(v) for v in h}) == 5


def test_every_nan_bit_pattern_hashes_alike():
    """A signalling NaN or a NaN with another payload is the same value as numpy's NaN,
    and -0.0 the same as 0.0; the hash raises no floating-point warning."""
    bits = np.array([0x7FF8000000000000, 0x7FF0000000000001, 0xFFF8000000000123,
                     0x8000000000000000, 0], dtype=np.uint64)
    table = pa.table({"f": pa.array(bits.view(np.float64))})
    with np.errstate(all="raise"):
        h = row_hash(table, ["f"], 2)
    assert h[0] == h[1] == h[2] and h[3] == h[4] and h[0] != h[3]
