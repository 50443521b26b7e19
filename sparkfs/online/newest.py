"""The newest row per key, vectorised in Arrow: the reduction both materialization engines
run (``sparkfs.online.materialize``), and the executor-side pieces of the Spark engine.

``newest_per_key`` keeps, for each key of a group, the row with the greatest event time,
then the greatest commit time (a null commit time counts as the oldest; exact ties keep
the first row seen); rows with a null join key or event time are left out. It sorts the
row numbers by (event time, commit time) descending and takes the first row number per
key with Arrow's ordered hash aggregation: no per-row Python, no copy of the feature
columns until the final ``take``. ``reduce_batches`` applies it to a stream of record
batches ``chunk_rows`` at a time, so memory stays within the keys plus one chunk.

The Spark engine runs ``NewestOfFiles`` (stage 1: a slice of the new files, reduced, cut
into key-hash buckets as Arrow IPC bytes) and ``NewestOfBucket`` (stage 2: one bucket,
reduced again, then written or handed to the driver) on executors; Spark only moves the
blobs. The result does not depend on the bucketing: a key seen by two buckets would only
be written twice, and the store keeps the newer row.

>>> import pyarrow as pa, datetime as dt
>>> from sparkfs.testing.conformance import weather_group
>>> g = weather_group()
>>> t = lambda h: dt.datetime(2013, 1, 1, h, tzinfo=dt.timezone.utc)
>>> rows = pa.table({"origin": ["JFK", "JFK", "EWR", None], "time_hour": [t(5), t(7), t(1), t(9)],
...                  "temp": [1.0, 2.0, 3.0, 4.0], "wind_speed": [None] * 4,
...                  "_commit_time": [t(10)] * 4})
>>> newest_per_key(g, rows).sort_by("origin").to_pydict()["temp"]
[3.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..config import Config
from ..definitions import FeatureGroup
from ..offline.tables import COMMIT_TIME
from ..sql import quote_idents

#: Rows per ``write_batch`` call when materializing (one SQLite transaction; HBase splits
#: it further by ``online.batch_size``).
WRITE_ROWS = 100_000
#: Rows reduced at a time by ``reduce_batches``.
CHUNK_ROWS = 1_000_000
_ROW = "__sparkfs_row"


def value_columns(group: FeatureGroup) -> list[str]:
    """The columns written online besides the keys: event time, features, commit time."""
    return [group.event_time] + [f.name for f in group.features] + [COMMIT_TIME]


def newest_per_key(group: FeatureGroup, table: pa.Table) -> pa.Table:
    """The newest row per key of ``table`` (see the module docstring); the keys and
    ``value_columns(group)``, in that order."""
    keys = list(group.join_keys)
    table = table.select(keys + value_columns(group))
    if any(table[c].null_count for c in keys + [group.event_time]):
        mask = pc.is_valid(table[keys[0]])
        for c in keys[1:] + [group.event_time]:
            mask = pc.and_(mask, pc.is_valid(table[c]))
        table = table.filter(mask)
    if table.num_rows <= 1:
        return table
    order = pc.sort_indices(table, sort_keys=[(group.event_time, "descending"),
                                              (COMMIT_TIME, "descending")])  # nulls last
    first = (table.select(keys).take(order).append_column(_ROW, order)
             .group_by(keys, use_threads=False).aggregate([(_ROW, "first")]))
    return table.take(first[f"{_ROW}_first"])


def reduce_batches(group: FeatureGroup, batches: Iterable[pa.RecordBatch | pa.Table],
                   chunk_rows: int = CHUNK_ROWS) -> pa.Table | None:
    """``newest_per_key`` over a stream of batches, ``chunk_rows`` rows at a time (None for
    an empty stream)."""
    columns = list(group.join_keys) + value_columns(group)
    newest: pa.Table | None = None
    pending: list[pa.Table] = []
    count = 0

    def fold() -> pa.Table:
        parts = ([newest] if newest is not None else []) + pending
        return newest_per_key(group, pa.concat_tables(parts))

    for batch in batches:
        if not batch.num_rows:
            continue
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        pending.append(table.select(columns))
        count += batch.num_rows
        if count >= chunk_rows:
            newest, pending, count = fold(), [], 0
    if pending:
        newest = fold()
    return newest


def history_batches(group: FeatureGroup, files: list[str]) -> Iterator[pa.RecordBatch]:
    """The needed columns of the history files ``files`` (URIs pyarrow opens), streamed."""
    import pyarrow.dataset as ds

    from ..offline.tables import history_schema

    columns = list(group.join_keys) + value_columns(group)
    dataset = ds.dataset(files, format="parquet", schema=history_schema(group))
    return dataset.to_batches(columns=columns)


def buckets_of(group: FeatureGroup, table: pa.Table, buckets: int) -> Any:
    """A numpy array: each row's bucket, a hash of its join keys modulo ``buckets``
    (DuckDB's ``hash``, over the key columns only)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        con.register("k", table.select(list(group.join_keys)))
        out = con.sql(f"SELECT (hash({quote_idents(list(group.join_keys))}) % {int(buckets)})"
                      "::INTEGER AS b FROM k").to_arrow_table()
    finally:
        con.close()
    return out["b"].to_numpy()


def to_ipc(table: pa.Table | pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return sink.getvalue().to_pybytes()


def from_ipc(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(blob).read_all()


class NewestOfFiles:
    """Stage 1 of the Spark engine, on an executor: the newest row per key in a slice of
    the new history files, cut by key hash into ``(bucket, Arrow IPC bytes)`` pairs for
    the shuffle. Picklable.

    >>> NewestOfFiles({}, 4).buckets
    4
    """

    def __init__(self, group_spec: dict, buckets: int) -> None:
        self.group_spec = group_spec
        self.buckets = buckets

    def __call__(self, files: Iterable[str]) -> Iterator[tuple[int, bytes]]:
        import numpy as np

        paths = list(files)
        if not paths:
            return
        group = FeatureGroup.from_spec(self.group_spec)
        table = reduce_batches(group, history_batches(group, paths))
        if table is None or not table.num_rows:
            return
        bucket = buckets_of(group, table, self.buckets)
        order = np.argsort(bucket, kind="stable")
        table, bucket = table.take(pa.array(order)), bucket[order]
        cuts = [0, *(np.flatnonzero(np.diff(bucket)) + 1).tolist(), table.num_rows]
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            yield int(bucket[lo]), to_ipc(table.slice(lo, hi - lo))


class NewestOfBucket:
    """Stage 2 of the Spark engine, on an executor: the newest row per key of one key
    bucket, from stage 1's pieces. With a store ``config`` it writes them through its own
    store connection, ``WRITE_ROWS`` per call, and yields the count; without, it yields
    them as Arrow IPC chunks of ``WRITE_ROWS`` rows for the driver to write. Picklable.

    >>> NewestOfBucket({}, None).config is None
    True
    """

    def __init__(self, group_spec: dict, config: Config | None) -> None:
        self.group_spec = group_spec
        self.config = config

    def __call__(self, pieces: Iterable[tuple[int, bytes]]) -> Iterator[Any]:
        group = FeatureGroup.from_spec(self.group_spec)
        newest = reduce_batches(group, (from_ipc(blob) for _, blob in pieces))
        if newest is None:
            return
        chunks = newest.to_batches(max_chunksize=WRITE_ROWS)
        if self.config is None:
            for chunk in chunks:
                yield to_ipc(chunk)
            return
        from . import open_online_store

        store = open_online_store(self.config)
        written = 0
        try:
            for chunk in chunks:
                written += store.write_batch(group, chunk)
        finally:
            store.close()
        yield written


def bucket_of(bucket: int) -> int:
    """The shuffle's partition function: stage 1 already gives each piece its bucket."""
    return bucket


__all__ = ["NewestOfBucket", "NewestOfFiles", "newest_per_key", "reduce_batches"]
