"""The scoring table: insert a row, get a prediction.

``fs.deploy(name, model=..., table=True)`` creates a Delta *request table* for the
deployment (``<offline root>/_requests/<name>``). Its columns: ``request_id`` (string; a
null id is replaced by ``<deployment>-<micro-batch>-<row>``), the entity columns the view
joins on (after its ``key_map``), ``request_time`` (the instant to score at: features are
read point-in-time as of it, exactly as ``score_batch`` reads them) and the request-time
columns its on-demand transforms read. Rows are appended with any Delta writer, or with
``fs.append_requests(deployment, rows)``.

``follow(inference, deployment)`` (``sparkfs score --follow <deployment>``) is a Spark
Structured Streaming query over the rows appended to that table (the sparkfs Delta source,
no delta-spark needed) with a checkpoint. Per micro-batch, in the driver:

1. Rows with a null entity key or a null ``request_time`` are *bad rows*: each is written
   to the evaluation log with ``error`` naming the problem and no prediction (reported,
   never dropped).
2. The other rows are scored by ``sparkfs.inference.batch`` (the same point-in-time
   features, on-demand transforms and model code as batch scoring; the model runs on
   the executors). The micro-batch's rows come back to the driver: a scoring table is
   for streams of requests, not for bulk backfills (use ``score_batch`` for those).
3. All of the micro-batch's log rows (``scoring_path = "table"``, ``data_versions`` with
   the Delta version of each feature group read, and per feature the event time of the
   row the point-in-time join chose) are appended to the evaluation log in
   **one** Delta commit carrying the app transaction ``(sparkfs-table-<deployment>-<stream
   id>, batch id)`` (the stream id is made once per checkpoint, ``claim_checkpoint``).
   A micro-batch that Spark replays after a crash (its commit was written
   but the checkpoint not yet) finds that transaction and writes nothing: every row is
   logged exactly once across kills and restarts.

Each micro-batch reads the deployment's current revision, so a redeploy takes effect at
the next micro-batch without restarting the query.

>>> request_columns_schema([("origin", "string")], [("sched_dep_ts", "timestamp")]).names
['request_id', 'origin', 'request_time', 'sched_dep_ts']
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..errors import SparkfsError, ValidationError, first_line

#: The request table's column holding the instant to score at.
REQUEST_TIME = "request_time"
REQUEST_ID = "request_id"
_TS = pa.timestamp("us", "UTC")


def request_columns_schema(keys: Sequence[tuple[str, str]],
                           request: Sequence[tuple[str, str]]) -> pa.Schema:
    """The request table's schema: id, entity columns, ``request_time``, request columns
    (``(name, sparkfs dtype)`` pairs; a request column that is also an entity column or
    a reserved name appears once)."""
    from ..offline.tables import arrow_type

    fields = [pa.field(REQUEST_ID, pa.string())]
    seen = {REQUEST_ID}
    for name, dtype in [*keys, (REQUEST_TIME, "timestamp"), *request]:
        if name in seen:
            continue
        seen.add(name)
        fields.append(pa.field(name, _TS if dtype == "timestamp" else arrow_type(dtype)))
    return pa.schema(fields)


def create_request_table(path: str, schema: pa.Schema, deployment: str,
                         storage_options: Mapping[str, str] | None = None) -> str:
    """Create the request table at ``path``; an existing one must have ``schema``'s
    columns with the same types (else ``ValidationError``: deploy under another name)."""
    from deltalake import DeltaTable

    opts = dict(storage_options or {})
    try:
        current = pa.schema(DeltaTable(path, storage_options=opts).schema().to_arrow())
    except Exception:  # TableNotFoundError: create it
        current = None
    if current is not None:
        have = {f.name: f.type for f in current}
        wrong = [f"{f.name} ({f.type})" for f in schema
                 if f.name not in have or not _same_type(have[f.name], f.type)]
        if wrong:
            raise ValidationError(
                f"deployment {deployment!r}: its scoring table at {path} lacks or types "
                f"differently {wrong}; the new model needs other request columns, so deploy it "
                f"under another name. Nothing was deployed")
        return path
    if "://" not in path:
        os.makedirs(path, exist_ok=True)
    DeltaTable.create(path, schema, mode="ignore", storage_options=opts)
    return path


def _same_type(a: pa.DataType, b: pa.DataType) -> bool:
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b):
        return True
    return a == b or (pa.types.is_string(a) and pa.types.is_large_string(b)) or \
        (pa.types.is_large_string(a) and pa.types.is_string(b))


def append_requests(d: Any, rows: Any, storage_options: Mapping[str, str] | None = None) -> int:
    """Append request rows (pandas, Arrow, or a list of dicts) to ``d``'s scoring table in
    one commit; a missing ``request_id`` gets a new id, a missing ``request_time`` now.
    Unknown columns, missing entity columns and uncastable values are refused whole.
    Returns the table's new Delta version."""
    import pandas as pd
    from deltalake import DeltaTable, write_deltalake

    if not d.request_table:
        raise ValidationError(f"deployment {d.name!r} has no scoring table; deploy it with "
                              "table=True (sparkfs deploy --table)")
    opts = dict(storage_options or {})
    schema = pa.schema(DeltaTable(d.request_table, storage_options=opts).schema().to_arrow())
    if isinstance(rows, pa.Table):
        frame = rows.to_pandas()
    elif isinstance(rows, pd.DataFrame):
        frame = rows.copy()
    else:
        frame = pd.DataFrame(list(rows))
    if len(frame) == 0:
        return DeltaTable(d.request_table, storage_options=opts).version()
    unknown = sorted(set(frame.columns) - set(schema.names))
    if unknown:
        raise ValidationError(f"deployment {d.name!r}: the scoring table has no column(s) "
                              f"{unknown}; its columns: {schema.names}. Nothing was written")
    keys = [f.name for f in schema if f.name not in (REQUEST_ID, REQUEST_TIME)]
    absent = [k for k in keys if k not in frame.columns]
    if absent:
        raise ValidationError(f"deployment {d.name!r}: request rows lack column(s) {absent}. "
                              "Nothing was written")
    if REQUEST_ID not in frame.columns:
        frame[REQUEST_ID] = [uuid.uuid4().hex for _ in range(len(frame))]
    if REQUEST_TIME not in frame.columns:
        frame[REQUEST_TIME] = pd.Timestamp(dt.datetime.now(dt.UTC))
    frame = frame[schema.names]
    try:
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as exc:
        raise ValidationError(f"deployment {d.name!r}: request rows do not fit the scoring "
                              f"table ({' '.join(str(exc).split())[:300]}). Nothing was "
                              "written") from None
    write_deltalake(d.request_table, table, mode="append", storage_options=opts)
    return DeltaTable(d.request_table, storage_options=opts).version()


def request_spec(catalog: Any, binding: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(entity columns, request columns)`` of a binding, each ``[(column, dtype)]``, by
    the resolver both paths use (a request input of undeclared dtype is a string);
    ``catalog``: the ``sparkfs.catalog.Catalog``."""
    from ..request import resolve

    r = resolve(catalog, list(binding.features), full_feature_names=binding.full_feature_names,
                key_map=dict(binding.key_map) or None)
    keys = [(r.key_column(k), dtype) for k, dtype in r.join_keys.items()]
    request = [(c, dtype or "string") for c, dtype in
               (r.on_demand.request_columns.items() if r.on_demand is not None else ())]
    return keys, request


def app_id(deployment: str, stream_id: str) -> str:
    """The app-transaction id of one scoring query (deployment + checkpoint) in the
    deployment's evaluation log."""
    return f"sparkfs-table-{deployment}-{stream_id}"


MARKER = "_sparkfs_scoring.json"


def claim_checkpoint(checkpoint: str, deployment: str) -> str:
    """The stable id of the scoring query whose checkpoint is ``checkpoint``: made once
    when the checkpoint is new, read back on every restart. A checkpoint of another
    deployment is refused. (Batch ids restart at 0 in a new checkpoint; the id keeps its
    app transactions apart from an old checkpoint's.)

    >>> import tempfile
    >>> ck = tempfile.mkdtemp()
    >>> claim_checkpoint(ck, "delay") == claim_checkpoint(ck, "delay")
    True
    >>> claim_checkpoint(ck, "other")
    Traceback (most recent call last):
    ...
    sparkfs.errors.ValidationError: checkpoint ... belongs to the scoring table of \
deployment 'delay', not 'other'
    """
    from pyarrow import fs as pafs

    if "://" in checkpoint:
        filesystem, path = pafs.FileSystem.from_uri(checkpoint)
    else:
        filesystem, path = pafs.LocalFileSystem(), os.path.abspath(checkpoint)
    marker = path.rstrip("/") + "/" + MARKER
    if filesystem.get_file_info(marker).type == pafs.FileType.File:
        with filesystem.open_input_stream(marker) as f:
            spec = json.loads(f.read().decode())
        if spec.get("deployment") != deployment:
            raise ValidationError(f"checkpoint {checkpoint} belongs to the scoring table of "
                                  f"deployment {spec.get('deployment')!r}, not {deployment!r}")
        return str(spec["stream_id"])
    filesystem.create_dir(path, recursive=True)
    stream_id = uuid.uuid4().hex[:16]
    with filesystem.open_output_stream(marker) as f:
        f.write(json.dumps({"deployment": deployment, "stream_id": stream_id}).encode())
    return stream_id


def score_micro_batch(inference: Any, deployment: str, rows: Any,
                      batch_id: int, stream_id: str) -> dict:
    """Score one micro-batch of request rows (a pandas frame) and log every row in one
    commit (module docstring). Returns counts: ``scored``, ``bad``, ``skipped`` (replay)."""
    from deltalake import DeltaTable

    from ..sparkutil import arrow_batches_by_rows
    from .batch import _scorer, prepare
    from .evaluation import append, to_table

    d = inference.deployments.get(deployment)
    opts = dict(inference.storage_options)
    txn = app_id(d.name, stream_id)
    done = DeltaTable(d.log_path, storage_options=opts).transaction_version(txn)
    if done is not None and done >= batch_id:
        return {"batch_id": batch_id, "scored": 0, "bad": 0, "skipped": len(rows)}
    rows = rows.reset_index(drop=True)
    if REQUEST_ID not in rows.columns or REQUEST_TIME not in rows.columns:
        raise SparkfsError(f"deployment {d.name!r}: the scoring table lacks {REQUEST_ID!r} or "
                           f"{REQUEST_TIME!r}; was it created by fs.deploy(..., table=True)?")
    ids = [r if isinstance(r, str) and r else f"{d.name}-{batch_id}-{i}"
           for i, r in enumerate(rows[REQUEST_ID].tolist())]
    rows = rows.assign(**{REQUEST_ID: ids})
    keys = [k for k, _ in request_spec(inference.catalog, d.binding)[0]]
    problems = []
    for i in range(len(rows)):
        why = [f"entity column {k!r} is null" for k in keys if _null(rows[k].iloc[i])]
        if _null(rows[REQUEST_TIME].iloc[i]):
            why.append(f"{REQUEST_TIME!r} is null")
        problems.append("; ".join(why))
    now = dt.datetime.now(dt.UTC)
    bad = [i for i, p in enumerate(problems) if p]
    good = rows.drop(index=bad).reset_index(drop=True)
    log_rows = [_bad_row(d, rows, i, problems[i], keys, now, batch_id) for i in bad]
    if len(good):
        df, schema, spec, _ = prepare(inference, d.name, good, REQUEST_TIME,
                                      f"table-{batch_id}", keep_event_times=True)
        with arrow_batches_by_rows(df.sparkSession):
            scored = df.mapInPandas(_scorer(spec, False), schema).toPandas()
        log_rows += _scored_rows(d, scored, spec, keys, now, batch_id)
    if log_rows:
        table = to_table(log_rows, d.binding)
        append(d.log_path, table, opts, app_id=txn, app_version=batch_id)
    return {"batch_id": batch_id, "scored": len(good), "bad": len(bad), "skipped": 0}


def _null(v: Any) -> bool:
    if v is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _jsonable(v: Any) -> Any:
    if _null(v):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return v


def _base(d: Any, request_id: str, row: int, now: dt.datetime, batch_id: int) -> dict:
    return {"request_id": request_id, "row": row, "time": now, "deployment": d.name,
            "deployment_revision": d.revision, "scoring_path": "table",
            "model_name": d.model_name, "model_version": d.model_version, "view": d.view,
            "training_set": d.training_set, "latency_ms": None}


def _bad_row(d: Any, rows: Any, i: int, problem: str, keys: list[str], now: dt.datetime,
             batch_id: int) -> dict:
    r = rows.iloc[i]
    row = _base(d, r[REQUEST_ID], 0, now, batch_id)
    others = [c for c in rows.columns if c not in keys and c != REQUEST_ID]
    row.update({"entity": json.dumps({k: _jsonable(r[k]) for k in keys}, default=str),
                "request_data": json.dumps({c: _jsonable(r[c]) for c in others}, default=str),
                "prediction": None, "prediction_json": None,
                "error": f"bad request row (micro-batch {batch_id}): {problem}; not scored",
                "data_versions": None})
    return row


def _scored_rows(d: Any, scored: Any, spec: dict, keys: list[str], now: dt.datetime,
                 batch_id: int) -> list[dict]:
    import pandas as pd

    from .online import numeric

    features = d.binding.column_names
    others = [c for c in spec["other"] if c not in keys and c != REQUEST_ID]
    out = []
    for i in range(len(scored)):
        r = scored.iloc[i]
        row = _base(d, r[REQUEST_ID], 0, now, batch_id)
        row.update({"entity": json.dumps({k: _jsonable(r[k]) for k in keys}, default=str),
                    "request_data": json.dumps({c: _jsonable(r[c]) for c in others},
                                               default=str),
                    "prediction": numeric(_jsonable(r["prediction"])),
                    "prediction_json": r["prediction_json"],
                    "error": None if _null(r["prediction_error"]) else r["prediction_error"],
                    "data_versions": spec["versions"]})
        for c in features:
            v = _jsonable(r[c])
            row[c] = v
            row[f"{c}__status"] = "missing" if v is None else "present"
            et = spec["event_times"].get(c)
            if et is not None and not _null(r[et]):
                t = pd.Timestamp(r[et])
                row[f"{c}__event_time"] = (t.tz_localize("UTC") if t.tzinfo is None
                                           else t.tz_convert("UTC")).to_pydatetime()
        out.append(row)
    return out


def follow(inference: Any, deployment: str, checkpoint: str | None = None,
           once: bool = False, interval_s: float = 1.0):
    """Start the streaming query scoring ``deployment``'s table (module docstring); with
    ``once`` it scores what is there and stops (``availableNow``). Returns the
    ``StreamingQuery`` (``once``: after it has finished)."""
    from ..streaming.sources import delta_source

    d = inference.deployments.get(deployment)
    if not d.request_table:
        raise ValidationError(f"deployment {deployment!r} has no scoring table; deploy it with "
                              "table=True (sparkfs deploy --table)")
    checkpoint = checkpoint or default_checkpoint(d)
    stream_id = claim_checkpoint(checkpoint, deployment)
    source = delta_source(inference.spark(), d.request_table, storage_options=inference.storage_options)

    def batch(frame: Any, batch_id: int) -> None:
        score_micro_batch(inference, deployment, frame.toPandas(), int(batch_id), stream_id)

    writer = (source.writeStream.foreachBatch(batch).option("checkpointLocation", checkpoint)
              .queryName(f"sparkfs-score-{deployment}"))
    writer = writer.trigger(availableNow=True) if once else \
        writer.trigger(processingTime=f"{max(0.1, float(interval_s))} seconds")
    query = writer.start()
    if once:
        try:
            query.awaitTermination()
        except Exception as exc:  # StreamingQueryException: one line, not a py4j trace
            raise SparkfsError(f"scoring table of {deployment!r}: the query failed: "
                               f"{first_line(exc, 400)}; rerun it, the checkpoint resumes where it "
                               "stopped") from None
    return query


def default_checkpoint(d: Any) -> str:
    """The default checkpoint of a deployment's scoring query: ``<request table>_checkpoint``
    (beside the table, not inside it)."""
    return d.request_table.rstrip("/") + "_checkpoint"


__all__ = ["REQUEST_TIME", "REQUEST_ID", "append_requests", "claim_checkpoint",
           "create_request_table", "default_checkpoint", "follow", "request_columns_schema",
           "request_spec", "score_micro_batch"]
