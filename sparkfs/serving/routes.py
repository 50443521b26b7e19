"""The routes of the online feature service, one ``APIRouter`` per area.

``ROUTERS`` lists them; ``create_app`` includes each. A new area (predictions, pushes)
adds its own module with a router and appends it there. A route takes the ``Service``
from ``request.app.state.service``, the caller from ``Depends(principal_of)``, raises
``sparkfs.errors`` exceptions for every failure (``sparkfs.serving.errors`` maps them to
statuses) and never touches the registry or the store on the event loop (store-bound work
goes through ``Service.guard``: a bounded thread pool with a deadline).
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..definitions import FeatureRef
from ..errors import BatchTooLargeError, PermissionDeniedError, ValidationError
from ..views import parse_view_label
from .auth import Principal, principal_of
from .encoding import encode_response, json_response
from .schemas import ERROR_RESPONSES, FeaturesRequest, FeaturesResponse, Health

#: The caller of a route: ``principal: Caller`` (401 without a valid key when auth is on).
Caller = Annotated[Principal, Depends(principal_of)]

features_router = APIRouter(tags=["features"])
meta_router = APIRouter(tags=["service"])


def rows_of(body: FeaturesRequest, limit: int) -> list[dict[str, Any]]:
    """The entity rows of a request (``entity_rows`` as given, ``entities`` transposed);
    exactly one of them, at most ``limit`` rows."""
    if (body.entity_rows is None) == (body.entities is None):
        raise ValidationError("give exactly one of entity_rows (a list of objects) or entities "
                              "(an object of columns)")
    if body.entity_rows is not None:
        n = len(body.entity_rows)
    else:
        lengths = {k: len(v) for k, v in (body.entities or {}).items()}
        if len(set(lengths.values())) > 1:
            shown = dict(list(lengths.items())[:8])
            raise ValidationError(f"entities columns differ in length: {shown}")
        n = next(iter(lengths.values()), 0)
    if n > limit:
        raise BatchTooLargeError(f"{n} entity rows exceed serving.max_batch_size={limit}; "
                                   "split the request")
    if body.entity_rows is not None:
        return body.entity_rows
    cols = body.entities or {}
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


def check_features_or_view(body: FeaturesRequest) -> None:
    """Exactly one of ``features`` and ``view``, else ``ValidationError`` (422)."""
    if body.features is None and body.view is None:
        raise ValidationError("features: Field required, or give view ('name' or "
                              "'name@version') instead")
    if body.features is not None and body.view is not None:
        raise ValidationError("give either features (a list of references) or view "
                              "('name' or 'name@version'), not both")


@features_router.post("/features", response_model=FeaturesResponse, responses=ERROR_RESPONSES,
                      summary="Feature vectors (with statuses) for a batch of entity rows")
async def features(body: FeaturesRequest, request: Request,
                   principal: Caller) -> Response:
    svc = request.app.state.service
    check_features_or_view(body)
    fs = svc.fs
    if not principal.open:
        if body.features is not None:
            await authorize_features(svc, principal, body.features)
        else:
            await authorize_view(svc, principal, body.view or "")
    rows = rows_of(body, svc.max_batch_size)
    request.state.batch_size = len(rows)

    def answer() -> dict:
        response = fs.get_online_features(body.features, rows, request_data=body.request_data,
                                          full_feature_names=body.full_feature_names,
                                          view=body.view)
        out = encode_response(response)
        out["metadata"]["transform_fingerprints"] = dict(response.transform_fingerprints)
        return out

    # Never on the event loop, not even an SQLite read of a cached plan: a stuck read
    # holds one of the guard's threads until its deadline (503), never the other requests.
    return json_response(await svc.guard.run(answer))


async def authorize_features(svc: Any, principal: Principal, refs: list[str]) -> None:
    """``features:read`` for each referenced group or on-demand transform (and for the
    groups the transform reads), else ``PermissionDeniedError`` naming the first missing."""
    snap = await svc.snapshot.get()
    for text in refs:
        group = FeatureRef.parse(text).group
        principal.require("features:read", group)
        for source in sorted(snap.sources.get(group, ())):
            principal.require("features:read", source)


async def authorize_view(svc: Any, principal: Principal, label: str) -> None:
    """``features:read:view:NAME``, or ``features:read`` for every group and transform the
    view reads (its references, read from the registry off the event loop)."""
    name, _ = parse_view_label(label)
    if principal.allows("features:read", f"view:{name}"):
        return
    view = await anyio.to_thread.run_sync(svc.fs.get_feature_view, label)
    try:
        await authorize_features(svc, principal, list(view.features))
    except PermissionDeniedError:
        raise PermissionDeniedError(
            f"API key {principal.name!r} lacks scope 'features:read:view:{name}' (or "
            "features:read for each group the view reads)") from None


@meta_router.get("/health", response_model=Health, responses=ERROR_RESPONSES,
                 summary="Liveness (open to everyone; no paths, no keys)")
async def health(request: Request) -> Response:
    svc = request.app.state.service
    body = {"status": "ok", "uptime_s": round(time.time() - svc.started, 3),
            "online_store": svc.fs.config.online.type,
            "max_batch_size": svc.max_batch_size, "auth": svc.keys.enabled,
            "pyspark_loaded": "pyspark" in sys.modules}
    guard = getattr(request.app.state, "transform_guard", None)  # sparkfs.serving.transform_guard
    if guard is not None and guard.mode != "off":
        body.update(await anyio.to_thread.run_sync(guard.health))
    return json_response(body)


@meta_router.get("/feature-groups", responses=ERROR_RESPONSES,
                 summary="Feature groups and on-demand transforms this key may read")
async def feature_groups(request: Request,
                         principal: Caller) -> Response:
    snap = await request.app.state.service.snapshot.get()
    groups = [{
        "name": g.name, "version": g.version, "join_keys": list(g.join_keys),
        "event_time": g.event_time, "online": g.online,
        "ttl_s": None if g.ttl is None else g.ttl.total_seconds(),
        "description": g.description, "owner": g.owner, "tags": dict(g.tags),
        "features": [{"name": f.name, "dtype": f.dtype, "description": f.description}
                     for f in g.features],
        "transforms": [{"name": t.name, "fingerprint": t.fingerprint} for t in g.transforms],
    } for g in snap.groups if principal.allows("features:read", g.name)]
    on_demand = [{
        "name": s["name"], "fingerprint": s.get("fingerprint"), "source": s.get("source"),
        "inputs": s.get("inputs", []), "features": s.get("features", {}),
        "outputs": [{"name": o["name"], "dtype": o["dtype"]} for o in s.get("outputs", [])],
        "description": s.get("description", ""),
    } for s in snap.on_demand if principal.allows("features:read", s["name"]) and all(
        principal.allows("features:read", g) for g in snap.sources.get(s["name"], ()))]
    return json_response({"feature_groups": groups, "on_demand": on_demand})


#: Routers ``create_app`` includes, in order. Add an area's router here.
ROUTERS: list[APIRouter] = [features_router, meta_router]
