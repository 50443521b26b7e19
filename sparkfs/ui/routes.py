"""The UI's routes (FastAPI, ``GET`` only) and the Jinja2 environment they render with.

``mount_ui(app, fs)`` adds the pages and the static files under ``/ui`` to an existing
app (the online service); ``create_ui_app(fs)`` is an app with only the UI (``sparkfs ui``).

>>> import tempfile
>>> from fastapi.testclient import TestClient
>>> from sparkfs import FeatureStore
>>> client = TestClient(create_ui_app(FeatureStore({"data_dir": tempfile.mkdtemp()})))
>>> "sparkfs apply" in client.get("/ui/groups").text  # the empty state says what to run
True
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..errors import NotFoundError, SparkfsError
from . import data
from .templating import HERE, PREFIX, environment


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page: ``template`` rendered with ``context``."""
    return HTMLResponse(environment().get_template(template).render(**context),
                        status_code=status)


def not_found(message: str) -> HTMLResponse:
    """The 404 page: what does not exist, and a link to search."""
    return render("404.html", status=404, title="Not found", message=message)


def _page(fn: Any) -> Any:
    """Route decorator: a ``NotFoundError`` becomes the 404 page; other deliberate
    errors (a store that cannot be read) a 503 page naming the problem."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return fn(*args, **kwargs)
        except NotFoundError as exc:
            return not_found(str(exc))
        except SparkfsError as exc:
            return render("error.html", status=503, title="Unavailable", message=str(exc))
    return wrapper


def build_router(fs: Any) -> APIRouter:
    """The UI's pages over ``fs`` (read-only: every route is a GET)."""
    r = APIRouter(prefix=PREFIX, include_in_schema=False)

    @r.get("", response_class=HTMLResponse)
    @_page
    def home() -> Response:
        groups = fs.list_feature_groups(latest_only=True)
        return render("home.html", title="sparkfs", groups=groups,
                      views=fs.list_feature_views(), training_sets=data.training_sets(fs),
                      deployments=data.deployments(fs))

    @r.get("/search", response_class=HTMLResponse)
    @_page
    def search(q: str = "") -> Response:
        hits = data.search_all(fs, q) if q.strip() else []
        return render("search.html", title=f"Search: {q}" if q else "Search", q=q, hits=hits)

    @r.get("/groups", response_class=HTMLResponse)
    @_page
    def groups() -> Response:
        return render("groups.html", title="Feature groups",
                      groups=fs.list_feature_groups(latest_only=True))

    @r.get("/groups/{ref}", response_class=HTMLResponse)
    @_page
    def group(ref: str) -> Response:
        name, version = data.parse_group_ref(ref)
        page = data.group_page(fs, name, version)
        return render("group.html", title=f"{page['group'].name}@{page['group'].version}", **page)

    @r.get("/groups/{ref}/drift", response_class=HTMLResponse)
    @_page
    def drift(ref: str, a: int | None = None, b: int | None = None) -> Response:
        from .drift import compare

        name, version = data.parse_group_ref(ref)
        g = fs.get_feature_group(name, version)
        from ..monitoring.stats import statistics, statistics_versions

        have = statistics_versions(fs.catalog, g)
        ctx: dict[str, Any] = {"title": f"Drift: {g.name}@{g.version}", "group": g,
                               "have": have, "a": a, "b": b, "rows": [], "sa": None, "sb": None,
                               "threshold": fs.config.monitoring.psi_threshold}
        if len(have) >= 2 or (a is not None and b is not None):
            a = have[0] if a is None else a
            b = have[-1] if b is None else b
            sa, sb = statistics(fs.catalog, g, a), statistics(fs.catalog, g, b)
            labels = (f"Delta version {a}", f"Delta version {b}")
            ctx.update(a=a, b=b, sa=sa, sb=sb,
                       rows=compare(sa, sb, labels, ctx["threshold"]))
        return render("drift.html", **ctx)

    @r.get("/features/{ref}", response_class=HTMLResponse)
    @_page
    def feature(ref: str) -> Response:
        name, version, fname = data.parse_feature_ref(ref)
        g = fs.get_feature_group(name, version)
        f = g.feature(fname)
        stats = data.statistics_of(fs, g)
        return render("feature.html", title=f"{g.name}:{f.name}", group=g, feature=f,
                      stats=stats, fstats=(stats.features.get(f.name) if stats else None))

    @r.get("/views", response_class=HTMLResponse)
    @_page
    def views() -> Response:
        return render("views.html", title="Feature views", views=fs.list_feature_views())

    @r.get("/views/{ref}", response_class=HTMLResponse)
    @_page
    def view(ref: str) -> Response:
        name, version = data.parse_group_ref(ref)
        v = fs.get_feature_view(name, version)
        return render("view.html", title=f"View {v.label}", view=v, spec=v.to_spec())

    @r.get("/training-sets", response_class=HTMLResponse)
    @_page
    def training_sets() -> Response:
        return render("training_sets.html", title="Training sets",
                      sets=data.training_sets(fs))

    @r.get("/training-sets/{ref}", response_class=HTMLResponse)
    @_page
    def training_set(ref: str) -> Response:
        name, version = data.parse_group_ref(ref)
        spec = data.training_set(fs, name, version)
        return render("training_set.html", title=f"Training set {name}", ts=spec,
                      manifest=spec.get("manifest", {}))

    @r.get("/models", response_class=HTMLResponse)
    @_page
    def models() -> Response:
        rows, error = data.models(fs)
        return render("models.html", title="Models", models=rows, error=error)

    @r.get("/deployments", response_class=HTMLResponse)
    @_page
    def deployments() -> Response:
        return render("deployments.html", title="Deployments",
                      deployments=data.deployments(fs))

    @r.get("/deployments/{name}", response_class=HTMLResponse)
    @_page
    def deployment(name: str) -> Response:
        from .drift import served
        from .lineage import node_link

        spec = next((d for d in data.deployments(fs) if d["name"] == name), None)
        if spec is None:
            known = ", ".join(d["name"] for d in data.deployments(fs)) or "none"
            raise NotFoundError(f"deployment {name!r} does not exist; deployments: {known}")
        cfg = fs.config.monitoring
        ctx: dict[str, Any] = {"title": f"Deployment {name}", "d": spec, "report": None,
                               "rows": [], "drift_error": None,
                               "lineage": node_link(f"deployment:{name}"),
                               "threshold": f"{cfg.psi_threshold}, or KS p < {cfg.ks_pvalue}"}
        try:
            found = served(fs, name)
        except SparkfsError as exc:  # e.g. scipy missing, a training set without rows
            ctx["drift_error"] = f"Drift of served traffic could not be computed: {exc}"
        else:
            if found is not None:
                ctx["report"], ctx["rows"] = found
        return render("deployment.html", **ctx)

    @r.get("/lineage/{node:path}", response_class=HTMLResponse)
    @_page
    def lineage(node: str, direction: str = "both", depth: str = "") -> Response:
        from .lineage import DIRECTIONS, layers, page_link

        if direction not in DIRECTIONS:
            return render("error.html", status=400, title="Bad request",
                          message=f"lineage direction {direction!r} is unknown; use one of "
                                  f"{', '.join(DIRECTIONS)}")
        if depth.strip() and not (depth.strip().isdigit()):
            return render("error.html", status=400, title="Bad request",
                          message=f"lineage depth must be a non-negative integer (or empty "
                                  f"for all), got {depth!r}")
        lin = fs.lineage(node, direction=direction,
                         depth=int(depth) if depth.strip() else None)
        return render("lineage.html", title=f"Lineage of {lin.root}", lin=lin,
                      cols=layers(lin), page=page_link(lin.nodes[lin.root]),
                      directions=DIRECTIONS)

    @r.get("/{rest:path}", response_class=HTMLResponse)
    def unknown(rest: str) -> Response:
        if not rest:
            return RedirectResponse(PREFIX)
        return not_found(f"there is no page /ui/{rest}")

    return r


def mount_ui(app: FastAPI, fs: Any) -> FastAPI:
    """Add the UI (pages and static files under ``/ui``) to ``app``; returns ``app``."""
    from fastapi.staticfiles import StaticFiles

    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")
    app.include_router(build_router(fs))
    return app


def create_ui_app(fs: Any) -> FastAPI:
    """An app serving only the read-only UI over ``fs`` (``/`` redirects to ``/ui``)."""
    app = FastAPI(title="sparkfs UI", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return RedirectResponse(PREFIX)

    return mount_ui(app, fs)
