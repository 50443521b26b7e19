"""The run log of a stream: one record per micro-batch, stored in the registry like the
batch path's validation reports and statistics (kind ``stream_batch``, name = ``stream_`` + the stream id,
version = the batch id), readable without Spark.

A record holds what the micro-batch's ``fs.ingest`` did (run id, Delta version, rows
input/written/skipped/quarantined, ``noop`` for a replay), the payloads quarantined as
unparseable, the newest and oldest event time, the validation status of the batch (the
report ``fs.ingest`` stored for the same run id, when the group has expectations), the
Delta version whose statistics were recorded, the online catch-up, and the source offsets
the batch covered, read from the query's own offset log in the checkpoint
(``offsets/{batch_id}``; the start is the previous batch's end, or for batch 0 the
Kafka source's initial offsets). Kafka offsets are ``{topic: {partition: offset}}``,
end-exclusive as Spark writes them.

The first record of a batch id is kept: a batch Spark replays after a crash is a no-op in
Delta, and its record is not overwritten by the replay's empty counts.

>>> import tempfile, os
>>> ck = tempfile.mkdtemp(); os.makedirs(f"{ck}/offsets")
>>> _ = open(f"{ck}/offsets/0", "w").write('v1\\n{"batchWatermarkMs":0}\\n{"t":{"0":5}}\\n')
>>> _ = open(f"{ck}/offsets/1", "w").write('v1\\n{"batchWatermarkMs":0}\\n{"t":{"0":9}}\\n')
>>> batch_offsets(ck, 1)
{'start': [{'t': {'0': 5}}], 'end': [{'t': {'0': 9}}]}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .checkpoint import _fs_and_path

KIND = "stream_batch"


def _name(stream_id: str) -> str:
    return f"stream_{stream_id}"  # registry names start with a letter


@dataclass
class StreamBatch:
    """One micro-batch of one stream (see the module docstring).

    >>> StreamBatch("s1", "clicks", 1, 0, "stream-s1-0").rows_written
    0
    """

    stream_id: str
    group: str
    group_version: int
    batch_id: int
    run_id: str
    delta_version: int | None = None
    noop: bool = False
    rows_input: int = 0
    rows_written: int = 0
    rows_skipped: int = 0
    rows_quarantined: int = 0
    rows_unparseable: int = 0
    min_event_time: str | None = None
    max_event_time: str | None = None
    validation: str | None = None  # passed | quarantined | refused (None: no expectations)
    validation_seq: int | None = None
    statistics_version: int | None = None
    materialized_keys: int | None = None
    offsets: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    #: seconds per phase inside the batch function: offsets (checkpoint's offset log),
    #: read (source -> driver, parsed by Spark), split (parsed / unparseable), ingest
    #: (for a batch kept in Spark: with its read and parse), quarantine, results
    #: (registry), online
    phases_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StreamBatch:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _read_lines(checkpoint: str, rel: str) -> list[str] | None:
    from pyarrow import fs as pafs

    filesystem, path = _fs_and_path(checkpoint)
    target = f"{path}/{rel}"
    if filesystem.get_file_info(target).type == pafs.FileType.NotFound:
        return None
    with filesystem.open_input_stream(target) as f:
        return f.read().decode().splitlines()


def _json_or_none(text: str) -> Any:
    if not text or text == "-":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _kafka_shaped(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(p, dict) and all(isinstance(o, int) for o in p.values()) for p in value.values())


def batch_offsets(checkpoint: str, batch_id: int) -> dict[str, Any]:
    """``{"start": [...], "end": [...]}``: per source of the query, the offsets batch
    ``batch_id`` read from and up to, from the checkpoint's offset log ({} when absent)."""
    end_lines = _read_lines(checkpoint, f"offsets/{batch_id}")
    if end_lines is None or len(end_lines) < 3:
        return {}
    end = [_json_or_none(x) for x in end_lines[2:]]
    start: list[Any] = [None] * len(end)
    prev = _read_lines(checkpoint, f"offsets/{batch_id - 1}") if batch_id > 0 else None
    if prev is not None and len(prev) >= 3:
        start = [_json_or_none(x) for x in prev[2:]]
    elif batch_id == 0:
        for i, e in enumerate(end):
            initial = _read_lines(checkpoint, f"sources/{i}/0") if _kafka_shaped(e) else None
            if initial:
                value = _json_or_none(initial[-1])
                start[i] = value if _kafka_shaped(value) else None
    return {"start": start, "end": end}


def kafka_rows(offsets: dict[str, Any]) -> int | None:
    """Messages a batch covers by its offsets (``batch_offsets``), when every source is
    Kafka and every partition has a known start; else None (unknown without a Spark job).
    An upper bound: compaction and transaction markers leave gaps.

    >>> kafka_rows({"start": [{"t": {"0": 5, "1": 0}}], "end": [{"t": {"0": 9, "1": 3}}]})
    7
    >>> kafka_rows({"start": [None], "end": [{"t": {"0": 9}}]}) is None
    True
    """
    starts, ends = offsets.get("start") or [], offsets.get("end") or []
    if not ends or len(starts) != len(ends):
        return None
    total = 0
    for start, end in zip(starts, ends):
        if not (_kafka_shaped(start) and _kafka_shaped(end)):
            return None
        for topic, parts in end.items():
            for part, off in parts.items():
                begin = (start.get(topic) or {}).get(part)
                if begin is None or begin < 0 or off < begin:
                    return None
                total += off - begin
    return total


def record_batch(registry: Any, batch: StreamBatch) -> bool:
    """Store ``batch`` unless its batch id already has a record (a replay); True if stored.
    One registry round trip: the put itself refuses an existing record."""
    from ..errors import RegistryError

    try:
        registry.put(KIND, _name(batch.stream_id), batch.batch_id, batch.to_dict(), replace=False)
    except RegistryError:
        return False
    return True


def stream_batches(registry: Any, stream_id: str) -> list[StreamBatch]:
    """Every recorded micro-batch of the stream ``stream_id``, by batch id."""
    versions = registry.versions(KIND, _name(stream_id))
    out = []
    for v in versions:
        spec = registry.get(KIND, _name(stream_id), v)
        if spec is not None:
            out.append(StreamBatch.from_dict(spec))
    return out
