"""The evaluation store: one Delta table per deployment, one row per prediction.

Columns: ``request_id``, ``row`` (the entity row's index in its request), ``time``,
``deployment``, ``deployment_revision``, ``scoring_path`` (online / batch), ``model_name``,
``model_version``, ``view``, ``training_set``, ``entity`` and ``request_data`` (JSON of the
row's keys and request values), then per model input column ``c``: ``c`` (its value, in
the feature's type), ``c__status`` and ``c__event_time``; then ``prediction`` (float, null
when not numeric), ``prediction_json`` (the exact output as JSON), ``latency_ms`` and
``error`` (null, or the one-line reason a model failed or a request row was refused),
``data_versions`` (batch and table scoring: JSON of the Delta version of each feature
group read and the fingerprint of each on-demand transform; null online).

Online predictions reach it through ``EvaluationLogger``: a bounded queue that a request
never waits on (a full queue drops the rows and counts them), drained by one thread that
appends batches with delta-rs (no Spark). ``flush``/``close`` (and SIGTERM, see
``install_sigterm_flush``) write everything queued. ``read_log`` reads a table without Spark.

>>> from sparkfs.models.binding import FeatureBinding
>>> [f.name for f in log_schema(FeatureBinding(None, (), (("temp", "double"),)))][10:13]
['entity', 'request_data', 'temp']
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import signal
import threading
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from ..dtypes import arrow_type
from ..errors import NotFoundError
from ..models.binding import FeatureBinding
from .logcolumns import (
    JsonColumn,
    Repeat,
    json_objects,
    json_values,
    merge_columns,
    part_rows,
    timestamp_array,
)

__all__ = ["EvaluationLogger", "JsonColumn", "Repeat", "append", "columns_table", "compact",
           "create_log_table", "install_sigterm_flush", "json_objects", "json_values",
           "log_schema", "merge_columns", "read_log", "to_table"]

log = logging.getLogger("sparkfs.inference")

_TS = pa.timestamp("us", "UTC")

#: Delta properties of a new evaluation table: file statistics (data skipping) only for
#: the columns a log is searched by. Statistics of every column cost each append (and,
#: in delta-rs, each later commit, per file of the table) without serving a query.
_STATS_COLUMNS = ("request_id", "time", "deployment_revision", "model_version")
LOG_TABLE_CONFIG = {"delta.dataSkippingStatsColumns": ",".join(_STATS_COLUMNS)}


def _writer_properties() -> Any:
    """Parquet statistics for the same columns only (the rest cost each write and serve
    no query)."""
    from deltalake import ColumnProperties, WriterProperties

    return WriterProperties(
        default_column_properties=ColumnProperties(statistics_enabled="NONE"),
        column_properties={c: ColumnProperties(statistics_enabled="CHUNK")
                           for c in _STATS_COLUMNS})


def log_schema(binding: FeatureBinding) -> pa.Schema:
    """The Arrow schema of a deployment's evaluation table."""
    fields = [pa.field("request_id", pa.string()), pa.field("row", pa.int64()),
              pa.field("time", _TS), pa.field("deployment", pa.string()),
              pa.field("deployment_revision", pa.int64()), pa.field("scoring_path", pa.string()),
              pa.field("model_name", pa.string()), pa.field("model_version", pa.int64()),
              pa.field("view", pa.string()), pa.field("training_set", pa.string()),
              pa.field("entity", pa.string()), pa.field("request_data", pa.string())]
    for name, dtype in binding.columns:
        fields += [pa.field(name, arrow_type(dtype)), pa.field(f"{name}__status", pa.string()),
                   pa.field(f"{name}__event_time", _TS)]
    fields += [pa.field("prediction", pa.float64()), pa.field("prediction_json", pa.string()),
               pa.field("latency_ms", pa.float64()), pa.field("error", pa.string()),
               pa.field("data_versions", pa.string())]
    return pa.schema(fields)


def create_log_table(path: str, binding: FeatureBinding,
                     storage_options: Mapping[str, str] | None = None) -> None:
    """Create the evaluation table at ``path`` (no-op when it exists; a new revision with
    other columns adds them on its first append)."""
    from deltalake import DeltaTable

    try:
        DeltaTable(path, storage_options=dict(storage_options or {}))
        return
    except Exception:  # TableNotFoundError: create it
        pass
    if "://" not in path:
        os.makedirs(path, exist_ok=True)
    DeltaTable.create(path, log_schema(binding), mode="ignore", configuration=LOG_TABLE_CONFIG,
                      storage_options=dict(storage_options or {}))


def append(path: Any, table: pa.Table, storage_options: Mapping[str, str] | None = None,
           app_id: str | None = None, app_version: int = 1) -> bool:
    """Append rows in one Delta commit. With ``app_id`` the commit carries the app
    transaction ``(app_id, app_version)`` and is skipped when that app id already committed
    ``app_version`` or a later one (idempotent retries and replays).

    ``path`` may be an open ``deltalake.DeltaTable``: the append then commits on that handle
    (its state moves to the new version; nothing re-reads the Delta log), which is how the
    log writer keeps one handle per table. Given a path, the table is opened once for the
    app-transaction check and the write."""
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

    handle = path if isinstance(path, DeltaTable) else None
    if handle is None:
        try:
            handle = DeltaTable(path, storage_options=dict(storage_options or {}))
        except Exception:  # TableNotFoundError: the write creates it
            handle = None
    if app_id is not None:
        if handle is not None:
            done = handle.transaction_version(app_id)
            if done is not None and done >= app_version:
                return False
        props = CommitProperties(app_transactions=[Transaction(app_id, app_version)],
                                 max_commit_retries=50)
    else:
        props = CommitProperties(max_commit_retries=50)
    if handle is not None:
        write_deltalake(handle, table, mode="append", schema_mode="merge",
                        commit_properties=props, writer_properties=_writer_properties())
    else:
        write_deltalake(path, table, mode="append", schema_mode="merge",
                        storage_options=dict(storage_options or {}), commit_properties=props,
                        writer_properties=_writer_properties())
    return True


def compact(path: Any, storage_options: Mapping[str, str] | None = None) -> None:
    """Rewrite the table's small files into few large ones and write a checkpoint (one
    Delta commit with ``dataChange: false``: rows, app transactions and readers of older
    versions are unaffected; the replaced files stay on disk for readers of older versions
    until a Delta vacuum removes them). ``path`` may be an open ``DeltaTable``.

    >>> import tempfile, pyarrow as pa
    >>> from deltalake import DeltaTable, write_deltalake
    >>> path = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     write_deltalake(path, pa.table({"x": [i]}), mode="append")
    >>> compact(path)
    >>> len(DeltaTable(path).file_uris()), sorted(DeltaTable(path).to_pyarrow_table()["x"].to_pylist())
    (1, [0, 1, 2])
    """
    from deltalake import DeltaTable

    table = path if isinstance(path, DeltaTable) else \
        DeltaTable(path, storage_options=dict(storage_options or {}))
    table.optimize.compact()
    table.create_checkpoint()


def to_table(rows: list[dict], binding: FeatureBinding) -> pa.Table:
    """Arrow table of log rows (dicts keyed by column; missing columns are null)."""
    schema = log_schema(binding)
    return pa.Table.from_pydict({f.name: [r.get(f.name) for r in rows] for f in schema},
                                schema=schema)


def columns_table(columns: Mapping[str, list], binding: FeatureBinding) -> pa.Table:
    """Arrow table of log rows given column-wise (``{column: values}``, a value being a
    list, an Arrow array, a ``JsonColumn`` or a ``Repeat``; missing columns are null)."""
    schema = log_schema(binding)
    n = part_rows(columns)
    built: dict[tuple[int, pa.DataType], pa.Array] = {}  # a list two columns share: once
    out = {}
    for f in schema:
        if f.name not in columns:
            out[f.name] = pa.nulls(n, f.type)
            continue
        values = columns[f.name]
        key = (id(values), f.type)
        if key not in built:
            built[key] = _column(values, f.type)
        out[f.name] = built[key]
    return pa.table(out, schema=schema)


def _column(values: Any, type_: pa.DataType) -> pa.Array:
    if isinstance(values, JsonColumn):
        values = values.array()
    elif isinstance(values, Repeat):
        values = values.array(type_)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values if values.type == type_ else values.cast(type_)
    if pa.types.is_timestamp(type_) and isinstance(values, list):
        return timestamp_array(values, type_)
    return pa.array(values, type_)


def read_log(path: str, start: Any = None, end: Any = None,
             storage_options: Mapping[str, str] | None = None, deployment: str = ""):
    """The rows of an evaluation table with ``start <= time < end`` (pandas, no Spark)."""
    from deltalake import DeltaTable

    try:
        dtable = DeltaTable(path, storage_options=dict(storage_options or {}))
    except Exception:
        raise NotFoundError(f"deployment {deployment!r} has no evaluation log at {path}") from None
    filters = []
    if start is not None:
        filters.append(("time", ">=", _utc(start)))
    if end is not None:
        filters.append(("time", "<", _utc(end)))
    import pyarrow.dataset as ds

    from ..offline.tables import arrow_dataset

    data = arrow_dataset(dtable)
    expr = None
    for col, op, value in filters:
        e = ds.field(col) >= pa.scalar(value, _TS) if op == ">=" else \
            ds.field(col) < pa.scalar(value, _TS)
        expr = e if expr is None else expr & e
    table = data.to_table(filter=expr)
    return table.sort_by([("time", "ascending"), ("request_id", "ascending"),
                          ("row", "ascending")]).to_pandas()


def _utc(t: Any) -> dt.datetime:
    import pandas as pd

    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


class EvaluationLogger:
    """Asynchronous, batched writer of online predictions (one thread per process).

    ``submit`` never blocks: when ``max_rows`` rows are already queued the batch is dropped
    and counted in ``dropped``. ``logged`` counts rows committed to Delta, ``failed`` rows
    whose append failed (logged with the error; predictions are unaffected).

    Rows are gathered for up to ``flush_s`` seconds after the first one arrives (or until
    ``batch_rows`` are queued, or a ``flush``/``close`` asks) and written in one append
    per table: a busy service then appends about once a second (the defaults, as
    ``inference.log_batch_rows``/``log_flush_s``: 20,000 rows, 1 s), not once per request,
    and the requests never wake the writer (the Delta commits' CPU is what logging costs).
    A flush, ``close`` and SIGTERM cut the gathering wait short: nothing queued is lost.

    Every ``compact_every`` appends to a table (0: never) the writer compacts it
    (``compact``): a service appends about once a second, and without compaction each
    append adds a small file that every later append and read must track, so memory and
    read time grow with the log's age.
    """

    def __init__(self, max_rows: int = 100_000, batch_rows: int = 20_000, flush_s: float = 1.0,
                 storage_options: Mapping[str, str] | None = None, *,
                 compact_every: int = 100) -> None:
        self.max_rows, self.batch_rows, self.flush_s = max_rows, batch_rows, flush_s
        self.compact_every = compact_every
        self._appends: dict[str, int] = {}
        self._tables: dict[str, Any] = {}  # path -> open DeltaTable (writer thread only)
        self.storage_options = dict(storage_options or {})
        self._q: queue.Queue = queue.Queue()
        self._queued = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()  # cut the gathering wait short
        self._flushers = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self.logged: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.sampled_out: dict[str, int] = {}

    def submit(self, deployment: str, path: str, binding: FeatureBinding,
               rows: Any, n: int | None = None) -> bool:
        """Queue rows for ``deployment``'s table; False (and counted) when dropped.

        ``rows`` (row dicts, or columns: ``{column: values}``) may be a function building them,
        with their count ``n``: the writer
        thread calls it, so building the rows (JSON of the entity and request data) costs
        the request nothing. A builder that raises counts its ``n`` rows as failed.

        >>> logger = EvaluationLogger(max_rows=1)
        >>> logger.submit("d", "/nowhere", None, lambda: [{}, {}], n=2)
        False
        >>> logger.counters()["dropped"]
        {'d': 2}
        """
        if n is None:
            n = part_rows(rows) if isinstance(rows, Mapping) else len(rows)
        with self._lock:
            if self._closed or self._queued + n > self.max_rows:
                self.dropped[deployment] = self.dropped.get(deployment, 0) + n
                return False
            self._queued += n
            if self._queued >= self.batch_rows:
                self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sparkfs-eval-log",
                                                daemon=True)
                self._thread.start()
        self._q.put((deployment, path, binding, n, rows))
        return True

    def count_sampled_out(self, deployment: str, n: int) -> None:
        with self._lock:
            self.sampled_out[deployment] = self.sampled_out.get(deployment, 0) + n

    def _run(self) -> None:
        while True:
            try:
                first = self._q.get(timeout=self.flush_s)
            except queue.Empty:
                with self._lock:
                    if self._closed and self._queued == 0:
                        return
                continue
            if first is None:
                return
            with self._lock:
                hurry = self._flushers > 0 or self._closed or self._queued >= self.batch_rows
            if not hurry:  # gather: the rows of the next flush_s go in the same append
                self._wake.wait(self.flush_s)
            self._wake.clear()
            items, n = [first], first[3]
            while n < self.batch_rows:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._q.put(None)
                    break
                items.append(item)
                n += item[3]
            self._write(items)
            with self._lock:
                self._queued -= n
                self._idle.notify_all()

    def _write(self, items: list) -> None:
        groups: dict[tuple[str, str], list] = {}
        for deployment, path, binding, n, rows in items:
            if callable(rows):
                try:
                    rows = rows()
                except Exception as exc:  # counted and reported, never silent
                    self.failed[deployment] = self.failed.get(deployment, 0) + n
                    log.error("evaluation log of deployment %r: %d row(s) not built: %s: %s",
                              deployment, n, type(exc).__name__, exc)
                    continue
            g = groups.setdefault((deployment, path), [binding, []])
            g[0] = binding
            g[1].append(rows)
        for (deployment, path), (binding, parts) in groups.items():
            try:  # each part: a list of row dicts, or columns ({column: values})
                columns = [p for p in parts if isinstance(p, Mapping)]
                tables = [to_table(p, binding) for p in parts if not isinstance(p, Mapping)]
                if columns:  # every request's columns joined, then built once
                    tables.append(columns_table(merge_columns(columns), binding))
                table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
                self._append(path, table)
                self.logged[deployment] = self.logged.get(deployment, 0) + table.num_rows
            except Exception as exc:  # logging must never break a prediction
                self._tables.pop(path, None)  # reopened on the next append
                lost = sum(part_rows(p) if isinstance(p, Mapping) else len(p) for p in parts)
                self.failed[deployment] = self.failed.get(deployment, 0) + lost
                log.error("evaluation log of deployment %r: %d row(s) not written: %s: %s",
                          deployment, lost, type(exc).__name__, exc)
                continue
            n = self._appends[path] = self._appends.get(path, 0) + 1
            if self.compact_every and n % self.compact_every == 0:
                try:
                    compact(self._table(path))
                except Exception as exc:  # rows are committed; a later round retries
                    self._tables.pop(path, None)
                    log.warning("evaluation log of deployment %r: compaction failed: %s: %s",
                                deployment, type(exc).__name__, exc)

    def _append(self, path: str, table: pa.Table) -> None:
        """``append`` on the open handle; when another writer changed the table's metadata
        since (a new revision's columns, merged by a batch job or another worker), the
        commit is refused whole (``CommitFailedError``: nothing written), so the handle
        catches up with the newer commits and the append goes once more."""
        from deltalake.exceptions import CommitFailedError

        handle = self._table(path)
        try:
            append(handle, table)
        except CommitFailedError:
            handle.update_incremental()
            append(handle, table)

    def _table(self, path: str) -> Any:
        """The writer's open handle on the table at ``path`` (opened once: each append
        commits on it and moves it to the new version, with no replay of the Delta log;
        appends by other processes are picked up by the commit's conflict check)."""
        table = self._tables.get(path)
        if table is None:
            from deltalake import DeltaTable

            table = self._tables[path] = DeltaTable(path, storage_options=self.storage_options)
        return table

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued row is written; False on timeout."""
        with self._lock:
            self._flushers += 1
            self._wake.set()
            try:
                return self._idle.wait_for(lambda: self._queued == 0, timeout)
            finally:
                self._flushers -= 1

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued, then stop the thread. Later submits are dropped."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            self._q.put(None)
            thread.join(timeout)
        if any(self.dropped.values()):
            log.warning("evaluation log: dropped rows (queue full) per deployment: %s",
                        self.dropped)

    def counters(self) -> dict[str, dict[str, int]]:
        """``{"logged": {...}, "dropped": {...}, "failed": {...}, "sampled_out": {...}}``."""
        with self._lock:
            return {"logged": dict(self.logged), "dropped": dict(self.dropped),
                    "failed": dict(self.failed), "sampled_out": dict(self.sampled_out)}


def install_sigterm_flush(flush: Any) -> bool:
    """On SIGTERM, run ``flush()`` and then terminate as SIGTERM would. Only from the main
    thread and only when no other handler is installed; returns whether it installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return False

    def handler(signum: int, frame: Any) -> None:
        try:
            flush()
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, handler)
    return True
