"""Batch fingerprints: a replay of a batch already committed is known without reading a
stored file.

A fingerprint describes a batch's rows as they are stored (the history columns without
``_commit_time`` and ``_run_id``), in any order: its row count, its event-time range and
a digest of the history schema and of the sum, modulo 2**64, of a 64-bit hash of each row
(Spark's ``xxhash64`` over the row's values and the positions of its nulls,
``checks.null_marks``). Batches with the same rows, duplicates included, have the same
fingerprint; two batches of as many rows over the same event-time range that differ in
any row share it only if their hash sums collide by chance (about 2**-64).

The delta-rs one-pass writer records the fingerprint of each batch it commits in the
commit's metadata (``COMMIT_KEY``): Spark hashes the rows it hands to the write pass's
Python tasks (one more bigint column, ``FP_COLUMN``), each task sums its rows' hashes. Once that
commit is in, every row of the batch is stored at its version: new rows in its files, the
others in files committed before. So a later batch with the same fingerprint is a full
replay while none of the files in the batch's event-time range has been removed since (a
DELETE, an OPTIMIZE or a RESTORE removes files; ``still_stored`` then says no and the
row-by-row dedupe decides).

The ingest's event-time range job gives a batch's count and range; only when a recent
commit recorded a fingerprint with that ``prefix`` does one more aggregate over the batch
compute the digest (``aggregates``): other batches pay nothing for it.

>>> COMMIT_KEY, HISTORY_COMMITS
('sparkfs.batch', 100)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..definitions import FeatureGroup
from ..sql import quote_ident
from .checks import null_marks

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

    from .tables import OfflineStore

__all__ = ["COMMIT_KEY", "FP_COLUMN", "HISTORY_COMMITS", "aggregates", "fingerprint", "prefix",
           "recorded", "row_hash", "still_stored", "task_total", "total"]

#: the commit-metadata key of a committed batch's fingerprint
COMMIT_KEY = "sparkfs.batch"
#: how many recent commits ``replayed_version`` searches (a replay of an older batch is
#: found by the row-by-row dedupe instead)
HISTORY_COMMITS = 100
#: the prefix of the hashed half-sums in ``aggregates``' output
_PREFIX = "__fp"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: the column of ``row_hash`` the write pass hands its tasks beside the batch's columns
FP_COLUMN = "__sparkfs_row_hash"


def row_hash(df: "DataFrame", value_cols: list[str]) -> "Column":
    """The 64-bit hash of each row that a fingerprint sums: ``xxhash64`` of ``value_cols``
    with the positions of their nulls (``checks.null_marks``).

    >>> row_hash.__name__  # needs Spark; exercised by tests/test_ingest_fingerprint.py
    'row_hash'
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType

    cols = [F.col(quote_ident(c, "spark")) for c in value_cols]
    marks = null_marks(cols, [isinstance(df.schema[c].dataType, ArrayType) for c in value_cols])
    return F.xxhash64(*cols, *marks)


def aggregates(df: "DataFrame", value_cols: list[str]) -> list["Column"]:
    """Aggregate columns over ``df`` whose values (a Row, or a mapping with their names)
    give the sum of its ``row_hash`` modulo 2**64 (``total``): the hashes' low and high
    32-bit halves, each summed (a sum of up to 2**31 values under 2**32 fits a bigint; a
    larger batch sums to null: no fingerprint).

    >>> aggregates.__name__  # needs Spark; exercised by tests/test_ingest_fingerprint.py
    'aggregates'
    """
    from pyspark.sql import functions as F

    h = row_hash(df, value_cols)
    return [F.try_sum(h.bitwiseAND(F.lit(0xFFFFFFFF))).alias(f"{_PREFIX}_lo"),
            F.try_sum(F.shiftrightunsigned(h, 32)).alias(f"{_PREFIX}_hi")]


def total(values: Any) -> int | None:
    """The sum modulo 2**64 of the row hashes whose ``aggregates`` are ``values``.

    >>> total({"__fp_lo": 3, "__fp_hi": 2**32})
    3
    >>> total({"__fp_lo": None, "__fp_hi": 1}) is None
    True
    """
    lo, hi = values[f"{_PREFIX}_lo"], values[f"{_PREFIX}_hi"]
    if lo is None or hi is None:
        return None
    return ((int(hi) << 32) + int(lo)) % (1 << 64)


def task_total(hashes: Any) -> int:
    """The sum modulo 2**64 of a ``row_hash`` column handed to a Python task (Arrow)."""
    import numpy as np

    values = hashes.to_numpy(zero_copy_only=False).view(np.uint64)
    return int(values.sum(dtype=np.uint64))


def fingerprint(hash_sum: int | None, n: int, schema: pa.Schema, min_et: Any,
                max_et: Any) -> str | None:
    """The fingerprint of a batch of ``n`` rows whose ``row_hash`` es sum to ``hash_sum``
    (modulo 2**64), for the history ``schema``, its event times from ``min_et`` to
    ``max_et`` (aware datetimes or UTC microseconds): its row count and event-time range
    (``prefix``), then a digest of the schema and the sum; None for an empty batch or
    no sum.

    >>> import pyarrow as pa
    >>> fp = fingerprint(12345, 2, pa.schema([("k", pa.string())]), 10, 20)
    >>> fp.startswith(prefix(2, 10, 20)), len(fp)
    (True, 50)
    >>> fingerprint(None, 2, pa.schema([("k", pa.string())]), 10, 20) is None
    True
    """
    if hash_sum is None or not n or min_et is None or max_et is None:
        return None
    text = f"{schema}|{hash_sum % (1 << 64):016x}"
    return prefix(int(n), min_et, max_et) + hashlib.sha1(text.encode()).hexdigest()


def prefix(n: int, min_et: Any, max_et: Any) -> str:
    """The start of the fingerprint of any batch of ``n`` rows with event times from
    ``min_et`` to ``max_et`` (aware datetimes or UTC microseconds): a batch whose prefix no commit recorded
    is no replay, and its digest is not computed.

    >>> import datetime as dt
    >>> prefix(3, 0, dt.datetime(1970, 1, 1, 0, 1, tzinfo=dt.UTC))
    '1:3:0:60000000:'
    """
    return f"1:{n}:{_micros(min_et)}:{_micros(max_et)}:"


def _micros(value: Any) -> int:
    """UTC microseconds since the epoch of an aware datetime (or of microseconds)."""
    if isinstance(value, dt.datetime):
        return (value - _EPOCH) // dt.timedelta(microseconds=1)
    return int(value)


def recorded(table: Any) -> dict[str, int]:
    """The fingerprints recorded by the last ``HISTORY_COMMITS`` commits of the Delta
    ``table`` (an open ``DeltaTable``), each with the latest version that recorded it.

    >>> recorded.__name__  # exercised by tests/test_ingest_fingerprint.py
    'recorded'
    """
    from .writers import commit_metadata

    out: dict[str, int] = {}
    for h in table.history(HISTORY_COMMITS):
        key = commit_metadata(h).get(COMMIT_KEY)
        if key and "version" in h:
            out[key] = max(out.get(key, -1), int(h["version"]))
    return out


def still_stored(offline: "OfflineStore", group: FeatureGroup, then: int, version: int,
                 et_range: tuple[Any, Any]) -> bool:
    """Whether every file of version ``then`` in the event-time range ``et_range`` is
    still in the table at ``version``: nothing removed since (a DELETE, an OPTIMIZE or a
    RESTORE removes files), so every row stored at ``then`` in that range still is.

    >>> still_stored.__name__  # exercised by tests/test_ingest_fingerprint.py
    'still_stored'
    """
    if then > version:
        return False
    now = set(offline.files(group, version, et_range))
    return all(f in now for f in offline.files(group, then, et_range))
