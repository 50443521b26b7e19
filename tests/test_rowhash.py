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
