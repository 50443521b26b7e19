"""sparkfs's pytest plugin: HBase and Spark cluster fixtures for your own test suite.

Installing sparkfs registers this module under the ``pytest11`` entry point
``sparkfs.testing.plugin``, so these fixtures are available in every pytest run without
an import (or add ``pytest_plugins = ["sparkfs.testing.plugin"]`` to a conftest). The
module itself imports nothing heavy: the emulator's Thrift IDL is parsed, Java is looked
for and Spark is touched only when a test asks for the fixture.

* ``hbase_emulator``: a fresh HBase Thrift1 emulator on a free port (per test; in memory).
* ``real_hbase``: ONE real single-node HBase 2.6 plus its Thrift1 server per test run
  (``sparkfs.testing.hbase_server.RealHBase``), stopped at the end of the session. When
  Java or the fetched jars are missing, tests using it are skipped with a one-line
  reason; under ``CI=true`` (or ``SPARKFS_REQUIRE_REAL_HBASE=1``) that is a failure.
  With ``SPARKFS_TEST_HBASE=host:port`` the same tests use that existing HBase Thrift1
  server instead (nothing is started; tables get unique prefixes and are dropped).
* ``hbase_online_config``: parametrized over ``emulator`` and ``real``: an ``online``
  config section for sparkfs with a table prefix of its own, so a test runs on both.
* ``spark_cluster``: a standalone Spark master and worker on 127.0.0.1 for the session.

>>> require_real_hbase({"CI": "true"}), require_real_hbase({})
(True, False)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest


def require_real_hbase(environ: Mapping[str, str] | None = None) -> bool:
    """True when a missing real HBase must fail the run instead of skipping (CI)."""
    env = os.environ if environ is None else environ
    flag = lambda name: env.get(name, "").strip().lower() in ("1", "true", "yes")  # noqa: E731
    return flag("CI") or flag("SPARKFS_REQUIRE_REAL_HBASE")


def unique_prefix() -> str:
    """A fresh HBase table prefix (``t`` + 12 hex digits), to share one server safely.

    >>> p = unique_prefix(); len(p), p[0]
    (13, 't')
    """
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def hbase_emulator() -> Iterator[Any]:
    """A fresh HBase Thrift1 emulator on a free port, stopped after the test."""
    from .hbase import HBaseEmulator

    with HBaseEmulator() as emu:
        yield emu


class ExistingHBase:
    """An HBase Thrift1 server someone else runs, given as ``host:port``.

    >>> hb = ExistingHBase("hbase-thrift.internal:9090")
    >>> hb.online_config(table_prefix="t1")["port"]
    9090
    """

    def __init__(self, address: str) -> None:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"SPARKFS_TEST_HBASE={address!r}: write HOST:PORT")
        self.host, self.port = host, int(port)

    def online_config(self, **overrides: Any) -> dict[str, Any]:
        """The ``online`` config section pointing sparkfs at this server."""
        return {"type": "hbase", "host": self.host, "port": self.port, **overrides}


@pytest.fixture(scope="session")
def real_hbase() -> Iterator[Any]:
    """One real standalone HBase with its Thrift1 server for the whole test run."""
    from .hbase_server import RealHBase, unavailable_reason

    existing = os.environ.get("SPARKFS_TEST_HBASE")
    if existing:
        yield ExistingHBase(existing)
        return
    reason = unavailable_reason()
    if reason is not None:
        if require_real_hbase():
            pytest.fail(f"a real HBase is required here (CI): {reason}", pytrace=False)
        pytest.skip(f"no real HBase: {reason}")
    with RealHBase() as server:
        yield server


@pytest.fixture(params=["emulator", "real"])
def hbase_online_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """An ``online`` config for the emulator, then for the real HBase (own table prefix)."""
    if request.param == "emulator":
        emu = request.getfixturevalue("hbase_emulator")
        return {"type": "hbase", "host": emu.host, "port": emu.port,
                "timeout_ms": 5000, "retries": 1, "backoff_ms": 10}
    server = request.getfixturevalue("real_hbase")
    return server.online_config(table_prefix=unique_prefix(), timeout_ms=60_000)


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A standalone Spark master and one worker (1 core, 1g) on 127.0.0.1."""
    from .spark_cluster import SparkCluster

    with SparkCluster(tmp_path_factory.mktemp("spark-cluster"), cores=1, memory="1g") as cluster:
        yield cluster


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_hbase: runs against a real HBase (the real_hbase "
                            "fixture); deselect with -m 'not real_hbase'")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the real HBase (directly or through a parameter)."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if ("real_hbase" in getattr(item, "fixturenames", ())
                or any(isinstance(v, str) and v in ("real", "real_hbase")
                        for v in params.values())):
            item.add_marker(pytest.mark.real_hbase)
