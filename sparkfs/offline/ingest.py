"""Ingestion: check a batch against its feature group and append it to the group's Delta
history in one atomic commit, written by the executors.

Steps, in order (any refusal happens before a single byte is written):

1. ``run_id`` already committed (a Delta app transaction) -> no-op.
2. Derived features: the group's transforms add their columns (pandas UDFs).
3. Schema: every join key, the event time and every input field must be present with a
   compatible type (lossless widening, and integer narrowing checked per value)
   (``sparkfs.offline.checks``).
4. One Spark pass counts null join keys, null event times, out-of-range values and, for
   groups of latest values, rows that give the same keys and event time different values.
5. Expectations (great-expectations), when the group declares them: ``strict`` refuses the
   batch, ``quarantine`` diverts failing rows.
6. Rows already stored with identical keys, event time and values are skipped. Only files
   whose event-time statistics overlap the batch are read (no full history scan)
   (``sparkfs.offline.dedupe``).
7. A writer commits the batch with the run's app transaction in a single Delta commit:
   ``delta-rs`` (executors write Parquet -- with statistics on, with pyarrow, computing
   the statistics partials and the Delta file statistics from the same Arrow batches:
   one pass, nothing read back, ``sparkfs.offline.onepass`` -- and the driver commits)
   or ``delta-spark`` (Spark's
   own Delta writer, when the session has the Delta jars); ``offline.engine`` chooses
   (``sparkfs.offline.writers``). Both re-check the run id and the dedupe against the
   version the commit lands on, so concurrent ingests neither commit a run twice nor store
   the same rows twice.
8. Statistics of the committed rows (``ingest.statistics``): with delta-rs, the partials
   the write pass returned, merged; with delta-spark, one more pass over the files the
   commit added (read back).

With the delta-rs writer, a local table and no quarantine, steps 4, 6 and 8 run inside
the write pass of step 7 instead (``sparkfs.offline.fused``): the tasks count the bad rows,
drop the stored ones and write the rest; the driver refuses a bad batch (deleting what was
staged) and runs strict expectations after the pass, before the commit.

A small pandas or Arrow batch (at most ``ingest.local_max_rows`` rows, delta-rs writer,
local table, no expectations) runs the same steps in this process on Arrow, with no Spark
job at all: the local engine, ``sparkfs.offline.local`` (``IngestResult.local``).

>>> IngestResult("weather", 1, "r1", 3, rows_input=2, rows_written=2).to_dict()["delta_version"]
3
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..definitions import FeatureGroup
from .checks import check_rows, check_run_id, conform, narrow, to_spark
from .dedupe import without_stored_rows
from .tables import COMMIT_TIME, RUN_ID, history_schema, read_files_spark
from .writers import Batch, Written, app_id, choose_writer, version_of_run

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import Catalog, SparkProvider
    from ..online.materialize import MaterializeResult
    from .fused import Counted
    from .tables import OfflineStore

__all__ = ["IngestResult", "app_id", "ingest", "to_spark", "conform"]


@dataclass
class IngestResult:
    """What one ``fs.ingest`` call did: the Delta version it committed (or found, for a
    replayed ``run_id``: ``noop``), the row counts, the writer engine, and
    ``materialization`` when the call also pushed the new values online.

    >>> r = IngestResult("weather", 1, "run-1", delta_version=3, rows_input=10, rows_written=8,
    ...                  rows_skipped=2)
    >>> r.to_dict()["rows_written"], r.materialization is None
    (8, True)
    """

    group: str
    group_version: int
    run_id: str
    delta_version: int
    rows_input: int = 0
    rows_written: int = 0
    rows_skipped: int = 0
    rows_quarantined: int = 0
    duration_s: float = 0.0
    noop: bool = False
    engine: str = "delta-rs"
    #: the batch ran on the local engine (Arrow in this process, no Spark job)
    local: bool = False
    columns_ignored: list[str] = field(default_factory=list)
    transform_fingerprints: dict[str, str] = field(default_factory=dict)
    materialization: MaterializeResult | None = None

    def to_dict(self) -> dict:
        """A JSON-able dict (``materialization`` as its own dict, or left out)."""
        out = {k: v for k, v in self.__dict__.items() if k != "materialization"}
        if self.materialization is not None:
            out["materialization"] = self.materialization.to_dict()
        return out


def ingest(catalog: Catalog, offline: OfflineStore, spark: SparkProvider, group: FeatureGroup,
           data: Any, run_id: str | None = None, *, engine: str = "auto",
           statistics: bool = True, local_max_rows: int = 0,
           delta_jars: bool = False) -> IngestResult:
    """Check ``data`` against ``group`` and commit it to the group's Delta history (see the
    module docstring for the steps). Returns an ``IngestResult``.

    ``catalog`` records validation reports and statistics; ``offline`` holds the history;
    ``spark`` gives the session the checks run on (never called on the local engine);
    ``engine`` is ``offline.engine`` of the config (``auto``, ``delta-rs`` or
    ``delta-spark``); ``statistics`` records the batch's statistics (``ingest.statistics``);
    ``local_max_rows`` (``ingest.local_max_rows``; 0: off) and ``delta_jars``
    (``spark.delta_jars``) decide whether a pandas or Arrow batch runs on the local engine
    (``sparkfs.offline.local``). ``FeatureStore.ingest`` passes its own.

    >>> import tempfile, pandas as pd
    >>> from sparkfs import FeatureStore, Entity, Field, FeatureGroup
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> g = FeatureGroup("weather", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
    >>> _ = fs.apply([g])
    >>> rows = pd.DataFrame({"origin": ["JFK"], "temp": [3.5],
    ...                      "t": pd.to_datetime(["2013-01-01"], utc=True)})
    >>> ingest(fs.catalog, fs.offline, lambda: fs.spark, g, rows, statistics=False).rows_written
    1
    >>> def no_spark():
    ...     raise RuntimeError("no Spark here")
    >>> r = ingest(fs.catalog, fs.offline, no_spark, g, rows.assign(temp=4.0),
    ...            engine="delta-rs", local_max_rows=10)
    >>> r.rows_written, r.local
    (1, True)
    """
    started = time.perf_counter()
    commit_time = dt.datetime.now(dt.UTC)
    run_id = check_run_id(run_id, commit_time)
    table = offline.table(group)
    pinned = table.version()
    result = IngestResult(group.name, group.version, run_id, pinned,
                          transform_fingerprints={t.name: t.fingerprint for t in group.transforms})
    if table.transaction_version(app_id(run_id)) is not None:
        return _done(result, started, noop=True,
                     version=version_of_run(table, run_id, pinned))

    from .local import runs_locally

    if runs_locally(data, group, offline, engine, local_max_rows, delta_jars):
        from .local import LocalDeltaRsWriter, prepare_local

        local = prepare_local(offline, group, data, run_id, commit_time, pinned, statistics)
        result.local, result.engine = True, LocalDeltaRsWriter.name
        result.rows_input, result.columns_ignored = local.rows_input, local.columns_ignored
        if local.batch is None:
            return _done(result, started, noop=True)
        written = LocalDeltaRsWriter(offline).write(local.batch)
        return _recorded(catalog, offline, group, result, written, None, started, statistics,
                         None, pinned)

    session = spark()
    writer = choose_writer(engine, offline, session)
    result.engine = writer.name
    df = to_spark(session, data, group)
    if group.transforms:
        from .derived import apply_derived

        df = apply_derived(group, df)
    df, result.columns_ignored, narrowed = conform(group, df)
    from .fused import plan

    fused = plan(offline, group, writer, df, narrowed, pinned, lambda d: _read_once(d, data),
                 functools.partial(_validate, catalog, group, run_id=run_id))
    if fused is not None:
        return _ingest_fused(catalog, offline, group, result, fused, run_id, commit_time,
                             pinned, statistics, session, started)
    df = _read_once(df, data)
    checks = check_rows(group, df, narrowed)
    df = narrow(df, narrowed)
    result.rows_input = checks["n"]
    if result.rows_input == 0:
        return _done(result, started, noop=True)

    outcome = None
    if group.expectations is not None:
        from ..validation import validate_batch

        outcome = validate_batch(catalog, group, df, run_id, rows=checks["n"])
        df = outcome.valid_df

    value_cols = [f.name for f in history_schema(group) if f.name not in (COMMIT_TIME, RUN_ID)]
    df = df.select(*value_cols)
    et_range = (checks["min_et"], checks["max_et"])
    overlap = offline.files(group, pinned, et_range)
    if overlap:
        df = without_stored_rows(session, group, df, overlap, checks, value_cols)
    df = df.withColumn(COMMIT_TIME, _lit(commit_time, "timestamp")) \
           .withColumn(RUN_ID, _lit(run_id, "string"))

    if outcome is not None and outcome.invalid_df is not None:
        # Quarantined rows land first (idempotent per run id): if the process dies between
        # here and the main commit, the retry commits the batch and finds them written.
        from ..validation.quarantine import write_quarantine

        write_quarantine(offline, group, outcome.invalid_df, run_id, None)
    specs = [(f.name, f.dtype) for f in group.stored_fields] if statistics else None
    written = writer.write(Batch(group, df, run_id, commit_time, pinned, checks["n"],
                                 et_range, value_cols, deduped=bool(overlap), stats_specs=specs))
    return _recorded(catalog, offline, group, result, written, outcome, started, statistics,
                     session, pinned)


def _validate(catalog: Catalog, group: FeatureGroup, df: Any, rows: int,
              replay_of: tuple[int, str] | None = None,
              counted: Counted | None = None, *, run_id: str) -> Any:
    """The strict expectations on the fused path's batch ``df``; ``replay_of``: (version,
    run id) of the commit whose rows it holds exactly (a replay), whose report is taken
    when it must be the same (``validation.run.replayed_outcome``); ``counted``: (the
    ``CountedSuite``, the write pass's counts of the rows with each of its flags set and
    of the nulls of its columns), judged without reading ``df``."""
    from ..validation import validate_batch
    from ..validation.run import replayed_outcome

    if counted is not None:
        suite, ones, nulls = counted
        return suite.outcome(catalog, rows, ones, nulls, df, run_id)
    if replay_of is not None:
        outcome = replayed_outcome(catalog, group, df, run_id, rows, *replay_of)
        if outcome is not None:
            return outcome
    return validate_batch(catalog, group, df, run_id, rows=rows)


def _ingest_fused(catalog: Catalog, offline: OfflineStore, group: FeatureGroup,
                  result: IngestResult, fused: Any, run_id: str, commit_time: dt.datetime,
                  pinned: int, statistics: bool, session: Any, started: float) -> IngestResult:
    """Steps 4-8 in the delta-rs writer's one pass (``sparkfs.offline.fused``): the row
    checks, the dedupe and the statistics come from the write pass; the checks refuse and
    the strict expectations run after it, before the commit."""
    from ..sql import quote_ident
    from .fused import FusedDeltaRsWriter

    value_cols = fused.value_cols
    df = fused.df.select(*[_col(quote_ident(c, "spark")) for c in value_cols]) \
        .withColumn(COMMIT_TIME, _lit(commit_time, "timestamp")) \
        .withColumn(RUN_ID, _lit(run_id, "string"))
    specs = [(f.name, f.dtype) for f in group.stored_fields] if statistics else None
    batch = Batch(group, df, run_id, commit_time, pinned, 0, (None, None), value_cols,
                  deduped=False, stats_specs=specs)
    try:
        written = FusedDeltaRsWriter(offline, fused).write(batch)
    finally:
        fused.release()
    result.rows_input = fused.checks["n"] if fused.checks is not None else 0
    if result.rows_input == 0 and not written.already:
        return _done(result, started, noop=True)
    return _recorded(catalog, offline, group, result, written, fused.outcome, started,
                     statistics, session, pinned)


def _recorded(catalog: Catalog, offline: OfflineStore, group: FeatureGroup,
              result: IngestResult, written: Written, outcome: Any, started: float,
              statistics: bool, session: Any, pinned: int) -> IngestResult:
    """After the writer: the counts, the validation record and the statistics of the
    committed rows (both engines)."""
    run_id = result.run_id
    if written.already:  # a concurrent ingest committed this run id first
        result.rows_input = 0
        return _done(result, started, noop=True, version=written.version)
    result.rows_written = written.rows
    if written.version is None:  # nothing new to write
        result.noop = True
    else:
        result.delta_version = written.version
    if outcome is not None:
        from ..validation import record_validation

        result.rows_quarantined = record_validation(catalog, offline, group, outcome, run_id,
                                                   result.delta_version)
    result.rows_skipped = result.rows_input - result.rows_written - result.rows_quarantined
    if written.version is not None and statistics:
        from ..monitoring import record_statistics

        if written.partial is not None:  # computed by the write pass itself (delta-rs)
            record_statistics(catalog, group, written.partial, written.version)
        else:  # delta-spark: one pass over the rows just committed
            new_files = offline.files_added_between(group, pinned, written.version)
            written_df = read_files_spark(session, group, new_files) \
                .where(_col(RUN_ID) == _lit(run_id, "string"))
            record_statistics(catalog, group, written_df, written.version)
    return _done(result, started)


def _read_once(df: Any, data: Any) -> Any:
    """The conformed batch computed once for the passes that follow (row checks,
    expectations, dedupe, the write) when ``data`` is a Spark DataFrame the caller did not
    persist: ``localCheckpoint`` keeps its rows in the executors' block stores (memory,
    spilling to disk), so the source is read and the derived transforms run once, and
    every pass sees the same rows. A full replay of 1M rows took 7.0 s with it and 13.1 s
    without, in the same run (``DataFrame.cache`` did not help at 500k rows: its columnar
    build costs what it saves). Rows from the driver (pandas, Arrow) and persisted input
    are cheap to read again and are used as they are. Like any local checkpoint it is not
    recomputed if an executor is lost: the ingest then fails, nothing is committed, and a
    retry with the same run id is safe."""
    from pyspark.sql import DataFrame

    if not isinstance(data, DataFrame):
        return df
    level = data.storageLevel
    if level.useMemory or level.useDisk:
        return df
    return df.localCheckpoint(eager=False)


def _done(result: IngestResult, started: float, noop: bool | None = None,
          version: int | None = None) -> IngestResult:
    if noop is not None:
        result.noop = noop
    if version is not None:
        result.delta_version = version
    result.duration_s = time.perf_counter() - started
    return result


def _lit(value: Any, dtype: str):
    from pyspark.sql import functions as F

    return F.lit(value).cast(dtype)


def _col(name: str):
    from pyspark.sql import functions as F

    return F.col(name)
