"""Unit tests of sparkfs.config: strict YAML config, ${VAR} expansion, environment overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pydantic
import pytest

from sparkfs.config import (
    Config,
    HBaseOnlineConfig,
    SqliteOnlineConfig,
    load_config,
    load_config_dict,
)
from sparkfs.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path, text, name="sparkfs.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_without_file_or_env():
    cfg = load_config(env={})
    assert cfg == Config()
    assert cfg.offline.engine == "auto"
    assert isinstance(cfg.online, SqliteOnlineConfig)
    assert cfg.spark.master == "local[*]"
    assert cfg.registry_path == str(Path(".sparkfs/registry.db").absolute())
    assert cfg.sqlite_path == str(Path(".sparkfs/online.db").absolute())


def test_full_file_is_loaded(tmp_path):
    p = write(tmp_path, """
project: flights
data_dir: data
registry: {path: reg/registry.db}
offline: {root: s3://bucket/features, engine: delta-rs, storage_options: {AWS_REGION: eu-west-1}}
online: {type: hbase, host: hbase.internal, port: 9091, salt_buckets: 8}
spark: {master: "spark://m:7077", conf: {spark.executor.memory: 4g}}
ingest: {materialize: true}
serving: {max_batch_size: 50}
monitoring: {psi_threshold: 0.3}
""")
    cfg = load_config(p, env={})
    assert cfg.project == "flights"
    assert cfg.offline_root == "s3://bucket/features"  # URIs are kept as they are
    assert cfg.offline.storage_options == {"AWS_REGION": "eu-west-1"}
    assert isinstance(cfg.online, HBaseOnlineConfig)
    assert (cfg.online.host, cfg.online.port, cfg.online.salt_buckets) == ("hbase.internal", 9091, 8)
    assert cfg.spark.conf == {"spark.executor.memory": "4g"}
    assert cfg.ingest.materialize is True and cfg.serving.max_batch_size == 50
    assert cfg.registry_path == str(Path("reg/registry.db").absolute())


def test_paths_resolve(tmp_path):
    cfg = load_config_dict({"data_dir": str(tmp_path)}, env={})
    assert cfg.registry_path == str(tmp_path / "registry.db")
    assert cfg.offline_root == str(tmp_path / "offline")
    assert cfg.sqlite_path == str(tmp_path / "online.db")
    cfg = load_config_dict({"offline": {"root": f"file://{tmp_path}/off"}}, env={})
    assert cfg.offline_root == f"file://{tmp_path}/off"  # URIs go to delta-rs as they are
    assert load_config_dict({"data_dir": "~/x"}, env={}).registry_path == \
        str(Path("~/x/registry.db").expanduser())


@pytest.mark.parametrize("data,where", [
    ({"projekt": "x"}, "projekt: unknown key"),
    ({"offline": {"engin": "auto"}}, "offline.engin: unknown key"),
    ({"online": {"type": "sqlite", "pth": "x.db"}}, "online.sqlite.pth: unknown key"),
    ({"online": {"type": "hbase", "hostname": "h"}}, "online.hbase.hostname: unknown key"),
    ({"spark": {"master": "local", "cores": 2}}, "spark.cores: unknown key"),
])
def test_unknown_keys_are_refused_by_name(data, where):
    with pytest.raises(ConfigError) as exc:
        load_config_dict(data, source="conf/x.yaml", env={})
    assert f"conf/x.yaml: {where}" in str(exc.value)


@pytest.mark.parametrize("data,where,shown", [
    ({"offline": {"engine": "spark"}}, "offline.engine", "'spark'"),
    ({"online": {"type": "redis"}}, "online", "redis"),
    ({"online": {"type": "hbase", "port": 70000}}, "online.hbase.port", "70000"),
    ({"online": {"type": "hbase", "port": "nine"}}, "online.hbase.port", "'nine'"),
    ({"online": {"type": "hbase", "table_prefix": "x; drop"}}, "online.hbase.table_prefix",
     "'x; drop'"),
    ({"project": "My Project"}, "project", "'My Project'"),
    ({"monitoring": {"ks_pvalue": 2}}, "monitoring.ks_pvalue", "2"),
    ({"serving": {"max_batch_size": 0}}, "serving.max_batch_size", "0"),
    ({"ingest": {"materialize": "sometimes"}}, "ingest.materialize", "'sometimes'"),
    ({"spark": "local"}, "spark", "'local'"),
])
def test_bad_values_are_refused_by_name(data, where, shown):
    with pytest.raises(ConfigError) as exc:
        load_config_dict(data, source="conf/x.yaml", env={})
    msg = str(exc.value)
    assert f"conf/x.yaml: {where}" in msg and shown in msg


def test_every_bad_key_is_reported_at_once():
    with pytest.raises(ConfigError) as exc:
        load_config_dict({"a": 1, "offline": {"engine": "x"}}, source="f.yaml", env={})
    assert "f.yaml: a: unknown key" in str(exc.value)
    assert "f.yaml: offline.engine" in str(exc.value)


def test_config_is_frozen():
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        Config().project = "other"


# -- ${VAR} expansion --------------------------------------------------------------------------
def test_var_expansion(tmp_path):
    p = write(tmp_path, """
data_dir: ${BASE}/data
offline: {root: "${OFFLINE:-/default/offline}"}
online: {type: hbase, host: "${HBASE_HOST}", port: "${HBASE_PORT:-9090}"}
spark: {conf: {spark.executor.memory: "${MEM:-2g}"}}
""")
    cfg = load_config(p, env={"BASE": str(tmp_path), "HBASE_HOST": "hb1", "MEM": "8g"})
    assert cfg.data_dir == f"{tmp_path}/data"
    assert cfg.offline_root == "/default/offline"
    assert cfg.online.host == "hb1" and cfg.online.port == 9090
    assert cfg.spark.conf["spark.executor.memory"] == "8g"


def test_unset_var_without_default_names_the_key_and_variable(tmp_path):
    p = write(tmp_path, "online: {type: hbase, host: '${HBASE_HOST}'}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, env={})
    msg = str(exc.value)
    assert str(p) in msg and "online.host" in msg and "HBASE_HOST is not set" in msg


def test_expansion_is_textual_only(tmp_path):
    # An expanded value is data: it is not expanded again and cannot smuggle in keys.
    cfg = load_config_dict({"project": "p", "data_dir": "${A}"}, env={"A": "${B}"})
    assert cfg.data_dir == "${B}"
    with pytest.raises(ConfigError, match="project"):
        load_config_dict({"project": "${P}"}, env={"P": "x\nextra: 1"})


# -- environment overrides ---------------------------------------------------------------------
def test_env_overrides_win_over_the_file(tmp_path):
    p = write(tmp_path, "data_dir: /from/file\noffline: {engine: delta-rs}\n"
                        "spark: {master: 'local[2]'}\n")
    env = {"SPARKFS_DATA_DIR": str(tmp_path / "d"), "SPARKFS_OFFLINE_ENGINE": "delta-spark",
           "SPARKFS_OFFLINE_ROOT": "s3://b/x", "SPARKFS_SPARK_MASTER": "spark://h:7077",
           "SPARKFS_REGISTRY_PATH": str(tmp_path / "r.db"),
           "SPARKFS_ONLINE_PATH": str(tmp_path / "o.db")}
    cfg = load_config(p, env=env)
    assert cfg.data_dir == str(tmp_path / "d")
    assert cfg.offline.engine == "delta-spark" and cfg.offline_root == "s3://b/x"
    assert cfg.spark.master == "spark://h:7077"
    assert cfg.registry_path == str(tmp_path / "r.db")
    assert cfg.sqlite_path == str(tmp_path / "o.db")


def test_hbase_env_override_switches_online_type():
    cfg = load_config_dict({}, env={"SPARKFS_HBASE_HOST": "hb", "SPARKFS_HBASE_PORT": "9095"})
    assert isinstance(cfg.online, HBaseOnlineConfig)
    assert (cfg.online.host, cfg.online.port) == ("hb", 9095)
    cfg = load_config_dict({"online": {"type": "hbase", "host": "a"}},
                           env={"SPARKFS_HBASE_HOST": "b"})
    assert cfg.online.host == "b"


def test_bad_env_override_is_refused_by_key():
    with pytest.raises(ConfigError, match="offline.engine"):
        load_config_dict({}, source="f.yaml", env={"SPARKFS_OFFLINE_ENGINE": "fast"})
    with pytest.raises(ConfigError, match="online.hbase.port"):
        load_config_dict({}, env={"SPARKFS_HBASE_PORT": "0"})


def test_empty_env_override_is_ignored():
    assert load_config_dict({"data_dir": "x"}, env={"SPARKFS_DATA_DIR": ""}).data_dir == "x"


def test_sparkfs_config_picks_the_file(tmp_path, monkeypatch):
    p = write(tmp_path, "project: picked\n")
    monkeypatch.setenv("SPARKFS_CONFIG", str(p))
    assert load_config().project == "picked"
    assert load_config(env={"SPARKFS_CONFIG": str(p)}).project == "picked"
    other = write(tmp_path, "project: explicit\n", "other.yaml")
    assert load_config(other).project == "explicit"  # an explicit path wins


def test_store_uses_sparkfs_config(tmp_path, monkeypatch):
    from sparkfs import FeatureStore

    p = write(tmp_path, f"project: envstore\ndata_dir: {tmp_path / 'data'}\n")
    monkeypatch.setenv("SPARKFS_CONFIG", str(p))
    fs = FeatureStore()
    assert fs.config.project == "envstore"
    assert os.path.exists(tmp_path / "data" / "registry.db")


# -- file errors -------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*SPARKFS_CONFIG"):
        load_config(tmp_path / "nope.yaml", env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path, env={})  # a directory is not a config file


def test_invalid_yaml_names_the_file(tmp_path):
    p = write(tmp_path, "offline: {root: [unclosed\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, env={})
    assert str(p) in str(exc.value) and "not valid YAML" in str(exc.value)


def test_top_level_must_be_a_mapping(tmp_path):
    p = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping.*list"):
        load_config(p, env={})


def test_empty_file_means_defaults(tmp_path):
    assert load_config(write(tmp_path, ""), env={}) == Config()


def test_with_overrides_validates_again():
    cfg = Config().with_overrides(offline={"engine": "delta-rs"})
    assert cfg.offline.engine == "delta-rs"
    with pytest.raises(ConfigError, match="offline.engine"):
        Config().with_overrides(offline={"engine": "nope"})


@pytest.mark.parametrize("path", sorted((ROOT / "conf").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKFS_")}
    cfg = load_config(path, env=env)
    assert cfg.project
