"""A brute-force point-in-time reference, and helpers shared by the training tests.

The reference checks every history row against every spine row (O(n*m)): obviously
right on small data, which is what the engines are compared with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

UTC = dt.UTC
BASE = dt.datetime(2024, 3, 1, tzinfo=UTC)


def T(minutes: float) -> dt.datetime:
    """BASE + minutes (aware UTC)."""
    return BASE + dt.timedelta(minutes=minutes)


def append_history(fs, group, rows: Iterable[dict]) -> int:
    """Append rows straight to the group's Delta history (controlled ``_commit_time``);
    returns the new Delta version."""
    from deltalake import write_deltalake

    from sparkfs.offline.tables import history_schema

    schema = history_schema(group)
    rows = list(rows)
    cols = {f.name: [r.get(f.name, "run" if f.name == "_run_id" else None) for r in rows]
            for f in schema}
    write_deltalake(fs.offline.table_uri(group), pa.table(cols, schema=schema), mode="append")
    return fs.offline.current_version(group)


def reference(group, history: list[dict], spine: list[dict], timestamp_col: str,
              features: list[str], as_known_at: bool = False,
              key_map: dict | None = None, ttl: dt.timedelta | None = "group") -> list[dict]:
    """For each spine row: the history row with the greatest event time <= t (ties:
    latest commit), visible (committed by t) when ``as_known_at``, within ttl."""
    key_map = key_map or {}
    ttl = group.ttl if ttl == "group" else ttl
    et = group.event_time
    out = []
    for s in spine:
        t = _utc(s.get(timestamp_col))
        keys = {k: s.get(key_map.get(k, k)) for k in group.join_keys}
        best = None
        if t is not None and all(v is not None for v in keys.values()):
            for r in history:
                if any(r[k] != v for k, v in keys.items()):
                    continue
                if _utc(r[et]) > t or (as_known_at and _utc(r["_commit_time"]) > t):
                    continue
                if best is None or (_utc(r[et]), _utc(r["_commit_time"])) > (
                        _utc(best[et]), _utc(best["_commit_time"])):
                    best = r
            if best is not None and ttl is not None and _utc(best[et]) < t - ttl:
                best = None
        out.append({f: (None if best is None else best[f]) for f in features})
    return out


def _utc(v: Any) -> dt.datetime | None:
    if v is None:
        return None
    if hasattr(v, "to_pydatetime"):
        if v != v:  # NaT
            return None
        v = v.to_pydatetime()
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def features_of(ts, columns: list[str]) -> list[dict]:
    """The feature columns of a TrainingSet as plain dicts (NaN-free: Arrow nulls)."""
    tbl = ts.to_arrow()
    return [{c: r[c] for c in columns} for r in tbl.to_pylist()]


# -- the reference itself ------------------------------------------------------------------
def test_reference_picks_latest_visible_row():
    from sparkfs import Entity, FeatureGroup, Field

    g = FeatureGroup("g", [Entity("e", ["k"])], "et", [Field("x", "double")], ttl="1h")
    hist = [{"k": "a", "et": T(0), "x": 1.0, "_commit_time": T(0)},
            {"k": "a", "et": T(10), "x": 2.0, "_commit_time": T(50)},
            {"k": "a", "et": T(10), "x": 3.0, "_commit_time": T(40)}]
    spine = [{"k": "a", "t": T(5)}, {"k": "a", "t": T(10)}, {"k": "a", "t": T(45)},
             {"k": "a", "t": T(200)}, {"k": None, "t": T(5)}]
    assert reference(g, hist, spine, "t", ["x"]) == [
        {"x": 1.0}, {"x": 2.0}, {"x": 2.0}, {"x": None}, {"x": None}]
    assert reference(g, hist, spine, "t", ["x"], as_known_at=True) == [
        {"x": 1.0}, {"x": 1.0}, {"x": 3.0}, {"x": None}, {"x": None}]
