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

import collections
import functools
import threading
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..errors import NotFoundError, SparkfsError
from . import data
from .templating import HERE, PREFIX, environment

#: Drift reports the drift page keeps (per router), so a reload does not recompute them.
CACHED_REPORTS = 32
_CACHE_LOCK = threading.Lock()


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
    # drift reports of (group, version, a, b): Delta versions never change once committed
    reports: collections.OrderedDict[tuple, Any] = collections.OrderedDict()

    @r.get("", response_class=HTMLResponse)
    @_page
    def home() -> Response:
        groups = fs.list_feature_groups(latest_only=True)
        return render("home.html", title="sparkfs", groups=groups,
                      views=fs.list_feature_views(),
                      training_sets=data.training_sets(fs.catalog),
                      deployments=data.deployments(fs.catalog))

    @r.get("/search", response_class=HTMLResponse)
    @_page
    def search(q: str = "") -> Response:
        hits = data.search_all(fs.catalog, q) if q.strip() else []
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
        page = data.group_page(fs.catalog, fs.offline, fs.online, name, version)
        return render("group.html", title=f"{page['group'].name}@{page['group'].version}", **page)

    @r.get("/groups/{ref}/drift", response_class=HTMLResponse)
    @_page
    def drift(ref: str, a: int | None = None, b: int | None = None, start: str = "",
              end: str = "") -> Response:
        name, version = data.parse_group_ref(ref)
        g = fs.get_feature_group(name, version)
        window: dict[str, Any] = {}
        for key, text in (("start", start), ("end", end)):
            if text.strip():
                try:
                    window[key] = data.parse_time(text)
                except ValueError as exc:
                    return render("error.html", status=400, title="Bad request",
                                  message=f"drift {key}: {exc}")
        return render("drift.html", **_group_drift(fs, g, a, b, reports, window))

    @r.get("/features/{ref}", response_class=HTMLResponse)
    @_page
    def feature(ref: str) -> Response:
        name, version, fname = data.parse_feature_ref(ref)
        g = fs.get_feature_group(name, version)
        f = g.feature(fname)
        stats = data.statistics_of(fs.catalog, g)
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
                      sets=data.training_sets(fs.catalog))

    @r.get("/training-sets/{ref}", response_class=HTMLResponse)
    @_page
    def training_set(ref: str) -> Response:
        name, version = data.parse_group_ref(ref)
        spec = data.training_set(fs.catalog, name, version)
        return render("training_set.html", title=f"Training set {name}", ts=spec,
                      manifest=spec.get("manifest", {}))

    @r.get("/models", response_class=HTMLResponse)
    @_page
    def models() -> Response:
        rows, error = data.models(lambda: fs.models)
        return render("models.html", title="Models", models=rows, error=error)

    @r.get("/deployments", response_class=HTMLResponse)
    @_page
    def deployments() -> Response:
        return render("deployments.html", title="Deployments",
                      deployments=data.deployments(fs.catalog))

    @r.get("/deployments/{name}", response_class=HTMLResponse)
    @_page
    def deployment(name: str) -> Response:
        from .lineage import node_link

        every = data.deployments(fs.catalog)
        spec = next((d for d in every if d["name"] == name), None)
        if spec is None:
            known = ", ".join(d["name"] for d in every) or "none"
            raise NotFoundError(f"deployment {name!r} does not exist; deployments: {known}")
        cfg = fs.config.monitoring
        ctx: dict[str, Any] = {"title": f"Deployment {name}", "d": spec, "report": None,
                               "rows": [], "drift_error": None,
                               "lineage": node_link(f"deployment:{name}"),
                               "threshold": f"{cfg.psi_threshold}, or KS p < {cfg.ks_pvalue}"}
        try:
            found = _served(fs, name)
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


def _group_drift(fs: Any, g: Any, a: int | None, b: int | None,
                 cache: collections.OrderedDict[tuple, Any], window: dict[str, Any]) -> dict:
    """The drift page of group ``g``: Delta version ``a`` (baseline) against ``b``
    (default: the first and the latest version with data), or against the rows whose
    event time is in ``window`` (``start``/``end``, over the whole history). The numbers are
    ``fs.monitor(g, a, versions=b)``, the function ``sparkfs monitor`` calls (exact, in
    Spark, started on first use); the overlaid histograms are the two versions' stored
    statistics. The last ``CACHED_REPORTS`` reports are kept in ``cache``."""
    from ..monitoring.compare import DRIFT_COLUMNS, drift_thresholds_text, drift_verdict
    from .drift import overlay_charts, report_rows

    delta = data.delta_commits(fs.offline, g, {})
    latest = delta["current"] or 0
    have = list(range(1, latest + 1))
    ctx: dict[str, Any] = {"title": f"Drift: {g.name}@{g.version}", "group": g, "have": have,
                           "a": a, "b": b, "rows": [], "report": None, "error": None,
                           "columns": DRIFT_COLUMNS, "verdict": "", "thresholds": "",
                           "charted": False, "start": window.get("start"),
                           "end": window.get("end")}
    if len(have) < 2 and (a is None or b is None) and not window:
        return ctx
    a = (have[0] if have else 1) if a is None else a
    b = None if window else (have[-1] if b is None else b)
    ctx.update(a=a, b=b)
    current: dict[str, Any] = window or {"versions": b}
    key = (g.name, g.version, a, tuple(sorted((k, str(v)) for k, v in current.items())))
    try:
        with _CACHE_LOCK:
            report = cache.get(key)
        if report is None:
            report = fs.monitor(g, a, **current)
            with _CACHE_LOCK:
                cache[key] = report
                while len(cache) > CACHED_REPORTS:
                    cache.popitem(last=False)
    except NotFoundError:
        raise  # a version that does not exist: the 404 page names it
    except SparkfsError as exc:  # no shared feature, no rows, pyspark not installed
        ctx["error"] = str(exc)
        return ctx
    stats = data.statistics_versions_of(fs.catalog, g)
    charts: dict[str, dict] = {}
    if not window and a in stats and b in stats:
        charts = overlay_charts(data.statistics_of(fs.catalog, g, a),
                                data.statistics_of(fs.catalog, g, b),
                                (f"Delta version {a}", f"Delta version {b}"))
    ctx.update(report=report, rows=report_rows(report, charts), charted=bool(charts),
               verdict=drift_verdict(report), thresholds=drift_thresholds_text(report))
    return ctx


def _served(fs: Any, name: str) -> tuple[Any, list[dict]] | None:
    """Training set vs served traffic of deployment ``name``: ``fs.monitor_served``'s
    report and its rows with charts (``sparkfs.ui.drift.served_rows``); None when no
    online request is logged yet."""
    from ..monitoring.skew import read_requests
    from .drift import served_rows

    d = fs.inference.deployments.get(name)
    fs.inference.flush()
    try:
        log = read_requests(d.log_path, None, None, dict(fs.config.offline.storage_options))
    except NotFoundError:  # nothing was ever logged: the evaluation table does not exist yet
        return None
    if log.num_rows == 0:
        return None
    report = fs.monitor_served(name)
    tname, _, tver = d.training_set.partition("@")
    base = fs.get_training_set(tname, int(tver) if tver else None).to_arrow()
    labels = (f"training set {d.training_set}", "served")
    return report, served_rows(report, base, log, labels, fs.config.monitoring.bins)


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
