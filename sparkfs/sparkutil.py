"""Finding or building the SparkSession, and small Spark helpers. Imports pyspark lazily
(callers import this module only on the Spark path)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from .config import SparkConfig

#: Settings sparkfs relies on; a user's ``spark.conf`` entries override them.
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.driver.extraJavaOptions": "-XX:-UsePerfData",
    "spark.executor.extraJavaOptions": "-XX:-UsePerfData",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


def get_or_create_spark(conf: "SparkConfig") -> "SparkSession":
    """The active SparkSession if there is one (notebooks, Databricks), else a new one."""
    from ._extras import require

    require("pyspark", extra="spark", what="the Spark engine (a SparkSession)")
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    settings = dict(DEFAULT_CONF)
    if launched_by_spark_submit():
        # spark-submit already chose the master, app name and resources: keep them, and only
        # add sparkfs's defaults where the submitter set nothing.
        from pyspark import SparkConf

        given = SparkConf()
        builder = SparkSession.builder
        settings.update(conf.conf)
        settings = {k: v for k, v in settings.items() if not given.contains(k)}
    else:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = SparkSession.builder.master(conf.master).appName(conf.app_name)
        if conf.master.startswith("local"):
            settings["spark.sql.shuffle.partitions"] = "8"
        settings.update(conf.conf)
    for k, v in settings.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def launched_by_spark_submit() -> bool:
    """True inside a driver started by ``spark-submit`` (it passes the gateway port)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def has_delta_jars(spark: "SparkSession") -> bool:
    """True when the session can load the delta-spark classes (Databricks, --packages)."""
    try:
        spark._jvm.java.lang.Class.forName("io.delta.tables.DeltaTable")  # type: ignore[union-attr]
        return True
    except Exception:  # py4j raises a generic error for a missing class
        return False
