"""Pushing one micro-batch's Delta commit online straight from the files it added.

After a micro-batch commits Delta version ``v``, the online store needs the newest row per
key of that commit. ``sparkfs.online.materialize`` finds new files by comparing the file
lists of two table snapshots (a log replay each); for the one commit a
stream has just made, this module reads that commit's own log entry
(``_delta_log/{v:020}.json``: one small file, whatever the table's length) for the files it
added, reads them with pyarrow, keeps the newest row per key with the reduction
materialization uses (``sparkfs.online.newest.newest_per_key``: event time, then
``_commit_time``) and writes it. The rows are those Delta holds:
derived features included, rows quarantined or skipped as duplicates by the ingest left out,
each with the commit time the ingest stored.

The online watermark (the last Delta version pushed) moves from ``v - 1`` to ``v`` only:
``push_commit`` does the push only when the watermark is exactly ``v - 1`` and the commit
only added plain data files to a local, unpartitioned table. Anything else (versions
before ``v`` not yet online, removes, deletion vectors, metadata changes, a remote table)
returns None and the caller materializes instead, which catches up every version. A
watermark already at ``v`` or beyond means the commit is online: nothing to do.

>>> import pyarrow as pa, datetime as dt
>>> from sparkfs.definitions import Entity, FeatureGroup, Field
>>> g = FeatureGroup("w", [Entity("a", ["k"])], "t", [Field("x", "double")])
>>> t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
>>> rows = pa.table({"k": ["a", "a", "b"], "t": [t0, t0 + dt.timedelta(1), t0],
...                  "x": [1.0, 2.0, 3.0], "_commit_time": [t0, t0, t0]})
>>> newest_per_key(g, rows).sort_by("k").column("x").to_pylist()
[2.0, 3.0]
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pyarrow as pa

from ..definitions import FeatureGroup
from ..online.newest import newest_per_key, value_columns

if TYPE_CHECKING:  # pragma: no cover
    from ..offline.tables import OfflineStore
    from ..online.base import OnlineStore

#: Actions a commit may hold for ``push_commit`` to read it (anything else: materialize).
_PLAIN = {"add", "commitInfo", "txn"}


def commit_files(table_uri: str, version: int) -> list[str] | None:
    """Absolute paths of the data files Delta commit ``version`` of the local table at
    ``table_uri`` added, or None unless the commit only added plain data files (no
    removes, metadata changes, deletion vectors or partition values) or is missing.

    >>> import tempfile, pyarrow as pa
    >>> from deltalake import write_deltalake
    >>> d = tempfile.mkdtemp()
    >>> write_deltalake(d, pa.table({"x": [1]})); write_deltalake(d, pa.table({"x": [2]}), mode="append")
    >>> [os.path.basename(os.path.dirname(p)) == os.path.basename(d) for p in commit_files(d, 1)]
    [True]
    >>> commit_files(d, 0) is None  # creation: metadata and protocol actions
    True
    """
    from urllib.parse import unquote

    if "://" in table_uri and not table_uri.startswith("file://"):
        return None
    root = os.path.abspath(table_uri.removeprefix("file://"))
    try:
        with open(os.path.join(root, "_delta_log", f"{version:020d}.json"), "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    files = []
    for line in lines:
        if not line.strip():
            continue
        action = json.loads(line)
        if not isinstance(action, dict) or set(action) - _PLAIN:
            return None
        add = action.get("add")
        if add is None:
            continue
        if add.get("deletionVector") or add.get("partitionValues") or not add.get("dataChange", True):
            return None
        path = add["path"]
        if "://" in path or path.startswith("/"):
            if not path.startswith(("file://", "/")):
                return None
            files.append(path.removeprefix("file://"))
        else:
            files.append(os.path.join(root, unquote(path)))
    return files


def push_commit(offline: "OfflineStore", online: "OnlineStore", group: FeatureGroup,
                version: int) -> int | None:
    """Write the newest row per key of Delta commit ``version`` of ``group``'s history to
    ``online`` and move its watermark to ``version``, when the watermark is ``version - 1``
    (see the module docstring). Returns the rows written, 0 when the commit is already
    online, None when the caller must materialize instead (nothing written then).

    >>> import tempfile
    >>> from sparkfs import Entity, FeatureGroup, FeatureStore, Field
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> g = FeatureGroup("w", [Entity("airport", ["origin"])], "t", [Field("temp", "double")],
    ...                  online=True)
    >>> _ = fs.apply([g])
    >>> push_commit(fs.offline, fs.online, g, 1) is None  # never materialized: catch up instead
    True
    >>> fs.close()
    """
    import pyarrow.parquet as pq

    from ..offline.tables import history_schema

    if group.aggregations or version < 1:
        return None
    watermark = online.get_watermark(group)
    if watermark is not None and watermark >= version:
        return 0
    if watermark != version - 1:
        return None
    files = commit_files(offline.table_uri(group), version)
    if files is None:
        return None
    schema = history_schema(group)
    columns = list(group.join_keys) + value_columns(group)
    want = pa.schema([schema.field(c) for c in columns])
    parts = []
    for path in files:
        try:
            part = pq.read_table(path, columns=columns)
        except (OSError, KeyError, pa.ArrowException):
            return None  # not a plain file of the group's columns: materialize reads it
        if part.num_rows:
            parts.append(part.select(columns).cast(want))
    written = 0
    if parts:
        written = online.write_batch(group, newest_per_key(group, pa.concat_tables(parts)))
    online.set_watermark(group, version)
    return written
