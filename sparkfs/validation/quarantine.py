"""The quarantine Delta table of a group (``fs.offline.quarantine_uri(group)``): rows a
``quarantine`` group refused, with the failed expectations per row, the ingest run id, the
Delta version of the batch's commit and when they were quarantined. Written with delta-rs,
once per run id (the commit carries the run id and its row count).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..definitions import FeatureGroup
from ..errors import NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from ..offline.tables import OfflineStore

RUN_ID = "_run_id"
DELTA_VERSION = "_delta_version"
QUARANTINED_AT = "_quarantined_at"


def _done(uri: str, options: dict | None, run_id: str) -> int | None:
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(uri, options):
        return None
    for h in DeltaTable(uri, storage_options=options).history():
        if h.get("sparkfs.run_id") == run_id:
            return int(h.get("sparkfs.rows", 0))
    return None


def _to_arrow(invalid: Any) -> pa.Table:
    if type(invalid).__module__.startswith("pyspark"):
        tbl = invalid.toArrow()
    else:
        tbl = pa.Table.from_pandas(invalid, preserve_index=False)
    cols = []
    for f, col in zip(tbl.schema, tbl.columns):
        if pa.types.is_timestamp(f.type):
            col = col.cast(pa.timestamp("us", tz=f.type.tz or "UTC"))
        if pa.types.is_large_string(f.type):
            col = col.cast(pa.string())
        cols.append(col)
    return pa.table(cols, names=tbl.column_names)


def write_quarantine(offline: "OfflineStore", group: FeatureGroup, invalid: Any, run_id: str,
                     delta_version: int | None) -> int:
    """Append the rows of ``invalid`` (Spark or pandas) under ``run_id`` to the group's
    quarantine table in ``offline``; a second call with the same run id writes nothing and
    returns the first call's count.

    >>> import tempfile, pandas as pd
    >>> from sparkfs import Entity, FeatureGroup, Field
    >>> from sparkfs.offline.tables import OfflineStore
    >>> offline = OfflineStore(tempfile.mkdtemp())
    >>> g = FeatureGroup("w", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
    >>> bad = pd.DataFrame({"origin": ["JFK"], "temp": [-999.0]})
    >>> write_quarantine(offline, g, bad, "run-1", 3), write_quarantine(offline, g, bad, "run-1", 3)
    (1, 1)
    >>> read_quarantine(offline, g).column("_delta_version").to_pylist()
    [3]
    """
    from deltalake import write_deltalake
    from deltalake.transaction import CommitProperties

    uri = offline.quarantine_uri(group)
    options = offline.storage_options or None
    done = _done(uri, options, run_id)
    if done is not None:
        return done
    tbl = _to_arrow(invalid)
    n = tbl.num_rows
    if n == 0:
        return 0
    now = dt.datetime.now(dt.UTC)
    tbl = (tbl.append_column(RUN_ID, pa.array([run_id] * n, pa.string()))
              .append_column(DELTA_VERSION, pa.array([delta_version] * n, pa.int64()))
              .append_column(QUARANTINED_AT, pa.array([now] * n, pa.timestamp("us", tz="UTC"))))
    if "://" not in uri:
        os.makedirs(uri, exist_ok=True)
    write_deltalake(uri, tbl, mode="append", schema_mode="merge", storage_options=options,
                    commit_properties=CommitProperties(custom_metadata={
                        "sparkfs.operation": "quarantine", "sparkfs.run_id": run_id,
                        "sparkfs.rows": str(n)}))
    return n


def read_quarantine(offline: "OfflineStore", group: FeatureGroup) -> pa.Table:
    """Every quarantined row of ``group`` in ``offline`` (no Spark).

    Raises ``NotFoundError`` when nothing was ever quarantined."""
    from deltalake import DeltaTable

    uri = offline.quarantine_uri(group)
    options = offline.storage_options or None
    if not DeltaTable.is_deltatable(uri, options):
        raise NotFoundError(f"feature group {group.name!r} v{group.version} has no quarantined "
                            f"rows (no table at {uri})")
    from ..offline.tables import arrow_dataset

    return arrow_dataset(DeltaTable(uri, storage_options=options)).to_table()
