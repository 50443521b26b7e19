"""The online feature service: an HTTP JSON API (FastAPI) over ``get_online_features``.

Start it with ``sparkfs serve --config conf/local.yaml --repo jobs/flights/features.py``
(``--workers N``: N processes on one port, default half the cores). It imports the
feature repo (for on-demand transform code) but never pyspark. The parts:
``schemas`` (bodies, the OpenAPI document), ``encoding`` (responses), ``errors`` (one
exception -> status table), ``middleware`` (access log, body limits), ``auth`` (API keys,
scopes), ``state`` (registry snapshot, store guard), ``routes`` and ``process`` (uvicorn,
workers, connection guard).

Endpoints (the OpenAPI document is at ``/openapi.json``, interactive docs at ``/docs``):

``POST /features``
    ``{"features": ["weather:temp", "dep_calendar:hour_of_day"],
    "entity_rows": [{"origin": "JFK"}], "request_data": {"sched_dep_ts": ["2013-01-01T10:15:00Z"]}}``
    (or Feast-style columnar ``"entities": {"origin": ["JFK"]}``) returns
    ``{"metadata": {"feature_names": [...], "transform_fingerprints": {...}}, "results":
    [{"values": [...], "statuses": [...], "event_timestamps": [...]}, ...]}``: one result
    per name (join keys first), each a column over the entity rows. NaN is returned as null.
    A batch of N rows runs each on-demand transform once, on an N-row frame.
``GET /health``
    ``{"status": "ok", ...}``; open to everyone, names no path.
``GET /feature-groups``
    The feature groups (latest versions) and on-demand transforms the key may read.

Errors are JSON ``{"detail": "..."}`` and never a stack trace (``sparkfs.serving.errors``):
missing/invalid API key -> 401; missing scope -> 403; unknown group, feature or transform
-> 404; body not in time -> 408; body over ``serving.max_body_bytes`` or more entity rows
than ``serving.max_batch_size`` -> 413; malformed body, bad key value, missing request
data -> 422; online store down or slow, registry unreadable, transform code not loaded ->
503; anything else (a bug) -> 500 with the traceback in the server log only. Each request
writes one access-log line (logger ``sparkfs.serving.access``).

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

import time
from typing import Any

from fastapi import FastAPI

from . import errors
from .auth import KeyRing
from .encoding import _dumps, _iso, _iso_column, _jsonable, encode_response  # noqa: F401
from .middleware import AccessLogMiddleware, BodyGuard
from .process import default_workers, load_service, run, worker_app  # noqa: F401
from .routes import ROUTERS
from .state import RegistrySnapshot, StoreGuard


class Service:
    """What the routes share: the store, the limits, the keys, the registry snapshot and
    the online-store guard (``app.state.service``)."""

    def __init__(self, fs: Any, max_batch_size: int | None = None,
                 keys: KeyRing | None = None) -> None:
        s = fs.config.serving
        self.fs = fs
        self.started = time.time()
        self.max_batch_size = max_batch_size or s.max_batch_size
        self.keys = keys or KeyRing.from_config(s.auth)
        self.snapshot = RegistrySnapshot(fs, s.registry_refresh_s)
        self.guard = StoreGuard(s.store_timeout_s, s.store_retry_after_s, s.store_threads)

def create_app(fs: Any, max_batch_size: int | None = None, keys: KeyRing | None = None,
               **_ignored: Any) -> FastAPI:
    """The FastAPI app serving ``fs`` (a ``FeatureStore`` whose on-demand transform code is
    already attached, see ``sparkfs.catalog.Catalog.attach``); ``keys`` defaults to
    ``serving.auth`` of its config."""
    s = fs.config.serving
    app = FastAPI(title="sparkfs online feature service", version="1",
                  description="Latest feature values and on-demand features for entity rows.")
    app.state.service = Service(fs, max_batch_size, keys)
    app.state.keys = app.state.service.keys
    app.router.on_startup.append(app.state.service.guard.open)  # an app started again
    app.router.on_shutdown.append(app.state.service.guard.close)
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    from .deployments import register as register_deployments

    register_deployments(app, fs.inference, s)  # POST /deployments/{name}/predict, GET /metrics
    from .transform_guard import install as install_transform_guard

    install_transform_guard(app, fs.catalog, fs.models, fs.inference.deployments, s)
    from .push import register as register_push

    register_push(app, fs)  # POST /push/{group}; stream and push metrics on GET /metrics
    from ..ui import mount_ui

    mount_ui(app, fs)  # GET /ui/...: the read-only web UI (sparkfs.ui)
    app.add_middleware(BodyGuard, max_body_bytes=s.max_body_bytes,
                       body_timeout_s=s.body_timeout_s, max_json_depth=s.max_json_depth,
                       max_string_length=s.max_string_length)
    app.add_middleware(AccessLogMiddleware)
    return app
