"""Online stores: the latest feature values per entity key, read in milliseconds.

``open_online_store(config)`` is the one place a backend is chosen from ``online.type``:
``sqlite`` (embedded default, ``sparkfs.online.sqlite``) or ``hbase`` (happybase over
Thrift, ``sparkfs.online.hbase``). Both implement ``sparkfs.online.base.OnlineStore``.
Nothing here imports pyspark.

>>> import tempfile
>>> from sparkfs.config import load_config_dict
>>> store = open_online_store(load_config_dict({"data_dir": tempfile.mkdtemp()}, env={}))
>>> type(store).__name__
'SqliteOnlineStore'
>>> store.close()
"""

from __future__ import annotations

from ..config import Config, HBaseOnlineConfig, SqliteOnlineConfig
from .base import OnlineRow, OnlineStore


def open_online_store(config: Config) -> OnlineStore:
    """The online store ``config.online`` describes (connections open lazily)."""
    online = config.online
    if isinstance(online, SqliteOnlineConfig):
        from .sqlite import SqliteOnlineStore

        return SqliteOnlineStore(config.sqlite_path, busy_timeout_ms=online.busy_timeout_ms)
    if isinstance(online, HBaseOnlineConfig):
        from .hbase import HBaseOnlineStore

        return HBaseOnlineStore(online)
    raise TypeError(f"unknown online config {online!r}")  # config validation prevents this


__all__ = ["OnlineRow", "OnlineStore", "open_online_store"]
