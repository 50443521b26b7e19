"""Helpers shared by the spark-submit jobs in ``jobs/`` and the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession


def read_input(spark: "SparkSession", path: str) -> "DataFrame":
    """Read a Parquet file/directory or a CSV file (header, inferred types) with Spark."""
    import os

    local = "://" not in path
    if local and not os.path.exists(path):
        raise NotFoundError(f"input {path!r} does not exist")
    uri = ("file://" + os.path.abspath(path)) if local else path
    if path.endswith(".csv"):
        return spark.read.option("header", True).option("inferSchema", True).csv(uri)
    if path.endswith(".json") or path.endswith(".jsonl"):
        return spark.read.json(uri)
    return spark.read.parquet(uri)


def run_subcommand(subcommand: str, argv: "list[str] | None" = None) -> int:
    """Run ``sparkfs <subcommand> ARGV`` for a spark-submit job, moving ``--config PATH``
    (a global option of the ``sparkfs`` command) in front of the subcommand. Used by
    ``jobs/training_set.py`` and ``jobs/score_batch.py``.
    """
    import sys

    from .cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    config: list[str] = []
    if "--config" in argv:
        i = argv.index("--config")
        config = argv[i:i + 2]
        del argv[i:i + 2]
    return cli_main(config + [subcommand] + argv)
