"""Materialization: push the newest row per key from Delta history to the online store.

Incremental: the online store keeps a watermark per group version, the last Delta version
pushed. A run reads only the files added after it (``OfflineStore.files_added_between``;
history tables are append-only), keeps the newest row per key (by event time, then
``_commit_time``), writes it, and only then advances the watermark. The store's upsert
never lets an older event replace a newer one, so a run that dies half way is simply run
again: rows it already wrote are rewritten with the same values, and nothing moves back.

Both engines keep the newest row per key with ``sparkfs.online.newest`` (Arrow,
vectorised). ``"spark"`` (default): one Spark job of two stages; executors read slices of
the new files with pyarrow and reduce them, Spark shuffles the reduced rows by a hash of
the key as Arrow IPC blobs (no per-row conversion into the JVM), and each key bucket is
reduced again. Into SQLite the driver writes the buckets as they arrive (one writer,
``newest.WRITE_ROWS`` rows per transaction); into any other store each bucket's task writes
through its own connection. ``"local"``: the same reduction in this process, a chunk of
the files at a time, for laptops and notebooks without Spark. Both read the files by URI
with pyarrow (local paths; ``s3://``, ``hdfs://``... with credentials from the
environment). Groups with aggregations are materialized by ``sparkfs.aggregations.online``.

>>> MaterializeResult("weather", 1, None, 3, 120, 3, 0.5).to_dict()["keys_written"]
3
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from .._extras import require
from ..config import Config, SqliteOnlineConfig
from ..definitions import FeatureGroup
from ..errors import DefinitionError, OnlineStoreError, SparkfsError
from .newest import WRITE_ROWS

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import SparkProvider
    from ..offline.tables import OfflineStore
    from .base import OnlineStore

ENGINES = ("spark", "local")

#: History rows per task of the Spark engine's first stage, and per key bucket of its
#: second (a guide: a stage never has fewer tasks than the session's default parallelism).
ROWS_PER_TASK = 2_000_000


@dataclass
class MaterializeResult:
    """What one materialization did. ``from_delta_version`` is the watermark it started
    from (None: first run); ``rows_read`` counts history rows in the new files."""

    group: str
    version: int
    from_delta_version: int | None
    to_delta_version: int
    rows_read: int
    keys_written: int
    duration_s: float
    engine: str = "spark"
    files: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def watermark_and_version(offline: "OfflineStore", online: "OnlineStore", group: FeatureGroup,
                          online_group: FeatureGroup, drop_hint: str) -> tuple[int | None, int]:
    """The stored watermark of ``online_group`` and the current Delta version of ``group``;
    refuses a watermark ahead of the history (the table was recreated)."""
    watermark = online.get_watermark(online_group)
    current = offline.current_version(group)
    if watermark is not None and watermark > current:
        raise OnlineStoreError(
            f"feature group {group.name!r}: the online watermark is Delta version {watermark} "
            f"but the history table is at version {current} (was it recreated?); drop the "
            f"group's online state ({drop_hint}) and materialize again")
    return watermark, current


def materialize(offline: "OfflineStore", online: "OnlineStore", group: FeatureGroup,
                engine: str = "spark", batch_rows: int = WRITE_ROWS, *,
                spark: "SparkProvider | None" = None,
                config: Config | None = None) -> MaterializeResult:
    """Materialize the Delta commits of ``group`` (history in ``offline``) made after its
    watermark into ``online``. ``engine="spark"`` also needs ``spark`` (a
    ``SparkProvider``) and ``config``, the store config executors open the online store
    from; ``engine="local"`` needs neither.

    >>> import tempfile
    >>> from sparkfs import Entity, FeatureGroup, FeatureStore, Field
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> g = FeatureGroup("w", [Entity("airport", ["origin"])], "t", [Field("temp", "double")],
    ...                  online=True)
    >>> _ = fs.apply([g])
    >>> materialize(fs.offline, fs.online, g, engine="local").keys_written
    0
    >>> fs.close()
    """
    if not group.online:
        raise DefinitionError(f"feature group {group.name!r} version {group.version} has "
                              "online=False; set online=True and apply it to materialize it")
    if group.aggregations:
        from ..aggregations.online import materialize_aggregations

        return materialize_aggregations(offline, online, group)
    if engine not in ENGINES:
        raise DefinitionError(f"materialize engine {engine!r} is unknown; use one of {ENGINES}")
    if engine == "spark":
        require("pyspark", extra="spark",
                what="materialize with engine='spark' (engine='local' needs no Spark)")
        if spark is None or config is None:
            raise SparkfsError("materialize with engine='spark' needs spark= (a SparkProvider) "
                               "and config= (what executors open the online store from)")
    start = time.perf_counter()
    store = online
    watermark, current = watermark_and_version(offline, online, group, group,
                                               "fs.online.drop(group)")
    files: list[str] = []
    rows_read = keys = 0
    if watermark != current:
        files = offline.files_added_between(group, watermark, current)
        rows_read = _count_rows(offline, group, current, files)
        if files:
            if engine == "spark":
                assert spark is not None and config is not None  # checked above
                keys = _write_spark(spark, config, online, group, files, rows_read)
            else:
                keys = _write_local(online, group, files, batch_rows)
        store.set_watermark(group, current)
    return MaterializeResult(group.name, group.version, watermark, current, rows_read, keys,
                             time.perf_counter() - start, engine, len(files))


def rebuild(offline: "OfflineStore", online: "OnlineStore", group: FeatureGroup,
            engine: str = "spark", batch_rows: int = WRITE_ROWS, *,
            spark: "SparkProvider | None" = None,
            config: Config | None = None) -> MaterializeResult:
    """Rebuild ``group``'s online state from its Delta history alone: drop the online table
    and its watermark (for a windowed-aggregation group, its event state), then materialize
    every commit (``spark`` and ``config`` as for ``materialize``). Use it for a new,
    emptied or damaged online store; reads of the group find no values until it finishes.

    >>> import tempfile
    >>> from sparkfs import Entity, FeatureGroup, FeatureStore, Field
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> g = FeatureGroup("w", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
    >>> _ = fs.apply([g])
    >>> rebuild(fs.offline, fs.online, g, engine="local").keys_written
    0
    >>> fs.close()
    """
    if not group.online:
        raise DefinitionError(f"feature group {group.name!r} version {group.version} has "
                              "online=False: it has no online state to rebuild")
    if engine not in ENGINES:
        raise DefinitionError(f"materialize engine {engine!r} is unknown; use one of {ENGINES}")
    if group.aggregations:
        from ..aggregations.online import state_group

        online.drop(state_group(group))
    else:
        online.drop(group)
    return materialize(offline, online, group, engine=engine, batch_rows=batch_rows,
                       spark=spark, config=config)


def _count_rows(offline: "OfflineStore", group: FeatureGroup, version: int,
                files: list[str]) -> int:
    """Rows in ``files``, from the Delta log's statistics (no data read)."""
    from ..offline.tables import _join

    wanted = set(files)
    base = offline.table_uri(group)
    adds = pa.table(offline.table(group, version).get_add_actions(flatten=True)).to_pylist()
    return sum(int(a.get("num_records") or 0) for a in adds if _join(base, a["path"]) in wanted)


def _write_spark(spark: "SparkProvider", config: Config, online: "OnlineStore",
                 group: FeatureGroup, files: list[str], rows: int) -> int:
    """The newest row per key of ``files`` in one Spark job of two stages (see the module
    docstring); returns the rows written. ``rows`` (history rows in ``files``) sizes the
    stages: ``ROWS_PER_TASK`` per task, at least the default parallelism."""
    from .newest import NewestOfBucket, NewestOfFiles, bucket_of, from_ipc

    sc = spark().sparkContext
    parallel = max(1, sc.defaultParallelism)
    tasks = min(len(files), max(parallel, math.ceil(rows / ROWS_PER_TASK)))
    buckets = max(parallel, math.ceil(rows / ROWS_PER_TASK))
    driver_writes = isinstance(config.online, SqliteOnlineConfig)
    spec = group.to_spec()
    newest = (sc.parallelize(files, tasks).mapPartitions(NewestOfFiles(spec, buckets))
              .partitionBy(buckets, bucket_of)
              .mapPartitions(NewestOfBucket(spec, None if driver_writes else config)))
    try:
        if driver_writes:
            written = 0
            for blob in newest.toLocalIterator(prefetchPartitions=True):
                written += online.write_batch(group, from_ipc(blob))
            return written
        return int(newest.sum())
    except Exception as exc:  # py4j / PythonException: turn it into one readable line
        if isinstance(exc, SparkfsError):
            raise
        where = ("while executors read the new history files" if driver_writes else
                 "while executors wrote to the online store")
        raise OnlineStoreError(
            f"materializing feature group {group.name!r} failed {where}: {_root_cause(exc)}. "
            "The watermark was not advanced; run materialize again once the store and the "
            "files are reachable") from None


def _root_cause(exc: BaseException) -> str:
    text = str(exc)
    for line in text.splitlines():
        for marker in ("OnlineStoreError: ", "ValidationError: "):
            if marker in line:
                return line.split(marker, 1)[1].strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:500] if lines else type(exc).__name__


def _write_local(online: "OnlineStore", group: FeatureGroup, files: list[str],
                 batch_rows: int) -> int:
    from .newest import history_batches, reduce_batches

    try:
        newest = reduce_batches(group, history_batches(group, files))
    except (OSError, pa.ArrowException) as exc:
        raise OnlineStoreError(
            f"materializing feature group {group.name!r} failed while reading its new history "
            f"files: {exc}. Nothing was written and the watermark was not advanced") from None
    if newest is None:
        return 0
    return sum(online.write_batch(group, chunk)
               for chunk in newest.to_batches(max_chunksize=batch_rows))
