"""The online-store conformance suite over happybase: against the HBase Thrift1 emulator
(real TCP), and unchanged against a real HBase Thrift server when ``SPARKFS_HBASE_HOST``
(and ``SPARKFS_HBASE_PORT``) are set."""

from __future__ import annotations

import os
import uuid

import pytest
from online_conformance import OnlineConformance

from sparkfs.testing.hbase import hbase_emulator  # noqa: F401  (fixture)


class TestHBaseEmulator(OnlineConformance):
    expired_status = "missing"  # HBase's column-family TTL removes the cells itself

    @pytest.fixture
    def online_config(self, hbase_emulator):  # noqa: F811
        return {"type": "hbase", "host": hbase_emulator.host, "port": hbase_emulator.port,
                "timeout_ms": 2000, "retries": 1, "backoff_ms": 10}


@pytest.mark.skipif(not os.environ.get("SPARKFS_HBASE_HOST"),
                    reason="set SPARKFS_HBASE_HOST/SPARKFS_HBASE_PORT to run against real HBase")
class TestRealHBase(OnlineConformance):
    expired_status = "missing"

    @pytest.fixture
    def online_config(self):
        return {"type": "hbase", "host": os.environ["SPARKFS_HBASE_HOST"],
                "port": int(os.environ.get("SPARKFS_HBASE_PORT", "9090")),
                "table_prefix": "t" + uuid.uuid4().hex[:12]}


class TestSaltedKeys(OnlineConformance):
    expired_status = "missing"

    @pytest.fixture
    def online_config(self, hbase_emulator):  # noqa: F811
        return {"type": "hbase", "host": hbase_emulator.host, "port": hbase_emulator.port,
                "salt_buckets": 16}
