"""Delta history tables: one per feature group version, read and created with delta-rs.

Layout of ``{offline_root}/{group}__v{version}``: the join keys, the event-time column,
the stored features (inputs, then derived), then two system columns:

``_commit_time``  timestamp (UTC, microseconds): when the store learned the row — the start
                  of the ingest that wrote it. "As known at" reads compare against it; on
                  ties in event time the row with the later ``_commit_time`` wins.
``_run_id``       the ingest run id (string).

No partition columns: files written by one ingest cover the batch's event-time range, and
every file carries full min/max statistics, so reads filtered on event time skip files.
Nothing here imports pyspark; ``spark_reader`` does it lazily.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..definitions import FeatureGroup
from ..dtypes import ALL, TIMESTAMP_ARROW
from ..errors import NotFoundError, SparkfsError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow.dataset
    from deltalake import DeltaTable
    from pyspark.sql import DataFrame, SparkSession

COMMIT_TIME = "_commit_time"
RUN_ID = "_run_id"
SYSTEM_COLUMNS = (COMMIT_TIME, RUN_ID)

TIMESTAMP = TIMESTAMP_ARROW

#: dtype -> Arrow type of its history column (a view of ``sparkfs.dtypes.ALL``).
ARROW_TYPES: dict[str, pa.DataType] = {n: d.arrow for n, d in ALL.items()}


def arrow_type(dtype: str) -> pa.DataType:
    """The Arrow type of dtype ``dtype`` (``sparkfs.dtypes.arrow_type``).

    >>> arrow_type("int")
    DataType(int32)
    """
    return ALL[dtype].arrow


def history_schema(group: FeatureGroup) -> pa.Schema:
    """The Arrow schema of a group's Delta history table, in column order."""
    fields = [pa.field(c, arrow_type(d)) for c, d in group.column_dtypes.items()]
    fields += [pa.field(COMMIT_TIME, TIMESTAMP), pa.field(RUN_ID, pa.string())]
    return pa.schema(fields)


def spark_schema(group: FeatureGroup):
    """The same schema as a Spark ``StructType`` (imports pyspark)."""
    from pyspark.sql.types import StructType

    ddl = [f"`{c}` {ALL[d].spark}" for c, d in group.column_dtypes.items()]
    ddl += [f"`{COMMIT_TIME}` timestamp", f"`{RUN_ID}` string"]
    return StructType.fromDDL(", ".join(ddl))


class OfflineStore:
    """The Delta history tables under one root (local path, ``s3://``, ``hdfs://``...).

    Reading through this class needs no Spark: ``read_arrow`` goes through delta-rs.
    """

    def __init__(self, root: str, storage_options: dict[str, str] | None = None) -> None:
        self.root = root.rstrip("/")
        self.storage_options = dict(storage_options or {})

    # -- locations --------------------------------------------------------------------
    def table_uri(self, group: FeatureGroup) -> str:
        return f"{self.root}/{group.table_name}"

    def quarantine_uri(self, group: FeatureGroup) -> str:
        return f"{self.root}/_quarantine/{group.table_name}"

    def exists(self, group: FeatureGroup) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.table_uri(group), self.storage_options or None)

    # -- create -------------------------------------------------------------------------
    def create(self, group: FeatureGroup) -> None:
        """Create the empty history table (version 0) if it does not exist yet."""
        from deltalake import DeltaTable

        uri = self.table_uri(group)
        if "://" not in uri:
            os.makedirs(uri, exist_ok=True)
        DeltaTable.create(
            uri, schema=history_schema(group), mode="ignore",
            name=group.table_name, description=group.description or None,
            storage_options=self.storage_options or None,
        )

    # -- open ---------------------------------------------------------------------------
    def table(self, group: FeatureGroup, version: int | None = None,
              as_of: dt.datetime | str | None = None) -> "DeltaTable":
        """Open the group's Delta table, optionally at a version or at a point in time."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        uri = self.table_uri(group)
        try:
            t = DeltaTable(uri, storage_options=self.storage_options or None)
        except TableNotFoundError:
            raise NotFoundError(
                f"feature group {group.name!r} version {group.version} has no Delta history at "
                f"{uri}; run fs.apply([...]) first") from None
        if version is not None and as_of is not None:
            raise SparkfsError("pass version or as_of, not both")
        if version is not None:
            current = t.version()
            if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= current:
                raise NotFoundError(
                    f"feature group {group.name!r} has Delta versions 0..{current}; "
                    f"version {version!r} does not exist")
            if version != current:
                t.load_as_version(version)
        elif as_of is not None:
            # The newest version committed by ``when``, by the commit times the log records
            # (the same ones ``commit_times`` shows). delta-rs's own timestamp lookup uses the
            # log files' modification times, which lag those by the write's duration, so a
            # reader given a version's own commit time could get the version before it.
            when = _as_utc(as_of)
            times = self.commit_times(group)
            first = times.get(0)
            if first is not None and when < first:
                raise NotFoundError(
                    f"feature group {group.name!r} did not exist yet at {when.isoformat()} "
                    f"(its table was created at {first.isoformat()})")
            known = [v for v, at in times.items() if at <= when]
            if known:
                version = max(known)
                if version != t.version():
                    t.load_as_version(version)
            else:  # no commit info in the log (another writer): delta-rs's lookup
                t.load_as_version(when)
        return t

    def current_version(self, group: FeatureGroup) -> int:
        return self.table(group).version()

    def commit_times(self, group: FeatureGroup) -> dict[int, dt.datetime]:
        """Delta version -> commit timestamp (UTC)."""
        out = {}
        for h in self.table(group).history():
            ts = h.get("timestamp")
            if ts is not None and "version" in h:
                out[int(h["version"])] = dt.datetime.fromtimestamp(ts / 1000, tz=dt.UTC)
        return out

    # -- files ----------------------------------------------------------------------------
    def files(self, group: FeatureGroup, version: int | None = None,
              event_time_range: tuple[Any, Any] | None = None) -> list[str]:
        """Absolute URIs of the data files of ``version``; with ``event_time_range``
        (inclusive bounds, either may be None) only files whose statistics overlap it."""
        t = self.table(group, version)
        if event_time_range is None:
            return t.file_uris()
        lo, hi = (None if b is None else _as_utc(b) for b in event_time_range)
        adds = pa.table(t.get_add_actions(flatten=True))
        et = group.event_time
        base = self.table_uri(group)
        out = []
        for row in adds.to_pylist():
            fmin, fmax = row.get(f"min.{et}"), row.get(f"max.{et}")
            if fmin is not None and hi is not None and fmin > hi:
                continue
            if fmax is not None and lo is not None and fmax + dt.timedelta(milliseconds=1) < lo:
                continue  # stats are truncated to milliseconds
            out.append(_join(base, row["path"]))
        return out

    def files_added_between(self, group: FeatureGroup, after_version: int | None,
                            upto_version: int) -> list[str]:
        """Files in ``upto_version`` that were not in ``after_version`` (tables are
        append-only, so these are exactly the rows committed in between)."""
        new = set(self.table(group, upto_version).file_uris())
        if after_version is not None and after_version >= 0:
            new -= set(self.table(group, after_version).file_uris())
        return sorted(new)

    # -- reads --------------------------------------------------------------------------------
    def read_arrow(self, group: FeatureGroup, version: int | None = None,
                   as_of: dt.datetime | str | None = None,
                   columns: Sequence[str] | None = None) -> pa.Table:
        """Read a version of the history into Arrow, without Spark."""
        t = self.table(group, version, as_of)
        schema = history_schema(group)
        tbl = pa.table(arrow_dataset(t).to_table(columns=list(columns) if columns else None))
        want = schema if columns is None else pa.schema([schema.field(c) for c in columns])
        return tbl.select(want.names).cast(want)

    def read_spark(self, spark: "SparkSession", group: FeatureGroup, version: int | None = None,
                   as_of: dt.datetime | str | None = None) -> "DataFrame":
        """Read a version of the history into a Spark DataFrame (executors read the files)."""
        t = self.table(group, version, as_of)
        return read_files_spark(spark, group, t.file_uris())


def arrow_dataset(table: "DeltaTable", schema: pa.Schema | None = None) -> "pyarrow.dataset.Dataset":
    """A pyarrow dataset over the files of ``table``'s loaded version.

    Local tables are scanned through pyarrow's native file system. delta-rs's default is a
    Python file system whose buffers can be released on a pyarrow I/O thread after the
    interpreter has begun to shut down, which aborts the process at exit ("terminate
    called without an active exception", apache/arrow#34314). Remote tables (s3://, ...)
    keep delta-rs's file system, which carries the storage options.

    >>> ds = arrow_dataset(fs.offline.table(group))  # doctest: +SKIP
    >>> ds.to_table().num_rows  # doctest: +SKIP
    3
    """
    import pyarrow.fs as pafs

    uri = table.table_uri
    native = None
    if "://" not in uri or uri.startswith("file://"):
        root = os.path.abspath(uri.removeprefix("file://"))
        native = pafs.SubTreeFileSystem(root, pafs.LocalFileSystem())
    return table.to_pyarrow_dataset(filesystem=native, schema=schema)


def read_files_spark(spark: "SparkSession", group: FeatureGroup, uris: Sequence[str]) -> "DataFrame":
    """Spark DataFrame over the given history files, with the group's explicit schema."""
    schema = spark_schema(group)
    if not uris:
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).parquet(*[_spark_path(u) for u in uris])


def _spark_path(uri: str) -> str:
    return uri if "://" in uri else "file://" + uri


def _join(base: str, path: str) -> str:
    if "://" in path or path.startswith("/"):
        return path
    from urllib.parse import unquote

    return f"{base}/{unquote(path)}"


def _as_utc(value: Any) -> dt.datetime:
    """A datetime, a pandas Timestamp or an ISO string, as an aware UTC datetime.
    Naive values are taken to be UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise SparkfsError(f"{value!r} is not a point in time")
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
