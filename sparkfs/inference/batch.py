"""Batch scoring on Spark: ``fs.score_batch(deployment, spine, timestamp_col)``.

1. Point-in-time features of the deployment's view for every spine row, with the
   Spark engine (``get_historical_features``: the same resolver, on-demand transforms and
   training-set semantics as the model's training set).
2. The model runs on the executors inside a pandas UDF (``mapInPandas``): each Python
   worker loads the pyfunc model once and gets the same ``model_input`` frame the online
   path builds, so both paths hand the model identical columns and dtypes. Nothing is
   collected to the driver.
3. Every prediction is written to the deployment's evaluation table by the task that made
   it (delta-rs append, one commit per partition carrying the app transaction
   ``sparkfs-score-{run_id}-{partition}``): a retried task finds its app transaction and
   writes nothing, so each prediction is logged exactly once.

``score_batch`` runs that job once (a ``noop`` write) and returns the scored DataFrame: the
spine's columns, the features, ``prediction`` (double), ``prediction_json`` and
``prediction_error`` (null, or why the model failed on that row's batch). Log rows carry
``data_versions``: the Delta version of every group read and the transforms run. The returned
DataFrame is lazy and re-scores without logging when used.

>>> callable(score_batch)
True
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from ..errors import SparkfsError

_MODELS: dict[str, Any] = {}


def _load(uri: str) -> Any:
    model = _MODELS.get(uri)
    if model is None:
        import mlflow.pyfunc

        model = _MODELS[uri] = mlflow.pyfunc.load_model(uri)
    return model


def score_batch(fs: Any, inference: Any, deployment: str, spine: Any, timestamp_col: str,
                run_id: str | None = None, log: bool = True, **options: Any):
    """Score ``spine`` with ``deployment`` on Spark (see the module docstring). ``run_id``
    names the run in the evaluation log (``request_id``); default a new id."""
    df, schema, spec, _ = prepare(fs, inference, deployment, spine, timestamp_col,
                                  run_id or uuid.uuid4().hex, **options)
    if log:
        df.mapInPandas(_scorer(spec, True), schema).write.format("noop").mode("overwrite").save()
    return df.mapInPandas(_scorer(spec, False), schema)


def prepare(fs: Any, inference: Any, deployment: str, spine: Any, timestamp_col: str,
            run_id: str, **options: Any):
    """The point-in-time features of ``spine`` for ``deployment`` (a Spark DataFrame), the
    scored frame's schema, the scorer's spec and the join's manifest (Delta versions)."""
    from pyspark.sql import types as T

    d = inference.deployments.get(deployment)
    b = d.binding
    ts = fs.get_historical_features(spine, list(b.features), timestamp_col, engine="spark",
                                    key_map=dict(b.key_map) or None,
                                    full_feature_names=b.full_feature_names, **options)
    df = ts.to_spark()
    missing = [c for c in b.column_names if c not in df.columns]
    if missing:
        raise SparkfsError(f"deployment {deployment!r}: the point-in-time features lack "
                           f"columns {missing}")
    info = inference.models.get_version(d.model_name, d.model_version)
    uri = inference.models.download_uri(info)
    schema = T.StructType(list(df.schema.fields) + [
        T.StructField("prediction", T.DoubleType()),
        T.StructField("prediction_json", T.StringType()),
        T.StructField("prediction_error", T.StringType())])
    spec = {"columns": list(b.columns), "deployment": d.to_spec(), "uri": uri,
            "run_id": run_id, "storage_options": dict(inference.storage_options),
            "other": [c for c in df.columns if c not in b.column_names and not c.startswith("_")],
            "timestamp_col": timestamp_col,
            "versions": data_versions(ts.manifest)}
    return df, schema, spec, ts.manifest


def data_versions(manifest: dict) -> str:
    """The ``data_versions`` log column: JSON of the Delta version of each feature group
    read and the fingerprint of each on-demand transform run."""
    return json.dumps({"delta_versions": {g["label"]: g["delta_version"]
                                          for g in manifest.get("groups", [])},
                       "transforms": dict(manifest.get("on_demand") or {})}, sort_keys=True)


def _scorer(spec: dict, log: bool):
    def score(batches):
        import pandas as pd

        from .deployments import Deployment
        from .evaluation import append, to_table
        from .online import model_input, numeric, prediction_values

        d = Deployment.from_spec(spec["deployment"])
        model = _load(spec["uri"])
        rows: list[dict] = []
        pid = 0
        if log:
            from pyspark import TaskContext

            ctx = TaskContext.get()
            pid = ctx.partitionId() if ctx is not None else 0
        offset = 0
        for pdf in batches:
            if len(pdf) == 0:
                continue
            now = dt.datetime.now(dt.UTC)
            cols = {c: pdf[c].astype(object).where(pdf[c].notna(), None).tolist()
                    for c in d.binding.column_names}
            error = None
            try:
                preds = prediction_values(model.predict(model_input(cols, spec["columns"])),
                                          len(pdf))
            except Exception as exc:
                error = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
                preds = [None] * len(pdf)
            out = pdf.copy()
            out["prediction"] = pd.Series([numeric(p) for p in preds], dtype="float64",
                                          index=pdf.index)
            out["prediction_json"] = [None if error else json.dumps(p, default=str)
                                      for p in preds]
            out["prediction_error"] = None if error is None else \
                f"model {d.model_label} failed: {error}"
            if log:
                others = pdf[spec["other"]].astype(object).where(pdf[spec["other"]].notna(), None)
                for i in range(len(pdf)):
                    row = {"request_id": spec["run_id"], "row": (pid << 32) + offset + i,
                           "time": now, "deployment": d.name,
                           "deployment_revision": d.revision, "scoring_path": "batch",
                           "model_name": d.model_name, "model_version": d.model_version,
                           "view": d.view, "training_set": d.training_set,
                           "entity": json.dumps(others.iloc[i].to_dict(), default=str),
                           "request_data": None, "prediction": numeric(preds[i]),
                           "prediction_json": out["prediction_json"].iloc[i],
                           "latency_ms": None, "error": out["prediction_error"].iloc[i],
                           "data_versions": spec["versions"]}
                    for c in d.binding.column_names:
                        v = cols[c][i]
                        row[c] = v
                        row[f"{c}__status"] = "missing" if v is None else "present"
                    rows.append(row)
            offset += len(pdf)
            yield out
        if log and rows:
            append(d.log_path, to_table(rows, d.binding), spec["storage_options"],
                   app_id=f"sparkfs-score-{spec['run_id']}-{pid}")
    return score
