"""``ModelRegistry``: log, find and load model versions through MLflow's client.

No global MLflow state is touched: one ``MlflowClient`` per store (tracking and registry
URIs from config), models saved with the flavour's ``save_model`` into a temporary
directory, uploaded with ``client.log_artifacts`` and registered with
``client.create_model_version``; loading goes through ``mlflow.pyfunc.load_model`` on the
version's download URI. Each loaded version is kept once per process.

>>> import tempfile
>>> reg = ModelRegistry("sqlite:///" + tempfile.mkdtemp() + "/m.db")
>>> reg.list_models()
[]
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import DefinitionError, NotFoundError
from .binding import FeatureBinding, signature_schema

TAG_TRAINING_SET = "sparkfs.training_set"
TAG_VIEW = "sparkfs.view"
TAG_BINDING = "sparkfs.binding"
TAG_MANIFEST = "sparkfs.manifest"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@dataclass
class ModelVersionInfo:
    """One registered model version and what sparkfs recorded with it."""

    name: str
    version: int
    source: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    signature_inputs: Any = None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def training_set(self) -> str | None:
        return self.tags.get(TAG_TRAINING_SET) or None

    @property
    def view(self) -> str | None:
        return self.tags.get(TAG_VIEW) or None

    @property
    def binding(self) -> FeatureBinding | None:
        text = self.tags.get(TAG_BINDING)
        return FeatureBinding.from_json(text) if text else None

    @property
    def manifest(self) -> dict | None:
        text = self.tags.get(TAG_MANIFEST)
        return json.loads(text) if text else None


def manifest_summary(manifest: Mapping[str, Any]) -> dict:
    """What a model version records of its training set's manifest: the Delta version
    per group, transform fingerprints (derived and on-demand), spine rows and hash.

    >>> manifest_summary({"groups": [{"label": "w@1", "delta_version": 3, "transforms": {}}],
    ...                   "on_demand": {"t": "ab"}, "spine": {"rows": 2, "hash": "h"}})
    {'delta_versions': {'w@1': 3}, 'transforms': {'w@1': {}}, 'on_demand': {'t': 'ab'},
     'spine': {'rows': 2, 'hash': 'h'}}
    """
    groups = manifest.get("groups", [])
    return {"delta_versions": {g["label"]: g["delta_version"] for g in groups},
            "transforms": {g["label"]: dict(g.get("transforms") or {}) for g in groups},
            "on_demand": dict(manifest.get("on_demand") or {}),
            "spine": dict(manifest.get("spine") or {})}


class ModelRegistry:
    """Model versions in an MLflow tracking + registry store."""

    def __init__(self, tracking_uri: str, registry_uri: str | None = None,
                 artifact_root: str | None = None, experiment: str = "sparkfs") -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.artifact_root = artifact_root
        self.experiment = experiment
        self._client: Any = None
        self._lock = threading.RLock()  # load() -> get_version() -> client
        self._loaded: dict[tuple[str, int], Any] = {}
        self._versions: dict[tuple[str, int], ModelVersionInfo] = {}

    @property
    def client(self):
        """The ``mlflow.MlflowClient`` (created on first use)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import logging

                    from mlflow import MlflowClient

                    # creating the embedded store's tables is routine, not news on stderr
                    for quiet in ("mlflow.store.db.utils", "alembic"):
                        logging.getLogger(quiet).setLevel(logging.WARNING)

                    self._client = MlflowClient(tracking_uri=self.tracking_uri,
                                                registry_uri=self.registry_uri)
        return self._client

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        location = None
        if self.artifact_root:
            location = self.artifact_root.rstrip("/") + "/" + self.experiment
        try:
            return self.client.create_experiment(self.experiment, artifact_location=location)
        except Exception:  # created meanwhile by another process
            exp = self.client.get_experiment_by_name(self.experiment)
            if exp is None:
                raise
            return exp.experiment_id

    # -- logging ----------------------------------------------------------------------------
    def log_model(self, model: Any, name: str, binding: FeatureBinding, training_set: str,
                  manifest: Mapping[str, Any], flavor: Any = None, signature: Any = None,
                  description: str = "", **flavor_options: Any) -> ModelVersionInfo:
        """Save ``model`` with its flavour, log it in a run, register a new version of
        ``name`` tagged with the training set, view, binding and manifest summary.

        ``signature`` (an ``mlflow.models.ModelSignature``) defaults to one whose inputs
        are the binding's columns; a different one is kept, and refused at deploy time."""
        from mlflow.models import ModelSignature

        module = _flavor_module(model, flavor)
        if signature is None:
            signature = ModelSignature(inputs=signature_schema(binding))
        tags = {TAG_TRAINING_SET: training_set, TAG_VIEW: binding.view or "",
                TAG_BINDING: binding.to_json(),
                TAG_MANIFEST: json.dumps(manifest_summary(manifest), sort_keys=True)}
        client = self.client
        run = client.create_run(self._experiment_id(), run_name=f"{name}-{training_set}",
                                tags={k: v for k, v in tags.items() if k != TAG_MANIFEST})
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model")
                options = dict(flavor_options)
                if module.__name__ == "mlflow.pyfunc":
                    options.setdefault("python_model", model)
                    args: tuple = ()
                else:
                    args = (model,)
                if "pip_requirements" not in options and "conda_env" not in options:
                    default = getattr(module, "get_default_pip_requirements", None)
                    options["pip_requirements"] = list(default()) if default else []
                module.save_model(*args, path=path, signature=signature, **options)
                client.log_artifacts(run.info.run_id, path, "model")
                client.log_text(run.info.run_id, json.dumps(dict(manifest), indent=1,
                                                            default=str), "sparkfs/manifest.json")
            source = f"{run.info.artifact_uri.rstrip('/')}/model"
            client.set_terminated(run.info.run_id)
        except BaseException:
            client.set_terminated(run.info.run_id, status="FAILED")
            raise
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            try:
                client.create_registered_model(name, description=description or None)
            except Exception:
                if not client.search_registered_models(filter_string=f"name = '{name}'"):
                    raise
        mv = client.create_model_version(name, source, run_id=run.info.run_id, tags=tags,
                                         description=description or None)
        return self.get_version(name, int(mv.version))

    # -- reads ------------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        """Names of the registered models."""
        return sorted(m.name for m in self.client.search_registered_models())

    def versions(self, name: str) -> list[int]:
        return sorted(int(v.version) for v in
                      self.client.search_model_versions(filter_string=f"name = '{name}'"))

    def get_version(self, name: str, version: int | None = None) -> ModelVersionInfo:
        """A model version (the latest when ``version`` is None); ``NotFoundError`` names
        the model and lists the registered models or versions."""
        if version is not None and (name, int(version)) in self._versions:
            return self._versions[(name, int(version))]
        versions = self.versions(name)
        if not versions:
            known = self.list_models()
            raise NotFoundError(f"model {name!r} is not registered; registered models: "
                                f"{known or 'none (log one with fs.log_model)'}")
        if version is None:
            version = versions[-1]
        if int(version) not in versions:
            raise NotFoundError(f"model {name!r} has no version {version}; "
                                f"registered versions: {versions}")
        mv = self.client.get_model_version(name, str(version))
        info = ModelVersionInfo(name=name, version=int(mv.version), source=mv.source,
                                run_id=mv.run_id, tags=dict(mv.tags or {}))
        info.signature_inputs = self._signature_inputs(info)
        self._versions[(name, info.version)] = info
        return info

    def _signature_inputs(self, info: ModelVersionInfo) -> Any:
        from mlflow.models import get_model_info

        uri = self.download_uri(info)
        sig = get_model_info(uri).signature
        return None if sig is None else sig.inputs

    def download_uri(self, info: ModelVersionInfo) -> str:
        """Where the version's files are (a local path for ``file://`` stores)."""
        uri = self.client.get_model_version_download_uri(info.name, str(info.version))
        if uri.startswith("file://"):
            from urllib.parse import unquote, urlparse

            return unquote(urlparse(uri).path)
        return uri

    def load(self, name: str, version: int) -> Any:
        """The ``mlflow.pyfunc`` model of a version, loaded once per process."""
        key = (name, int(version))
        model = self._loaded.get(key)
        if model is None:
            with self._lock:
                model = self._loaded.get(key)
                if model is None:
                    import mlflow.pyfunc

                    info = self.get_version(name, version)
                    model = mlflow.pyfunc.load_model(self.download_uri(info))
                    self._loaded[key] = model
        return model


def _flavor_module(model: Any, flavor: Any) -> Any:
    import importlib

    if flavor is not None:
        if isinstance(flavor, str):
            flavor = importlib.import_module(flavor if flavor.startswith("mlflow.")
                                             else f"mlflow.{flavor}")
        if not hasattr(flavor, "save_model"):
            raise DefinitionError(f"flavor {flavor!r} is not an MLflow flavour module "
                                  "(e.g. mlflow.sklearn)")
        return flavor
    import mlflow.pyfunc

    if isinstance(model, mlflow.pyfunc.PythonModel):
        return mlflow.pyfunc
    root = type(model).__module__.split(".")[0]
    known = {"sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm",
             "catboost": "catboost", "statsmodels": "statsmodels", "torch": "pytorch",
             "keras": "keras", "tensorflow": "tensorflow", "prophet": "prophet"}
    if root not in known:
        raise DefinitionError(f"cannot tell the MLflow flavour of a {type(model).__name__} "
                              f"(module {type(model).__module__}); pass flavor=mlflow.<flavour>")
    return importlib.import_module(f"mlflow.{known[root]}")


