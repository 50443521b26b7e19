"""The fused ingest: row checks, dedupe and statistics in the delta-rs writer's one write
pass (issue 17), so a Spark batch is read once where it used to be read by a check pass,
a dedupe join and the write.

``plan`` decides whether a batch takes this path and prepares it; the old path (separate
Spark passes for checks and dedupe, then the write) stays for everything else:

- the writer is delta-rs (``DeltaRsWriter``; delta-spark's MERGE keeps its own path);
- the group's table is on the local file system (the stored identities are read with
  pyarrow on the driver);
- the group declares no expectations, or ``validation="strict"`` (quarantine splits the
  batch before the write: old path);
- the stored rows whose files overlap the batch's event-time range are at most
  ``INDEX_MAX_ROWS`` (their identities are read on the driver).

Steps of the fused path:

1. When the table has files, the batch's row count and event-time range are taken: from
   its files' footers when it is a plain Parquet scan (``footers.scan_range``: no Spark
   job), else by one small Spark job (the conformed batch is kept for the passes that
   follow:
   ``ingest._read_once``; a plain scan of files or of rows in the plan, ``rereadable``,
   is read again instead -- its event times only -- and kept only when files overlap
   it and it is read twice more: by the ``fully_stored`` job below and the pass, or by
   the pass and great-expectations' own run; else the pass reads it again (and a
   suspected conflict's exact check, if any, once more), and must count the same rows).
   When files overlap that range and a recent commit
   wrote a batch of that count and range in full, the batch is compared with that
   commit (one aggregate over the batch: count and a sum of row hashes, against the sum
   the commit recorded, or one more aggregate over the files it added); the same rows,
   with those files still in the table, are a full replay
   (``sparkfs.offline.fingerprint``). Else one Spark job with no Python
   worker (``dedupe.fully_stored``) asks whether every row is stored already, with
   nothing stored contradicting it. A replay (under a new run id) skips the
   write pass -- only the strict expectations run; a replay of one commit's rows takes
   that commit's report when great-expectations must find the same
   (``validation.run.replayed_outcome``) -- and commits nothing. Otherwise the
   identities of the stored rows in that range -- keys, event time, two value hashes
   (``dedupe.read_stored_identities``) -- are broadcast as Arrow IPC bytes, each task
   building its own ``dedupe.StoredIndex`` of them while the JVM starts feeding it; past
   ``BROADCAST_MAX_ROWS`` the driver builds the index once and saves it in the staging
   folder (``onepass.STORED_INDEX_FILE``), and the tasks map that file (one copy in the
   page cache, none sorted again). A first ingest into an empty table skips this step.
2. The write pass (``onepass.stage_with_spark`` with ``onepass.TaskChecks``; the
   batch's count and event-time range are recorded with the commit): each task counts
   its rows' problems (``checks.row_counts_arrow``: null keys and event times,
   out-of-range ints), takes each row's hash of its keys and event time and of the whole
   row (``onepass.KEY_HASH`` and ``ROW_HASH``, computed by the JVM on the rows' way to
   it), drops the rows already stored (``dedupe.StoredIndex``, which hashes them with
   ``rowhash`` as the stored rows were), writes the rest and computes the statistics
   partial of what it wrote. It returns its files, partial and counts, and writes its
   (key hash, row hash) pairs to a side file in the staging folder, which the driver
   reads and deletes.
3. ``FusedPlan.settle``: the driver merges the counts; when the key hashes show a key and
   event time with several values, ``checks.exact_conflicts`` confirms it on the batch
   itself (a hash collision never refuses a batch); ``checks.refuse_bad_rows`` refuses
   with the message of the old path. Strict expectations are then judged: from the
   pass's own counts when every one is counted (``validation.run.CountedSuite``: the
   tasks count the nulls of the columns named and the rows with each of the flags the
   JVM computes on the rows' way to them; great-expectations decides each verdict from
   those counts), else
   by great-expectations' run (``validation.validate_batch``) on the files the pass wrote
   when it matched no stored rows (they hold every row of the batch, as it will be
   committed; so a first ingest does not keep the batch for this second read), else on
   the batch.
   A refusal raises before the commit and the writer deletes the staged files: nothing
   is committed, and nothing stays.
4. The delta-rs writer commits as always (``writers.commit_on_top``: app transaction,
   re-dedupe against concurrent writers). A full replay stages no file and commits
   nothing: its cost is the range job (or the footers) and the comparison or the
   ``fully_stored`` job.

>>> BROADCAST_MAX_ROWS
4000000
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..definitions import FeatureGroup
from .checks import exact_conflicts, merge_row_counts, refuse_bad_rows
from .footers import scan_range
from .onepass import TaskChecks
from .tables import COMMIT_TIME, RUN_ID, history_schema
from .writers import DeltaRsWriter, add_actions

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from ..validation.run import CountedSuite
    from .tables import OfflineStore
    from .writers import Batch

__all__ = ["BROADCAST_MAX_ROWS", "INDEX_MAX_ROWS", "FusedDeltaRsWriter", "FusedPlan", "plan",
           "rereadable"]

#: at most this many stored identities (rows in the batch's event-time range) are broadcast
#: for the in-pass dedupe, about 40 bytes a row plus the keys in every Python worker; more
#: are indexed once by the driver and mapped by the tasks from the staging folder
BROADCAST_MAX_ROWS = 4_000_000
#: at most this many stored rows (those in files overlapping the batch's event-time range)
#: have their identities read and indexed on the driver (about 60 bytes a row plus the
#: keys); a larger overlap takes the old path (a Spark join)
INDEX_MAX_ROWS = 16_000_000

#: (``validation.run.CountedSuite``, the write pass's counts of the rows with each of its
#: flags set, of the nulls of each of its columns)
Counted = tuple[Any, list[int], list[int]]

#: ``validate(df, rows, then, counted)``: the strict expectations on the batch ``df`` of
#: ``rows`` rows; ``then``: (version, run id) of the commit whose rows it holds exactly (a
#: replay), or None; ``counted``: (``CountedSuite``, the write pass's counts of the rows
#: with each of its flags set and of the nulls of each of its columns), when
#: great-expectations judges from those counts instead of reading ``df``, or None
Validate = Callable[["DataFrame", int, "tuple[int, str] | None",
                     "Counted | None"], Any]


@dataclass
class FusedPlan:
    """A batch prepared for the fused write (``plan``): ``df`` the conformed batch, its
    ``narrowed`` columns still bigint (the tasks check their range, then cast), which the
    pass writes (with the system columns added) and ``exact_conflicts`` reads; ``task``
    what each task checks; ``broadcast`` the stored identities broadcast to the tasks, or
    ``index`` their ``dedupe.StoredIndex``, which the writer saves in the staging folder
    for the tasks to map (``onepass.STORED_INDEX_FILE``); ``validate(rows, frame,
    counted)`` the strict expectations (None: none) run by ``settle`` on ``frame``, or on
    the narrowed batch when ``frame`` is None, or judged from what the pass counted; ``counted`` the
    ``validation.run.CountedSuite`` whose flags the pass counts (None: the expectations
    read the batch or the written files after the pass);
    ``replay`` the checks of a batch found stored in full
    (``dedupe.fully_stored``, or compared with the files of the commit that wrote it:
    ``fingerprint.same_rows``; no pass, no file); ``expected`` the row count and
    event-time range (``n``, ``min_et``, ``max_et``) the range job read from a re-read
    input (``rereadable``), which the kept rows the pass reads must have (None: the range
    job read the kept rows).
    After ``settle``: ``checks`` (merged counts, as ``check_rows`` returns them) and
    ``outcome`` (the ``ValidationOutcome``, or None).

    >>> FusedPlan.settle.__doc__.split(".")[0]
    'The driver side of the pass'
    """

    group: FeatureGroup
    df: "DataFrame"
    narrowed: list[str]
    value_cols: list[str]
    task: TaskChecks
    validate: Callable[[int, "DataFrame | None", "Counted | None"], Any] | None = None
    overlap: list[str] = field(default_factory=list)
    broadcast: Any = None
    index: Any = None
    replay: dict | None = None
    expected: dict | None = None
    counted: "CountedSuite | None" = None
    checks: dict | None = None
    outcome: Any = None

    def settle(self, found: dict,
               written: "Callable[[], DataFrame | None] | None" = None,
               tallies: "tuple[list[int], list[int]] | None" = None) -> dict:
        """The driver side of the pass. ``found`` is what ``stage_with_spark`` returned
        (merged counts and ``suspects``), ``tallies`` the pass's counts for
        ``self.counted``: rows with each flag set, nulls of each column (None: not
        counted): confirm suspected conflicts exactly, refuse a bad batch
        (``ValidationError``: the caller deletes the staged files), then run the strict
        expectations, judged from ``tallies`` when given. The
        conflict check, and expectations that read rows, read ``written()`` when it gives
        a frame (the files the pass wrote, when they hold every row of the batch: the rows
        as they will be committed), else the batch. Returns the checks (``n``, counts,
        ``min_et``, ``max_et``, ``conflicts``)."""
        checks = dict(found)
        suspects = checks.pop("suspects", 0)
        checks["conflicts"] = 0
        confirm = bool(suspects) and self.task.conflicts
        validate = self.validate if checks["n"] else None
        reads = confirm or (validate is not None and tallies is None)
        frame = written() if written is not None and reads else None
        if confirm:
            checks["conflicts"] = exact_conflicts(self.group,
                                                  self.df if frame is None else frame)
        checks = refuse_bad_rows(self.group, checks, self.narrowed)
        self.checks = checks
        if validate is not None:
            self.outcome = validate(checks["n"], frame,
                                    None if tallies is None else (self.counted, *tallies))
        return checks

    def release(self) -> None:
        """Free the stored identities: broadcast (on the executors and the driver) or
        indexed on the driver."""
        self.index = None
        if self.broadcast is not None:
            try:
                self.broadcast.destroy()
            except Exception:  # the session may be gone already; nothing else holds it
                pass
            self.broadcast = None


def plan(offline: "OfflineStore", group: FeatureGroup, writer: Any, df: "DataFrame",
         narrowed: list[str], pinned: int, read_once: Callable[["DataFrame"], "DataFrame"],
         validate: Validate | None = None) -> FusedPlan | None:
    """A ``FusedPlan`` for the conformed batch ``df`` (narrowed columns still bigint), or
    None when it takes the old path (see the module docstring). ``read_once`` keeps a frame
    for several passes (``ingest._read_once``); ``validate`` runs the strict expectations
    (``Validate``; a replay of a commit may take that commit's report:
    ``validation.run.replayed_outcome``). Runs the event-time range job and reads
    the stored identities when the table has files at ``pinned``.

    >>> plan.__name__  # needs Spark; exercised by tests/test_ingest_fused.py
    'plan'
    """
    from pyspark.sql import functions as F

    from ..sql import quote_ident

    if type(writer) is not DeltaRsWriter:
        return None
    if group.expectations is not None and group.validation != "strict":
        return None
    uri = offline.table_uri(group)
    if "://" in uri and not uri.startswith("file://"):
        return None
    schema = history_schema(group)
    value_cols = [f.name for f in schema if f.name not in (COMMIT_TIME, RUN_ID)]
    keys = [*group.join_keys, group.event_time]
    values = [v for v in value_cols if v not in keys]
    stored_files = offline.files(group, pinned)
    # a plain scan is read again to look for a replay; only the rows a pass writes are kept
    again = bool(stored_files) and rereadable(df)
    if stored_files and not again:
        df = read_once(df)
    overlap: list[str] = []
    stored = None
    expected = None
    if stored_files:
        # a plain Parquet scan's footers hold its count and range; else one Spark job
        row = scan_range(df, group.event_time) if again else None
        if row is None:
            et = F.col(quote_ident(group.event_time, "spark"))
            first = (df.select(et) if again else df).agg(
                F.count(F.lit(1)).alias("n"), F.unix_micros(F.min(et)).alias("lo_us"),
                F.unix_micros(F.max(et)).alias("hi_us")).first()
            assert first is not None  # a global aggregate has one row
            row = first.asDict()
        # the count and range in UTC, as the write pass reports them
        counted = {**merge_row_counts([{"min_et": row["lo_us"], "max_et": row["hi_us"]}]),
                   "n": row["n"]}
        lo, hi = counted["min_et"], counted["max_et"]
        if lo is not None:
            overlap = offline.files(group, pinned, (lo, hi))
        replay = {**counted, "suspects": 0}
        then = _replayed(offline, group, pinned, df, value_cols, narrowed, row) \
            if overlap else None
        if then is not None:
            return _replay(group, df, narrowed, value_cols, values, validate, overlap, replay,
                           then)
        if again:  # the pass must read the rows counted (else refused, nothing committed)
            expected = counted
        if overlap:
            stored_rows = _stored_rows(offline, group, pinned, overlap)
            if stored_rows > INDEX_MAX_ROWS:
                return None
            from .dedupe import fully_stored, read_stored_identities

            # kept when read twice: by the replay check and the pass, or by the pass and
            # great-expectations (the staged files lack the rows matched with stored ones)
            if again and (row["n"] <= stored_rows or _reads_rows(validate, group, df)):
                df = read_once(df)
            if row["n"] <= stored_rows and fully_stored(
                    df.sparkSession, group, df, overlap, (replay["min_et"], replay["max_et"]),
                    value_cols, stored_rows, narrowed):
                return _replay(group, df, narrowed, value_cols, values, validate, overlap,
                               replay)
            stored = read_stored_identities(group, overlap, (lo, hi), value_cols)
    broadcast = index = None
    if stored is not None and stored.num_rows > BROADCAST_MAX_ROWS:
        from .dedupe import StoredIndex

        index = StoredIndex(stored, keys)
    elif stored is not None and stored.num_rows:
        import pyarrow as pa

        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, stored.schema) as w:
            w.write_table(stored)
        broadcast = df.sparkSession.sparkContext.broadcast(sink.getvalue().to_pybytes())
    strict = _strict(validate, group, df, narrowed)
    suite = None
    if strict is not None:
        from ..validation.run import counted_suite

        suite = counted_suite(group, dict(df.dtypes))
    task = TaskChecks(list(group.join_keys), group.event_time, values, list(narrowed),
                      conflicts=not group.aggregations, stored=broadcast, row_hash=True,
                      flags=0 if suite is None else len(suite.flagged),
                      null_columns=[] if suite is None else suite.columns)
    return FusedPlan(group, df, list(narrowed), value_cols, task, strict, overlap,
                     broadcast, index, expected=expected, counted=suite)


#: the logical operators a re-readable plan may hold (``rereadable``)
_REREADABLE = frozenset({"Project", "Filter", "Union", "LocalRelation", "LogicalRelation"})


def rereadable(df: "DataFrame") -> bool:
    """Whether ``df`` is cheap and safe to read once more: its optimized plan only scans
    files or rows held in the plan, filters, projects and unions them, with deterministic
    expressions (no join, aggregate, sort, shuffle, Python UDF or RDD to compute again).
    ``plan`` then looks for a replay on the input itself, reading only its event times
    (or, for a plain Parquet scan, its footers: ``footers.scan_range``) unless a recent
    commit recorded the batch's count and range, and keeps the rows
    (``ingest._read_once``) only for a batch that is written. A file rewritten between the
    reads is caught by the count and range the pass reads (``FusedPlan.expected``).

    >>> rereadable.__name__  # needs Spark; exercised by tests/test_ingest_fingerprint.py
    'rereadable'
    """
    plan = df._jdf.queryExecution().optimizedPlan()
    if not plan.deterministic():
        return False
    nodes = [plan]
    while nodes:
        node = nodes.pop()
        name = node.nodeName()
        if name not in _REREADABLE:
            return False
        if name == "LogicalRelation" and \
                node.relation().getClass().getSimpleName() != "HadoopFsRelation":
            return False
        children = node.children()
        nodes.extend(children.apply(i) for i in range(children.size()))
    return True


def _replay(group: FeatureGroup, df: "DataFrame", narrowed: list[str], value_cols: list[str],
            values: list[str], validate: Validate | None, overlap: list[str], replay: dict,
            then: "tuple[int, str] | None" = None) -> FusedPlan:
    """The plan of a batch whose rows are all stored: no pass, only the strict
    expectations (``then``: (version, run id) of the commit that wrote exactly these
    rows, if known)."""
    return FusedPlan(group, df, list(narrowed), value_cols,
                     TaskChecks(list(group.join_keys), group.event_time, values),
                     _strict(validate, group, df, narrowed, then), overlap, replay=replay)


def _replayed(offline: "OfflineStore", group: FeatureGroup, version: int, df: "DataFrame",
              value_cols: list[str], narrowed: list[str], row: Any) -> tuple[int, str] | None:
    """(version, run id) of the recent commit that wrote in full exactly the rows of ``df``
    (``row``: its count and UTC event-time range), whose files are all still stored at
    ``version`` (``sparkfs.offline.fingerprint``), or None. No Spark job unless a commit
    recorded its count and range."""
    from . import fingerprint as fp

    versions = fp.candidates(offline.table(group, version),
                             fp.batch_key(row["n"], row["lo_us"], row["hi_us"]), row["n"])
    batch_total = None
    for then in versions:
        if batch_total is None:
            batch_total = fp.total(df.agg(*fp.aggregates(df, value_cols)).first())
            if batch_total is None:
                return None
        if fp.same_rows(offline, group, df, value_cols, narrowed, version, then.version,
                        batch_total, then.total):
            return then.version, then.run_id or ""
    return None


def _reads_rows(validate: Validate | None, group: FeatureGroup, df: "DataFrame") -> bool:
    """Whether the strict expectations read the batch's rows: great-expectations' own run,
    not a verdict from the pass's counts (``validation.run.counted_suite``).

    >>> _reads_rows(None, None, None)  # no expectations to judge
    False
    """
    if validate is None or group.expectations is None:
        return False
    from ..validation.run import counted_suite

    return counted_suite(group, dict(df.dtypes)) is None


def _strict(validate: Validate | None, group: FeatureGroup, df: "DataFrame",
            narrowed: list[str], then: "tuple[int, str] | None" = None,
            ) -> Callable[[int, "DataFrame | None", "Counted | None"], Any] | None:
    """The strict expectations on ``df`` (narrowed), for ``FusedPlan.settle``; None
    without expectations. ``then``: (version, run id) of the commit whose rows ``df``
    holds exactly."""
    from .checks import narrow

    if validate is None or group.expectations is None:
        return None

    def run(rows: int, frame: "DataFrame | None" = None,
            counted: "Counted | None" = None) -> Any:
        return validate(narrow(df, narrowed) if frame is None else frame, rows, then, counted)
    return run


def _stored_rows(offline: "OfflineStore", group: FeatureGroup, version: int,
                 files: list[str]) -> int:
    """Rows in ``files`` by the table's add actions (no file is opened)."""
    import pyarrow as pa

    wanted = {f.rsplit("/", 1)[-1] for f in files}
    adds = pa.table(offline.table(group, version).get_add_actions(flatten=True))
    total = 0
    for path, n in zip(adds.column("path").to_pylist(), adds.column("num_records").to_pylist()):
        if path.rsplit("/", 1)[-1] in wanted:
            total += int(n or 0)
    return total


class FusedDeltaRsWriter(DeltaRsWriter):
    """The delta-rs writer whose first staging is the fused pass of ``plan``: the staged
    files, the statistics partial and the row checks come from one Spark job, and the plan
    settles (refuses, validates) before anything is committed. Staging again after a
    concurrent commit (``commit_on_top``'s re-dedupe) is the plain one-pass write.

    >>> FusedDeltaRsWriter.name
    'delta-rs'
    """

    def __init__(self, offline: "OfflineStore", fused: FusedPlan) -> None:
        super().__init__(offline)
        self.fused = fused
        self._first = True

    def _stage(self, batch: "Batch", df: "DataFrame", subdir: str) -> tuple[list, int, Any]:
        if not self._first:
            return super()._stage(batch, df, subdir)
        self._first = False
        if self.fused.replay is not None:  # every row is stored: no pass, nothing staged
            checks = self.fused.settle(self.fused.replay)
            batch.rows_hint = checks["n"]
            batch.et_range = (checks["min_et"], checks["max_et"])
            return [], 0, None
        from ..errors import SparkfsError, first_line
        from . import fingerprint as fp
        from . import onepass
        from .checks import value_hash

        stage = f"{self.offline.table_uri(batch.group)}/{subdir}"
        spark = df.sparkSession
        parallel = max(2, spark.sparkContext.defaultParallelism)
        if df.rdd.getNumPartitions() > 4 * parallel:
            df = df.coalesce(2 * parallel)
        counted = self.fused.counted
        if counted is not None and counted.flagged:  # the expectations' flags
            df = df.withColumn(onepass.FLAGS, counted.flags())
        hashes = self.fused.task.hash_columns
        if onepass.ROW_HASH in hashes:
            # each row's fingerprint hash, computed by the JVM: summed by the tasks (the
            # batch's sum is recorded with its commit, ``fingerprint.HASH_KEY``) and half of
            # their key-hash pairs
            df = df.withColumn(onepass.ROW_HASH, value_hash(df, self.fused.value_cols))
        if onepass.KEY_HASH in hashes:  # the other half: the hash of keys and event time
            from pyspark.sql import functions as F

            from ..sql import quote_ident

            identity = [*self.fused.task.keys, self.fused.task.event_time]
            df = df.withColumn(onepass.KEY_HASH,
                               F.xxhash64(*[F.col(quote_ident(c, "spark")) for c in identity]))
        saved = None
        try:
            if self.fused.index is not None:  # saved for the tasks to map
                saved = _save_index(self.fused, stage)
            files, partial, found = onepass.stage_with_spark(
                df, stage, history_schema(batch.group), batch.stats_specs, self.fused.task)
        except Exception as exc:
            raise SparkfsError(f"writing the batch for feature group {batch.group.name!r} failed; "
                               f"nothing was committed: {first_line(exc)}") from exc
        finally:
            self.fused.release()
            if saved is not None:
                from .parquet_stats import delete_file

                delete_file(saved)
        found = found or {"n": 0, "min_et": None, "max_et": None}
        hash_sum = fp.summed(found.pop(onepass.ROW_HASH_LO, None),
                             found.pop(onepass.ROW_HASH_HI, None))
        expected = self.fused.expected
        if expected is not None and any(found[k] != expected[k] for k in expected):
            raise SparkfsError(  # the writer deletes the staged files
                f"the input of feature group {batch.group.name!r} gave the write pass other "
                f"rows than the event-time range job before it ({expected['n']} rows from "
                f"{expected['min_et']} to {expected['max_et']}, then {found['n']} from "
                f"{found['min_et']} to {found['max_et']}: were its files rewritten "
                "meanwhile?); nothing was committed: ingest it again")
        tallies = None
        if counted is not None:  # the rows flagged and the nulls the tasks counted
            tallies = ([found.pop(f"flag_{b}", 0) for b in range(len(counted.flagged))],
                       [found.pop(f"nulls_{j}", 0) for j in range(len(counted.columns))])
        checks = self.fused.settle(found, lambda: self._written_batch(batch, stage, files),
                                   tallies)
        if checks["n"]:  # what a replay of this batch is compared by (``fingerprint``)
            batch.batch_key = fp.batch_key(checks["n"], checks["min_et"], checks["max_et"])
            batch.batch_hash = hash_sum
        batch.rows_hint = checks["n"]
        batch.et_range = (checks["min_et"], checks["max_et"])
        out, written = add_actions(files, subdir)
        return out, written, partial

    def _written_batch(self, batch: "Batch", stage: str, files: list) -> "DataFrame | None":
        """The staged files as the batch the strict expectations and the exact conflict
        check read, when the pass wrote every row of it (nothing was matched with stored
        rows: ``TaskChecks.stored`` is None) -- the rows as they will be committed, read
        back by column (a great-expectations job reads only the columns its expectations
        name) -- else None (the batch itself). This spares keeping the batch for that
        second read (the pass reads the input once, only to write it), and what is checked
        is what is written even when the input would not give the same rows twice."""
        if self.fused.task.stored is not None or not files:
            return None
        from ..sql import quote_ident
        from .tables import read_files_spark

        columns = self.fused.df.columns  # the conformed batch's, narrowed as written
        frame = read_files_spark(self.fused.df.sparkSession, batch.group,
                                 [f"{stage}/{f.path}" for f in files])
        return frame.select(*[quote_ident(c, "spark") for c in columns])


def _save_index(fused: FusedPlan, stage: str) -> str:
    """Save ``fused.index`` into the staging folder ``stage`` (``onepass.STORED_INDEX_FILE``)
    and point the tasks to it; returns the file's URI."""
    from dataclasses import replace

    from .onepass import STORED_INDEX_FILE
    from .parquet_stats import _fs

    uri = f"{stage}/{STORED_INDEX_FILE}"
    fs, path = _fs(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    fused.index.save(path)
    fused.task = replace(fused.task, stored=path)
    return uri
