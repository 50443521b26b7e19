"""Lineage: which data, definitions and models a node came from, and what uses it.

The graph is derived from what sparkfs already records, so it is complete for every object
made before this module existed and needs no hook that could be skipped:

- the registry: feature groups, feature views, training sets (their manifests pin each
  group's Delta version, ttl and transform fingerprints), deployments;
- each group's Delta log: one commit per ingest run (``sparkfs.run_id`` in the commit
  metadata), so a Delta version is the rows of every run up to it;
- MLflow: each model version's ``sparkfs.training_set`` tag.

Node ids (what ``fs.lineage`` accepts; a name without ``@version`` means the latest)::

    run:weather@1/<run id>       an ingest run              -> the Delta version it committed
    delta:weather@1:v3           a Delta version of a group -> the next version, training sets
    group:weather@1              a feature group            -> its features
    feature:weather@1:temp       a feature ("feature:weather:temp" works too) -> views, sets
    transform:dep_calendar       an on-demand transform     -> the features it computes
    view:flight_delay@1          a feature view             -> training sets built from it
    training_set:flight_delays@1 a stored training set      -> models trained on it
    model:delay_model@1          an MLflow model version    -> deployments serving it
    deployment:delay             a deployment (its current revision)

Edges point the way data flows. ``direction="up"`` follows them backwards (where did this
come from?), ``"down"`` forwards (what breaks if I change it?), ``"both"`` does each from the
root. ``depth`` limits the number of hops (None: no limit).

>>> g = Graph()
>>> g.add_node("group:w@1", "group", "w", 1)
>>> g.add_node("feature:w@1:t", "feature", "w:t", 1)
>>> g.add_node("view:v@1", "view", "v", 1)
>>> g.add_edge("group:w@1", "feature:w@1:t", "contains")
>>> g.add_edge("feature:w@1:t", "view:v@1", "selected_by")
>>> sorted(g.walk("view:v@1", "up").nodes)
['feature:w@1:t', 'group:w@1', 'view:v@1']
>>> print(g.walk("group:w@1", "down"))
group:w@1
  -> feature:w@1:t (contains)
    -> view:v@1 (selected_by)
"""

from __future__ import annotations

import difflib
import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import NotFoundError, SparkfsError

__all__ = ["Graph", "Lineage", "LineageEdge", "LineageNode", "build_graph", "lineage"]

DIRECTIONS = ("up", "down", "both")
#: JSON format version of ``Lineage.to_dict`` (bumped on any incompatible change).
FORMAT = 1


@dataclass(frozen=True)
class LineageNode:
    """One node: ``id`` (see the module docstring), ``kind`` (run, delta, group, feature,
    transform, view, training_set, model, deployment), ``name``, ``version`` (None when the
    kind has none) and ``attrs`` (JSON-able details: Delta versions, run ids, times,
    fingerprints)."""

    id: str
    kind: str
    name: str
    version: int | None = None
    attrs: dict = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "name": self.name, "version": self.version,
                "attrs": self.attrs}


@dataclass(frozen=True)
class LineageEdge:
    """``source`` -> ``target`` (data flows that way), with the ``relation`` between them
    (wrote, next, read_by, contains, computes, selected_by, built, trained, serves)."""

    source: str
    target: str
    relation: str

    def to_dict(self) -> dict:
        return {"source": self.source, "target": self.target, "relation": self.relation}


@dataclass
class Lineage:
    """The answer of ``fs.lineage``: the ``root`` node id, the ``direction`` and ``depth``
    asked for, every node reached (``nodes``, by id) and the edges walked (``edges``).

    ``to_dict()`` / ``to_json()`` give the stable JSON form::

        {"format": 1, "root": "...", "direction": "up", "depth": null,
         "nodes": [{"id", "kind", "name", "version", "attrs"}, ...],   # sorted by id
         "edges": [{"source", "target", "relation"}, ...],             # sorted
         "warnings": [...]}

    ``to_dot()`` gives Graphviz text; ``str()`` an indented tree from the root.
    """

    root: str
    direction: str
    depth: int | None
    nodes: dict[str, LineageNode] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def ids(self, kind: str | None = None) -> list[str]:
        """The ids of the nodes reached (of one ``kind``), sorted."""
        return sorted(i for i, n in self.nodes.items() if kind is None or n.kind == kind)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "root": self.root, "direction": self.direction,
                "depth": self.depth,
                "nodes": [self.nodes[i].to_dict() for i in sorted(self.nodes)],
                "edges": [e.to_dict() for e in sorted(self.edges, key=_edge_key)],
                "warnings": list(self.warnings)}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def _repr_html_(self) -> str:
        """The graph as a notebook card (``sparkfs.ui.cards.lineage_card``): a layered
        layout, upstream left of the root, downstream right."""
        from ..ui.cards import lineage_card

        return lineage_card(self)

    def to_dot(self) -> str:
        """Graphviz ``digraph`` of the nodes and edges (edges in data-flow direction)."""
        lines = ["digraph lineage {", "  rankdir=LR;"]
        for i in sorted(self.nodes):
            shape = "box" if self.nodes[i].kind in ("run", "delta") else "ellipse"
            extra = ", style=bold" if i == self.root else ""
            lines.append(f"  {json.dumps(i)} [shape={shape}{extra}];")
        for e in sorted(self.edges, key=_edge_key):
            lines.append(f"  {json.dumps(e.source)} -> {json.dumps(e.target)} "
                         f"[label={json.dumps(e.relation)}];")
        lines.append("}")
        return "\n".join(lines)

    def __str__(self) -> str:
        out: list[str] = []
        for direction in (("up", "down") if self.direction == "both" else (self.direction,)):
            if out:
                out.append("")
            out.extend(self._tree(direction))
        return "\n".join(out + [f"warning: {w}" for w in self.warnings])

    def _tree(self, direction: str) -> list[str]:
        nxt: dict[str, list[LineageEdge]] = {}
        for e in sorted(self.edges, key=_edge_key):
            if direction == "down":
                nxt.setdefault(e.source, []).append(e)
            else:
                nxt.setdefault(e.target, []).append(e)
        arrow = "->" if direction == "down" else "<-"
        lines = [self.root]
        seen = {self.root}

        def visit(node: str, level: int) -> None:
            for e in nxt.get(node, []):
                other = e.target if direction == "down" else e.source
                again = other in seen
                lines.append(f"{'  ' * level}{arrow} {other} ({e.relation})"
                             + (" [see above]" if again else ""))
                if not again:
                    seen.add(other)
                    visit(other, level + 1)

        visit(self.root, 1)
        return lines


def _edge_key(e: LineageEdge) -> tuple[str, str, str]:
    return (e.source, e.target, e.relation)


class Graph:
    """The whole lineage graph in memory; ``walk`` answers one question about it."""

    def __init__(self) -> None:
        self.nodes: dict[str, LineageNode] = {}
        self.out: dict[str, list[LineageEdge]] = {}
        self.inc: dict[str, list[LineageEdge]] = {}
        self.warnings: list[str] = []

    def add_node(self, id: str, kind: str, name: str, version: int | None = None,
                 **attrs: Any) -> None:
        old = self.nodes.get(id)
        if old is not None:
            old.attrs.update(attrs)
            return
        self.nodes[id] = LineageNode(id, kind, name, version, dict(attrs))

    def add_edge(self, source: str, target: str, relation: str) -> None:
        e = LineageEdge(source, target, relation)
        if e in self.out.get(source, []):
            return
        self.out.setdefault(source, []).append(e)
        self.inc.setdefault(target, []).append(e)

    def resolve(self, node: str) -> str:
        """The id of ``node`` as written by a user (latest version when none is given);
        ``NotFoundError`` lists close matches."""
        if not isinstance(node, str) or ":" not in node:
            raise NotFoundError(f"lineage node {node!r} is malformed: write kind:name, e.g. "
                                "'model:delay_model@1', 'deployment:delay', 'group:weather@1', "
                                "'feature:weather:temp'")
        if node in self.nodes:
            return node
        kind, _, rest = node.partition(":")
        candidates: list[tuple[int, str]] = []
        if kind == "feature" and rest.count(":") == 1:
            group, _, feat = rest.partition(":")
            if "@" not in group:
                for i, n in self.nodes.items():
                    if n.kind == "feature" and n.attrs.get("group") == group \
                            and n.attrs.get("feature") == feat:
                        candidates.append((n.version or 0, i))
        elif "@" not in rest:
            for i, n in self.nodes.items():
                if n.kind == kind and n.name == rest and n.version is not None:
                    candidates.append((n.version, i))
        if candidates:
            return max(candidates)[1]
        close = difflib.get_close_matches(node, list(self.nodes), n=5, cutoff=0.5)
        known_kinds = sorted({n.kind for n in self.nodes.values()})
        raise NotFoundError(
            f"lineage node {node!r} does not exist"
            + (f"; close matches: {close}" if close else "")
            + f" (kinds in this store: {known_kinds or 'none'})")

    def walk(self, node: str, direction: str = "up", depth: int | None = None) -> Lineage:
        """The nodes reached from ``node`` following edges ``direction``, up to ``depth``
        hops."""
        if direction not in DIRECTIONS:
            raise SparkfsError(f"lineage direction {direction!r} is unknown; use 'up', "
                               "'down' or 'both'")
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int)
                                  or depth < 0):
            raise SparkfsError(f"lineage depth must be a non-negative integer or None, "
                               f"got {depth!r}")
        root = self.resolve(node)
        result = Lineage(root, direction, depth, warnings=list(self.warnings))
        result.nodes[root] = self.nodes[root]
        edges: set[LineageEdge] = set()
        for d in (("up", "down") if direction == "both" else (direction,)):
            frontier = deque([(root, 0)])
            seen = {root}
            while frontier:
                cur, level = frontier.popleft()
                if depth is not None and level >= depth:
                    continue
                for e in (self.inc if d == "up" else self.out).get(cur, []):
                    other = e.source if d == "up" else e.target
                    edges.add(e)
                    result.nodes[other] = self.nodes[other]
                    if other not in seen:
                        seen.add(other)
                        frontier.append((other, level + 1))
        result.edges = sorted(edges, key=_edge_key)
        return result


# -- building the graph from what is recorded ---------------------------------------------------
def _versioned(kind: str, name: str, version: int | None) -> str:
    return f"{kind}:{name}@{version}" if version is not None else f"{kind}:{name}"


def _split_label(label: str) -> tuple[str, int | None]:
    name, _, v = str(label).partition("@")
    return name, int(v) if v.isdigit() else None


def build_graph(registry: Any, offline: Any = None, models: Any = None,
                groups: Iterable[Any] | None = None,
                models_unread: str | None = "MLflow models were not read") -> Graph:
    """The lineage graph of a store from its ``registry`` (definitions, training sets,
    deployments), its ``offline`` store (each group's Delta log: ingest runs; None: left
    out) and its MLflow ``models`` registry (None: model versions are taken from
    deployments only, and the warning ``models_unread`` says why, unless it is None).
    ``groups`` are the ``FeatureGroup`` objects (default: ``registry.list_groups()``)."""
    g = Graph()
    group_list = list(groups) if groups is not None else registry.list_groups()
    latest_group: dict[str, int] = {}
    for grp in group_list:
        latest_group[grp.name] = max(latest_group.get(grp.name, 0), grp.version)
        gid = _versioned("group", grp.name, grp.version)
        g.add_node(gid, "group", grp.name, grp.version, owner=grp.owner,
                   online=grp.online, ttl=str(grp.ttl) if grp.ttl else None,
                   transforms={t.name: getattr(t, "fingerprint", "") for t in grp.transforms})
        for f in grp.features:
            fid = f"feature:{grp.name}@{grp.version}:{f.name}"
            g.add_node(fid, "feature", f"{grp.name}:{f.name}", grp.version, group=grp.name,
                       feature=f.name, dtype=f.dtype)
            g.add_edge(gid, fid, "contains")
        if offline is not None:
            _add_delta_log(g, offline, grp)

    def feature_id(ref: str) -> str:
        from ..definitions import FeatureRef

        r = FeatureRef.parse(ref)
        if r.group not in latest_group:  # an on-demand transform's output
            tid = f"transform:{r.group}"
            g.add_node(tid, "transform", r.group)
            fid = f"feature:{r.group}:{r.feature}"
            g.add_node(fid, "feature", f"{r.group}:{r.feature}", None, group=r.group,
                       feature=r.feature, on_demand=True)
            g.add_edge(tid, fid, "computes")
            return fid
        v = r.version if r.version is not None else latest_group[r.group]
        fid = f"feature:{r.group}@{v}:{r.feature}"
        if fid not in g.nodes:  # e.g. an aggregation output of another version
            g.add_node(fid, "feature", f"{r.group}:{r.feature}", v, group=r.group,
                       feature=r.feature)
            g.add_edge(_versioned("group", r.group, v), fid, "contains")
        return fid

    for view in registry.list_views():
        vid = _versioned("view", view.name, view.version)
        g.add_node(vid, "view", view.name, view.version, owner=view.owner)
        for ref in view.features:
            g.add_edge(feature_id(str(ref)), vid, "selected_by")

    for spec in registry.list("training_set"):
        _add_training_set(g, spec, feature_id)

    deployments = _latest(registry.list("deployment"))
    model_versions: set[tuple[str, int]] = set()
    if models is not None:
        for name in models.list_models():
            for v in models.versions(name):
                model_versions.add((name, v))
    elif models_unread:
        g.warnings.append(f"{models_unread}: model versions come from deployments only")
    for d in deployments:
        model_versions.add((d["model_name"], int(d["model_version"])))
    for name, v in sorted(model_versions):
        mid = _versioned("model", name, v)
        ts_label = None
        if models is not None:
            try:
                info = models.get_version(name, v)
                ts_label, run_id = info.training_set, info.run_id
            except NotFoundError:
                run_id = None
            g.add_node(mid, "model", name, v, mlflow_run_id=run_id, training_set=ts_label)
        else:
            g.add_node(mid, "model", name, v)
        if ts_label:
            tname, tver = _split_label(ts_label)
            tid = _versioned("training_set", tname, tver)
            if tid in g.nodes:
                g.add_edge(tid, mid, "trained")
    for d in deployments:
        did = f"deployment:{d['name']}"
        mid = _versioned("model", d["model_name"], int(d["model_version"]))
        g.add_node(did, "deployment", d["name"], None, revision=d["version"],
                   model=f"{d['model_name']}@{d['model_version']}", view=d.get("view"),
                   training_set=d.get("training_set"), created_at=d.get("created_at"))
        g.add_edge(mid, did, "serves")
        if models is None and d.get("training_set"):
            tname, tver = _split_label(d["training_set"])
            tid = _versioned("training_set", tname, tver)
            if tid in g.nodes:
                g.add_edge(tid, mid, "trained")
    return g


def _latest(specs: list[dict]) -> list[dict]:
    out: dict[str, dict] = {}
    for s in specs:
        if s["name"] not in out or s["version"] > out[s["name"]]["version"]:
            out[s["name"]] = s
    return [out[k] for k in sorted(out)]


def _add_delta_log(g: Graph, offline: Any, grp: Any) -> None:
    import datetime as dt

    from ..offline.writers import commit_metadata

    try:
        history = offline.table(grp).history()
    except Exception as exc:  # no table yet (a group applied elsewhere): say so, go on
        g.warnings.append(f"group {grp.name}@{grp.version}: its Delta log could not be read "
                          f"({type(exc).__name__}: {exc})")
        return
    label = f"{grp.name}@{grp.version}"
    prev = None
    for h in sorted(history, key=lambda h: int(h.get("version", 0))):
        v = int(h.get("version", 0))
        ts = h.get("timestamp")
        when = dt.datetime.fromtimestamp(ts / 1000, tz=dt.UTC).isoformat() if ts else None
        did = f"delta:{label}:v{v}"
        g.add_node(did, "delta", label, v, group=grp.name, group_version=grp.version,
                   operation=h.get("operation"), committed_at=when)
        if prev is not None:
            g.add_edge(prev, did, "next")
        prev = did
        meta = commit_metadata(h)  # delta-rs and delta-spark keep it in different places
        run_id = meta.get("sparkfs.run_id")
        if run_id:
            rid = f"run:{label}/{run_id}"
            rows = str(meta.get("sparkfs.rows", ""))
            g.add_node(rid, "run", str(run_id), None, group=label, delta_version=v,
                       operation=meta.get("sparkfs.operation", "ingest"), committed_at=when,
                       rows=int(rows) if rows.isdigit() else None)
            g.add_edge(rid, did, "wrote")


def _add_training_set(g: Graph, spec: dict, feature_id: Any) -> None:
    m = spec.get("manifest") or {}
    tid = _versioned("training_set", spec["name"], spec["version"])
    g.add_node(tid, "training_set", spec["name"], spec["version"],
               created_at=m.get("created_at"), engine=m.get("engine"),
               as_known_at=m.get("as_known_at"), spine=m.get("spine"),
               on_demand=m.get("on_demand") or {}, view=m.get("view"),
               delta_versions={gr["label"]: gr["delta_version"] for gr in m.get("groups", [])},
               transforms={gr["label"]: gr.get("transforms", {}) for gr in m.get("groups", [])},
               code_version=m.get("code_version"))
    for gr in m.get("groups", []):
        did = f"delta:{gr['label']}:v{gr['delta_version']}"
        if did not in g.nodes:
            g.add_node(did, "delta", gr["label"], gr["delta_version"], group=gr["name"],
                       group_version=gr["version"])
        g.add_edge(did, tid, "read_by")
    if m.get("view"):
        vname, vver = _split_label(m["view"])
        vid = _versioned("view", vname, vver)
        if vid in g.nodes:
            g.add_edge(vid, tid, "built")
            return
    for ref in m.get("features", []):
        g.add_edge(feature_id(ref), tid, "selected_by")


def lineage(graph: Graph, node: str, direction: str = "up", depth: int | None = None) -> Lineage:
    """``graph.walk(node, direction, depth)``: see ``Graph.walk``."""
    return graph.walk(node, direction, depth)
