"""A throw-away PostgreSQL server from Debian's packages, for tests and local trials.

``PostgresServer`` runs ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` (the
newest installed major version; ``make postgres`` installs the package) on a data
directory in a fresh temp dir, listening on a free port of 127.0.0.1 with its unix socket
in that temp dir, trust authentication, no ``fsync``. PostgreSQL refuses to run as root:
under root the temp dir is handed to the ``postgres`` OS user and every command runs as
that user (``runuser -u postgres --``). ``stop()`` (or leaving the ``with`` block) stops
the server and removes the temp dir. ``database()`` makes a fresh, empty database and
returns its URL, so tests do not see each other's rows.

In pytest use the session-scoped ``postgres_server`` fixture (``from
sparkfs.testing.postgres import postgres_server``): it skips with a one-line reason when
PostgreSQL is not installed, and fails instead under ``CI=true``.

>>> find_bindir() is None or os.path.exists(os.path.join(find_bindir(), "pg_ctl"))
True
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any


def find_bindir() -> str | None:
    """The bin dir of the newest installed PostgreSQL (``None`` when there is none), or
    the one ``SPARKFS_PG_BINDIR`` names (``None`` when it holds no ``pg_ctl``).

    >>> d = find_bindir()
    >>> d is None or os.path.exists(os.path.join(d, "pg_ctl"))
    True
    """
    forced = os.environ.get("SPARKFS_PG_BINDIR")
    pattern = forced if forced else "/usr/lib/postgresql/*/bin"
    dirs = [d for d in glob.glob(pattern)
            if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl"))]
    if not dirs:
        return None
    return max(dirs, key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temp dir on a free loopback port (see the module doc).

    >>> if find_bindir():
    ...     with PostgresServer() as pg:
    ...         url = pg.database()
    ...     print(url.startswith("postgresql://postgres@127.0.0.1:"))
    ... else:
    ...     print(True)
    True
    """

    def __init__(self, bindir: str | None = None) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise FileNotFoundError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/"
                                    "pg_ctl): run `make postgres` or apt-get install postgresql")
        self.bindir = found
        self.port = 0
        self.tmp = ""
        self._counter = itertools.count(1)
        self._as_user: list[str] = []

    @property
    def url(self) -> str:
        """The URL of the ``postgres`` database (superuser ``postgres``, no password)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [*self._as_user, os.path.join(self.bindir, args[0]), *args[1:]]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, cwd=self.tmp)

    def start(self) -> PostgresServer:
        """initdb, then ``pg_ctl start -w`` (waits until it accepts connections)."""
        self.tmp = tempfile.mkdtemp(prefix="sparkfs-pg-")
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise RuntimeError("running as root needs runuser to start PostgreSQL as the "
                                   "postgres user")
            shutil.chown(self.tmp, user="postgres", group="postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        data = os.path.join(self.tmp, "data")
        r = self._run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--no-sync", "--no-locale")
        if r.returncode != 0:
            self.stop()
            raise RuntimeError(f"initdb failed: {r.stderr.strip()[-500:]}")
        for _ in range(5):
            self.port = _free_port()
            opts = (f"-p {self.port} -k {self.tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
            r = self._run("pg_ctl", "-D", data, "-l", os.path.join(self.tmp, "log"), "-w",
                          "-t", "60", "-o", opts, "start")
            if r.returncode == 0:
                return self
        log = open(os.path.join(self.tmp, "log")).read()[-800:]
        self.stop()
        raise RuntimeError(f"PostgreSQL did not start: {r.stderr.strip()} {log}")

    def database(self, name: str | None = None) -> str:
        """Create a fresh database and return its URL."""
        name = name or f"t{os.getpid()}_{next(self._counter)}"
        r = self._run("psql", "-h", self.tmp, "-p", str(self.port), "-U", "postgres", "-d",
                      "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", f'CREATE DATABASE "{name}"')
        if r.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE {name} failed: {r.stderr.strip()}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its temp dir."""
        data = os.path.join(self.tmp, "data")
        if self.tmp and os.path.exists(os.path.join(data, "postmaster.pid")):
            self._run("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = ""

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


try:
    import pytest

    @pytest.fixture(scope="session")
    def postgres_server() -> Iterator[PostgresServer]:
        """A throw-away PostgreSQL for the test session; skips when it is not installed
        (fails under ``CI=true``, where a skipped backend would hide a broken setup)."""
        if find_bindir() is None:
            reason = ("PostgreSQL is not installed (no pg_ctl in /usr/lib/postgresql/*/bin or "
                      "SPARKFS_PG_BINDIR): run `make postgres`")
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"CI=true: {reason}", pytrace=False)
            pytest.skip(reason)
        with PostgresServer() as pg:
            yield pg
except ImportError:  # pragma: no cover - pytest is a test-time dependency
    pass
