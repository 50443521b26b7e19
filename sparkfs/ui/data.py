"""What the UI pages show, gathered without Spark: the catalog (groups, views, statistics,
validation reports, training sets, deployments), the Delta log (commit versions and times,
rows per commit, newest event time from file statistics) and the online store's
materialization watermark. Every function takes the collaborators it reads (``catalog``,
``offline``, ``online``; never the ``FeatureStore``) and returns plain dicts and lists;
unknown names raise ``NotFoundError`` with the registry's own message.

>>> parse_group_ref("weather@2"), parse_group_ref("weather")
(('weather', 2), ('weather', None))
>>> parse_feature_ref("weather@1:temp")
('weather', 1, 'temp')
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..catalog import Catalog
from ..definitions import FeatureGroup
from ..errors import NotFoundError, SparkfsError

if TYPE_CHECKING:  # pragma: no cover
    from ..offline.tables import OfflineStore
    from ..online.base import OnlineStore


def parse_group_ref(ref: str) -> tuple[str, int | None]:
    """``"name"`` or ``"name@version"`` -> (name, version or None)."""
    name, at, version = ref.partition("@")
    if not name:
        raise NotFoundError(f"{ref!r} names no feature group")
    if not at:
        return name, None
    if not version.isdigit():
        raise NotFoundError(f"feature group {ref!r}: the version after '@' must be a number")
    return name, int(version)


def parse_feature_ref(ref: str) -> tuple[str, int | None, str]:
    """``"group:feature"`` or ``"group@v:feature"`` -> (group, version or None, feature)."""
    group, colon, feature = ref.partition(":")
    if not colon or not feature:
        raise NotFoundError(f"feature {ref!r} does not exist: a feature is named "
                            "'group:feature' (or 'group@version:feature')")
    name, version = parse_group_ref(group)
    return name, version, feature


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"
    return str(value)


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 date or time from a URL (naive: UTC); ValueError naming the text.

    >>> parse_time("2013-06-01"), parse_time("2013-06-01T12:00:00Z").hour
    (datetime.datetime(2013, 6, 1, 0, 0, tzinfo=datetime.timezone.utc), 12)
    """
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ValueError(f"{shown!r} is not an ISO 8601 time (for example 2013-06-01 or "
                         "2013-06-01T12:00:00Z)") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def number(value: Any) -> str:
    """A statistic as short text: ``-`` for missing (None or NaN).

    >>> number(None), number(float("nan")), number(3), number(2.0 / 3)
    ('-', '-', '3', '0.6667')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e5 or (value and abs(value) < 1e-3) \
            else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def percent(value: Any) -> str:
    """A share as a percentage, ``-`` for missing.

    >>> percent(0.125), percent(None), percent(float("nan"))
    ('12.5%', '-', '-')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1%}"


# -- feature groups -----------------------------------------------------------------------------
def group_versions(catalog: Catalog, name: str) -> list[FeatureGroup]:
    """Every registered version of group ``name`` (oldest first); NotFoundError if none."""
    out = sorted((g for g in catalog.list_groups() if g.name == name), key=lambda g: g.version)
    if not out:
        catalog.get_group(name)  # raises the registry's message, listing known groups
    return out


def schema_diff(old: FeatureGroup, new: FeatureGroup) -> dict:
    """Fields added, removed and changed (dtype) from ``old`` to ``new``."""
    a = {f.name: f.dtype for f in old.stored_fields}
    b = {f.name: f.dtype for f in new.stored_fields}
    return {"from": old.version, "to": new.version,
            "added": [f"{n} ({b[n]})" for n in b if n not in a],
            "removed": [f"{n} ({a[n]})" for n in a if n not in b],
            "changed": [f"{n}: {a[n]} -> {b[n]}" for n in b if n in a and a[n] != b[n]]}


def delta_commits(offline: "OfflineStore", group: FeatureGroup, stats_rows: dict[int, int]) -> dict:
    """The Delta log of ``group``: one entry per version (newest first) with operation,
    commit time and rows added, plus the newest event time in the table's file statistics.
    ``{"exists": False}`` when the table was never created."""
    import pyarrow as pa

    try:
        table = offline.table(group)
    except NotFoundError:
        return {"exists": False, "commits": [], "current": None, "last_event_time": None}
    commits = []
    for h in table.history():
        if "version" not in h:
            continue
        v = int(h["version"])
        metrics = h.get("operationMetrics") or {}
        rows = stats_rows.get(v)
        if rows is None:
            for key in ("num_added_rows", "numTargetRowsInserted", "numOutputRows"):
                if metrics.get(key) is not None:
                    rows = int(metrics[key])
                    break
        ts = h.get("timestamp")
        commits.append({
            "version": v, "operation": h.get("operation", ""),
            "time": _iso(dt.datetime.fromtimestamp(ts / 1000, tz=dt.UTC)) if ts else None,
            "rows": rows, "run_id": _run_id(h)})
    commits.sort(key=lambda c: -c["version"])
    last_event = None
    adds = pa.table(table.get_add_actions(flatten=True))
    col = f"max.{group.event_time}"
    if adds.num_rows and col in adds.column_names:
        values = [x for x in adds.column(col).to_pylist() if x is not None]
        last_event = _iso(max(values)) if values else None
    return {"exists": True, "commits": commits, "current": table.version(),
            "last_event_time": last_event}


def _run_id(h: dict) -> str:
    from ..offline.writers import commit_metadata

    return str(commit_metadata(h).get("sparkfs.run_id") or h.get("run_id") or "")


def watermark(online: "OnlineStore", group: FeatureGroup) -> dict:
    """The Delta version last materialized online (``None``: never), or why it is unknown."""
    if not group.online:
        return {"online": False, "version": None, "error": None}
    try:
        return {"online": True, "version": online.get_watermark(group), "error": None}
    except SparkfsError as exc:
        return {"online": True, "version": None, "error": str(exc)}


def statistics_of(catalog: Catalog, group: FeatureGroup, version: int | None = None):
    """The stored ``Statistics`` (latest, or of Delta ``version``), or None when none exist."""
    from ..monitoring.stats import statistics, statistics_versions

    if version is None and not statistics_versions(catalog, group):
        return None
    return statistics(catalog, group, version)


def statistics_versions_of(catalog: Catalog, group: FeatureGroup) -> list[int]:
    """Delta versions of ``group`` that have stored statistics (oldest first)."""
    from ..monitoring.stats import statistics_versions

    return list(statistics_versions(catalog, group))


def group_page(catalog: Catalog, offline: "OfflineStore", online: "OnlineStore", name: str,
               version: int | None) -> dict:
    """Everything the feature group page shows."""
    from ..monitoring.stats import KIND as STATS
    from ..validation.reports import reports

    versions = group_versions(catalog, name)
    group = catalog.get_group(name, version)
    stats_versions = statistics_versions_of(catalog, group)
    stats_rows: dict[int, int] = {}
    for v in stats_versions:
        spec = catalog.registry.get(STATS, group.table_name, v)
        if spec is not None and spec.get("rows") is not None:
            stats_rows[v] = int(spec["rows"])
    diffs = [schema_diff(a, b) for a, b in zip(versions, versions[1:])]
    return {
        "group": group, "spec": group.to_spec(), "versions": versions, "diffs": diffs,
        "delta": delta_commits(offline, group, stats_rows), "watermark": watermark(online, group),
        "stats": statistics_of(catalog, group), "stats_versions": stats_versions,
        "reports": list(reversed(reports(catalog, group))),
    }


# -- other objects ------------------------------------------------------------------------------
def training_sets(catalog: Catalog) -> list[dict]:
    """Registry entries of stored training sets (newest version of each name first)."""
    from ..training.sets import list_training_sets

    return sorted(list_training_sets(catalog),
                  key=lambda s: (s.get("name", ""), -s.get("version", 0)))


def training_set(catalog: Catalog, name: str, version: int | None) -> dict:
    """The registry entry of training set ``name`` (latest version unless ``version``)."""
    from ..training.sets import _spec

    return _spec(catalog, name, version)


def deployments(catalog: Catalog) -> list[dict]:
    """Deployments (latest revision each) as specs; reading them needs no MLflow server."""
    from ..inference.deployments import KIND

    latest: dict[str, dict] = {}
    for s in catalog.registry.list(KIND):
        if s.get("version", 0) >= latest.get(s["name"], {}).get("version", -1):
            latest[s["name"]] = s
    return [latest[k] for k in sorted(latest)]


def models(model_registry: Callable[[], Any]) -> tuple[list[dict], str | None]:
    """Registered MLflow models with their versions' sparkfs tags, or an error text when
    the model registry cannot be read. ``model_registry`` returns the
    ``sparkfs.models.ModelRegistry`` (called here, so that opening it fails on the page)."""
    try:
        reg = model_registry()
        out = []
        for name in reg.list_models():
            for v in reg.versions(name):
                info = reg.get_version(name, v)
                out.append({"name": name, "version": v, "label": info.label,
                            "view": info.view, "training_set": info.training_set,
                            "source": info.source, "run_id": info.run_id,
                            "tags": dict(info.tags)})
        return out, None
    except Exception as exc:  # noqa: BLE001 - shown on the page: MLflow's own errors too
        return [], f"{type(exc).__name__}: {exc}"


def search_all(catalog: Catalog, text: str) -> list[dict]:
    """``sparkfs.discovery.search`` (groups, features, entities; ranked) plus feature views,
    training sets and deployments whose name, description, owner or tags hold every word
    of ``text``, all ranked together."""
    from ..discovery import _match, _texts, search

    hits = [h.to_dict() for h in search(catalog, text)]
    words = text.lower().split()
    extra = []
    for v in catalog.list_views():
        score, matched = _match(words, _texts(v.name, v.description, v.owner, dict(v.tags)))
        if score:
            extra.append({"kind": "feature_view", "name": v.name, "version": v.version,
                          "description": v.description, "matched": matched, "score": score})
    seen = set()
    for s in training_sets(catalog):
        if s["name"] in seen:
            continue
        seen.add(s["name"])
        score, matched = _match(words, _texts(s["name"], "", "", {}))
        if score:
            extra.append({"kind": "training_set", "name": s["name"], "version": s.get("version"),
                          "description": "", "matched": matched, "score": score})
    for d in deployments(catalog):
        score, matched = _match(words, _texts(d["name"], "", "", {}))
        if score:
            extra.append({"kind": "deployment", "name": d["name"], "version": d.get("version"),
                          "description": f"model {d.get('model_name')}@{d.get('model_version')}",
                          "matched": matched, "score": score})
    order = {"feature_group": 0, "feature": 1, "feature_view": 2, "training_set": 3,
             "deployment": 4, "entity": 5}
    every = hits + extra
    every.sort(key=lambda h: (-h["score"], order.get(h["kind"], 9), h["name"]))
    return every
