"""``explain_prediction``: "why did the model do that?" for one logged prediction.

Given a request id (``PredictionResult.request_id``, the ``request_id`` column of a
deployment's evaluation log), it reads the request's rows from the evaluation log (Arrow,
no Spark, so a null and a NaN stay distinct) and puts next to each served value what the
store recorded about it:

- the deployment revision, model version (and its MLflow run), view and training set that
  served it, with the training set's manifest (Delta version of each group it was built
  from, transform fingerprints, code version);
- per model input column: the value, its status and event time as served; its source (a
  group label, or ``on_demand:<transform>``); ``delta_version``: the newest Delta version of
  the group committed when the request was served; ``newest_offline_event_time``: the newest
  event time of the key that offline history held then (event time and commit time <= the
  served time), and ``online``: how the served value relates to it —

  - ``current``: the served event time is that newest one (materialization had caught up);
  - ``lagging``: offline knew a newer row than the one served (a materialization lagged),
    or served nothing while offline had a row;
  - ``expired``: the online store marked the value expired (its group's ttl);
  - ``ahead_of_offline``: the served row is newer than anything committed offline then
    (pushed online first);
  - ``absent``: neither online nor offline had a row for the key;
  - ``on_demand``: computed at request time by a transform;
  - ``not_online``: batch or table scoring read the features point in time from Delta; the
    ``delta_version`` is then the one that scoring recorded (``data_versions``) rather
    than the newest at the logged time;

- the transforms involved with their fingerprint in the training set and the one
  registered now (``changed`` when they differ: the served code is not the trained code).

A request id no deployment logged -> ``NotFoundError`` naming it, with close matches.

>>> _freshness("ok", None, None) , _freshness("ok", 2, 1), _freshness("expired", 1, 1)
('absent', 'ahead_of_offline', 'expired')
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import Catalog
    from ..inference import Inference
    from ..models import ModelRegistry
    from ..offline.tables import OfflineStore
    from . import Graph

__all__ = ["Explanation", "add_request_node", "explain_prediction"]


@dataclass
class Explanation:
    """The answer of ``fs.explain_prediction``: the request (``request_id``, ``time`` it was
    served, ``scoring_path``), what served it (``deployment`` / ``revision``, ``model``
    name@version, ``mlflow_run_id``, ``view``, ``training_set`` and ``training``: the
    manifest's ``created_at``, ``delta_versions``, ``transforms``, ``on_demand``,
    ``code_version``), ``rows`` (one per entity row: ``row``, ``entity``, ``request_data``,
    ``prediction``, ``error``, ``features``: column -> value, status, event_time, source,
    delta_version, trained_delta_version, newest_offline_event_time, online, transform),
    ``transforms`` (name -> training and served fingerprint, changed) and ``warnings``.

    ``to_dict()`` / ``to_json()`` are JSON-able (NaN as ``"NaN"``, times as ISO strings);
    ``str()`` is a readable summary.
    """

    request_id: str
    deployment: str
    revision: int
    time: dt.datetime
    scoring_path: str
    model: str
    mlflow_run_id: str | None
    view: str | None
    training_set: str
    training: dict
    rows: list[dict] = field(default_factory=list)
    transforms: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def value(self, column: str, row: int = 0) -> Any:
        """The value of model input ``column`` served for entity row ``row``."""
        feats = self.rows[row]["features"]
        if column not in feats:
            raise NotFoundError(f"request {self.request_id} has no column {column!r}; "
                                f"columns: {sorted(feats)}")
        return feats[column]["value"]

    def to_dict(self) -> dict:
        return _jsonable({
            "request_id": self.request_id, "deployment": self.deployment,
            "revision": self.revision, "time": self.time, "scoring_path": self.scoring_path,
            "model": self.model, "mlflow_run_id": self.mlflow_run_id, "view": self.view,
            "training_set": self.training_set, "training": self.training, "rows": self.rows,
            "transforms": self.transforms, "warnings": self.warnings})

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        lines = [f"request {self.request_id}: deployment {self.deployment} (revision "
                 f"{self.revision}), {self.scoring_path}, served {_iso(self.time)}",
                 f"  model {self.model} (MLflow run {self.mlflow_run_id or '-'}), view "
                 f"{self.view or '-'}, training set {self.training_set} (Delta versions "
                 f"{self.training.get('delta_versions') or {}}, code "
                 f"{self.training.get('code_version') or '-'})"]
        for r in self.rows:
            lines.append(f"  row {r['row']} {json.dumps(r['entity'], default=str)}: prediction "
                         f"{json.dumps(_jsonable(r['prediction']))}"
                         + (f" error {r['error']}" if r["error"] else ""))
            for col, f in r["features"].items():
                where = (f"{f['source']} Delta v{f['delta_version']} (trained on "
                         f"v{f['trained_delta_version']})" if f["delta_version"] is not None
                         else f["source"])
                lines.append(f"    {col} = {json.dumps(_jsonable(f['value']))} [{f['status']}, "
                             f"event time {_iso(f['event_time']) or '-'}] from {where}, "
                             f"online {f['online']}")
        for name, t in sorted(self.transforms.items()):
            lines.append(f"  transform {name}: trained {t['training']}, served {t['served']}"
                         + (" CHANGED" if t["changed"] else ""))
        return "\n".join(lines + [f"  warning: {w}" for w in self.warnings])


def _iso(t: Any) -> str | None:
    return t.isoformat() if isinstance(t, dt.datetime | dt.date) else t


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, float) and math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return v


def _utc(t: Any) -> dt.datetime | None:
    if t is None:
        return None
    if isinstance(t, dt.datetime) and t.tzinfo is None:
        return t.replace(tzinfo=dt.UTC)
    return t


def _freshness(status: str | None, served: Any, known: Any) -> str:
    if status == "expired":
        return "expired"
    if served is None and known is None:
        return "absent"
    if known is None:
        return "ahead_of_offline"
    if served is None or served < known:
        return "lagging"
    return "current" if served == known else "ahead_of_offline"


def _find(inference: Inference, offline: OfflineStore, request_id: str) -> tuple[Any, pa.Table]:
    """(deployment, the request's log rows) of the deployment that logged ``request_id``."""
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    from ..offline.tables import arrow_dataset

    if not isinstance(request_id, str) or not request_id.strip():
        raise NotFoundError(f"request id must be a non-empty string, got {request_id!r}")
    inference.flush()
    options = dict(offline.storage_options)
    deployments = sorted(inference.deployments.list(), key=lambda d: d.name)
    seen: list[str] = []
    for d in deployments:
        try:
            data = arrow_dataset(DeltaTable(d.log_path, storage_options=options))
        except Exception:  # a deployment that never logged (its table not yet created)
            continue
        rows = data.to_table(filter=ds.field("request_id") == request_id)
        if rows.num_rows:
            return d, rows.sort_by("row")
        seen.extend(str(x) for x in data.to_table(columns=["request_id"])
                    .column("request_id").unique().to_pylist())
    close = difflib.get_close_matches(request_id, seen, n=5, cutoff=0.6)
    names = [d.name for d in deployments]
    raise NotFoundError(
        f"request id {request_id!r} was not logged by any deployment "
        f"({names or 'none (create one with fs.deploy)'})"
        + (f"; close matches: {close}" if close else "")
        + " (requests not sampled into the evaluation log cannot be explained)")


def explain_prediction(catalog: Catalog, offline: OfflineStore, request_id: str, *,
                       inference: Inference, models: ModelRegistry) -> Explanation:
    """Explain the prediction logged under ``request_id`` (see the module docstring):
    definitions from ``catalog``, Delta commits from ``offline``, the evaluation log and
    deployments from ``inference``, the model's run from ``models``.

    >>> import tempfile, os
    >>> from sparkfs.catalog import Catalog
    >>> from sparkfs.offline.tables import OfflineStore
    >>> from sparkfs.registry import Registry
    >>> d = tempfile.mkdtemp()
    >>> catalog, offline = Catalog(Registry(os.path.join(d, "r.db"))), OfflineStore(d)
    >>> explain_prediction(catalog, offline, " ", inference=None, models=None)
    Traceback (most recent call last):
    ...
    sparkfs.errors.NotFoundError: request id must be a non-empty string, got ' '
    """
    from ..definitions import FeatureRef
    from ..monitoring.skew import _known_at_serving, _on_demand_columns, _spine, _spine_arrow

    d, log = _find(inference, offline, request_id)
    first = {c: log.column(c)[0].as_py() for c in
             ("deployment_revision", "model_name", "model_version", "view", "training_set",
              "time", "scoring_path")}
    warnings: list[str] = []
    revision = int(first["deployment_revision"])
    binding = d.binding
    if revision != d.revision:
        spec = next((s for s in catalog.registry.list("deployment")
                     if s["name"] == d.name and int(s["version"]) == revision), None)
        if spec is not None:
            from ..inference.deployments import Deployment

            binding = Deployment.from_spec(spec).binding
    label = str(first["training_set"])
    tname, _, tver = label.partition("@")
    manifest = _manifest(catalog, tname, int(tver) if tver else None)
    model = f"{first['model_name']}@{first['model_version']}"
    run_id = None
    try:
        run_id = models.get_version(first["model_name"], int(first["model_version"])).run_id
    except Exception as exc:  # MLflow gone or the version deleted: the log still answers
        warnings.append(f"model {model}: its MLflow record could not be read "
                        f"({type(exc).__name__}: {exc})")

    # transforms: trained fingerprint (manifest) vs registered now (the served code)
    transforms: dict[str, dict] = {}
    registered = {s["name"]: s.get("fingerprint") for s in catalog.registry.list("on_demand")}
    for name, fp in sorted((manifest.get("on_demand") or {}).items()):
        transforms[name] = {"kind": "on_demand", "training": fp, "served": registered.get(name),
                            "changed": registered.get(name) != fp}
    source: dict[str, dict] = {}
    for gr in manifest.get("groups", []):
        for c in gr.get("columns", []):
            source[c] = gr
        current = catalog.get_group(gr["name"], gr["version"])
        now_t = {t.name: getattr(t, "fingerprint", "") for t in current.transforms}
        for name in sorted(set(now_t) | set(gr.get("transforms") or {})):
            was = (gr.get("transforms") or {}).get(name)
            transforms[f"{gr['label']}:{name}"] = {"kind": "group", "training": was,
                                                   "served": now_t.get(name),
                                                   "changed": was != now_t.get(name)}
    od_columns = _on_demand_columns(manifest, binding)

    served_at = _utc(first["time"])
    _, entities = _spine(log)
    at_spine = _spine_arrow(log)
    recorded = log.column("data_versions")[0].as_py() if "data_versions" in log.column_names \
        else None
    pinned = json.loads(recorded).get("delta_versions", {}) if recorded else None
    per_group: dict[str, tuple[int | None, dict[int, Any]]] = {}
    for gr in manifest.get("groups", []):
        if pinned is not None:  # batch / table scoring: the Delta versions it read
            per_group[gr["label"]] = (pinned.get(gr["label"]), {})
            continue
        group = catalog.get_group(gr["name"], gr["version"])
        times = offline.commit_times(group)
        at = [v for v, t in times.items() if served_at is not None and t <= served_at]
        known = _known_at_serving(offline, group, gr["key_columns"], at_spine)
        newest = {i: t for i, t in enumerate(known.to_pylist()) if t is not None}
        per_group[gr["label"]] = (max(at) if at else None, newest)

    requests = log.column("request_data").to_pylist()
    preds = log.column("prediction_json").to_pylist()
    out_rows = []
    for i in range(log.num_rows):
        feats: dict[str, dict] = {}
        for ref, (col, dtype) in zip(binding.features, binding.columns):
            value = log.column(col)[i].as_py()
            status = log.column(f"{col}__status")[i].as_py()
            et = _utc(log.column(f"{col}__event_time")[i].as_py())
            gr = source.get(col)
            entry: dict[str, Any] = {"value": value, "dtype": dtype, "status": status,
                                     "event_time": et, "ref": ref}
            if gr is not None:
                version, newest = per_group[gr["label"]]
                known = _utc(newest.get(i))
                entry.update(source=gr["label"], delta_version=version,
                             trained_delta_version=gr["delta_version"],
                             newest_offline_event_time=known,
                             online=("not_online" if pinned is not None
                                     else _freshness(status, et, known)), transform=None)
            else:
                t = od_columns.get(col) or FeatureRef.parse(ref).group
                entry.update(source=f"on_demand:{t}", delta_version=None,
                             trained_delta_version=None, newest_offline_event_time=None,
                             online="on_demand", transform=t)
            feats[col] = entry
        pj = preds[i]
        out_rows.append({"row": int(log.column("row")[i].as_py()), "entity": entities[i],
                         "request_data": json.loads(requests[i]) if requests[i] else None,
                         "prediction": json.loads(pj) if pj is not None else None,
                         "error": log.column("error")[i].as_py(), "features": feats})
    return Explanation(
        request_id, d.name, revision, served_at or first["time"], str(first["scoring_path"]),
        model, run_id, first["view"], label,
        {"created_at": manifest.get("created_at"),
         "delta_versions": {gr["label"]: gr["delta_version"] for gr in manifest.get("groups", [])},
         "transforms": {gr["label"]: gr.get("transforms", {}) for gr in manifest.get("groups", [])},
         "on_demand": manifest.get("on_demand") or {},
         "code_version": manifest.get("code_version"), "spine": manifest.get("spine")},
        out_rows, transforms, warnings)


def _manifest(catalog: Catalog, name: str, version: int | None) -> dict:
    """The manifest a stored training set was registered with (its data is not needed)."""
    from ..training.sets import KIND

    spec = catalog.registry.get(KIND, name, version)
    if spec is None:
        what = f"training set {name!r}" + (f" version {version}" if version is not None else "")
        raise NotFoundError(f"{what}, which the prediction names, is not registered")
    return spec["manifest"]


def add_request_node(graph: "Graph", e: Explanation) -> str:
    """Add the request of ``e`` to ``graph`` as node ``request:<id>`` (kind ``request``) with
    edges from the model version that predicted it (``predicted``), the deployment that
    logged it (``logged``) and each group's Delta version current when it was served
    (``served_from``); returns the node id."""
    from . import _split_label, _versioned

    rid = f"request:{e.request_id}"
    graph.add_node(rid, "request", e.request_id, None, time=_iso(e.time),
                   deployment=e.deployment, revision=e.revision, model=e.model,
                   view=e.view, training_set=e.training_set, rows=len(e.rows))
    name, version = _split_label(e.model)
    mid = _versioned("model", name, version)
    if mid not in graph.nodes:
        graph.add_node(mid, "model", name, version, training_set=e.training_set)
    graph.add_edge(mid, rid, "predicted")
    did = f"deployment:{e.deployment}"
    if did in graph.nodes:
        graph.add_edge(did, rid, "logged")
    versions = {f["source"]: f["delta_version"] for r in e.rows for f in r["features"].values()
                if f["delta_version"] is not None}
    for label, v in sorted(versions.items()):
        node = f"delta:{label}:v{v}"
        if node in graph.nodes:
            graph.add_edge(node, rid, "served_from")
    return rid
