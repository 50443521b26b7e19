"""The two ways a checked, deduped batch reaches a group's Delta history, behind one
``Writer`` protocol and chosen in one place (``choose_writer``):

``delta-rs``     Spark's executors write Parquet into a staging folder under the table; the
                 driver commits those files with full statistics and the run's app
                 transaction in one Delta commit through delta-rs. The commit is optimistic
                 and lands on exactly the version it was checked against
                 (``max_commit_retries=0``): when another writer got there first, the
                 writer re-reads the table, returns "already committed" if that writer
                 committed the same run id, re-dedupes the batch against the files added
                 since (only those overlapping the batch's event-time range), and tries
                 again; after ``MAX_ATTEMPTS`` it raises ``ConcurrentWriteError`` (retryable,
                 nothing written).
``delta-spark``  Spark's own Delta writer (the session has the delta-spark jars): one
                 insert-only MERGE (``WHEN NOT MATCHED THEN INSERT`` on join keys, event
                 time and the value hashes: the dedupe identity of ``delta-rs``), carrying
                 the run's app transaction (``spark.databricks.delta.write.txnAppId``), so
                 the dedupe runs against the version the commit lands on. Delta refuses it
                 when another MERGE added files since it read the table or committed the
                 same run id; the writer then re-checks as above.

Both writers share the retry loop ``commit_on_top``. Both write the same columns (system
columns ``_commit_time``/``_run_id`` included), the same ``timestamp``
(UTC, microseconds) type and protocol (reader 1 / writer 2), so each engine reads and
appends to the other's tables.

>>> sorted(WRITERS)
['delta-rs', 'delta-spark']
>>> app_id("weather-2013-01-01")
'sparkfs-ingest:weather-2013-01-01'
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..definitions import FeatureGroup
from ..errors import ConcurrentWriteError, ConfigError, SparkfsError, first_line
from .dedupe import known_empty, merge_condition, without_stored_rows
from .tables import history_schema, read_files_spark

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from .tables import OfflineStore

MAX_ATTEMPTS = 8
#: Delta Lake's optimistic-concurrency conflicts (io.delta.exceptions.*): re-check and retry
_DELTA_CONFLICTS = ("ConcurrentTransactionException", "ConcurrentAppendException",
                    "ConcurrentWriteException", "MetadataChangedException",
                    "ProtocolChangedException")


def app_id(run_id: str) -> str:
    """The Delta app-transaction id that marks ``run_id`` as committed."""
    return f"sparkfs-ingest:{run_id}"


@dataclass
class Batch:
    """A checked batch ready to commit: ``df`` has the history columns in order (system
    columns included); ``base_version`` is the Delta version it was deduped against."""

    group: FeatureGroup
    df: "DataFrame"
    run_id: str
    commit_time: dt.datetime
    base_version: int
    rows_hint: int
    et_range: tuple[Any, Any]
    value_cols: list[str] = field(default_factory=list)
    #: ``df`` was deduped against stored files (it may hold no row at all: a replay)
    deduped: bool = False
    #: (name, dtype) of the features whose statistics partial the writer computes while
    #: writing (None: statistics off, or left to the caller)
    stats_specs: list[tuple[str, str]] | None = None
    #: the batch's row count and event-time range (``sparkfs.offline.fingerprint.batch_key``),
    #: recorded in its commit to find a replay of it; None: not recorded
    batch_key: str | None = None
    #: the sum modulo 2**64 of the batch's row hashes (``sparkfs.offline.fingerprint.total``),
    #: recorded beside ``batch_key`` so a replay is compared without reading the files
    batch_hash: int | None = None


@dataclass
class Written:
    """What a writer did: rows committed and the Delta version (None: nothing new), or
    ``already``: another writer had committed this run id (``version`` is that commit)."""

    rows: int
    version: int | None
    already: bool = False
    #: the merged ``sparkfs.monitoring.sketches.Partial`` of the committed rows, when the
    #: writer computed it in its write pass (delta-rs with ``Batch.stats_specs``)
    partial: Any = None


class Writer(Protocol):
    """Commits one batch to a group's Delta history in a single atomic commit."""

    name: str

    def write(self, batch: Batch) -> Written: ...


def choose_writer(choice: str, offline: "OfflineStore", spark: Any) -> Writer:
    """The writer for ``offline.engine`` (``auto``: delta-spark when the session can load
    the Delta jars, else delta-rs)."""
    from ..sparkutil import has_delta_jars

    if choice not in ("auto", *WRITERS):
        raise ConfigError(f"offline.engine {choice!r} is unknown; use auto, delta-rs or delta-spark")
    if choice == "delta-rs":
        return DeltaRsWriter(offline)
    jars = has_delta_jars(spark)
    if choice == "delta-spark" and not jars:
        raise ConfigError(
            "offline.engine is 'delta-spark' but this SparkSession cannot load the Delta jars "
            "(io.delta.tables.DeltaTable); start Spark with them (spark.delta_jars: true, "
            "sparkfs.sparkutil.delta_spark_conf(), or --jars), or set offline.engine to "
            "'auto' or 'delta-rs'")
    return DeltaSparkWriter(offline) if jars else DeltaRsWriter(offline)


def commit_metadata(h: Mapping[str, Any]) -> dict[str, Any]:
    """The sparkfs keys of one Delta commit (``sparkfs.operation``, ``sparkfs.run_id``,
    ``sparkfs.rows``), whichever writer made it: delta-rs stores them as commit-info fields,
    delta-spark as JSON in ``userMetadata`` (its row count then comes from the MERGE's
    operation metrics). Empty for a commit sparkfs did not make.

    >>> commit_metadata({"userMetadata": '{"sparkfs.run_id": "r1"}',
    ...                  "operationMetrics": {"numTargetRowsInserted": "2"}})
    {'sparkfs.run_id': 'r1', 'sparkfs.rows': '2'}
    """
    out = {k: v for k, v in h.items() if k.startswith("sparkfs.")}
    meta = h.get("userMetadata")
    if out or not isinstance(meta, str):
        return out
    try:
        parsed = json.loads(meta)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    out = {k: v for k, v in parsed.items() if k.startswith("sparkfs.")}
    metrics = h.get("operationMetrics") or {}
    rows = metrics.get("numTargetRowsInserted", metrics.get("numOutputRows"))
    if out and rows is not None and "sparkfs.rows" not in out:
        out["sparkfs.rows"] = str(rows)
    return out


def version_of_run(table: Any, run_id: str, default: int) -> int:
    """The Delta version whose commit carries ``run_id`` (searching recent history)."""
    for h in table.history(100):
        if commit_metadata(h).get("sparkfs.run_id") == run_id and "version" in h:
            return int(h["version"])
    return default


def _new_overlapping_files(offline: "OfflineStore", batch: Batch, seen: int, now: int) -> list[str]:
    """Files committed after version ``seen`` (up to ``now``) whose event-time statistics
    overlap the batch."""
    if now == seen:
        return []
    before = set(offline.files(batch.group, seen))
    return [f for f in offline.files(batch.group, now, batch.et_range) if f not in before]


#: one attempt to commit ``df`` on top of the version just read: the ``Written`` outcome,
#: or None when another writer committed first (re-read, re-check, try again)
Attempt = Callable[["DataFrame", int], "Written | None"]


def commit_on_top(offline: "OfflineStore", batch: Batch, df: "DataFrame", attempt: Attempt,
                  restage: "Callable[[DataFrame], DataFrame] | None" = None,
                  is_empty: "Callable[[DataFrame], bool] | None" = None,
                  dedupe: "Callable[[Any, list[str]], Any] | None" = None) -> Written:
    """The retry loop both writers share. Each round re-reads the table; returns "already
    committed" when another writer committed the run id; re-dedupes ``df`` against the
    files committed since the last round (only those overlapping the batch's event-time
    range; ``restage`` may then materialize the smaller frame); returns "nothing new" when
    no row is left; else calls ``attempt(df, now)``. After ``MAX_ATTEMPTS`` rounds lost to
    other writers it raises ``ConcurrentWriteError`` (retryable, nothing written).
    ``dedupe(df, new_files)`` replaces the Spark anti-join (``without_stored_rows``) for a
    batch that is not a Spark DataFrame (the local engine's Arrow table).

    >>> MAX_ATTEMPTS  # rounds before ConcurrentWriteError; exercised by test_ingest_concurrency
    8
    """
    group, seen = batch.group, batch.base_version
    for _attempt in range(MAX_ATTEMPTS):
        table = offline.table(group)
        now = table.version()
        if table.transaction_version(app_id(batch.run_id)) is not None:
            return Written(0, version_of_run(table, batch.run_id, now), already=True)
        new_files = _new_overlapping_files(offline, batch, seen, now)
        if new_files and dedupe is not None:
            df = dedupe(df, new_files)
            if restage is not None:
                df = restage(df)
        elif new_files:  # another writer committed rows in our range since we deduped
            df = without_stored_rows(
                df.sparkSession, group, df, new_files,
                {"min_et": batch.et_range[0], "max_et": batch.et_range[1]}, batch.value_cols)
            if restage is not None:
                df = restage(df)
        seen = now
        if (is_empty(df) if is_empty is not None else df.isEmpty()):
            return Written(0, None)
        out = attempt(df, now)
        if out is not None:
            return out
    raise ConcurrentWriteError(
        f"feature group {group.name!r}: other writers committed to its Delta table "
        f"{MAX_ATTEMPTS} times while run {batch.run_id!r} tried to; nothing was written — "
        "retry the same call (the run id keeps it idempotent)")


# -- delta-rs -------------------------------------------------------------------------------
def commit_staged(table: Any, batch: Batch, actions: list, rows: int) -> bool:
    """Commit the staged files ``actions`` (``rows`` rows) of ``batch`` with its app
    transaction and sparkfs commit metadata on ``table``, the Delta table opened at the
    version ``now`` the rows were deduped against, as version ``now + 1`` exactly: False
    when another writer committed that version first (re-read and re-check).

    Opened at ``now``, the commit can only be version now+1: a commit by any writer (either
    engine) since then fails it, and the caller's loop re-dedupes. Not a blind append: a
    delta-spark MERGE that read the table before this commit conflicts with it.

    >>> commit_staged.__name__  # exercised by tests/test_ingest.py and test_ingest_local.py
    'commit_staged'
    """
    from deltalake.exceptions import CommitFailedError
    from deltalake.transaction import CommitProperties, Transaction

    from .fingerprint import COMMIT_KEY, HASH_KEY

    meta: dict[str, Any] = {"sparkfs.operation": "ingest", "sparkfs.run_id": batch.run_id,
                            "sparkfs.rows": str(rows), "isBlindAppend": False}
    if batch.batch_key is not None:
        meta[COMMIT_KEY] = batch.batch_key
        if batch.batch_hash is not None:
            meta[HASH_KEY] = str(batch.batch_hash)
    try:
        table.create_write_transaction(
            actions, mode="append", schema=history_schema(batch.group),
            commit_properties=CommitProperties(
                max_commit_retries=0,
                app_transactions=[Transaction(app_id(batch.run_id), 1)],
                custom_metadata=meta))
    except CommitFailedError:
        return False
    return True


def add_actions(files: list, subdir: str) -> tuple[list, int]:
    """The Delta add actions of the ``onepass.StagedFile`` s written into ``subdir`` of the
    table (empty files left out) and their row count.

    >>> add_actions([], "ingest-x")
    ([], 0)
    """
    from deltalake.transaction import AddAction

    from .onepass import now_ms

    out: list[AddAction] = []
    written = 0
    mtime = now_ms()
    for f in sorted(files, key=lambda f: f.path):
        if f.rows == 0:
            continue
        written += f.rows
        out.append(AddAction(f"{subdir}/{f.path}", f.size, {}, mtime, True, f.stats))
    return out, written


class DeltaRsWriter:
    """Executors write Parquet under the table; the driver commits it with delta-rs."""

    name = "delta-rs"

    def __init__(self, offline: "OfflineStore") -> None:
        self.offline = offline

    def write(self, batch: Batch) -> Written:
        from .parquet_stats import delete_dir
        from .staging import remove_owner, stage_owner_path

        df = batch.df
        if batch.deduped and self._nothing_left(df):
            # Every row is stored already (a replay under a new run id): write no file at
            # all; the shared loop still answers "already committed" for a concurrent run.
            # The dedupe decided it (``without_stored_rows``: an empty frame); no Spark job
            # runs here. (A frame that is not known empty is staged straight away: a task
            # whose partition has no row writes no file.)
            return commit_on_top(self.offline, batch, df, lambda _df, _now: Written(0, None),
                                 is_empty=lambda _df: True)
        uri = self.offline.table_uri(batch.group)
        subdir = f"ingest-{batch.commit_time:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        owner = stage_owner_path(uri, subdir)
        self._clean_abandoned(batch.group)
        from .staging import write_owner

        write_owner(owner)
        try:
            out = self._stage_and_commit(batch, df, subdir)
        except BaseException:
            for folder in [subdir] + [f"{subdir}-r{i}" for i in range(MAX_ATTEMPTS)]:
                delete_dir(f"{uri}/{folder}", self.offline.storage_options)
            raise
        finally:
            remove_owner(owner)
        return out

    def _nothing_left(self, df: Any) -> bool:
        """Known from the plan, no Spark job (``dedupe.known_empty``)."""
        return known_empty(df)

    def _clean_abandoned(self, group: FeatureGroup) -> None:
        from .staging import clean

        clean(self.offline.table_uri(group), self.offline.files(group))

    def _stage(self, batch: Batch, df: "DataFrame", subdir: str) -> tuple[list, int, Any]:
        """Write ``df`` to ``{table}/{subdir}``: the Delta add actions, the row count and the
        merged statistics partial (None without ``batch.stats_specs``).

        With statistics, one executor pass writes the files with pyarrow and computes the
        partials and the add statistics from the same Arrow batches (``offline.onepass``).
        Without, Spark's own Parquet writer is faster (no Arrow hop to Python workers); the
        add statistics then come from each written file's footer."""
        from .onepass import stage_with_spark

        stage = f"{self.offline.table_uri(batch.group)}/{subdir}"
        target_files = max(1, -(-batch.rows_hint // 2_000_000))
        if batch.deduped:
            # Possibly a partial replay's anti-join: asking its partition count would run
            # its shuffle once more (an adaptive plan executes its stages to know it), so
            # coalesce unasked -- coalesce() never adds partitions.
            df = df.coalesce(max(target_files, 2))
        elif df.rdd.getNumPartitions() > 4 * target_files:
            df = df.coalesce(max(target_files, 2))
        if batch.stats_specs is None:
            actions, rows = self._stage_native(batch, df, stage, subdir)
            return actions, rows, None
        try:
            files, partial, _ = stage_with_spark(df, stage, history_schema(batch.group),
                                              batch.stats_specs)
        except Exception as exc:
            raise SparkfsError(f"writing the batch for feature group {batch.group.name!r} failed; "
                               f"nothing was committed: {first_line(exc)}") from exc
        out, written = add_actions(files, subdir)
        return out, written, partial

    def _stage_native(self, batch: Batch, df: "DataFrame", stage: str,
                      subdir: str) -> tuple[list, int]:
        from deltalake.transaction import AddAction, RemoveAction

        from .parquet_stats import list_parquet, parquet_add_stats

        opts = self.offline.storage_options
        spark = df.sparkSession
        key = "spark.sql.parquet.outputTimestampType"
        previous = spark.conf.get(key, None)
        spark.conf.set(key, "TIMESTAMP_MICROS")
        try:
            df.write.mode("errorifexists").parquet(stage if "://" in stage else "file://" + stage)
        except Exception as exc:
            raise SparkfsError(f"writing the batch for feature group {batch.group.name!r} failed; "
                               f"nothing was committed: {first_line(exc)}") from exc
        finally:
            if previous is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, previous)
        actions: list[AddAction | RemoveAction] = []
        written = 0
        for path, size, mtime in list_parquet(stage, opts):
            stats = parquet_add_stats(path, opts)
            if stats["numRecords"] == 0:
                continue
            written += stats["numRecords"]
            rel = f"{subdir}/{path.rsplit('/', 1)[-1]}"
            actions.append(AddAction(rel, size, {}, mtime, True, json.dumps(stats)))
        return actions, written

    def _stage_and_commit(self, batch: Batch, df: "DataFrame", subdir: str) -> Written:
        from .parquet_stats import delete_dir

        group, opts = batch.group, self.offline.storage_options
        uri = self.offline.table_uri(group)
        spark = df.sparkSession
        state: dict[str, Any] = {"dir": subdir, "redo": 0}
        state["actions"], state["rows"], state["partial"] = self._stage(batch, df, subdir)

        def staged() -> "DataFrame":
            files = [f"{uri}/{a.path}" for a in state["actions"]]
            return read_files_spark(spark, group, files) if files else df.limit(0)

        def restage(again: "DataFrame") -> "DataFrame":
            # the staged rows deduped again against the new files, into a fresh folder
            redo = f"{subdir}-r{state['redo']}"
            state["redo"] += 1
            state["actions"], state["rows"], state["partial"] = self._stage(batch, again, redo)
            delete_dir(f"{uri}/{state['dir']}", opts)
            state["dir"] = redo
            return staged()

        def attempt(_df: "DataFrame", now: int) -> Written | None:
            if not commit_staged(self.offline.table(group, now), batch, state["actions"],
                                 state["rows"]):
                return None  # someone committed version now+1 first: re-read and re-check
            return Written(state["rows"], now + 1, partial=state["partial"])

        out = commit_on_top(self.offline, batch, staged(), attempt, restage,
                            lambda _df: not state["actions"])
        if out.version is None or out.already:
            delete_dir(f"{uri}/{state['dir']}", opts)
        return out


# -- delta-spark ----------------------------------------------------------------------------
#: Delta reads the app transaction and commit metadata of a MERGE from session settings;
#: the lock keeps two ingests in one process from mixing them
_SESSION_CONF_LOCK = threading.Lock()
_TXN_CONF = ("spark.databricks.delta.write.txnAppId", "spark.databricks.delta.write.txnVersion",
             "spark.databricks.delta.commitInfo.userMetadata")


def _delta_conflict_types() -> tuple[type[BaseException], ...]:
    import delta.exceptions as dx

    return tuple(getattr(dx, name) for name in ("DeltaConcurrentModificationException",
                                                 *_DELTA_CONFLICTS))


class DeltaSparkWriter:
    """Spark's own Delta writer: one insert-only MERGE per batch (``WHEN NOT MATCHED THEN
    INSERT`` on the dedupe identity), idempotent through the app transaction."""

    name = "delta-spark"

    def __init__(self, offline: "OfflineStore") -> None:
        self.offline = offline

    def write(self, batch: Batch) -> Written:
        uri = self.offline.table_uri(batch.group)
        path = uri if "://" in uri else "file://" + uri
        meta = json.dumps({"sparkfs.operation": "ingest", "sparkfs.run_id": batch.run_id})
        df = batch.df.persist()
        try:
            return commit_on_top(self.offline, batch, df,
                                 lambda d, now: self._merge(batch, d, path, meta))
        finally:
            df.unpersist()

    def _merge(self, batch: Batch, df: "DataFrame", path: str, meta: str) -> Written | None:
        from delta.tables import DeltaTable

        group, spark = batch.group, df.sparkSession
        cond = merge_condition(group, batch.value_cols, batch.et_range, "t", "s")
        with _SESSION_CONF_LOCK:
            previous = {k: spark.conf.get(k, None) for k in _TXN_CONF}
            for k, value in zip(_TXN_CONF, (app_id(batch.run_id), "1", meta)):
                spark.conf.set(k, value)
            try:
                (DeltaTable.forPath(spark, path).alias("t")
                 .merge(df.alias("s"), cond).whenNotMatchedInsertAll().execute())
            except Exception as exc:  # Delta's concurrency exceptions are retryable
                # (importing delta.tables makes pyspark raise them as delta.exceptions.*,
                # whose text no longer names the Java class)
                if isinstance(exc, _delta_conflict_types()) \
                        or any(name in str(exc) for name in _DELTA_CONFLICTS):
                    return None
                raise SparkfsError(
                    f"writing the batch for feature group {group.name!r} with delta-spark "
                    f"failed; nothing was committed: {first_line(exc)}") from exc
            finally:
                for k, v in previous.items():
                    if v is None:
                        spark.conf.unset(k)
                    else:
                        spark.conf.set(k, v)
        table = self.offline.table(group)
        for h in table.history(20):
            if isinstance(h.get("userMetadata"), str) and h["userMetadata"] == meta:
                metrics = h.get("operationMetrics") or {}
                rows = int(metrics.get("numTargetRowsInserted", metrics.get("numOutputRows", 0)))
                return Written(rows, int(h["version"]))
        # Delta skipped the write: this run id was committed meanwhile
        return Written(0, version_of_run(table, batch.run_id, table.version()), already=True)


WRITERS = {"delta-rs": DeltaRsWriter, "delta-spark": DeltaSparkWriter}
