"""OpenLineage run events for sparkfs jobs, so Marquez, DataHub and the like can show them.

Each job sparkfs recorded becomes one ``COMPLETE`` ``RunEvent`` (built with the
``openlineage-python`` client's own classes, which validate run ids, times and schema URLs):

==========================  =================================  ==============================
job name                    inputs                             outputs
==========================  =================================  ==============================
``ingest.<group>@<v>``      (the source is not known)          the group's Delta table, with
                                                               the committed Delta version
``training_set.<name>``     each group's Delta table at the    the training set version
                            Delta version the manifest pinned
``log_model.<model>``       the training set version           the model version
``deploy.<deployment>``     the model version                  the deployment's evaluation
                                                               log
==========================  =================================  ==============================

Run ids are UUIDv5 of the sparkfs node id, so emitting the same history twice sends the
same run ids (receivers treat them as updates, not new runs). Datasets are named
``<kind>/<name>@<version>`` in the namespace given (default ``"sparkfs"``).

``emit(events, transport)`` sends them with the client's transport: ``{"type": "file",
"log_file_path": ..., "append": True}`` (one JSON event per line) or ``{"type": "http",
"url": ...}`` (POST to ``<url>/api/v1/lineage``); any failure raises
``LineageExportError`` naming the transport and how many events were sent before it.

>>> from sparkfs.lineage import Graph
>>> g = Graph()
>>> g.add_node("run:w@1/r1", "run", "r1", None, group="w@1", delta_version=1,
...            committed_at="2026-01-01T00:00:00+00:00")
>>> g.add_node("delta:w@1:v1", "delta", "w@1", 1, group="w", group_version=1)
>>> g.add_edge("run:w@1/r1", "delta:w@1:v1", "wrote")
>>> [e.job.name for e in run_events(g)]
['ingest.w@1']
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import LineageExportError
from . import Graph

__all__ = ["LineageExportError", "emit", "run_events"]

PRODUCER = "https://github.com/sparkfs/sparkfs"
_NS = uuid.UUID("6f1d1a52-58a3-4c1e-9c55-3b0e0c6b2a11")


def _run_id(node_id: str) -> str:
    return str(uuid.uuid5(_NS, node_id))


def _time(value: Any) -> str:
    if value:
        return str(value)
    return dt.datetime.now(dt.UTC).isoformat()


def run_events(graph: Graph, namespace: str = "sparkfs") -> list[Any]:
    """One ``COMPLETE`` ``openlineage.client.event_v2.RunEvent`` per recorded job in
    ``graph`` (ingest runs, training sets, model versions, deployments), oldest first."""
    from .._extras import require

    require("openlineage.client", extra="monitoring", what="OpenLineage events")
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent
    from openlineage.client.event_v2 import RunState as EventType
    from openlineage.client.facet_v2 import dataset_version_dataset

    def dataset(kind: str, label: str, version: Any = None, output: bool = False) -> Any:
        facets: dict[str, Any] = {}
        if version is not None:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=str(version))
        cls = OutputDataset if output else InputDataset
        return cls(namespace=namespace, name=f"{kind}/{label}", facets=facets)

    events: list[tuple[str, Any]] = []
    for nid, n in sorted(graph.nodes.items()):
        inputs: list[Any] = []
        outputs: list[Any] = []
        if n.kind == "run":
            job = f"ingest.{n.attrs['group']}"
            when = n.attrs.get("committed_at")
            outputs = [dataset("feature_group", n.attrs["group"], n.attrs.get("delta_version"),
                               output=True)]
        elif n.kind == "training_set":
            job = f"training_set.{n.name}"
            when = n.attrs.get("created_at")
            inputs = [dataset("feature_group", label, v)
                      for label, v in sorted(n.attrs.get("delta_versions", {}).items())]
            outputs = [dataset("training_set", f"{n.name}@{n.version}", n.version, output=True)]
        elif n.kind == "model":
            job = f"log_model.{n.name}"
            when = None
            ts = n.attrs.get("training_set")
            inputs = [dataset("training_set", ts)] if ts else []
            outputs = [dataset("model", f"{n.name}@{n.version}", n.version, output=True)]
        elif n.kind == "deployment":
            job = f"deploy.{n.name}"
            when = n.attrs.get("created_at")
            inputs = [dataset("model", n.attrs["model"])]
            outputs = [dataset("evaluation_log", n.name, n.attrs.get("revision"), output=True)]
        else:
            continue
        t = _time(when)
        events.append((t, RunEvent(eventType=EventType.COMPLETE, eventTime=t,
                                   run=Run(runId=_run_id(nid)),
                                   job=Job(namespace=namespace, name=job),
                                   producer=PRODUCER, inputs=inputs, outputs=outputs)))
    return [e for _, e in sorted(events, key=lambda p: p[0])]


def emit(events: Sequence[Any], transport: Mapping[str, Any]) -> int:
    """Send ``events`` with the OpenLineage client's ``transport`` config (see the module
    docstring); returns how many were sent."""
    from .._extras import require

    require("openlineage.client", extra="monitoring", what="OpenLineage events")
    from openlineage.client import OpenLineageClient

    kind = transport.get("type") if isinstance(transport, Mapping) else None
    if kind not in ("file", "http", "console"):
        raise LineageExportError(f"OpenLineage transport {transport!r}: give type 'file' (with "
                                 "log_file_path) or 'http' (with url)")
    try:
        client = OpenLineageClient(config={"transport": dict(transport)})
    except Exception as exc:
        raise LineageExportError(f"OpenLineage transport {dict(transport)}: {exc}") from None
    sent = 0
    try:
        for e in events:
            client.emit(e)
            sent += 1
    except Exception as exc:
        raise LineageExportError(
            f"OpenLineage {kind} transport failed after {sent} of {len(events)} event(s): "
            f"{type(exc).__name__}: {exc}") from None
    finally:
        client.close(5.0)
    return sent
