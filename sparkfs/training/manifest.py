"""Training-set manifests: everything needed to rebuild the same rows later.

A manifest is plain JSON: the engine and options, the spine (row count and hash), and
per group the group version, the Delta version that was read, the ttl applied, a
fingerprint of the group's definition and of its transforms; plus the fingerprints of
on-demand transforms.

>>> m = {"format": 1, "groups": [{"label": "weather@1", "delta_version": 3, "ttl": "2d"}]}
>>> delta_versions(m), ttls(m)
({'weather@1': 3}, {'weather@1': '2d'})
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from .plan import Plan, ttl_label

FORMAT = 1


def fingerprint(spec: Any) -> str:
    """Short, stable hash of a JSON-able value.

    >>> fingerprint({"a": 1}) == fingerprint({"a": 1})
    True
    """
    body = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def build_manifest(plan: Plan, engine: str, summary: dict, key_map: dict | None,
                   options: dict, features: list[str]) -> dict:
    """The manifest of one join. ``features`` are the requested references with each
    group's version made explicit (``"weather@1:temp"``)."""
    groups = []
    for gp in plan.groups:
        g = gp.group
        groups.append({
            "label": gp.label, "name": g.name, "version": g.version,
            "delta_version": gp.delta_version, "ttl": ttl_label(gp.ttl),
            "features": list(gp.features), "columns": list(gp.columns),
            "key_columns": dict(gp.key_columns),
            "definition_fingerprint": fingerprint(g.to_spec()),
            "transforms": {t.name: getattr(t, "fingerprint", "") for t in g.transforms},
            "aggregations": bool(g.aggregations),
        })
    on_demand = {}
    if plan.on_demand is not None:
        on_demand = {t.name: t.fingerprint for t in plan.on_demand.transforms}
    return {
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "engine": engine,
        "as_known_at": plan.as_known_at,
        "timestamp_col": plan.timestamp_col,
        "key_map": dict(key_map or {}),
        "features": list(features),
        "view": plan.request.view_label if plan.request is not None else None,
        "output_columns": plan.output_columns,
        "options": dict(options),
        "groups": groups,
        "on_demand": on_demand,
        "spine": {"rows": summary["rows"], "hash": summary["hash"]},
    }


def delta_versions(manifest: dict) -> dict[str, int]:
    return {g["label"]: int(g["delta_version"]) for g in manifest["groups"]}


def ttls(manifest: dict) -> dict[str, str | None]:
    return {g["label"]: g.get("ttl") for g in manifest["groups"]}
