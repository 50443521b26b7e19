"""The serving-time transform guard: "is what we serve what we trained on?", checked when
the service serves, not only in a skew report.

A deployed model version records its training set's transform fingerprints (the MLflow tag
``sparkfs.manifest``: per group the fingerprints of its ingest-time transforms, and each
on-demand transform's). The guard compares them, per deployment, with what this process
serves: the on-demand transform code it imported (``Catalog.get_on_demand``) and the
registered feature groups' transforms. Each difference is a ``TransformMismatch``; an
on-demand transform whose code is not imported (or differs from the registry) is one too
(``served`` is None and ``reason`` says why).

``serving.transform_guard`` decides what the service does about it:

``"warn"`` (default)
    serve, and say so: one warning log line per mismatch at start-up, ``GET /health``
    answers ``"status": "degraded"`` with the mismatches under ``"transform_guard"``, and
    ``GET /metrics`` has ``sparkfs_transform_guard_mismatches{deployment,transform}``.
``"refuse"``
    the same, and ``POST /deployments/{name}/predict`` of an affected deployment answers
    503 naming the transform and both fingerprints (``TransformMismatchError``);
    refusals are counted in ``sparkfs_transform_guard_refused_total{deployment}``.
``"off"``
    no check.

Results are cached per deployment revision for ``serving.registry_refresh_s``, so a
re-applied transform or a redeployment is seen within that time.

>>> m = TransformMismatch("delay", "delay_model@1", "delays@1", "on_demand", "dep_calendar",
...                       "ab12", "cd34")
>>> print(m)
deployment 'delay' (model delay_model@1, training set delays@1): on-demand transform 'dep_calendar' serves fingerprint cd34, the model was trained with ab12
"""  # noqa: E501 (doctest output)

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import CodeNotLoadedError, NotFoundError, SparkfsError, TransformMismatchError

__all__ = ["GUARD_MODES", "TransformGuard", "TransformMismatch", "TransformMismatchError",
           "check_deployment"]

GUARD_MODES = ("warn", "refuse", "off")
log = logging.getLogger("sparkfs.serving")


@dataclass(frozen=True)
class TransformMismatch:
    """One transform a deployment serves with other code than its model was trained with.
    ``kind`` is ``"on_demand"`` (``name`` the transform) or ``"group"`` (``name`` the group
    label; ``trained``/``served`` then map its transforms to fingerprints).

    >>> TransformMismatch("d", "m@1", "t@1", "group", "weather@1", {"a": "1"}, {"a": "2"}
    ...                   ).to_dict()["kind"]
    'group'
    """

    deployment: str
    model: str
    training_set: str
    kind: str
    name: str
    trained: Any
    served: Any
    reason: str | None = None

    def __str__(self) -> str:
        head = (f"deployment {self.deployment!r} (model {self.model}, training set "
                f"{self.training_set}): ")
        if self.kind == "on_demand":
            if self.served is None:
                return (head + f"on-demand transform {self.name!r} was trained with fingerprint "
                        f"{self.trained} but this service cannot serve it: {self.reason}")
            return (head + f"on-demand transform {self.name!r} serves fingerprint "
                    f"{self.served}, the model was trained with {self.trained}")
        return (head + f"transforms of group {self.name} are {self.served} now, the model was "
                f"trained with {self.trained}")

    def to_dict(self) -> dict:
        """JSON-able (``/health``)."""
        return {**asdict(self), "message": str(self)}


def check_deployment(catalog: Any, models: Any, deployment: Any) -> list[TransformMismatch]:
    """The transforms ``deployment`` (a ``sparkfs.inference.Deployment``) serves with other
    code than its model version's training set recorded. ``catalog``: the
    ``sparkfs.catalog.Catalog`` (registry and imported code); ``models``: the
    ``sparkfs.models.ModelRegistry``. A model version without a recorded manifest has
    nothing to compare (``[]``).

    >>> import tempfile, os
    >>> from types import SimpleNamespace
    >>> from sparkfs.catalog import Catalog
    >>> from sparkfs.registry import Registry
    >>> catalog = Catalog(Registry(os.path.join(tempfile.mkdtemp(), "r.db")))
    >>> info = SimpleNamespace(manifest={"on_demand": {"hour": "ab12"}, "transforms": {}})
    >>> models = SimpleNamespace(get_version=lambda name, version: info)
    >>> d = SimpleNamespace(name="delay", model_name="m", model_version=1, model_label="m@1",
    ...                     training_set="t@1")
    >>> [m.reason for m in check_deployment(catalog, models, d)]
    ["on-demand transform 'hour' is not registered: fs.apply([hour])"]
    """
    summary = models.get_version(deployment.model_name, deployment.model_version).manifest
    if not summary:
        return []
    out: list[TransformMismatch] = []

    def mismatch(kind: str, name: str, trained: Any, served: Any,
                 reason: str | None = None) -> None:
        out.append(TransformMismatch(deployment.name, deployment.model_label,
                                     deployment.training_set, kind, name, trained, served,
                                     reason))

    for name, trained in sorted((summary.get("on_demand") or {}).items()):
        try:
            served = catalog.get_on_demand(name).fingerprint
        except (CodeNotLoadedError, NotFoundError) as exc:
            mismatch("on_demand", name, trained, None, str(exc))
            continue
        if served != trained:
            mismatch("on_demand", name, trained, served)
    for label, trained_t in sorted((summary.get("transforms") or {}).items()):
        try:
            group = catalog.get_group(label)
        except NotFoundError as exc:
            mismatch("group", label, trained_t, None, str(exc))
            continue
        served_t = {t.name: getattr(t, "fingerprint", "") for t in group.transforms}
        if served_t != dict(trained_t):
            mismatch("group", label, dict(trained_t), served_t)
    return out


class TransformGuard:
    """The guard of one service process (see the module docstring): ``catalog``, ``models``
    (``ModelRegistry``) and ``deployments`` (``sparkfs.inference.Deployments``) are read;
    ``mode`` is ``serving.transform_guard``; results live ``refresh_s`` seconds.

    >>> import tempfile, os
    >>> from sparkfs.catalog import Catalog
    >>> from sparkfs.inference.deployments import Deployments
    >>> from sparkfs.registry import Registry
    >>> reg = Registry(os.path.join(tempfile.mkdtemp(), "r.db"))
    >>> guard = TransformGuard(Catalog(reg), None, Deployments(reg), mode="refuse")
    >>> guard.health()
    {'transform_guard': {'mode': 'refuse', 'mismatches': [], 'unchecked': []}}
    """

    def __init__(self, catalog: Any, models: Any, deployments: Any, mode: str = "warn",
                 refresh_s: float = 2.0) -> None:
        if mode not in GUARD_MODES:
            raise SparkfsError(f"serving.transform_guard {mode!r} is unknown; use one of "
                               f"{list(GUARD_MODES)}")
        self.catalog = catalog
        self.models = models
        self.deployments = deployments
        self.mode = mode
        self.refresh_s = refresh_s
        self.refused: Counter[str] = Counter()
        self._cache: dict[str, tuple[float, int, list[TransformMismatch]]] = {}
        self._lock = threading.Lock()

    def mismatches(self, name: str) -> list[TransformMismatch]:
        """The mismatches of deployment ``name``'s current revision (cached)."""
        d = self.deployments.get(name)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and hit[1] == d.revision and now - hit[0] < self.refresh_s:
            return hit[2]
        found = check_deployment(self.catalog, self.models, d)
        with self._lock:
            self._cache[name] = (now, d.revision, found)
        return found

    def check(self, name: str) -> None:
        """Before serving deployment ``name``: raise ``TransformMismatchError`` in
        ``refuse`` mode when it has a mismatch. A check that cannot run (the model registry
        unreadable) is logged and left to the prediction, which reports the real failure."""
        if self.mode != "refuse":
            return
        try:
            found = self.mismatches(name)
        except NotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - the predict path raises the real error
            log.warning("transform guard could not check deployment %r: %s", name, exc)
            return
        if found:
            with self._lock:
                self.refused[name] += 1
            raise TransformMismatchError(
                "refused (serving.transform_guard: refuse): " + "; ".join(map(str, found))
                + ". Deploy a model trained with the served code, or apply the code the model "
                "was trained with")

    def all_mismatches(self) -> tuple[list[TransformMismatch], list[dict]]:
        """Mismatches of every deployment, and the deployments that could not be checked
        (``{"deployment", "reason"}``)."""
        if self.mode == "off":
            return [], []
        found: list[TransformMismatch] = []
        unchecked: list[dict] = []
        try:
            deployments = self.deployments.list()
        except SparkfsError as exc:  # registry down or locked: /health still answers
            return [], [{"deployment": "(all deployments)",
                         "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}]
        for d in deployments:
            try:
                found.extend(self.mismatches(d.name))
            except Exception as exc:  # noqa: BLE001 - reported, never fatal for /health
                unchecked.append({"deployment": d.name, "reason": f"{type(exc).__name__}: "
                                  f"{str(exc)[:300]}"})
        return found, unchecked

    def health(self) -> dict:
        """The ``transform_guard`` part of ``GET /health`` (plus ``"status": "degraded"``
        when a deployment has a mismatch). ``/health`` is open to everyone, so it names
        only the deployments and transforms; fingerprints and reasons are in the log, on
        ``/metrics`` and in the refused prediction's answer."""
        found, unchecked = self.all_mismatches()
        out: dict[str, Any] = {"transform_guard": {
            "mode": self.mode,
            "mismatches": [{"deployment": m.deployment, "transform": f"{m.kind}:{m.name}"}
                           for m in found],
            "unchecked": [u["deployment"] for u in unchecked]}}
        if found:
            out["status"] = "degraded"
        return out

    def log_startup(self) -> None:
        """One warning per mismatch (and per deployment that could not be checked)."""
        found, unchecked = self.all_mismatches()
        for m in found:
            log.warning("transform guard (%s): %s", self.mode, m)
        for u in unchecked:
            log.warning("transform guard could not check deployment %r: %s", u["deployment"],
                        u["reason"])

    def collector(self) -> Any:
        """A Prometheus collector of the mismatches and refusals (for ``/metrics``)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        guard = self

        class _Collector:
            def collect(self):
                g = GaugeMetricFamily("sparkfs_transform_guard_mismatches",
                                      "Transforms a deployment serves with other code than its "
                                      "model was trained with", labels=["deployment", "transform"])
                for m in guard.all_mismatches()[0]:
                    g.add_metric([m.deployment, f"{m.kind}:{m.name}"], 1)
                yield g
                c = CounterMetricFamily("sparkfs_transform_guard_refused",
                                        "Predictions refused by the transform guard",
                                        labels=["deployment"])
                with guard._lock:
                    refused = dict(guard.refused)
                for dep, n in sorted(refused.items()):
                    c.add_metric([dep], n)
                yield c

        return _Collector()


def install(app: Any, catalog: Any, models: Any, deployments: Any,
            serving: Any) -> TransformGuard:
    """Make the service's guard (``app.state.transform_guard``) over ``catalog``, ``models``
    and ``deployments`` with the ``serving`` config section's ``transform_guard`` and
    ``registry_refresh_s``; add its metrics to ``app.state.metrics_registry`` when there is
    one, and log the mismatches found at start-up."""
    guard = TransformGuard(catalog, models, deployments, serving.transform_guard,
                           serving.registry_refresh_s)
    app.state.transform_guard = guard
    if guard.mode == "off":
        return guard
    registry = getattr(app.state, "metrics_registry", None)
    if registry is not None:
        registry.register(guard.collector())
    guard.log_startup()
    return guard
