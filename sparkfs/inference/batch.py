"""Batch scoring on Spark: ``fs.score_batch(deployment, spine, timestamp_col)``.

1. Point-in-time features of the deployment's view for every spine row, with the
   Spark engine (``inference.historical``, i.e. ``get_historical_features``: the same
   resolver, on-demand transforms and training-set semantics as the model's training set),
   with ``event_times=True``: the event time of the history row chosen per group.
   The join runs through ``ScoringEngine``: the engine ``engine="spark"`` picks, except
   that the on-demand transforms are left to step 2 and a spine in the driver's memory is
   summarised from its Arrow rows (no Spark job for its min/max time and hash), and that
   a small history (``sliced_history_bytes``, default 32 MiB; scalar features, no
   aggregations) is joined in step 2's tasks instead, each task its slice of the spine
   (``sparkfs.training.spark_broadcast.sliced_join``: one stage, no shuffle).
2. One pass over each Arrow batch of the join (``mapInPandas``) runs the view's
   on-demand transforms (``OnDemandPlan.compute``: the same ``Transform.run_columns`` on
   the same pandas inputs as their pandas UDFs, read in the session time zone) and then
   the model: each Python worker loads the pyfunc model once and gets the same
   ``model_input`` frame the online path builds (built column-wise from the batch), so
   both paths hand the model identical columns and dtypes. Nothing is collected to the
   driver.
3. In the same pass, the task that made them writes its predictions' log rows as one
   Parquet file into the deployment's evaluation table folder, and after the job the
   driver adds every file in one Delta commit carrying the app transaction
   ``sparkfs-score-{run_id}`` (``sparkfs.inference.batch_log``): a run retried with the
   same run id finds it and logs nothing again, so each prediction is logged exactly
   once. (A log on object storage: each task appends its rows itself, one commit per
   partition with the app transaction ``sparkfs-score-{run_id}-{partition}``.) Per
   feature the log row has its value, status and ``__event_time`` (the chosen row's event
   time; null for on-demand outputs and aggregations, as online).

``score_batch`` runs that job once and returns the scored DataFrame (rows in spine order;
``ordered=False`` skips the join's global sort and returns them in no particular order),
persisted (memory and disk) so that using it does not score again: the spine's columns, the features,
``prediction`` (double), ``prediction_json`` and ``prediction_error`` (null, or why the
model failed on that row's batch). With ``log=False`` nothing runs until the result is
used. Log rows carry ``data_versions``: the Delta version of every group read and the
transforms run.

>>> callable(score_batch)
True
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from ..errors import SparkfsError, one_line
from .batch_log import commit_log_files, run_app_id, run_logged, stage_log_files, write_log_file

_MODELS: dict[str, Any] = {}

#: The per-group event-time columns of the point-in-time join (``event_times=True``).
EVENT_TIME_PREFIX = "__event_time__"


def _load(uri: str) -> Any:
    model = _MODELS.get(uri)
    if model is None:
        import mlflow.pyfunc

        model = _MODELS[uri] = mlflow.pyfunc.load_model(uri)
    return model


def score_batch(inference: Any, deployment: str, spine: Any, timestamp_col: str,
                run_id: str | None = None, log: bool = True, ordered: bool = True,
                **options: Any):
    """Score ``spine`` with ``deployment`` on Spark (see the module docstring). ``run_id``
    names the run in the evaluation log (``request_id``); default a new id. ``inference``
    is the ``sparkfs.inference.Inference`` holding the collaborators.

    The scored rows come in spine order. ``ordered=False`` skips the global sort (a
    sampling job and a range shuffle) and returns them in no particular order, each row
    with its own spine row's columns: the cheaper form when the caller writes the rows
    out or joins them by key.

    ``sliced_history_bytes`` (default 32 MiB; 0 turns it off): the largest feature history
    joined slice by slice in the scoring tasks (``ScoringEngine``). A run whose log rows
    were committed already (the same ``run_id`` run again) scores without logging."""
    from ..training.plan import SPINE_ID

    run_id = run_id or uuid.uuid4().hex
    df, schema, spec, _ = prepare(inference, deployment, spine, timestamp_col, run_id,
                                  spine_id=ordered, **options)
    d = inference.deployments.get(deployment)
    opts = dict(inference.storage_options)
    if log and run_logged(d.log_path, run_id, opts):
        log = False  # exactly once: this run's rows are in the log already
    if log:
        spec["staged"] = stage_log_files(d.log_path, run_id)
    scored = df.mapInPandas(_scorer(spec, log), schema)
    if log:
        from pyspark import StorageLevel

        # one pass: the logging job fills the cache the caller then reads
        scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
        scored.write.format("noop").mode("overwrite").save()
        if spec["staged"] is not None:
            commit_log_files(d.log_path, run_id, spec["staged"], d.binding, opts)
    if ordered:
        scored = scored.orderBy(SPINE_ID).drop(SPINE_ID)
    return scored


def prepare(inference: Any, deployment: str, spine: Any, timestamp_col: str,
            run_id: str, keep_event_times: bool = False, spine_id: bool = False,
            **options: Any):
    """The point-in-time features of ``spine`` for ``deployment`` (a Spark DataFrame, with
    the event-time columns; unsorted; the on-demand outputs not yet computed: the scorer
    adds them, see ``ScoringEngine``), the scored frame's schema (without the event times
    unless ``keep_event_times``; with ``_spine_id`` when ``spine_id``), the scorer's spec
    and the join's manifest (Delta versions)."""
    from pyspark.sql import types as T

    from ..training.plan import SPINE_ID

    d = inference.deployments.get(deployment)
    b = d.binding
    engine = ScoringEngine.around(spine, options)
    ts = inference.historical(spine, list(b.features), timestamp_col, engine=engine,
                              key_map=dict(b.key_map) or None,
                              full_feature_names=b.full_feature_names, event_times=True,
                              **options)
    sliced = engine.sliced
    # a sliced join finds each row's features by its _spine_id, in the scoring task
    df = ts.to_spark(ordered=False, spine_id=spine_id or sliced is not None)
    plan = engine.plan
    od = on_demand_spec(plan)
    fields = {f.name: f for f in df.schema.fields}
    if sliced is not None:
        fields.update(sliced.fields)
    have = set(fields) | set(od["names"].values() if od else ())
    missing = [c for c in b.column_names if c not in have]
    if missing:
        raise SparkfsError(f"deployment {deployment!r}: the point-in-time features lack "
                           f"columns {missing}")
    info = inference.models.get_version(d.model_name, d.model_version)
    uri = inference.models.download_uri(info)
    times = feature_event_times(ts.manifest, b.column_names)
    order = ([SPINE_ID] if spine_id else []) + plan.output_columns + (
        plan.event_time_columns if keep_event_times else [])
    out_fields = [fields[c] if c in fields else
                  T.StructField(c, spark_data_type(plan.request.dtypes[c])) for c in order]
    schema = T.StructType(out_fields + [
        T.StructField("prediction", T.DoubleType()),
        T.StructField("prediction_json", T.StringType()),
        T.StructField("prediction_error", T.StringType())])
    spec = {"columns": list(b.columns), "deployment": d.to_spec(), "uri": uri,
            "run_id": run_id, "storage_options": dict(inference.storage_options),
            "other": [c for c in order if c not in b.column_names and not c.startswith("_")],
            "out": list(order), "event_times": times, "on_demand": od,
            "timezone": df.sparkSession.conf.get("spark.sql.session.timeZone") or "UTC",
            "timestamp_col": timestamp_col, "versions": data_versions(ts.manifest),
            "sliced": sliced, "staged": None}
    return df, schema, spec, ts.manifest


class ScoringEngine:
    """The point-in-time join as batch scoring runs it: a ``JoinEngine``
    (``sparkfs.training.engines``) wrapping the one ``engine="spark"`` chooses, with two
    differences that leave every value unchanged:

    * the on-demand transforms are not run by the join (one pandas UDF per transform):
      the join returns the columns they read (hidden ones included) and the scorer runs
      them and the model in one pass over each Arrow batch (``on_demand_spec``);
    * a spine held in the driver (pandas/Arrow) is summarised from its Arrow rows (min/max
      time, rows, hash) instead of by a Spark job.

    * when the spine is held in the driver, every group is as-of with scalar features and
      their histories are small (at most ``sliced_history_bytes`` of local files, default
      32 MiB; 0 turns it off), the join is not a Spark plan at all: ``join`` returns the
      spine and leaves ``sliced`` (a ``sparkfs.training.spark_broadcast.SlicedJoin``) for
      the scorer, whose tasks each join their slice of the spine with DuckDB against the
      whole history and score it in the same pass (one stage, no shuffle).

    >>> import pandas as pd
    >>> e = ScoringEngine.around(pd.DataFrame({"a": [1]}), {"sliced_history_bytes": 0})
    >>> type(e.inner).__name__, e.sliced_history_bytes
    ('SparkBroadcastEngine', 0)
    """

    name = "spark"

    def __init__(self, inner: Any, sliced_history_bytes: int | None = None) -> None:
        from ..training.spark_broadcast import DEFAULT_SLICED_HISTORY_BYTES

        limit = DEFAULT_SLICED_HISTORY_BYTES if sliced_history_bytes is None \
            else sliced_history_bytes
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise SparkfsError(f"sliced_history_bytes must be an integer >= 0 (0 turns the "
                               f"sliced join off), got {sliced_history_bytes!r}")
        self.inner = inner
        self.sliced_history_bytes = limit
        self.plan: Any = None  # the resolved plan, once joined
        self.sliced: Any = None  # the SlicedJoin the scorer runs, when the join is sliced

    @classmethod
    def around(cls, spine: Any, options: dict) -> "ScoringEngine":
        """The engine ``engine="spark"`` would choose for ``spine``, wrapped; the engine
        options (``time_buckets``, ``hot_key_rows``, ``broadcast_spine_rows``) are taken
        out of ``options``, and ``sliced_history_bytes`` (see the class docstring)."""
        from ..training.engines import choose_engine

        tuning = {k: options.pop(k) for k in ("time_buckets", "hot_key_rows",
                                              "broadcast_spine_rows") if k in options}
        return cls(choose_engine("spark", spine, **tuning),
                   options.pop("sliced_history_bytes", None))

    def options(self) -> dict:
        return self.inner.options()

    def prepare_spine(self, spark: Any, spine: Any, timestamp_col: str,
                      keep_id: bool = False) -> Any:
        return self.inner.prepare_spine(spark, spine, timestamp_col, keep_id=keep_id)

    def summary(self, spine: Any, timestamp_col: str) -> dict:
        """What the join prunes by, from the Arrow rows when the driver holds them: min/max
        time (epoch µs) and rows. No spine hash: a scoring run's manifest is not stored
        (its log rows carry ``data_versions``), so nothing would read it."""
        if spine.arrow is not None:
            import pyarrow as pa
            import pyarrow.compute as pc

            mm = pc.min_max(spine.arrow.column(timestamp_col).cast(pa.int64())).as_py()
            return {"lo": mm["min"], "hi": mm["max"], "rows": spine.arrow.num_rows,
                    "hash": None}
        return self.inner.summary(spine, timestamp_col)

    def join(self, offline: Any, plan: Any, spine: Any, summary: dict) -> Any:
        import dataclasses

        from ..training.spark import join_spark

        self.plan = plan
        # without on-demand features: every group column (the hidden inputs too)
        bare = dataclasses.replace(plan, on_demand=None, on_demand_columns=[], hidden=set(),
                                   request=None)
        if spine.arrow is not None and spine.frame is not None:
            from ..training.spark_broadcast import sliced_join, sliced_paths

            paths = sliced_paths(offline, bare.groups, self.sliced_history_bytes)
            if paths is not None:
                self.sliced = sliced_join(bare, spine, summary, paths)
                return spine.frame  # the spine (with _spine_id): each task joins its slice
        return join_spark(offline, bare, spine, summary, self.inner)


def on_demand_spec(plan: Any) -> dict | None:
    """What the scorer needs to run a plan's on-demand transforms on the executors: the
    transforms (pickled by value, as their pandas UDFs would be), the requested outputs,
    the input dtypes, the join column each looked-up input is read from and each output's
    column name. None when the plan has none."""
    od = plan.on_demand
    if od is None:
        return None
    from pyspark import cloudpickle

    from ..training.plan import on_demand_inputs
    from ..transforms import _dumps_by_value

    return {"transforms": [_dumps_by_value(cloudpickle, t) for t in od.transforms],
            "requested": list(od.requested), "feature_dtypes": dict(od.feature_dtypes),
            "group_refs": list(od.group_refs), "sources": on_demand_inputs(plan),
            "names": dict(plan.request.on_demand_columns)}


def spark_data_type(dtype: str) -> Any:
    """The Spark ``DataType`` of sparkfs dtype ``dtype`` (no JVM needed).

    >>> spark_data_type("long")
    LongType()
    """
    from pyspark.sql.pandas.types import from_arrow_type

    from ..dtypes import arrow_type

    return from_arrow_type(arrow_type(dtype))


def feature_event_times(manifest: dict, columns: list[str]) -> dict[str, str]:
    """Model input column -> the join's event-time column of the group it came from
    (as-of groups only: on-demand outputs and aggregations have none).

    >>> m = {"groups": [{"label": "weather@1", "columns": ["temp"], "aggregations": False}]}
    >>> feature_event_times(m, ["temp", "hour_of_day"])
    {'temp': '__event_time__weather@1'}
    """
    out = {}
    for g in manifest.get("groups", []):
        if g.get("aggregations"):
            continue
        for c in g.get("columns", []):
            if c in columns:
                out[c] = EVENT_TIME_PREFIX + g["label"]
    return out


def data_versions(manifest: dict) -> str:
    """The ``data_versions`` log column: JSON of the Delta version of each feature group
    read and the fingerprint of each on-demand transform run."""
    return json.dumps({"delta_versions": {g["label"]: g["delta_version"]
                                          for g in manifest.get("groups", [])},
                       "transforms": dict(manifest.get("on_demand") or {})}, sort_keys=True)


def score_frame(model: Any, pdf: Any, spec: dict, label: str) -> tuple[Any, str | None]:
    """``pdf`` (one Arrow batch as pandas) with ``prediction``, ``prediction_json`` and
    ``prediction_error`` added, and the model's one-line error (or None)."""
    import numpy as np
    import pandas as pd

    from .online import model_input_frame, numeric, prediction_values

    n = len(pdf)
    error = None
    raw = None
    try:
        raw = model.predict(model_input_frame(pdf, spec["columns"]))
        preds = prediction_values(raw, n)
    except Exception as exc:
        error = one_line(exc)
        preds = [None] * n
    out = pdf[spec["out"]].copy()
    arr = np.asarray(raw) if raw is not None and error is None and not isinstance(
        raw, pd.DataFrame) else None
    if arr is not None and arr.ndim == 1 and arr.dtype.kind in "fiu":
        from .evaluation import json_values

        out["prediction"] = arr.astype("float64")
        # json.dumps of each value, built column-wise
        out["prediction_json"] = json_values(preds).to_numpy(zero_copy_only=False)
    else:
        out["prediction"] = pd.Series([numeric(p) for p in preds], dtype="float64",
                                      index=pdf.index)
        out["prediction_json"] = [None if error else json.dumps(p, default=str)
                                  for p in preds]
    out["prediction_error"] = None if error is None else f"model {label} failed: {error}"
    return out, error


def log_table(d: Any, pdf: Any, out: Any, spec: dict, now: dt.datetime, first_row: int,
              scoring_path: str = "batch", request_ids: Any = None):
    """The evaluation-log rows of one scored batch as Arrow, built column-wise (the
    ``entity`` JSON too: ``json_objects``, the text ``json.dumps`` gives each row)."""
    import numpy as np
    import pyarrow as pa

    from .evaluation import json_objects, log_schema

    n = len(pdf)
    others = pdf[spec["other"]].astype(object).where(pdf[spec["other"]].notna(), None)
    cols: dict[str, Any] = {
        "request_id": list(request_ids) if request_ids is not None else [spec["run_id"]] * n,
        "row": np.arange(first_row, first_row + n, dtype=np.int64),
        "time": pa.array([now], pa.timestamp("us", "UTC")).take(np.zeros(n, dtype=np.int64)),
        "deployment": [d.name] * n, "deployment_revision": [d.revision] * n,
        "scoring_path": [scoring_path] * n, "model_name": [d.model_name] * n,
        "model_version": [d.model_version] * n, "view": [d.view] * n,
        "training_set": [d.training_set] * n,
        "entity": json_objects({c: others[c].tolist() for c in others.columns}, n),
        "prediction": out["prediction"].to_numpy(),
        "prediction_json": out["prediction_json"].tolist(),
        "error": [out["prediction_error"].iloc[0]] * n if n else [],
        "data_versions": [spec["versions"]] * n}
    for c in d.binding.column_names:
        s = pdf[c]
        missing = s.isna().to_numpy()
        cols[c] = s.astype(object).where(~missing, None).tolist()
        cols[f"{c}__status"] = np.where(missing, "missing", "present").astype(object)
        et = spec["event_times"].get(c)
        if et is not None and et in pdf.columns:
            cols[f"{c}__event_time"] = _utc_array(pdf[et])
    schema = log_schema(d.binding)
    return pa.table({f.name: _arrow(cols[f.name], f.type) if f.name in cols
                     else pa.nulls(n, f.type) for f in schema}, schema=schema)


def _arrow(values: Any, type_: Any) -> Any:
    import pyarrow as pa

    if isinstance(values, pa.Array):
        return values if values.type == type_ else values.cast(type_)
    return pa.array(values, type_)


def _utc_array(s: Any) -> Any:
    """``pd_utc`` as an Arrow array (timestamp[us, UTC]; NaT -> null), column-wise."""
    import pandas as pd
    import pyarrow as pa

    s = pd.to_datetime(s)
    s = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
    return pa.array(s, from_pandas=True).cast(pa.timestamp("us", "UTC"))


def pd_utc(s: Any) -> Any:
    """A timestamp column from Spark (naive, session time zone UTC) as UTC-aware values."""
    import pandas as pd

    s = pd.to_datetime(s)
    return (s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")).astype(object) \
        .where(s.notna(), None).tolist()


def on_demand_plan(od: dict | None) -> Any:
    """The ``OnDemandPlan`` of an ``on_demand_spec`` (in the Python worker), or None."""
    if od is None:
        return None
    from pyspark import cloudpickle

    from ..ondemand import OnDemandPlan

    return OnDemandPlan([cloudpickle.loads(t) for t in od["transforms"]], od["requested"],
                        od["feature_dtypes"], od["group_refs"])


def with_on_demand(pdf: Any, plan: Any, spec: dict) -> Any:
    """``pdf`` (one Arrow batch of the join, as pandas) with the on-demand outputs added
    under their column names: each transform runs once on the batch, on the same inputs
    (pandas Series as Spark hands a pandas UDF, read in the session time zone) and through
    the same ``Transform.run_columns`` as its pandas UDF would."""
    od = spec["on_demand"]
    sources = od["sources"]
    columns = {c: pdf[c] for c in pdf.columns}
    for short, col in sources.items():
        columns[short] = pdf[col]
    pdf = pdf.copy(deep=False)
    for n, s in plan.compute(columns, tz=spec["timezone"]).items():
        pdf[od["names"].get(n, n)] = s.set_axis(pdf.index)
    return pdf


def _scorer(spec: dict, log: bool):
    def score(batches):
        from .deployments import Deployment
        from .evaluation import append

        d = Deployment.from_spec(spec["deployment"])
        model = _load(spec["uri"])
        od = on_demand_plan(spec["on_demand"])
        sliced = spec["sliced"].open() if spec["sliced"] is not None else None
        tables = []
        pid = 0
        if log:
            from pyspark import TaskContext

            ctx = TaskContext.get()
            pid = ctx.partitionId() if ctx is not None else 0
        offset = 0
        try:
            for pdf in batches:
                if len(pdf) == 0:
                    continue
                if sliced is not None:
                    pdf = sliced.join(pdf)
                if od is not None:
                    pdf = with_on_demand(pdf, od, spec)
                out, _ = score_frame(model, pdf, spec, d.model_label)
                if log:
                    tables.append(log_table(d, pdf, out, spec, dt.datetime.now(dt.UTC),
                                            (pid << 32) + offset))
                offset += len(pdf)
                yield out
        finally:
            if sliced is not None:
                sliced.close()
        if log and tables:
            import pyarrow as pa

            rows = pa.concat_tables(tables)
            if spec["staged"] is not None:
                write_log_file(spec["staged"], rows, pid)
            else:  # a remote log: each task commits its rows under its own app transaction
                append(d.log_path, rows, spec["storage_options"],
                       app_id=f"{run_app_id(spec['run_id'])}-{pid}")
    return score
