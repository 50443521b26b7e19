"""A server-side layered layout of a ``sparkfs.lineage.Lineage`` for the lineage page and the
notebook card: one column per distance from the root (upstream columns left of it,
downstream columns right), each node a box linking to its own lineage and to its page,
with the edges that reach it from the previous column written under it.

A node's layer is its shortest distance from the root: ``-n`` for ``n`` hops upstream,
``+n`` downstream (``direction="both"`` gives both sides; a node reached both ways is placed
upstream). No JavaScript: the page and the card are plain HTML and CSS.

>>> from sparkfs.lineage import Graph
>>> g = Graph()
>>> g.add_node("group:w@1", "group", "w", 1)
>>> g.add_node("feature:w@1:t", "feature", "w:t", 1, group="w", feature="t")
>>> g.add_node("view:v@1", "view", "v", 1)
>>> g.add_edge("group:w@1", "feature:w@1:t", "contains")
>>> g.add_edge("feature:w@1:t", "view:v@1", "selected_by")
>>> [(c["level"], [n["id"] for n in c["nodes"]]) for c in layers(g.walk("view:v@1", "up"))]
[(-2, ['group:w@1']), (-1, ['feature:w@1:t']), (0, ['view:v@1'])]
>>> page_link(g.nodes["feature:w@1:t"])
'/ui/features/w@1:t'
"""

from __future__ import annotations

from collections import deque
from typing import Any
from urllib.parse import quote

from .templating import PREFIX

#: Directions the page accepts (those of ``fs.lineage``).
DIRECTIONS = ("both", "up", "down")


def node_link(node_id: str) -> str:
    """The lineage page of a node id (``/ui/lineage/group:weather@1``)."""
    return f"{PREFIX}/lineage/{quote(node_id, safe='@:/')}"


def _seg(text: str) -> str:
    return quote(str(text), safe="@:")


def page_link(node: Any) -> str | None:
    """The UI page of a lineage node (its group, feature, view, training set, model or
    deployment page), or None for kinds without one (on-demand transforms)."""
    a, v = node.attrs, node.version
    if node.kind == "group":
        return f"{PREFIX}/groups/{_seg(node.name)}@{v}"
    if node.kind == "feature":
        if a.get("on_demand") or v is None:
            return None
        return f"{PREFIX}/features/{_seg(a.get('group'))}@{v}:{_seg(a.get('feature'))}"
    if node.kind in ("delta", "run"):  # the group page lists Delta versions and runs
        label = node.name if node.kind == "delta" else a.get("group")
        return f"{PREFIX}/groups/{_seg(label)}" if label else None
    if node.kind == "view":
        return f"{PREFIX}/views/{_seg(node.name)}@{v}"
    if node.kind == "training_set":
        return f"{PREFIX}/training-sets/{_seg(node.name)}@{v}"
    if node.kind == "model":
        return f"{PREFIX}/models#{quote(node.name, safe='')}@{v}"
    if node.kind == "deployment":
        return f"{PREFIX}/deployments/{_seg(node.name)}"
    return None


def _detail(node: Any) -> str:
    """A short line of the node's attributes worth reading in the graph."""
    a = node.attrs
    if node.kind == "delta":
        return " ".join(str(x) for x in (a.get("operation"), (a.get("committed_at") or "")[:19])
                        if x)
    if node.kind == "run":
        rows = a.get("rows")
        return f"{a.get('operation', 'ingest')} → Delta v{a.get('delta_version')}" + (
            f", {rows} rows" if rows is not None else "")
    if node.kind == "feature":
        return a.get("dtype") or ("on demand" if a.get("on_demand") else "")
    if node.kind == "deployment":
        return f"revision {a.get('revision')}, model {a.get('model')}"
    if node.kind == "training_set":
        return f"{a.get('engine') or ''} {(a.get('created_at') or '')[:19]}".strip()
    if node.kind == "group":
        return f"owner {a['owner']}" if a.get("owner") else ""
    return ""


def layers(lin: Any) -> list[dict]:
    """The nodes of ``lin`` by layer, left to right: ``[{"level", "nodes": [{"id", "kind",
    "name", "version", "detail", "lineage", "page", "via": [(relation, other id), ...]}]}]``;
    ``via`` are the edges joining the node to the layer nearer the root."""
    level: dict[str, int] = {lin.root: 0}
    via: dict[str, list[tuple[str, str]]] = {}
    for direction, sign in (("up", -1), ("down", 1)):
        if lin.direction not in (direction, "both"):
            continue
        step: dict[str, list[tuple[str, str, str]]] = {}
        for e in lin.edges:  # (next node, relation, from)
            if direction == "up":
                step.setdefault(e.target, []).append((e.source, e.relation, e.target))
            else:
                step.setdefault(e.source, []).append((e.target, e.relation, e.source))
        dist = {lin.root: 0}
        queue = deque([lin.root])
        while queue:
            cur = queue.popleft()
            for nxt, relation, frm in step.get(cur, []):
                if nxt not in dist:
                    dist[nxt] = dist[cur] + 1
                    queue.append(nxt)
                if dist[nxt] == dist[cur] + 1 and nxt not in level:
                    via.setdefault(nxt, []).append((relation, frm))
        for n, d in dist.items():
            level.setdefault(n, sign * d)
    for n in lin.nodes:  # reached only through a node placed on the other side: next to it
        level.setdefault(n, 0)
    cols: dict[int, list[dict]] = {}
    for nid in sorted(level, key=lambda i: (lin.nodes[i].kind, i)):
        node = lin.nodes[nid]
        cols.setdefault(level[nid], []).append({
            "id": nid, "kind": node.kind, "name": node.name, "version": node.version,
            "detail": _detail(node), "lineage": node_link(nid), "page": page_link(node),
            "via": sorted(set(via.get(nid, [])))})
    return [{"level": k, "nodes": cols[k]} for k in sorted(cols)]
