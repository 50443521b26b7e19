"""Training-set garbage: directories under ``{data_dir}/training_sets/`` that no registered
version uses and no live writer owns.

``create_training_set`` writes to ``{name}/.staging-{token}/`` (with an ``.owner`` file
naming host and process), renames it to ``{name}/v{n}-{token}/`` and then registers it
(see ``sparkfs.training.sets``). A process killed in between leaves either kind behind,
under a name that may have no registered version at all. ``find_garbage`` lists them:

* ``staging``       a ``.staging-*`` (or older ``.tmp-v*``) directory;
* ``unregistered``  a ``v{n}-{token}`` directory no registry entry points at.

A directory counts only when its owner is gone: a process of this host that no longer
runs, or, for another host (whose processes cannot be seen from here), a directory
untouched for longer than ``max_age``. A registered version is never garbage, and
``collect_garbage(apply=True)`` re-reads the registry just before each removal, so a
create that registers while the scan runs keeps its data.

>>> import tempfile, os
>>> from sparkfs import FeatureStore
>>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
>>> root = os.path.join(fs.config.data_dir, "training_sets")
>>> os.makedirs(os.path.join(root, "crashed", ".staging-0123"))   # no owner file, from a crash
>>> [(g.name, g.kind) for g in find_garbage(fs.registry, root, max_age_s=0)]
[('crashed', 'staging')]
>>> [g.kind for g in collect_garbage(fs.registry, root, apply=True, max_age_s=0)]
['staging']
>>> find_garbage(fs.registry, root, max_age_s=0)
[]
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from typing import Any

KIND = "training_set"
OWNER_FILE = ".owner"
#: Staging of another host older than this is abandoned (``sparkfs gc --max-age-hours``).
DEFAULT_MAX_AGE_S = 24 * 3600


@dataclass(frozen=True)
class Garbage:
    """One abandoned training-set directory (see the module docstring)."""

    path: str
    name: str                 # the training set's name
    kind: str                 # "staging" or "unregistered"
    size_bytes: int
    owner: dict[str, Any] = field(default_factory=dict)  # host, pid, time (may be empty)


def owner_of(path: str) -> dict[str, Any]:
    """The ``.owner`` record of a training-set directory ({} when missing or unreadable)."""
    try:
        with open(os.path.join(path, OWNER_FILE)) as f:
            owner = json.load(f)
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def is_abandoned(path: str, max_age_s: float = DEFAULT_MAX_AGE_S) -> bool:
    """Whether no live writer owns the directory ``path``: its owner process (of this host)
    is gone, or (another host, or no owner file) it is older than ``max_age_s``."""
    owner = owner_of(path)
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False
    try:
        age = time.time() - os.path.getmtime(path)
    except OSError:
        return False
    return age > max_age_s


def kind_of(entry: str) -> str | None:
    """``"staging"``, ``"unregistered"`` (a published name) or None (not written by a
    create: left alone).

    >>> kind_of(".staging-ab12"), kind_of("v3-ab12"), kind_of("notes")
    ('staging', 'unregistered', None)
    """
    if entry.startswith((".staging-", ".tmp-v")):
        return "staging"
    if entry.startswith("v") and "-" in entry and entry[1:].split("-", 1)[0].isdigit():
        return "unregistered"
    return None


def _registered_paths(registry: Any) -> set[str]:
    return {os.path.abspath(s["path"]) for s in registry.list(KIND) if s.get("path")}


def _size(path: str) -> int:
    total = 0
    for base, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(base, f)).st_size
            except OSError:
                pass
    return total


def find_garbage(registry: Any, root: str, max_age_s: float = DEFAULT_MAX_AGE_S,
                 name: str | None = None) -> list[Garbage]:
    """Abandoned directories under the training-set ``root`` (every name, or only
    ``name``), oldest name first; nothing is removed."""
    if not os.path.isdir(root):
        return []
    used = _registered_paths(registry)
    names = [name] if name is not None else sorted(os.listdir(root))
    found = []
    for set_name in names:
        base = os.path.join(root, set_name)
        if not os.path.isdir(base):
            continue
        for entry in sorted(os.listdir(base)):
            path = os.path.join(base, entry)
            kind = kind_of(entry)
            if kind is None or os.path.abspath(path) in used or not os.path.isdir(path):
                continue
            if is_abandoned(path, max_age_s):
                found.append(Garbage(path, set_name, kind, _size(path), owner_of(path)))
    return found


def collect_garbage(registry: Any, root: str, apply: bool = False,
                    max_age_s: float = DEFAULT_MAX_AGE_S,
                    name: str | None = None) -> list[Garbage]:
    """``find_garbage``, and with ``apply=True`` remove what it found. Each directory is
    checked against a fresh read of the registry just before it is removed; the
    directories removed (or, dry run, that would be) are returned."""
    found = find_garbage(registry, root, max_age_s, name)
    if not apply:
        return found
    removed = []
    for g in found:
        if os.path.abspath(g.path) in _registered_paths(registry):
            continue  # registered since the scan
        shutil.rmtree(g.path, ignore_errors=True)
        removed.append(g)
    for set_name in {g.name for g in removed}:  # a name left with nothing at all
        try:
            os.rmdir(os.path.join(root, set_name))
        except OSError:
            pass
    return removed


__all__ = ["DEFAULT_MAX_AGE_S", "Garbage", "collect_garbage", "find_garbage", "is_abandoned"]
