"""Dedupe at ingest: rows already stored with identical keys, event time and values are
skipped, so a replayed batch under a new run id writes nothing twice.

Only stored files whose event-time statistics overlap the batch are read (no full history
scan), and only the keys, the event time and a 96-bit hash of the values (xxhash64 and
murmur3 over the same columns; null- and NaN-aware) leave the stored side. A row with the
same keys and event time but other values is a correction: it is kept (the later
``_commit_time`` wins on reads).

The one-pass write (``sparkfs.offline.fused``) and the local engine dedupe on Arrow
instead: ``read_stored_identities`` reads, with pyarrow, the overlapping files' keys, event
times and two 64-bit hashes of their values (``sparkfs.offline.rowhash``), and
``drop_stored`` drops the batch rows found there: a hash join, then an exact comparison of
the keys and event time and of the second value hash (128 bits of value identity in all).

The writers call ``without_stored_rows`` again against the files other writers committed
since the batch was first deduped (``sparkfs.offline.writers``), so two concurrent ingests
of the same rows under different run ids commit them once.
"""

from __future__ import annotations

from functools import reduce
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..definitions import FeatureGroup
from ..sql import quote_ident
from .checks import null_marks
from .rowhash import row_hash, row_hashes
from .tables import history_schema, read_files_spark

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["BROADCAST_CHECK_ROWS", "StoredIndex", "drop_stored", "fully_stored",
           "known_empty", "merge_condition",
           "read_stored_identities", "stored_matches", "without_stored_rows"]

#: the value-hash columns of ``read_stored_identities``
H1, H2 = "__h1", "__h2"
#: the sorted probe hash of a saved ``StoredIndex``
_JOINT = "__joint"
#: stored rows per bucket of a ``StoredIndex``'s directory, on average
_BUCKET_ROWS = 8
#: ``fully_stored`` broadcasts at most this many stored identities (keys included)
BROADCAST_CHECK_ROWS = 1_000_000


def without_stored_rows(spark: "SparkSession", group: FeatureGroup, df: "DataFrame",
                         files: list[str], checks: dict, value_cols: list[str]) -> "DataFrame":
    """``df`` without the rows already stored in ``files`` (same keys, event time and
    value hashes), within the batch's event-time range.

    Only the join keys, the event time and a 96-bit hash of the feature values (xxhash64
    and murmur3 over the same columns; null- and NaN-aware) leave the stored side, so the
    shuffle stays narrow however many features the group has. Keys and event times are
    never null here (the row checks refused such batches). ``checks`` gives the batch's
    ``min_et``/``max_et``; ``value_cols`` are the history columns without system columns.

    First one narrow job (``stored_matches``) counts the batch's rows and those already
    stored, joining only identities (keys, event time, hashes). Then:

    - no row stored: ``df`` itself (no anti-join at all);
    - every row stored (a replay under a new run id): an empty frame, known empty to
      Spark's optimizer (``limit(0)``), so writing it runs no job over the source;
    - some: the anti-join of the full rows against the stored identities (a shuffled hash
      join, as in ``stored_matches``).

    >>> without_stored_rows.__name__  # needs Spark; exercised by tests/test_ingest.py
    'without_stored_rows'
    """
    total, matched = stored_matches(spark, group, df, files, checks, value_cols)
    if matched == 0:
        return df
    if matched == total:
        return df.limit(0)
    from pyspark.sql import functions as F

    keys = [*group.join_keys, group.event_time]
    stored = _stored_identities(spark, group, files, checks, value_cols).hint("shuffle_hash")
    h1, h2 = _value_hashes(group, value_cols, None)
    batch = df.select("*", *[F.col(quote_ident(k, "spark")).alias(f"__b_{k}") for k in keys],
                      h1.alias("__b_h1"), h2.alias("__b_h2"))
    extra = [f"__b_{k}" for k in [*keys, "h1", "h2"]]
    return batch.join(stored, _identity_condition(keys), "left_anti").drop(*extra)


def stored_matches(spark: "SparkSession", group: FeatureGroup, df: "DataFrame",
                   files: list[str], checks: dict, value_cols: list[str]) -> tuple[int, int]:
    """(rows of ``df``, rows of ``df`` whose identity -- keys, event time, value hashes --
    is stored in ``files``), in one Spark job: a left semi join of identities only (the
    batch side carries its identity, not its feature values), counted, with the batch's
    row count observed on the way (``DataFrame.observe``: no second pass).

    The join is a shuffled hash join (``shuffle_hash`` hint on the stored side): each task
    builds a hash table of its share of the stored identities in the batch's event-time
    range (about 40 bytes a row) instead of sorting both sides; at 500k rows it took 3.3 s
    where the sort-merge join took 5.9 s.

    >>> stored_matches.__name__  # needs Spark; exercised by tests/test_dedupe_replay.py
    'stored_matches'
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    keys = [*group.join_keys, group.event_time]
    stored = _stored_identities(spark, group, files, checks, value_cols).hint("shuffle_hash")
    seen = Observation()  # a fresh name: concurrent ingests must not share one
    ids = _batch_identities(group, df, value_cols).observe(seen, F.count(F.lit(1)).alias("n"))
    matched = ids.join(stored, _identity_condition(keys), "left_semi").count()
    return int(seen.get["n"]), int(matched)


def fully_stored(spark: "SparkSession", group: FeatureGroup, df: "DataFrame",
                 files: list[str], et_range: tuple[Any, Any], value_cols: list[str],
                 stored_rows: int, narrowed: list[str] | tuple = ()) -> bool:
    """True when every row of ``df`` (the conformed batch, same column types as the
    history) is stored in ``files`` already and nothing there contradicts it: each row has a
    stored row with the same keys, event time and values, and every stored row with its
    keys and event time has its values. Decided in one Spark job with no Python worker: the
    batch's identities -- a 64-bit hash of keys and event time, the keys and event time
    themselves, the value hashes of ``_value_hashes`` -- left-joined on that key hash to
    the stored rows' in ``et_range`` (``stored_rows``: at most this many; broadcast up to
    ``BROADCAST_CHECK_ROWS``, else a shuffled hash join); the job stops at the first batch
    row with no such stored row, with another value there, or whose key hash meets another
    key (a collision only sends the batch down the general path).

    So a True batch is a replay that cannot hold two values for one key and event time
    (each row equals every stored row at its key and time): it is not checked, written or
    committed again (``sparkfs.offline.fused``). ``narrowed`` bigint columns of ``df`` are
    compared as the ints they are stored as; a value that does not fit makes the batch not
    stored (the general path refuses it).

    >>> fully_stored.__name__  # needs Spark; exercised by tests/test_dedupe_replay.py
    'fully_stored'
    """
    from pyspark.sql import functions as F

    keys = [*group.join_keys, group.event_time]

    def col(name: str):
        return F.col(quote_ident(name, "spark"))

    def key_hash(side: str):
        return F.xxhash64(*[col(f"{side}{k}") for k in keys]).alias(f"{side}kh")

    checks = {"min_et": et_range[0], "max_et": et_range[1]}
    stored = _stored_identities(spark, group, files, checks, value_cols)
    stored = stored.select("*", key_hash("__s_")) \
        .hint("broadcast" if stored_rows <= BROADCAST_CHECK_ROWS else "shuffle_hash")
    bad = [F.col("__s_kh").isNull(),
           *[~col(f"__b_{k}").eqNullSafe(col(f"__s_{k}")) for k in keys],
           F.col("__b_h1") != F.col("__s_h1"), F.col("__b_h2") != F.col("__s_h2")]
    extra = []
    if narrowed:  # compared as stored: int; a value that does not fit is not stored
        fits = [col(c).isNull() | col(c).try_cast("int").isNotNull() for c in narrowed]
        df = df.select(*[col(c).try_cast("int").alias(c) if c in narrowed else col(c)
                         for c in df.columns],
                       reduce(lambda a, b: a & b, fits).alias("__fits"))
        extra.append(F.col("__fits").alias("__b_fits"))
        bad.append(~F.col("__b_fits"))
    batch = _batch_identities(group, df, value_cols, *extra)
    batch = batch.select("*", key_hash("__b_"))
    pairs = batch.join(stored, F.col("__b_kh") == F.col("__s_kh"), "left_outer")
    return pairs.where(reduce(lambda a, b: a | b, bad)).isEmpty()


def _batch_identities(group: FeatureGroup, df: "DataFrame", value_cols: list[str],
                      *extra: Any) -> "DataFrame":
    """The identities (``__b_<key>``, ``__b_<event time>``, ``__b_h1``, ``__b_h2``) of the
    rows of ``df``, and the ``extra`` columns: the batch side of ``_stored_identities``."""
    from pyspark.sql import functions as F

    h1, h2 = _value_hashes(group, value_cols, None)
    return df.select(*[F.col(quote_ident(k, "spark")).alias(f"__b_{k}")
                       for k in [*group.join_keys, group.event_time]],
                     h1.alias("__b_h1"), h2.alias("__b_h2"), *extra)


def _identity_condition(keys: list[str]):
    """Batch identity (``__b_*``) equals stored identity (``__s_*``)."""
    from pyspark.sql import functions as F

    cond = [F.col(quote_ident(f"__b_{k}", "spark")) == F.col(quote_ident(f"__s_{k}", "spark"))
            for k in [*keys, "h1", "h2"]]
    return reduce(lambda a, b: a & b, cond)


def known_empty(df: "DataFrame") -> bool:
    """True when Spark's optimizer already knows ``df`` has no row (the plan's row bound is
    0, e.g. ``without_stored_rows`` of a full replay): decided from the plan, no job runs.
    False when it cannot tell (then the rows are computed where they are used).

    >>> known_empty.__name__  # needs Spark; exercised by tests/test_dedupe_replay.py
    'known_empty'
    """
    try:
        bound = df._jdf.queryExecution().optimizedPlan().maxRows()
        return bool(bound.isDefined()) and int(bound.get()) == 0
    except Exception:  # not a classic (py4j) DataFrame: nothing known without a job
        return False


def _stored_identities(spark: "SparkSession", group: FeatureGroup, files: list[str],
                       checks: dict, value_cols: list[str]) -> "DataFrame":
    """The identities (``__s_<key>``, ``__s_<event time>``, ``__s_h1``, ``__s_h2``) of the
    rows stored in ``files`` within the batch's event-time range."""
    from pyspark.sql import functions as F

    et = group.event_time
    keys = [*group.join_keys, et]
    h1, h2 = _value_hashes(group, value_cols, None)
    return (read_files_spark(spark, group, files)
            .where((F.col(quote_ident(et, "spark")) >= F.lit(checks["min_et"]))
                   & (F.col(quote_ident(et, "spark")) <= F.lit(checks["max_et"])))
            .select(*[F.col(quote_ident(k, "spark")).alias(f"__s_{k}") for k in keys],
                    h1.alias("__s_h1"), h2.alias("__s_h2")))


def _value_hashes(group: FeatureGroup, value_cols: list[str], qualifier: str | None) -> tuple:
    """The two hashes (xxhash64, murmur3) of a row's feature values: the value part of the
    dedupe identity, the same in the anti-join and in delta-spark's MERGE.

    Spark's hashes skip a null cell, so ``(null, 1.0)`` and ``(1.0, null)`` -- or the
    arrays ``[null, 1.0]`` and ``[1.0, null]`` -- would hash alike and a row would be taken
    for another one already stored (and dropped). The null cells' positions are hashed
    too (``checks.null_marks``)."""
    from pyspark.sql import functions as F

    keys = set(group.join_keys) | {group.event_time}
    prefix = "" if qualifier is None else f"{quote_ident(qualifier, 'spark')}."
    names = [v for v in value_cols if v not in keys]
    cols = [F.col(prefix + quote_ident(v, "spark")) for v in names]
    if not cols:
        return F.xxhash64(F.lit(0)), F.hash(F.lit(0))
    dtypes = {f.name: f.dtype for f in group.stored_fields}
    cols += null_marks(cols, [dtypes.get(n, "").startswith("array") for n in names])
    return F.xxhash64(*cols), F.hash(*cols)


def merge_condition(group: FeatureGroup, value_cols: list[str], et_range: tuple,
                    stored: str, batch: str):
    """The dedupe identity as a MERGE condition between the aliases ``stored`` (the Delta
    table) and ``batch``: same join keys, same event time, same value hashes as
    ``without_stored_rows``; the stored side limited to the batch's event-time range so
    Delta reads only the files that overlap it.

    >>> merge_condition.__name__  # needs Spark; exercised by tests/test_ingest_concurrency.py
    'merge_condition'
    """
    from pyspark.sql import functions as F

    def col(alias: str, name: str):
        return F.col(f"{quote_ident(alias, 'spark')}.{quote_ident(name, 'spark')}")

    et = group.event_time
    cond = [col(stored, k) == col(batch, k) for k in [*group.join_keys, et]]
    cond += [col(stored, et) >= F.lit(et_range[0]), col(stored, et) <= F.lit(et_range[1])]
    cond += [a == b for a, b in zip(_value_hashes(group, value_cols, stored),
                                    _value_hashes(group, value_cols, batch))]
    return reduce(lambda a, b: a & b, cond)


# -- on Arrow: the one-pass write and the local engine -------------------------------------
def identity_columns(group: FeatureGroup, value_cols: list[str]) -> tuple[list[str], list[str]]:
    """(keys and event time, the value columns hashed) of the dedupe identity."""
    keys = [*group.join_keys, group.event_time]
    return keys, [v for v in value_cols if v not in keys]


def read_stored_identities(group: FeatureGroup, files: list[str], et_range: tuple[Any, Any],
                           value_cols: list[str]) -> pa.Table:
    """The identities of the rows stored in ``files`` (local Parquet files of the group's
    history) whose event time is in ``et_range`` (inclusive): the join keys, the event time
    and two value hashes (``__h1``, ``__h2``; ``rowhash.row_hash`` with seeds 1 and 2).
    Read with pyarrow batch by batch, so only the identities stay in memory.

    >>> read_stored_identities.__name__  # exercised by tests/test_ingest_fused.py
    'read_stored_identities'
    """
    import pyarrow.dataset as ds

    keys, values = identity_columns(group, value_cols)
    et = group.event_time
    schema = history_schema(group)
    ts = schema.field(et).type
    out_schema = pa.schema([schema.field(k) for k in keys]
                           + [pa.field(H1, pa.uint64()), pa.field(H2, pa.uint64())])
    flt = (ds.field(et) >= pa.scalar(et_range[0], ts)) & (ds.field(et) <= pa.scalar(et_range[1], ts))
    data = ds.dataset([f.removeprefix("file://") for f in files], schema=schema, format="parquet")

    def identities(b: pa.RecordBatch) -> pa.RecordBatch:
        h1, h2 = row_hashes(b, values)
        return pa.RecordBatch.from_arrays([b.column(k) for k in keys]
                                          + [pa.array(h1), pa.array(h2)], schema=out_schema)

    # numpy's kernels leave the GIL: batches are hashed on two threads, in order, with at
    # most four read ahead (only the identities stay in memory)
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    parts: list[pa.RecordBatch] = []
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(2) as pool:
        for b in data.to_batches(columns=keys + values, filter=flt):
            if b.num_rows:
                pending.append(pool.submit(identities, b))
            if len(pending) >= 4:
                parts.append(pending.popleft().result())
        parts.extend(f.result() for f in pending)
    return pa.Table.from_batches(parts, schema=out_schema)


class StoredIndex:
    """Stored identities (``read_stored_identities``) sorted by one 64-bit hash of keys,
    event time and first value hash, for ``drop_stored`` to probe many batches against
    (a one-pass write task builds it once, or maps the one the driver saved: ``save``,
    ``load``).

    >>> import pyarrow as pa
    >>> stored = pa.table({"k": ["a"], "__h1": pa.array([7], pa.uint64()),
    ...                    "__h2": pa.array([8], pa.uint64())})
    >>> StoredIndex(stored, ["k"]).size
    1
    """

    def __init__(self, stored: pa.Table, keys: list[str]) -> None:
        stored = stored.combine_chunks()
        joint = _joint(row_hash(stored, keys, 1), stored.column(H1).to_numpy())
        # equal hashes in any order: a probe confirms the first one it finds (a collision
        # can only leave a row to be written again, never drop one)
        order = np.argsort(joint)
        self._sorted(keys, stored, joint[order], stored.column(H2).to_numpy(), order)

    def _sorted(self, keys: list[str], stored: pa.Table, joint: np.ndarray, h2: np.ndarray,
                order: np.ndarray | None) -> None:
        """Hold ``stored`` (keys and event time ``keys``; ``h2`` its second value hashes)
        with ``joint``, the sorted probe hashes, and ``order``, the row of ``stored`` at
        each of their positions (None: ``stored`` is in their order)."""
        self.keys, self.stored, self.joint, self.h2, self.order = keys, stored, joint, h2, order
        self.size = stored.num_rows
        self._directory()
        # the stored rows' event times (the last of ``keys``): a row outside can't be stored
        self.times = pc.min_max(stored.column(keys[-1])) if self.size else None

    def _directory(self) -> None:
        """Where each bucket of the sorted hashes starts (``start``): bucket ``b`` holds
        the hashes whose top ``64 - shift`` bits are ``b``, about ``_BUCKET_ROWS`` of them
        (the hashes are uniform), so a probe searches its bucket only (``steps`` halvings)
        instead of the whole array, whose first halvings each miss the cache."""
        bits = max(0, int(self.size // _BUCKET_ROWS).bit_length() - 1)
        self.shift = np.uint64(64 - bits)
        first = np.arange(1 << bits, dtype=np.uint64) << self.shift if bits else \
            np.zeros(1, np.uint64)  # each bucket's smallest hash
        self.start = np.append(np.searchsorted(self.joint, first), self.size)
        self.steps = int(np.diff(self.start).max(initial=0)).bit_length()

    def _lower_bound(self, keys: np.ndarray) -> np.ndarray:
        """The first position of each of ``keys`` in the sorted hashes, or where it would go
        (``np.searchsorted``'s), by a binary search in its bucket, all keys at once."""
        bucket = (keys >> self.shift).astype(np.intp) if self.shift < 64 else \
            np.zeros(len(keys), np.intp)
        lo, hi = self.start[bucket], self.start[bucket + 1]
        last = self.size - 1
        for _ in range(self.steps):
            active = lo < hi
            mid = (lo + hi) >> 1
            below = self.joint[np.minimum(mid, last)] < keys
            lo = np.where(active & below, mid + 1, lo)
            hi = np.where(active & ~below, mid, hi)
        return lo

    def save(self, path: str) -> None:
        """Write the index, in its sorted order, to the Arrow IPC file ``path`` (local),
        which ``load`` maps: tasks that share a machine then share one copy of it in the
        page cache, and none sorts it again.

        >>> import pyarrow as pa, tempfile, os
        >>> stored = pa.table({"k": ["b", "a"], "__h1": pa.array([7, 9], pa.uint64()),
        ...                    "__h2": pa.array([8, 3], pa.uint64())})
        >>> path = os.path.join(tempfile.mkdtemp(), "index.arrow")
        >>> StoredIndex(stored, ["k"]).save(path)
        >>> StoredIndex.load(path, ["k"]).size
        2
        """
        table = self.stored.select(self.keys)
        h2 = pa.array(self.h2)
        if self.order is not None:
            order = pa.array(self.order)
            table, h2 = table.take(order), h2.take(order)
        table = table.combine_chunks().append_column(_JOINT, pa.array(self.joint)) \
            .append_column(H2, h2)
        # one record batch: ``load`` then reads every column without a copy
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table, max_chunksize=max(1, table.num_rows))

    @classmethod
    def load(cls, path: str, keys: list[str]) -> "StoredIndex":
        """The index ``save`` wrote to ``path``, memory-mapped (nothing is copied or
        sorted). Example: ``save``."""
        table = pa.ipc.open_file(pa.memory_map(path)).read_all().combine_chunks()
        index = cls.__new__(cls)
        index._sorted(keys, table.select(keys), table.column(_JOINT).to_numpy(),
                      table.column(H2).to_numpy(), None)  # saved in sorted order
        return index

    def without_stored(self, batch: pa.Table | pa.RecordBatch, values: list[str],
                       ) -> pa.Table | pa.RecordBatch:
        """``batch`` without its rows stored already, in order; ``values`` are the value
        columns hashed (``identity_columns``). Only the rows whose event time is within
        the stored rows' are hashed and probed: the rest are new (a batch that overlaps the
        stored history by a window costs little more than one that does not).

        >>> stored = pa.table({"k": ["a"], "t": [5], "__h1": pa.array([7], pa.uint64()),
        ...                    "__h2": pa.array([8], pa.uint64())})
        >>> StoredIndex(stored, ["k", "t"]).without_stored(
        ...     pa.table({"k": ["a", "a"], "t": [4, 6], "x": [1.0, 2.0]}), ["x"]).num_rows
        2
        """
        n = batch.num_rows
        if not self.size or not n:
            return batch
        inside = self._inside(batch.column(self.keys[-1]))
        if inside is not None and not inside.any():
            return batch
        probe = batch if inside is None else batch.filter(pa.array(inside))
        stored = self.stored_mask(probe, *row_hashes(probe, values))
        if not stored.any():
            return batch
        if inside is not None:  # the probed rows' verdicts, back in the batch's rows
            probed, stored = stored, np.zeros(n, dtype=bool)
            stored[inside] = probed
        return batch.filter(pa.array(np.logical_not(stored)))

    def _inside(self, times: Any) -> np.ndarray | None:
        """True where ``times`` (a batch's event times) are within the stored rows' event
        times or null; None when all are (or the types differ: nothing is ruled out)."""
        assert self.times is not None  # a non-empty index
        lo, hi = self.times["min"], self.times["max"]
        if times.type != lo.type:
            return None
        within = pc.and_(pc.greater_equal(times, lo), pc.less_equal(times, hi))
        inside = np.asarray(pc.fill_null(within, True).to_numpy(zero_copy_only=False),
                            dtype=bool)
        return None if inside.all() else inside

    def stored_mask(self, batch: pa.Table | pa.RecordBatch, h1: np.ndarray,
                    h2: np.ndarray) -> np.ndarray:
        """True for the rows of ``batch`` (value hashes ``h1``, ``h2``) stored already."""
        n = batch.num_rows
        if not self.size or not n:
            return np.zeros(n, dtype=bool)
        joint = _joint(row_hash(batch, self.keys, 1), h1)
        pos = self._lower_bound(joint)
        np.minimum(pos, self.size - 1, out=pos)
        cand = np.flatnonzero(self.joint[pos] == joint)
        if not cand.size:
            return np.zeros(n, dtype=bool)
        rows = pos[cand] if self.order is None else self.order[pos[cand]]
        same = self.h2[rows] == h2[cand]
        take_b, take_s = pa.array(cand), pa.array(rows)
        for k in self.keys:  # the exact comparison of the keys and event time
            eq = pc.equal(batch.column(k).take(take_b), self.stored.column(k).take(take_s))
            same &= np.asarray(pc.fill_null(eq, False).to_numpy(zero_copy_only=False), dtype=bool)
        out = np.zeros(n, dtype=bool)
        out[cand[same]] = True
        return out


def _joint(kh: np.ndarray, h1: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return kh * np.uint64(0x9E3779B97F4A7C15) ^ h1


def drop_stored(table: pa.Table, stored: "pa.Table | StoredIndex", group: FeatureGroup,
                value_cols: list[str]) -> pa.Table:
    """``table`` (history columns) without its rows whose identity -- join keys, event
    time, values (null equals null, NaN equals NaN, -0.0 equals 0.0) -- is in ``stored``
    (``read_stored_identities``, or a ``StoredIndex`` of it): a hash join on keys, event
    time and the first value hash, confirmed by comparing the keys and event time exactly
    and the second value hash. Row order is kept.

    >>> import datetime as dt, pyarrow as pa
    >>> from sparkfs import Entity, Field, FeatureGroup
    >>> g = FeatureGroup("w", [Entity("a", ["k"])], "t", [Field("x", "double")])
    >>> t0 = pa.array([dt.datetime(2013, 1, 1)] * 3, pa.timestamp("us", tz="UTC"))
    >>> batch = pa.table({"k": ["a", "a", "b"], "t": t0, "x": [float("nan"), 1.0, None]})
    >>> stored = batch.slice(0, 1).select(["k", "t"]).append_column(
    ...     "__h1", pa.array(row_hash(batch.slice(0, 1), ["x"], 1))).append_column(
    ...     "__h2", pa.array(row_hash(batch.slice(0, 1), ["x"], 2)))
    >>> drop_stored(batch, stored, g, ["k", "t", "x"]).column("x").to_pylist()
    [1.0, None]
    """
    keys, values = identity_columns(group, value_cols)
    index = stored if isinstance(stored, StoredIndex) else StoredIndex(stored, keys)
    return index.without_stored(table, values)
