"""What the service keeps between requests: a registry snapshot refreshed off the event
loop, and a guard that fails fast while the online store is down.

``RegistrySnapshot`` reads the groups and on-demand transforms in a worker thread at most
once per ``serving.registry_refresh_s``; when the registry cannot be read (locked by
another process, a disk gone read-only) the last snapshot keeps serving and the failure
is logged. Only a service that never read it answers 503.

``StoreGuard`` runs a store-bound call in a worker thread with a deadline
(``serving.store_timeout_s``). A call that fails with ``OnlineStoreError`` or misses its
deadline opens the guard: for ``serving.store_retry_after_s`` requests fail at once with
503 and the reason, then the next request tries the store again, so the service recovers
by itself when the store returns.

>>> import asyncio
>>> guard = StoreGuard(timeout_s=1, retry_after_s=60)
>>> asyncio.run(guard.run(lambda: 42, in_thread=False))
42
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from ..errors import OnlineStoreError, RegistryError, UnavailableError

T = TypeVar("T")
log = logging.getLogger("sparkfs.serving")


@dataclass(frozen=True)
class Snapshot:
    """Latest feature groups and on-demand transform specs, as read at ``read_at``."""

    groups: list[Any]
    on_demand: list[dict]
    read_at: float
    sources: dict[str, frozenset[str]] = field(default_factory=dict)  # transform -> groups


def _read(fs: Any) -> Snapshot:
    groups = fs.list_feature_groups(latest_only=True)
    on_demand = fs.registry.list("on_demand")
    sources = {s["name"]: frozenset(ref.split(":", 1)[0].split("@", 1)[0]
                                    for ref in (s.get("features") or {}).values())
               for s in on_demand}
    return Snapshot(groups, on_demand, time.monotonic(), sources)


class RegistrySnapshot:
    """The registry as the service last read it (see the module docstring)."""

    def __init__(self, fs: Any, refresh_s: float) -> None:
        self.fs = fs
        self.refresh_s = refresh_s
        self._snap: Snapshot | None = None
        self._lock = threading.Lock()

    async def get(self) -> Snapshot:
        """The snapshot, re-read in a worker thread when older than ``refresh_s``."""
        snap = self._snap
        if snap is not None and time.monotonic() - snap.read_at < self.refresh_s:
            return snap
        return await anyio.to_thread.run_sync(self._refresh)

    def _refresh(self) -> Snapshot:
        with self._lock:
            snap = self._snap
            if snap is not None and time.monotonic() - snap.read_at < self.refresh_s:
                return snap
            try:
                self._snap = _read(self.fs)
            except RegistryError as exc:
                if snap is None:
                    raise UnavailableError(f"the registry cannot be read: {exc}") from None
                log.warning("registry not readable (%s); serving the snapshot of %.0f s ago",
                            exc, time.monotonic() - snap.read_at)
                self._snap = Snapshot(snap.groups, snap.on_demand, time.monotonic(),
                                      snap.sources)
            return self._snap


class StoreGuard:
    """Deadline and fail-fast for calls that reach the online store (module docstring)."""

    def __init__(self, timeout_s: float, retry_after_s: float) -> None:
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self._open_until = 0.0
        self._reason = ""

    def _fail_fast(self) -> None:
        left = self._open_until - time.monotonic()
        if left > 0:
            exc = UnavailableError(f"the online store is unavailable ({self._reason}); "
                                   f"retry in {left:.1f} s")
            exc.retry_after_s = left  # type: ignore[attr-defined]
            raise exc

    def _trip(self, reason: str) -> None:
        self._reason = reason
        self._open_until = time.monotonic() + self.retry_after_s
        log.warning("online store unavailable: %s; failing requests for %.1f s", reason,
                    self.retry_after_s)

    async def run(self, fn: Callable[[], T], in_thread: bool = True) -> T:
        """``fn()`` on the event loop (``in_thread=False``: local, short calls) or in a worker
        thread abandoned after ``timeout_s``; store failures open the guard."""
        self._fail_fast()
        try:
            if not in_thread:
                return fn()
            with anyio.fail_after(self.timeout_s):
                return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)
        except TimeoutError:
            reason = f"no answer within serving.store_timeout_s={self.timeout_s:g} s"
            self._trip(reason)
            raise UnavailableError(f"the online store gave {reason}") from None
        except OnlineStoreError as exc:
            self._trip(str(exc)[:200])
            raise


__all__ = ["RegistrySnapshot", "Snapshot", "StoreGuard"]
