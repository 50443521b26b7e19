"""Shared fixtures: one local SparkSession for the whole run, a fresh store per test."""

from __future__ import annotations

import os
import sys

import pytest

# The HBase and Spark cluster fixtures (also registered as a pytest11 entry point; listed
# here so a checkout whose installed metadata predates the entry point has them too).
pytest_plugins = ["sparkfs.testing.plugin"]

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    """One real local[2] SparkSession for the whole test run (few shuffle partitions)."""
    from sparkfs.config import SparkConfig
    from sparkfs.sparkutil import get_or_create_spark

    session = get_or_create_spark(SparkConfig(
        master="local[2]", app_name="sparkfs-tests",
        conf={"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "4",
              "spark.driver.memory": "2g"}))
    yield session
    session.stop()


@pytest.fixture
def store_config(tmp_path):
    """Config mapping for an isolated embedded store under ``tmp_path``."""
    return {"project": "test", "data_dir": str(tmp_path / "data")}


@pytest.fixture
def fs(spark, store_config):
    """A FeatureStore on the shared SparkSession and a fresh temporary data directory."""
    from sparkfs import FeatureStore

    store = FeatureStore(store_config, spark=spark)
    yield store
    store.close()


@pytest.fixture
def fs_nospark(store_config):
    """A FeatureStore with no Spark at all (for registry, online and DuckDB paths)."""
    from sparkfs import FeatureStore

    store = FeatureStore(store_config)
    yield store
    store.close()
