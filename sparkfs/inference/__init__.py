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
from ..registry_files import one_look
from .deployments import Deployment, Deployments
from .evaluation import EvaluationLogger, create_log_table, install_sigterm_flush, read_log
from .online import PredictionResult, predict

__all__ = ["Deployment", "Deployments", "EvaluationLogger", "Inference", "PredictionResult"]


class Inference:
    """Deployments and scoring, wired from its collaborators: the catalog (sparkfs
    registry and the code applied in this process), the MLflow model registry, the online
    feature reader, the point-in-time join, the Spark provider and the evaluation log's
    location. Only the facade (``FeatureStore.inference``) constructs one."""

    def __init__(self, catalog: Any, models: ModelRegistry,
                 read_features: Callable[..., Any],
                 resolve_columns: Callable[[list[str], bool], list[tuple[str, str]]],
                 log_root: str, storage_options: Mapping[str, str] | None = None,
                 logger: EvaluationLogger | None = None,
                 historical: Callable[..., Any] | None = None,
                 spark: Callable[[], Any] | None = None) -> None:
        self.catalog = catalog
        self.deployments = Deployments(catalog.registry)
        self.models = models
        self.read_features = read_features
        self.resolve_columns = resolve_columns
        self.log_root = log_root
        self.storage_options = dict(storage_options or {})
        self.logger = logger or EvaluationLogger(storage_options=self.storage_options)
        self._historical = historical
        self._spark = spark
        self._sigterm = False
        self._lock = threading.Lock()
        #: Set while the online service runs (``sparkfs.serving.deployments.register``,
        #: from startup to shutdown): after a model is first loaded, move every object
        #: alive then out of the garbage collector's sight (``freeze_heap``).
        self.freeze_after_load = False
        self._frozen: set[tuple[str, int]] = set()

    @classmethod
    def wire(cls, *, catalog: Any, spark: Callable[[], Any], models: ModelRegistry,
             read_features: Callable[..., Any], historical: Callable[..., Any],
             resolve_columns: Callable[[list[str], bool], list[tuple[str, str]]],
             inference_config: Any, offline_root: str,
             storage_options: Mapping[str, str] | None = None) -> "Inference":
        """An ``Inference`` from the facade's collaborators and config values
        (``inference_config``: ``config.inference``; the evaluation logs live under
        ``<offline_root>/_evaluation``)."""
        c = inference_config
        logger = EvaluationLogger(c.log_queue_rows, c.log_batch_rows, c.log_flush_s,
                                  storage_options, compact_every=c.log_compact_every)
        return cls(catalog, models, read_features, resolve_columns,
                   offline_root.rstrip("/") + "/_evaluation", storage_options, logger,
                   historical=historical, spark=spark)

    def historical(self, spine: Any, features: list[str], timestamp_col: str,
                   **options: Any) -> Any:
        """Point-in-time features (``get_historical_features``) for batch and table
        scoring."""
        if self._historical is None:
            raise ValidationError("batch scoring needs the point-in-time join: score "
                                  "through a FeatureStore")
        return self._historical(spine, features, timestamp_col, **options)

    def spark(self) -> Any:
        """The SparkSession (started only when batch or table scoring needs it)."""
        if self._spark is None:
            raise ValidationError("batch and table scoring need Spark: score through a "
                                  "FeatureStore")
        return self._spark()

    def check_view(self, label: str) -> None:
        """Raise ``NotFoundError`` unless view ``name@version`` is registered."""
        name, _, version = label.partition("@")
        self.catalog.get_view(name, int(version) if version else None)

    def request_spec(self, binding: Any) -> tuple[list, list]:
        """``(entity columns, request columns)`` of a binding (``table.request_spec``)."""
        from .table import request_spec

        return request_spec(self.catalog, binding)

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
        """The deployment's pyfunc model, loaded once per process (and then, in the
        service, the heap frozen: ``freeze_heap``)."""
        model = self.models.load(d.model_name, d.model_version)
        key = (d.model_name, d.model_version)
        if self.freeze_after_load and key not in self._frozen:
            with self._lock:
                if key not in self._frozen:
                    self._frozen.add(key)
                    freeze_heap()
        return model

    def predict(self, deployment: str, entity_rows: Sequence[Mapping[str, Any]],
                request_data: Mapping[str, Sequence[Any]] | None = None) -> PredictionResult:
        """Score entity rows online (see ``sparkfs.inference.online.predict``). The
        deployment cache and the feature reader's plan cache look at a SQLite registry's
        files once per prediction (``sparkfs.registry_files.one_look``)."""
        with one_look():
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


def freeze_heap() -> None:
    """Collect garbage once, then move every object alive into the collector's permanent
    generation (``gc.freeze``): later full collections scan only newer objects.

    A service holds a few hundred thousand long-lived objects (MLflow, scikit-learn,
    pandas, the model): a full collection over them paused every request in flight for
    0.4-0.6 s (measured with ``gc.callbacks`` under load) once every few hundred requests,
    which set the service's p99. Frozen objects are still freed by reference counting;
    only cycles among them are left to live, as modules and models do anyway.

    >>> import gc
    >>> freeze_heap(); gc.get_freeze_count() > 0
    True
    >>> gc.unfreeze()
    """
    import gc

    gc.collect()
    gc.freeze()
