"""Shared fixtures: one local SparkSession for the whole run, a fresh store per test."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

# The HBase and Spark cluster fixtures (also registered as a pytest11 entry point; listed
# here so a checkout whose installed metadata predates the entry point has them too).
pytest_plugins = ["sparkfs.testing.plugin"]

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

#: The run's temporary directory and the patch that points there (``pytest_configure``).
_RUN: dict = {}


def pytest_configure(config: pytest.Config) -> None:
    """Keep the run's temporary files in one directory, removed when the run ends.

    Tests and doctests call ``tempfile.mkdtemp()`` freely, and Spark's local directories
    (``spark-*``, ``blockmgr-*``) outlive a killed JVM: pointed at one directory (``TMPDIR``,
    ``tempfile.tempdir``, ``SPARK_LOCAL_DIRS``) before anything starts, none of it is left
    in ``/tmp``. pytest's own ``tmp_path`` directories stay where they were
    (``PYTEST_DEBUG_TEMPROOT``), so a failed test's files are kept to look at. The directory
    may be passed through by other users (the PostgreSQL tests run their server as one).
    """
    patch = pytest.MonkeyPatch()
    if "PYTEST_DEBUG_TEMPROOT" not in os.environ:
        patch.setenv("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    root = tempfile.mkdtemp(prefix="sparkfs-test-run-")
    os.chmod(root, 0o711)
    patch.setenv("TMPDIR", root)
    patch.setenv("SPARK_LOCAL_DIRS", root)
    patch.setattr(tempfile, "tempdir", root)
    _RUN.update(root=root, patch=patch)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Undo what ``pytest_configure`` changed and remove the run's temporary directory."""
    if _RUN:
        _RUN.pop("patch").undo()
        shutil.rmtree(_RUN.pop("root"), ignore_errors=True)


#: The offline writer engines. ``delta-rs`` is the fast default every suite runs with;
#: suites that take the matrix (``pytestmark = WRITER_MATRIX``) also run ``delta-spark``,
#: marked ``delta_spark`` (``-m "not delta_spark"`` for a quick run).
WRITER_ENGINES = ["delta-rs", pytest.param("delta-spark", marks=pytest.mark.delta_spark)]
WRITER_MATRIX = pytest.mark.parametrize("writer_engine", WRITER_ENGINES, indirect=True)
NO_DELTA_JARS = ("delta-spark: the Delta jars are not fetched "
                 "(run `python -m sparkfs.jvm fetch delta` or `make jvm`)")


def delta_jars_fetched() -> bool:
    from sparkfs.jvm import is_fetched

    return is_fetched("delta")


@pytest.fixture(scope="session")
def spark(request):
    """One real local[2] SparkSession for the whole test run (few shuffle partitions),
    with Spark's Kafka connector when fetched (the streaming tests), and Delta Lake's Spark
    writer on it when the run selected ``delta_spark`` tests and the jars are fetched (a
    quick ``-m "not delta_spark"`` run starts plain Spark, so ``offline.engine: auto`` stays
    on delta-rs there)."""
    from sparkfs import jvm
    from sparkfs.config import SparkConfig
    from sparkfs.sparkutil import get_or_create_spark

    conf = {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "4",
            "spark.driver.memory": "2g"}
    if jvm.is_fetched("spark-kafka"):  # Spark's Kafka connector, for the streaming tests
        conf["spark.jars"] = ",".join(str(p) for p in jvm.jars("spark-kafka"))
    wants_delta = any(item.get_closest_marker("delta_spark") is not None
                      for item in request.session.items)
    session = get_or_create_spark(SparkConfig(master="local[2]", app_name="sparkfs-tests",
                                              conf=conf),
                                  delta=wants_delta and delta_jars_fetched())
    yield session
    session.stop()


@pytest.fixture
def writer_engine(request):
    """The offline writer engine of this test (``delta-rs`` unless parametrized)."""
    engine = getattr(request, "param", "delta-rs")
    if engine == "delta-spark":
        if not delta_jars_fetched():
            pytest.skip(NO_DELTA_JARS)
        from sparkfs.sparkutil import has_delta_jars

        if not has_delta_jars(request.getfixturevalue("spark")):
            pytest.skip("delta-spark: the test SparkSession could not load the Delta jars")
    return engine


@pytest.fixture
def store_config(tmp_path, writer_engine):
    """Config mapping for an isolated embedded store under ``tmp_path``."""
    return {"project": "test", "data_dir": str(tmp_path / "data"),
            "offline": {"engine": writer_engine}}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``CI=true`` a skipped delta-spark test fails the run: CI must run them."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" \
            and item.get_closest_marker("delta_spark") is not None:
        report.outcome = "failed"
        report.longrepr = f"delta-spark tests must run under CI=true but were skipped: " \
                          f"{report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr}"


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
