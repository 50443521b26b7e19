"""``FeatureStore``: the facade users hold. Thin on purpose: each method delegates to the
module that owns the capability (registry, offline, online, training, validation...).

Nothing heavy happens at construction: Spark starts, stores connect and
great-expectations is imported only when a method first needs them.

>>> import tempfile
>>> from sparkfs import FeatureStore, Entity, Field, FeatureGroup
>>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
>>> airport = Entity("airport", join_keys=["origin"])
>>> weather = FeatureGroup(name="weather", entities=[airport], event_time="time_hour",
...                        schema=[Field("temp", "double")])
>>> fs.apply([airport, weather]).created
['entity:airport', 'feature_group:weather@1']
>>> [g.name for g in fs.list_feature_groups()]
['weather']
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import progress
from .catalog import Catalog
from .config import Config, load_config, load_config_dict
from .definitions import Entity, FeatureGroup
from .errors import NotFoundError, SparkfsError
from .offline.tables import OfflineStore
from .registry import ApplyResult, Registry
from .views import FeatureView

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from .online.base import OnlineStore
    from .online.materialize import MaterializeResult


class FeatureStore:
    """Entry point: definitions, ingestion, materialization, online and training reads.

    ``config`` is a ``Config``, a mapping of config sections, a YAML path, or None for
    ``$SPARKFS_CONFIG`` (or the embedded defaults). ``spark`` is the SparkSession to use;
    without one the store uses the active session (Databricks, Jupyter) and only then
    builds its own from the ``spark`` config section.
    """

    def __init__(self, config: Config | Mapping[str, Any] | str | os.PathLike | None = None,
                 spark: "SparkSession | None" = None) -> None:
        if isinstance(config, Config):
            self.config = config
        elif isinstance(config, Mapping):
            self.config = load_config_dict(config)
        else:
            self.config = load_config(config)
        self._spark = spark
        self._lock = threading.Lock()
        self.registry = Registry(self.config.registry_url,
                                 lock_timeout_s=self.config.registry.lock_timeout_s)
        self.offline = OfflineStore(self.config.offline_root, self.config.offline.storage_options)
        self._online: OnlineStore | None = None
        self._push_writer: Any = None
        self._models: Any = None
        self._inference: Any = None
        # The registry plus the code applied in this process (transforms).
        self.catalog = Catalog(self.registry)

    @classmethod
    def from_config(cls, path: str | os.PathLike | None = None,
                    spark: "SparkSession | None" = None) -> "FeatureStore":
        """Build a store from a YAML config file (default ``$SPARKFS_CONFIG``)."""
        return cls(load_config(path), spark=spark)

    # -- engines --------------------------------------------------------------------------
    @property
    def spark(self) -> "SparkSession":
        """The SparkSession: the one given, else the active one, else a new one from config."""
        if self._spark is None:
            with self._lock:
                if self._spark is None:
                    from .sparkutil import get_or_create_spark

                    self._spark = get_or_create_spark(
                        self.config.spark, delta=self.config.offline.engine == "delta-spark")
        return self._spark

    @property
    def online(self):
        """The online store chosen by ``online.type`` (connects lazily)."""
        if self._online is None:
            with self._lock:
                if self._online is None:
                    from .online import open_online_store

                    self._online = open_online_store(self.config)
        return self._online

    @property
    def models(self):
        """The MLflow model registry (``sparkfs.models.ModelRegistry``; mlflow loads lazily)."""
        if self._models is None:
            with self._lock:
                if self._models is None:
                    from .models import ModelRegistry

                    c = self.config
                    self._models = ModelRegistry(c.mlflow_tracking_uri, c.mlflow_registry_uri,
                                                 c.mlflow_artifact_root, c.models.experiment)
        return self._models

    @property
    def inference(self):
        """Deployments, scoring and the evaluation store (``sparkfs.inference.Inference``)."""
        if self._inference is None:
            self.models  # noqa: B018 - made first: it takes the same lock
            with self._lock:
                if self._inference is None:
                    from .inference import Inference

                    self._inference = Inference.wire(
                        catalog=self.catalog, spark=lambda: self.spark, models=self._models,
                        read_features=self.get_online_features,
                        historical=self.get_historical_features,
                        resolve_columns=self._model_columns,
                        inference_config=self.config.inference,
                        offline_root=self.config.offline_root,
                        storage_options=self.config.offline.storage_options)
        return self._inference

    def close(self) -> None:
        """Flush pushed rows to Delta and the evaluation log, close online-store and
        registry connections. The SparkSession is left running."""
        if self._push_writer is not None:
            self._push_writer.close()
            self._push_writer = None
        if self._inference is not None:
            self._inference.close()
        if self._online is not None:
            self._online.close()
            self._online = None
        self.registry.close()

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- definitions ----------------------------------------------------------------------
    def apply(self, objects: Iterable[Any]) -> ApplyResult:
        """Register entities, feature groups, feature views and on-demand transforms (one
        transaction).

        Identical definitions are a no-op; an incompatible change to an existing group or
        view version is refused (bump the version). A view's references must exist (in the
        registry or in the same call). Each new group version gets its empty Delta
        history table.
        """
        objs = list(objects)
        result = self.catalog.apply(objs)
        for g in objs:
            if isinstance(g, FeatureGroup):
                self.offline.create(g)
        return result

    def list_feature_groups(self, latest_only: bool = False) -> list[FeatureGroup]:
        """Every registered feature group version (or only each name's latest)."""
        return self.catalog.list_groups(latest_only)

    def get_feature_group(self, name: str | FeatureGroup,
                          version: int | None = None) -> FeatureGroup:
        """A registered feature group (its latest version unless ``version`` is given)."""
        return self.catalog.get_group(name, version)

    def list_entities(self) -> list[Entity]:
        return self.registry.list_entities()

    def get_feature_view(self, name: str | FeatureView, version: int | None = None) -> FeatureView:
        """A registered feature view: ``"name"`` (latest version), ``"name@2"``, or
        ``name`` with ``version``.

        >>> import tempfile
        >>> from sparkfs import Entity, Field, FeatureGroup, FeatureView
        >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
        >>> g = FeatureGroup("weather", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
        >>> _ = fs.apply([g, FeatureView("delay", features=["weather:temp"])])
        >>> fs.get_feature_view("delay@1").features, [v.label for v in fs.list_feature_views()]
        (('weather:temp',), ['delay@1'])
        """
        return self.catalog.get_view(name, version)

    def list_feature_views(self) -> list[FeatureView]:
        """Every registered feature view version, by name then version."""
        return self.catalog.list_views()

    # -- offline --------------------------------------------------------------------------
    @progress.tracked("ingest")
    def ingest(self, group: str | FeatureGroup, df: Any, run_id: str | None = None,
               materialize: bool | None = None, version: int | None = None):
        """Validate a batch and append it to the group's Delta history in one commit.

        ``df`` is a Spark DataFrame, a pandas DataFrame or an Arrow table. Returns an
        ``IngestResult`` (Delta version, rows written/skipped/quarantined, duration).
        The same ``run_id`` twice is a no-op; rows already stored with identical values
        are skipped. ``materialize`` (default: ``ingest.materialize`` in config) pushes
        the new latest values online right after the commit.
        """
        from .offline.ingest import ingest

        g = self.get_feature_group(group, version)
        result = ingest(self.catalog, self.offline, lambda: self.spark, g, df, run_id=run_id,
                        engine=self.config.offline.engine,
                        statistics=self.config.ingest.statistics,
                        local_max_rows=self.config.ingest.local_max_rows,
                        delta_jars=self.config.spark.delta_jars)
        if materialize if materialize is not None else self.config.ingest.materialize:
            if g.online and result.rows_written:
                [result.materialization] = self.materialize(g)
        return result

    # -- streaming ------------------------------------------------------------------------
    def ingest_stream(self, group: str | FeatureGroup, streaming_df: Any, checkpoint: str,
                      trigger: str | dict | None = None, materialize: bool = True,
                      version: int | None = None, **options: Any):
        """Start a Structured Streaming query that ingests every micro-batch of
        ``streaming_df`` like ``fs.ingest`` (one Delta commit, exactly once across
        restarts from ``checkpoint``) and, with ``materialize``, keeps online values fresh.
        Returns the ``StreamingQuery``. See ``sparkfs.streaming``."""
        from .online.materialize import materialize as materialize_group
        from .streaming import ingest_stream

        engine = options.pop("materialize_engine", "local")

        def online(g: FeatureGroup):
            return materialize_group(self.offline, self.online, g, engine=engine,
                                     spark=lambda: self.spark, config=self.config)

        fg = self.get_feature_group(group, version)
        return ingest_stream(self.catalog, self.offline, fg, streaming_df, checkpoint,
                             trigger=trigger,
                             ingest=lambda g, df, run_id: self.ingest(g, df, run_id=run_id,
                                                                      materialize=False),
                             materialize=online if materialize else None,
                             online=self.online if materialize and fg.online else None,
                             status_root=self.config.data_dir, **options)

    def stream_source(self, group: str | FeatureGroup, kind: str, version: int | None = None,
                      **options: Any):
        """A streaming DataFrame for ``group`` from ``kind`` = ``"kafka"`` (``bootstrap_servers``,
        ``topic``, ``starting_offsets``), ``"files"`` (``path``, ``format``) or ``"delta"``
        (``uri``, ``change_feed``). See ``sparkfs.streaming.sources``."""
        from .streaming import sources

        g = self.get_feature_group(group, version)
        if kind == "kafka":
            return sources.kafka_source(self.spark, g, **options)
        if kind == "files":
            return sources.files_source(self.spark, g, **options)
        if kind == "delta":
            return sources.delta_source(self.spark, **options)
        raise SparkfsError(f"stream source {kind!r} is unknown; use 'kafka', 'files' or 'delta'")

    def push(self, group: str | FeatureGroup, rows: Any, to: str = "online_and_offline",
             version: int | None = None) -> int:
        """Write request-time rows online at once and/or append them to Delta in batched,
        asynchronous commits (flushed by ``close``). See ``sparkfs.streaming.push``."""
        from .streaming.push import push

        return push(self.online if to != "offline" else None, self._pusher,
                    self.get_feature_group(group, version), rows, to=to)

    def _pusher(self):
        if self._push_writer is None:
            with self._lock:
                if self._push_writer is None:
                    from .streaming.push import PushWriter

                    self._push_writer = PushWriter(self.offline)
        return self._push_writer

    def push_stats(self) -> dict:
        """Counters of this store's push writer: rows queued and committed to Delta,
        commits, failed attempts, last error (zeros before the first push).

        >>> import tempfile
        >>> FeatureStore({"data_dir": tempfile.mkdtemp()}).push_stats()["rows_committed"]
        0
        """
        if self._push_writer is None:
            return {"rows_queued": 0, "rows_committed": 0, "commits": 0, "failed_attempts": 0,
                    "last_error": None}
        return self._push_writer.stats()

    def flush_pushes(self, close: bool = False, timeout: float = 120.0) -> None:
        """Wait until every pushed row queued so far is committed to Delta; ``close`` also
        stops the writer (a later push starts a new one).

        >>> import tempfile
        >>> FeatureStore({"data_dir": tempfile.mkdtemp()}).flush_pushes()
        """
        writer = self._push_writer
        if writer is None:
            return
        if close:
            with self._lock:
                self._push_writer = None
            writer.close(timeout)
        else:
            writer.flush(timeout)

    def stream_batches(self, stream: str) -> list:
        """The run log of a stream: one ``StreamBatch`` per micro-batch (counts, event-time
        range, validation status, statistics version, source offsets), by batch id.
        ``stream`` is a stream id (``sparkfs streams``) or a feature group name (every
        stream into it). See ``sparkfs.streaming.batches``.

        >>> import tempfile
        >>> FeatureStore({"data_dir": tempfile.mkdtemp()}).stream_batches("clicks")
        []
        """
        from .streaming.batches import stream_batches

        ids = [s.stream_id for s in self.list_streams()
               if s.group == stream or f"{s.group}@{s.group_version}" == stream] or [stream]
        return [b for sid in ids for b in stream_batches(self.registry, sid)]

    def list_streams(self):
        """The stream queries of this store (any process) with their last known status.

        >>> import tempfile
        >>> FeatureStore({"data_dir": tempfile.mkdtemp()}).list_streams()
        []
        """
        from .streaming.status import list_streams, status_dir

        if self._spark is not None:  # streams this process ran: their final state first
            from .streaming.ingest import settle_streams

            settle_streams(self._spark)
        return list_streams(status_dir(self.config.data_dir))

    def read_history(self, group: str | FeatureGroup, version: int | None = None,
                     as_of: Any = None, group_version: int | None = None):
        """The group's Delta history at a Delta ``version`` or point in time ``as_of``.

        Returns a lazy ``History``: ``.to_spark()``, ``.to_arrow()``, ``.to_pandas()``
        (the last two without Spark); other attributes are those of the Spark DataFrame.
        """
        from .offline.history import History

        g = self.get_feature_group(group, group_version)
        return History(self.offline, g, version=version, as_of=as_of,
                       spark=lambda: self.spark, engine=self.config.offline.engine)

    # -- online ---------------------------------------------------------------------------
    @progress.tracked("materialize")
    def materialize(self, group: str | FeatureGroup | None = None, version: int | None = None,
                    engine: str = "spark") -> list[MaterializeResult]:
        """Push the latest value per key from Delta to the online store, incrementally:
        ``group`` (its latest version unless ``version``), or every online group's latest
        version when no group is given. One ``MaterializeResult`` per group, in order.

        ``engine``: ``"spark"`` (executors write, the default) or ``"local"`` (DuckDB in
        this process, no Spark needed).

        >>> import tempfile
        >>> from sparkfs import Entity, FeatureGroup, FeatureStore, Field
        >>> fs = FeatureStore({"project": "doc", "data_dir": tempfile.mkdtemp()})
        >>> g = FeatureGroup(name="weather", entities=[Entity("airport", join_keys=["origin"])],
        ...                  event_time="time_hour", schema=[Field("temp", "double")], online=True)
        >>> _ = fs.apply([g])
        >>> [(r.group, r.keys_written) for r in fs.materialize("weather", engine="local")]
        [('weather', 0)]
        >>> fs.close()
        """
        from .online.materialize import materialize

        groups = ([self.get_feature_group(group, version)] if group is not None
                  else [g for g in self.list_feature_groups(latest_only=True) if g.online])
        return [materialize(self.offline, self.online, g, engine=engine,
                            spark=lambda: self.spark, config=self.config) for g in groups]

    @progress.tracked("rebuild-online")
    def rebuild_online(self, group: str | FeatureGroup | None = None,
                       engine: str = "spark") -> list[MaterializeResult]:
        """Rebuild the online values of ``group`` (every online group when None) from Delta
        alone, into an emptied online table; returns what ``materialize`` returns (one
        ``MaterializeResult`` per group).

        >>> import tempfile, pandas as pd
        >>> from sparkfs import Entity, Field, FeatureGroup
        >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
        >>> g = FeatureGroup("weather", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
        >>> _ = fs.apply([g])
        >>> _ = fs.ingest("weather", pd.DataFrame({"origin": ["JFK"], "temp": [3.5],
        ...                                        "t": pd.to_datetime(["2013-01-01"], utc=True)}))
        >>> [r.keys_written for r in fs.rebuild_online("weather", engine="local")]
        [1]
        >>> fs.get_online_features(["weather:temp"], [{"origin": "JFK"}]).to_dict()["temp"]
        [3.5]
        """
        from .online.materialize import rebuild

        groups = ([self.get_feature_group(group)] if group is not None
                  else [g for g in self.list_feature_groups(latest_only=True) if g.online])
        return [rebuild(self.offline, self.online, g, engine=engine,
                        spark=lambda: self.spark, config=self.config) for g in groups]

    def get_online_features(self, features: Sequence[str] | None = None,
                            entity_rows: Sequence[Mapping[str, Any]] | None = None,
                            request_data: Mapping[str, Sequence[Any]] | None = None,
                            full_feature_names: bool = False, *, view: Any = None):
        """Latest feature values for each entity row, with a status per value.

        Pass feature references, or ``view=`` (a view name, ``"name@2"`` or a
        ``FeatureView``): the same columns as a training set of that view.
        """
        from .serving.online import get_online_features

        return get_online_features(self.catalog, self.online, features, entity_rows,
                                   request_data=request_data,
                                   full_feature_names=full_feature_names, view=view,
                                   serving=self.config.serving)

    # -- training -------------------------------------------------------------------------
    def get_historical_features(self, spine: Any, features: Sequence[str] | None = None,
                                timestamp_col: str | None = None, engine: str = "spark",
                                as_known_at: bool = False,
                                key_map: Mapping[str, str] | None = None, *, view: Any = None,
                                **options: Any):
        """A point-in-time correct training set for ``spine`` (see ``sparkfs.training``),
        of feature references or of ``view=`` (name, ``"name@2"`` or ``FeatureView``)."""
        from .training import get_historical_features

        return get_historical_features(self.catalog, self.offline, lambda: self.spark, spine,
                                       features, timestamp_col, engine=engine,
                                       as_known_at=as_known_at, key_map=key_map, view=view,
                                       **options)

    @progress.tracked("training-set create")
    def create_training_set(self, name: str, spine: Any, features: Sequence[str] | None = None,
                            timestamp_col: str | None = None, *, view: Any = None,
                            **options: Any):
        """Build a training set, store its data and manifest under ``name`` (of feature
        references or of ``view=``; the manifest records the view's name and version)."""
        from .training.sets import create_training_set, training_sets_root

        return create_training_set(self.catalog, self.offline, name, spine, features,
                                   timestamp_col, view=view, spark=lambda: self.spark,
                                   root=training_sets_root(self.config.data_dir), **options)

    def get_training_set(self, name: str, version: int | None = None):
        """A stored training set: its latest version, or ``version`` (see
        ``sparkfs.training.sets``)."""
        from .training.sets import get_training_set

        return get_training_set(self.catalog, name, version, spark=lambda: self.spark)

    @progress.tracked("training-set recreate")
    def recreate_training_set(self, name: str, version: int | None = None):
        """Rebuild a stored training set (its latest version, or ``version``) from its
        manifest; refuses when its inputs changed (see ``sparkfs.training.sets``)."""
        from .training.sets import recreate_training_set

        return recreate_training_set(self.catalog, self.offline, name, version,
                                     spark=lambda: self.spark)

    # -- models and inference ---------------------------------------------------------------
    def log_model(self, model: Any, name: str, training_set: Any = None, **options: Any):
        """Log ``model`` to MLflow as a new version of ``name``, bound to a stored training
        set (``"name"``, ``"name@version"`` or a ``TrainingSet``); see ``sparkfs.models``."""
        from .models.log import log_model

        if isinstance(training_set, str):
            name_, _, v = training_set.partition("@")
            training_set = self.get_training_set(name_, int(v) if v else None)
        return log_model(self.models, model, name, training_set, self._model_columns, **options)

    def _model_columns(self, features: list[str], full_feature_names: bool) -> list[tuple[str, str]]:
        from .serving.online import feature_columns

        return feature_columns(self.catalog, features, full_feature_names,
                               serving=self.config.serving)

    def deploy(self, name: str, model: str, version: int | None = None, sample_rate: float = 1.0,
               table: bool = False):
        """Deploy a model version (bound to its view) as ``name``; see ``sparkfs.inference``.
        ``table=True`` also gives it a scoring table (``sparkfs.inference.table``)."""
        return self.inference.deploy(name, model, version, sample_rate=sample_rate, table=table)

    def list_deployments(self):
        return self.inference.deployments.list()

    def get_deployment(self, name: str):
        return self.inference.deployments.get(name)

    def predict(self, deployment: str, entity_rows: Sequence[Mapping[str, Any]],
                request_data: Mapping[str, Sequence[Any]] | None = None):
        """Score entity rows online: view features -> on-demand transforms -> model."""
        return self.inference.predict(deployment, entity_rows, request_data)

    @progress.tracked("score-batch")
    def score_batch(self, deployment: str, spine: Any, timestamp_col: str, **options: Any):
        """Score a spine on Spark with point-in-time features; a lazy Spark DataFrame."""
        from .inference.batch import score_batch

        return score_batch(self.inference, deployment, spine, timestamp_col, **options)

    def read_log(self, deployment: str, start: Any = None, end: Any = None):
        """The deployment's evaluation log (pandas, read without Spark)."""
        return self.inference.read_log(deployment, start=start, end=end)

    def append_requests(self, deployment: str, rows: Any) -> int:
        """Append request rows (pandas, Arrow or dicts: entity columns, optional
        ``request_id`` / ``request_time``, request columns) to a deployment's scoring table
        in one commit; returns the table's Delta version. ``score_table`` scores them.

        >>> fs.append_requests("delay", [{"origin": "JFK", "sched_dep_ts": now}])  # doctest: +SKIP
        3
        """
        return self.inference.append_requests(deployment, rows)

    def score_table(self, deployment: str, checkpoint: str | None = None, once: bool = False,
                    interval_s: float = 1.0):
        """Score the rows appended to a deployment's scoring table with a Structured
        Streaming query (exactly once per checkpoint; ``once``: what is there, then stop).
        Returns the ``StreamingQuery``; see ``sparkfs.inference.table``.

        >>> fs.score_table("delay", once=True).lastProgress["numInputRows"]  # doctest: +SKIP
        1
        """
        from .inference.table import follow

        return follow(self.inference, deployment, checkpoint, once=once, interval_s=interval_s)

    # -- quality and discovery --------------------------------------------------------------
    def statistics(self, group: str | FeatureGroup, version: int | None = None,
                   group_version: int | None = None):
        """Per-feature statistics of a Delta version (default: the latest computed)."""
        from .monitoring import statistics

        return statistics(self.catalog, self.get_feature_group(group, group_version), version)

    def monitor(self, group: str | FeatureGroup, baseline: Any, **options: Any):
        """Drift of a group's recent data against a baseline (see ``sparkfs.monitoring``)."""
        from .monitoring import monitor

        if isinstance(baseline, str):  # a stored training set, by name
            baseline = self.get_training_set(baseline)
        return monitor(self.offline, lambda: self.spark, self.get_feature_group(group), baseline,
                       monitoring=self.config.monitoring, **options)

    def validation_report(self, group: str | FeatureGroup, group_version: int | None = None):
        from .validation import latest_report

        return latest_report(self.catalog, self.get_feature_group(group, group_version))

    def search(self, text: str):
        """Groups and features whose name, description, tags or owner match ``text``."""
        from .discovery import search

        return search(self.catalog, text)

    # -- governance: lineage, OpenLineage export (sparkfs.lineage) ------------------------------
    def lineage(self, node: str, direction: str = "up", depth: int | None = None):
        """Where ``node`` came from (``direction="up"``) or what uses it (``"down"``,
        ``"both"``), ``depth`` hops at most: a ``sparkfs.lineage.Lineage`` (nodes, edges,
        ``to_json()``, ``to_dot()``, ``str()`` a tree). Nodes: ``"model:delay_model@1"``,
        ``"deployment:delay"``, ``"training_set:delays@1"``, ``"view:delay@1"``,
        ``"group:weather@1"``, ``"feature:weather:temp"``, ``"delta:weather@1:v3"``, a
        prediction's ``"request:<request id>"`` (or the bare id)...

        >>> import tempfile
        >>> from sparkfs import Entity, Field, FeatureGroup, FeatureView
        >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
        >>> g = FeatureGroup("weather", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
        >>> _ = fs.apply([g, FeatureView("delay", features=["weather:temp"])])
        >>> fs.lineage("feature:weather:temp", direction="down").ids()
        ['feature:weather@1:temp', 'view:delay@1']
        """
        graph = self._lineage_graph()
        rid = _request_id(node)
        if rid is not None:
            from .lineage.explain import add_request_node

            node = add_request_node(graph, self.explain_prediction(rid))
        return graph.walk(node, direction, depth)

    def explain_prediction(self, request_id: str):
        """Why did the model do that? For one logged prediction (``request_id`` from
        ``fs.predict(...).request_id`` or the evaluation log): the deployment, model version,
        view and training set (Delta versions, transform fingerprints) that served it and,
        per feature, the value, status and event time served, the group's Delta version
        then and whether the online value was current or lagging. A
        ``sparkfs.lineage.explain.Explanation``; see that module.

        >>> import tempfile
        >>> FeatureStore({"data_dir": tempfile.mkdtemp()}).explain_prediction("abc")
        Traceback (most recent call last):
        ...
        sparkfs.errors.NotFoundError: request id 'abc' was not logged by any deployment (none (create one with fs.deploy)) (requests not sampled into the evaluation log cannot be explained)
        """  # noqa: E501 (doctest output)
        from .lineage.explain import explain_prediction

        return explain_prediction(self.catalog, self.offline, request_id,
                                  inference=self.inference, models=self.models)

    def lineage_events(self, namespace: str = "sparkfs") -> list:
        """Every job sparkfs recorded (ingest runs, training sets, model versions,
        deployments) as OpenLineage ``RunEvent``s; send them with
        ``sparkfs.lineage.openlineage.emit`` (see there).

        >>> import tempfile
        >>> FeatureStore({"data_dir": tempfile.mkdtemp()}).lineage_events()
        []
        """
        from .lineage.openlineage import run_events

        return run_events(self._lineage_graph(), namespace)

    def _lineage_graph(self):
        import importlib.util

        from .lineage import build_graph

        models, why = None, None
        uri = self.config.mlflow_tracking_uri
        if importlib.util.find_spec("mlflow") is None:
            why = "mlflow is not installed (pip install 'sparkfs[models]')"
        elif not (uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///"):])):
            models = self.models  # (a missing SQLite db: no model was ever logged; reading
            # lineage must not create it)
        return build_graph(self.registry, self.offline, models, self.list_feature_groups(),
                           models_unread=why)

    def skew_report(self, deployment: str, start: Any = None, end: Any = None,
                    engine: str = "duckdb", threshold: float = 0.0, save: bool = False):
        """Compare the features ``deployment`` served online in ``[start, end)`` (its
        evaluation log) with the same requests recomputed offline at their logged time
        (point in time, as known then): per feature match / missing-online /
        missing-offline / mismatch rates, differences, causes and samples. A
        ``sparkfs.monitoring.skew.SkewReport``; ``report.failing()`` lists the features above
        ``threshold``. ``save``: also store it (``report.report_id``; see
        ``list_skew_reports``).

        >>> import tempfile
        >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
        >>> fs.skew_report("delay")
        Traceback (most recent call last):
        ...
        sparkfs.errors.NotFoundError: deployment 'delay' does not exist; deployments: none (create one with fs.deploy)
        """  # noqa: E501 (doctest output)
        from .monitoring.skew import skew_report
        from .monitoring.skew_reports import reports_path, save_report

        report = skew_report(self.catalog, self.offline, lambda: self.spark, self.inference,
                             deployment, start=start, end=end, engine=engine,
                             threshold=threshold,
                             storage_options=dict(self.config.offline.storage_options))
        if save:
            save_report(report, reports_path(self.config.offline_root),
                        dict(self.config.offline.storage_options))
        return report

    def list_skew_reports(self, deployment: str | None = None, start: Any = None,
                          end: Any = None) -> list[dict]:
        """Stored skew reports (oldest first; of ``deployment``, created in ``[start,
        end)``): id, time, deployment, revision, model, training set, window, ``failing``
        and ``skew_rates`` per feature, so skew over time is queryable without Spark.

        >>> import tempfile
        >>> FeatureStore({"data_dir": tempfile.mkdtemp()}).list_skew_reports()
        []
        """
        from .monitoring.skew_reports import list_reports, reports_path

        return list_reports(reports_path(self.config.offline_root),
                            dict(self.config.offline.storage_options), deployment, start, end)

    def get_skew_report(self, report_id: str):
        """A stored skew report (``SkewReport``) by id or a unique prefix of it.

        >>> import tempfile
        >>> FeatureStore({"data_dir": tempfile.mkdtemp()}).get_skew_report("0123456789")
        Traceback (most recent call last):
        ...
        sparkfs.errors.NotFoundError: no stored skew report '0123456789'; 0 report(s) stored (list them with `sparkfs skew --list`)
        """  # noqa: E501 (doctest output)
        from .monitoring.skew_reports import read_report, reports_path

        return read_report(reports_path(self.config.offline_root), report_id,
                           dict(self.config.offline.storage_options))

    def monitor_served(self, deployment: str, start: Any = None, end: Any = None,
                       **options: Any):
        """Drift of the features and predictions ``deployment`` served in ``[start, end)``
        against its model's training set (or ``baseline=(start, end)``, another window of
        its log): a ``DriftReport`` (PSI, KS, Wasserstein, null and NaN rates; the last row,
        ``prediction``, is prediction drift; ``options``: ``baseline``, ``predictions``,
        ``psi_threshold``, ``ks_pvalue``, ``wasserstein_threshold``, ``bins``). See
        ``sparkfs.monitoring.served``.

        >>> import tempfile
        >>> FeatureStore({"data_dir": tempfile.mkdtemp()}).monitor_served("delay")
        Traceback (most recent call last):
        ...
        sparkfs.errors.NotFoundError: deployment 'delay' does not exist; deployments: none (create one with fs.deploy)
        """  # noqa: E501 (doctest output)
        from .monitoring.served import served_drift

        return served_drift(self.catalog, self.inference, deployment, start=start, end=end,
                            monitoring=self.config.monitoring,
                            storage_options=dict(self.config.offline.storage_options),
                            **options)


def _request_id(node: Any) -> str | None:
    """The request id in a lineage node ``request:<id>``, or a bare 32-hex-digit id."""
    if not isinstance(node, str):
        return None
    if node.startswith("request:"):
        return node[len("request:"):]
    if len(node) == 32 and all(c in "0123456789abcdef" for c in node):
        return node
    return None


__all__ = ["FeatureStore", "NotFoundError", "SparkfsError"]
