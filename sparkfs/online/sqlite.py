"""The embedded online store: one SQLite file in WAL mode (the default backend).

Each feature group version gets a table named ``group.table_name`` (``weather__v1``)::

    <join keys...> PRIMARY KEY, _event_time INTEGER (µs, UTC), _commit_time INTEGER (µs),
    _values BLOB (the group's features in definition order: ``codec.RowCodec``)

An upsert replaces a row only when the incoming event time is newer (equal event time:
when the incoming commit time is not older), so replays and late, out-of-order batches
never move a value back in time. WAL mode lets any number of readers (other processes
too) read while one process writes. Watermarks live in ``_sparkfs_watermarks``.
Connections are per thread.

>>> import tempfile, os, pyarrow as pa, datetime as dt
>>> from sparkfs.definitions import Entity, Field, FeatureGroup
>>> g = FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
...                  [Field("temp", "double")])
>>> store = SqliteOnlineStore(os.path.join(tempfile.mkdtemp(), "online.db"))
>>> t = lambda h: dt.datetime(2013, 1, 1, h, tzinfo=dt.timezone.utc)
>>> store.write_batch(g, pa.table({"origin": ["JFK", "JFK"], "time_hour": [t(5), t(4)],
...                                "temp": [39.0, 35.1]}))
2
>>> store.read(g, [("JFK",), ("EWR",)], ["temp"])
[OnlineRow(event_time_us=1357016400000000, values=(39.0,)), None]
>>> store.close()
"""

from __future__ import annotations

import datetime as dt
import operator
import os
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from ..definitions import FeatureGroup
from ..errors import OnlineStoreError, ValidationError
from . import codec
from .base import OnlineRow

_MAX_PARAMS = 900  # keys per SELECT (well under SQLite's parameter limit)
_WATERMARKS = "_sparkfs_watermarks"


class SqliteOnlineStore:
    """Online store in one SQLite file (``path``); see the module docstring."""

    def __init__(self, path: str, busy_timeout_ms: int = 30_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._tables: set[str] = set()
        self._plans: dict[tuple, tuple] = {}

    # -- connections --------------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000,
                                      isolation_level=None, check_same_thread=False)
                con.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute(f"CREATE TABLE IF NOT EXISTS {_WATERMARKS} (table_name TEXT PRIMARY "
                            "KEY, delta_version INTEGER NOT NULL, updated_at TEXT NOT NULL)")
            except sqlite3.Error as exc:
                raise OnlineStoreError(f"online store {self.path} cannot be opened: {exc}; "
                                       "check online.path and its disk") from None
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()

    # -- tables ---------------------------------------------------------------------------
    def _ensure_table(self, con: sqlite3.Connection, group: FeatureGroup) -> str:
        name = group.table_name
        if name not in self._tables:
            cols = ", ".join(f'"{k}" {"TEXT" if d == "string" else "INTEGER"} NOT NULL'
                             for k, d in group.key_dtypes.items())
            keys = ", ".join(f'"{k}"' for k in group.join_keys)
            con.execute(f'CREATE TABLE IF NOT EXISTS "{name}" ({cols}, _event_time INTEGER NOT '
                        f'NULL, _commit_time INTEGER NOT NULL, _values BLOB NOT NULL, '
                        f'PRIMARY KEY ({keys})) WITHOUT ROWID')
            self._tables.add(name)
        return name

    def _exists(self, con: sqlite3.Connection, name: str) -> bool:
        if name in self._tables:
            return True
        row = con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                          (name,)).fetchone()
        if row:
            self._tables.add(name)
        return row is not None

    # -- writes -----------------------------------------------------------------------------
    def write_batch(self, group: FeatureGroup, rows: Any) -> int:
        """Upsert Arrow rows, newer event wins (see ``OnlineStore``)."""
        columns = prepare_rows(group, rows)
        if not columns:
            return 0
        keys = ", ".join(f'"{k}"' for k in group.join_keys)
        con = self._con()
        try:
            name = self._ensure_table(con, group)
            sql = (f'INSERT INTO "{name}" ({keys}, _event_time, _commit_time, _values) '
                   f'VALUES ({", ".join("?" * (len(group.join_keys) + 3))}) '
                   f'ON CONFLICT ({keys}) DO UPDATE SET _event_time=excluded._event_time, '
                   '_commit_time=excluded._commit_time, _values=excluded._values '
                   f'WHERE excluded._event_time > "{name}"._event_time OR '
                   f'(excluded._event_time = "{name}"._event_time AND '
                   f'excluded._commit_time >= "{name}"._commit_time)')
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(sql, zip(*columns))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise OnlineStoreError(
                f"online store {self.path}: writing feature group {group.name!r} failed: "
                f"{exc}") from None
        return len(columns[0])

    # -- reads -------------------------------------------------------------------------------
    def _plan(self, group: FeatureGroup, features: Sequence[str]) -> tuple:
        key = (group.table_name, tuple(features))
        plan = self._plans.get(key)
        if plan is None:
            order = {f.name: (i, f.dtype) for i, f in enumerate(group.features)}
            idx = tuple(order[f][0] for f in features)
            decs = tuple(codec.decoder(order[f][1]) for f in features)
            row_codec = codec.RowCodec([f.dtype for f in group.features])
            # rows of repeated keys may share one decoded row unless a value is a (mutable) list
            shared = not any(order[f][1].startswith("array") for f in features)
            plan = (_getter(idx), decs if any(decs) else None, idx, row_codec.decode, shared)
            self._plans[key] = plan
        return plan

    def read(self, group: FeatureGroup, keys: Sequence[tuple],
             features: Sequence[str]) -> list[OnlineRow | None]:
        """Rows aligned with ``keys`` (None for a key without a row)."""
        con = self._con()
        name = group.table_name
        if not keys:
            return []
        try:
            if not self._exists(con, name):
                return [None] * len(keys)
            nk = len(group.join_keys)
            kcols = ", ".join(f'"{k}"' for k in group.join_keys)
            found: dict[tuple, tuple] = {}
            for start in range(0, len(keys), _MAX_PARAMS):
                chunk = keys[start:start + _MAX_PARAMS]
                if nk == 1:
                    where = (f'"{group.join_keys[0]}" = ?' if len(chunk) == 1 else
                             f'"{group.join_keys[0]}" IN ({",".join("?" * len(chunk))})')
                    params: list = [k[0] for k in chunk]
                else:
                    one = "(" + ",".join("?" * nk) + ")"
                    where = f"({kcols}) IN (VALUES {','.join([one] * len(chunk))})"
                    params = [v for k in chunk for v in k]
                cur = con.execute(f'SELECT {kcols}, _event_time, _values FROM "{name}" '
                                  f"WHERE {where}", params)
                for r in cur:
                    found[r[:nk]] = (r[nk], r[nk + 1])
        except sqlite3.Error as exc:
            raise OnlineStoreError(
                f"online store {self.path}: reading feature group {group.name!r} failed: "
                f"{exc}") from None
        get, decs, idx, loads, shared = self._plan(group, features)

        def decoded(hit: tuple) -> OnlineRow:
            stored = loads(hit[1])
            if decs is None:
                return OnlineRow(hit[0], get(stored))
            return OnlineRow(hit[0], tuple(stored[i] if d is None else d(stored[i])
                                           for i, d in zip(idx, decs)))

        if shared:  # each stored row decoded once, however often its key is requested
            rows = {k: decoded(hit) for k, hit in found.items()}
            return [rows.get(k) for k in keys]
        return [None if (hit := found.get(k)) is None else decoded(hit) for k in keys]

    # -- lifecycle ---------------------------------------------------------------------------
    def drop(self, group: FeatureGroup) -> None:
        con = self._con()
        con.execute(f'DROP TABLE IF EXISTS "{group.table_name}"')
        con.execute(f"DELETE FROM {_WATERMARKS} WHERE table_name=?", (group.table_name,))
        self._tables.discard(group.table_name)

    def get_watermark(self, group: FeatureGroup) -> int | None:
        row = self._con().execute(f"SELECT delta_version FROM {_WATERMARKS} WHERE table_name=?",
                                  (group.table_name,)).fetchone()
        return None if row is None else int(row[0])

    def set_watermark(self, group: FeatureGroup, delta_version: int) -> None:
        self._con().execute(
            f"INSERT INTO {_WATERMARKS} VALUES (?,?,?) ON CONFLICT(table_name) DO UPDATE SET "
            "delta_version=excluded.delta_version, updated_at=excluded.updated_at",
            (group.table_name, int(delta_version), dt.datetime.now(dt.UTC).isoformat()))

    def count(self, group: FeatureGroup) -> int:
        """Rows stored for the group version (0 before its first materialization)."""
        con = self._con()
        if not self._exists(con, group.table_name):
            return 0
        return con.execute(f'SELECT count(*) FROM "{group.table_name}"').fetchone()[0]


def _getter(idx: tuple[int, ...]):
    """A fast ``stored -> tuple of stored[i] for i in idx``."""
    if not idx:
        return lambda stored: ()
    if len(idx) == 1:
        i = idx[0]
        return lambda stored: (stored[i],)
    return operator.itemgetter(*idx)


def checked_rows(group: FeatureGroup, rows: Any) -> pa.Table | None:
    """The Arrow rows of a ``write_batch`` call, checked (an Arrow table or record batch
    with the group's keys, event time and features, and no null key or event time), or
    None when there are none. Every online store checks its input with it.

    >>> from sparkfs.testing.conformance import weather_group
    >>> checked_rows(weather_group(), pa.table({"origin": [None]}))
    Traceback (most recent call last):
    ...
    sparkfs.errors.ValidationError: online write for feature group 'weather': rows lack columns ['time_hour', 'temp', 'wind_speed']
    """  # noqa: E501 (doctest output)
    if isinstance(rows, pa.RecordBatch):
        rows = pa.Table.from_batches([rows])
    if not isinstance(rows, pa.Table):
        raise ValidationError(f"online write for feature group {group.name!r} needs an Arrow "
                              f"table, got {type(rows).__name__}")
    if rows.num_rows == 0:
        return None
    need = list(group.join_keys) + [group.event_time] + [f.name for f in group.features]
    missing = [c for c in need if c not in rows.column_names]
    if missing:
        raise ValidationError(f"online write for feature group {group.name!r}: rows lack "
                              f"columns {missing}")
    for c in list(group.join_keys) + [group.event_time]:
        nulls = rows[c].null_count
        if nulls:
            raise ValidationError(f"online write for feature group {group.name!r}: {nulls} "
                                  f"rows have a null {c!r}; nothing was written")
    return rows


def commit_times_us(rows: pa.Table) -> list[int]:
    """The rows' ``_commit_time`` in µs; now for every row when the column is missing or
    has a null.

    >>> commit_times_us(pa.table({"_commit_time": [dt.datetime(1970, 1, 1, 0, 0, 1)]}))
    [1000000]
    """
    if "_commit_time" in rows.column_names and rows["_commit_time"].null_count == 0:
        return codec.arrow_column_to_stored(rows["_commit_time"], "timestamp")
    return [codec.timestamp_to_us(dt.datetime.now(dt.UTC))] * rows.num_rows


def prepare_rows(group: FeatureGroup, rows: Any) -> list[list]:
    """Check Arrow rows for ``write_batch`` and turn them into column lists of stored
    forms: join keys..., event µs, commit µs, and one ``codec.RowCodec`` blob per row."""
    checked = checked_rows(group, rows)
    if checked is None:
        return []
    rows = checked
    out = [codec.arrow_column_to_stored(rows[k], d) for k, d in group.key_dtypes.items()]
    out.append(codec.arrow_column_to_stored(rows[group.event_time], "timestamp"))
    out.append(commit_times_us(rows))
    dtypes = [f.dtype for f in group.features]
    out.append(codec.RowCodec(dtypes).encode_arrow([rows[f.name] for f in group.features],
                                                   dtypes))
    return out


__all__ = ["SqliteOnlineStore", "checked_rows", "commit_times_us", "prepare_rows"]
