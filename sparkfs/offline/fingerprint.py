"""Batch fingerprints: a replay of a batch already committed is known by comparing it with
the files that commit added, not with every stored row in its event-time range.

The delta-rs one-pass writer records in each commit's metadata (``COMMIT_KEY``) the row
count and event-time range of the batch it committed (``batch_key``; free: the write pass
counts them anyway), beside ``sparkfs.rows``, the rows it wrote. A commit that wrote every
row of its batch added files that hold exactly that batch. A later batch with the same
count and range is compared with those files: the same count and the same sum, modulo
2**64, of a 64-bit hash of each row (``checks.value_hash``: Spark's ``xxhash64`` over the
history columns without ``_commit_time`` and ``_run_id``, with the positions of their
nulls) mean the same rows, in any order (batches that differ share the sum
only by chance, about 2**-64). If those files are all still in the table (no DELETE,
OPTIMIZE or RESTORE removed one since), every row of the batch is stored: a full replay.
The write pass also sums the row hashes of the batch it writes (the JVM hashes each row on
its way to the pass's tasks, which add the hashes up) and the commit records that sum
(``HASH_KEY``), so a replay
costs one aggregate over the batch; a commit that recorded no sum (written before sparkfs
recorded it) is compared by one more aggregate over its files. Nothing is read for a
batch whose count and range no recent commit recorded.

>>> COMMIT_KEY, HASH_KEY, HISTORY_COMMITS
('sparkfs.batch', 'sparkfs.batch_hash', 100)
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, NamedTuple

from ..definitions import FeatureGroup
from ..sql import quote_ident
from .checks import value_hash

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

    from .tables import OfflineStore

__all__ = ["COMMIT_KEY", "HASH_KEY", "HISTORY_COMMITS", "Candidate", "aggregates", "batch_key",
           "candidates", "same_rows", "summed", "total"]

#: the commit-metadata key of a committed batch's count and event-time range (``batch_key``)
COMMIT_KEY = "sparkfs.batch"
#: the commit-metadata key of the sum modulo 2**64 of that batch's row hashes (``total``)
HASH_KEY = "sparkfs.batch_hash"
#: how many recent commits ``candidates`` searches (a replay of an older batch is found by
#: the row-by-row dedupe instead)
HISTORY_COMMITS = 100
#: the prefix of the hashed half-sums in ``aggregates``' output
_PREFIX = "__fp"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def batch_key(n: int, min_et: Any, max_et: Any) -> str:
    """What a commit records of a batch of ``n`` rows with event times from ``min_et`` to
    ``max_et`` (aware datetimes or UTC microseconds).

    >>> batch_key(3, 0, dt.datetime(1970, 1, 1, 0, 1, tzinfo=dt.UTC))
    '1:3:0:60000000'
    """
    return f"1:{int(n)}:{_micros(min_et)}:{_micros(max_et)}"


def _micros(value: Any) -> int:
    """UTC microseconds since the epoch of an aware datetime (or of microseconds)."""
    if isinstance(value, dt.datetime):
        return (value - _EPOCH) // dt.timedelta(microseconds=1)
    return int(value)


class Candidate(NamedTuple):
    """A commit that may have written a batch: its ``version``, the sum of its row hashes
    it recorded (``HASH_KEY``; None: not recorded) and its ``run_id``."""

    version: int
    total: int | None
    run_id: str | None


def candidates(table: Any, batch: str, rows: int) -> list[Candidate]:
    """The commits, newest first, among the last ``HISTORY_COMMITS`` of the Delta ``table``
    (an open ``DeltaTable``), that recorded the ``batch_key`` ``batch`` and wrote all its
    ``rows``.

    >>> candidates.__name__  # exercised by tests/test_ingest_fingerprint.py
    'candidates'
    """
    from .writers import commit_metadata

    out = []
    for h in table.history(HISTORY_COMMITS):
        meta = commit_metadata(h)
        if meta.get(COMMIT_KEY) == batch and meta.get("sparkfs.rows") == str(rows) \
                and "version" in h:
            recorded = meta.get(HASH_KEY)
            out.append(Candidate(
                int(h["version"]),
                int(recorded) if isinstance(recorded, str) and recorded.isdigit() else None,
                meta.get("sparkfs.run_id")))
    return sorted(out, reverse=True)


def aggregates(df: "DataFrame", value_cols: list[str]) -> list["Column"]:
    """Aggregate columns over ``df``: its row count and what gives the sum modulo 2**64 of
    its rows' ``checks.value_hash`` (``total``): the hashes' low and high 32-bit halves, each summed (a
    sum of up to 2**31 values under 2**32 fits a bigint; a larger batch sums to null).

    >>> aggregates.__name__  # needs Spark; exercised by tests/test_ingest_fingerprint.py
    'aggregates'
    """
    from pyspark.sql import functions as F

    h = value_hash(df, value_cols)
    return [F.count(F.lit(1)).alias(f"{_PREFIX}_n"),
            F.try_sum(h.bitwiseAND(F.lit(0xFFFFFFFF))).alias(f"{_PREFIX}_lo"),
            F.try_sum(F.shiftrightunsigned(h, 32)).alias(f"{_PREFIX}_hi")]


def total(values: Any) -> tuple[int, int] | None:
    """The row count and the sum modulo 2**64 of the row hashes whose ``aggregates`` are
    ``values`` (a Row or a mapping); None when the sums overflowed.

    >>> total({"__fp_n": 2, "__fp_lo": 3, "__fp_hi": 2**32})
    (2, 3)
    >>> total({"__fp_n": 2, "__fp_lo": None, "__fp_hi": 1}) is None
    True
    """
    hashes = summed(values[f"{_PREFIX}_lo"], values[f"{_PREFIX}_hi"])
    return None if hashes is None else (int(values[f"{_PREFIX}_n"]), hashes)


def summed(lo: int | None, hi: int | None) -> int | None:
    """The sum modulo 2**64 of row hashes whose low and high 32-bit halves add up to ``lo``
    and ``hi`` (what the write pass's tasks count: ``onepass.TaskChecks.row_hash``); None
    when they were not counted.

    >>> summed(3, 2**32 + 1) == 2**32 + 3
    True
    >>> summed(None, None) is None
    True
    """
    if lo is None or hi is None:
        return None
    return ((int(hi) << 32) + int(lo)) % (1 << 64)


def same_rows(offline: "OfflineStore", group: FeatureGroup, df: "DataFrame",
              value_cols: list[str], narrowed: list[str], version: int, then: int,
              batch_total: tuple[int, int], recorded: int | None = None) -> bool:
    """Whether the files commit ``then`` added are all still in the table at ``version``
    and hold the rows of the batch whose ``total`` is ``batch_total`` (``df``'s, its
    ``narrowed`` columns still bigint: the stored ints are hashed as bigint too, so a
    value an int can't hold is no stored value). ``recorded``: the sum that commit
    recorded (``HASH_KEY``; its count is the candidate's), compared instead of reading the
    files.

    >>> same_rows.__name__  # exercised by tests/test_ingest_fingerprint.py
    'same_rows'
    """
    from pyspark.sql import functions as F

    from .tables import read_files_spark

    added = offline.files_added_between(group, then - 1, then)
    if not added or not set(added) <= set(offline.files(group, version)):
        return False
    if recorded is not None:
        return recorded == batch_total[1]
    stored = read_files_spark(df.sparkSession, group, added).select(*[
        (F.col(quote_ident(c, "spark")).cast("bigint") if c in narrowed
         else F.col(quote_ident(c, "spark"))).alias(c) for c in value_cols])
    row = stored.agg(*aggregates(stored, value_cols)).first()
    return row is not None and total(row) == batch_total
