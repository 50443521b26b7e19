"""Batch checks at ingest: input conversion, schema conformance and one-pass row checks.

Every check runs before a byte is written and refuses the whole batch with a
``ValidationError`` naming the group, the column, the count and the fix:

- ``check_run_id``: a usable run id (or a fresh one);
- ``to_spark``: Spark, pandas, polars or Arrow input as a Spark DataFrame (naive
  timestamps are UTC; pandas NaN is missing);
- ``conform``: every key, the event time and every stored field present with a compatible
  type (lossless widening; bigint -> int narrowing checked per value);
- ``check_rows``: one Spark pass for null keys, null event times, out-of-range values and,
  for groups of latest values, conflicting rows (same keys and event time, other values).

>>> check_run_id("weather-2013-01-01", None)
'weather-2013-01-01'
>>> check_run_id("", None)
Traceback (most recent call last):
...
sparkfs.errors.ValidationError: run_id '' is not usable: give a non-empty string ...
"""

from __future__ import annotations

import datetime as dt
import uuid
from functools import reduce
from typing import TYPE_CHECKING, Any

from ..definitions import FeatureGroup
from ..dtypes import ALL, mismatch
from ..errors import ValidationError
from ..sql import quote_ident

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

INT_RANGE = ALL["int"].bounds
MAX_RUN_ID_LENGTH = 256


# -- input ----------------------------------------------------------------------------------
def check_run_id(run_id: str | None, now: dt.datetime | None) -> str:
    """``run_id`` checked, or a fresh one (``run-<UTC time>-<random>``) when it is None."""
    if run_id is None:
        now = now or dt.datetime.now(dt.UTC)
        return f"run-{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    if not isinstance(run_id, str) or not run_id.strip() or len(run_id) > MAX_RUN_ID_LENGTH \
            or any(ord(c) < 32 for c in run_id):
        raise ValidationError(
            f"run_id {run_id!r} is not usable: give a non-empty string of at most "
            f"{MAX_RUN_ID_LENGTH} printable characters (for example 'weather-2013-01-01')")
    return run_id


def to_spark(spark: "SparkSession", data: Any, group: FeatureGroup) -> "DataFrame":
    """A Spark DataFrame from Spark, pandas or Arrow input. Naive timestamps are UTC."""
    from pyspark.sql import DataFrame

    if isinstance(data, DataFrame):
        return data
    import pyarrow as pa

    if hasattr(data, "to_arrow") and not isinstance(data, pa.Table):  # e.g. polars
        data = data.to_arrow()
    if _is_pandas(data):
        # pandas conventions: NaN means missing (stored as null; pass Arrow or Spark to store
        # NaN itself), and an int column holding a missing value arrives as float64.
        data = pa.Table.from_pandas(_pandas_ints(data, group), preserve_index=False)
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if not isinstance(data, pa.Table):
        raise ValidationError(
            f"cannot ingest a {type(data).__name__} into feature group {group.name!r}: pass a "
            "Spark DataFrame, a pandas DataFrame or a pyarrow Table")
    cols = []
    for f, col in zip(data.schema, data.columns):
        if pa.types.is_timestamp(f.type):
            col = col.cast(pa.timestamp("us", tz=f.type.tz)) if f.type.unit == "ns" else col
            if f.type.tz is None:
                col = col.cast(pa.timestamp("us", tz="UTC"))
        cols.append(col)
    data = pa.table(cols, names=data.column_names)
    return spark.createDataFrame(data)


def _pandas_ints(pdf: Any, group: FeatureGroup) -> Any:
    """Turn float columns declared int/long whose values are all whole numbers (or
    missing) into nullable integers; other floats are left for the type check to refuse."""
    import numpy as np

    fixed = {}
    for name, dtype in group.column_dtypes.items():
        if ALL[dtype].is_integer and name in pdf.columns and pdf[name].dtype.kind == "f":
            values = pdf[name].to_numpy()
            finite = values[~np.isnan(values)]
            if np.all(np.isfinite(finite)) and np.all(finite == np.round(finite)):
                fixed[name] = pdf[name].astype("Int64")
    return pdf.assign(**fixed) if fixed else pdf


def _is_pandas(data: Any) -> bool:
    mod = type(data).__module__
    return mod.startswith("pandas") and type(data).__name__ == "DataFrame"


# -- schema ---------------------------------------------------------------------------------
def conform(group: FeatureGroup, df: "DataFrame") -> tuple["DataFrame", list[str], list[str]]:
    """Select the group's columns in history order, cast to the declared types.

    Returns the frame, the ignored extra columns and the columns to narrow from bigint to
    int: they stay bigint here so the row checks can count out-of-range values, and
    ``narrow`` casts them afterwards."""
    from pyspark.sql import functions as F

    wanted = group.column_dtypes
    present = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ValidationError(
            f"batch for feature group {group.name!r} v{group.version} is missing column(s) "
            f"{missing} (it has {sorted(present)}); nothing was written")
    problems, narrowed, cols = [], [], []
    for name, dtype in wanted.items():
        src = present[name]
        if ALL[dtype].accepts_spark(src):
            pass
        elif ALL[dtype].narrows_spark(src):
            narrowed.append(name)
            cols.append(F.col(quote_ident(name, "spark")).alias(name))
            continue
        else:
            problems.append(mismatch(name, src, dtype))
        c = F.col(quote_ident(name, "spark"))
        if src == "timestamp_ntz":
            c = F.to_utc_timestamp(c.cast("timestamp"), F.current_timezone())
        cols.append(c.cast(ALL[dtype].spark).alias(name))
    if problems:
        raise ValidationError(
            f"batch for feature group {group.name!r} v{group.version} has wrong types: "
            + "; ".join(problems) + "; nothing was written")
    ignored = [c for c in present if c not in wanted]
    return df.select(*cols), ignored, narrowed


# -- row checks -----------------------------------------------------------------------------
def check_rows(group: FeatureGroup, df: "DataFrame", narrowed: list[str]) -> dict:
    """One pass: row count, null keys/event times, out-of-range ints, conflicting rows."""
    from pyspark.sql import functions as F

    keys, et = list(group.join_keys), group.event_time
    if group.aggregations:  # raw events: several rows per key and time are normal
        row_aggs = [F.sum(F.col(quote_ident(k, "spark")).isNull().cast("long")).alias(f"null:{k}")
                    for k in keys]
        row_aggs.append(F.sum(F.col(et).isNull().cast("long")).alias("null_et"))
        lo, hi = INT_RANGE
        for c in narrowed:  # still bigint: count the values an int cannot hold
            out = (F.col(quote_ident(c, "spark")) < F.lit(lo)) | (F.col(quote_ident(c, "spark")) > F.lit(hi))
            row_aggs.append(F.sum(out.cast("long")).alias(f"range:{c}"))
        agg = _one_row(df.agg(F.count(F.lit(1)).alias("n"), F.min(et).alias("min_et"),
                              F.max(et).alias("max_et"), *row_aggs))
        agg["conflicts"] = 0
    else:
        agg = _check_latest_rows(df, keys, et, [f.name for f in group.stored_fields], narrowed)
    agg = {k: (v or 0) if k not in ("min_et", "max_et") else v for k, v in agg.items()}
    problems = []
    for k in keys:
        if agg[f"null:{k}"]:
            problems.append(f"{agg[f'null:{k}']} row(s) have a null join key {k!r}")
    if agg["null_et"]:
        problems.append(f"{agg['null_et']} row(s) have a null event time {et!r}")
    for c in narrowed:
        if agg.get(f"range:{c}"):
            problems.append(f"{agg[f'range:{c}']} value(s) of {c!r} do not fit its dtype int")
    if agg["conflicts"]:
        problems.append(
            f"{agg['conflicts']} row(s) give different values for the same join keys and event "
            "time within this batch (one value per key and event time; send corrections in a "
            "later ingest)")
    if problems:
        raise ValidationError(
            f"batch for feature group {group.name!r} v{group.version} refused: "
            + "; ".join(problems) + f" (of {agg['n']} rows); nothing was written")
    return agg


def _check_latest_rows(df: "DataFrame", keys: list[str], et: str, values: list[str],
                       narrowed: list[str]) -> dict:
    """The row checks for a group of latest values, plus conflicting rows: the same keys
    and event time with different values. Rows are grouped by one 64-bit hash of (keys,
    event time) — a narrow shuffle — and only if that flags rows is the exact check on the
    columns themselves run (a hash collision can flag, never hide, a conflict)."""
    from pyspark.sql import functions as F

    def col(c: str):
        return F.col(quote_ident(c, "spark"))

    value_hash = F.xxhash64(*[col(v) for v in values]) if values else F.lit(0).cast("long")
    any_null = reduce(lambda a, b: a | b, [col(k).isNull() for k in keys] + [col(et).isNull()])
    flags = [F.when(col(k).isNull(), 1).otherwise(0).cast("long").alias(f"null:{k}") for k in keys]
    flags.append(F.when(col(et).isNull(), 1).otherwise(0).cast("long").alias("null_et"))
    lo, hi = INT_RANGE
    flags += [F.when((col(c) < lo) | (col(c) > hi), 1).otherwise(0).cast("long").alias(f"range:{c}")
              for c in narrowed]
    flag_names = [f"null:{k}" for k in keys] + ["null_et"] + [f"range:{c}" for c in narrowed]
    rows = df.select(F.xxhash64(*[col(k) for k in keys], col(et)).alias("_kh"),
                     value_hash.alias("_vh"), any_null.cast("long").alias("_bad"),
                     col(et).alias("_et"), *flags)
    per_key = rows.groupBy("_kh").agg(
        F.count(F.lit(1)).alias("c"), F.min("_vh").alias("h0"), F.max("_vh").alias("h1"),
        F.max("_bad").alias("bad"), F.min("_et").alias("lo"), F.max("_et").alias("hi"),
        *[F.sum(col(n)).alias(n) for n in flag_names])
    agg = _one_row(per_key.agg(
        F.sum("c").alias("n"), F.min("lo").alias("min_et"), F.max("hi").alias("max_et"),
        *[F.sum(col(n)).alias(n) for n in flag_names],
        F.sum(F.when((F.col("bad") == 0) & (F.col("h0") != F.col("h1")), F.col("c"))
              .otherwise(0)).alias("suspects"),
    ))
    agg["conflicts"] = 0
    if agg.pop("suspects"):
        exact = (df.where(~any_null).groupBy(*keys, et)
                   .agg(F.count(F.lit(1)).alias("c"), F.min(value_hash).alias("h0"),
                        F.max(value_hash).alias("h1"))
                   .where(F.col("h0") != F.col("h1"))
                   .agg(F.sum("c").alias("conflicts")))
        agg["conflicts"] = _one_row(exact).get("conflicts") or 0
    return agg


def _one_row(df: "DataFrame") -> dict:
    """The single row of a global aggregate as a dict."""
    row = df.first()
    return row.asDict() if row is not None else {}


def narrow(df: "DataFrame", narrowed: list[str]) -> "DataFrame":
    """Cast the range-checked bigint columns to int."""
    from pyspark.sql import functions as F

    for c in narrowed:
        df = df.withColumn(c, F.col(quote_ident(c, "spark")).cast("int"))
    return df
