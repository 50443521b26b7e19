"""Deployments: a model version bound to its feature view, stored in the sparkfs registry.

A deployment is registry object ``deployment:{name}``; each ``deploy`` adds a revision
(1, 2, ...) in one registry transaction, and readers always take the highest revision, so
a redeploy switches every reader from one complete revision to the next (never a mix);
a serving process's cache (``Deployments``) re-reads a revision older than ``max_age_s``.
``deploy`` refuses, before anything is written, a model logged without a training set, a
model whose signature does not match its view's columns, and an unknown model, version
or view.

>>> d = Deployment("delay", 1, "delay_model", 2, "delays@1", "flights@1",
...                FeatureBinding(None, ("w@1:t",), (("t", "double"),)), 1.0, "/tmp/x", "")
>>> Deployment.from_spec(d.to_spec()) == d, d.model_label
(True, 'delay_model@2')
"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import NotFoundError, RegistryError, RegistryUnavailableError, ValidationError
from ..models.binding import FeatureBinding, mismatch
from ..models.mlflow_store import ModelRegistry
from ..registry_files import file_stats

KIND = "deployment"
log = logging.getLogger("sparkfs.inference")


@dataclass(frozen=True)
class Deployment:
    """One revision of a deployment."""

    name: str
    revision: int
    model_name: str
    model_version: int
    view: str | None
    training_set: str
    binding: FeatureBinding
    sample_rate: float
    log_path: str
    created_at: str
    request_table: str | None = None

    @property
    def model_label(self) -> str:
        return f"{self.model_name}@{self.model_version}"

    def to_spec(self) -> dict:
        return {"name": self.name, "version": self.revision, "model_name": self.model_name,
                "model_version": self.model_version, "view": self.view,
                "training_set": self.training_set, "binding": self.binding.to_json(),
                "sample_rate": self.sample_rate, "log_path": self.log_path,
                "created_at": self.created_at, "request_table": self.request_table}

    @classmethod
    def from_spec(cls, s: dict) -> "Deployment":
        return cls(s["name"], int(s["version"]), s["model_name"], int(s["model_version"]),
                   s.get("view"), s["training_set"], FeatureBinding.from_json(s["binding"]),
                   float(s["sample_rate"]), s["log_path"], s["created_at"],
                   s.get("request_table"))

    def to_dict(self) -> dict:
        """A JSON-able summary (CLI, HTTP)."""
        d = self.to_spec()
        d["binding"] = FeatureBinding.from_json(d["binding"]).__dict__ | {
            "columns": [list(c) for c in self.binding.columns]}
        d["model"] = self.model_label
        return d


class Deployments:
    """Deployment revisions in the sparkfs registry, cached per process.

    A cached revision is used for at most ``max_age_s`` seconds; then the next ``get``
    re-reads it (one thread re-reads, the others keep the cached revision meanwhile), so a
    redeploy made by another process or host becomes visible within ``max_age_s`` with
    either registry backend, without a restart. With a SQLite registry a change of the
    file is seen at once (its size and modification time are compared on every ``get``;
    within a prediction the plan cache reuses that look: ``sparkfs.registry_files``).
    A request holds the ``Deployment`` it started with, so a switch never fails one in
    flight; a registry that cannot be read keeps the cached revision serving (logged).

    >>> import tempfile, os
    >>> from sparkfs.registry import Registry
    >>> deps = Deployments(Registry(os.path.join(tempfile.mkdtemp(), "r.db")), max_age_s=0.5)
    >>> deps.max_age_s
    0.5
    """

    def __init__(self, registry: Any, max_age_s: float = 1.0) -> None:
        from ..registry_sql import is_url

        self.registry = registry
        self.max_age_s = max_age_s
        path = str(registry.path)
        self._paths: tuple[str, ...] = () if is_url(path) else (path, path + "-wal")
        self._sig: tuple | None = None
        self._cache: dict[str, tuple[Deployment, float]] = {}  # name -> (revision, read at)
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def _signature(self, fresh: bool = False) -> tuple:
        return file_stats(self._paths, fresh)  # once per prediction (registry_files.one_look)

    def get(self, name: str) -> Deployment:
        """The current revision of ``name``; ``NotFoundError`` lists the deployments."""
        sig = self._signature()
        now = time.monotonic()
        with self._lock:
            if sig != self._sig:
                self._cache.clear()
                self._sig = sig
            hit = self._cache.get(name)
            if hit is not None:
                if now - hit[1] < self.max_age_s or name in self._refreshing:
                    return hit[0]
                self._refreshing.add(name)  # this thread re-reads it
        try:
            spec = self.registry.get(KIND, name)
        except RegistryUnavailableError as exc:
            if hit is None:
                raise
            log.warning("deployment %r: the registry cannot be read (%s); serving revision "
                        "%d meanwhile", name, exc, hit[0].revision)
            with self._lock:
                self._cache[name] = (hit[0], now)  # try again in max_age_s
            return hit[0]
        finally:
            if hit is not None:
                with self._lock:
                    self._refreshing.discard(name)
        if spec is None:
            with self._lock:
                self._cache.pop(name, None)
            known = sorted({s["name"] for s in self.registry.list(KIND)})
            raise NotFoundError(f"deployment {name!r} does not exist; deployments: "
                                f"{known or 'none (create one with fs.deploy)'}")
        d = Deployment.from_spec(spec)
        if hit is not None and hit[0] == d:
            d = hit[0]  # the same revision: keep the object requests already hold
        after = self._signature(fresh=True)  # reading may touch the file (SQLite's WAL index)
        with self._lock:
            if self._sig == sig:
                # a redeploy that raced this read is seen within max_age_s all the same
                self._sig = after
                self._cache[name] = (d, now)
        return d

    def list(self) -> builtins.list[Deployment]:
        """The current revision of every deployment."""
        latest: dict[str, dict] = {}
        for s in self.registry.list(KIND):
            latest[s["name"]] = s
        return [Deployment.from_spec(s) for s in latest.values()]

    def deploy(self, name: str, models: ModelRegistry, model: str, version: int | None,
               resolve_columns: Callable[[builtins.list[str], bool],
                                         builtins.list[tuple[str, str]]],
               log_root: str, create_log: Callable[[str, FeatureBinding], None],
               check_view: Callable[[str], None] | None = None,
               sample_rate: float = 1.0,
               request_table: Callable[[FeatureBinding], str] | None = None) -> Deployment:
        """Check the model version against its view, create the evaluation table (and with
        ``request_table``, the scoring table: it creates or checks the table for the
        binding and returns its path), then register the next revision of ``name`` (see
        the module docstring)."""
        from ..definitions import check_name

        check_name(name, "deployment")
        if not 0.0 <= float(sample_rate) <= 1.0:
            raise ValidationError(f"deployment {name!r}: sample_rate must be within [0, 1], "
                                  f"got {sample_rate}")
        info = models.get_version(model, version)
        binding = info.binding
        if not info.training_set or binding is None or not binding.columns:
            raise RegistryError(
                f"cannot deploy model {info.label}: it was logged without a training set, so "
                f"the features it consumes are unknown; log it with fs.log_model(model, "
                f"{model!r}, training_set=...) and deploy that version. Nothing was deployed")
        if binding.view and check_view is not None:
            check_view(binding.view)  # NotFoundError names the view
        try:
            current = [tuple(c) for c in resolve_columns(list(binding.features),
                                                         binding.full_feature_names)]
        except NotFoundError as exc:
            raise NotFoundError(f"cannot deploy model {info.label}: {exc}. Nothing was "
                                "deployed") from None
        if current != list(binding.columns):
            raise RegistryError(
                f"cannot deploy model {info.label}: its view now resolves to columns {current}, "
                f"but the model was trained on {list(binding.columns)}. Nothing was deployed")
        why = mismatch(binding, info.signature_inputs)
        if why:
            raise RegistryError(f"cannot deploy model {info.label}: {why}; log the model with "
                                "the signature sparkfs builds from its view. Nothing was deployed")
        log_path = log_root.rstrip("/") + "/" + name
        table = request_table(binding) if request_table is not None else None
        create_log(log_path, binding)
        revision = max(self.registry.versions(KIND, name), default=0) + 1
        d = Deployment(name, revision, info.name, info.version, binding.view, info.training_set,
                       binding, float(sample_rate), log_path,
                       dt.datetime.now(dt.UTC).isoformat(), table)
        self.registry.put(KIND, name, revision, d.to_spec(), replace=False)
        with self._lock:
            self._cache.pop(name, None)  # this process sees its own deploy at once
        return d
