"""The sparkfs marker in a stream's checkpoint directory: which feature group (name,
version, schema) the checkpoint belongs to, and the stream's stable id.

The stream id is made once, when the checkpoint is new, and read back on every restart
from that checkpoint. Micro-batch run ids are ``stream-{stream_id}-{batch_id}``: a batch
Spark replays after a crash carries the same run id, so its Delta app transaction makes the
replay a no-op. (Spark's own query id is stable too, but it is not visible inside
``foreachBatch``; the run id of a query changes on every restart.)

A checkpoint written for another group, group version or schema is refused before the
query starts: resuming it would apply another stream's Kafka offsets to this group.

>>> import tempfile
>>> from sparkfs.definitions import Entity, Field, FeatureGroup
>>> g = FeatureGroup(name="w", entities=[Entity("a", join_keys=["k"])], event_time="t",
...                  schema=[Field("x", "double")])
>>> ck = tempfile.mkdtemp()
>>> first = claim(ck, g, "files:/in")
>>> claim(ck, g, "files:/in") == first
True
>>> other = FeatureGroup(name="w", entities=[Entity("a", join_keys=["k"])], event_time="t",
...                      schema=[Field("x", "long")])
>>> claim(ck, other, "files:/in")
Traceback (most recent call last):
...
sparkfs.errors.ValidationError: checkpoint ... belongs to feature group 'w' v1 with ...
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from ..definitions import FeatureGroup
from ..errors import ValidationError

MARKER = "_sparkfs_stream.json"


def schema_fingerprint(group: FeatureGroup) -> str:
    """A short hash of what a stream writes: join keys, event time and stored fields."""
    spec = [sorted(group.key_dtypes.items()), group.event_time,
            [(f.name, f.dtype) for f in group.stored_fields]]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]


def _fs_and_path(checkpoint: str):
    from pyarrow import fs as pafs

    if "://" in checkpoint:
        return pafs.FileSystem.from_uri(checkpoint)
    import os

    return pafs.LocalFileSystem(), os.path.abspath(checkpoint)


def read_marker(checkpoint: str) -> dict[str, Any] | None:
    """The marker of ``checkpoint``, or None for a new checkpoint."""
    from pyarrow import fs as pafs

    filesystem, path = _fs_and_path(checkpoint)
    info = filesystem.get_file_info(f"{path}/{MARKER}")
    if info.type == pafs.FileType.NotFound:
        return None
    with filesystem.open_input_stream(f"{path}/{MARKER}") as f:
        return json.loads(f.read().decode())


def claim(checkpoint: str, group: FeatureGroup, source: str) -> str:
    """Check (or write, for a new checkpoint) the marker; returns the stream id."""
    fingerprint = schema_fingerprint(group)
    marker = read_marker(checkpoint)
    if marker is not None:
        if (marker.get("group"), marker.get("group_version")) != (group.name, group.version):
            raise ValidationError(
                f"checkpoint {checkpoint!r} belongs to feature group {marker.get('group')!r} "
                f"v{marker.get('group_version')}, not {group.name!r} v{group.version}; give this "
                "stream its own checkpoint directory (one checkpoint per stream)")
        if marker.get("schema") != fingerprint:
            raise ValidationError(
                f"checkpoint {checkpoint!r} belongs to feature group {group.name!r} "
                f"v{group.version} with another schema ({marker.get('schema')} != {fingerprint}); "
                "give this stream a new checkpoint directory, or delete that one to start over "
                "from the source's beginning")
        return str(marker["stream_id"])
    stream_id = uuid.uuid4().hex[:16]
    filesystem, path = _fs_and_path(checkpoint)
    filesystem.create_dir(path, recursive=True)
    body = json.dumps({"group": group.name, "group_version": group.version,
                       "schema": fingerprint, "stream_id": stream_id, "source": source})
    tmp = f"{path}/{MARKER}.{uuid.uuid4().hex[:8]}.tmp"
    with filesystem.open_output_stream(tmp) as f:
        f.write(body.encode())
    filesystem.move(tmp, f"{path}/{MARKER}")
    return stream_id
