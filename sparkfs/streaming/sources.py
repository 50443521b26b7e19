"""Streaming DataFrames for ``ingest_stream``: Kafka topics, files landing in a directory,
and Delta tables.

- ``kafka_source``: values are JSON objects parsed with the group's schema, or Avro
  records decoded with Spark's ``from_avro`` (``value_format="avro"``; spark-avro is in the
  ``spark-kafka`` bundle) (``sparkfs.streaming.parse``); unparseable ones are quarantined
  by the stream with their payload, reason and ``topic/partition/offset``.
  ``starting_offsets`` applies to a new checkpoint only (default ``"earliest"``: nothing
  already in the topic is skipped); a restarted stream resumes from its checkpoint. A
  broker that stays unreachable fails the query after ``kafka.default.api.timeout.ms``
  (60 s by default here).
- ``files_source``: JSON-lines files are parsed like Kafka values (origin: the file);
  Parquet and CSV files are read with the group's input schema.
- ``delta_source``: the rows appended to a Delta table (any table delta-rs reads, e.g.
  another group's history), version by version; with ``change_feed=True`` the table's
  change data feed (inserts and update post-images). Implemented as a Python streaming
  data source over delta-rs, so the session needs no Delta jars; one micro-batch covers
  the versions committed since the previous one. Unpartitioned tables only (history
  tables are unpartitioned).

The Spark Kafka connector must be on the session's classpath
(``sparkfs.jvm.jars("spark-kafka")`` on ``spark.jars``).

>>> delta_source_class().name()
'sparkfs_delta'
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..definitions import FeatureGroup
from ..errors import ConfigError
from . import parse

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

FORMATS = ("json", "parquet", "csv")


def _label(df: DataFrame, text: str) -> DataFrame:
    try:
        df._sparkfs_source = text  # type: ignore[attr-defined]  # read by ingest_stream
    except AttributeError:  # pragma: no cover - a frame class that refuses attributes
        pass
    return df


def kafka_source(spark: SparkSession, group: FeatureGroup, bootstrap_servers: str,
                 topic: str, starting_offsets: str | Mapping[str, Any] = "earliest",
                 options: Mapping[str, str] | None = None, value_format: str = "json",
                 avro_schema: str | None = None) -> DataFrame:
    """A streaming frame of the values of ``topic`` parsed for ``group``: JSON objects
    (``value_format="json"``) or Avro records (``"avro"``: plain Avro binary decoded with
    ``avro_schema``, JSON text, default ``sparkfs.streaming.parse.avro_schema(group)``;
    ``"avro-confluent"``: the same records in the Confluent wire format Schema-Registry
    serializers write, a magic byte and a 4-byte schema id first — a message without that
    header is quarantined with its payload).

    ``options`` are passed to Spark's Kafka source (e.g. ``maxOffsetsPerTrigger``)."""
    from pyspark.sql import functions as F

    if value_format not in ("json", "avro", "avro-confluent"):
        raise ConfigError(f"kafka_source value_format {value_format!r} is not supported; use "
                          "'json', 'avro' or 'avro-confluent'")
    if avro_schema is not None and not value_format.startswith("avro"):
        raise ConfigError("kafka_source: avro_schema is given but value_format is not 'avro' "
                          "or 'avro-confluent'")

    if not isinstance(starting_offsets, str):
        starting_offsets = json.dumps(starting_offsets)
    reader = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", bootstrap_servers)
              .option("subscribe", topic)
              .option("startingOffsets", starting_offsets)
              .option("kafka.default.api.timeout.ms", "60000"))
    for k, v in (options or {}).items():
        reader = reader.option(k, str(v))
    try:
        raw = reader.load()
    except Exception as exc:
        if "kafka" in str(exc).lower() and "find data source" in str(exc).lower():
            raise ConfigError(
                "Spark's Kafka connector is not on this session's classpath: start Spark with "
                "spark.jars = sparkfs.jvm.jars('spark-kafka') (fetch it with "
                "`python -m sparkfs.jvm fetch spark-kafka`)") from None
        raise
    origin = F.concat_ws("/", F.col("topic"), F.col("partition").cast("string"),
                         F.col("offset").cast("string"))
    if value_format.startswith("avro"):
        df = parse.parse_avro_frame(raw, F.col("value"), group, avro_schema, origin,
                                    confluent=value_format == "avro-confluent")
    else:
        df = parse.parse_json_frame(raw, F.col("value").cast("string"), group, origin)
    return _label(df, f"kafka:{topic}")


def files_source(spark: SparkSession, group: FeatureGroup, path: str, format: str = "json",
                 options: Mapping[str, str] | None = None) -> DataFrame:
    """A streaming frame of the files landing under ``path`` (``json`` lines, ``parquet``
    or ``csv`` with a header)."""
    from pyspark.sql import functions as F

    if format not in FORMATS:
        raise ConfigError(f"files_source format {format!r} is not supported; use one of {FORMATS}")
    opts = {k: str(v) for k, v in (options or {}).items()}
    if format == "json":
        raw = spark.readStream.options(**opts).text(path)
        df = parse.parse_json_frame(raw, F.col("value"), group, F.input_file_name())
    else:
        if format == "csv":
            opts.setdefault("header", "true")
        df = spark.readStream.schema(parse.input_schema(group)).options(**opts).format(format).load(path)
    return _label(df, f"files:{path}")


def delta_source(spark: SparkSession, uri: str, change_feed: bool = False,
                 storage_options: Mapping[str, str] | None = None,
                 starting_version: int | None = None) -> DataFrame:
    """A streaming frame of the rows appended to the Delta table at ``uri`` (from
    ``starting_version`` on; default: the whole table), or of its change data feed."""
    source = delta_source_class()
    spark.dataSource.register(source)
    reader = (spark.readStream.format(source.name()).option("path", uri)
              .option("change_feed", "true" if change_feed else "false")
              .option("storage_options", json.dumps(dict(storage_options or {}))))
    if starting_version is not None:
        reader = reader.option("starting_version", str(int(starting_version)))
    return _label(reader.load(), f"delta:{uri}")


def _table(uri: str, options: dict, version: int | None = None):
    from deltalake import DeltaTable

    return DeltaTable(uri, version=version, storage_options=options or None)


def _make_source_class():
    from pyspark.sql.datasource import (
        DataSource,
        DataSourceStreamReader,
        InputPartition,
    )

    class FilesPartition(InputPartition):
        def __init__(self, files: list[str], start: int, end: int) -> None:
            super().__init__(files)
            self.files, self.start, self.end = files, start, end

    class Reader(DataSourceStreamReader):
        def __init__(self, options: dict) -> None:
            self.uri = options["path"]
            self.cdf = options.get("change_feed", "false") == "true"
            self.storage = json.loads(options.get("storage_options") or "{}")
            self.first = int(options["starting_version"]) if "starting_version" in options else 0

        def initialOffset(self) -> dict:
            return {"version": self.first - 1}

        # pyspark's runner still calls the no-argument form (no admission control here)
        def latestOffset(self) -> dict:  # type: ignore[override]
            return {"version": _table(self.uri, self.storage).version()}

        def partitions(self, start: dict, end: dict) -> list:
            lo, hi = int(start["version"]), int(end["version"])
            if hi <= lo:
                return []
            if self.cdf:
                return [FilesPartition([], lo, hi)]
            return [FilesPartition([f], lo, hi) for f in _added_files(self.uri, self.storage, lo, hi)]

        def read(self, partition: Any):
            import pyarrow.parquet as pq

            if self.cdf:
                cdf = _table(self.uri, self.storage).load_cdf(
                    starting_version=partition.start + 1, ending_version=partition.end)
                table = cdf.read_all()
                keep = [c for c in table.column_names if not c.startswith("_c")]
                mask = [t in ("insert", "update_postimage") for t in table["_change_type"].to_pylist()]
                import pyarrow as pa

                table = table.filter(pa.array(mask)).select(keep)
            else:
                table = pq.read_table(partition.files[0])
            yield from table.to_batches()

        def commit(self, end: dict) -> None:
            pass

    class Source(DataSource):
        @classmethod
        def name(cls) -> str:
            return "sparkfs_delta"

        def schema(self):
            from pyspark.sql.pandas.types import from_arrow_schema

            table = _table(self.options["path"], json.loads(self.options.get("storage_options") or "{}"))
            if table.metadata().partition_columns:
                raise ConfigError(f"delta_source: the table at {self.options['path']!r} is "
                                  "partitioned; read it with spark.readStream.format('delta') "
                                  "(delta-spark) instead")
            import pyarrow as pa

            return from_arrow_schema(pa.schema(table.schema().to_arrow()))

        def streamReader(self, schema: Any):
            return Reader(dict(self.options))

    return Source


def _added_files(uri: str, options: dict, after: int, upto: int) -> list[str]:
    """Absolute paths of the data files added in versions (after, upto] (append-only)."""
    import pyarrow as pa

    def files(version: int) -> set[str]:
        if version < 0:
            return set()
        return set(pa.table(_table(uri, options, version).get_add_actions(flatten=True))["path"].to_pylist())

    base = uri.rstrip("/")
    new = sorted(files(upto) - files(after))
    return [p if "://" in p or p.startswith("/") else f"{base}/{p}" for p in new]


@functools.cache
def delta_source_class() -> Any:
    """The Python streaming data source behind ``delta_source`` (built on first use, so
    importing this module needs no pyspark)."""
    return _make_source_class()
