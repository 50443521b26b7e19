"""The ``OnlineStore`` protocol every online backend implements (SQLite, HBase).

A store holds, per feature group version, the newest row per entity key: its event time,
its commit time and its feature values. Writes never let an older event replace a newer
one (ties on event time: the later commit time wins), so replays and out-of-order
batches are harmless. Materialization watermarks (the last Delta version pushed online)
live in the store itself.

Rows handed to ``write_batch`` are an Arrow table or record batch with the group's join
keys, its event-time column, every feature in ``group.features`` and optionally
``_commit_time`` (UTC timestamp; default: now). Keys passed to ``read`` are tuples in
``group.join_keys`` order, already of the key dtypes.

>>> from sparkfs.online.sqlite import SqliteOnlineStore
>>> isinstance(SqliteOnlineStore(":memory:"), OnlineStore)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..definitions import FeatureGroup


class OnlineRow(NamedTuple):
    """One stored row as read back: event time (µs since epoch, UTC) and the requested
    feature values, decoded, in the requested order."""

    event_time_us: int
    values: tuple


@runtime_checkable
class OnlineStore(Protocol):
    def write_batch(self, group: FeatureGroup, rows: Any) -> int:
        """Upsert rows (newer event wins); return how many rows were offered."""

    def read(self, group: FeatureGroup, keys: Sequence[tuple],
             features: Sequence[str]) -> list[OnlineRow | None]:
        """Rows aligned with ``keys``; None where the key has no row."""

    def drop(self, group: FeatureGroup) -> None:
        """Remove the group version's table and its watermark."""

    def get_watermark(self, group: FeatureGroup) -> int | None:
        """The last Delta version materialized for the group version, or None."""

    def set_watermark(self, group: FeatureGroup, delta_version: int) -> None:
        ...

    def close(self) -> None:
        ...
