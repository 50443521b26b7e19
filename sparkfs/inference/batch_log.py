"""The evaluation log of a batch scoring run (``sparkfs.inference.batch``): one Parquet
file per Spark task, one Delta commit per run.

Each scoring task writes its predictions' log rows as one file into a folder inside the
deployment's evaluation table (``stage_log_files``, ``write_log_file``: the first complete
file of a partition stays), and after the job the driver adds every file in one Delta
commit carrying the app transaction ``run_app_id(run_id)`` (``commit_log_files``); a run
retried with the same run id finds it (``run_logged``) and logs nothing again.

>>> run_app_id("nightly")
'sparkfs-score-nightly'
"""

from __future__ import annotations

from typing import Any

__all__ = ["commit_log_files", "run_app_id", "run_logged", "stage_log_files", "write_log_file"]


def run_app_id(run_id: str) -> str:
    """The Delta app transaction a scoring run's log commit carries.

    >>> run_app_id("nightly-2013-12-01")
    'sparkfs-score-nightly-2013-12-01'
    """
    return f"sparkfs-score-{run_id}"


def run_logged(log_path: str, run_id: str,
               storage_options: dict | None = None) -> bool:
    """True when scoring run ``run_id`` already committed its log rows to ``log_path``."""
    from deltalake import DeltaTable

    try:
        table = DeltaTable(log_path, storage_options=dict(storage_options or {}))
    except Exception:  # TableNotFoundError: nothing logged yet
        return False
    return (table.transaction_version(run_app_id(run_id)) or 0) >= 1


def stage_log_files(log_path: str, run_id: str) -> str | None:
    """The folder inside the log table's folder where the tasks of scoring run ``run_id``
    write their Parquet files (``write_log_file``), emptied of what an earlier,
    uncommitted attempt of the same run left there. None for a log on object storage (its
    tasks append themselves, one app transaction per partition). Call it only for a run
    that has not committed (``run_logged``).

    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> folder = stage_log_files(root, "nightly/1")
    >>> os.path.dirname(folder) == root, os.path.basename(folder)[:16], os.listdir(folder)
    (True, 'score-nightly_1-', [])
    >>> stage_log_files("s3://bucket/log", "nightly") is None
    True
    """
    import hashlib
    import os
    import re
    import shutil

    from ..training.duckdb_sql import local_paths

    local = local_paths([log_path])
    if local is None:
        return None
    root = local[0]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:40]
    folder = os.path.join(root, f"score-{safe}-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


def write_log_file(folder: str, table: Any, part: int) -> bool:
    """Write one task's log rows as ``part-{part}.parquet`` in ``folder``, unless a file for
    that partition is there already (a retried or recomputed task of a run: its first
    complete file stays, so the committed file never changes). Written under a temporary
    name and linked into place, so the driver never sees half a file."""
    import os
    import uuid as _uuid

    import pyarrow.parquet as pq

    final = os.path.join(folder, f"part-{part:05d}.parquet")
    if os.path.exists(final):
        return False
    tmp = os.path.join(folder, f".tmp-{part:05d}-{_uuid.uuid4().hex}")
    try:
        pq.write_table(table, tmp)
        os.link(tmp, final)
        return True
    except FileExistsError:
        return False
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def commit_log_files(log_path: str, run_id: str, folder: str, binding: Any,
                     storage_options: dict | None = None) -> int:
    """Add every staged file of run ``run_id`` (``folder``, from ``stage_log_files``) to the
    evaluation table in one Delta commit carrying the app transaction ``run_app_id``; the
    table first gains any column of ``binding``'s log schema it lacks. Returns the rows
    committed: 0 when the run had committed already (a retry) or staged nothing."""
    import json
    import os

    import pyarrow.parquet as pq
    from deltalake import CommitProperties, DeltaTable, Transaction
    from deltalake.transaction import AddAction

    from .evaluation import log_schema

    table = DeltaTable(log_path, storage_options=dict(storage_options or {}))
    if (table.transaction_version(run_app_id(run_id)) or 0) >= 1:
        return 0
    root = os.path.dirname(folder)  # stage_log_files: a folder inside the table's
    actions: list[Any] = []
    rows = 0
    for name in sorted(os.listdir(folder)):
        if not (name.startswith("part-") and name.endswith(".parquet")):
            continue
        path = os.path.join(folder, name)
        n = pq.read_metadata(path).num_rows
        st = os.stat(path)
        actions.append(AddAction(os.path.relpath(path, root), st.st_size, {},
                                 int(st.st_mtime * 1000), True, json.dumps({"numRecords": n})))
        rows += n
    if not actions:
        return 0
    have = {f.name for f in table.schema().fields}
    new = [f for f in log_schema(binding) if f.name not in have]
    if new:  # a new deployment revision's columns, as a merge-schema append would add them
        import pyarrow as pa
        from deltalake.schema import Schema

        table.alter.add_columns(list(Schema.from_arrow(pa.schema(new)).fields))
    table.create_write_transaction(
        actions, "append", table.schema(),
        commit_properties=CommitProperties(
            app_transactions=[Transaction(run_app_id(run_id), 1)], max_commit_retries=50))
    return rows
