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
             (null when statistics are off).

Files follow the layout Spark's own Parquet writer used: one file per task (an empty
partition writes none), Arrow-cast to the Delta table's schema (``history_schema``:
timestamps as UTC microseconds, ``TIMESTAMP_MICROS``), snappy, row groups of at most
``ROW_GROUP_ROWS`` rows, dictionary pages up to ``DICTIONARY_PAGE_BYTES``. A retried task
writes a file of its own; only the files of the rows the driver collects are committed.
The driver (``stage_with_spark``) collects the rows, builds the Delta add actions and
merges the partials; nothing is read back.

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

import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from ..monitoring.sketches import Partial

__all__ = ["ROW_GROUP_ROWS", "STAGED_SCHEMA", "StagedFile", "stage_partition", "stage_with_spark"]

#: rows per Parquet row group (incoming Arrow batches are buffered up to this many)
ROW_GROUP_ROWS = 1 << 20
#: a column chunk falls back from dictionary to plain encoding once its dictionary page
#: passes this size: low-cardinality columns keep their dictionary, while columns of mostly
#: distinct values stop hashing early (with pyarrow's 1 MiB default, hashing the first
#: 128k doubles of each row group made the write ~6x slower)
DICTIONARY_PAGE_BYTES = 256 << 10
#: Spark DDL of the rows ``stage_partition`` yields
STAGED_SCHEMA = "path string, size long, rows long, stats string, partial binary"


class StagedFile:
    """One Parquet file written by a task: its name in the staging folder, size, rows, Delta
    stats JSON and the serialized statistics partial (or None)."""

    __slots__ = ("path", "size", "rows", "stats", "partial")

    def __init__(self, path: str, size: int, rows: int, stats: str, partial: bytes | None):
        self.path, self.size, self.rows, self.stats, self.partial = path, size, rows, stats, partial


def _conformed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch``'s columns by name, cast to ``schema`` (Spark hands timestamps as UTC µs)."""
    cols = []
    for f in schema:
        col = batch.column(batch.schema.get_field_index(f.name))
        cols.append(col if col.type == f.type else col.cast(f.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def stage_partition(stage_uri: str, schema: pa.Schema, specs: list[tuple[str, str]] | None,
                    prefix: str) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The per-task function: write the batches to ``{stage_uri}/{prefix}-<random>.parquet``
    and yield its ``StagedFile`` row (none for an empty partition). ``specs`` are the
    (name, dtype) pairs of the features whose statistics partial to compute (None: no
    statistics). See the module docstring for an example."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        from ..monitoring.sketches import Partial
        from .parquet_stats import _fs, metadata_add_stats

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
                batch = _conformed(raw, schema)
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
                try:
                    fs.delete_file(path)
                except OSError:
                    pass
            raise
        stats = metadata_add_stats(collected[0])
        size = fs.get_file_info(path).size
        yield pa.RecordBatch.from_pydict({
            "path": [name], "size": [size], "rows": [stats["numRecords"]],
            "stats": [_json(stats)], "partial": [partial.to_bytes() if partial else None]},
            schema=pa.schema([("path", pa.string()), ("size", pa.int64()),
                              ("rows", pa.int64()), ("stats", pa.string()),
                              ("partial", pa.binary())]))

    return run


def _json(stats: dict) -> str:
    import json

    return json.dumps(stats)


def stage_with_spark(df: "DataFrame", stage_uri: str, schema: pa.Schema,
                     specs: list[tuple[str, str]] | None) -> tuple[list[StagedFile], "Partial | None"]:
    """Run ``stage_partition`` on every partition of ``df`` (one Spark job) and return the
    staged files and the merged statistics partial (None when ``specs`` is None).

    >>> stage_with_spark.__name__  # needs Spark; exercised by tests/test_ingest_onepass.py
    'stage_with_spark'
    """
    from ..monitoring.sketches import Partial
    from ..sql import quote_ident

    prefix = f"part-{uuid.uuid4().hex[:8]}"
    cols = [quote_ident(n, "spark") for n in schema.names]
    rows = df.select(*cols).mapInArrow(stage_partition(stage_uri, schema, specs, prefix),
                                       STAGED_SCHEMA).collect()
    files = [StagedFile(r["path"], int(r["size"]), int(r["rows"]), r["stats"],
                        None if r["partial"] is None else bytes(r["partial"])) for r in rows]
    merged = None
    if specs is not None:
        merged = Partial.merged(specs, (f.partial for f in files if f.partial is not None))
    return files, merged


def now_ms() -> int:
    """The modification time recorded in a Delta add action (ms since the epoch)."""
    return int(time.time() * 1000)
