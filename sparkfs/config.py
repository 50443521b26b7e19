"""YAML configuration with environment overrides, checked strictly.

A config file has these sections (every one optional; see ``conf/local.yaml`` and
``conf/cluster.yaml``)::

    project: flights
    data_dir: .sparkfs              # default home of registry, offline root, sqlite file
    registry: {path: ...}
    offline:  {root: ..., engine: auto | delta-rs | delta-spark}
    online:   {type: sqlite, path: ...}   or   {type: hbase, host: ..., port: 9090, ...}
    spark:    {master: "local[*]", app_name: sparkfs, conf: {...}}
    ingest:   {materialize: false, statistics: true}
    serving:  {max_batch_size: 1000}
    monitoring: {psi_threshold: 0.2, ks_pvalue: 0.01}

``${VAR}`` and ``${VAR:-default}`` are expanded in string values. Relative paths are
resolved against the working directory. Environment variables override single keys:

==============================  ==========================
``SPARKFS_CONFIG``              the config file to load
``SPARKFS_DATA_DIR``            ``data_dir``
``SPARKFS_REGISTRY_PATH``       ``registry.path``
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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

DEFAULT_CONFIG_ENV = "SPARKFS_CONFIG"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegistryConfig(_Strict):
    path: str | None = None  # default: {data_dir}/registry.db


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


class IngestConfig(_Strict):
    materialize: bool = False
    statistics: bool = True  # per-feature statistics of every committed batch (sparkfs.monitoring)


class ServingConfig(_Strict):
    max_batch_size: int = Field(default=1_000, ge=1)


class MonitoringConfig(_Strict):
    psi_threshold: float = Field(default=0.2, gt=0)
    ks_pvalue: float = Field(default=0.01, gt=0, lt=1)
    wasserstein_threshold: float | None = Field(default=None, gt=0)
    bins: int = Field(default=10, ge=2, le=1000)


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
    def offline_root(self) -> str:
        root = self.offline.root or os.path.join(self.data_dir, "offline")
        return root if "://" in root else _local_path(root)

    @property
    def sqlite_path(self) -> str:
        assert isinstance(self.online, SqliteOnlineConfig)
        return _local_path(self.online.path or os.path.join(self.data_dir, "online.db"))

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
