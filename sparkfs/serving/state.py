"""What the service keeps between requests: a registry snapshot refreshed off the event
loop, and a guard that fails fast while the online store is down.

``RegistrySnapshot`` reads the groups and on-demand transforms in a worker thread at most
once per ``serving.registry_refresh_s``; when the registry cannot be read (locked by
another process, a disk gone read-only) the last snapshot keeps serving and the failure
is logged. Only a service that never read it answers 503.

``StoreGuard`` runs every store-bound call (an SQLite read of a cached plan too) in its
own bounded pool of ``serving.store_threads`` threads, never on the event loop, with a
deadline (``serving.store_timeout_s``): one stuck read holds one thread, never the other
requests or ``/health``. A call that fails with ``OnlineStoreError`` or misses its
deadline opens the guard: for ``serving.store_retry_after_s`` requests fail at once with
503 and the reason, then the next request tries the store again, so the service recovers
by itself when the store returns. A call abandoned at its deadline keeps its thread until
the store lets go; calls still queued when their deadline passes never start.

>>> import asyncio
>>> guard = StoreGuard(timeout_s=1, retry_after_s=60, threads=2)
>>> asyncio.run(guard.run(lambda: 42))
42
>>> guard.close()
"""

from __future__ import annotations

import asyncio
import logging
import queue
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


class _Pool:
    """At most ``size`` daemon threads running calls for an event loop (started as calls
    wait; a daemon never holds up the process's exit, even while stuck in a store). A call
    whose future was cancelled before a thread took it never runs."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0       # threads waiting for a call
        self._waiting = 0    # calls no thread has taken yet
        self._closed = False

    def submit(self, loop: asyncio.AbstractEventLoop, fn: Callable[[], T]) -> asyncio.Future:
        future = loop.create_future()
        with self._lock:
            if self._closed:
                raise UnavailableError("the service is shutting down")
            self._waiting += 1
            spawn = self._waiting > self._idle and self._threads < self.size
            if spawn:
                self._threads += 1
        if spawn:
            threading.Thread(target=self._work, name=f"{self.name}-{self._threads}",
                             daemon=True).start()
        self._queue.put((loop, future, fn))
        return future

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            threads = self._threads
        for _ in range(threads):
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
                if item is not None:
                    self._waiting -= 1
            if item is None:
                return
            loop, future, fn = item
            if future.cancelled():  # its deadline passed while it waited
                continue
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request
                _settle(loop, future, exc, None)
            else:
                _settle(loop, future, None, result)


def _settle(loop: asyncio.AbstractEventLoop, future: asyncio.Future,
            exc: BaseException | None, result: Any) -> None:
    def done() -> None:
        if not future.cancelled():
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

    try:
        loop.call_soon_threadsafe(done)
    except RuntimeError:  # the loop is closed: nobody waits for the answer
        pass


class StoreGuard:
    """Deadline and fail-fast for calls that reach the online store (module docstring)."""

    def __init__(self, timeout_s: float, retry_after_s: float, threads: int = 8) -> None:
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.threads = threads
        self._pool = _Pool(threads, "sparkfs-store")
        self._open_until = 0.0
        self._reason = ""

    def open(self) -> None:
        """Take calls again after ``close`` (an app whose lifespan starts again, as a
        test client entered twice does); a no-op on an open guard."""
        if self._pool.closed:
            self._pool = _Pool(self.threads, "sparkfs-store")

    def close(self) -> None:
        """Stop taking calls; threads still stuck in the store are left to finish."""
        self._pool.close()

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

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in the guard's thread pool, abandoned after ``timeout_s``; store failures
        open the guard."""
        self._fail_fast()
        future = self._pool.submit(asyncio.get_running_loop(), fn)
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            reason = f"no answer within serving.store_timeout_s={self.timeout_s:g} s"
            self._trip(reason)
            raise UnavailableError(f"the online store gave {reason}") from None
        except OnlineStoreError as exc:
            self._trip(str(exc)[:200])
            raise


__all__ = ["RegistrySnapshot", "Snapshot", "StoreGuard"]
