"""The local engine of ingest: a small pandas or Arrow batch checked, deduped, written and
committed in this process, on Arrow, with no Spark job (``fs.ingest`` dispatches here; a
stream's micro-batch collected to the driver is such a batch).

It runs when (``runs_locally``):

- the batch is a pandas DataFrame or a pyarrow Table/RecordBatch of at most
  ``ingest.local_max_rows`` rows (0 turns the engine off);
- the writer is delta-rs: ``offline.engine`` is ``delta-rs``, or ``auto`` while no Spark
  running in this process can load the delta-spark jars and ``spark.delta_jars`` is off;
- the group's table is on the local file system;
- the group declares no expectations: great-expectations' pandas engine treats NaN as a
  missing value where its Spark engine does not, so such groups stay on Spark to keep one
  meaning of a suite (slower, same result).

Anything else takes the Spark path, unchanged. The steps are those of the Spark path, each
with the same rule and message:

1. ``to_arrow`` (the input conversion ``to_spark`` uses), derived transforms through the
   same pandas functions (only their inputs go to pandas; outputs come back as Arrow with
   NaN as missing, as Spark's pandas UDFs return them);
2. ``conform_arrow``, ``check_rows_arrow``, ``narrow_arrow`` (``sparkfs.offline.checks``;
   one refusal message, ``refuse_bad_rows``);
3. dedupe against the stored files overlapping the batch's event-time range, read with
   pyarrow (keys, event time and value hashes; null equals null, NaN equals NaN:
   ``without_stored_arrow``);
4. the write: ``onepass.stage_partition`` (the function each Spark task runs) on the whole
   table in this process (Parquet files + statistics partial + footer statistics), then the
   delta-rs writer's commit (``LocalDeltaRsWriter``: same staging folder and owner file,
   same app transaction and commit metadata, same retry loop ``commit_on_top`` against
   concurrent writers, re-deduping with ``without_stored_arrow``).

>>> import pandas as pd
>>> runs_locally(pd.DataFrame({"x": [1]}), None, None, "delta-spark", 10, False)
False
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..definitions import FeatureGroup
from ..dtypes import ALL
from ..errors import first_line
from .checks import check_rows_arrow, conform_arrow, narrow_arrow, to_arrow
from .tables import COMMIT_TIME, RUN_ID, history_schema
from .writers import (
    Batch,
    DeltaRsWriter,
    Written,
    add_actions,
    commit_on_top,
    commit_staged,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..monitoring.sketches import Partial
    from .tables import OfflineStore

__all__ = ["LocalDeltaRsWriter", "LocalBatch", "prepare_local", "runs_locally",
           "without_stored_arrow"]


def runs_locally(data: Any, group: FeatureGroup | None, offline: "OfflineStore | None",
                 engine: str, max_rows: int, delta_jars: bool) -> bool:
    """Whether ``fs.ingest`` of ``data`` runs on the local engine (see the module
    docstring): a pandas or Arrow batch of at most ``max_rows`` rows, the delta-rs writer
    (``engine`` is ``offline.engine``; ``delta_jars`` is ``spark.delta_jars``), a local
    table, no expectations.

    >>> import pyarrow as pa
    >>> runs_locally(pa.table({"x": [1, 2]}), None, None, "delta-rs", 1, False)  # too many rows
    False
    """
    if max_rows <= 0 or engine == "delta-spark":
        return False
    n = _rows(data)
    if n is None or n > max_rows or group is None or offline is None:
        return False
    if group.expectations is not None:
        return False
    uri = offline.table_uri(group)
    if "://" in uri and not uri.startswith("file://"):
        return False
    return engine == "delta-rs" or not _auto_picks_delta_spark(delta_jars)


def _rows(data: Any) -> int | None:
    """Row count of a pandas DataFrame or Arrow table/batch; None for anything else."""
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return data.num_rows
    mod = type(data).__module__
    if mod.startswith("pandas") and type(data).__name__ == "DataFrame":
        return len(data)
    return None


def _auto_picks_delta_spark(delta_jars: bool) -> bool:
    """What ``choose_writer("auto", ...)`` would pick, without starting Spark: delta-spark
    when the Spark running in this process can load the Delta classes, or, with none
    running, when the session sparkfs would start gets them (``spark.delta_jars``)."""
    pyspark = sys.modules.get("pyspark")
    sc = getattr(getattr(pyspark, "SparkContext", None), "_active_spark_context", None)
    if sc is None:
        return delta_jars
    from ..sparkutil import has_delta_jars

    return has_delta_jars(sc)


@dataclass
class LocalBatch:
    """A batch prepared by ``prepare_local``: ``batch`` is None when it had no rows."""

    batch: Batch | None
    rows_input: int
    columns_ignored: list[str]


def prepare_local(offline: "OfflineStore", group: FeatureGroup, data: Any, run_id: str,
                  commit_time: Any, pinned: int, statistics: bool) -> LocalBatch:
    """Steps 1-3 of the module docstring: the checked, deduped batch as a ``Batch`` whose
    ``df`` is an Arrow table with the history columns (for ``LocalDeltaRsWriter``).

    >>> prepare_local.__name__  # exercised by tests/test_ingest_local.py
    'prepare_local'
    """
    table = to_arrow(data, group)
    if group.transforms:
        table = apply_derived_arrow(group, table)
    table, ignored, narrowed = conform_arrow(group, table)
    checks = check_rows_arrow(group, table, narrowed)
    table = narrow_arrow(table, narrowed)
    n = checks["n"]
    if n == 0:
        return LocalBatch(None, 0, ignored)
    schema = history_schema(group)
    value_cols = [f.name for f in schema if f.name not in (COMMIT_TIME, RUN_ID)]
    et_range = (checks["min_et"], checks["max_et"])
    overlap = offline.files(group, pinned, et_range)
    if overlap:
        table = without_stored_arrow(group, table, overlap, et_range, value_cols)
    rows = table.num_rows
    table = table.append_column(COMMIT_TIME, pa.array([commit_time] * rows, schema.field(COMMIT_TIME).type)) \
                 .append_column(RUN_ID, pa.array([run_id] * rows, pa.string()))
    specs = [(f.name, f.dtype) for f in group.stored_fields] if statistics else None
    batch = Batch(group, table, run_id, commit_time, pinned, n, et_range, value_cols,
                  deduped=bool(overlap), stats_specs=specs)
    return LocalBatch(batch, n, ignored)


def apply_derived_arrow(group: FeatureGroup, table: pa.Table) -> pa.Table:
    """The group's derived features added to an Arrow batch: the transforms' inputs go to
    pandas (``apply_derived_pandas``, the functions Spark's pandas UDFs run), their outputs
    come back cast to the declared Arrow types, NaN as missing (as a pandas UDF returns
    them); every other column stays Arrow, untouched.

    >>> from sparkfs import Entity, Field, FeatureGroup, transform
    >>> @transform(output="double")
    ... def spread(temp, dewp):
    ...     return temp - dewp
    >>> g = FeatureGroup("w", [Entity("a", ["origin"])], "t",
    ...                  [Field("temp", "double"), Field("dewp", "double")], transforms=[spread])
    >>> apply_derived_arrow(g, pa.table({"temp": [5.0, None], "dewp": [1.0, 2.0]})) \\
    ...     .column("spread").to_pylist()
    [4.0, None]
    """
    from .derived import _live_transforms, _require_inputs, apply_derived_pandas

    columns = list(table.column_names)
    inputs: list[str] = []
    outputs: list[str] = []
    for t in _live_transforms(group):
        _require_inputs(group, t, columns)
        inputs += [c for c in t.inputs if c in table.column_names and c not in inputs]
        for f in t.outputs:
            outputs.append(f.name)
            if f.name not in columns:
                columns.append(f.name)
    pdf = table.select(inputs).to_pandas() if inputs else \
        pa.table({"__rows": pa.nulls(table.num_rows)}).to_pandas()
    derived = apply_derived_pandas(group, pdf)
    dtypes = group.column_dtypes
    for name in dict.fromkeys(outputs):
        arr = pa.Array.from_pandas(derived[name], type=ALL[dtypes[name]].arrow)
        if name in table.column_names:
            table = table.set_column(table.schema.get_field_index(name), name, arr)
        else:
            table = table.append_column(name, arr)
    return table


def without_stored_arrow(group: FeatureGroup, table: pa.Table, files: list[str],
                         et_range: tuple[Any, Any], value_cols: list[str]) -> pa.Table:
    """``table`` without the rows already stored in ``files`` (local Parquet files of the
    group's history) with the same join keys, event time and values: the dedupe identity
    of ``sparkfs.offline.dedupe.without_stored_rows`` (null equals null, NaN equals NaN),
    on Arrow. Only stored rows in ``et_range`` (inclusive) and only their identities (keys,
    event time, value hashes: ``dedupe.read_stored_identities``) are kept; ``drop_stored``
    drops the batch rows found there. Row order is kept.

    >>> without_stored_arrow.__name__  # exercised by tests/test_ingest_local.py
    'without_stored_arrow'
    """
    from .dedupe import drop_stored, read_stored_identities

    if not table.num_rows or not files:
        return table
    stored = read_stored_identities(group, files, et_range, value_cols)
    return drop_stored(table, stored, group, value_cols)


class LocalDeltaRsWriter(DeltaRsWriter):
    """The delta-rs writer for a batch held as an Arrow table in this process: the same
    staging folder, owner file, commit (``commit_staged``) and retry loop
    (``commit_on_top``) as ``DeltaRsWriter``; the Parquet files and the statistics
    partial come from ``onepass.stage_partition`` run here instead of in Spark tasks.

    >>> LocalDeltaRsWriter.name
    'delta-rs'
    """

    def _nothing_left(self, df: Any) -> bool:
        return df.num_rows == 0

    def _stage_arrow(self, batch: Batch, table: pa.Table, subdir: str) -> tuple[list, int, "Partial | None"]:
        from ..errors import SparkfsError
        from ..monitoring.sketches import Partial
        from .onepass import StagedFile, stage_partition

        stage = f"{self.offline.table_uri(batch.group)}/{subdir}"
        schema = history_schema(batch.group)
        run = stage_partition(stage, schema, batch.stats_specs, f"part-{uuid.uuid4().hex[:8]}")
        try:
            rows = [r for out in run(iter(table.select(schema.names).to_batches()))
                    for r in out.to_pylist()]
        except Exception as exc:
            raise SparkfsError(f"writing the batch for feature group {batch.group.name!r} failed; "
                               f"nothing was committed: {first_line(exc)}") from exc
        files = [StagedFile(r["path"], int(r["size"]), int(r["rows"]), r["stats"], r["partial"])
                 for r in rows]
        actions, written = add_actions(files, subdir)
        partial = None
        if batch.stats_specs is not None:
            partial = Partial.merged(batch.stats_specs,
                                     (f.partial for f in files if f.partial is not None))
        return actions, written, partial

    def _stage_and_commit(self, batch: Batch, df: Any, subdir: str) -> Written:
        from .parquet_stats import delete_dir

        group, opts = batch.group, self.offline.storage_options
        uri = self.offline.table_uri(group)
        state: dict[str, Any] = {"dir": subdir, "redo": 0}
        state["actions"], state["rows"], state["partial"] = self._stage_arrow(batch, df, subdir)

        def restage(again: pa.Table) -> pa.Table:
            redo = f"{subdir}-r{state['redo']}"
            state["redo"] += 1
            state["actions"], state["rows"], state["partial"] = self._stage_arrow(batch, again, redo)
            delete_dir(f"{uri}/{state['dir']}", opts)
            state["dir"] = redo
            return again

        def attempt(_t: Any, now: int) -> Written | None:
            if not commit_staged(self.offline.table(group, now), batch, state["actions"],
                                 state["rows"]):
                return None
            return Written(state["rows"], now + 1, partial=state["partial"])

        def dedupe(t: pa.Table, new_files: list[str]) -> pa.Table:
            return without_stored_arrow(group, t, new_files, batch.et_range, batch.value_cols)

        out = commit_on_top(self.offline, batch, df, attempt, restage,
                            lambda _t: not state["actions"], dedupe)
        if out.version is None or out.already:
            delete_dir(f"{uri}/{state['dir']}", opts)
        return out
