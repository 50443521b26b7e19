"""The online feature service: an HTTP JSON API (FastAPI) over ``get_online_features``.

Start it with ``sparkfs serve --config conf/local.yaml --repo jobs/flights/features.py``
(``--workers N``: N processes on one port, default half the cores). It imports the
feature repo (for on-demand transform code) but never pyspark. Bodies are encoded with
orjson; uvicorn runs on httptools and uvloop.

Endpoints (the OpenAPI document is at ``/openapi.json``, interactive docs at ``/docs``):

``POST /features``
    ``{"features": ["weather:temp", "dep_calendar:hour_of_day"],
    "entity_rows": [{"origin": "JFK"}], "request_data": {"sched_dep_ts": ["2013-01-01T10:15:00Z"]}}``
    (or Feast-style columnar ``"entities": {"origin": ["JFK"]}``) returns
    ``{"metadata": {"feature_names": [...], "transform_fingerprints": {...}}, "results":
    [{"values": [...], "statuses": [...], "event_timestamps": [...]}, ...]}``: one result
    per name (join keys first), each a column over the entity rows. NaN is returned as null. A batch of N rows
    runs each on-demand transform once, on an N-row frame.
``GET /health``
    ``{"status": "ok", ...}``.
``GET /feature-groups``
    Registered feature groups (latest versions) and on-demand transforms.

Errors are JSON ``{"detail": "..."}`` and never a stack trace: unknown group, feature or
transform -> 404; malformed body, bad key value, missing request data -> 422; more
entity rows than ``serving.max_batch_size`` -> 413; an on-demand transform whose code the
service did not load (``--repo``) -> 503; anything else -> 500 (the traceback goes to the
server log only). Each request writes one access-log line (logger
``sparkfs.serving.access``): method, path, status, batch size, latency.

>>> import tempfile
>>> from fastapi.testclient import TestClient
>>> from sparkfs import FeatureStore
>>> client = TestClient(create_app(FeatureStore({"data_dir": tempfile.mkdtemp()})))
>>> client.get("/health").json()["status"]
'ok'
>>> client.post("/features", json={"features": ["nope:x"], "entity_rows": [{}]}).status_code
404
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import sys
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..errors import (
    BatchTooLargeError,
    CodeNotLoadedError,
    DefinitionError,
    NotFoundError,
    TransformError,
    ValidationError,
)

access_log = logging.getLogger("sparkfs.serving.access")
error_log = logging.getLogger("sparkfs.serving")


class FeaturesRequest(BaseModel):
    """Body of ``POST /features``: give ``entity_rows`` or ``entities``, not both."""

    model_config = ConfigDict(extra="forbid")

    features: list[str] = Field(min_length=1, description="'group:feature', "
                                "'group@version:feature' or 'transform:output' references")
    entity_rows: list[dict[str, Any]] | None = Field(
        default=None, description="one object of join-key values per row")
    entities: dict[str, list[Any]] | None = Field(
        default=None, description="Feast-style columns of join-key values")
    request_data: dict[str, list[Any]] | None = Field(
        default=None, description="request-time columns for on-demand transforms")
    full_feature_names: bool = Field(default=False, description="name outputs group__feature")


class FeatureResult(BaseModel):
    values: list[Any]
    statuses: list[str]
    event_timestamps: list[str | None]


class FeaturesMetadata(BaseModel):
    feature_names: list[str]
    transform_fingerprints: dict[str, str] = Field(
        default_factory=dict, description="on-demand transforms run for this response")


class FeaturesResponse(BaseModel):
    metadata: FeaturesMetadata
    results: list[FeatureResult]


class HTTPError(BaseModel):
    detail: str


def _rows(body: FeaturesRequest, limit: int) -> list[dict[str, Any]]:
    if (body.entity_rows is None) == (body.entities is None):
        raise ValidationError("give exactly one of entity_rows (a list of objects) or entities "
                              "(an object of columns)")
    if body.entity_rows is not None:
        n = len(body.entity_rows)
    else:
        lengths = {k: len(v) for k, v in body.entities.items()}  # type: ignore[union-attr]
        if len(set(lengths.values())) > 1:
            raise ValidationError(f"entities columns differ in length: {lengths}")
        n = next(iter(lengths.values()), 0)
    if n > limit:
        raise BatchTooLargeError(f"{n} entity rows exceed serving.max_batch_size={limit}; "
                             "split the request")
    if body.entity_rows is not None:
        return body.entity_rows
    cols = body.entities or {}
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


def _iso(t: Any) -> str | None:
    return t.isoformat() if isinstance(t, (dt.datetime, dt.date)) else None


def _iso_column(times: list) -> list:
    """ISO texts of a column of event times; the rows of one stored event time share one
    datetime object (see ``read_group``), formatted once."""
    memo: dict[int, str | None] = {}
    out: list[str | None] = []
    for t in times:
        if t is None:
            out.append(None)
            continue
        text = memo.get(id(t))  # the objects live in ``times``: ids are unique here
        if text is None:
            text = memo[id(t)] = _iso(t)
        out.append(text)
    return out


def _jsonable(values: list, dtype: str | None) -> list:
    if dtype in ("double", "float"):
        return [None if v != v else v for v in values]  # NaN is the only value != itself
    if dtype in ("timestamp", "date"):
        return [_iso(v) if v is not None else None for v in values]
    if dtype and dtype.startswith("array"):
        return [None if v is None else [None if isinstance(x, float) and math.isnan(x) else x
                                        for x in v] for v in values]
    return values


def encode_response(response: Any) -> dict:
    """An ``OnlineResponse`` as the JSON body of ``POST /features``.

    The features of one group share one list of event times (see ``OnlineResponse``):
    it is formatted once and the text reused for each of them.
    """
    columns = response.to_dict()
    n = len(response)
    names, results = [], []
    for k in response.join_keys:
        names.append(k)
        results.append({"values": columns[k], "statuses": ["present"] * n,
                        "event_timestamps": [None] * n})
    formatted: dict[int, tuple[list, list]] = {}  # id(event times) -> (them, their text)
    for name in response.feature_names:
        times = response.event_times[name]
        hit = formatted.get(id(times))
        if hit is None or hit[0] is not times:
            hit = formatted[id(times)] = (times, _iso_column(times))
        names.append(name)
        results.append({
            "values": _jsonable(columns[name], response.dtypes.get(name)),
            "statuses": response.statuses[name],
            "event_timestamps": hit[1],
        })
    return {"metadata": {"feature_names": names}, "results": results}


class AccessLogMiddleware:
    """One log line per request: method, path, status, batch size, latency (pure ASGI)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            state = scope.get("state") or {}
            access_log.info("%s %s status=%d batch=%s latency_ms=%.2f", scope["method"],
                            scope["path"], status[0], state.get("batch_size", "-"),
                            (time.perf_counter() - start) * 1000)


_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _dumps(body: Any) -> bytes:
    """Compact JSON; orjson where it gives the same document as ``json.dumps`` (it refuses
    ints over 64 bits and non-text keys: those take the standard library)."""
    try:
        return orjson.dumps(body, default=str, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(body, separators=(",", ":"), allow_nan=False, default=str).encode()


def _json(body: Any, status: int = 200) -> Response:
    return Response(_dumps(body), status_code=status, media_type="application/json")


def create_app(fs: Any, max_batch_size: int | None = None, repo: str | None = None) -> FastAPI:
    """The FastAPI app serving ``fs`` (a ``FeatureStore`` whose on-demand transform code is
    already attached, see ``sparkfs.ondemand.attach_code``)."""
    limit = max_batch_size or fs.config.serving.max_batch_size
    started = time.time()
    app = FastAPI(title="sparkfs online feature service", version="1",
                  description="Latest feature values and on-demand features for entity rows.")
    app.add_middleware(AccessLogMiddleware)
    errors: dict[int | str, dict[str, Any]] = {
        404: {"model": HTTPError}, 413: {"model": HTTPError}, 422: {"model": HTTPError}}

    @app.exception_handler(RequestValidationError)
    async def _malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{loc or 'body'}: {e.get('msg')}")
        return JSONResponse({"detail": "malformed request: " + "; ".join(parts)}, 422)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        error_log.error("unhandled error on %s %s", request.method, request.url.path,
                        exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the server "
                                       "log"}, 500)

    # With the embedded SQLite store a request is CPU-bound under the GIL (its reads are
    # local and short): it runs on the event loop, as a worker thread would only add a
    # hand-off per request (more cores: more --workers). A networked store (HBase) waits on
    # the network, so its requests run in the thread pool and those waits overlap.
    inline = fs.config.online.type == "sqlite"

    def answer(body: FeaturesRequest, request: Request) -> Response:
        try:
            rows = _rows(body, limit)
            request.state.batch_size = len(rows)
            response = fs.get_online_features(body.features, rows,
                                              request_data=body.request_data,
                                              full_feature_names=body.full_feature_names)
        except BatchTooLargeError as exc:
            return _json({"detail": str(exc)}, 413)
        except NotFoundError as exc:
            return _json({"detail": str(exc)}, 404)
        except CodeNotLoadedError as exc:
            return _json({"detail": str(exc)}, 503)
        except (ValidationError, DefinitionError, TransformError) as exc:
            return _json({"detail": str(exc)}, 422)
        body_out = encode_response(response)
        body_out["metadata"]["transform_fingerprints"] = dict(response.transform_fingerprints)
        return _json(body_out)

    @app.post("/features", response_model=FeaturesResponse, responses=errors,
              summary="Feature vectors (with statuses) for a batch of entity rows")
    async def features(body: FeaturesRequest, request: Request) -> Response:
        if inline:
            return answer(body, request)
        return await run_in_threadpool(answer, body, request)

    @app.get("/health", summary="Liveness and what this process serves")
    async def health() -> dict:
        return {"status": "ok", "uptime_s": round(time.time() - started, 3), "repo": repo,
                "online_store": fs.config.online.type, "max_batch_size": limit,
                "pyspark_loaded": "pyspark" in sys.modules}

    @app.get("/feature-groups", summary="Registered feature groups and on-demand transforms")
    def feature_groups() -> dict:
        groups = [{
            "name": g.name, "version": g.version, "join_keys": list(g.join_keys),
            "event_time": g.event_time, "online": g.online,
            "ttl_s": None if g.ttl is None else g.ttl.total_seconds(),
            "description": g.description, "owner": g.owner, "tags": dict(g.tags),
            "features": [{"name": f.name, "dtype": f.dtype, "description": f.description}
                         for f in g.features],
            "transforms": [{"name": t.name, "fingerprint": t.fingerprint} for t in g.transforms],
        } for g in fs.list_feature_groups(latest_only=True)]
        on_demand = [{
            "name": s["name"], "fingerprint": s.get("fingerprint"), "source": s.get("source"),
            "inputs": s.get("inputs", []), "features": s.get("features", {}),
            "outputs": [{"name": o["name"], "dtype": o["dtype"]} for o in s.get("outputs", [])],
            "description": s.get("description", ""),
        } for s in fs.registry.list("on_demand")]
        return {"feature_groups": groups, "on_demand": on_demand}

    return app


def load_service(config: str | None, repo: str | None) -> tuple[Any, list[str]]:
    """A ``FeatureStore`` from ``config`` with the code of ``repo``'s registered
    definitions attached (nothing is applied). Returns ``(fs, attached_labels)``."""
    from ..ondemand import attach_code
    from ..store import FeatureStore

    fs = FeatureStore.from_config(config)
    attached: list[str] = []
    if repo:
        from ..repo import load_repo

        attached = attach_code(fs, load_repo(repo))
    missing = [s["name"] for s in fs.registry.list("on_demand")
               if f"on_demand:{s['name']}" not in attached]
    if missing:
        error_log.warning("on-demand transforms %s are registered but their code is not in the "
                          "repo given (--repo); requests for them will fail", missing)
    return fs, attached


_WORKER_ENV = "_SPARKFS_SERVE_WORKER"  # JSON: what each worker process loads


def worker_app() -> FastAPI:
    """The app of one ``sparkfs serve --workers N`` worker process (a uvicorn factory):
    loads the store and repo that ``run`` passed down in the environment."""
    spec = json.loads(os.environ[_WORKER_ENV])
    logging.basicConfig(stream=sys.stderr, level=spec["log_level"].upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    fs, _ = load_service(spec["config"], spec["repo"])
    return create_app(fs, repo=spec["repo"])


def default_workers() -> int:
    """Half the cores (at least 1, at most 4). Measured on a 2-core machine shared with its
    clients, 2 workers under 8 clients cost ~3x the CPU per request of 1 worker."""
    return max(1, min(4, (os.cpu_count() or 1) // 2))


def run(fs: Any, host: str = "127.0.0.1", port: int = 8080, repo: str | None = None,
        log_level: str = "info", workers: int = 1, config: str | None = None) -> None:
    """Serve ``fs`` with uvicorn until interrupted (blocking).

    ``workers > 1`` runs that many processes on one listening socket; each loads its own
    store from ``config`` and ``repo`` (``fs`` has already checked that they load)."""
    from .._extras import require

    uvicorn = require("uvicorn", extra="serve", what="the HTTP service")

    opts: dict[str, Any] = dict(host=host, port=port, access_log=False, log_level=log_level,
                http=_http_impl(), loop=_loop_impl())
    if workers <= 1:
        uvicorn.run(create_app(fs, repo=repo), **opts)
        return
    os.environ[_WORKER_ENV] = json.dumps({"config": config, "repo": repo,
                                          "log_level": log_level})
    uvicorn.run("sparkfs.serving.app:worker_app", factory=True, workers=workers, **opts)


def _http_impl() -> str:
    try:
        import httptools  # noqa: F401
        return "httptools"
    except ImportError:  # pragma: no cover - httptools is a pinned dependency
        return "h11"


def _loop_impl() -> str:
    try:
        import uvloop  # noqa: F401
        return "uvloop"
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        return "asyncio"
