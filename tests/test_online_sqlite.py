"""The online-store conformance suite on SQLite (real files, WAL mode)."""

from __future__ import annotations

import pytest
from online_conformance import OnlineConformance


class TestSqliteOnlineStore(OnlineConformance):
    @pytest.fixture
    def online_config(self, tmp_path):
        return {"type": "sqlite", "path": str(tmp_path / "online.db")}

    def test_file_is_in_wal_mode(self, fs, tmp_path):
        import sqlite3

        fs.online.get_watermark(_group(fs))
        con = sqlite3.connect(tmp_path / "online.db")
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        con.close()


def _group(fs):
    from online_conformance import weather_group

    g = weather_group()
    fs.apply([g])
    return g
