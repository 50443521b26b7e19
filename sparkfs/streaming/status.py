"""Status files of running stream queries: one small JSON file per stream under
``{data_dir}/streams/``, written by the driver after every micro-batch and on every
progress event, read by ``sparkfs streams`` from any process. No pyspark here.

A status is "running" while its driver process is alive; a driver that died without
saying so (SIGKILL) is shown as "dead" with its last numbers.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> s = StreamStatus(stream_id="s1", group="weather", group_version=1, checkpoint="/ck",
...                  source="files:/in", pid=os.getpid())
>>> s.write(d)
>>> [(x.stream_id, x.state, x.alive) for x in list_streams(d)]
[('s1', 'running', True)]
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

STATUS_DIR = "streams"


def status_dir(data_dir: str) -> str:
    """Where the stream status files of the store whose ``data_dir`` is given live."""
    return os.path.join(data_dir, STATUS_DIR)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class StreamStatus:
    """The last known state of one stream (one checkpoint), as ``sparkfs streams`` shows it.

    ``lag`` is the source's offsets behind its latest (Kafka: the sum over partitions,
    from the query's progress); ``rows_per_s`` is the rate of the last micro-batch;
    ``last_event_time`` the newest event time of the last micro-batch and ``freshness_s``
    how old that event was when the batch was readable online.

    >>> StreamStatus(stream_id="x", group="g", group_version=1, checkpoint="c",
    ...              source="kafka:t").state
    'running'
    """

    stream_id: str
    group: str
    group_version: int
    checkpoint: str
    source: str
    query_id: str | None = None
    pid: int = 0
    host: str = ""
    state: str = "running"  # running | stopped | failed
    started_at: str = field(default_factory=now_iso)
    last_batch_id: int | None = None
    last_batch_time: str | None = None
    last_batch_rows: int = 0
    last_batch_unparseable: int = 0
    rows_total: int = 0
    unparseable_total: int = 0
    rows_per_s: float | None = None
    lag: int | None = None
    last_event_time: str | None = None
    freshness_s: float | None = None
    last_error: str | None = None

    @property
    def alive(self) -> bool:
        """True when the driver that writes this status still runs (same host only)."""
        if self.host and self.host != _host():
            return self.state == "running"
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, PermissionError, OverflowError):
            return False
        return self.pid > 0

    def shown_state(self) -> str:
        """``state``, or ``dead`` for a running stream whose driver is gone."""
        return "dead" if self.state == "running" and not self.alive else self.state

    def write(self, directory: str) -> None:
        """Atomically replace this stream's status file in ``directory``."""
        os.makedirs(directory, exist_ok=True)
        if not self.host:
            self.host = _host()
        path = os.path.join(directory, f"{self.stream_id}.json")
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f)
        os.replace(tmp, path)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.shown_state()
        return out


def list_streams(directory: str) -> list[StreamStatus]:
    """Every stream status in ``directory`` (empty when no stream ever ran), by start time."""
    if not os.path.isdir(directory):
        return []
    known = {f.name for f in fields(StreamStatus)}
    out = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name)) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue  # being replaced right now, or not ours
        out.append(StreamStatus(**{k: v for k, v in data.items() if k in known}))
    return sorted(out, key=lambda s: s.started_at)


def _host() -> str:
    import socket

    return socket.gethostname()
