"""Staging folders of the ``delta-rs`` writer, and cleaning up the abandoned ones.

An ingest writes its Parquet files into ``{table}/ingest-<time>-<random>/`` and commits
them with one Delta commit; the committed files stay where they were written. Beside the
folder, an owner file ``ingest-<...>.sparkfs-stage`` (JSON: host, pid, start time) is
written first and removed once the commit landed or the ingest gave up. A folder whose
owner file remains belongs to a running ingest or to one that was killed:

- ``abandoned`` when its process is gone (same host) or it is older than ``max_age``
  (another host), and none of its files is in the table's current version;
- ``clean`` removes the abandoned ones (the next ingest of the group calls it, and so does
  ``sparkfs gc``, which only lists them unless given ``--apply``).

>>> import tempfile, os, json
>>> root = tempfile.mkdtemp()
>>> owner = stage_owner_path(root, "ingest-x")
>>> write_owner(owner)
>>> json.load(open(owner))["pid"] == os.getpid()
True
>>> is_alive(json.load(open(owner)))
True
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from .parquet_stats import _fs, delete_dir, delete_file

OWNER_SUFFIX = ".sparkfs-stage"
STAGE_PREFIX = "ingest-"
#: owner files from another host are trusted this long before their folder counts as abandoned
DEFAULT_MAX_AGE = dt.timedelta(hours=6)


@dataclass
class Stage:
    """One staging folder with an owner file (see the module docstring)."""

    name: str
    uri: str
    owner: dict
    size_bytes: int
    abandoned: bool
    committed: bool = False
    folders: list[str] = field(default_factory=list)


def stage_owner_path(table_uri: str, subdir: str) -> str:
    """Where the owner file of staging folder ``subdir`` lives."""
    return f"{table_uri}/{subdir}{OWNER_SUFFIX}"


def write_owner(uri: str) -> None:
    """Write the owner file for this process (before any data file)."""
    fs, path = _fs(uri)
    body = {"host": socket.gethostname(), "pid": os.getpid(),
            "started": dt.datetime.now(dt.UTC).isoformat()}
    with fs.open_output_stream(path) as f:
        f.write(json.dumps(body).encode())


def remove_owner(uri: str) -> None:
    """Remove an owner file (the folder was committed or deleted)."""
    delete_file(uri)


def is_alive(owner: dict, max_age: dt.timedelta = DEFAULT_MAX_AGE,
             now: dt.datetime | None = None) -> bool:
    """True while the ingest that owns a staging folder may still be running."""
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        started = dt.datetime.fromisoformat(owner["started"])
    except (KeyError, TypeError, ValueError):
        return False
    return (now or dt.datetime.now(dt.UTC)) - started < max_age


def list_stages(table_uri: str, committed: Iterable[str],
                max_age: dt.timedelta = DEFAULT_MAX_AGE) -> list[Stage]:
    """The staging folders of a table that still have an owner file. ``committed`` are the
    data file URIs of the table's current version (a folder holding one is never removed)."""
    fs, path = _fs(table_uri)
    prefix = table_uri[: len(table_uri) - len(path)] if "://" in table_uri else ""
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    except (FileNotFoundError, OSError):
        return []
    committed_dirs = {u.rsplit("/", 2)[-2] for u in committed if u.count("/") >= 2}
    out = []
    for info in infos:
        if not (info.is_file and info.base_name.startswith(STAGE_PREFIX)
                and info.base_name.endswith(OWNER_SUFFIX)):
            continue
        name = info.base_name[: -len(OWNER_SUFFIX)]
        try:
            with fs.open_input_stream(info.path) as f:
                owner = json.loads(f.read().decode() or "{}")
        except (OSError, ValueError):
            owner = {}
        # the folder and its re-dedupe successors (``<name>-r<N>``, see writers.py)
        family = [name] + sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory
                                 and i.base_name.startswith(name + "-r"))
        size = 0
        for folder in family:
            try:
                for child in fs.get_file_info(pafs.FileSelector(
                        f"{path}/{folder}", recursive=True, allow_not_found=True)):
                    size += child.size or 0
            except OSError:
                pass
        committed_here = any(folder in committed_dirs for folder in family)
        alive = is_alive(owner, max_age)
        out.append(Stage(name, f"{prefix}{path}/{name}", owner, size,
                         abandoned=not committed_here and not alive,
                         committed=committed_here and not alive,
                         folders=[f"{prefix}{path}/{folder}" for folder in family]))
    return sorted(out, key=lambda s: s.name)


def clean(table_uri: str, committed: Iterable[str], apply: bool = True,
          max_age: dt.timedelta = DEFAULT_MAX_AGE) -> list[Stage]:
    """Remove the abandoned staging folders (and their owner files) of one table; with
    ``apply=False`` only list them. Returns the abandoned stages. An owner file left
    beside a folder that was committed (the process died right after its commit) is
    removed too; the folder's files are table data and stay."""
    stages = list_stages(table_uri, committed, max_age)
    gone = [s for s in stages if s.abandoned]
    if apply:
        for s in gone:
            for folder in s.folders or [s.uri]:
                delete_dir(folder)
            remove_owner(s.uri + OWNER_SUFFIX)
        for s in stages:
            if s.committed:
                remove_owner(s.uri + OWNER_SUFFIX)
    return gone


def table_uris(root: str) -> list[str]:
    """Every Delta table directly under the offline ``root`` (and under ``_quarantine``)."""
    fs, path = _fs(root)
    prefix = root[: len(root) - len(path)] if "://" in root else ""
    out = []
    for base in (path, f"{path}/_quarantine"):
        try:
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=False,
                                                       allow_not_found=True))
        except OSError:
            continue
        for info in infos:
            if info.type == pafs.FileType.Directory and \
                    fs.get_file_info(f"{info.path}/_delta_log").type == pafs.FileType.Directory:
                out.append(prefix + info.path)
    return sorted(out)


def collect_garbage(root: str, storage_options: dict[str, str] | None = None,
                    apply: bool = False, max_age: dt.timedelta = DEFAULT_MAX_AGE) -> list[Stage]:
    """The abandoned staging folders of every table under ``root``; removed with ``apply``
    (``sparkfs gc`` lists them, ``sparkfs gc --apply`` removes them).

    >>> import tempfile
    >>> collect_garbage(tempfile.mkdtemp())
    []
    """
    from deltalake import DeltaTable

    found: list[Stage] = []
    for uri in table_uris(root):
        committed = DeltaTable(uri, storage_options=storage_options or None).file_uris()
        found += clean(uri, committed, apply=apply, max_age=max_age)
    return found
