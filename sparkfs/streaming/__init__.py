"""Streaming feature pipelines: Spark Structured Streaming into Delta and the online
store, with the batch guarantees kept per micro-batch.

- ``ingest_stream`` (``fs.ingest_stream``): every micro-batch is one ``fs.ingest`` with a
  run id derived from the checkpoint's stream id and the batch id, so a batch replayed
  after a crash is a no-op; then the online store catches up (newest event wins).
- Sources: ``kafka_source``, ``files_source``, ``delta_source``; unparseable payloads are
  quarantined with their payload and reason.
- ``list_streams`` / ``sparkfs streams``: the status each stream's driver keeps on disk
  (``record_termination`` writes a stopped query's final state).

Modules: ``parse`` (payload -> columns + reason), ``checkpoint`` (marker, stream id),
``ingest`` (the query and its batch function), ``sources``, ``status`` (no pyspark).

>>> from sparkfs.streaming import parse_trigger
>>> parse_trigger("2 seconds")
{'processingTime': '2 seconds'}
"""

from .checkpoint import claim, schema_fingerprint
from .ingest import (
    MicroBatchWriter,
    ingest_stream,
    parse_trigger,
    record_termination,
    stream_error,
)
from .sources import delta_source, files_source, kafka_source
from .status import StreamStatus, list_streams, status_dir

__all__ = ["MicroBatchWriter", "StreamStatus", "claim", "delta_source", "files_source",
           "ingest_stream", "kafka_source", "list_streams", "parse_trigger",
           "record_termination", "schema_fingerprint", "status_dir", "stream_error"]
