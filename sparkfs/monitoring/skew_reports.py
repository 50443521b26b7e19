"""Stored skew reports: one Delta table of ``SkewReport``s beside the evaluation logs, so
that skew can be followed over time (``fs.skew_report(..., save=True)``,
``fs.list_skew_reports()``, ``fs.get_skew_report()``, ``sparkfs skew --list``).

>>> reports_path("/data/offline")
'/data/offline/_skew_reports'
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from ..errors import NotFoundError, SparkfsError
from .skew import SkewReport, _utc

__all__ = ["REPORTS_SCHEMA", "list_reports", "read_report", "reports_path", "save_report"]

#: One row per stored report: what identifies it (deployment, revision, model, training
#: set, window, engine), the verdict (``failing``), each feature's skew rate (JSON, for skew
#: over time) and the whole report (JSON, ``SkewReport.to_dict()``).
REPORTS_SCHEMA = pa.schema([
    ("report_id", pa.string()), ("created_at", pa.timestamp("us", "UTC")),
    ("deployment", pa.string()), ("revision", pa.int64()), ("model", pa.string()),
    ("view", pa.string()), ("training_set", pa.string()), ("engine", pa.string()),
    ("start", pa.string()), ("end", pa.string()), ("requests", pa.int64()),
    ("threshold", pa.float64()), ("failing", pa.string()), ("skew_rates", pa.string()),
    ("report", pa.string())])


def reports_path(offline_root: str) -> str:
    """The Delta table of stored skew reports under the offline root (beside the
    evaluation logs).

    >>> reports_path("/data/offline/")
    '/data/offline/_skew_reports'
    """
    return offline_root.rstrip("/") + "/_skew_reports"


def save_report(report: SkewReport, path: str, storage_options: dict | None = None) -> str:
    """Append ``report`` to the reports table at ``path`` (one Delta commit; the table is
    created on first use) and return its new ``report_id`` (also set on ``report``).

    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/reports"
    >>> r = SkewReport("delay", 1, "m@1", "v@1", "t@1", "duckdb", None, None, 2, 0.0,
    ...                features=[{"feature": "temp", "skew_rate": 0.5, "causes": {}}])
    >>> rid = save_report(r, path)
    >>> read_report(path, rid).features == r.features
    True
    >>> [(x["deployment"], x["skew_rates"]) for x in list_reports(path)]
    [('delay', {'temp': 0.5})]
    """
    import os
    import uuid

    from deltalake import CommitProperties, write_deltalake

    if report.report_id is not None:
        raise SparkfsError(f"skew report {report.report_id} is already stored")
    rid = uuid.uuid4().hex
    report.report_id = rid
    row = {"report_id": rid, "created_at": _utc(report.created_at),
           "deployment": report.deployment, "revision": report.revision, "model": report.model,
           "view": report.view, "training_set": report.training_set, "engine": report.engine,
           "start": report.start, "end": report.end, "requests": report.requests,
           "threshold": report.threshold, "failing": json.dumps(report.failing()),
           "skew_rates": json.dumps({f["feature"]: f["skew_rate"] for f in report.features}),
           "report": report.to_json(indent=None)}
    table = pa.Table.from_pylist([row], schema=REPORTS_SCHEMA)
    if "://" not in path:
        os.makedirs(path, exist_ok=True)
    try:
        write_deltalake(path, table, mode="append", storage_options=dict(storage_options or {}),
                        commit_properties=CommitProperties(max_commit_retries=50))
    except Exception:
        report.report_id = None
        raise
    return rid


def _reports(path: str, storage_options: dict | None) -> pa.Table:
    from deltalake import DeltaTable

    from ..offline.tables import arrow_dataset

    try:
        dt_ = DeltaTable(path, storage_options=dict(storage_options or {}))
    except Exception:  # TableNotFoundError: nothing stored yet
        return REPORTS_SCHEMA.empty_table()
    return arrow_dataset(dt_).to_table().sort_by([("created_at", "ascending"),
                                                  ("report_id", "ascending")])


def list_reports(path: str, storage_options: dict | None = None, deployment: str | None = None,
                 start: Any = None, end: Any = None) -> list[dict]:
    """The stored reports (oldest first), of ``deployment`` when given, created in
    ``[start, end)``: per report its id, time, deployment, revision, model, training set,
    window, engine, requests, threshold, ``failing`` features and ``skew_rates``
    ({feature: rate}), without the samples (``read_report`` has them). A deployment with
    no stored report at all is a ``NotFoundError`` naming those that have some."""
    data = _reports(path, storage_options)
    rows = data.drop_columns(["report"]).to_pylist()
    if deployment is not None:
        known = sorted({r["deployment"] for r in rows})
        if deployment not in known:
            raise NotFoundError(f"no stored skew report of deployment {deployment!r}; "
                                f"deployments with stored reports: {known or 'none'} (store "
                                "one with fs.skew_report(..., save=True) or `sparkfs skew "
                                "<deployment> --save`)")
        rows = [r for r in rows if r["deployment"] == deployment]
    lo, hi = _utc(start), _utc(end)
    out = []
    for r in rows:
        if (lo is not None and r["created_at"] < lo) or (hi is not None and r["created_at"] >= hi):
            continue
        r["created_at"] = r["created_at"].isoformat()
        r["failing"] = json.loads(r["failing"])
        r["skew_rates"] = json.loads(r["skew_rates"])
        out.append(r)
    return out


def read_report(path: str, report_id: str, storage_options: dict | None = None) -> SkewReport:
    """The stored report ``report_id`` (or a unique prefix of it, at least 6 characters);
    an unknown id is a ``NotFoundError`` listing close ones."""
    import difflib

    import pyarrow.compute as pc_

    data = _reports(path, storage_options)
    ids = data.column("report_id").to_pylist()
    hits = [i for i in ids if i == report_id]
    if not hits and len(report_id) >= 6:
        hits = [i for i in ids if i.startswith(report_id)]
    if len(hits) > 1:
        raise SparkfsError(f"skew report id {report_id!r} is ambiguous: {hits[:5]}")
    if not hits:
        close = difflib.get_close_matches(report_id, ids, n=3, cutoff=0.5)
        raise NotFoundError(f"no stored skew report {report_id!r}; "
                            + (f"did you mean {close}?" if close else
                               f"{len(ids)} report(s) stored (list them with `sparkfs skew "
                               "--list`)"))
    text = data.filter(pc_.equal(data.column("report_id"), hits[0])).column("report")[0]
    report = SkewReport.from_dict(json.loads(text.as_py()))
    report.report_id = hits[0]
    return report
