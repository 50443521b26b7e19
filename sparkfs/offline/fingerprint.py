"""Batch fingerprints: a replay of a batch already committed is known without reading a
stored file.

A fingerprint describes a batch's rows as they are stored (the history columns without
``_commit_time`` and ``_run_id``), in any order: its row count, its event-time range and
a digest of the history schema and of two sums, over all rows, modulo 2**64, of two 64-bit
hashes of each row (Spark's ``xxhash64``, unsalted and salted, over the row's values and
the positions of its nulls, ``checks.null_marks``). Batches with the same rows, duplicates
included, have the same fingerprint; batches that differ in any row share it only if both
128 bits of sums collide by chance.

The delta-rs one-pass writer records the fingerprint of each batch it commits in the
commit's metadata (``COMMIT_KEY``), observed in its write pass at no extra job. Once that
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

__all__ = ["COMMIT_KEY", "HISTORY_COMMITS", "aggregates", "fingerprint", "prefix", "recorded",
           "still_stored"]

#: the commit-metadata key of a committed batch's fingerprint
COMMIT_KEY = "sparkfs.batch"
#: how many recent commits ``replayed_version`` searches (a replay of an older batch is
#: found by the row-by-row dedupe instead)
HISTORY_COMMITS = 100
#: the prefix of the hashed half-sums in ``aggregates``' output
_PREFIX = "__fp"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: the salt of the second row hash
_SALT = 0x5EED


def aggregates(df: "DataFrame", value_cols: list[str]) -> list["Column"]:
    """The aggregate columns whose values make a batch's fingerprint (``fingerprint``):
    the row count and the two row hashes' low and high 32-bit halves, each summed (a sum
    of at most 2**31 values under 2**32 fits a bigint; a larger batch gets null, and no
    fingerprint). Add them to another aggregate over ``df`` or to an ``observe``.

    >>> aggregates.__name__  # needs Spark; exercised by tests/test_ingest_fingerprint.py
    'aggregates'
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType

    cols = [F.col(quote_ident(c, "spark")) for c in value_cols]
    marks = null_marks(cols, [isinstance(df.schema[c].dataType, ArrayType) for c in value_cols])
    hashes = [F.xxhash64(*cols, *marks), F.xxhash64(F.lit(_SALT), *cols, *marks)]
    out = [F.count(F.lit(1)).alias(f"{_PREFIX}_n")]
    for i, h in enumerate(hashes):
        out.append(F.try_sum(h.bitwiseAND(F.lit(0xFFFFFFFF))).alias(f"{_PREFIX}{i}_lo"))
        out.append(F.try_sum(F.shiftrightunsigned(h, 32)).alias(f"{_PREFIX}{i}_hi"))
    return out


def fingerprint(values: Any, schema: pa.Schema, min_et: Any, max_et: Any) -> str | None:
    """The fingerprint of the batch whose ``aggregates`` are ``values`` (a Row or a
    mapping with their names), for the history ``schema``, its event times from ``min_et``
    to ``max_et`` (aware datetimes or UTC microseconds): its row count, event-time range and a digest of the
    rest (``prefix`` is the part before the digest), or None for an empty batch or one
    too large to sum.

    >>> import pyarrow as pa
    >>> values = {"__fp_n": 2, "__fp0_lo": 5, "__fp0_hi": 7, "__fp1_lo": 1, "__fp1_hi": 3}
    >>> fp = fingerprint(values, pa.schema([("k", pa.string())]), 10, 20)
    >>> fp.startswith(prefix(2, 10, 20)), len(fp)
    (True, 50)
    >>> fingerprint({**values, "__fp_n": 0}, pa.schema([("k", pa.string())]), None, None)
    """
    n = values[f"{_PREFIX}_n"]
    sums = []
    for i in range(2):
        lo, hi = values[f"{_PREFIX}{i}_lo"], values[f"{_PREFIX}{i}_hi"]
        if lo is None or hi is None:
            return None
        sums.append(((int(hi) << 32) + int(lo)) % (1 << 64))
    if not n or min_et is None or max_et is None:
        return None
    text = f"{schema}|{sums[0]:016x}|{sums[1]:016x}"
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
