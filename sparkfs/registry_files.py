"""What the serving caches compare to see a SQLite registry change: the files' signatures.

``file_stats(paths)`` is ``(st_mtime_ns, st_size)`` of each path (None when it does not
exist): one ``os.stat`` per path. Within ``one_look()`` the stats of the same paths are
taken once and reused, so the deployment cache (``sparkfs.inference.deployments``) and the
online plan cache (``sparkfs.serving.online``) of one prediction look at the registry
files once, at the start of the request, instead of each on its own a few microseconds
apart: every change made before the request started is seen by both, as before, and a
change made while the request runs is seen by the next one, as before. ``fresh=True``
stats again and keeps the new stats for the rest of the scope (after a registry read,
which may touch the files). The scope is per thread (a ``ContextVar``); outside one,
every call stats.

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "r.db")
>>> file_stats((p,))
(None,)
>>> with one_look():
...     before = file_stats((p,))
...     open(p, "w").close()
...     file_stats((p,)) == before, file_stats((p,), fresh=True) == before
(True, False)
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from typing import Any

_LOOK: ContextVar[dict | None] = ContextVar("sparkfs_registry_look", default=None)


def file_stats(paths: tuple[str, ...], fresh: bool = False) -> tuple:
    """``(st_mtime_ns, st_size)`` or None per path (see the module docstring)."""
    memo = _LOOK.get()
    if memo is not None and not fresh:
        hit = memo.get(paths)
        if hit is not None:
            return hit
    out: list[tuple[int, int] | None] = []
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            out.append(None)
            continue
        out.append((st.st_mtime_ns, st.st_size))
    stats = tuple(out)
    if memo is not None:
        memo[paths] = stats
    return stats


class one_look:  # noqa: N801 (used as a context manager, like contextlib's)
    """A scope in which ``file_stats`` of the same paths stats once (module docstring)."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token: Any = _LOOK.set({})

    def __exit__(self, *exc: Any) -> None:
        _LOOK.reset(self._token)
