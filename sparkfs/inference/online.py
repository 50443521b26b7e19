"""Online scoring: entity rows -> the view's features online -> on-demand transforms ->
the model, in process. The HTTP route (``sparkfs.serving.deployments``) calls the same
function.

The model receives ``model_input(...)``: one pandas column per model input column, in the
signature's order, the same on every path: floats with NaN for missing values, integers
as float64 (NaN for missing; the signature declares them double, see
``sparkfs.models.binding``, so a batch with and without missing values looks the same),
timestamps as UTC datetimes. Booleans follow the training set's rule (Arrow's nullable
boolean as pandas gives it): bool when no value is missing, else object holding
True/False/None (a NaN is a missing value, never True). MLflow's schema check accepts both
for a ``boolean`` input, so a missing flag reaches the model as None on every path, as it
did in training.

>>> import pandas as pd
>>> model_input({"t": [1.5, None], "n": [1, 2]}, [("t", "double"), ("n", "long")]).dtypes.tolist()
[dtype('float64'), dtype('float64')]
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ..errors import PredictionError, one_line
from .deployments import Deployment
from .evaluation import EvaluationLogger, JsonColumn, Repeat
from .logcolumns import json_safe as _json_safe


def model_input(columns: Mapping[str, Sequence[Any]], spec: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """The model's input frame from feature columns (see the module docstring)."""
    out: dict[str, Any] = {}
    for name, dtype in spec:
        values = list(columns[name])
        if dtype in ("double", "float", "int", "long"):  # int/long: float64, NaN if missing
            # numpy turns None into NaN for a float array
            s = np.array(values, dtype="float32" if dtype == "float" else "float64")
        elif dtype == "boolean":
            s = pd.Series([None if _missing(v) else bool(v) for v in values], dtype=object)
            if s.notna().all():
                s = s.astype(bool)
        elif dtype in ("timestamp", "date"):
            s = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        else:
            s = pd.Series(values, dtype=object)
        out[name] = s
    return pd.DataFrame(out, copy=False)


def model_input_frame(frame: pd.DataFrame, spec: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """``model_input`` of a pandas frame (one Arrow batch on the executors), column-wise:
    the same dtypes and missing values as ``model_input`` of the same values.

    >>> f = pd.DataFrame({"t": [1.5, None], "b": [True, None]})
    >>> model_input_frame(f, [("t", "double"), ("b", "boolean")]).to_dict("list")
    {'t': [1.5, nan], 'b': [True, None]}
    """
    out = {}
    for name, dtype in spec:
        col = frame[name]
        if dtype in ("double", "int", "long"):
            s = pd.to_numeric(col, errors="coerce").astype("float64")
        elif dtype == "float":
            s = pd.to_numeric(col, errors="coerce").astype("float32")
        elif dtype == "boolean":
            missing = col.isna()
            s = col.astype(object).where(~missing, None)
            s = s.astype(bool) if not missing.any() else s
        elif dtype in ("timestamp", "date"):
            s = pd.to_datetime(col, utc=True)
        else:
            s = col.astype(object).where(col.notna(), None)
        out[name] = s.reset_index(drop=True)
    return pd.DataFrame(out)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def prediction_values(raw: Any, n: int) -> list:
    """A model's output as one Python value per row (a row of several outputs is a dict)."""
    if isinstance(raw, pd.DataFrame):
        if raw.shape[1] == 1:
            raw = raw.iloc[:, 0]
        else:
            return [{k: _py(v) for k, v in r.items()} for r in raw.to_dict("records")]
    if isinstance(raw, np.ndarray) and raw.ndim == 1 and raw.dtype.kind in "fiub":
        values = raw.tolist()  # Python numbers already: what _py gives each one
    else:
        if hasattr(raw, "tolist"):
            raw = raw.tolist()
        values = [_py(v) for v in list(raw)]
    if len(values) != n:
        raise ValueError(f"the model returned {len(values)} predictions for {n} rows")
    return values


def _py(v: Any) -> Any:
    if hasattr(v, "item") and not isinstance(v, (list, dict)):
        try:
            return v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, list):
        return [_py(x) for x in v]
    return v


def numeric(v: Any) -> float | None:
    """The ``prediction`` column's value: the float of a numeric prediction, else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def numeric_column(values: Sequence[Any]) -> list[float | None]:
    """``[numeric(v) for v in values]``, without a call per value when every value is
    already a float (or an int: its float), the common output of a regression model.

    >>> numeric_column([1.5, 2]), numeric_column([True, "a", 3])
    ([1.5, 2.0], [None, None, 3.0])
    """
    kinds = set(map(type, values))
    if kinds <= {float}:
        return list(values)
    if kinds <= {float, int}:
        return list(map(float, values))
    return [numeric(v) for v in values]


@dataclass
class PredictionResult:
    """What ``predict`` returns: one prediction per entity row, the features used."""

    request_id: str
    deployment: str
    model_name: str
    model_version: int
    predictions: list
    features: dict[str, list]
    statuses: dict[str, list[str]]
    event_times: dict[str, list] = field(default_factory=dict)
    latency_ms: float = 0.0
    logged: bool = False

    def to_dict(self) -> dict:
        """JSON-able (event times as ISO strings, NaN as None)."""
        return {"request_id": self.request_id, "deployment": self.deployment,
                "model": {"name": self.model_name, "version": self.model_version},
                "predictions": [_json_safe(p) for p in self.predictions],
                "features": {k: [_json_safe(v) for v in vs] for k, vs in self.features.items()},
                "statuses": self.statuses,
                "event_times": {k: [t.isoformat() if isinstance(t, dt.datetime) else None
                                    for t in ts] for k, ts in self.event_times.items()},
                "latency_ms": self.latency_ms, "logged": self.logged}


    def to_json(self) -> bytes:
        """``orjson.dumps(self.to_dict(), default=str)``, the same bytes, without the
        per-value pass: orjson itself writes NaN and infinities as null and datetimes in
        ISO format; the rest (numpy floats, pandas timestamps) goes through
        ``_json_default`` as ``to_dict`` would have it. The service's predict route answers
        with it.

        >>> r = PredictionResult("r1", "d", "m", 2, [1.5], {"t": [float("nan")]},
        ...                      {"t": ["missing"]}, {"t": [None]})
        >>> r.to_json() == orjson.dumps(r.to_dict(), default=str)
        True
        """
        body = {"request_id": self.request_id, "deployment": self.deployment,
                "model": {"name": self.model_name, "version": self.model_version},
                "predictions": self.predictions, "features": self.features,
                "statuses": self.statuses,
                "event_times": {k: ts if all(t is None or type(t) is dt.datetime for t in ts)
                                else [t.isoformat() if isinstance(t, dt.datetime) else None
                                      for t in ts] for k, ts in self.event_times.items()},
                "latency_ms": self.latency_ms, "logged": self.logged}
        return orjson.dumps(body, default=_json_default)


def _json_default(v: Any) -> Any:
    """What ``to_dict`` then ``orjson.dumps(..., default=str)`` write for a value orjson
    does not know (a float subclass such as numpy's, a pandas timestamp)."""
    if isinstance(v, float):
        return str(v) if math.isfinite(v) else None
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return str(v)


def predict(d: Deployment, model: Any, read_features: Callable[..., Any],
            entity_rows: Sequence[Mapping[str, Any]], request_data: Any,
            logger: EvaluationLogger | None, scoring_path: str = "online") -> PredictionResult:
    """Score ``entity_rows`` with deployment ``d`` (its model already loaded as ``model``);
    queue the log rows. A model that raises -> ``PredictionError`` with the request id,
    its failure logged; bad input (missing key or request field) raises before the model."""
    start = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    request_id = uuid.uuid4().hex
    b = d.binding
    response = read_features(list(b.features), entity_rows, request_data=request_data,
                             full_feature_names=b.full_feature_names)
    values = response.to_dict()
    names = b.column_names
    error = None
    preds: list = [None] * len(response)
    try:
        if len(response):
            preds = prediction_values(model.predict(model_input(values, b.columns)), len(response))
    except Exception as exc:  # the model's own failure: reported, logged, never a traceback
        reason = one_line(exc)
        error = f"model {d.model_label} failed: {reason}"
    latency = (time.perf_counter() - start) * 1000.0
    result = PredictionResult(request_id, d.name, d.model_name, d.model_version, preds,
                              {n: values[n] for n in names},
                              {n: response.statuses[n] for n in names},
                              {n: response.event_times[n] for n in names}, round(latency, 3))
    if logger is not None:
        if d.sample_rate >= 1.0 or random.random() < d.sample_rate:
            # built by the writer thread, from copies: the request pays only for the copies
            keys = {k: list(values[k]) for k in response.join_keys}
            logged = PredictionResult(request_id, d.name, d.model_name, d.model_version,
                                      list(preds), {n: list(v) for n, v in result.features.items()},
                                      {n: list(v) for n, v in result.statuses.items()},
                                      _copied(result.event_times), result.latency_ms)
            request = ({k: list(v) for k, v in request_data.items()} if request_data else None)
            result.logged = logger.submit(
                d.name, d.log_path, b, lambda: log_columns(d, logged, keys, request, now,
                                                           scoring_path, error),
                n=len(response))
        else:
            logger.count_sampled_out(d.name, len(response))
    if error is not None:
        raise PredictionError(f"deployment {d.name!r}, request {request_id}: {error}",
                              request_id=request_id)
    return result


def _copied(columns: Mapping[str, list]) -> dict[str, list]:
    """A copy of each column; columns that share one list (the event times of one
    group's features) share its copy, so the log converts it once.

    >>> t = [None]
    >>> c = _copied({"a": t, "b": t}); c["a"] is c["b"], c["a"] is t
    (True, False)
    """
    seen: dict[int, list] = {}
    out = {}
    for name, values in columns.items():
        copy = seen.get(id(values))
        if copy is None:
            copy = seen[id(values)] = list(values)
        out[name] = copy
    return out


def log_columns(d: Deployment, result: PredictionResult, keys: Mapping[str, Sequence[Any]],
                request_data: Any, now: dt.datetime, scoring_path: str,
                error: str | None) -> dict[str, list]:
    """``log_rows`` column-wise (``{column: values}``, one value per entity row): what the
    log writer appends, built without a dict per row. The JSON columns (``entity``,
    ``request_data``, ``prediction_json``) come as ``JsonColumn``: the writer builds their
    text column-wise, once for all the requests of an append, with the same text
    ``log_rows`` writes. The feature, status and event-time lists of ``result`` become
    columns as they are (not copied: ``predict`` hands it copies), so columns that share a
    list share it in the log too.

    >>> from sparkfs.models.binding import FeatureBinding
    >>> d = Deployment("d", 1, "m", 2, "v@1", "t@1", FeatureBinding(None, (),
    ...                (("temp", "double"),)), 1.0, "/log", "")
    >>> r = PredictionResult("r1", "d", "m", 2, [1.5, None], {"temp": [3.0, None]},
    ...                      {"temp": ["present", "missing"]}, {"temp": [None, None]})
    >>> cols = log_columns(d, r, {"origin": ["JFK", "LGA"]}, None, None, "online", None)
    >>> cols["entity"].array().to_pylist(), cols["prediction_json"].array().to_pylist()
    (['{"origin": "JFK"}', '{"origin": "LGA"}'], ['1.5', 'null'])
    >>> cols["temp__status"], cols["model_version"].tolist()
    (['present', 'missing'], [2, 2])
    """
    n = len(result.predictions)
    cols: dict[str, Any] = {
        "request_id": Repeat(result.request_id, n), "row": list(range(n)),
        "time": Repeat(now, n), "deployment": Repeat(d.name, n),
        "deployment_revision": Repeat(d.revision, n), "scoring_path": Repeat(scoring_path, n),
        "model_name": Repeat(d.model_name, n), "model_version": Repeat(d.model_version, n),
        "view": Repeat(d.view, n), "training_set": Repeat(d.training_set, n),
        "entity": JsonColumn(n, objects=keys),
        "request_data": JsonColumn(n, objects=request_data) if request_data
        else JsonColumn(n, null=True),
        "prediction": numeric_column(result.predictions),
        "prediction_json": JsonColumn(n, null=True) if error else
        JsonColumn(n, values=result.predictions, finite_only=True),
        "latency_ms": Repeat(result.latency_ms, n), "error": Repeat(error, n)}
    for c in d.binding.column_names:
        cols[c] = result.features[c]
        cols[f"{c}__status"] = result.statuses[c]
        cols[f"{c}__event_time"] = result.event_times[c]
    return cols


def log_rows(d: Deployment, result: PredictionResult, keys: Mapping[str, Sequence[Any]],
             request_data: Any, now: dt.datetime, scoring_path: str,
             error: str | None) -> list[dict]:
    """One evaluation-store row per entity row (see ``sparkfs.inference.evaluation``):
    ``keys`` are the join-key columns of the request, ``request_data`` its request-time
    columns."""
    rows = []
    for i in range(len(result.predictions)):
        row = {"request_id": result.request_id, "row": i, "time": now, "deployment": d.name,
               "deployment_revision": d.revision, "scoring_path": scoring_path,
               "model_name": d.model_name, "model_version": d.model_version,
               "view": d.view, "training_set": d.training_set,
               "entity": json.dumps({k: v[i] for k, v in keys.items()}, default=str),
               "request_data": json.dumps({k: v[i] for k, v in (request_data or {}).items()},
                                          default=str) if request_data else None,
               "prediction": numeric(result.predictions[i]),
               "prediction_json": None if error else json.dumps(_json_safe(result.predictions[i]),
                                                                default=str),
               "latency_ms": result.latency_ms, "error": error}
        for n in d.binding.column_names:
            row[n] = result.features[n][i]
            row[f"{n}__status"] = result.statuses[n][i]
            row[f"{n}__event_time"] = result.event_times[n][i]
        rows.append(row)
    return rows
