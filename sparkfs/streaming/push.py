"""``fs.push``: request-time events written online at once and appended to the group's
Delta history in batched commits, so that offline stays the source of truth.

- Rows (pandas, Arrow, or a list of dicts) are checked whole first: every join key, the
  event time and every input field present, types castable without loss, no null key or
  event time. A refused push writes nothing anywhere.
- ``to="online"``: one upsert into the online store (newest event wins).
- ``to="offline"`` / ``"online_and_offline"``: the rows join a bounded queue; one
  background thread appends what has queued to Delta (delta-rs, no Spark), one commit per
  group per flush, each with its own app transaction (``push-{writer}-{n}``) so a retried
  commit is never doubled. A full queue blocks ``push`` (back-pressure) up to
  ``put_timeout_s``, then raises. ``flush()`` waits for everything queued so far;
  ``close()`` (``fs.close()``, also at interpreter exit) flushes and stops the thread, so a
  driver that handles SIGTERM by closing its store loses nothing.
- Counters (``stats()``): rows queued, rows committed, commits, failed attempts, last error.

Groups with derived transforms or aggregations are refused (their stored columns are
computed by ``fs.ingest``); the online store is never imported from pyspark here.

>>> import tempfile
>>> from sparkfs import FeatureStore, Entity, FeatureGroup, Field
>>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
>>> g = FeatureGroup("clicks", [Entity("user", join_keys=["user_id"])], "ts",
...                  [Field("clicks", "long")], online=True)
>>> _ = fs.apply([g])
>>> fs.push("clicks", [{"user_id": "u1", "ts": "2026-01-01T00:00:00Z", "clicks": 3}],
...         to="online_and_offline")
1
>>> fs.get_online_features(["clicks:clicks"], [{"user_id": "u1"}]).to_dict()["clicks"]
[3]
>>> fs.close()
>>> fs.offline.read_arrow(g).column("clicks").to_pylist()
[3]
"""

from __future__ import annotations

import atexit
import datetime as dt
import queue
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..definitions import FeatureGroup
from ..errors import SparkfsError, ValidationError, first_line
from ..offline.tables import COMMIT_TIME, RUN_ID, history_schema

if TYPE_CHECKING:  # pragma: no cover
    from ..offline.tables import OfflineStore

TARGETS = ("online", "offline", "online_and_offline")


def push_rows(group: FeatureGroup, rows: Any) -> pa.Table:
    """``rows`` as an Arrow table in the group's history columns (without the system
    columns), checked whole; raises ``ValidationError`` naming what is wrong."""
    if group.transforms or group.aggregations:
        raise ValidationError(
            f"feature group {group.name!r} has derived transforms or aggregations: push its raw "
            "rows with fs.ingest (or a stream) so they are computed; nothing was written")
    try:
        if isinstance(rows, list):
            rows = pa.Table.from_pylist(rows)
        elif type(rows).__module__.startswith("pandas"):
            rows = pa.Table.from_pandas(rows, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValidationError(f"push to feature group {group.name!r}: the rows do not form "
                              f"typed columns ({first_line(exc)}); nothing was written"
                              ) from None
    if isinstance(rows, pa.RecordBatch):
        rows = pa.Table.from_batches([rows])
    if not isinstance(rows, pa.Table):
        raise ValidationError(f"push to feature group {group.name!r} takes a list of dicts, a "
                              f"pandas DataFrame or an Arrow table, not {type(rows).__name__}")
    schema = pa.schema([f for f in history_schema(group) if f.name not in (COMMIT_TIME, RUN_ID)])
    missing = [f.name for f in schema if f.name not in rows.column_names]
    if missing:
        raise ValidationError(f"push to feature group {group.name!r}: rows lack column(s) "
                              f"{missing}; nothing was written")
    cols, problems = [], []
    for f in schema:
        col = rows[f.name]
        try:
            cols.append(col.cast(f.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            problems.append(f"{f.name!r} ({col.type} -> {f.type}: {first_line(exc)})")
    if problems:
        raise ValidationError(f"push to feature group {group.name!r}: column(s) of the wrong "
                              f"type: {'; '.join(problems)}; nothing was written")
    table = pa.table(cols, schema=schema)
    for k in list(group.join_keys) + [group.event_time]:
        if table[k].null_count:
            raise ValidationError(f"push to feature group {group.name!r}: {table[k].null_count} of "
                                  f"{table.num_rows} row(s) have a null {k!r}; nothing was written")
    return table


class PushWriter:
    """The asynchronous, bounded, counted Delta appender behind ``fs.push`` (see module)."""

    def __init__(self, offline: OfflineStore, max_queued_rows: int = 100_000,
                 flush_interval_s: float = 1.0, put_timeout_s: float = 30.0) -> None:
        self.offline = offline
        self.max_queued_rows = max_queued_rows
        self.flush_interval_s = flush_interval_s
        self.put_timeout_s = put_timeout_s
        self.writer_id = uuid.uuid4().hex[:12]
        self._queue: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        self._queued = self._committed = self._commits = self._failures = 0
        self._last_error: str | None = None
        self._seq = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sparkfs-push", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def put(self, group: FeatureGroup, table: pa.Table) -> None:
        """Queue checked rows; blocks while the queue holds ``max_queued_rows``."""
        deadline = time.monotonic() + self.put_timeout_s
        with self._cond:
            if self._closed:
                raise SparkfsError("the push writer is closed; nothing was queued")
            while self._queued - self._committed + table.num_rows > self.max_queued_rows \
                    and self._queued > self._committed:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SparkfsError(
                        f"push to feature group {group.name!r}: {self._queued - self._committed} "
                        f"row(s) still wait for their Delta commit (last error: {self._last_error}); "
                        "nothing was queued, retry later")
                self._cond.wait(min(left, 0.5))
            self._queued += table.num_rows
        self._queue.put((group, table))

    def flush(self, timeout: float = 120.0) -> None:
        """Wait until every row queued so far is committed to Delta."""
        target = self._queued
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._committed < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SparkfsError(
                        f"push: {target - self._committed} row(s) not committed to Delta within "
                        f"{timeout:.0f} s (last error: {self._last_error})")
                self._cond.wait(min(left, 0.5))

    def close(self, timeout: float = 120.0) -> None:
        """Flush, then stop the writer thread. Idempotent."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        """Counters: rows queued and committed, commits, failed attempts, last error."""
        with self._cond:
            return {"rows_queued": self._queued, "rows_committed": self._committed,
                    "commits": self._commits, "failed_attempts": self._failures,
                    "last_error": self._last_error}

    # -- the writer thread -------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            items = []
            try:
                first = self._queue.get(timeout=self.flush_interval_s)
                items.append(first)
                while True:
                    items.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            if None in items:
                stop = True
                items = [i for i in items if i is not None]
            by_group: dict[tuple[str, int], list] = {}
            for group, table in items:
                by_group.setdefault((group.name, group.version), [group, []])[1].append(table)
            for group, tables in by_group.values():
                self._commit(group, pa.concat_tables(tables))

    def _commit(self, group: FeatureGroup, table: pa.Table) -> None:
        from deltalake import write_deltalake
        from deltalake.transaction import CommitProperties, Transaction

        from ..offline.ingest import app_id

        self._seq += 1
        run_id = f"push-{self.writer_id}-{self._seq}"
        now = dt.datetime.now(dt.UTC)
        n = table.num_rows
        full = (table.append_column(pa.field(COMMIT_TIME, history_schema(group).field(COMMIT_TIME).type),
                                    pa.array([now] * n, history_schema(group).field(COMMIT_TIME).type))
                     .append_column(pa.field(RUN_ID, pa.string()), pa.array([run_id] * n, pa.string())))
        backoff = 0.2
        while True:
            try:
                dtab = self.offline.table(group)
                if dtab.transaction_version(app_id(run_id)) is None:
                    write_deltalake(dtab, full, mode="append", commit_properties=CommitProperties(
                        app_transactions=[Transaction(app_id(run_id), 1)],
                        custom_metadata={"sparkfs.operation": "push", "sparkfs.run_id": run_id,
                                         "sparkfs.rows": str(n)}))
                with self._cond:
                    self._committed += n
                    self._commits += 1
                    self._cond.notify_all()
                return
            except Exception as exc:  # noqa: BLE001 - keep the rows and retry: offline is the truth
                with self._cond:
                    self._failures += 1
                    self._last_error = f"{type(exc).__name__}: {first_line(exc) if str(exc).strip() else ''}"
                    self._cond.notify_all()
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def push(online_store: Any, writer_factory: Any, group: FeatureGroup, rows: Any,
         to: str = "online_and_offline") -> int:
    """Check ``rows`` and write them ``to`` the online store and/or the Delta writer
    (``writer_factory()`` gives the store's ``PushWriter``). Returns the rows pushed."""
    if to not in TARGETS:
        raise ValidationError(f"push to={to!r} is unknown; use one of {TARGETS}")
    table = push_rows(group, rows)
    if table.num_rows == 0:
        return 0
    if to != "offline" and not group.online:
        raise ValidationError(f"feature group {group.name!r} has online=False: push it with "
                              "to='offline'; nothing was written")
    if to != "online":
        writer_factory().put(group, table)
    if to != "offline":
        online_store.write_batch(group, table)
    return table.num_rows
