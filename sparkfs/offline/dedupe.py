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

__all__ = ["merge_condition", "without_stored_rows"]


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

    def hashed(prefix: str) -> list:
        h1, h2 = _value_hashes(group, value_cols, None)
        return [h1.alias(f"{prefix}h1"), h2.alias(f"{prefix}h2")]

    stored = (read_files_spark(spark, group, files)
              .where((F.col(et) >= F.lit(checks["min_et"])) & (F.col(et) <= F.lit(checks["max_et"])))
              .select(*[F.col(quote_ident(k, "spark")).alias(f"__s_{k}") for k in keys], *hashed("__s_")))
    batch = df.select("*", *hashed("__b_"))
    cond = [F.col(quote_ident(k, "spark")) == F.col(quote_ident(f"__s_{k}", "spark")) for k in keys]
    cond += [F.col("__b_h1") == F.col("__s_h1"), F.col("__b_h2") == F.col("__s_h2")]
    return batch.join(stored, reduce(lambda a, b: a & b, cond), "left_anti").drop("__b_h1", "__b_h2")


def _value_hashes(group: FeatureGroup, value_cols: list[str], qualifier: str | None) -> tuple:
    """The two hashes (xxhash64, murmur3) of a row's feature values: the value part of the
    dedupe identity, the same in the anti-join and in delta-spark's MERGE."""
    from pyspark.sql import functions as F

    keys = set(group.join_keys) | {group.event_time}
    prefix = "" if qualifier is None else f"{quote_ident(qualifier, 'spark')}."
    cols = [F.col(prefix + quote_ident(v, "spark")) for v in value_cols if v not in keys]
    cols = cols or [F.lit(0)]
    return F.xxhash64(*cols), F.hash(*cols)


def merge_condition(group: FeatureGroup, value_cols: list[str], et_range: tuple,
                    stored: str, batch: str):
    """The dedupe identity as a MERGE condition between the aliases ``stored`` (the Delta
    table) and ``batch``: same join keys, same event time, same value hashes as
    ``without_stored_rows``; the stored side limited to the batch's event-time range so
    Delta reads only the files that overlap it.

    >>> merge_condition.__name__  # needs Spark; exercised by tests/test_ingest_concurrency.py
    'merge_condition'
    """
    from pyspark.sql import functions as F

    def col(alias: str, name: str):
        return F.col(f"{quote_ident(alias, 'spark')}.{quote_ident(name, 'spark')}")

    et = group.event_time
    cond = [col(stored, k) == col(batch, k) for k in [*group.join_keys, et]]
    cond += [col(stored, et) >= F.lit(et_range[0]), col(stored, et) <= F.lit(et_range[1])]
    cond += [a == b for a, b in zip(_value_hashes(group, value_cols, stored),
                                    _value_hashes(group, value_cols, batch))]
    return reduce(lambda a, b: a & b, cond)
