"""Finding or building the SparkSession, and small Spark helpers. Imports pyspark lazily
(callers import this module only on the Spark path)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from .config import SparkConfig

#: Spark's cap on the bytes of an Arrow batch it hands a Python worker (``mapInArrow``,
#: pandas UDFs). Below Int.MaxValue, Spark 4 measures the batch after every row it adds:
#: a walk over all its column vectors per row, 40-45% of the JVM's time in the ingest pass.
#: ``UNCAPPED_ARROW_BATCH_BYTES`` (Int.MaxValue) turns that check off, so batches are cut by
#: ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows alone (10000 by default).
ARROW_BATCH_BYTES = "spark.sql.execution.arrow.maxBytesPerBatch"
UNCAPPED_ARROW_BATCH_BYTES = "2147483647"

#: Settings sparkfs relies on; a user's ``spark.conf`` entries override them.
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.driver.extraJavaOptions": "-XX:-UsePerfData",
    "spark.executor.extraJavaOptions": "-XX:-UsePerfData",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # HotSpot does not compile a method of more than 8000 bytes of bytecode: a wider plan
    # (the ingest pass's row hash of ~55 columns or more) leaves whole-stage codegen and
    # runs compiled, split methods instead of an interpreted one (1M rows of 64 features:
    # 8.6 s instead of 11.2 s). Spark's documentation of the setting suggests 8000 on HotSpot.
    "spark.sql.codegen.hugeMethodLimit": "8000",
    # Arrow batches for Python cut by rows only (1M rows of 10 features: the ingest pass
    # 1.06-1.10 s instead of 1.43-1.61 s on 2 cores; see ``ARROW_BATCH_BYTES``)
    ARROW_BATCH_BYTES: UNCAPPED_ARROW_BATCH_BYTES,
}


#: Delta Lake's SQL extension and catalog (``delta_spark_conf`` adds them with the jars).
DELTA_SQL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def delta_spark_conf(existing: "dict[str, str] | None" = None) -> dict[str, str]:
    """Settings that give a new SparkSession Delta Lake's Spark writer: the delta-spark jars
    fetched by ``sparkfs.jvm`` (``conf/jvm/delta/pom.xml``, only the jars pyspark lacks) on
    ``spark.jars`` (appended to any in ``existing``), plus Delta's SQL extension and catalog.

    Fetches the jars first when they are not in the cache (``JvmArtifactError`` when that
    fails). Use it with a builder, or pass the same keys to ``spark-submit --conf``.

    >>> conf = delta_spark_conf({"spark.jars": "/opt/extra.jar"})  # doctest: +SKIP
    >>> conf["spark.jars"].split(",")[0], conf["spark.sql.extensions"]  # doctest: +SKIP
    ('/opt/extra.jar', 'io.delta.sql.DeltaSparkSessionExtension')
    >>> sorted(DELTA_SQL_CONF)
    ['spark.sql.catalog.spark_catalog', 'spark.sql.extensions']
    """
    from .jvm import jars

    existing = existing or {}
    paths = [p for p in existing.get("spark.jars", "").split(",") if p]
    paths += [str(j) for j in jars("delta") if str(j) not in paths]
    out = dict(DELTA_SQL_CONF)
    ext = existing.get("spark.sql.extensions")
    if ext and DELTA_SQL_CONF["spark.sql.extensions"] not in ext.split(","):
        out["spark.sql.extensions"] = ext + "," + DELTA_SQL_CONF["spark.sql.extensions"]
    out["spark.jars"] = ",".join(paths)
    return out


def get_or_create_spark(conf: "SparkConfig", delta: bool = False) -> "SparkSession":
    """The active SparkSession if there is one (notebooks, Databricks), else a new one.

    ``delta`` (or ``spark.delta_jars: true`` in the config) starts a new session with
    Delta Lake's Spark writer on it (``delta_spark_conf``). An active session is returned
    as it is. Under ``spark-submit`` the jars must come with the submission (``--jars`` /
    ``--conf spark.jars=...``): a running driver JVM cannot take them any more.
    """
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
        if delta or getattr(conf, "delta_jars", False):
            settings.update(delta_spark_conf(settings))
    for k, v in settings.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def arrow_batches_by_rows(spark: "SparkSession") -> Iterator[None]:
    """Run sparkfs's own Python passes (the ingest's write pass, statistics) with Arrow
    batches cut by rows only (``ARROW_BATCH_BYTES``) in a session sparkfs did not build (a
    notebook's, Databricks'): the setting holds inside the block and is unset after it. A
    value the session already has, the user's or ``DEFAULT_CONF``'s, is left as it is.

    >>> ARROW_BATCH_BYTES, UNCAPPED_ARROW_BATCH_BYTES
    ('spark.sql.execution.arrow.maxBytesPerBatch', '2147483647')
    >>> with arrow_batches_by_rows(spark):  # doctest: +SKIP
    ...     spark.conf.get(ARROW_BATCH_BYTES)
    '2147483647'
    """
    conf = spark.conf
    if conf.get(ARROW_BATCH_BYTES, None) is not None:
        yield
        return
    conf.set(ARROW_BATCH_BYTES, UNCAPPED_ARROW_BATCH_BYTES)
    try:
        yield
    finally:
        conf.unset(ARROW_BATCH_BYTES)


def launched_by_spark_submit() -> bool:
    """True inside a driver started by ``spark-submit`` (it passes the gateway port)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def has_delta_jars(spark: "SparkSession") -> bool:
    """True when the session can load the delta-spark classes (Databricks, --packages)."""
    try:
        # Spark's own class loader: jars given by spark.jars are not on the system one
        spark._jvm.org.apache.spark.util.Utils.classForName(  # type: ignore[union-attr]
            "io.delta.tables.DeltaTable", False, False)
        return True
    except Exception:  # py4j raises a generic error for a missing class
        return False
