"""YAML configuration with environment overrides, checked strictly.

A config file has these sections (every one optional; see ``conf/local.yaml`` and
``conf/cluster.yaml``)::

    project: flights
    data_dir: .sparkfs              # default home of registry, offline root, sqlite file
    registry: {path: ...} or {url: postgresql://user:${PGPASSWORD}@host/db}
    offline:  {root: ..., engine: auto | delta-rs | delta-spark}
    online:   {type: sqlite, path: ...}   or   {type: hbase, host: ..., port: 9090, ...}
    spark:    {master: "local[*]", app_name: sparkfs, conf: {...}}
    ingest:   {materialize: false, statistics: true, local_max_rows: 200000}
    serving:  {max_batch_size: 1000, max_body_bytes: ..., auth: {enabled: true, keys: [...]}}
    monitoring: {psi_threshold: 0.2, ks_pvalue: 0.01}
    models:   {tracking_uri: ..., registry_uri: ..., artifact_root: ..., experiment: sparkfs}
    inference: {log_queue_rows: 100000, log_batch_rows: 20000, log_flush_s: 1.0,
                log_compact_every: 100}

``${VAR}`` and ``${VAR:-default}`` are expanded in string values. Relative paths are
resolved against the working directory. Environment variables override single keys:

==============================  ==========================
``SPARKFS_CONFIG``              the config file to load
``SPARKFS_DATA_DIR``            ``data_dir``
``SPARKFS_REGISTRY_PATH``       ``registry.path``
``SPARKFS_REGISTRY_URL``        ``registry.url``
``SPARKFS_OFFLINE_ROOT``        ``offline.root``
``SPARKFS_OFFLINE_ENGINE``      ``offline.engine``
``SPARKFS_ONLINE_TYPE``         ``online.type``
``SPARKFS_ONLINE_PATH``         ``online.path`` (sqlite)
``SPARKFS_HBASE_HOST``          ``online.host`` (hbase)
``SPARKFS_HBASE_PORT``          ``online.port`` (hbase)
``SPARKFS_SPARK_MASTER``        ``spark.master``
==============================  ==========================

An unknown key or a bad value is refused with a message naming the file and the key:

>>> load_config_dict({"online": {"type": "sqlite", "pth": "x.db"}}, source="demo.yaml")
Traceback (most recent call last):
...
sparkfs.errors.ConfigError: demo.yaml: online.sqlite.pth: unknown key (Extra inputs are not permitted)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

DEFAULT_CONFIG_ENV = "SPARKFS_CONFIG"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegistryConfig(_Strict):
    """Where definitions live: a SQLite file (``path``, the embedded default) or, for
    clusters, PostgreSQL (``url``). Messages never show the URL's password.

    >>> RegistryConfig(url="postgresql://fs:pw@db.internal:5432/fs").url.split("@")[1]
    'db.internal:5432/fs'
    >>> load_config_dict({"registry": {"url": "mysql://fs:pw@db/fs"}}, source="c.yaml")
    Traceback (most recent call last):
    ...
    sparkfs.errors.ConfigError: c.yaml: registry: Value error, url must start with postgresql://...
    """

    path: str | None = None  # default: {data_dir}/registry.db
    url: str | None = None   # postgresql://user:${SPARKFS_REGISTRY_PASSWORD}@host:5432/db
    lock_timeout_s: float = Field(default=10.0, gt=0)  # a locked registry: wait, then fail

    @model_validator(mode="after")
    def _one_location(self) -> "RegistryConfig":
        # errors at model level: the message shows no URL (it may hold a password)
        if self.url is not None:
            if not self.url.startswith(("postgresql://", "postgresql+psycopg://")):
                raise ValueError("url must start with postgresql:// (or postgresql+psycopg://);"
                                 " for SQLite give registry.path")
            if self.path is not None:
                raise ValueError("give registry.path (a SQLite file) or registry.url "
                                 "(PostgreSQL), not both")
        return self


class OfflineConfig(_Strict):
    root: str | None = None  # default: {data_dir}/offline; local path, file://, s3://, hdfs://
    engine: Literal["auto", "delta-rs", "delta-spark"] = "auto"
    storage_options: dict[str, str] = {}


class SqliteOnlineConfig(_Strict):
    type: Literal["sqlite"] = "sqlite"
    path: str | None = None  # default: {data_dir}/online.db
    busy_timeout_ms: int = Field(default=30_000, ge=0)


class HBaseOnlineConfig(_Strict):
    type: Literal["hbase"]
    host: str = "localhost"
    port: int = Field(default=9090, ge=1, le=65535)
    table_prefix: str = "sparkfs"
    column_family: str = "f"
    salt_buckets: int = Field(default=0, ge=0, le=256)
    pool_size: int = Field(default=4, ge=1, le=256)
    timeout_ms: int = Field(default=5_000, ge=1)
    batch_size: int = Field(default=1_000, ge=1)
    retries: int = Field(default=3, ge=0, le=20)
    backoff_ms: int = Field(default=100, ge=0)
    transport: Literal["buffered", "framed"] = "buffered"
    protocol: Literal["binary", "compact"] = "binary"

    @field_validator("table_prefix", "column_family")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", v):
            raise ValueError("must match [a-z][a-z0-9_]*")
        return v


OnlineConfig = Annotated[SqliteOnlineConfig | HBaseOnlineConfig, Field(discriminator="type")]


class SparkConfig(_Strict):
    master: str = "local[*]"
    app_name: str = "sparkfs"
    conf: dict[str, str] = {}
    #: put Delta Lake's Spark writer (the jars from ``conf/jvm/delta``) on a session sparkfs
    #: starts; implied by ``offline.engine: delta-spark``
    delta_jars: bool = False


class IngestConfig(_Strict):
    materialize: bool = False
    statistics: bool = True  # per-feature statistics of every committed batch (sparkfs.monitoring)
    #: a pandas or Arrow batch of at most this many rows is ingested in this process, on
    #: Arrow, with no Spark job (``sparkfs.offline.local``; when the writer is delta-rs, the
    #: table local and the group has no expectations); 0 turns the local engine off
    local_max_rows: int = Field(default=200_000, ge=0)


#: Scopes an API key can hold; each may be limited to one target (``push:weather``).
SCOPES = ("features:read", "predict", "push", "admin")


def parse_scope(text: str) -> tuple[str, str | None]:
    """``(scope, target)`` of a scope string: ``"features:read"`` (every group and view),
    ``"features:read:weather"`` (one group or on-demand transform),
    ``"features:read:view:flight_delay"`` (one feature view), ``"predict:delay"`` (one
    deployment), ``"push:weather"`` (one group), ``"admin"``.

    >>> parse_scope("features:read:weather")
    ('features:read', 'weather')
    >>> parse_scope("predict")
    ('predict', None)
    >>> parse_scope("write")
    Traceback (most recent call last):
    ...
    ValueError: unknown scope 'write': use features:read[:GROUP|:view:VIEW], \
    predict[:DEPLOYMENT], push[:GROUP] or admin
    """
    for scope in SCOPES:
        if text == scope:
            return scope, None
        if text.startswith(scope + ":") and scope != "admin":
            target = text[len(scope) + 1:]
            name = target[len("view:"):] if target.startswith("view:") else target
            if re.fullmatch(r"[a-z][a-z0-9_]*|\*", name) and not (
                    target.startswith("view:") and scope != "features:read"):
                return scope, None if target == "*" else target
    raise ValueError(f"unknown scope {text[:64]!r}: use features:read[:GROUP|:view:VIEW], "
                     "predict[:DEPLOYMENT], push[:GROUP] or admin")


class ApiKeyConfig(_Strict):
    """One API key of the service: its name (for logs), the sha256 hex digest of the key
    (never the key itself) and its scopes (see ``sparkfs.serving.auth``)."""

    name: str = Field(min_length=1, max_length=64)
    sha256: str
    scopes: list[str] = Field(min_length=1)

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, v: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("must be the 64 lowercase hex digits of the key's sha256 "
                             "(`sparkfs api-key create` prints it)")
        return v

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, v: list[str]) -> list[str]:
        for s in v:
            parse_scope(s)  # ValueError names the scope and the valid forms
        return v


class AuthConfig(_Strict):
    """``serving.auth``: off by default (loopback development); keys inline, from the
    environment variable named by ``keys_env`` (a YAML/JSON list) or a YAML file."""

    enabled: bool = False
    keys: list[ApiKeyConfig] = []
    keys_env: str | None = None
    keys_file: str | None = None


class ServingConfig(_Strict):
    max_batch_size: int = Field(default=1_000, ge=1)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=16, ge=4, le=256)
    max_string_length: int = Field(default=4_096, ge=16)
    body_timeout_s: float = Field(default=10.0, gt=0)
    header_timeout_s: float = Field(default=10.0, gt=0)
    keep_alive_s: int = Field(default=5, ge=1)
    max_connections: int = Field(default=1_000, ge=1)
    plan_cache_size: int = Field(default=1_024, ge=1)
    registry_refresh_s: float = Field(default=2.0, ge=0)
    store_timeout_s: float = Field(default=5.0, gt=0)
    store_retry_after_s: float = Field(default=2.0, gt=0)
    store_threads: int = Field(default=8, ge=1, le=256)  # threads reading the online store
    predict_threads: int = Field(default=1, ge=1, le=256)  # predictions a worker runs at once
    transform_guard: Literal["warn", "refuse", "off"] = "warn"  # sparkfs.serving.transform_guard
    auth: AuthConfig = AuthConfig()


class MonitoringConfig(_Strict):
    psi_threshold: float = Field(default=0.2, gt=0)
    ks_pvalue: float = Field(default=0.01, gt=0, lt=1)
    wasserstein_threshold: float | None = Field(default=None, gt=0)
    bins: int = Field(default=10, ge=2, le=1000)


class ModelsConfig(_Strict):
    """Where models live (MLflow). Default: a local MLflow store under ``data_dir``
    (``sqlite:///{data_dir}/mlflow.db``, artifacts in ``{data_dir}/mlflow-artifacts``);
    on a cluster point ``tracking_uri``/``registry_uri`` at an MLflow server."""

    tracking_uri: str | None = None
    registry_uri: str | None = None  # default: the tracking uri
    artifact_root: str | None = None  # default: {data_dir}/mlflow-artifacts
    experiment: str = "sparkfs"


class InferenceConfig(_Strict):
    """The evaluation-store writer of online predictions (see ``sparkfs.inference``)."""

    log_queue_rows: int = Field(default=100_000, ge=1)   # a full queue drops, never blocks
    # few, large Delta appends: each commit costs the service CPU whatever its size
    log_batch_rows: int = Field(default=20_000, ge=1)    # rows per Delta append at most
    log_flush_s: float = Field(default=1.0, gt=0)        # longest wait before an append
    log_compact_every: int = Field(default=100, ge=0)    # appends per compaction; 0: never


class Config(_Strict):
    """The whole, validated configuration. Build with ``load_config`` or ``Config(...)``."""

    project: str = "default"
    data_dir: str = ".sparkfs"
    registry: RegistryConfig = RegistryConfig()
    offline: OfflineConfig = OfflineConfig()
    online: OnlineConfig = SqliteOnlineConfig()
    spark: SparkConfig = SparkConfig()
    ingest: IngestConfig = IngestConfig()
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    models: ModelsConfig = ModelsConfig()
    inference: InferenceConfig = InferenceConfig()

    @field_validator("project")
    @classmethod
    def _project_name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", v):
            raise ValueError("must match [a-z][a-z0-9_]*")
        return v

    # resolved locations -------------------------------------------------------------
    @property
    def registry_path(self) -> str:
        return _local_path(self.registry.path or os.path.join(self.data_dir, "registry.db"))

    @property
    def registry_url(self) -> str:
        """``registry.url`` when set (PostgreSQL), else the SQLite file's path."""
        return self.registry.url or self.registry_path

    @property
    def offline_root(self) -> str:
        root = self.offline.root or os.path.join(self.data_dir, "offline")
        return root if "://" in root else _local_path(root)

    @property
    def sqlite_path(self) -> str:
        assert isinstance(self.online, SqliteOnlineConfig)
        return _local_path(self.online.path or os.path.join(self.data_dir, "online.db"))

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.models.tracking_uri or (
            "sqlite:///" + _local_path(os.path.join(self.data_dir, "mlflow.db")))

    @property
    def mlflow_registry_uri(self) -> str:
        return self.models.registry_uri or self.mlflow_tracking_uri

    @property
    def mlflow_artifact_root(self) -> str:
        root = self.models.artifact_root or os.path.join(self.data_dir, "mlflow-artifacts")
        return root if "://" in root else "file://" + _local_path(root)

    def with_overrides(self, **sections: Any) -> "Config":
        """A copy with some sections replaced, validated again."""
        data = self.model_dump()
        for k, v in sections.items():
            data[k] = v.model_dump() if isinstance(v, BaseModel) else v
        return load_config_dict(data, source="<overrides>", env={})


def _local_path(p: str) -> str:
    if p.startswith("file://"):
        p = p[len("file://"):]
    return str(Path(p).expanduser().absolute())


_ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "SPARKFS_DATA_DIR": ("data_dir",),
    "SPARKFS_REGISTRY_PATH": ("registry", "path"),
    "SPARKFS_REGISTRY_URL": ("registry", "url"),
    "SPARKFS_OFFLINE_ROOT": ("offline", "root"),
    "SPARKFS_OFFLINE_ENGINE": ("offline", "engine"),
    "SPARKFS_ONLINE_TYPE": ("online", "type"),
    "SPARKFS_ONLINE_PATH": ("online", "path"),
    "SPARKFS_HBASE_HOST": ("online", "host"),
    "SPARKFS_HBASE_PORT": ("online", "port"),
    "SPARKFS_SPARK_MASTER": ("spark", "master"),
}

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, env: Mapping[str, str], where: str, source: str) -> Any:
    if isinstance(value, str):
        def repl(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{source}: {where}: environment variable {name} is not set "
                              f"(write ${{{name}:-default}} to give a default)")
        return _VAR_RE.sub(repl, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{where}.{k}" if where else str(k), source)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, f"{where}[{i}]", source) for i, v in enumerate(value)]
    return value


def load_config_dict(data: Mapping[str, Any] | None, source: str = "<dict>",
                     env: Mapping[str, str] | None = None) -> Config:
    """Validate a config mapping, apply environment overrides, and return a ``Config``."""
    env = os.environ if env is None else env
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, "
                          f"got {type(data).__name__}")
    expanded: dict[str, Any] = _expand(dict(data), env, "", source)
    for var, path in _ENV_OVERRIDES.items():
        if var in env and env[var] != "":
            node = expanded
            for part in path[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"{source}: {'.'.join(path[:-1])} must be a mapping")
            if path[0] == "online" and path[-1] in ("host", "port") and "type" not in node:
                node["type"] = "hbase"
            elif path[0] == "online" and path[-1] == "path" and "type" not in node:
                node["type"] = "sqlite"
            node[path[-1]] = env[var]
    try:
        return Config.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<top>"
        if err["type"] == "extra_forbidden":
            lines.append(f"{source}: {loc}: unknown key ({err['msg']})")
        else:
            value = err.get("input")
            shown = f" (got {value!r})" if not isinstance(value, (dict, list)) else ""
            lines.append(f"{source}: {loc}: {err['msg']}{shown}")
    return "\n".join(lines)


def load_config(path: str | os.PathLike | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Load ``path`` (or ``$SPARKFS_CONFIG``; or the built-in embedded defaults)."""
    import yaml

    env = os.environ if env is None else env
    path = path or env.get(DEFAULT_CONFIG_ENV)
    if not path:
        return load_config_dict({}, source="<defaults>", env=env)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist "
                          f"(set {DEFAULT_CONFIG_ENV} or pass the path of a YAML file)")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    return load_config_dict(data, source=str(p), env=env)
