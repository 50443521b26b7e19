"""``ingest_stream``: a Structured Streaming query whose every micro-batch is one
``fs.ingest`` (derived transforms, checks, validation policy, dedupe, one Delta commit).

Per micro-batch, in the driver (``foreachBatch``):

1. Unparseable payloads (see ``sparkfs.streaming.parse``) are set aside. A Kafka batch of
   at most ``collect_max_rows`` messages (known from its offsets, without a Spark job) is
   read into the driver once as Arrow, as a plain ``foreachBatch`` would, and split there;
   the event-time range is taken from it and quarantine is skipped when nothing was
   refused. Larger batches and file/Delta batches (size unknown) stay in Spark, cached.
2. The parsed rows are ingested with run id ``stream-{stream_id}-{batch_id}``; the stream
   id lives in the checkpoint (``sparkfs.streaming.checkpoint``), so a batch Spark replays
   after a crash has the same run id and its Delta app transaction makes it a no-op.
   A refusal (strict validation, null keys...) raises before anything of the batch is
   written, and the query stops with that error.
3. The unparseable payloads go to the group's quarantine table (``_raw_payload``,
   ``_reason``, ``_origin``) under their own run id, once.
4. Online, after the commit: when the online watermark is the version before the batch's
   commit, the newest row per key of that commit goes online straight from the files it
   added (``sparkfs.streaming.online.push_commit``: its log entry, pyarrow, no Spark, no
   DuckDB) and the watermark moves to it. Otherwise (first batch, a crash between 2 and 4,
   others' commits in between, windowed-aggregation groups) the online store catches up by
   ``materialize`` (the same incremental materialization as ``fs.materialize``). Newest
   event wins either way, so a replay or an out-of-order event never makes a value older.
5. The micro-batch's record (counts, event-time range, validation status, statistics
   version, source offsets from the checkpoint's offset log) goes to the registry in one
   round trip (``sparkfs.streaming.batches``; ``fs.stream_batches``), and the stream's
   status file is rewritten (``sparkfs streams``). Statistics are what ``fs.ingest``
   records for the batch's commit (``ingest.statistics``; off: none, and
   ``statistics_version`` stays None).

>>> parse_trigger("5 seconds")
{'processingTime': '5 seconds'}
>>> parse_trigger("available_now")
{'availableNow': True}
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..definitions import FeatureGroup
from ..errors import ConfigError, SparkfsError, ValidationError
from . import parse
from .batches import StreamBatch, batch_offsets, kafka_rows, record_batch
from .checkpoint import claim
from .online import push_commit
from .status import StreamStatus, now_iso, status_dir

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming import StreamingQuery

    from ..catalog import Catalog
    from ..offline.tables import OfflineStore
    from ..online.base import OnlineStore

#: How a stream writes one micro-batch: ``ingest(group, df, run_id)`` -> an ``IngestResult``
#: (the facade passes ``fs.ingest`` without materialization: one Delta commit per run id).
BatchIngest = Callable[[FeatureGroup, Any, str], Any]
#: How a stream catches the online store up: ``materialize(group)`` -> a
#: ``MaterializeResult`` (``sparkfs.online.materialize.materialize`` with its stores bound).
BatchMaterialize = Callable[[FeatureGroup], Any]
#: A Kafka micro-batch of at most this many messages (by its offsets) is read into the driver
#: once as Arrow; a larger one, or one of unknown size (files, Delta), stays in Spark.
COLLECT_MAX_ROWS = 200_000


def parse_trigger(trigger: str | dict | None) -> dict[str, Any]:
    """Keyword arguments of ``DataStreamWriter.trigger`` for a trigger given as text:
    an interval (``"5 seconds"``), ``"available_now"`` or ``"once"``; None: as fast as
    possible."""
    if trigger is None:
        return {}
    if isinstance(trigger, dict):
        return dict(trigger)
    text = str(trigger).strip().lower()
    if text in ("available_now", "availablenow", "available-now"):
        return {"availableNow": True}
    if text == "once":
        return {"once": True}
    parts = text.split()
    if len(parts) == 2 and parts[0].replace(".", "", 1).isdigit():
        return {"processingTime": text}
    raise ConfigError(f"stream trigger {trigger!r} is not understood: give an interval such as "
                      "'5 seconds', or 'available_now', or 'once'")


class _Tracker:
    """The status of one stream and the lock that guards it (two writers: the batch
    function and the progress listener)."""

    def __init__(self, status: StreamStatus, directory: str) -> None:
        self.status = status
        self.directory = directory
        self.lock = threading.Lock()

    def update(self, **values: Any) -> None:
        with self.lock:
            for k, v in values.items():
                setattr(self.status, k, v)
            self.status.write(self.directory)


class MicroBatchWriter:
    """The ``foreachBatch`` function of a stream into one feature group: each batch goes
    through ``ingest`` (a ``BatchIngest``), unparseable payloads to the quarantine table in
    ``offline``, the run log to ``catalog``'s registry and, for an online group, the new
    values online: its commit pushed to ``online`` (an ``OnlineStore``) when that store is
    one version behind, else through ``materialize`` (a ``BatchMaterialize``; None: not
    online).

    >>> import tempfile
    >>> from sparkfs import Entity, FeatureGroup, FeatureStore, Field
    >>> from sparkfs.streaming.status import StreamStatus
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> g = FeatureGroup("w", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
    >>> tracker = _Tracker(StreamStatus("s1", "w", 1, "ck", "test"), tempfile.mkdtemp())
    >>> w = MicroBatchWriter(fs.catalog, fs.offline, g, "s1", tracker, ingest=fs.ingest)
    >>> w.run_id(7), w.materialize is None
    ('stream-s1-7', True)
    """

    def __init__(self, catalog: "Catalog", offline: "OfflineStore", group: FeatureGroup,
                 stream_id: str, tracker: _Tracker, *, ingest: BatchIngest,
                 materialize: BatchMaterialize | None = None,
                 online: "OnlineStore | None" = None,
                 collect_max_rows: int = COLLECT_MAX_ROWS) -> None:
        self.catalog = catalog
        self.offline = offline
        self.group = group
        self.stream_id = stream_id
        self.tracker = tracker
        self.ingest = ingest
        self.materialize = materialize if group.online else None
        self.online = online if self.materialize is not None else None
        self.collect_max_rows = collect_max_rows

    def run_id(self, batch_id: int) -> str:
        return f"stream-{self.stream_id}-{batch_id}"

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        record = StreamBatch(self.stream_id, self.group.name, self.group.version, int(batch_id),
                             self.run_id(int(batch_id)), started_at=now_iso())
        try:
            self._write(batch_df, record)
        except Exception as exc:
            self.tracker.update(state="failed", last_error=_one_line(exc))
            raise
        elapsed = time.perf_counter() - started
        record.finished_at = now_iso()
        record.duration_s = round(elapsed, 3)
        record_batch(self.catalog.registry, record)
        rows, bad = record.rows_written, record.rows_unparseable
        st = self.tracker.status
        fresh: dict[str, Any] = {}
        if record.max_event_time is not None and not record.noop:
            newest = dt.datetime.fromisoformat(record.max_event_time)
            fresh = {"last_event_time": record.max_event_time,
                     "freshness_s": round((dt.datetime.now(dt.UTC) - newest).total_seconds(), 3)}
        self.tracker.update(last_batch_id=int(batch_id), last_batch_time=record.finished_at,
                            last_batch_rows=rows, last_batch_unparseable=bad,
                            rows_total=st.rows_total + rows, unparseable_total=st.unparseable_total + bad,
                            rows_per_s=round(rows / elapsed, 1) if elapsed > 0 else None,
                            last_error=None, **fresh)

    def _write(self, batch_df: DataFrame, record: StreamBatch) -> None:
        clock = _Clock(record.phases_s)
        record.offsets = batch_offsets(self.tracker.status.checkpoint, record.batch_id)
        size = kafka_rows(record.offsets)
        clock.lap("offsets")
        if self.collect_max_rows and size is not None and size <= self.collect_max_rows:
            self._write_collected(batch_df, record, clock)
        else:
            self._write_distributed(batch_df, record, clock)
        self._results_of_ingest(record)
        clock.lap("results")
        if self.materialize is not None:
            keys = None
            if self.online is not None and record.delta_version is not None:
                keys = push_commit(self.offline, self.online, self.group, record.delta_version)
            if keys is None:
                keys = self.materialize(self.group).keys_written
            record.materialized_keys = keys
            clock.lap("online")

    def _take(self, record: StreamBatch, result: Any) -> None:
        record.delta_version = result.delta_version
        record.noop = result.noop
        record.rows_input, record.rows_written = result.rows_input, result.rows_written
        record.rows_skipped, record.rows_quarantined = result.rows_skipped, result.rows_quarantined

    def _write_collected(self, batch_df: DataFrame, record: StreamBatch, clock: _Clock) -> None:
        """A small batch (its Kafka offsets say at most ``collect_max_rows`` messages): read
        it once into the driver as Arrow (one Spark job, as a plain ``foreachBatch`` does),
        and split, ingest, take the event-time range and quarantine from there — no cache,
        no extra Spark job for the event-time range or the (usually empty) unparseable rows."""
        import pyarrow.compute as pc

        run_id = record.run_id
        table = batch_df.toArrow()
        clock.lap("read")
        good, bad = parse.split_arrow(table)
        clock.lap("split")
        result = self.ingest(self.group, good, run_id)
        self._take(record, result)
        clock.lap("ingest")
        if result.rows_input:
            lo_hi = pc.min_max(good.column(self.group.event_time)).as_py()
            lo, hi = lo_hi["min"], lo_hi["max"]
            record.min_event_time = None if lo is None else _iso(lo)
            record.max_event_time = None if hi is None else _iso(hi)
        if bad is not None:
            from ..validation.quarantine import write_quarantine

            record.rows_unparseable = write_quarantine(
                self.offline, self.group, bad.to_pandas(), f"{run_id}-unparseable",
                None if result.noop else result.delta_version)
        clock.lap("quarantine")

    def _write_distributed(self, batch_df: DataFrame, record: StreamBatch, clock: _Clock) -> None:
        """A batch of unknown or large size: stays in Spark (cached for the passes)."""
        from pyspark.sql import functions as F

        run_id = record.run_id
        batch = batch_df.persist()
        try:
            good, bad = parse.split(batch)
            result = self.ingest(self.group, good, run_id)
            self._take(record, result)
            clock.lap("ingest")  # with the read and the parse: Spark runs them lazily inside
            if result.rows_input:
                et = self.group.event_time
                row = good.agg(F.min(et), F.max(et)).first()
                lo, hi = (row[0], row[1]) if row is not None else (None, None)
                record.min_event_time = None if lo is None else _iso(lo)
                record.max_event_time = None if hi is None else _iso(hi)
            if bad is not None:
                from ..validation.quarantine import write_quarantine

                record.rows_unparseable = write_quarantine(
                    self.offline, self.group, bad, f"{run_id}-unparseable",
                    None if result.noop else result.delta_version)
            clock.lap("quarantine")
        finally:
            batch.unpersist()

    def _results_of_ingest(self, record: StreamBatch) -> None:
        """The validation report and statistics ``fs.ingest`` stored for this batch."""
        if record.noop or record.delta_version is None:
            return
        reg = self.catalog.registry
        if self.group.expectations is not None:
            rep = reg.get("validation_report", f"{self.group.name}__v{self.group.version}")
            if rep is not None and rep.get("run_id") == record.run_id:
                record.validation, record.validation_seq = rep.get("status"), rep.get("seq")
        if reg.get("statistics", self.group.table_name, record.delta_version) is not None:
            record.statistics_version = record.delta_version


class _Clock:
    """Seconds spent per phase of a micro-batch, added into ``phases`` (``StreamBatch.phases_s``)."""

    def __init__(self, phases: dict[str, float]) -> None:
        self.phases = phases
        self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(self.phases.get(phase, 0.0) + now - self.last, 4)
        self.last = now


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # Spark returns session-local naive datetimes
            value = value.astimezone()
        return value.astimezone(dt.UTC).isoformat()
    return str(value)


def ingest_stream(catalog: "Catalog", offline: "OfflineStore", group: FeatureGroup,
                  streaming_df: DataFrame, checkpoint: str, trigger: str | dict | None = None,
                  source: str | None = None, query_name: str | None = None, *,
                  ingest: BatchIngest, materialize: BatchMaterialize | None = None,
                  online: "OnlineStore | None" = None,
                  status_root: str, collect_max_rows: int = COLLECT_MAX_ROWS) -> StreamingQuery:
    """Start the stream; returns the running ``StreamingQuery``. Each micro-batch is
    written by a ``MicroBatchWriter`` (``ingest``, ``materialize``, ``online`` as there); the stream's
    status file lives under ``status_root`` (the config's ``data_dir``). A Kafka
    micro-batch of at most ``collect_max_rows`` messages is read into the driver once as
    Arrow (0: never); others stay in Spark.

    >>> import tempfile
    >>> from sparkfs import Entity, FeatureGroup, FeatureStore, Field
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> g = FeatureGroup("w", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
    >>> ingest_stream(fs.catalog, fs.offline, g, None, "ck", ingest=fs.ingest, status_root="d")
    Traceback (most recent call last):
    ...
    sparkfs.errors.ValidationError: ingest_stream into feature group 'w' needs a streaming DataFrame (spark.readStream..., or sparkfs.streaming.kafka_source/files_source/delta_source); for a batch DataFrame use fs.ingest
    """  # noqa: E501 (doctest output)
    if not getattr(streaming_df, "isStreaming", False):
        raise ValidationError(
            f"ingest_stream into feature group {group.name!r} needs a streaming DataFrame "
            "(spark.readStream..., or sparkfs.streaming.kafka_source/files_source/delta_source); "
            "for a batch DataFrame use fs.ingest")
    if isinstance(collect_max_rows, bool) or not isinstance(collect_max_rows, int) \
            or collect_max_rows < 0:
        raise ConfigError(f"collect_max_rows must be a whole number >= 0 (0: never collect a "
                          f"micro-batch to the driver), not {collect_max_rows!r}")
    label = source or getattr(streaming_df, "_sparkfs_source", None) or "dataframe"
    stream_id = claim(checkpoint, group, label)
    import os

    tracker = _Tracker(StreamStatus(stream_id=stream_id, group=group.name,
                                    group_version=group.version, checkpoint=checkpoint,
                                    source=label, pid=os.getpid()),
                       status_dir(status_root))
    writer = MicroBatchWriter(catalog, offline, group, stream_id, tracker, ingest=ingest,
                              materialize=materialize, online=online,
                              collect_max_rows=collect_max_rows)
    w = (streaming_df.writeStream.foreachBatch(writer)
         .option("checkpointLocation", checkpoint)
         .queryName(query_name or f"sparkfs-{group.name}-v{group.version}-{stream_id}"))
    kwargs = parse_trigger(trigger)
    if kwargs:
        w = w.trigger(**kwargs)
    _listener(streaming_df.sparkSession).track(stream_id, tracker)
    try:
        query = w.start()
    except Exception as exc:
        if isinstance(exc, SparkfsError):
            raise
        tracker.update(state="failed", last_error=_one_line(exc))
        raise SparkfsError(f"the stream into feature group {group.name!r} did not start: "
                           f"{_one_line(exc)}") from None
    _listener(streaming_df.sparkSession).bind(query, stream_id)
    tracker.update(query_id=str(query.id))
    return query


def _one_line(exc: BaseException) -> str:
    """The sparkfs message inside a (py4j/streaming) exception, else its last line."""
    text = str(exc)
    for line in text.splitlines():
        for marker in ("ValidationError: ", "SparkfsError: ", "OnlineStoreError: ",
                       "TransformError: "):
            if marker in line:
                return line.split(marker, 1)[1].strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:500]


def stream_error(query: StreamingQuery) -> str | None:
    """The readable cause a stopped query failed with (None if it did not fail)."""
    exc = query.exception()
    return None if exc is None else _one_line(exc)


def record_termination(spark: Any, query: StreamingQuery) -> None:
    """Write the final state of ``query``, a stream of ``ingest_stream`` that is no longer
    active, to its status file now: ``stopped``, or ``failed`` with its error. Spark reports
    a termination to the progress listener asynchronously, so a driver that exits right
    after ``query.stop()`` could leave ``running`` behind (``sparkfs streams`` then shows
    the stream as ``dead``). Writing it twice is harmless. ``jobs/stream.py`` calls this
    after stopping its queries.

    >>> record_termination.__name__  # needs a stopped query; tests/test_streaming_kafka.py
    'record_termination'
    """
    if query.isActive:
        raise SparkfsError(f"stream query {query.id} is still running; stop it first")
    listener = getattr(spark, "_sparkfs_progress_listener", None)
    tracker = listener._tracker(query.id) if listener is not None else None
    if tracker is not None:
        _terminated(tracker, stream_error(query))


def settle_streams(spark: Any) -> None:
    """``record_termination`` for every stream this Spark session started that is no
    longer active and whose status still says ``running`` (a query that finished, failed or
    was stopped before Spark's listener reported it). ``fs.list_streams`` calls this
    first, so a stream this process stopped reads as stopped at once.

    >>> settle_streams(object())  # a session that started no stream: nothing to do
    """
    listener = getattr(spark, "_sparkfs_progress_listener", None)
    if listener is None:
        return
    for query in list(listener.handles.values()):
        tracker = listener._tracker(query.id)
        if tracker is not None and tracker.status.state == "running" and not query.isActive:
            _terminated(tracker, stream_error(query))


def _terminated(tracker: _Tracker, error: str | None) -> None:
    if error:
        tracker.update(state="failed", last_error=tracker.status.last_error or error)
    else:
        tracker.update(state="stopped")


def _listener(spark: Any) -> Any:
    existing = getattr(spark, "_sparkfs_progress_listener", None)
    if existing is None:
        existing = _new_progress_listener()
        spark.streams.addListener(existing)
        spark._sparkfs_progress_listener = existing
    return existing


def _offsets(text: Any) -> dict:
    import json

    if not text:
        return {}
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def source_lag(progress: Any) -> int | None:
    """Offsets behind the latest available, summed over Kafka partitions (None when the
    source does not report offsets per partition)."""
    total, seen = 0, False
    for src in progress.sources:
        latest, end = _offsets(src.latestOffset), _offsets(src.endOffset)
        for topic, parts in latest.items():
            if not isinstance(parts, dict):
                continue
            for part, off in parts.items():
                done = (end.get(topic) or {}).get(part)
                if isinstance(off, int) and isinstance(done, int):
                    total += max(0, off - done)
                    seen = True
    return total if seen else None


def _make_listener_class():
    from pyspark.sql.streaming import StreamingQueryListener

    class Listener(StreamingQueryListener):
        def __init__(self) -> None:
            self.trackers: dict[str, _Tracker] = {}
            self.queries: dict[str, str] = {}
            self.handles: dict[str, Any] = {}  # query id -> its StreamingQuery

        def track(self, stream_id: str, tracker: _Tracker) -> None:
            self.trackers[stream_id] = tracker

        def bind(self, query: Any, stream_id: str) -> None:
            self.queries[str(query.id)] = stream_id
            self.handles[str(query.id)] = query

        def _tracker(self, query_id: Any) -> _Tracker | None:
            sid = self.queries.get(str(query_id))
            return self.trackers.get(sid) if sid else None

        def onQueryStarted(self, event: Any) -> None:
            pass

        def onQueryIdle(self, event: Any) -> None:
            pass

        def onQueryProgress(self, event: Any) -> None:
            tracker = self._tracker(event.progress.id)
            if tracker is not None:
                lag = source_lag(event.progress)
                if lag is not None:
                    tracker.update(lag=lag)

        def onQueryTerminated(self, event: Any) -> None:
            tracker = self._tracker(event.id)
            if tracker is not None:
                _terminated(tracker, _one_line(Exception(event.exception))
                            if event.exception else None)

    return Listener


def _new_progress_listener() -> Any:
    return _make_listener_class()()
