"""Dedupe at ingest: rows already stored with identical keys, event time and values are
skipped, so a replayed batch under a new run id writes nothing twice.

Only stored files whose event-time statistics overlap the batch are read (no full history
scan), and only the keys, the event time and a 96-bit hash of the values (xxhash64 and
murmur3 over the same columns; null- and NaN-aware) leave the stored side. A row with the
same keys and event time but other values is a correction: it is kept (the later
``_commit_time`` wins on reads).

The writers call ``without_stored_rows`` again against the files other writers committed
since the batch was first deduped (``sparkfs.offline.writers``), so two concurrent ingests
of the same rows under different run ids commit them once.
"""

from __future__ import annotations

from functools import reduce
from typing import TYPE_CHECKING

from ..definitions import FeatureGroup
from ..sql import quote_ident
from .tables import read_files_spark

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["without_stored_rows"]


def without_stored_rows(spark: "SparkSession", group: FeatureGroup, df: "DataFrame",
                         files: list[str], checks: dict, value_cols: list[str]) -> "DataFrame":
    """Anti-join against stored rows in the batch's event-time range.

    Only the join keys, the event time and a 96-bit hash of the feature values (xxhash64
    and murmur3 over the same columns; null- and NaN-aware) leave the stored side, so the
    shuffle stays narrow however many features the group has. Keys and event times are
    never null here (the row checks refused such batches). ``checks`` gives the batch's
    ``min_et``/``max_et``; ``value_cols`` are the history columns without system columns.

    >>> without_stored_rows.__name__  # needs Spark; exercised by tests/test_ingest.py
    'without_stored_rows'
    """
    from pyspark.sql import functions as F

    et = group.event_time
    keys = list(group.join_keys) + [et]
    values = [c for c in value_cols if c not in keys]

    def hashed(frame: "DataFrame", prefix: str) -> list:
        cols = [F.col(quote_ident(v, "spark")) for v in values] or [F.lit(0)]
        return [F.xxhash64(*cols).alias(f"{prefix}h1"), F.hash(*cols).alias(f"{prefix}h2")]

    stored = (read_files_spark(spark, group, files)
              .where((F.col(et) >= F.lit(checks["min_et"])) & (F.col(et) <= F.lit(checks["max_et"])))
              .select(*[F.col(quote_ident(k, "spark")).alias(f"__s_{k}") for k in keys], *hashed(df, "__s_")))
    batch = df.select("*", *hashed(df, "__b_"))
    cond = [F.col(quote_ident(k, "spark")) == F.col(quote_ident(f"__s_{k}", "spark")) for k in keys]
    cond += [F.col("__b_h1") == F.col("__s_h1"), F.col("__b_h2") == F.col("__s_h2")]
    return batch.join(stored, reduce(lambda a, b: a & b, cond), "left_anti").drop("__b_h1", "__b_h2")
