"""The delta-rs writer's one executor pass: each task writes its partition's Parquet file
with ``pyarrow.parquet`` and, from the same Arrow batches, the batch statistics' partial.

``stage_partition`` is a plain function of an iterator of Arrow record batches (what
Spark's ``mapInArrow`` hands a task) and yields one small record batch per written file:

``path``     the file name inside the staging folder;
``size``     its size in bytes;
``rows``     its row count;
``stats``    the Delta add action's statistics JSON, read from the footer pyarrow just
             wrote (``sparkfs.offline.parquet_stats.metadata_add_stats``: no re-read of the
             file; full min/max with null counts, the rules of the deltalake traps);
``partial``  the serialized ``sparkfs.monitoring.sketches.Partial`` of the rows written
             (null when statistics are off);
``checks``   with ``TaskChecks`` (the fused ingest, ``sparkfs.offline.fused``): the task's
             row-check counts as JSON (``checks.row_counts_arrow`` summed), else null;
``key_hashes`` with ``TaskChecks`` of a group of latest values: the name, inside the
             staging folder, of the task's side file (under ``KEY_HASHES_DIR``) holding
             the (key and event time hash, value hash) ``uint64`` pairs of its rows,
             sorted by key hash, a pair repeated in a row written once, for the driver to
             find conflicting rows across tasks (``checks.conflict_hashes``); null when
             the task had no such row. A file, not a column of this row: 16 bytes a row
             handed back through Spark's result rows cost more than the checks
             themselves (0.3-0.4 s per 1M rows on 2 cores).

With ``TaskChecks`` the task also drops the rows already stored (``dedupe.StoredIndex``,
built once per task from the broadcast stored identities, or mapped from the file the
driver saved it to: ``STORED_INDEX_FILE``) before writing and before the
statistics partial, and yields one row even when it writes no file (``path`` null): its
checks must reach the driver.

Files follow the layout Spark's own Parquet writer used: one file per task (an empty
partition writes none), Arrow-cast to the Delta table's schema (``history_schema``:
timestamps as UTC microseconds, ``TIMESTAMP_MICROS``), snappy, row groups of at most
``ROW_GROUP_ROWS`` rows, dictionary pages up to ``DICTIONARY_PAGE_BYTES``. A retried task
writes a file of its own; only the files of the rows the driver collects are committed.
The driver (``stage_with_spark``) collects the rows, builds the Delta add actions and
merges the partials; nothing is read back but the key-hash side files, which it deletes
(with any a failed task attempt left) before the batch is committed.

>>> import os, tempfile, pyarrow as pa
>>> stage = tempfile.mkdtemp()
>>> schema = pa.schema([("k", pa.string()), ("x", pa.float64())])
>>> run = stage_partition(stage, schema, [("x", "double")], "part-00000")
>>> out = pa.Table.from_batches(list(run(iter([pa.record_batch({"k": ["a", "b"], "x": [1.0, None]})]))))
>>> out.column("rows").to_pylist(), os.listdir(stage) == out.column("path").to_pylist()
([2], True)
>>> import json; json.loads(out.column("stats")[0].as_py())["nullCount"]
{'k': 0, 'x': 1}
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from ..monitoring.sketches import Partial

__all__ = ["KEY_HASH", "KEY_HASHES_DIR", "ROW_GROUP_ROWS", "STAGED_SCHEMA", "STORED_INDEX_FILE",
           "StagedFile", "TaskChecks", "stage_partition", "stage_with_spark"]

#: rows per Parquet row group (incoming Arrow batches are buffered up to this many)
ROW_GROUP_ROWS = 1 << 20
#: a column chunk falls back from dictionary to plain encoding once its dictionary page
#: passes this size: low-cardinality columns keep their dictionary, while columns of mostly
#: distinct values stop hashing early (with pyarrow's 1 MiB default, hashing the first
#: 128k doubles of each row group made the write ~6x slower)
DICTIONARY_PAGE_BYTES = 256 << 10
#: the input column of each row's fingerprint hash (``TaskChecks.row_hash``), and the keys
#: of the sums of its low and high 32-bit halves in a task's counts
ROW_HASH, ROW_HASH_LO, ROW_HASH_HI = "__sparkfs_row_hash", "row_hash_lo", "row_hash_hi"
#: the bigint of each row's expectation flags (``validation.run.CountedSuite.flags``);
#: a task counts the rows with each bit set, as ``flag_<bit>`` in its counts, and the nulls
#: of its ``TaskChecks.null_columns``, as ``nulls_<index>``
FLAGS = "__sparkfs_flags"
#: the input column of each row's hash of its keys and event time (``TaskChecks.conflicts``)
KEY_HASH = "__sparkfs_key_hash"
#: the folder, inside the staging folder, of the tasks' key-hash side files (``key_hashes``)
KEY_HASHES_DIR = "_sparkfs_key_hashes"
#: the file, inside the staging folder, of a stored-identities index the driver saved for
#: the tasks to map (``dedupe.StoredIndex.save``; ``sparkfs.offline.fused``)
STORED_INDEX_FILE = "_sparkfs_stored_index.arrow"
#: Spark DDL of the rows ``stage_partition`` yields
STAGED_SCHEMA = ("path string, size long, rows long, stats string, partial binary, "
                 "checks string, key_hashes string")
_STAGED_ARROW = pa.schema([("path", pa.string()), ("size", pa.int64()), ("rows", pa.int64()),
                           ("stats", pa.string()), ("partial", pa.binary()),
                           ("checks", pa.string()), ("key_hashes", pa.string())])


class StagedFile:
    """One Parquet file written by a task: its name in the staging folder, size, rows, Delta
    stats JSON and the serialized statistics partial (or None)."""

    __slots__ = ("path", "size", "rows", "stats", "partial")

    def __init__(self, path: str, size: int, rows: int, stats: str, partial: bytes | None):
        self.path, self.size, self.rows, self.stats, self.partial = path, size, rows, stats, partial


@dataclass
class TaskChecks:
    """What a task of the fused ingest checks besides writing (``stage_partition``): the row
    checks on ``keys`` and ``event_time`` and the int range of ``narrowed`` (still int64 in
    the input, cast unchecked for the write: a bad batch is refused before its commit), the
    key hashes for conflicts (``conflicts``: a group of latest values), and the dedupe
    against ``stored``: the stored identities (``dedupe.read_stored_identities``) as Arrow
    IPC bytes, or a Spark broadcast of them, or the local path of their index saved by the
    driver (``dedupe.StoredIndex.save``), or None. ``values`` are the hashed value
    columns (``rowhash``, as the stored rows were: only to match rows with ``stored``).
    ``row_hash``: the task sums the halves of ``ROW_HASH``, each row's 64-bit fingerprint
    hash (``sparkfs.offline.fingerprint``), over its rows (counts ``ROW_HASH_LO`` and
    ``ROW_HASH_HI``). With ``conflicts`` the key-hash pairs are (``KEY_HASH``,
    ``ROW_HASH``): each row's hash of its keys and event time, and its row hash (which
    covers the keys too: rows of one key and event time differ in it exactly when their
    values differ). ``flags``: how many bits of the input's ``FLAGS`` column to count
    (0: no such column), ``null_columns`` the columns whose nulls to count (for
    ``validation.run.CountedSuite``). The input has the JVM's hash columns
    ``hash_columns`` and the flags, which are not written.

    >>> TaskChecks(["k"], "t", ["x"], [], True).index() is None
    True
    >>> TaskChecks(["k"], "t", ["x"], [], True).hash_columns == [ROW_HASH, KEY_HASH]
    True
    """

    keys: list[str]
    event_time: str
    values: list[str]
    narrowed: list[str] = field(default_factory=list)
    conflicts: bool = True
    stored: Any = None
    row_hash: bool = False
    flags: int = 0
    null_columns: list[str] = field(default_factory=list)

    @property
    def hash_columns(self) -> list[str]:
        """The JVM's hash columns the task's input carries beside the written ones."""
        return ([ROW_HASH] if self.row_hash or self.conflicts else []) + \
            ([KEY_HASH] if self.conflicts else [])

    @property
    def extra_columns(self) -> list[str]:
        """The columns the task's input carries beside the written ones."""
        return self.hash_columns + ([FLAGS] if self.flags else [])

    def index(self) -> Any:
        """The ``dedupe.StoredIndex`` of ``stored`` (None without stored rows)."""
        if self.stored is None:
            return None
        from .dedupe import StoredIndex

        if isinstance(self.stored, str):  # saved by the driver: mapped, not built
            return StoredIndex.load(self.stored, [*self.keys, self.event_time])
        raw = self.stored if isinstance(self.stored, (bytes, bytearray)) else self.stored.value
        with pa.ipc.open_stream(pa.py_buffer(raw)) as reader:
            table = reader.read_all()
        return StoredIndex(table, [*self.keys, self.event_time]) if table.num_rows else None


def _conformed(batch: pa.RecordBatch, schema: pa.Schema, safe: bool = True) -> pa.RecordBatch:
    """``batch``'s columns by name, cast to ``schema`` (Spark hands timestamps as UTC µs)."""
    cols = []
    for f in schema:
        col = batch.column(batch.schema.get_field_index(f.name))
        cols.append(col if col.type == f.type else col.cast(f.type, safe=safe))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def stage_partition(stage_uri: str, schema: pa.Schema, specs: list[tuple[str, str]] | None,
                    prefix: str, checks: TaskChecks | None = None,
                    ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The per-task function: write the batches to ``{stage_uri}/{prefix}-<random>.parquet``
    and yield its ``StagedFile`` row (none for an empty partition). ``specs`` are the
    (name, dtype) pairs of the features whose statistics partial to compute (None: no
    statistics); ``checks`` adds the fused ingest's row checks, key hashes and dedupe (see
    the module docstring). See the module docstring for an example."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        from ..monitoring.sketches import Partial
        from .checks import row_counts_arrow
        from .parquet_stats import _fs, delete_file, metadata_add_stats

        part = prefix
        try:  # a retried or speculative task writes its own file; only reported ones count
            from pyspark import TaskContext

            ctx = TaskContext.get()
            if ctx is not None:
                part = f"{prefix}-{ctx.partitionId():05d}-{ctx.attemptNumber()}"
        except ImportError:
            pass
        name = f"{part}-{uuid.uuid4().hex[:16]}.parquet"
        fs, path = _fs(f"{stage_uri}/{name}")
        partial = Partial.empty(specs) if specs is not None else None
        writer: Any = None
        sink: Any = None
        collected: list = []
        buffer: list[pa.RecordBatch] = []
        buffered = 0
        counts: list[dict] = []
        pairs: list[tuple[Any, Any]] = []
        index = checks.index() if checks is not None else None
        identity = [*checks.keys, checks.event_time] if checks is not None else []

        def flush() -> None:
            nonlocal buffered
            if buffer:
                writer.write_table(pa.Table.from_batches(buffer, schema=schema),
                                   row_group_size=ROW_GROUP_ROWS)
                buffer.clear()
                buffered = 0

        try:
            for raw in batches:
                if not raw.num_rows:
                    continue
                if checks is None:
                    batch = _conformed(raw, schema)
                else:
                    counts.append(row_counts_arrow(checks.keys, checks.event_time, raw,
                                                   checks.narrowed))
                    if checks.row_hash:
                        counts[-1].update(_hash_halves(raw.column(ROW_HASH)))
                    if checks.flags:
                        counts[-1].update(_flag_counts(raw.column(FLAGS), checks.flags))
                    for j, c in enumerate(checks.null_columns):
                        counts[-1][f"nulls_{j}"] = raw.column(c).null_count
                    batch = _conformed(raw, schema, safe=False)
                    if checks.conflicts:
                        pairs.append(_pairs(raw, identity))
                    if index is not None:
                        batch = index.without_stored(batch, checks.values)
                    if not batch.num_rows:
                        continue
                if partial is not None:
                    partial.update(batch)
                if writer is None:
                    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
                    sink = fs.open_output_stream(path)
                    writer = pq.ParquetWriter(sink, schema, compression="snappy",
                                              coerce_timestamps="us",
                                              dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES,
                                              metadata_collector=collected)
                buffer.append(batch)
                buffered += batch.num_rows
                if buffered >= ROW_GROUP_ROWS:
                    flush()
            if writer is None:
                if checks is not None and counts:
                    yield _staged_row(None, 0, 0, None, None, counts,
                                      _write_pairs(stage_uri, part, pairs))
                return
            flush()
            writer.close()
            writer = None
            sink.close()
        except BaseException:
            if writer is not None:
                writer.close()
            if sink is not None:
                sink.close()
                delete_file(f"{stage_uri}/{name}")
            raise
        stats = metadata_add_stats(collected[0])
        size = fs.get_file_info(path).size
        yield _staged_row(name, size, stats["numRecords"], json.dumps(stats),
                          partial.to_bytes() if partial else None,
                          counts if checks is not None else None,
                          _write_pairs(stage_uri, part, pairs))

    return run


def _hash_halves(hashes: pa.Array) -> dict:
    """The sums of the low and high 32-bit halves of the 64-bit ``hashes`` (exact Python
    ints: JSON-able, added up by ``checks.merge_row_counts``).

    >>> _hash_halves(pa.array([-1, 2**32 + 5]))
    {'row_hash_lo': 4294967300, 'row_hash_hi': 4294967296}
    """
    import numpy as np

    h = _uint64(hashes)
    return {ROW_HASH_LO: int(np.sum(h & np.uint64(0xFFFFFFFF), dtype=np.uint64)),
            ROW_HASH_HI: int(np.sum(h >> np.uint64(32), dtype=np.uint64))}


def _flag_counts(flags: pa.Array, bits: int) -> dict:
    """How many of the rows have each of the ``bits`` low bits of their ``FLAGS`` set
    (``flag_<bit>``: JSON-able, added up by ``checks.merge_row_counts``).

    >>> _flag_counts(pa.array([0, 1, 3, 4]), 3)
    {'flag_0': 2, 'flag_1': 1, 'flag_2': 1}
    """
    import numpy as np

    v = _uint64(flags)
    if not v.any():
        return {f"flag_{b}": 0 for b in range(bits)}
    return {f"flag_{b}": int(np.count_nonzero(v & np.uint64(1 << b))) for b in range(bits)}


def _uint64(column: pa.Array) -> Any:
    """An int64 Arrow column (no nulls: Spark's hashes) as a numpy ``uint64`` view."""
    import numpy as np

    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64).view(np.uint64)


def _pairs(raw: pa.RecordBatch, identity: list[str]) -> tuple[Any, Any]:
    """The (``KEY_HASH``, ``ROW_HASH``) ``uint64`` pairs of the rows of ``raw`` without a
    null key or event time (``identity``)."""
    import numpy as np
    import pyarrow.compute as pc

    kh, rh = _uint64(raw.column(KEY_HASH)), _uint64(raw.column(ROW_HASH))
    ok = None
    for c in identity:
        col = raw.column(c)
        if col.null_count:
            valid = pc.is_valid(col)
            ok = valid if ok is None else pc.and_(ok, valid)
    if ok is None:
        return kh, rh
    keep = np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool)
    return kh[keep], rh[keep]


def _write_pairs(stage_uri: str, part: str, pairs: list[tuple[Any, Any]]) -> str | None:
    """Write a task's (key hash, value hash) pairs to its side file in the staging folder
    and return the file's name there (``KEY_HASHES_DIR/...``); None without pairs."""
    import numpy as np

    from .parquet_stats import _fs

    if not pairs:
        return None
    k = np.concatenate([p[0] for p in pairs])
    v = np.concatenate([p[1] for p in pairs])
    if not len(k):
        return None
    # sorted by key hash: sorted runs merge fast on the driver. Not a stable sort (3x
    # faster): a key hash's pairs come in any order, so an equal pair is dropped when it
    # follows its twin -- always unless the key hash has several values, a suspect either
    # way (``checks.conflict_hashes``)
    order = np.argsort(k)
    k, v = k[order], v[order]
    keep = np.empty(len(k), dtype=bool)  # a pair repeated in a row once
    keep[:1] = True
    np.logical_or(k[1:] != k[:-1], v[1:] != v[:-1], out=keep[1:])
    if not keep.all():
        k, v = k[keep], v[keep]
    out = np.empty((len(k), 2), dtype=np.uint64)
    out[:, 0], out[:, 1] = k, v
    name = f"{KEY_HASHES_DIR}/{part}-{uuid.uuid4().hex[:16]}.bin"
    fs, path = _fs(f"{stage_uri}/{name}")
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as sink:
        sink.write(out.data)
    return name


def _read_pairs(stage_uri: str, names: list[str]) -> list[bytes]:
    """The tasks' key-hash side files (``_write_pairs``), read; then their folder is
    deleted, with any file a failed or speculative task attempt left there."""
    from .parquet_stats import _fs, delete_dir

    try:
        parts = []
        for name in names:
            fs, path = _fs(f"{stage_uri}/{name}")
            with fs.open_input_stream(path) as f:
                parts.append(f.read())
        return parts
    finally:
        delete_dir(f"{stage_uri}/{KEY_HASHES_DIR}")


def _staged_row(name: str | None, size: int, rows: int, stats: str | None,
                partial: bytes | None, counts: list[dict] | None,
                key_hashes: str | None) -> pa.RecordBatch:
    """The one row a task yields (``STAGED_SCHEMA``)."""
    from .checks import merge_row_counts

    checks_json = None if counts is None else json.dumps(merge_row_counts(counts,
                                                                          datetimes=False))
    return pa.RecordBatch.from_pydict({
        "path": [name], "size": [size], "rows": [rows], "stats": [stats], "partial": [partial],
        "checks": [checks_json], "key_hashes": [key_hashes]}, schema=_STAGED_ARROW)


def stage_with_spark(df: "DataFrame", stage_uri: str, schema: pa.Schema,
                     specs: list[tuple[str, str]] | None, checks: TaskChecks | None = None,
                     ) -> tuple[list[StagedFile], "Partial | None", dict | None]:
    """Run ``stage_partition`` on every partition of ``df`` (one Spark job) and return the
    staged files, the merged statistics partial (None when ``specs`` is None) and, with
    ``checks``, the batch's row checks: ``checks.merge_row_counts`` of the tasks' counts
    plus ``suspects``, the key hashes that carry several value hashes
    (``checks.conflict_hashes``; 0: no conflicting rows), else None.

    >>> stage_with_spark.__name__  # needs Spark; exercised by tests/test_ingest_onepass.py
    'stage_with_spark'
    """
    from ..monitoring.sketches import Partial
    from ..sparkutil import arrow_batches_by_rows
    from ..sql import quote_ident

    prefix = f"part-{uuid.uuid4().hex[:8]}"
    cols = [quote_ident(n, "spark") for n in schema.names]
    if checks is not None:
        cols += [quote_ident(c, "spark") for c in checks.extra_columns]
    with arrow_batches_by_rows(df.sparkSession):
        rows = df.select(*cols).mapInArrow(
            stage_partition(stage_uri, schema, specs, prefix, checks), STAGED_SCHEMA).collect()
    files = [StagedFile(r["path"], int(r["size"]), int(r["rows"]), r["stats"],
                        None if r["partial"] is None else bytes(r["partial"]))
             for r in rows if r["path"] is not None]
    merged = None
    if specs is not None:
        merged = Partial.merged(specs, (f.partial for f in files if f.partial is not None))
    found = None
    if checks is not None:
        from .checks import conflict_hashes, merge_row_counts

        found = merge_row_counts([json.loads(r["checks"]) for r in rows if r["checks"]])
        found["suspects"] = conflict_hashes(_read_pairs(
            stage_uri, [r["key_hashes"] for r in rows if r["key_hashes"] is not None]))
    return files, merged, found


def now_ms() -> int:
    """The modification time recorded in a Delta add action (ms since the epoch)."""
    return int(time.time() * 1000)
