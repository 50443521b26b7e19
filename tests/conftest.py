"""Shared fixtures: one local SparkSession for the whole run, a fresh store per test."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    """One real local[2] SparkSession for the whole test run (few shuffle partitions)."""
    from sparkfs import jvm
    from sparkfs.config import SparkConfig
    from sparkfs.sparkutil import get_or_create_spark

    conf = {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "4",
            "spark.driver.memory": "2g"}
    if jvm.is_fetched("spark-kafka"):  # Spark's Kafka connector, for the streaming tests
        conf["spark.jars"] = ",".join(str(p) for p in jvm.jars("spark-kafka"))
    session = get_or_create_spark(SparkConfig(master="local[2]", app_name="sparkfs-tests",
                                              conf=conf))
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
