"""Where the registry's rows live: one SQLite file (the embedded default) or PostgreSQL.

``Registry`` (``sparkfs.registry``) holds the rules; a backend here runs its SQL. Both run
the same statements (named ``:param`` placeholders, ``INSERT ... ON CONFLICT``) and give
the same guarantees:

* **opening writes nothing**: tables are created by the first write transaction; a read
  of a registry that has no tables yet returns no rows;
* **one writer at a time**: a write transaction first takes the registry's write lock
  (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock), so two
  processes applying at once are serialised and history ``seq`` follows commit order;
* **bounded waits**: a lock not granted within ``lock_timeout_s`` is
  ``RegistryUnavailableError`` ("is locked by another process"), never a hang;
* **reads never need the write lock**: SQLite reads use a read-only connection (so a
  read-only disk serves them); PostgreSQL reads are plain MVCC snapshots.

PostgreSQL is used through SQLAlchemy Core with psycopg 3 (``pip install
'sparkfs[postgres]'``); ``postgresql://`` URLs get the psycopg driver. Passwords never
appear in messages.

>>> open_backend("postgresql://u:secret@db.internal/fs", 5).label
'postgresql://u:***@db.internal/fs'
>>> open_backend("/tmp/x/registry.db", 5).label
'/tmp/x/registry.db'
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from .errors import ConfigError, RegistryUnavailableError, first_line

_SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    spec TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, name, version)
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    action TEXT NOT NULL, spec TEXT NOT NULL, applied_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_POSTGRES_DDL = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, name TEXT NOT NULL, version BIGINT NOT NULL,
    spec TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, name, version)
);
CREATE TABLE IF NOT EXISTS history (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL, name TEXT NOT NULL, version BIGINT NOT NULL,
    action TEXT NOT NULL, spec TEXT NOT NULL, applied_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_SCHEMA_ROW = ("INSERT INTO meta VALUES ('schema_version', :v) ON CONFLICT (key) DO NOTHING")

#: The advisory lock key of the registry's write lock (any constant; "sparkfs" in ASCII).
_PG_LOCK_KEY = 0x737061726B6673

URL_SCHEMES = ("postgresql://", "postgresql+psycopg://")


class Transaction(Protocol):
    """One write transaction: statements with named ``:param`` placeholders."""

    def one(self, sql: str, params: Mapping[str, Any]) -> tuple | None: ...

    def run(self, sql: str, params: Mapping[str, Any]) -> None: ...


class Backend(Protocol):
    """What ``Registry`` needs from a store of rows."""

    label: str

    def query(self, sql: str, params: Mapping[str, Any]) -> list[tuple]: ...

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]: ...


def is_url(location: str) -> bool:
    """True when ``location`` names a PostgreSQL registry rather than a SQLite file.

    >>> is_url("postgresql://fs@db/fs"), is_url("/data/registry.db")
    (True, False)
    """
    return location.startswith(URL_SCHEMES)


def open_backend(location: str, lock_timeout_s: float, schema_version: int = 1) -> Backend:
    """The backend for a file path or a ``postgresql://`` URL (nothing is opened yet)."""
    if is_url(location):
        return PostgresBackend(location, lock_timeout_s, schema_version)
    if "://" in location and not location.startswith("file://"):
        raise ConfigError(f"registry {location.split('://')[0]}:// is not supported: give a "
                          "SQLite file path or a postgresql:// URL")
    return SqliteBackend(location, lock_timeout_s, schema_version)


def _why(text: str, doing: str, lock_timeout_s: float) -> str:
    if "locked" in text or "busy" in text or "lock timeout" in text:
        return (f"is locked by another process ({doing} waited {lock_timeout_s:g} s, "
                "registry.lock_timeout_s); retry when that process has finished")
    if doing == "reading":
        return f"cannot be read ({text})"
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return "is read-only here; write from a host where it is writable"
    return f"refused the write ({text})"


class _SqliteTx:
    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def one(self, sql: str, params: Mapping[str, Any]) -> tuple | None:
        return self.con.execute(sql, dict(params)).fetchone()

    def run(self, sql: str, params: Mapping[str, Any]) -> None:
        self.con.execute(sql, dict(params))


class SqliteBackend:
    """Rows in one SQLite file in WAL mode; reads on a read-only connection.

    >>> import tempfile, os
    >>> b = SqliteBackend(os.path.join(tempfile.mkdtemp(), "r.db"), 1.0)
    >>> b.query("SELECT spec FROM objects", {})   # nothing written yet: no file, no rows
    []
    >>> with b.transaction() as tx:
    ...     tx.run("INSERT INTO meta VALUES ('k', :v)", {"v": "1"})
    >>> b.query("SELECT value FROM meta WHERE key='k'", {})
    [('1',)]
    """

    def __init__(self, path: str, lock_timeout_s: float, schema_version: int = 1) -> None:
        self.path = path[len("file://"):] if path.startswith("file://") else path
        self.label = self.path
        self.lock_timeout_s = lock_timeout_s
        self.schema_version = schema_version

    def _unavailable(self, exc: sqlite3.Error, doing: str) -> RegistryUnavailableError:
        return RegistryUnavailableError(
            f"registry {self.path} {_why(str(exc), doing, self.lock_timeout_s)}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``BEGIN IMMEDIATE`` on a writable connection; creates the file and tables."""
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            con = sqlite3.connect(self.path, timeout=self.lock_timeout_s, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise RegistryUnavailableError(f"registry {self.path} cannot be opened for "
                                           f"writing: {exc}") from None
        try:
            try:
                con.execute(f"PRAGMA busy_timeout={int(self.lock_timeout_s * 1000)}")
                if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    con.execute("PRAGMA journal_mode=WAL")
                for stmt in _SQLITE_DDL.split(";"):
                    if stmt.strip():
                        con.execute(stmt)
                if con.execute("SELECT 1 FROM meta WHERE key='schema_version'").fetchone() is None:
                    con.execute(_SCHEMA_ROW, {"v": str(self.schema_version)})
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._unavailable(exc, "writing") from None
            try:
                yield _SqliteTx(con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise self._unavailable(exc, "writing") from None
        finally:
            con.close()

    def query(self, sql: str, params: Mapping[str, Any]) -> list[tuple]:
        """Rows of a read, on a read-only connection (nothing stored yet: no rows)."""
        if not os.path.exists(self.path):
            return []
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path))
        last: sqlite3.Error | None = None
        for mode in ("?mode=ro", "?mode=ro&immutable=1"):  # immutable: no -shm can be made
            try:
                con = sqlite3.connect(uri + mode, uri=True, timeout=self.lock_timeout_s,
                                      isolation_level=None)
            except sqlite3.Error as exc:
                last = exc
                continue
            try:
                con.execute(f"PRAGMA busy_timeout={int(self.lock_timeout_s * 1000)}")
                return con.execute(sql, dict(params)).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                last = exc
                if "unable to open" not in str(exc):
                    break
            finally:
                con.close()
        if last is None:  # pragma: no cover - the loop always sets it before falling out
            raise RegistryUnavailableError(f"registry {self.path} cannot be read")
        raise self._unavailable(last, "reading")


class _SqlAlchemyTx:
    def __init__(self, con: Any) -> None:
        self.con = con

    def one(self, sql: str, params: Mapping[str, Any]) -> tuple | None:
        from sqlalchemy import text

        row = self.con.execute(text(sql), dict(params)).fetchone()
        return None if row is None else tuple(row)

    def run(self, sql: str, params: Mapping[str, Any]) -> None:
        from sqlalchemy import text

        self.con.execute(text(sql), dict(params))


class PostgresBackend:
    """Rows in PostgreSQL through SQLAlchemy Core and psycopg 3.

    The engine (a small connection pool) is made on first use, so opening a registry
    connects to nothing. Writers serialise on one advisory lock taken first in each
    write transaction, with ``lock_timeout`` bounding the wait; tables are created inside
    that transaction by the first writer.
    """

    def __init__(self, url: str, lock_timeout_s: float, schema_version: int = 1) -> None:
        try:
            from sqlalchemy.engine import make_url
        except ImportError:  # pragma: no cover - depends on the installed extras
            raise ConfigError("registry.url is a postgresql:// URL, which needs SQLAlchemy "
                              "and psycopg: pip install 'sparkfs[postgres]'") from None
        try:
            parsed = make_url(url)
        except Exception as exc:  # sqlalchemy.exc.ArgumentError: say which setting
            raise ConfigError(f"registry.url is not a valid URL: {exc}") from None
        self.url = parsed.set(drivername="postgresql+psycopg")
        self.label = parsed.render_as_string(hide_password=True)
        self.lock_timeout_s = lock_timeout_s
        self.schema_version = schema_version
        self._engine: Any = None
        self._ready = False

    def _get_engine(self) -> Any:
        if self._engine is None:
            try:
                import psycopg  # noqa: F401
                from sqlalchemy import create_engine
            except ImportError:  # pragma: no cover - depends on the installed extras
                raise ConfigError("registry.url is a postgresql:// URL, which needs "
                                  "psycopg: pip install 'sparkfs[postgres]'") from None
            ms = max(1, int(self.lock_timeout_s * 1000))
            self._engine = create_engine(
                self.url, pool_pre_ping=True, pool_size=4, max_overflow=8,
                pool_timeout=self.lock_timeout_s,
                connect_args={"connect_timeout": max(1, round(self.lock_timeout_s)),
                              "options": f"-c lock_timeout={ms} -c statement_timeout={4 * ms}"})
        return self._engine

    def close(self) -> None:
        """Close the pooled connections (a new pool is made on next use)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _unavailable(self, exc: Exception, doing: str) -> RegistryUnavailableError:
        orig = getattr(exc, "orig", exc)
        state = getattr(orig, "sqlstate", None) or ""
        text = first_line(orig)
        if state == "55P03":           # lock_not_available
            text = "lock timeout"
        elif state in ("25006", "42501") and doing == "writing":  # read-only / no privilege
            text = f"read-only ({text})"
        elif state.startswith("08") or state == "" and "connect" in text:
            return RegistryUnavailableError(
                f"registry {self.label} cannot be reached ({text}); check registry.url and "
                "that the database is up")
        return RegistryUnavailableError(
            f"registry {self.label} {_why(text, doing, self.lock_timeout_s)}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction holding the registry's write lock; creates the tables."""
        from sqlalchemy import exc as sa_exc
        from sqlalchemy import text

        try:
            with self._get_engine().begin() as con:
                try:
                    con.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
                    if not self._ready:
                        for stmt in _POSTGRES_DDL.split(";"):
                            if stmt.strip():
                                con.execute(text(stmt))
                        con.execute(text(_SCHEMA_ROW), {"v": str(self.schema_version)})
                except sa_exc.DBAPIError as exc:
                    raise self._unavailable(exc, "writing") from None
                yield _SqlAlchemyTx(con)
            self._ready = True
        except sa_exc.SQLAlchemyError as exc:  # DBAPI errors, a full pool's timeout
            raise self._unavailable(exc, "writing") from None

    def query(self, sql: str, params: Mapping[str, Any]) -> list[tuple]:
        """Rows of a read (no tables yet: no rows)."""
        from sqlalchemy import exc as sa_exc
        from sqlalchemy import text

        try:
            with self._get_engine().connect() as con:
                return [tuple(r) for r in con.execute(text(sql), dict(params)).fetchall()]
        except sa_exc.SQLAlchemyError as exc:  # DBAPI errors, a full pool's timeout
            if getattr(getattr(exc, "orig", None), "sqlstate", None) == "42P01":  # no table
                return []
            raise self._unavailable(exc, "reading") from None
