"""HTTP push of request-time events, and stream metrics, added to the online service by
``register(app, fs)``.

``POST /push/{group}``
    ``{"rows": [{"user_id": "u1", "ts": "2026-01-01T00:00:00Z", "clicks": 3}],
    "to": "online_and_offline"}`` writes the rows to the online store at once and queues them
    for the group's Delta history (``fs.push``: batched asynchronous commits, flushed when the
    service shuts down). ``to`` is ``online``, ``offline`` or ``online_and_offline`` (default).
    Returns ``{"group", "group_version", "rows", "to", "offline_pending"}``. The rows are
    checked whole, as ``fs.push`` checks them: every join key, the event time and every input
    field present, castable without loss, no null key or event time; a refused body writes
    nothing (422 naming the column). Event times are ISO-8601 strings (UTC unless an offset is
    given) or epoch seconds, as in stream payloads; ``"NaN"``/``"Infinity"`` strings are
    those floats for float fields (JSON has no NaN), ``null`` a missing value. More rows than
    ``serving.max_batch_size`` -> 413; unknown group -> 404; a key without scope ``push`` (or
    ``push:<group>``) -> 403.

``GET /metrics`` (the service's Prometheus registry) gains, per stream of this store
(``sparkfs streams``): ``sparkfs_stream_rows_total``, ``sparkfs_stream_unparseable_total``,
``sparkfs_stream_lag_offsets``, ``sparkfs_stream_rows_per_second``,
``sparkfs_stream_last_batch_id``, ``sparkfs_stream_last_batch_timestamp_seconds``,
``sparkfs_stream_last_event_timestamp_seconds``, ``sparkfs_stream_freshness_seconds`` (how
old the newest event of the last batch was when that batch was readable online) and
``sparkfs_stream_up`` (1 while its driver runs); and this process's push counters
(``sparkfs_push_rows_total`` by group and target, ``sparkfs_push_offline_*``).

>>> import tempfile
>>> from fastapi.testclient import TestClient
>>> from sparkfs import Entity, FeatureGroup, FeatureStore, Field
>>> from sparkfs.serving.app import create_app  # calls register(app, fs)
>>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
>>> _ = fs.apply([FeatureGroup("clicks", [Entity("user", join_keys=["user_id"])], "ts",
...                            [Field("clicks", "long")], online=True)])
>>> client = TestClient(create_app(fs))
>>> r = client.post("/push/clicks", json={"rows": [
...     {"user_id": "u1", "ts": "2026-01-01T00:00:00Z", "clicks": 3}]})
>>> r.status_code, r.json()["rows"]
(200, 1)
>>> client.post("/push/nope", json={"rows": [{"x": 1}]}).status_code
404
>>> fs.close()
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from typing import Any, Literal, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ..errors import BatchTooLargeError, ValidationError
from .encoding import json_response
from .routes import Caller
from .schemas import ERROR_RESPONSES

_FLOATS = {"NaN": math.nan, "nan": math.nan, "Infinity": math.inf, "-Infinity": -math.inf,
           "inf": math.inf, "-inf": -math.inf}


class PushRequest(BaseModel):
    """Body of ``POST /push/{group}``.

    >>> PushRequest(rows=[{"k": 1}]).to
    'online_and_offline'
    """

    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, Any]] = Field(min_length=1, description="one object per event: join "
                                       "keys, event time and input fields")
    to: Literal["online", "offline", "online_and_offline"] = Field(
        default="online_and_offline", description="where the rows go")


class PushResponse(BaseModel):
    group: str
    group_version: int
    rows: int
    to: str
    offline_pending: int


def json_rows(group: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with JSON's stand-ins made values: epoch-second event times as UTC
    ISO-8601 text, ``"NaN"``/``"Infinity"`` strings of float fields as floats.

    >>> from sparkfs import Entity, FeatureGroup, Field
    >>> g = FeatureGroup("c", [Entity("u", join_keys=["k"])], "ts", [Field("x", "double")])
    >>> json_rows(g, [{"k": "a", "ts": 0, "x": "NaN"}])[0]["ts"]
    '1970-01-01T00:00:00+00:00'
    """
    floats = {f.name for f in group.input_fields if f.dtype in ("double", "float")}
    et = group.event_time
    out = []
    for row in rows:
        row = dict(row)
        t = row.get(et)
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            try:
                row[et] = dt.datetime.fromtimestamp(t, dt.UTC).isoformat()
            except (OverflowError, OSError, ValueError):
                raise ValidationError(f"push to feature group {group.name!r}: event time {et!r} "
                                      f"= {t!r} is not a valid epoch second; nothing was written"
                                      ) from None
        for name in floats:
            v = row.get(name)
            if isinstance(v, str) and v in _FLOATS:
                row[name] = _FLOATS[v]
        out.append(row)
    return out


class PushService(Protocol):
    """What the push route and its metrics use: a ``FeatureStore`` is one (it owns the
    asynchronous Delta writer behind ``push``, flushed by ``flush_pushes``).

    >>> from sparkfs import FeatureStore
    >>> isinstance(FeatureStore, type) and all(hasattr(FeatureStore, m) for m in
    ...     ("get_feature_group", "push", "push_stats", "flush_pushes", "list_streams"))
    True
    """

    def get_feature_group(self, name: Any, version: int | None = None) -> Any: ...

    def push(self, group: Any, rows: Any, to: str = ..., version: int | None = None) -> int: ...

    def push_stats(self) -> dict: ...

    def flush_pushes(self, close: bool = False, timeout: float = ...) -> None: ...

    def list_streams(self) -> list: ...


class PushCounters:
    """Rows pushed over HTTP by this process, per (group, target); refused requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows: dict[tuple[str, str], int] = {}
        self.refused: dict[str, int] = {}

    def add(self, group: str, to: str, n: int) -> None:
        with self._lock:
            self.rows[(group, to)] = self.rows.get((group, to), 0) + n

    def refuse(self, group: str) -> None:
        with self._lock:
            self.refused[group] = self.refused.get(group, 0) + 1


def register(app: FastAPI, fs: PushService) -> None:
    """Add ``POST /push/{group}`` to ``app`` and the stream and push metrics to its
    ``/metrics`` registry (``app.state.metrics_registry``, when the service has one),
    pushing through ``fs`` (the service's ``FeatureStore``; see ``PushService``)."""
    counters = PushCounters()

    @app.post("/push/{group}", response_model=PushResponse, responses=ERROR_RESPONSES,
              tags=["push"], summary="Write request-time events online at once and to the "
              "group's Delta history in batched commits")
    async def push(group: str, body: PushRequest, request: Request, principal: Caller) -> Response:
        svc = request.app.state.service
        principal.require("push", group.partition("@")[0])
        if len(body.rows) > svc.max_batch_size:
            raise BatchTooLargeError(f"{len(body.rows)} rows exceed serving.max_batch_size="
                                     f"{svc.max_batch_size}; split the request")
        request.state.batch_size = len(body.rows)

        def answer() -> dict:
            g = fs.get_feature_group(group)
            try:
                n = fs.push(g, json_rows(g, body.rows), to=body.to)
            except ValidationError:
                counters.refuse(g.name)
                raise
            counters.add(g.name, body.to, n)
            stats = fs.push_stats()
            return {"group": g.name, "group_version": g.version, "rows": n, "to": body.to,
                    "offline_pending": stats["rows_queued"] - stats["rows_committed"]}

        return json_response(await svc.guard.run(answer))

    registry = getattr(app.state, "metrics_registry", None)
    if registry is not None:
        registry.register(StreamCollector(fs, counters))

    @app.on_event("shutdown")
    def _flush_pushes() -> None:  # queued Delta appends land before the process exits
        fs.flush_pushes(close=True)


class StreamCollector:
    """Prometheus collector: the streams of ``fs`` (their status files) and push counters."""

    def __init__(self, fs: PushService, counters: PushCounters | None = None) -> None:
        self.fs = fs
        self.counters = counters

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        labels = ["stream_id", "group", "source"]
        fams: dict[str, Any] = {
            "rows": CounterMetricFamily("sparkfs_stream_rows", "Rows a stream committed", labels=labels),
            "bad": CounterMetricFamily("sparkfs_stream_unparseable", "Payloads a stream quarantined "
                                       "as unparseable", labels=labels),
            "lag": GaugeMetricFamily("sparkfs_stream_lag_offsets", "Kafka offsets behind the "
                                     "latest, summed over partitions", labels=labels),
            "rate": GaugeMetricFamily("sparkfs_stream_rows_per_second", "Rows/s of the last "
                                      "micro-batch", labels=labels),
            "batch": GaugeMetricFamily("sparkfs_stream_last_batch_id", "Id of the last "
                                       "micro-batch", labels=labels),
            "batch_t": GaugeMetricFamily("sparkfs_stream_last_batch_timestamp_seconds", "When the "
                                         "last micro-batch finished", labels=labels),
            "event_t": GaugeMetricFamily("sparkfs_stream_last_event_timestamp_seconds", "Newest "
                                         "event time of the last micro-batch", labels=labels),
            "fresh": GaugeMetricFamily("sparkfs_stream_freshness_seconds", "Age of the newest "
                                       "event of the last micro-batch when it was readable "
                                       "online", labels=labels),
            "up": GaugeMetricFamily("sparkfs_stream_up", "1 while the stream's driver runs",
                                    labels=labels),
        }
        for s in self.fs.list_streams():
            lv = [s.stream_id, f"{s.group}@{s.group_version}", s.source]
            fams["rows"].add_metric(lv, s.rows_total)
            fams["bad"].add_metric(lv, s.unparseable_total)
            fams["up"].add_metric(lv, 1 if s.shown_state() == "running" else 0)
            for key, value in (("lag", s.lag), ("rate", s.rows_per_s), ("batch", s.last_batch_id),
                               ("batch_t", _epoch(s.last_batch_time)),
                               ("event_t", _epoch(s.last_event_time)),
                               ("fresh", s.freshness_s)):
                if value is not None:
                    fams[key].add_metric(lv, float(value))
        yield from fams.values()
        if self.counters is not None:
            rows = CounterMetricFamily("sparkfs_push_rows", "Rows pushed over HTTP by this "
                                       "process", labels=["group", "to"])
            for (group, to), n in sorted(self.counters.rows.items()):
                rows.add_metric([group, to], n)
            yield rows
            refused = CounterMetricFamily("sparkfs_push_refused_requests", "Push requests refused "
                                          "as invalid (nothing written)", labels=["group"])
            for group, n in sorted(self.counters.refused.items()):
                refused.add_metric([group], n)
            yield refused
        st = self.fs.push_stats()
        committed = CounterMetricFamily("sparkfs_push_offline_rows_committed", "Pushed rows "
                                        "committed to Delta by this process")
        committed.add_metric([], st["rows_committed"])
        yield committed
        pending = GaugeMetricFamily("sparkfs_push_offline_rows_pending", "Pushed rows waiting "
                                    "for their Delta commit")
        pending.add_metric([], st["rows_queued"] - st["rows_committed"])
        yield pending
        failed = CounterMetricFamily("sparkfs_push_offline_failed_attempts", "Delta commit "
                                     "attempts of pushed rows that failed (each is retried)")
        failed.add_metric([], st["failed_attempts"])
        yield failed


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None

