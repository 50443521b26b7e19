"""Ingestion: check a batch against its feature group and append it to the group's Delta
history in one atomic commit, written by the executors.

Steps, in order (any refusal happens before a single byte is written):

1. ``run_id`` already committed (a Delta app transaction) -> no-op.
2. Derived features: the group's transforms add their columns (pandas UDFs).
3. Schema: every join key, the event time and every input field must be present with a
   compatible type (lossless widening, and integer narrowing checked per value).
4. One Spark pass counts null join keys, null event times, out-of-range values and, for
   groups of latest values, rows that give the same keys and event time different values.
5. Expectations (great-expectations), when the group declares them: ``strict`` refuses the
   batch, ``quarantine`` diverts failing rows.
6. Rows already stored with identical keys, event time and values are skipped. Only files
   whose event-time statistics overlap the batch are read (no full history scan).
7. The executors write Parquet; the driver commits the files with full statistics and the
   run's app transaction in a single Delta commit (``delta-rs`` engine), or Spark writes
   the Delta commit itself (``delta-spark`` engine, when the session has the Delta jars).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from functools import reduce
from typing import TYPE_CHECKING, Any

from ..definitions import DTYPES, FeatureGroup
from ..errors import ConfigError, SparkfsError, ValidationError
from ..sql import quote_ident
from .tables import COMMIT_TIME, RUN_ID, history_schema, read_files_spark

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from ..online.materialize import MaterializeResult
    from ..store import FeatureStore

INT_RANGE = (-(2**31), 2**31 - 1)
MAX_RUN_ID_LENGTH = 256


@dataclass
class IngestResult:
    """What one ``fs.ingest`` call did: the Delta version it committed (or found, for a
    replayed ``run_id``: ``noop``), the row counts, and ``materialization`` when the call
    also pushed the new values online.

    >>> r = IngestResult("weather", 1, "run-1", delta_version=3, rows_input=10, rows_written=8,
    ...                  rows_skipped=2)
    >>> r.to_dict()["rows_written"], r.materialization is None
    (8, True)
    """

    group: str
    group_version: int
    run_id: str
    delta_version: int
    rows_input: int = 0
    rows_written: int = 0
    rows_skipped: int = 0
    rows_quarantined: int = 0
    duration_s: float = 0.0
    noop: bool = False
    engine: str = "delta-rs"
    columns_ignored: list[str] = field(default_factory=list)
    transform_fingerprints: dict[str, str] = field(default_factory=dict)
    materialization: MaterializeResult | None = None

    def to_dict(self) -> dict:
        """A JSON-able dict (``materialization`` as its own dict, or left out)."""
        out = {k: v for k, v in self.__dict__.items() if k != "materialization"}
        if self.materialization is not None:
            out["materialization"] = self.materialization.to_dict()
        return out


def app_id(run_id: str) -> str:
    """The Delta app-transaction id that marks ``run_id`` as committed."""
    return f"sparkfs-ingest:{run_id}"


def ingest(fs: "FeatureStore", group: FeatureGroup, data: Any, run_id: str | None = None) -> IngestResult:
    started = time.perf_counter()
    commit_time = dt.datetime.now(dt.UTC)
    run_id = _check_run_id(run_id, commit_time)
    table = fs.offline.table(group)
    pinned = table.version()
    result = IngestResult(group.name, group.version, run_id, pinned,
                          transform_fingerprints={t.name: t.fingerprint for t in group.transforms})
    if table.transaction_version(app_id(run_id)) is not None:
        result.noop = True
        result.delta_version = _version_of_run(table, run_id, pinned)
        result.duration_s = time.perf_counter() - started
        return result

    spark = fs.spark
    engine = _engine(fs, spark)
    result.engine = engine
    df = to_spark(spark, data, group)
    if group.transforms:
        from ..transforms import apply_derived

        df = apply_derived(group, df)
    df, result.columns_ignored, narrowed = conform(group, df)
    checks = _check_rows(group, df, narrowed)
    df = narrow(df, narrowed)
    result.rows_input = checks["n"]
    if result.rows_input == 0:
        result.noop = True
        result.duration_s = time.perf_counter() - started
        return result

    outcome = None
    if group.expectations is not None:
        from ..validation import validate_batch

        outcome = validate_batch(fs, group, df, run_id)
        df = outcome.valid_df

    value_cols = [f.name for f in history_schema(group) if f.name not in (COMMIT_TIME, RUN_ID)]
    df = df.select(*value_cols)
    overlap = fs.offline.files(group, pinned, (checks["min_et"], checks["max_et"]))
    if overlap:
        df = _without_stored_rows(spark, group, df, overlap, checks, value_cols)
    df = (df.withColumn(COMMIT_TIME, _lit_ts(commit_time))
            .withColumn(RUN_ID, _lit_str(run_id)))

    if outcome is not None and outcome.invalid_df is not None:
        # Quarantined rows land first (idempotent per run id): if the process dies between
        # here and the main commit, the retry commits the batch and finds them written.
        from ..validation.quarantine import write_quarantine

        write_quarantine(fs, group, outcome.invalid_df, run_id, None)
    if engine == "delta-spark":
        written, version = _write_delta_spark(fs, group, df, run_id)
    else:
        written, version = _write_delta_rs(fs, group, df, run_id, commit_time, checks["n"])
    result.rows_written = written
    if version is None:  # nothing new to write
        result.noop = True
    else:
        result.delta_version = version
    if outcome is not None:
        from ..validation import record_validation

        result.rows_quarantined = record_validation(fs, group, outcome, run_id, result.delta_version)
    result.rows_skipped = result.rows_input - result.rows_written - result.rows_quarantined
    if version is not None and getattr(fs.config.ingest, "statistics", False):
        from ..monitoring import record_statistics

        new_files = fs.offline.files_added_between(group, pinned, version)
        written_df = read_files_spark(spark, group, new_files).where(_col(RUN_ID) == _lit_str(run_id))
        record_statistics(fs, group, written_df, version)
    result.duration_s = time.perf_counter() - started
    return result


# -- input ----------------------------------------------------------------------------------
def _check_run_id(run_id: str | None, now: dt.datetime) -> str:
    if run_id is None:
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

    wanted = dict(group.key_dtypes)
    wanted.update({f.name: f.dtype for f in group.stored_fields})
    fixed = {}
    for name, dtype in wanted.items():
        if dtype in ("int", "long") and name in pdf.columns and pdf[name].dtype.kind == "f":
            values = pdf[name].to_numpy()
            finite = values[~np.isnan(values)]
            if np.all(np.isfinite(finite)) and np.all(finite == np.round(finite)):
                fixed[name] = pdf[name].astype("Int64")
    return pdf.assign(**fixed) if fixed else pdf


def _is_pandas(data: Any) -> bool:
    mod = type(data).__module__
    return mod.startswith("pandas") and type(data).__name__ == "DataFrame"


# -- schema ---------------------------------------------------------------------------------
_FAMILY_OK = {
    # target dtype -> Spark simpleString of source types accepted as is (cast losslessly)
    "boolean": {"boolean"},
    "int": {"int", "smallint", "tinyint"},
    "long": {"bigint", "int", "smallint", "tinyint"},
    "float": {"float", "double"},  # double -> float keeps float precision; documented
    "double": {"double", "float", "bigint", "int", "smallint", "tinyint"},
    "string": {"string"},
    "timestamp": {"timestamp", "timestamp_ntz"},
    "date": {"date"},
    "array<float>": {"array<float>", "array<double>", "array<int>", "array<bigint>"},
    "array<double>": {"array<double>", "array<float>", "array<int>", "array<bigint>"},
}


def conform(group: FeatureGroup, df: "DataFrame") -> tuple["DataFrame", list[str], list[str]]:
    """Select the group's columns in history order, cast to the declared types.

    Returns the frame, the ignored extra columns and the columns to narrow from bigint to
    int: they stay bigint here so the row checks can count out-of-range values, and
    ``narrow`` casts them afterwards."""
    from pyspark.sql import functions as F

    wanted = {k: d for k, d in group.key_dtypes.items()}
    wanted[group.event_time] = "timestamp"
    for f in group.stored_fields:
        wanted[f.name] = f.dtype
    present = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ValidationError(
            f"batch for feature group {group.name!r} v{group.version} is missing column(s) "
            f"{missing} (it has {sorted(present)}); nothing was written")
    problems, narrowed, cols = [], [], []
    for name, dtype in wanted.items():
        src = present[name]
        if src == "void" or src in _FAMILY_OK[dtype]:
            pass
        elif dtype == "int" and src == "bigint":
            narrowed.append(name)
            cols.append(F.col(quote_ident(name, "spark")).alias(name))
            continue
        else:
            problems.append(f"column {name!r} has type {src}, expected {dtype} "
                            f"({DTYPES[dtype][0]})")
        c = F.col(quote_ident(name, "spark"))
        if src == "timestamp_ntz":
            c = F.to_utc_timestamp(c.cast("timestamp"), F.current_timezone())
        cols.append(c.cast(DTYPES[dtype][0]).alias(name))
    if problems:
        raise ValidationError(
            f"batch for feature group {group.name!r} v{group.version} has wrong types: "
            + "; ".join(problems) + "; nothing was written")
    ignored = [c for c in present if c not in wanted]
    return df.select(*cols), ignored, narrowed


# -- row checks -----------------------------------------------------------------------------
def _check_rows(group: FeatureGroup, df: "DataFrame", narrowed: list[str]) -> dict:
    """One pass: row count, null keys/event times, out-of-range ints, conflicting rows."""
    from pyspark.sql import functions as F

    keys, et = list(group.join_keys), group.event_time
    if group.aggregations:  # raw events: several rows per key and time are normal
        row_aggs = [F.sum(F.col(quote_ident(k, "spark")).isNull().cast("long"))
                    .alias(f"null:{k}") for k in keys]
        row_aggs.append(F.sum(F.col(et).isNull().cast("long")).alias("null_et"))
        lo, hi = INT_RANGE
        for c in narrowed:  # still bigint: count the values an int cannot hold
            v = F.col(quote_ident(c, "spark"))
            out = (v < F.lit(lo)) | (v > F.lit(hi))
            row_aggs.append(F.sum(out.cast("long")).alias(f"range:{c}"))
        agg = df.agg(F.count(F.lit(1)).alias("n"), F.min(et).alias("min_et"),
                     F.max(et).alias("max_et"), *row_aggs).collect()[0].asDict()
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
    agg = per_key.agg(
        F.sum("c").alias("n"), F.min("lo").alias("min_et"), F.max("hi").alias("max_et"),
        *[F.sum(col(n)).alias(n) for n in flag_names],
        F.sum(F.when((F.col("bad") == 0) & (F.col("h0") != F.col("h1")), F.col("c"))
              .otherwise(0)).alias("suspects"),
    ).collect()[0].asDict()
    agg["conflicts"] = 0
    if agg.pop("suspects"):
        exact = (df.where(~any_null).groupBy(*keys, et)
                   .agg(F.count(F.lit(1)).alias("c"), F.min(value_hash).alias("h0"),
                        F.max(value_hash).alias("h1"))
                   .where(F.col("h0") != F.col("h1"))
                   .agg(F.sum("c").alias("conflicts")).collect()[0])
        agg["conflicts"] = exact["conflicts"] or 0
    return agg


def narrow(df: "DataFrame", narrowed: list[str]) -> "DataFrame":
    """Cast the range-checked bigint columns to int."""
    from pyspark.sql import functions as F

    for c in narrowed:
        df = df.withColumn(c, F.col(quote_ident(c, "spark")).cast("int"))
    return df


# -- dedup ----------------------------------------------------------------------------------
def _without_stored_rows(spark: "SparkSession", group: FeatureGroup, df: "DataFrame",
                         files: list[str], checks: dict, value_cols: list[str]) -> "DataFrame":
    """Anti-join against stored rows in the batch's event-time range.

    Only the join keys, the event time and a 96-bit hash of the feature values (xxhash64
    and murmur3 over the same columns; null- and NaN-aware) leave the stored side, so the
    shuffle stays narrow however many features the group has. Keys and event times are
    never null here (the row checks refused such batches)."""
    from pyspark.sql import functions as F

    et = group.event_time
    keys = list(group.join_keys) + [et]
    values = [c for c in value_cols if c not in keys]

    def hashed(frame: "DataFrame", prefix: str) -> list:
        cols = [F.col(quote_ident(v, "spark")) for v in values] or [F.lit(0)]
        return [F.xxhash64(*cols).alias(f"{prefix}h1"), F.hash(*cols).alias(f"{prefix}h2")]

    stored = (read_files_spark(spark, group, files)
              .where((F.col(et) >= F.lit(checks["min_et"])) & (F.col(et) <= F.lit(checks["max_et"])))
              .select(*[F.col(quote_ident(k, "spark")).alias(f"__s_{k}") for k in keys],
                      *hashed(df, "__s_")))
    batch = df.select("*", *hashed(df, "__b_"))
    cond = [F.col(quote_ident(k, "spark")) == F.col(quote_ident(f"__s_{k}", "spark"))
            for k in keys]
    cond += [F.col("__b_h1") == F.col("__s_h1"), F.col("__b_h2") == F.col("__s_h2")]
    return batch.join(stored, reduce(lambda a, b: a & b, cond), "left_anti").drop("__b_h1", "__b_h2")


# -- writers --------------------------------------------------------------------------------
def _engine(fs: "FeatureStore", spark: "SparkSession") -> str:
    from ..sparkutil import has_delta_jars

    choice = fs.config.offline.engine
    if choice == "delta-rs":
        return "delta-rs"
    jars = has_delta_jars(spark)
    if choice == "delta-spark" and not jars:
        raise ConfigError(
            "offline.engine is 'delta-spark' but this SparkSession cannot load the Delta jars "
            "(io.delta.tables.DeltaTable); start Spark with the delta-spark package, or set "
            "offline.engine to 'auto' or 'delta-rs'")
    return "delta-spark" if jars else "delta-rs"


def _write_delta_rs(fs: "FeatureStore", group: FeatureGroup, df: "DataFrame", run_id: str,
                    commit_time: dt.datetime, rows_hint: int) -> tuple[int, int | None]:
    """Executors write Parquet under the table; the driver commits them in one Delta commit."""
    from deltalake.transaction import AddAction, CommitProperties, RemoveAction, Transaction

    from .parquet_stats import delete_dir, list_parquet, parquet_add_stats

    uri = fs.offline.table_uri(group)
    subdir = f"ingest-{commit_time:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
    stage = f"{uri}/{subdir}"
    target_files = max(1, -(-rows_hint // 2_000_000))
    if df.rdd.getNumPartitions() > 4 * target_files:
        df = df.coalesce(max(target_files, 2))
    spark = df.sparkSession
    key = "spark.sql.parquet.outputTimestampType"
    previous = spark.conf.get(key, None)
    spark.conf.set(key, "TIMESTAMP_MICROS")
    try:
        df.write.mode("errorifexists").parquet(stage if "://" in stage else "file://" + stage)
    except Exception as exc:
        delete_dir(stage, fs.offline.storage_options)
        raise SparkfsError(f"writing the batch for feature group {group.name!r} failed; nothing "
                           f"was committed: {_first_line(exc)}") from exc
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)
    try:
        files = list_parquet(stage, fs.offline.storage_options)
        actions: list[AddAction | RemoveAction] = []
        written = 0
        for path, size, mtime in files:
            stats = parquet_add_stats(path, fs.offline.storage_options)
            if stats["numRecords"] == 0:
                continue
            written += stats["numRecords"]
            rel = f"{subdir}/{path.rsplit('/', 1)[-1]}"
            actions.append(AddAction(rel, size, {}, mtime, True, json.dumps(stats)))
        if not actions:
            delete_dir(stage, fs.offline.storage_options)
            return 0, None
        table = fs.offline.table(group)
        table.create_write_transaction(
            actions, mode="append", schema=history_schema(group),
            commit_properties=CommitProperties(
                app_transactions=[Transaction(app_id(run_id), 1)],
                custom_metadata={"sparkfs.operation": "ingest", "sparkfs.run_id": run_id,
                                 "sparkfs.rows": str(written)}))
    except Exception:
        delete_dir(stage, fs.offline.storage_options)
        raise
    table.update_incremental()
    return written, _version_of_run(table, run_id, table.version())


def _write_delta_spark(fs: "FeatureStore", group: FeatureGroup, df: "DataFrame",
                       run_id: str) -> tuple[int, int | None]:
    """Native Delta write by Spark (the session has the delta-spark jars): one commit,
    idempotent through ``txnAppId``/``txnVersion``."""
    df = df.cache()
    try:
        n = df.count()
        if n == 0:
            return 0, None
        (df.write.format("delta").mode("append")
           .option("txnAppId", app_id(run_id)).option("txnVersion", 1)
           .option("userMetadata", json.dumps({"sparkfs.run_id": run_id}))
           .save(fs.offline.table_uri(group)))
    finally:
        df.unpersist()
    table = fs.offline.table(group)
    return n, _version_of_run(table, run_id, table.version())


def _version_of_run(table: Any, run_id: str, default: int) -> int:
    """The Delta version whose commit carries ``run_id`` (searching recent history)."""
    for h in table.history(100):
        found = h.get("sparkfs.run_id")
        if found is None and isinstance(h.get("userMetadata"), str):
            try:
                found = json.loads(h["userMetadata"]).get("sparkfs.run_id")
            except (ValueError, AttributeError):
                found = None
        if found == run_id and "version" in h:
            return int(h["version"])
    return default


# -- small helpers --------------------------------------------------------------------------
def _lit_ts(value: dt.datetime):
    from pyspark.sql import functions as F

    return F.lit(value).cast("timestamp")


def _lit_str(value: str):
    from pyspark.sql import functions as F

    return F.lit(value)


def _col(name: str):
    from pyspark.sql import functions as F

    return F.col(name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else type(exc).__name__
