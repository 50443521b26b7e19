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
    import pyarrow as pa
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


def to_arrow(data: Any, group: FeatureGroup) -> "pa.Table":
    """pandas, polars or Arrow input as one Arrow table: pandas NaN is missing (null), int
    columns holding a missing value come back to integers, timestamps are UTC microseconds
    (naive ones are taken to be UTC), dictionary (categorical) columns hold their values.
    Spark's path (``to_spark``) and the local engine (``sparkfs.offline.local``) both start
    here.

    >>> import pandas as pd
    >>> from sparkfs import Entity, Field, FeatureGroup
    >>> g = FeatureGroup("w", [Entity("a", ["origin"])], "t", [Field("temp", "double")])
    >>> t = to_arrow(pd.DataFrame({"origin": ["JFK"], "temp": [float("nan")],
    ...                            "t": pd.to_datetime(["2013-01-01"])}), g)
    >>> t.column("temp").null_count, str(t.schema.field("t").type)
    (1, 'timestamp[us, tz=UTC]')
    """
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
        if pa.types.is_dictionary(f.type):  # pandas categoricals: their values
            col = col.cast(f.type.value_type)
            f = pa.field(f.name, f.type.value_type)
        if pa.types.is_timestamp(f.type):
            col = col.cast(pa.timestamp("us", tz=f.type.tz)) if f.type.unit == "ns" else col
            if f.type.tz is None:
                col = col.cast(pa.timestamp("us", tz="UTC"))
        cols.append(col)
    return pa.table(cols, names=data.column_names)


def to_spark(spark: "SparkSession", data: Any, group: FeatureGroup) -> "DataFrame":
    """A Spark DataFrame from Spark, pandas or Arrow input (``to_arrow``). Naive timestamps
    are UTC."""
    from pyspark.sql import DataFrame

    if isinstance(data, DataFrame):
        return data
    return spark.createDataFrame(to_arrow(data, group))


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
    narrowed = _conform_plan(group, present)
    cols = []
    for name, dtype in wanted.items():
        c = F.col(quote_ident(name, "spark"))
        if name in narrowed:
            cols.append(c.alias(name))
            continue
        if present[name] == "timestamp_ntz":
            c = F.to_utc_timestamp(c.cast("timestamp"), F.current_timezone())
        cols.append(c.cast(ALL[dtype].spark).alias(name))
    ignored = [c for c in present if c not in wanted]
    return df.select(*cols), ignored, narrowed


def _conform_plan(group: FeatureGroup, present: dict[str, str]) -> list[str]:
    """The type rules ``conform`` and ``conform_arrow`` share, given each input column's
    Spark type name: refuse missing columns and wrong types (one message naming them all),
    and return the columns to narrow from bigint to int."""
    wanted = group.column_dtypes
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ValidationError(
            f"batch for feature group {group.name!r} v{group.version} is missing column(s) "
            f"{missing} (it has {sorted(present)}); nothing was written")
    problems, narrowed = [], []
    for name, dtype in wanted.items():
        src = present[name]
        if ALL[dtype].narrows_spark(src):
            narrowed.append(name)
        elif not ALL[dtype].accepts_spark(src):
            problems.append(mismatch(name, src, dtype))
    if problems:
        raise ValidationError(
            f"batch for feature group {group.name!r} v{group.version} has wrong types: "
            + "; ".join(problems) + "; nothing was written")
    return narrowed


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
        agg = _one_row(df.agg(F.count(F.lit(1)).alias("n"),
                              F.unix_micros(F.min(et)).alias("min_et"),
                              F.unix_micros(F.max(et)).alias("max_et"), *row_aggs))
        agg["conflicts"] = 0
    else:
        agg = _check_latest_rows(df, keys, et, [f.name for f in group.stored_fields], narrowed)
    # the bounds as UTC datetimes (Spark would give naive ones in the process's time zone)
    return refuse_bad_rows(group, merge_row_counts([agg]), narrowed)


def refuse_bad_rows(group: FeatureGroup, agg: dict, narrowed: list[str]) -> dict:
    """``agg`` (the counts of a row-check pass: ``n``, ``null:<key>``, ``null_et``,
    ``range:<col>``, ``conflicts``, ``min_et``, ``max_et``) with missing counts as 0, or a
    ``ValidationError`` naming every problem: the one message both engines give.

    >>> from sparkfs import Entity, Field, FeatureGroup
    >>> g = FeatureGroup("w", [Entity("a", ["origin"])], "t", [Field("temp", "double")])
    >>> refuse_bad_rows(g, {"n": 2, "null:origin": 1, "null_et": 0, "conflicts": 0}, [])
    Traceback (most recent call last):
    ...
    sparkfs.errors.ValidationError: batch for feature group 'w' v1 refused: 1 row(s) have a null join key 'origin' (of 2 rows); nothing was written
    """  # noqa: E501 (doctest output)
    keys, et = list(group.join_keys), group.event_time
    agg = {k: (v or 0) if k not in ("min_et", "max_et") else v for k, v in agg.items()}
    problems = []
    for k in keys:
        if agg.get(f"null:{k}"):
            problems.append(f"{agg[f'null:{k}']} row(s) have a null join key {k!r}")
    if agg.get("null_et"):
        problems.append(f"{agg['null_et']} row(s) have a null event time {et!r}")
    for c in narrowed:
        if agg.get(f"range:{c}"):
            problems.append(f"{agg[f'range:{c}']} value(s) of {c!r} do not fit its dtype int")
    if agg.get("conflicts"):
        problems.append(
            f"{agg['conflicts']} row(s) give different values for the same join keys and event "
            "time within this batch (one value per key and event time; send corrections in a "
            "later ingest)")
    if problems:
        raise ValidationError(
            f"batch for feature group {group.name!r} v{group.version} refused: "
            + "; ".join(problems) + f" (of {agg['n']} rows); nothing was written")
    return agg


def null_marks(cols: list, arrays: list[bool]) -> list:
    """Never-null Spark columns that tell where ``cols`` hold nulls, to hash beside them:
    Spark's hashes skip a null cell, so ``xxhash64(null, 1.0) == xxhash64(1.0, null)``
    (and the arrays ``[null, 1.0]`` and ``[1.0, null]`` hash alike) unless the nulls'
    positions are hashed too. One bigint bit mask per 62 columns, and for each array column
    (``arrays``) the array of its elements' null flags.

    >>> null_marks.__name__  # needs Spark; exercised by tests/test_dedupe_replay.py
    'null_marks'
    """
    from pyspark.sql import functions as F

    marks = []
    for start in range(0, len(cols), 62):
        bits = [F.when(c.isNull(), F.lit(1 << i)).otherwise(F.lit(0))
                for i, c in enumerate(cols[start:start + 62])]
        marks.append(reduce(lambda a, b: a + b, bits).cast("bigint"))
    marks += [F.coalesce(F.transform(c, lambda x: x.isNull()), F.array())
              for c, array in zip(cols, arrays) if array]
    return marks


def value_hash(df: "DataFrame", values: list[str]):
    """xxhash64 of ``values`` (columns of ``df``) with their nulls' positions
    (``null_marks``): what the row checks compare a key's values by. 0 without values."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType

    if not values:
        return F.lit(0).cast("long")
    cols = [F.col(quote_ident(v, "spark")) for v in values]
    arrays = [isinstance(df.schema[v].dataType, ArrayType) for v in values]
    return F.xxhash64(*cols, *null_marks(cols, arrays))


def _check_latest_rows(df: "DataFrame", keys: list[str], et: str, values: list[str],
                       narrowed: list[str]) -> dict:
    """The row checks for a group of latest values, plus conflicting rows: the same keys
    and event time with different values. Rows are grouped by one 64-bit hash of (keys,
    event time) — a narrow shuffle — and only if that flags rows is the exact check on the
    columns themselves run (a hash collision can flag, never hide, a conflict)."""
    from pyspark.sql import functions as F

    def col(c: str):
        return F.col(quote_ident(c, "spark"))

    vh = value_hash(df, values)
    any_null = reduce(lambda a, b: a | b, [col(k).isNull() for k in keys] + [col(et).isNull()])
    flags = [F.when(col(k).isNull(), 1).otherwise(0).cast("long").alias(f"null:{k}") for k in keys]
    flags.append(F.when(col(et).isNull(), 1).otherwise(0).cast("long").alias("null_et"))
    lo, hi = INT_RANGE
    flags += [F.when((col(c) < lo) | (col(c) > hi), 1).otherwise(0).cast("long").alias(f"range:{c}")
              for c in narrowed]
    flag_names = [f"null:{k}" for k in keys] + ["null_et"] + [f"range:{c}" for c in narrowed]
    rows = df.select(F.xxhash64(*[col(k) for k in keys], col(et)).alias("_kh"),
                     vh.alias("_vh"), any_null.cast("long").alias("_bad"),
                     col(et).alias("_et"), *flags)
    per_key = rows.groupBy("_kh").agg(
        F.count(F.lit(1)).alias("c"), F.min("_vh").alias("h0"), F.max("_vh").alias("h1"),
        F.max("_bad").alias("bad"), F.min("_et").alias("lo"), F.max("_et").alias("hi"),
        *[F.sum(col(n)).alias(n) for n in flag_names])
    agg = _one_row(per_key.agg(
        F.sum("c").alias("n"), F.unix_micros(F.min("lo")).alias("min_et"),
        F.unix_micros(F.max("hi")).alias("max_et"),
        *[F.sum(col(n)).alias(n) for n in flag_names],
        F.sum(F.when((F.col("bad") == 0) & (F.col("h0") != F.col("h1")), F.col("c"))
              .otherwise(0)).alias("suspects"),
    ))
    agg["conflicts"] = 0
    if agg.pop("suspects"):
        agg["conflicts"] = _exact_conflicts(df, keys, et, values)
    return agg


def exact_conflicts(group: FeatureGroup, df: "DataFrame") -> int:
    """The rows of ``df`` (without a null key or event time) whose join keys and event time
    other rows share with different values, counted exactly as ``check_rows`` counts them
    (one Spark job: group by the keys and event time themselves, compare the values'
    xxhash64 with their nulls' positions, ``value_hash``). The one-pass write runs it only
    when its key hashes flagged rows (``conflict_hashes``): a hash collision across tasks is
    confirmed here, never refused on its own.

    >>> exact_conflicts.__name__  # needs Spark; exercised by tests/test_ingest_fused.py
    'exact_conflicts'
    """
    return _exact_conflicts(df, list(group.join_keys), group.event_time,
                            [f.name for f in group.stored_fields])


def _exact_conflicts(df: "DataFrame", keys: list[str], et: str, values: list[str]) -> int:
    from pyspark.sql import functions as F

    def col(c: str):
        return F.col(quote_ident(c, "spark"))

    vh = value_hash(df, values)
    any_null = reduce(lambda a, b: a | b, [col(k).isNull() for k in keys] + [col(et).isNull()])
    exact = (df.where(~any_null).groupBy(*[col(k) for k in keys], col(et))
               .agg(F.count(F.lit(1)).alias("c"), F.min(vh).alias("h0"),
                    F.max(vh).alias("h1"))
               .where(F.col("h0") != F.col("h1"))
               .agg(F.sum("c").alias("conflicts")))
    return int(_one_row(exact).get("conflicts") or 0)


def _one_row(df: "DataFrame") -> dict:
    """The single row of a global aggregate as a dict."""
    row = df.first()
    return row.asDict() if row is not None else {}


# -- the row checks of one Arrow batch (the one-pass write's tasks) ------------------------
def row_counts_arrow(keys: list[str], et: str, batch: "pa.RecordBatch | pa.Table",
                     narrowed: list[str]) -> dict:
    """The row-check counts of one Arrow batch, JSON-able: ``n``, ``null:<key>``,
    ``null_et``, ``range:<col>`` (values of a still-int64 column an int cannot hold) and
    the event-time bounds ``min_et``/``max_et`` as microseconds since the epoch (None
    without a non-null event time). Conflicts are not counted here: each task returns its
    key hashes instead (``conflict_hashes``). ``merge_row_counts`` adds such dicts up.

    >>> import pyarrow as pa
    >>> b = pa.table({"k": ["a", None], "t": pa.array([5, 7], pa.timestamp("us", tz="UTC")),
    ...               "n": pa.array([1, 2**40])})
    >>> row_counts_arrow(["k"], "t", b, ["n"])
    {'n': 2, 'null:k': 1, 'null_et': 0, 'range:n': 1, 'min_et': 5, 'max_et': 7}
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    out: dict[str, Any] = {"n": batch.num_rows}
    for k in keys:
        out[f"null:{k}"] = batch.column(k).null_count
    times = batch.column(et)
    out["null_et"] = times.null_count
    lo, hi = INT_RANGE
    for c in narrowed:
        col = batch.column(c)
        bad = pc.or_(pc.less(col, lo), pc.greater(col, hi))
        out[f"range:{c}"] = int(pc.sum(bad.cast("int64")).as_py() or 0)
    out["min_et"] = out["max_et"] = None
    if batch.num_rows > times.null_count:
        if isinstance(times, pa.ChunkedArray):
            times = times.combine_chunks()
        bounds = pc.min_max(times.view(pa.int64()) if pa.types.is_timestamp(times.type)
                            else times.cast(pa.int64()))
        out["min_et"], out["max_et"] = bounds["min"].as_py(), bounds["max"].as_py()
    return out


def merge_row_counts(parts: list[dict], datetimes: bool = True) -> dict:
    """``row_counts_arrow`` dicts (one per batch or task) added up: counts summed, the
    event-time bounds widened and returned as UTC datetimes (what ``refuse_bad_rows`` and
    the dedupe take; ``datetimes=False``: left as µs, JSON-able, to merge again). No part
    gives ``{"n": 0, "min_et": None, "max_et": None}``.

    >>> merge_row_counts([{"n": 1, "null_et": 0, "min_et": 0, "max_et": 0},
    ...                   {"n": 2, "null_et": 1, "min_et": 1_000_000, "max_et": 1_000_000}])
    {'n': 3, 'null_et': 1, 'min_et': datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), 'max_et': datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=datetime.timezone.utc)}
    """  # noqa: E501 (doctest output)
    out: dict[str, Any] = {"n": 0}
    lo = hi = None
    for part in parts:
        for k, v in part.items():
            if k == "min_et":
                lo = v if lo is None or (v is not None and v < lo) else lo
            elif k == "max_et":
                hi = v if hi is None or (v is not None and v > hi) else hi
            else:
                out[k] = out.get(k, 0) + (v or 0)
    if not datetimes:
        out["min_et"], out["max_et"] = lo, hi
        return out
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    out["min_et"] = None if lo is None else epoch + dt.timedelta(microseconds=lo)
    out["max_et"] = None if hi is None else epoch + dt.timedelta(microseconds=hi)
    return out


def conflict_hashes(parts: list[bytes]) -> int:
    """How many (key and event time) hashes carry more than one value hash across all the
    tasks' ``key_hashes`` (each the bytes of distinct ``uint64`` pairs: key hash, value
    hash, from ``sparkfs.offline.rowhash``): 0 means no conflicting rows in the batch; more
    means maybe (a collision of key hashes flags rows too), so the caller confirms with
    ``exact_conflicts`` before refusing.

    >>> import numpy as np
    >>> a = np.array([[1, 10], [2, 20]], np.uint64).tobytes()
    >>> b = np.array([[1, 10], [3, 30]], np.uint64).tobytes()
    >>> conflict_hashes([a, b]), conflict_hashes([a, np.array([[2, 21]], np.uint64).tobytes()])
    (0, 1)
    """
    import numpy as np

    arrays = [np.frombuffer(p, dtype=np.uint64).reshape(-1, 2) for p in parts if p]
    if not arrays:
        return 0
    pairs = np.concatenate(arrays)
    # a stable sort by key hash alone: the tasks send their pairs sorted by it, so this
    # merges sorted runs (``np.unique(axis=0)`` sorted rows as bytes: ~40x slower at 1M)
    order = np.argsort(pairs[:, 0], kind="stable")
    keys, values = pairs[order, 0], pairs[order, 1]
    start = np.empty(len(keys), dtype=bool)  # the first pair of each key hash
    start[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=start[1:])
    run = np.cumsum(start) - 1  # each pair's key hash, numbered in sorted order
    hit = run[values != values[np.flatnonzero(start)][run]]  # sorted, with repeats
    return 0 if not hit.size else 1 + int(np.count_nonzero(hit[1:] != hit[:-1]))


def narrow(df: "DataFrame", narrowed: list[str]) -> "DataFrame":
    """Cast the range-checked bigint columns to int."""
    from pyspark.sql import functions as F

    for c in narrowed:
        df = df.withColumn(c, F.col(quote_ident(c, "spark")).cast("int"))
    return df


# -- the same checks on Arrow (the local engine, ``sparkfs.offline.local``) ----------------
def spark_type_name(t: "pa.DataType") -> str:
    """The Spark type (``simpleString``) Spark gives an Arrow column of type ``t`` when it
    builds a DataFrame from Arrow, so both engines judge a batch's types by the same rules
    (``DType.accepts_spark``) and say the same thing (``mismatch``). Types Spark has no
    name for keep Arrow's.

    >>> import pyarrow as pa
    >>> spark_type_name(pa.int64()), spark_type_name(pa.list_(pa.float32()))
    ('bigint', 'array<float>')
    """
    import pyarrow as pa

    simple = {pa.int8(): "tinyint", pa.int16(): "smallint", pa.int32(): "int",
              pa.int64(): "bigint", pa.float32(): "float", pa.float64(): "double",
              pa.bool_(): "boolean", pa.string(): "string", pa.large_string(): "string",
              pa.date32(): "date", pa.null(): "void", pa.binary(): "binary",
              pa.large_binary(): "binary"}
    if t in simple:
        return simple[t]
    if pa.types.is_timestamp(t):
        return "timestamp" if t.tz is not None else "timestamp_ntz"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"array<{spark_type_name(t.value_type)}>"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    return str(t)


def conform_arrow(group: FeatureGroup, table: "pa.Table") -> tuple["pa.Table", list[str], list[str]]:
    """``conform`` on an Arrow table (from ``to_arrow``): the group's columns in history
    order cast to their Arrow types (unchecked casts, as Spark's), the ignored columns and
    the columns to narrow (left int64 for ``check_rows_arrow``; ``narrow_arrow`` casts
    them). Refuses the batch with the same messages as ``conform``.

    >>> import pyarrow as pa
    >>> from sparkfs import Entity, Field, FeatureGroup
    >>> g = FeatureGroup("w", [Entity("a", ["origin"])], "t", [Field("n", "int")])
    >>> t, ignored, narrowed = conform_arrow(g, pa.table({"origin": ["JFK"], "n": [3], "x": [1],
    ...     "t": pa.array([0], pa.timestamp("us", tz="UTC"))}))
    >>> t.column_names, ignored, narrowed
    (['origin', 't', 'n'], ['x'], ['n'])
    """
    import pyarrow as pa

    wanted = group.column_dtypes
    present = {f.name: spark_type_name(f.type) for f in table.schema}
    narrowed = _conform_plan(group, present)
    cols = []
    for name, dtype in wanted.items():
        col, target = table.column(name), ALL[dtype].arrow
        if name in narrowed or col.type == target:
            cols.append(col)
        else:
            cols.append(col.cast(target, safe=False))
    ignored = [c for c in present if c not in wanted]
    return pa.table(cols, names=list(wanted)), ignored, narrowed


def check_rows_arrow(group: FeatureGroup, table: "pa.Table", narrowed: list[str]) -> dict:
    """``check_rows`` on an Arrow table: the same counts (``n``, null keys and event
    times, out-of-range ints, conflicting rows, the event-time range), refused with the
    same message (``refuse_bad_rows``). Conflicts compare values as Spark's hashes do:
    null equals null, NaN equals NaN, -0.0 equals 0.0 (``identity_codes``).

    >>> import pyarrow as pa
    >>> from sparkfs import Entity, Field, FeatureGroup
    >>> g = FeatureGroup("w", [Entity("a", ["origin"])], "t", [Field("temp", "double")])
    >>> ts = pa.array([0, 0], pa.timestamp("us", tz="UTC"))
    >>> check_rows_arrow(g, pa.table({"origin": ["JFK", "JFK"], "t": ts, "temp": [1.0, 2.0]}), [])
    Traceback (most recent call last):
    ...
    sparkfs.errors.ValidationError: batch for feature group 'w' v1 refused: 2 row(s) give different values for the same join keys and event time within this batch (one value per key and event time; send corrections in a later ingest) (of 2 rows); nothing was written
    """  # noqa: E501 (doctest output)
    import pyarrow.compute as pc

    keys, et = list(group.join_keys), group.event_time
    agg: dict[str, Any] = {"n": table.num_rows}
    for k in keys:
        agg[f"null:{k}"] = table.column(k).null_count
    agg["null_et"] = table.column(et).null_count
    lo, hi = INT_RANGE
    for c in narrowed:
        col = table.column(c)
        out = pc.or_(pc.less(col, lo), pc.greater(col, hi))
        agg[f"range:{c}"] = int(pc.sum(out.cast("int64")).as_py() or 0)
    bounds = pc.min_max(table.column(et)).as_py() if table.num_rows else {}
    agg["min_et"], agg["max_et"] = bounds.get("min"), bounds.get("max")
    agg["conflicts"] = 0
    if not group.aggregations and table.num_rows:
        values = [f.name for f in group.stored_fields]
        agg["conflicts"] = _conflicts_arrow(table, keys + [et], values)
    return refuse_bad_rows(group, agg, narrowed)


def _conflicts_arrow(table: "pa.Table", identity: list[str], values: list[str]) -> int:
    """Rows (without a null key or event time) whose keys and event time other rows share
    with different values: every row of such a group counts, as in Spark's check."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ok = None
    for c in identity:
        valid = pc.is_valid(table.column(c))
        ok = valid if ok is None else pc.and_(ok, valid)
    if ok is not None:
        table = table.filter(ok)
    if not table.num_rows:
        return 0
    # keys and event time first (cheap); values only for the rows whose identity repeats
    per_key = table.select(identity).group_by(identity).aggregate([([], "count_all")])
    repeated = per_key.filter(pc.greater(per_key.column("count_all"), 1))
    if not repeated.num_rows:
        return 0
    rows = table.select(identity).append_column("__j", pa.array(range(table.num_rows), pa.int64()))
    found = rows.join(repeated.select(identity), keys=identity, join_type="left semi")
    table = table.take(found.column("__j"))  # (Arrow joins carry no list columns)
    [codes] = identity_codes([table], identity + values)
    per_value = codes.group_by(codes.column_names).aggregate([([], "count_all")]) \
        .rename_columns([*codes.column_names, "rows"])
    ids = [f"c{i}" for i in range(len(identity))]
    per_id = per_value.group_by(ids).aggregate([([], "count_all"), ("rows", "sum")])
    clash = per_id.filter(pc.greater(per_id.column("count_all"), 1))
    return int(pc.sum(clash.column("rows_sum")).as_py() or 0) if clash.num_rows else 0


def identity_codes(tables: list["pa.Table"], columns: list[str]) -> list["pa.Table"]:
    """One int32 code per value of each of ``columns``, shared across ``tables``: two
    cells get the same code exactly when Spark's value hashes treat them as equal (null
    equals null, NaN equals NaN, -0.0 equals 0.0; lists element by element). Returns one
    table of codes per input table, columns ``c0, c1, ...``: what the conflict check and
    the local dedupe group and join on.

    >>> import pyarrow as pa
    >>> a = pa.table({"x": [0.0, float("nan"), None]}); b = pa.table({"x": [-0.0, float("nan"), 1.0]})
    >>> [t.column("c0").to_pylist() for t in identity_codes([a, b], ["x"])]
    [[0, 1, 2], [0, 1, 3]]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    sizes = [t.num_rows for t in tables]
    out_cols = []
    for c in columns:
        col = pa.chunked_array([chunk for t in tables for chunk in t.column(c).chunks],
                               type=tables[0].schema.field(c).type)
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            seen: dict = {}
            codes = pa.array([seen.setdefault(_list_key(v), len(seen)) for v in col.to_pylist()],
                             pa.int32())
        else:
            if pa.types.is_floating(col.type):
                nan = pa.scalar(float("nan"), col.type)
                zero = pa.scalar(0.0, col.type)
                col = pc.if_else(pc.is_nan(col), nan, col)
                col = pc.if_else(pc.equal(col, zero), zero, col)
            encoded = pc.dictionary_encode(col, null_encoding="encode")
            codes = pa.chunked_array([ch.indices for ch in encoded.chunks], pa.int32()) \
                .combine_chunks() if encoded.num_chunks else pa.array([], pa.int32())
        out_cols.append(codes)
    out, start = [], 0
    for n in sizes:
        out.append(pa.table([c.slice(start, n) for c in out_cols],
                            names=[f"c{i}" for i in range(len(columns))]))
        start += n
    return out


def _list_key(value: Any) -> Any:
    """A hashable key for a list cell: NaN equal to NaN, -0.0 to 0.0, None to None."""
    if value is None:
        return None
    return tuple("nan" if isinstance(x, float) and x != x else (0.0 if x == 0 else x)
                 for x in value)


def narrow_arrow(table: "pa.Table", narrowed: list[str]) -> "pa.Table":
    """Cast the range-checked int64 columns to int32 (``narrow`` on Arrow)."""
    import pyarrow as pa

    for c in narrowed:
        i = table.schema.get_field_index(c)
        table = table.set_column(i, c, table.column(c).cast(pa.int32()))
    return table
