"""Materialization: push the newest row per key from Delta history to the online store.

Incremental: the online store keeps a watermark per group version, the last Delta version
pushed. A run reads only the files added after it (``OfflineStore.files_added_between``;
history tables are append-only), keeps the newest row per key (by event time, then
``_commit_time``), writes it, and only then advances the watermark. The store's upsert
never lets an older event replace a newer one, so a run that dies half way is simply run
again: rows it already wrote are rewritten with the same values, and nothing moves back.

Engines: ``"spark"`` (default) — executors write partition by partition, each opening its
own store connection from the (picklable) config; no rows reach the driver. ``"local"`` —
DuckDB on this machine, for laptops and notebooks without Spark. Groups with
aggregations are materialized by ``sparkfs.aggregations.online``.

>>> MaterializeResult("weather", 1, None, 3, 120, 3, 0.5).to_dict()["keys_written"]
3
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from .._extras import require
from ..config import Config, SqliteOnlineConfig
from ..definitions import FeatureGroup
from ..errors import DefinitionError, OnlineStoreError, SparkfsError
from ..offline.tables import COMMIT_TIME
from ..sql import quote_ident, quote_idents

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import SparkProvider
    from ..offline.tables import OfflineStore
    from .base import OnlineStore

ENGINES = ("spark", "local")


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
                engine: str = "spark", batch_rows: int = 10_000, *,
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
                keys = _write_spark(spark, config, group, files)
            else:
                keys = _write_local(online, group, files, batch_rows)
        store.set_watermark(group, current)
    return MaterializeResult(group.name, group.version, watermark, current, rows_read, keys,
                             time.perf_counter() - start, engine, len(files))


def rebuild(offline: "OfflineStore", online: "OnlineStore", group: FeatureGroup,
            engine: str = "spark", batch_rows: int = 10_000, *,
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


def _value_columns(group: FeatureGroup) -> list[str]:
    return [group.event_time] + [f.name for f in group.features] + [COMMIT_TIME]


def _portable_config(config: Config) -> Config:
    """The config with the SQLite path made absolute, so executors find the same file."""
    if isinstance(config.online, SqliteOnlineConfig):
        return config.with_overrides(online={"type": "sqlite", "path": config.sqlite_path,
                                             "busy_timeout_ms": config.online.busy_timeout_ms})
    return config


class PartitionWriter:
    """Runs on executors (``mapInArrow``): writes one partition's Arrow batches to its own
    store connection and yields the number of rows written. Picklable."""

    def __init__(self, config: Config, group_spec: dict) -> None:
        self.config = config
        self.group_spec = group_spec

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from . import open_online_store

        group = FeatureGroup.from_spec(self.group_spec)
        store = open_online_store(self.config)
        written = 0
        try:
            for batch in batches:
                if batch.num_rows:
                    written += store.write_batch(group, batch)
        finally:
            store.close()
        yield pa.RecordBatch.from_pydict({"written": pa.array([written], pa.int64())})


def _write_spark(spark: "SparkProvider", config: Config, group: FeatureGroup,
                 files: list[str]) -> int:
    from pyspark.sql import functions as F

    from ..offline.tables import read_files_spark

    keys = list(group.join_keys)
    values = _value_columns(group)
    df = read_files_spark(spark(), group, files).where(
        " AND ".join(f"{quote_ident(c, 'spark')} IS NOT NULL" for c in keys + [group.event_time]))
    newest = F.max_by(F.struct(*[F.col(c) for c in values]),
                      F.struct(F.col(group.event_time), F.col(COMMIT_TIME)))
    latest = df.groupBy(*keys).agg(newest.alias("_row")).select(*keys, "_row.*")
    writer = PartitionWriter(_portable_config(config), group.to_spec())
    try:
        total = latest.mapInArrow(writer, "written long").agg(F.sum("written")).collect()[0][0]
    except Exception as exc:  # py4j / PythonException: turn it into one readable line
        if isinstance(exc, SparkfsError):
            raise
        raise OnlineStoreError(
            f"materializing feature group {group.name!r} failed while executors wrote to the "
            f"online store: {_root_cause(exc)}. The watermark was not advanced; run "
            "materialize again once the store is reachable") from None
    return int(total or 0)


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
    import duckdb
    import pyarrow.dataset as ds

    from ..offline.tables import history_schema

    history = ds.dataset(files, format="parquet", schema=history_schema(group))  # noqa: F841
    keys = ", ".join(f"h.{quote_ident(k)}" for k in group.join_keys)
    cols = quote_idents(list(group.join_keys) + _value_columns(group))
    not_null = " AND ".join(f"{quote_ident(c)} IS NOT NULL"
                            for c in list(group.join_keys) + [group.event_time])
    con = duckdb.connect()
    try:
        et, ct = f"h.{quote_ident(group.event_time)}", f"h.{quote_ident(COMMIT_TIME)}"
        reader = con.sql(
            f"SELECT unnest(r) FROM (SELECT max_by(h, ({et}, {ct})) AS r FROM "
            f"(SELECT {cols} FROM history WHERE {not_null}) h GROUP BY {keys})"
        ).fetch_record_batch(batch_rows)
        written = 0
        store = online
        try:
            for batch in reader:
                if batch.num_rows:
                    written += store.write_batch(group, batch)
        finally:
            reader.close()
    finally:
        con.close()
    return written
