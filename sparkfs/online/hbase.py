"""The production online store: HBase through happybase (Thrift1).

Layout, one HBase table per feature group version, ``{table_prefix}_{group.table_name}``
(``sparkfs_weather__v1``):

* row key: the join keys in ``sparkfs.online.keys`` encoding, salted when
  ``salt_buckets`` > 0;
* one column family (``column_family``, default ``f``) with ``max_versions=1`` and
  ``time_to_live`` = the group's ttl (in seconds; none when the group has no ttl, or
  when it is longer than HBase's limit of 2**31 - 1 seconds, about 68 years: HBase
  reads that value as "forever", and sparkfs still judges the ttl at read time);
* qualifier = feature name, value = the feature's JSON value (``sparkfs.online.codec``);
  qualifier ``_m`` = ``[event_time_us, commit_time_us]`` of the row;
* **cell timestamp = event time in milliseconds**, so HBase keeps the newest event
  whatever the write order (rows whose event times fall in the same millisecond: the
  later write wins). HBase refuses negative timestamps, so rows with an event time
  before 1970 are refused whole (``ValidationError``) before anything is written.

Because HBase applies the ttl itself, a value past its ttl reads as ``missing`` here
(HBase no longer returns it), where SQLite reports ``expired``.

Writes encode a batch a column at a time (``codec.json_cells``, ``keys.row_keys``: the
same bytes as one ``codec.dumps`` / ``encode_key`` per value), group the rows by event
millisecond (Thrift1 carries one timestamp per ``mutateRowsTs`` call) and send calls of at
most ``batch_size`` rows and ``BATCH_BYTES`` bytes over the pool's connections in parallel.

Watermarks live in ``{table_prefix}__meta`` (row = group table name). Calls go through a
happybase connection pool; transport errors are retried ``retries`` times with
exponential backoff from ``backoff_ms``, then raised as ``OnlineStoreError``.

>>> from sparkfs.config import HBaseOnlineConfig
>>> HBaseOnlineStore(HBaseOnlineConfig(type="hbase")).table_name_of("weather__v1")
b'sparkfs_weather__v1'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from .._extras import require
from ..config import HBaseOnlineConfig
from ..definitions import FeatureGroup
from ..errors import OnlineStoreError, ValidationError
from . import codec
from .base import OnlineRow
from .keys import encode_key, row_keys
from .sqlite import checked_rows, commit_times_us

T = TypeVar("T")
#: HBase's ``HConstants.FOREVER``: a column family TTL (seconds) meaning "no TTL".
HBASE_FOREVER_S = 2**31 - 1
META = b"_m"
#: Bytes of cell data (row keys, qualifiers, values) per ``mutateRowsTs`` call at most;
#: ``online.batch_size`` bounds its rows.
BATCH_BYTES = 4 << 20
_WM_FAMILY = b"w"
_WM_COLUMN = b"w:delta_version"


def _thrift() -> Any:
    """happybase's Thrift module (registered as ``Hbase_thrift`` when happybase loads)."""
    import happybase  # noqa: F401
    import Hbase_thrift

    return Hbase_thrift


class HBaseOnlineStore:
    """Online store in HBase (see the module docstring). Connects on first use."""

    def __init__(self, config: HBaseOnlineConfig) -> None:
        require("happybase", extra="hbase", what="the HBase online store (online.type: hbase)")
        self.config = config
        self.family = config.column_family.encode()
        self._pool: Any = None
        self._lock = threading.Lock()
        self._tables: set[bytes] = set()
        self._plans: dict[tuple, tuple] = {}

    def table_name_of(self, table_name: str) -> bytes:
        return f"{self.config.table_prefix}_{table_name}".encode()

    @property
    def _meta_table(self) -> bytes:
        return f"{self.config.table_prefix}__meta".encode()

    # -- connections and retries -------------------------------------------------------------
    def _get_pool(self) -> Any:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    import happybase

                    c = self.config
                    self._pool = happybase.ConnectionPool(
                        c.pool_size, host=c.host, port=c.port, timeout=c.timeout_ms,
                        transport=c.transport, protocol=c.protocol)
        return self._pool

    def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)``; retry transport errors with backoff, then give up."""
        Hbase_thrift = _thrift()
        from happybase import NoConnectionsAvailable
        from thriftpy2.thrift import TApplicationException
        from thriftpy2.transport import TTransportException

        c = self.config
        last: BaseException | None = None
        # One budget for the whole call: timeout x tries. An attempt at a frozen server
        # costs more than one timeout (the pool reconnects), so no retry starts that could
        # not finish within the budget.
        budget = c.timeout_ms / 1000 * (c.retries + 1)
        deadline = time.monotonic() + budget
        attempts = 0
        for attempt in range(c.retries + 1):
            if attempt:
                pause = c.backoff_ms / 1000 * 2 ** (attempt - 1)
                if time.monotonic() + pause + c.timeout_ms / 1000 > deadline:
                    break
                time.sleep(pause)
            attempts += 1
            try:
                pool = self._get_pool()
                with pool.connection(timeout=c.timeout_ms / 1000) as con:
                    return fn(con)
            except (Hbase_thrift.IOError, Hbase_thrift.IllegalArgument,
                    Hbase_thrift.AlreadyExists, TApplicationException) as exc:
                raise OnlineStoreError(f"HBase at {c.host}:{c.port} refused {what}: "
                                       f"{getattr(exc, 'message', None) or exc}") from None
            except (OSError, TTransportException, NoConnectionsAvailable, EOFError) as exc:
                last = exc
        raise OnlineStoreError(
            f"HBase at {c.host}:{c.port} is unreachable: {what} failed after {attempts} "
            f"attempts within its budget of {budget:g} s (online.timeout_ms x (retries + 1)) "
            f"({type(last).__name__}: {last}). Check that the HBase Thrift server is running "
            "(online.host / online.port)")

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            while not pool._queue.empty():
                pool._queue.get_nowait().close()

    # -- tables -------------------------------------------------------------------------------
    def _existing(self, refresh: bool = False) -> set[bytes]:
        if refresh or not self._tables:
            names = self._call("listing tables", lambda con: con.client.getTableNames())
            self._tables = set(names)
        return self._tables

    def _ensure(self, name: bytes, family: bytes, ttl: dt.timedelta | None,
                max_versions: int = 1) -> None:
        if name in self._tables or name in self._existing(refresh=True):
            return
        options: dict[str, Any] = {"max_versions": max_versions}
        if ttl is not None and ttl.total_seconds() < HBASE_FOREVER_S:
            options["time_to_live"] = max(1, math.ceil(ttl.total_seconds()))

        def create(con: Any) -> None:
            Hbase_thrift = _thrift()

            try:
                con.create_table(name, {family.decode(): options})
            except Hbase_thrift.AlreadyExists:
                pass  # another writer created it first
            except Hbase_thrift.IOError:
                # A real HBase reports a concurrent creation (another executor of the same
                # materialization) as an IOError wrapping TableExistsException: the table
                # is there, which is all this call wants.
                if name not in set(con.client.getTableNames()):
                    raise

        self._call(f"creating table {name.decode()}", create)
        self._tables.add(name)

    # -- writes ---------------------------------------------------------------------------------
    def write_batch(self, group: FeatureGroup, rows: Any) -> int:
        """Put the rows with cell timestamp = event time (ms); HBase keeps the newest.

        Cells are encoded a column at a time from Arrow (``codec.json_cells``, the same
        bytes as one ``codec.dumps`` per value); rows are grouped by event millisecond
        (Thrift1 takes one timestamp per ``mutateRowsTs`` call) and cut into calls of at
        most ``online.batch_size`` rows and ``BATCH_BYTES`` bytes."""
        import numpy as np

        table = checked_rows(group, rows)
        if table is None:
            return 0
        n = table.num_rows
        event_us = pc.cast(pc.cast(table[group.event_time], pa.timestamp("us", tz="UTC")),
                           pa.int64()).to_numpy()
        early = int((event_us < 0).sum())
        if early:
            raise ValidationError(
                f"online write for feature group {group.name!r}: {early} rows have an event "
                f"time before 1970, which HBase cannot store as a cell timestamp; nothing was "
                "written. Filter them out or shift the event times")
        Hbase_thrift = _thrift()

        name = self.table_name_of(group.table_name)
        self._ensure(name, self.family, group.ttl)
        # Rows by event millisecond (row order kept within one): Thrift1 takes one
        # timestamp per call.
        ts_ms = event_us // 1000
        order = np.argsort(ts_ms, kind="stable")
        table, event_us, ts_ms = table.take(pa.array(order)), event_us[order], ts_ms[order]
        keys = row_keys([table[k] for k in group.join_keys], list(group.key_dtypes.values()),
                        self.config.salt_buckets)
        quals = [self.family + b":" + f.name.encode() for f in group.features]
        quals.append(self.family + b":" + META)
        cells = [codec.json_cells(table[f.name], f.dtype) for f in group.features]
        cells.append([b"[%d,%d]" % ec for ec in zip(event_us.tolist(), commit_times_us(table))])
        size = np.fromiter(map(len, keys), np.int64, n) + sum(len(q) for q in quals)
        for col in cells:
            size += np.fromiter(map(len, col), np.int64, n)
        starts = np.flatnonzero(np.diff(ts_ms)) + 1
        cuts = _cuts(starts.tolist(), size.tolist(), self.config.batch_size, BATCH_BYTES)
        Mutation, BatchMutation = Hbase_thrift.Mutation, Hbase_thrift.BatchMutation
        rows_iter = zip(keys, zip(*cells))

        def build(lo: int, hi: int) -> tuple[int, list]:
            # positional: Mutation(isDelete, column, value), BatchMutation(row, mutations)
            return int(ts_ms[lo]), [
                BatchMutation(key, [Mutation(False, q, v) for q, v in zip(quals, values)])
                for key, values in itertools.islice(rows_iter, hi - lo)]

        def send(ts: int, chunk: list) -> None:
            self._call(f"writing {len(chunk)} rows of feature group {group.name!r}",
                       lambda con: con.client.mutateRowsTs(name, chunk, ts, {}))

        # Thrift1 puts one timestamp per call: rows with different event times need
        # separate calls. They go out over the pool's connections in parallel while the
        # next ones are built; the first failure cancels the calls not yet started.
        workers = min(self.config.pool_size, len(cuts))
        with _no_gc():
            if workers <= 1:
                for lo, hi in cuts:
                    send(*build(lo, hi))
                return n
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as ex:
                futures = [ex.submit(send, *build(lo, hi)) for lo, hi in cuts]
                try:
                    for f in futures:
                        f.result()
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
        return n

    # -- reads ------------------------------------------------------------------------------------
    def _plan(self, group: FeatureGroup, features: Sequence[str]) -> tuple:
        key = (group.table_name, tuple(features))
        plan = self._plans.get(key)
        if plan is None:
            dtypes = {f.name: f.dtype for f in group.features}
            cols = [self.family + b":" + f.encode() for f in features]
            decs = [codec.decoder(dtypes[f]) for f in features]
            plan = (cols, cols + [self.family + b":" + META], decs)
            self._plans[key] = plan
        return plan

    def read(self, group: FeatureGroup, keys: Sequence[tuple],
             features: Sequence[str]) -> list[OnlineRow | None]:
        """Rows aligned with ``keys`` (None where HBase has no live row)."""
        if not keys:
            return []
        name = self.table_name_of(group.table_name)
        if name not in self._tables and name not in self._existing(refresh=True):
            return [None] * len(keys)
        dtypes = list(group.key_dtypes.values())
        salt = self.config.salt_buckets
        rowkeys = [encode_key(k, dtypes, salt) for k in keys]
        cols, wanted, decs = self._plan(group, features)
        results = self._call(
            f"reading {len(keys)} keys of feature group {group.name!r}",
            lambda con: con.client.getRowsWithColumns(name, rowkeys, wanted, {}))
        found = {r.row: r.columns for r in results}
        meta = wanted[-1]
        loads = json.loads  # accepts the bytes of a cell
        out: list[OnlineRow | None] = []
        for rk in rowkeys:
            cells = found.get(rk)
            if not cells or meta not in cells:
                out.append(None)
                continue
            event_us = loads(cells[meta].value)[0]
            vals = []
            for c, d in zip(cols, decs):
                cell = cells.get(c)
                v = None if cell is None else loads(cell.value)
                vals.append(v if d is None or v is None else d(v))
            out.append(OnlineRow(event_us, tuple(vals)))
        return out

    # -- lifecycle ----------------------------------------------------------------------------------
    def drop(self, group: FeatureGroup) -> None:
        name = self.table_name_of(group.table_name)
        if name in self._existing(refresh=True):
            self._call(f"dropping table {name.decode()}",
                       lambda con: con.delete_table(name, disable=True))
            self._tables.discard(name)
        if self._meta_table in self._existing():
            self._call("deleting a watermark", lambda con: con.client.deleteAllRow(
                self._meta_table, group.table_name.encode(), {}))

    def get_watermark(self, group: FeatureGroup) -> int | None:
        if self._meta_table not in self._existing(refresh=True):
            return None
        rows = self._call("reading a watermark", lambda con: con.client.getRowWithColumns(
            self._meta_table, group.table_name.encode(), [_WM_COLUMN], {}))
        if not rows or _WM_COLUMN not in rows[0].columns:
            return None
        return int(rows[0].columns[_WM_COLUMN].value)

    def set_watermark(self, group: FeatureGroup, delta_version: int) -> None:
        Hbase_thrift = _thrift()

        self._ensure(self._meta_table, _WM_FAMILY, None)
        mut = Hbase_thrift.Mutation(column=_WM_COLUMN, value=str(int(delta_version)).encode())
        self._call("writing a watermark", lambda con: con.client.mutateRow(
            self._meta_table, group.table_name.encode(), [mut], {}))


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused while a batch's Thrift objects (a few million
    for a large batch, none of them in a cycle) are built and sent: its passes over them
    otherwise cost about three times the building itself. They are freed by reference
    counting as their calls complete."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _cuts(starts: list[int], sizes: list[int], max_rows: int,
          max_bytes: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` index ranges over rows of ``sizes`` bytes: a new range at each index in
    ``starts`` (where the event millisecond changes) and wherever the range would exceed
    ``max_rows`` rows or ``max_bytes`` bytes (a single larger row is a range of its own).

    >>> _cuts([4], [3, 3, 3, 9, 1], max_rows=2, max_bytes=8)
    [(0, 2), (2, 3), (3, 4), (4, 5)]
    """
    out: list[tuple[int, int]] = []
    bounds = set(starts)
    lo = used = 0
    for i, size in enumerate(sizes):
        if i > lo and (i in bounds or i - lo >= max_rows or used + size > max_bytes):
            out.append((lo, i))
            lo, used = i, 0
        used += size
    if sizes:
        out.append((lo, len(sizes)))
    return out
