"""Inference: deployments, online and batch scoring, the evaluation store.

A deployment binds one model version (logged with ``fs.log_model``, see
``sparkfs.models``) to the feature view it was trained on. Online, ``fs.predict`` reads the
view's features from the online store, runs its on-demand transforms and the model, and
queues one evaluation-store row per prediction; ``fs.score_batch`` does the same on Spark
for a spine with point-in-time features (``sparkfs.inference.batch``). Every prediction is
kept in the deployment's Delta table (``sparkfs.inference.evaluation``), readable with
``fs.read_log`` without Spark. Deployments live in the sparkfs registry
(``sparkfs.inference.deployments``); the pyspark-free modules here are what the online
service imports.

>>> from sparkfs.inference import Inference
>>> Inference.__name__
'Inference'
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import NotFoundError, ValidationError
from ..models.mlflow_store import ModelRegistry
from .deployments import Deployment, Deployments
from .evaluation import EvaluationLogger, create_log_table, install_sigterm_flush, read_log
from .online import PredictionResult, predict

__all__ = ["Deployment", "Deployments", "EvaluationLogger", "Inference", "PredictionResult"]


class Inference:
    """Deployments and scoring, wired from its collaborators: the sparkfs registry, the
    MLflow model registry, the online feature reader and the evaluation log's location."""

    def __init__(self, registry: Any, models: ModelRegistry,
                 read_features: Callable[..., Any],
                 resolve_columns: Callable[[list[str], bool], list[tuple[str, str]]],
                 log_root: str, storage_options: Mapping[str, str] | None = None,
                 check_view: Callable[[str], None] | None = None,
                 logger: EvaluationLogger | None = None,
                 request_spec: Callable[[Any], tuple[list, list]] | None = None) -> None:
        self.deployments = Deployments(registry)
        self.models = models
        self.read_features = read_features
        self.resolve_columns = resolve_columns
        self.log_root = log_root
        self.storage_options = dict(storage_options or {})
        self.check_view = check_view
        self.logger = logger or EvaluationLogger(storage_options=self.storage_options)
        self.request_spec = request_spec
        self._sigterm = False
        self._lock = threading.Lock()

    @classmethod
    def for_store(cls, fs: Any) -> "Inference":
        """Wire an ``Inference`` for a ``FeatureStore`` (the facade's one place to do it)."""
        c = fs.config.inference
        logger = EvaluationLogger(c.log_queue_rows, c.log_batch_rows, c.log_flush_s,
                                  fs.config.offline.storage_options)
        get_view = getattr(fs, "get_feature_view", None)

        def check_view(label: str) -> None:
            if get_view is not None:
                name, _, version = label.partition("@")
                get_view(name, int(version) if version else None)

        from .table import request_spec

        return cls(fs.registry, fs.models, fs.get_online_features, fs._model_columns,
                   fs.config.offline_root.rstrip("/") + "/_evaluation",
                   fs.config.offline.storage_options, check_view, logger,
                   lambda binding: request_spec(fs, binding))

    def deploy(self, name: str, model: str, version: int | None = None,
               sample_rate: float = 1.0, table: bool = False) -> Deployment:
        """Register the next revision of deployment ``name`` (see ``deployments``). With
        ``table`` (or when the current revision has one) the deployment gets a scoring
        table (``sparkfs.inference.table``), created or checked before anything is
        registered."""
        make_table = None
        try:
            had_table = bool(self.deployments.get(name).request_table)
        except NotFoundError:
            had_table = False
        if table or had_table:
            make_table = self._request_table(name)
        return self.deployments.deploy(
            name, self.models, model, version, self.resolve_columns, self.log_root,
            lambda path, b: create_log_table(path, b, self.storage_options), self.check_view,
            sample_rate=sample_rate, request_table=make_table)

    def _request_table(self, name: str) -> Callable[[Any], str]:
        from .table import create_request_table, request_columns_schema

        spec = self.request_spec
        if spec is None:
            raise ValidationError("scoring tables need the feature resolver: deploy "
                                  "through a FeatureStore")

        def make(binding: Any) -> str:
            keys, request = spec(binding)
            # beside the evaluation logs: <offline root>/_requests/<deployment>
            path = self.log_root.rsplit("/", 1)[0] + "/_requests/" + name
            return create_request_table(path, request_columns_schema(keys, request), name,
                                        self.storage_options)
        return make

    def append_requests(self, deployment: str, rows: Any) -> int:
        """Append request rows to ``deployment``'s scoring table (one commit); returns its
        new Delta version (see ``sparkfs.inference.table.append_requests``)."""
        from .table import append_requests

        return append_requests(self.deployments.get(deployment), rows, self.storage_options)

    def model(self, d: Deployment) -> Any:
        """The deployment's pyfunc model, loaded once per process."""
        return self.models.load(d.model_name, d.model_version)

    def predict(self, deployment: str, entity_rows: Sequence[Mapping[str, Any]],
                request_data: Mapping[str, Sequence[Any]] | None = None) -> PredictionResult:
        """Score entity rows online (see ``sparkfs.inference.online.predict``)."""
        d = self.deployments.get(deployment)
        self._install_sigterm()
        return predict(d, self.model(d), self.read_features, entity_rows, request_data,
                       self.logger)

    def _install_sigterm(self) -> None:
        if not self._sigterm:
            with self._lock:
                if not self._sigterm:
                    install_sigterm_flush(self.logger.flush)
                    self._sigterm = True

    def read_log(self, deployment: str, start: Any = None, end: Any = None):
        """The deployment's evaluation log as pandas (no Spark); queued rows first flushed."""
        d = self.deployments.get(deployment)
        self.logger.flush()
        return read_log(d.log_path, start, end, self.storage_options, deployment)

    def flush(self, timeout: float | None = None) -> bool:
        return self.logger.flush(timeout)

    def close(self) -> None:
        """Write every queued log row and stop the writer thread."""
        self.logger.close()


