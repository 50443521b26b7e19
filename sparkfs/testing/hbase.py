"""An HBase Thrift1 server emulator, for tests. It stands in for HBase; it is not HBase.

``HBaseEmulator`` serves happybase's own ``Hbase.thrift`` IDL with thriftpy2 (binary
protocol, buffered transport: happybase's defaults), so an unmodified
``happybase.Connection`` talks to it over real TCP. Data lives in memory. It follows
HBase's semantics where sparkfs and happybase depend on them:

* each cell keeps its versions ordered by timestamp; a read returns the version with
  the **newest timestamp**, whatever the write order; an equal timestamp overwrites;
* a column family keeps at most ``maxVersions`` versions (``getVer`` returns them);
* ``timeToLive`` (seconds): cells older than now - ttl are invisible (``clock`` is
  injectable: ``emulator.clock = lambda: millis``);
* deletes leave markers that mask older-or-equal timestamps, also for later puts;
* puts without a timestamp get the server's current time; ``...Ts`` reads see only
  timestamps below the given one (as HBase's Thrift1 server does);
* tables must be disabled before ``deleteTable``; unknown tables or column families are
  refused with ``IOError``; an existing table with ``AlreadyExists``.

Accepted sockets get ``TCP_NODELAY`` (without it each multi-segment reply waits ~40 ms).
Scanners support start/stop rows, prefixes, columns, timestamps and ``reversed``, not
filter strings. Run one by hand with ``sparkfs dev-hbase --port 9090``; in pytest use the
``hbase_emulator`` fixture (``from sparkfs.testing.hbase import hbase_emulator``).

>>> import happybase
>>> with HBaseEmulator() as emu:
...     con = happybase.Connection(emu.host, emu.port)
...     con.create_table("t", {"f": dict(max_versions=1)})
...     t = con.table("t")
...     t.put(b"r", {b"f:q": b"new"}, timestamp=2000)
...     t.put(b"r", {b"f:q": b"old"}, timestamp=1000)   # older event arrives late
...     t.row(b"r")
...     con.close()
{b'f:q': b'new'}
"""

from __future__ import annotations

import bisect
import itertools
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import thriftpy2
from thriftpy2.server import TThreadedServer
from thriftpy2.thrift import TProcessor
from thriftpy2.transport import TServerSocket, TSocket

_FOREVER = 2147483647


def _load_idl() -> Any:
    import happybase

    path = os.path.join(os.path.dirname(happybase.__file__), "Hbase.thrift")
    return thriftpy2.load(path, module_name="sparkfs_hbase_thrift")


Hbase = _load_idl()


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Family:
    def __init__(self, desc: Any) -> None:
        self.desc = desc
        ttl = desc.timeToLive
        self.ttl_ms = None if ttl is None or ttl < 0 or ttl >= _FOREVER else ttl * 1000
        self.max_versions = max(1, desc.maxVersions or 1)


class _Table:
    def __init__(self, families: dict[bytes, _Family]) -> None:
        self.families = families
        self.enabled = True
        # row -> column (b"cf:q") -> list of (-ts, value), ascending by -ts (newest first)
        self.rows: dict[bytes, dict[bytes, list[tuple[int, bytes]]]] = {}
        # row -> column or family (b"cf:") -> newest deleted timestamp
        self.deletes: dict[bytes, dict[bytes, int]] = {}


def _family_of(column: bytes) -> tuple[bytes, bytes]:
    fam, _, qual = column.partition(b":")
    return fam, qual


class HBaseHandler:
    """The Thrift1 ``Hbase`` service over in-memory tables (see the module docstring)."""

    def __init__(self, clock: Callable[[], int] = _now_ms) -> None:
        self.clock = clock
        self._tables: dict[bytes, _Table] = {}
        self._scanners: dict[int, Iterator] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # -- helpers ---------------------------------------------------------------------------
    def _table(self, name: bytes, enabled: bool = True) -> _Table:
        t = self._tables.get(name)
        if t is None:
            raise Hbase.IOError(message=f"TableNotFoundException: {name!r}")
        if enabled and not t.enabled:
            raise Hbase.IOError(message=f"TableNotEnabledException: {name!r}")
        return t

    def _check_family(self, t: _Table, column: bytes) -> _Family:
        fam = t.families.get(_family_of(column)[0])
        if fam is None:
            raise Hbase.IOError(message=f"NoSuchColumnFamilyException: {column!r}")
        return fam

    def _visible(self, t: _Table, row: bytes, column: bytes, below: int | None,
                 versions: int = 1) -> list[Any]:
        cells = t.rows.get(row, {}).get(column)
        if not cells:
            return []
        fam = t.families[_family_of(column)[0]]
        oldest = None if fam.ttl_ms is None else self.clock() - fam.ttl_ms
        out = []
        for neg_ts, value in cells:
            ts = -neg_ts
            if below is not None and ts >= below:
                continue
            if oldest is not None and ts < oldest:
                break
            out.append(Hbase.TCell(value=value, timestamp=ts))
            if len(out) >= versions:
                break
        return out

    def _columns_of(self, t: _Table, row: bytes, columns: list[bytes] | None) -> list[bytes]:
        present = t.rows.get(row, {})
        if not columns:
            return sorted(present)
        out = []
        for c in columns:
            fam, qual = _family_of(c)
            self._check_family(t, c)
            if qual:
                out.extend([c] if c in present else [])
            else:
                out.extend(k for k in sorted(present) if _family_of(k)[0] == fam)
        return out

    def _result(self, t: _Table, row: bytes, columns: list[bytes] | None, below: int | None,
                sort: bool = False) -> Any | None:
        cells = {}
        for c in self._columns_of(t, row, columns):
            got = self._visible(t, row, c, below)
            if got:
                cells[c] = got[0]
        if not cells:
            return None
        if sort:
            return Hbase.TRowResult(row=row, sortedColumns=[
                Hbase.TColumn(columnName=c, cell=cells[c]) for c in sorted(cells)])
        return Hbase.TRowResult(row=row, columns=cells)

    def _put(self, t: _Table, row: bytes, column: bytes, value: bytes, ts: int) -> None:
        fam = self._check_family(t, column)
        if b":" not in column:
            raise Hbase.IllegalArgument(message=f"column {column!r} needs family:qualifier")
        marks = t.deletes.get(row, {})
        if ts <= max(marks.get(column, -1), marks.get(_family_of(column)[0] + b":", -1)):
            return  # masked by a delete marker, as in HBase
        cells = t.rows.setdefault(row, {}).setdefault(column, [])
        i = bisect.bisect_left(cells, (-ts,))
        if i < len(cells) and cells[i][0] == -ts:
            cells[i] = (-ts, value)
        else:
            cells.insert(i, (-ts, value))
        del cells[fam.max_versions:]

    def _delete(self, t: _Table, row: bytes, column: bytes | None, ts: int) -> None:
        cols = t.rows.get(row, {})
        if column is None:
            targets = list(cols)
            for fam in t.families:
                t.deletes.setdefault(row, {})[fam + b":"] = ts
        elif not _family_of(column)[1]:
            fam = _family_of(column)[0]
            self._check_family(t, column)
            targets = [c for c in cols if _family_of(c)[0] == fam]
            t.deletes.setdefault(row, {})[fam + b":"] = ts
        else:
            self._check_family(t, column)
            targets = [column]
            marks = t.deletes.setdefault(row, {})
            marks[column] = max(ts, marks.get(column, -1))
        for c in targets:
            if c in cols:
                cols[c] = [(n, v) for n, v in cols[c] if -n > ts]
                if not cols[c]:
                    del cols[c]
        if row in t.rows and not t.rows[row]:
            del t.rows[row]

    def _mutate(self, name: bytes, row: bytes, mutations: list[Any], ts: int | None) -> None:
        t = self._table(name)
        when = self.clock() if ts is None else ts
        for m in mutations:
            if m.isDelete:
                self._delete(t, row, m.column, when)
            else:
                self._put(t, row, m.column, m.value or b"", when)

    # -- admin -------------------------------------------------------------------------------
    def getTableNames(self) -> list[bytes]:
        with self._lock:
            return sorted(self._tables)

    def createTable(self, tableName: bytes, columnFamilies: list[Any]) -> None:
        with self._lock:
            if tableName in self._tables:
                raise Hbase.AlreadyExists(message=f"table {tableName!r} already exists")
            if not columnFamilies:
                raise Hbase.IllegalArgument(message="a table needs a column family")
            fams = {}
            for d in columnFamilies:
                fams[d.name.rstrip(b":")] = _Family(d)
            self._tables[tableName] = _Table(fams)

    def deleteTable(self, tableName: bytes) -> None:
        with self._lock:
            t = self._table(tableName, enabled=False)
            if t.enabled:
                raise Hbase.IOError(message=f"TableNotDisabledException: {tableName!r}")
            del self._tables[tableName]

    def enableTable(self, tableName: bytes) -> None:
        with self._lock:
            self._table(tableName, enabled=False).enabled = True

    def disableTable(self, tableName: bytes) -> None:
        with self._lock:
            self._table(tableName, enabled=False).enabled = False

    def isTableEnabled(self, tableName: bytes) -> bool:
        with self._lock:
            return self._table(tableName, enabled=False).enabled

    def getColumnDescriptors(self, tableName: bytes) -> dict[bytes, Any]:
        with self._lock:
            t = self._table(tableName, enabled=False)
            return {name + b":": f.desc for name, f in t.families.items()}

    def getTableRegions(self, tableName: bytes) -> list[Any]:
        with self._lock:
            self._table(tableName, enabled=False)
            return [Hbase.TRegionInfo(startKey=b"", endKey=b"", id=1, name=tableName,
                                      version=1, serverName=b"localhost", port=0)]

    def compact(self, tableNameOrRegionName: bytes) -> None:
        return None

    majorCompact = compact

    # -- reads ---------------------------------------------------------------------------------
    def get(self, tableName, row, column, attributes=None):
        with self._lock:
            t = self._table(tableName)
            self._check_family(t, column)
            return self._visible(t, row, column, None)

    def getVer(self, tableName, row, column, numVersions, attributes=None):
        with self._lock:
            t = self._table(tableName)
            self._check_family(t, column)
            return self._visible(t, row, column, None, max(1, numVersions))

    def getVerTs(self, tableName, row, column, timestamp, numVersions, attributes=None):
        with self._lock:
            t = self._table(tableName)
            self._check_family(t, column)
            return self._visible(t, row, column, timestamp, max(1, numVersions))

    def getRow(self, tableName, row, attributes=None):
        return self.getRowWithColumnsTs(tableName, row, None, None, attributes)

    def getRowTs(self, tableName, row, timestamp, attributes=None):
        return self.getRowWithColumnsTs(tableName, row, None, timestamp, attributes)

    def getRowWithColumns(self, tableName, row, columns, attributes=None):
        return self.getRowWithColumnsTs(tableName, row, columns, None, attributes)

    def getRowWithColumnsTs(self, tableName, row, columns, timestamp, attributes=None):
        with self._lock:
            r = self._result(self._table(tableName), row, columns, timestamp)
            return [] if r is None else [r]

    def getRows(self, tableName, rows, attributes=None):
        return self.getRowsWithColumnsTs(tableName, rows, None, None, attributes)

    def getRowsTs(self, tableName, rows, timestamp, attributes=None):
        return self.getRowsWithColumnsTs(tableName, rows, None, timestamp, attributes)

    def getRowsWithColumns(self, tableName, rows, columns, attributes=None):
        return self.getRowsWithColumnsTs(tableName, rows, columns, None, attributes)

    def getRowsWithColumnsTs(self, tableName, rows, columns, timestamp, attributes=None):
        with self._lock:
            t = self._table(tableName)
            out = []
            for row in rows:
                r = self._result(t, row, columns, timestamp)
                if r is not None:
                    out.append(r)
            return out

    # -- writes ----------------------------------------------------------------------------------
    def mutateRow(self, tableName, row, mutations, attributes=None):
        with self._lock:
            self._mutate(tableName, row, mutations, None)

    def mutateRowTs(self, tableName, row, mutations, timestamp, attributes=None):
        with self._lock:
            self._mutate(tableName, row, mutations, timestamp)

    def mutateRows(self, tableName, rowBatches, attributes=None):
        with self._lock:
            for b in rowBatches:
                self._mutate(tableName, b.row, b.mutations, None)

    def mutateRowsTs(self, tableName, rowBatches, timestamp, attributes=None):
        with self._lock:
            for b in rowBatches:
                self._mutate(tableName, b.row, b.mutations, timestamp)

    def deleteAll(self, tableName, row, column, attributes=None):
        with self._lock:
            self._delete(self._table(tableName), row, column, self.clock())

    def deleteAllTs(self, tableName, row, column, timestamp, attributes=None):
        with self._lock:
            self._delete(self._table(tableName), row, column, timestamp)

    def deleteAllRow(self, tableName, row, attributes=None):
        with self._lock:
            self._delete(self._table(tableName), row, None, self.clock())

    def deleteAllRowTs(self, tableName, row, timestamp, attributes=None):
        with self._lock:
            self._delete(self._table(tableName), row, None, timestamp)

    def atomicIncrement(self, tableName, row, column, value):
        with self._lock:
            t = self._table(tableName)
            got = self._visible(t, row, column, None)
            current = struct.unpack(">q", got[0].value)[0] if got else 0
            new = current + value
            self._put(t, row, column, struct.pack(">q", new), self.clock())
            return new

    # -- scanners -------------------------------------------------------------------------------
    def _open(self, tableName, start, stop, columns, timestamp, reverse=False, sort=False,
              prefix=None) -> int:
        with self._lock:
            t = self._table(tableName)
            keys = sorted(t.rows, reverse=reverse)
            results = []
            for k in keys:
                if prefix is not None and not k.startswith(prefix):
                    continue
                if not reverse:
                    if start and k < start or stop and k >= stop:
                        continue
                elif start and k > start or stop and k <= stop:
                    continue
                r = self._result(t, k, columns, timestamp, sort)
                if r is not None:
                    results.append(r)
            sid = next(self._ids)
            self._scanners[sid] = iter(results)
            return sid

    def scannerOpenWithScan(self, tableName, scan, attributes=None):
        if scan.filterString:
            raise Hbase.IOError(message="the sparkfs HBase emulator does not support filters")
        below = scan.timestamp  # HBase: setTimeRange(0, timestamp), upper bound exclusive
        return self._open(tableName, scan.startRow, scan.stopRow, scan.columns, below,
                          bool(scan.reversed), bool(scan.sortColumns))

    def scannerOpen(self, tableName, startRow, columns, attributes=None):
        return self._open(tableName, startRow, None, columns, None)

    def scannerOpenTs(self, tableName, startRow, columns, timestamp, attributes=None):
        return self._open(tableName, startRow, None, columns, timestamp)

    def scannerOpenWithStop(self, tableName, startRow, stopRow, columns, attributes=None):
        return self._open(tableName, startRow, stopRow, columns, None)

    def scannerOpenWithStopTs(self, tableName, startRow, stopRow, columns, timestamp,
                              attributes=None):
        return self._open(tableName, startRow, stopRow, columns, timestamp)

    def scannerOpenWithPrefix(self, tableName, startAndPrefix, columns, attributes=None):
        return self._open(tableName, startAndPrefix, None, columns, None, prefix=startAndPrefix)

    def scannerGetList(self, id, nbRows):
        with self._lock:
            it = self._scanners.get(id)
            if it is None:
                raise Hbase.IllegalArgument(message=f"scanner {id} does not exist")
            return list(itertools.islice(it, max(1, nbRows)))

    def scannerGet(self, id):
        return self.scannerGetList(id, 1)

    def scannerClose(self, id):
        with self._lock:
            if self._scanners.pop(id, None) is None:
                raise Hbase.IllegalArgument(message=f"scanner {id} does not exist")


class _NoDelayServerSocket(TServerSocket):
    """Accepted sockets get TCP_NODELAY and no idle timeout; they are tracked so that
    ``stop()`` can cut every client off, as a crashed server would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clients: set[socket.socket] = set()

    @property
    def listener(self) -> socket.socket:
        """The listening socket, opened by ``listen()``."""
        if self.sock is None:
            raise RuntimeError("the HBase emulator's socket is not listening: call listen()")
        return self.sock

    def accept(self) -> TSocket:
        client, _ = self.listener.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.settimeout(None)
        self.clients.add(client)
        return TSocket(sock=client)


class HBaseEmulator:
    """A running emulator on ``host:port`` (``port=0`` picks a free port).

    Use as a context manager, or ``start()`` / ``stop()``; ``serve_forever()`` blocks.
    ``handler`` holds the data; ``clock`` sets the time TTLs are judged at.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.handler = HBaseHandler()
        self._sock = _NoDelayServerSocket(host=host, port=port, client_timeout=None)
        self._sock.listen()
        self.port = self._sock.listener.getsockname()[1]
        self._server = TThreadedServer(TProcessor(Hbase.Hbase, self.handler), self._sock,
                                       daemon=True)
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def clock(self) -> Callable[[], int]:
        return self.handler.clock

    @clock.setter
    def clock(self, fn: Callable[[], int]) -> None:
        self.handler.clock = fn

    def _loop(self) -> None:
        while not self._stopped:
            try:
                client = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._server.handle, args=(client,), daemon=True).start()

    def start(self) -> "HBaseEmulator":
        self._thread = threading.Thread(target=self._loop, name=f"hbase-emulator-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._loop()

    def stop(self) -> None:
        """Stop listening and drop every client connection."""
        self._stopped = True
        try:
            self._sock.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.listener.close()
        for c in list(self._sock.clients):
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "HBaseEmulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


try:  # the fixture, for users' conftest: `from sparkfs.testing.hbase import hbase_emulator`
    import pytest

    @pytest.fixture
    def hbase_emulator() -> Iterator[HBaseEmulator]:
        """A fresh HBase Thrift1 emulator on a free port, stopped after the test."""
        with HBaseEmulator() as emu:
            yield emu
except ImportError:  # pragma: no cover - pytest is a test-time dependency
    pass
