"""HTTP routes of deployments, added to the online service by ``register(app, inference, serving)``.

``POST /deployments/{name}/predict``
    ``{"entity_rows": [{"origin": "JFK"}], "request_data": {"sched_dep_ts": ["..."]}}``
    returns ``{"request_id", "deployment", "model": {"name", "version"}, "predictions",
    "features", "statuses", "event_times", "latency_ms", "logged"}``. Unknown deployment,
    model or view -> 404 naming it and listing what exists; a missing key or request field
    -> 422 naming it; a model that raises -> 500 ``{"detail": <one line>, "request_id"}``
    (never a stack trace; the failure is in the evaluation log).
``GET /deployments``
    The current revision of each deployment.
Every route takes the service's API key when ``serving.auth`` is on; predicting needs
scope ``predict`` (or ``predict:<deployment>``). The predict body is parsed once, by the
body guard (``sparkfs.serving.middleware.PARSED_BODY``), and checked by ``predict_body``
with ``PredictRequest``'s rules and words; the OpenAPI document shows its schema inline.

``GET /metrics``
    Prometheus text: evaluation-log rows logged, dropped (queue full), failed and sampled
    out, per deployment.

Each worker process loads a deployed model once (``ModelRegistry.load``): at startup a
background thread loads the model of every current deployment (``warm_models``), so the
first request does not pay for it (a request arriving meanwhile waits for that load, and a
model that fails to load is logged and tried again by its first request). A worker sees a
new deployment revision without a restart: ``Deployments`` re-reads a deployment at most 1 s
(``max_age_s``) after it last read it, so a redeploy by another process or host shows
within a second with the PostgreSQL registry too (a SQLite registry's file change is seen
on the next request); a request in flight keeps the revision and model it started with. Once a
model is loaded the worker freezes its heap (``sparkfs.inference.freeze_heap``): a full
garbage collection over the libraries' and the model's objects otherwise stalls every
request in flight for half a second now and then. On shutdown (SIGTERM, Ctrl-C) the
evaluation log is flushed before the process exits.

A worker runs ``serving.predict_threads`` predictions at once (default 1), first come,
first served; the others wait their turn. A prediction is Python work that holds the GIL
(lookup, transforms, the model's input frame), so threads add no throughput, and requests
sharing the GIL all finish late: measured with 8 clients, one at a time gave a p99 of
about half of 40 threads' (``bench/inference.py``). More threads pay off for what waits
without the GIL (HBase reads over the network, a model on a GPU); more worker processes
(``sparkfs serve --workers``) use more cores.

>>> import tempfile
>>> from fastapi.testclient import TestClient
>>> from sparkfs import FeatureStore
>>> from sparkfs.serving.app import create_app  # calls register(app, ...)
>>> client = TestClient(create_app(FeatureStore({"data_dir": tempfile.mkdtemp()})))
>>> r = client.post("/deployments/nope/predict", json={"entity_rows": [{"origin": "JFK"}]})
>>> r.status_code, r.json()["detail"]
(404, "deployment 'nope' does not exist; deployments: none (create one with fs.deploy)")
>>> "sparkfs_evaluation_log_rows_total" in client.get("/metrics").text
True
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from ..errors import (
    DefinitionError,
    NotFoundError,
    PredictionError,
    TransformError,
    ValidationError,
    first_line,
)
from ..ondemand import CodeNotLoadedError
from .auth import principal_of
from .errors import malformed_detail  # noqa: F401 (the doctest of predict_body)
from .middleware import PARSED_BODY, is_json, parse_json
from .routes import Caller
from .schemas import ERROR_RESPONSES

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ServingConfig
    from ..inference import Inference

error_log = logging.getLogger("sparkfs.serving")


class PredictRequest(BaseModel):
    """Body of ``POST /deployments/{name}/predict``."""

    model_config = ConfigDict(extra="forbid")

    entity_rows: list[dict[str, Any]] = Field(min_length=1, description="one object of "
                                              "join-key values per row")
    request_data: dict[str, list[Any]] | None = Field(
        default=None, description="request-time columns for the view's on-demand transforms")


_BODY_KEYS = frozenset(("entity_rows", "request_data"))


def predict_body(parsed: Any) -> tuple[list[dict[str, Any]], dict[str, list[Any]] | None]:
    """``(entity_rows, request_data)`` of a predict request's parsed JSON body, checked as
    ``PredictRequest`` checks it, without building one: the common, valid shape is
    recognised at once; anything else goes through ``PredictRequest`` so a bad body gets
    pydantic's own words (``RequestValidationError``: 422 naming the field, as before).
    ``None`` is a missing body.

    >>> predict_body({"entity_rows": [{"origin": "JFK"}]})
    ([{'origin': 'JFK'}], None)
    >>> try:
    ...     predict_body({"entity_rows": []})
    ... except RequestValidationError as exc:
    ...     print(malformed_detail(exc))
    malformed request: entity_rows: List should have at least 1 item after validation, not 0
    """
    if type(parsed) is dict and parsed.keys() <= _BODY_KEYS:
        rows = parsed.get("entity_rows")
        data = parsed.get("request_data")
        if (type(rows) is list and rows and all(type(r) is dict for r in rows)
                and (data is None or (type(data) is dict
                                      and all(type(v) is list for v in data.values())))):
            return rows, data
    if parsed is None:
        raise RequestValidationError([{"type": "missing", "loc": ("body",),
                                       "msg": "Field required", "input": None}])
    try:  # as FastAPI validated the body (from_attributes: its wording for a non-object)
        body = PredictRequest.model_validate(parsed, from_attributes=True)
    except PydanticValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in exc.errors()]) from None
    return body.entity_rows, body.request_data


async def _parsed_body(request: Request) -> Any:
    """The JSON body ``BodyGuard`` parsed (``PARSED_BODY``); without it (no body, not a
    JSON content type, or an app without the middleware) what FastAPI would have
    validated: JSON for a JSON content type, else the bytes, ``None`` when empty."""
    scope = request.scope
    if PARSED_BODY in scope:
        return scope[PARSED_BODY]
    raw = await request.body()
    if not raw:
        return None
    return parse_json(raw) if is_json(scope) else raw


class ModelRef(BaseModel):
    name: str
    version: int


class PredictResponse(BaseModel):
    request_id: str
    deployment: str
    model: ModelRef
    predictions: list[Any]
    features: dict[str, list[Any]]
    statuses: dict[str, list[str]]
    event_times: dict[str, list[str | None]]
    latency_ms: float
    logged: bool


class PredictError(BaseModel):
    detail: str
    request_id: str | None = None


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=str), status_code=status,
                    media_type="application/json")


def register(app: FastAPI, inference: Inference, serving: ServingConfig) -> None:
    """Add the deployment routes and ``/metrics`` to ``app``, serving the deployments of
    ``inference`` (``sparkfs.inference.Inference``) within the limits of ``serving`` (the
    config section; ``max_batch_size``). See the module docstring for an example."""
    limit = serving.max_batch_size
    slots: list[anyio.CapacityLimiter] = []  # this event loop's limiter (made in the loop)

    def reset_slots() -> None:  # an app started again runs on a new event loop
        slots.clear()

    app.router.on_startup.append(reset_slots)
    errors: dict[int | str, dict[str, Any]] = {**ERROR_RESPONSES, 500: {"model": PredictError}}

    def answer(name: str, entity_rows: list[dict[str, Any]],
               request_data: dict[str, list[Any]] | None) -> Response:
        if len(entity_rows) > limit:
            return _json({"detail": f"{len(entity_rows)} entity rows exceed "
                                    f"serving.max_batch_size={limit}; split the request"}, 413)
        try:
            guard = getattr(app.state, "transform_guard", None)  # serving.transform_guard
            if guard is not None:
                guard.check(name)
            result = inference.predict(name, entity_rows, request_data)
        except NotFoundError as exc:
            return _json({"detail": str(exc)}, 404)
        except CodeNotLoadedError as exc:
            return _json({"detail": str(exc)}, 503)
        except (ValidationError, DefinitionError, TransformError) as exc:
            return _json({"detail": str(exc)}, 422)
        except PredictionError as exc:
            error_log.error("%s", exc)
            return _json({"detail": str(exc), "request_id": exc.request_id}, 500)
        return Response(result.to_json(), media_type="application/json")

    # The body is documented inline (``PredictRequest``'s schema) but not a parameter:
    # BodyGuard has parsed it already (``PARSED_BODY``), and ``predict_body`` checks it
    # without FastAPI parsing the JSON a second time and pydantic copying every row.
    body_doc = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": PredictRequest.model_json_schema()}}}}

    @app.post("/deployments/{name}/predict", response_model=PredictResponse, responses=errors,
              summary="Score entity rows with a deployed model (features looked up online)",
              openapi_extra=body_doc)
    async def predict(name: str, request: Request) -> Response:
        # The caller as ``Caller`` finds it, but on the event loop (a header lookup): as a
        # dependency it would cost every prediction a second trip through the thread pool.
        entity_rows, request_data = predict_body(await _parsed_body(request))  # 422 first,
        principal_of(request).require("predict", name)  # as before; 401/403 when auth is on
        # Off the event loop even for SQLite (a stuck read or a slow model never holds up
        # /health or /features), serving.predict_threads at a time (module docstring).
        if not slots:
            slots.append(anyio.CapacityLimiter(serving.predict_threads))
        return await anyio.to_thread.run_sync(answer, name, entity_rows, request_data,
                                              limiter=slots[0])

    @app.get("/deployments", summary="Current revision of each deployment",
             responses=ERROR_RESPONSES)
    def deployments(principal: Caller) -> list[dict]:
        return [{"name": d.name, "revision": d.revision, "model": d.model_label,
                 "view": d.view, "training_set": d.training_set,
                 "sample_rate": d.sample_rate, "columns": d.binding.column_names}
                for d in inference.deployments.list()]

    registry = _metrics_registry(inference.logger)
    app.state.metrics_registry = registry  # other areas add their collectors (serving.push)

    @app.get("/metrics", summary="Prometheus metrics (evaluation-log counters)",
             response_class=PlainTextResponse, responses=ERROR_RESPONSES)
    def metrics(principal: Caller) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.on_event("startup")
    def _long_lived() -> None:  # a serving process: freeze the heap once a model is loaded
        inference.freeze_after_load = True
        threading.Thread(target=warm_models, args=(inference,), name="sparkfs-warm-models",
                         daemon=True).start()

    @app.on_event("shutdown")
    def _flush_log() -> None:  # uvicorn runs this on SIGTERM / SIGINT before exiting
        import gc

        inference.close()
        error_log.info("evaluation log flushed: %s", inference.logger.counters())
        inference.freeze_after_load = False
        gc.unfreeze()  # exit (or the next app in this process) collects as usual


def warm_models(inference: Inference) -> list[str]:
    """Load the model of every current deployment of ``inference`` (once per process:
    ``Inference.model``); a deployment whose model does not load is logged and left to its
    first request, which reports the error as before. Returns the deployments loaded.

    >>> class NoDeployments:
    ...     class deployments:
    ...         list = staticmethod(lambda: [])
    >>> warm_models(NoDeployments())
    []
    """
    try:
        current = inference.deployments.list()
    except Exception as exc:  # the registry is unreadable: requests will say so
        error_log.warning("model warm-up skipped: deployments could not be listed: %s", exc)
        return []
    loaded = []
    for d in current:
        try:
            inference.model(d)
        except Exception as exc:  # reported by the deployment's first request as before
            error_log.warning("model warm-up: deployment %r (%s) did not load: %s", d.name,
                              d.model_label, first_line(exc))
            continue
        loaded.append(d.name)
    return loaded


def _metrics_registry(logger: Any) -> Any:
    """A private Prometheus registry exposing the logger's counters (no global state)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily

    class _Collector:
        def collect(self):
            c = logger.counters()
            fam = CounterMetricFamily("sparkfs_evaluation_log_rows",
                                      "Prediction rows by what happened to their log record",
                                      labels=["deployment", "outcome"])
            for outcome in ("logged", "dropped", "failed", "sampled_out"):
                for dep, n in sorted(c[outcome].items()):
                    fam.add_metric([dep, outcome], n)
            yield fam

    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Collector())
    return registry
