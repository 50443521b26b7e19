"""A plain Parquet scan's count and event-time range read from its footers
(sparkfs.offline.footers), which the fused ingest takes instead of its range job: equal to
what Spark's read gives on files with nulls, all-null and empty row groups, several files
and units; None for every plan or file the footers cannot answer exactly; and an ingest
that takes them writes and skips what the Spark job's answer would have."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkfs import Entity, FeatureGroup, Field
from sparkfs.offline import footers, fused

UTC = dt.UTC


def times(n: int, seed: int, nulls: float = 0.2) -> list:
    rnd = random.Random(seed)
    base = dt.datetime(2013, 1, 1, tzinfo=UTC)
    return [None if rnd.random() < nulls else
            base + dt.timedelta(microseconds=rnd.randrange(10**12)) for _ in range(n)]


def write(path, ts: list, unit: str = "us", tz: str | None = "UTC", **options) -> None:
    t = pa.table({"key": pa.array([f"k{i}" for i in range(len(ts))]),
                  "ts": pa.array(ts, pa.timestamp(unit, tz=tz)),
                  "x": pa.array([float(i) for i in range(len(ts))])})
    pq.write_table(t, str(path), **options)


def spark_range(df) -> dict:
    from pyspark.sql import functions as F

    row = df.agg(F.count(F.lit(1)).alias("n"), F.unix_micros(F.min("ts")).alias("lo_us"),
                 F.unix_micros(F.max("ts")).alias("hi_us")).first()
    return row.asDict()


def test_the_footers_give_the_count_and_range_spark_reads(spark, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a.parquet", times(1000, 1), row_group_size=128)
    write(src / "b.parquet", [None] * 50 + times(300, 2, nulls=0.0), row_group_size=50)
    write(src / "c.parquet", [])
    ms = [None if t is None else t.replace(microsecond=t.microsecond // 1000 * 1000)
          for t in times(200, 3)]
    write(src / "d.parquet", ms, unit="ms")
    df = spark.read.parquet(f"file://{src}")
    got = footers.scan_range(df, "ts")
    assert got == spark_range(df) and got["n"] == 1550
    picked = df.select("x", "ts")
    assert footers.scan_range(picked, "ts") == got

    spark.range(0).selectExpr("cast(id as timestamp) as ts").write.parquet(
        f"file://{tmp_path}/empty")
    empty = spark.read.parquet(f"file://{tmp_path}/empty")
    assert footers.scan_range(empty, "ts") == spark_range(empty) == \
        {"n": 0, "lo_us": None, "hi_us": None}
    nulls = tmp_path / "nulls"
    nulls.mkdir()
    write(nulls / "a.parquet", [None, None])
    only_nulls = spark.read.parquet(f"file://{nulls}")
    assert footers.scan_range(only_nulls, "ts") == spark_range(only_nulls) == \
        {"n": 2, "lo_us": None, "hi_us": None}


def test_files_spark_wrote_are_answered(spark, tmp_path):
    from pyspark.sql import functions as F

    spark.range(5000).select(
        F.concat(F.lit("k"), (F.col("id") % 7).cast("string")).alias("key"),
        F.when(F.col("id") % 11 == 0, None).otherwise(
            (F.lit(1356998400) + F.col("id") * 37).cast("timestamp")).alias("ts")
    ).repartition(3).write.parquet(f"file://{tmp_path}/spark")
    df = spark.read.parquet(f"file://{tmp_path}/spark")
    assert footers.scan_range(df, "ts") == spark_range(df)


def test_plans_the_footers_cannot_answer(spark, tmp_path):
    from pyspark.sql import functions as F

    write(tmp_path / "a.parquet", times(100, 4))
    df = spark.read.parquet(f"file://{tmp_path}/a.parquet")
    assert footers.scan_range(df, "ts") is not None
    assert footers.scan_range(df.where(F.col("x") > 3), "ts") is None
    assert footers.scan_range(df.unionByName(df), "ts") is None
    assert footers.scan_range(
        df.withColumn("ts", F.col("ts") + F.expr("interval 1 second")), "ts") is None
    assert footers.scan_range(df.withColumnRenamed("x", "ts2"), "ts3") is None
    assert footers.scan_range(df.select(F.col("x").alias("ts")), "ts") is None
    assert footers.scan_range(spark.createDataFrame(df.toPandas()), "ts") is None
    write(tmp_path / "naive.parquet", [dt.datetime(2013, 1, 1)], tz=None)
    naive = spark.read.parquet(f"file://{tmp_path}/naive.parquet")
    assert footers.scan_range(naive, "ts") is None  # read as timestamp_ntz


@pytest.mark.parametrize("case", ["int96", "nanos", "naive", "no_statistics", "legacy",
                                  "before_1900", "remote", "not_parquet", "missing"])
def test_files_the_footers_cannot_answer(tmp_path, case):
    path = tmp_path / "a.parquet"
    ts = times(20, 5, nulls=0.1)
    if case == "int96":
        write(path, ts, use_deprecated_int96_timestamps=True)
    elif case == "nanos":
        write(path, ts, unit="ns")
    elif case == "naive":
        write(path, [None if t is None else t.replace(tzinfo=None) for t in ts], tz=None)
    elif case == "no_statistics":
        write(path, ts, write_statistics=False)
    elif case == "legacy":
        t = pa.table({"ts": pa.array(ts, pa.timestamp("us", tz="UTC"))})
        pq.write_table(t.replace_schema_metadata(
            {"org.apache.spark.legacyDateTime": ""}), str(path))
    elif case == "before_1900":
        write(path, [dt.datetime(1899, 12, 31, tzinfo=UTC), *ts])
    elif case == "not_parquet":
        path.write_text("not a Parquet file")
    elif case == "missing":
        pass
    else:  # a file the footers answer, named by a URI they do not read
        write(path, ts)
        assert footers.file_range([f"file://{path}"], "ts") is not None
        path = f"s3://bucket/{path.name}"
    assert footers.file_range([f"file://{path}" if case != "remote" else str(path)],
                              "ts") is None


@pytest.fixture
def group(fs):
    g = FeatureGroup(name="ft", entities=[Entity("thing", join_keys=["key"])], event_time="ts",
                     schema=[Field("x", "double")])
    fs.apply([g])
    return g


@pytest.fixture
def answers(monkeypatch):
    """What each fused plan's ``scan_range`` answered."""
    got: list = []
    real = fused.scan_range

    def spy(df, event_time):
        got.append(real(df, event_time))
        return got[-1]

    monkeypatch.setattr(fused, "scan_range", spy)
    return got


def test_an_ingest_from_footers_writes_and_skips_what_the_range_job_would(
        fs, group, spark, tmp_path, answers, monkeypatch):
    for name, seed in (("a", 6), ("b", 7)):
        d = tmp_path / name
        d.mkdir()
        write(d / "part.parquet", times(400, seed, nulls=0.0))
    both = tmp_path / "both"
    both.mkdir()
    for name in ("a", "b"):
        (both / f"{name}.parquet").write_bytes((tmp_path / name / "part.parquet").read_bytes())

    def src(name):
        return spark.read.parquet(f"file://{tmp_path}/{name}")

    def run(prefix: str) -> list:
        out = [fs.ingest("ft", src("a"), run_id=f"{prefix}1"),   # empty table: no range read
               fs.ingest("ft", src("a"), run_id=f"{prefix}2"),   # a replay
               fs.ingest("ft", src("both"), run_id=f"{prefix}3"),  # partly new
               fs.ingest("ft", src("b"), run_id=f"{prefix}4")]   # stored by the last one
        return [(r.rows_written, r.rows_skipped) for r in out]

    first = run("r")
    assert first == [(400, 0), (0, 400), (400, 400), (0, 400)]
    assert len(answers) == 3 and all(a is not None and a["n"] for a in answers)
    rows = fs.offline.read_arrow(group, columns=["key", "ts", "x"]).sort_by(
        [("ts", "ascending"), ("key", "ascending")])

    g2 = FeatureGroup(name="ft2", entities=group.entities, event_time="ts", schema=group.schema)
    fs.apply([g2])
    monkeypatch.setattr(fused, "scan_range", lambda df, event_time: None)

    def run2() -> list:
        out = [fs.ingest("ft2", src(n), run_id=f"s{i}")
               for i, n in enumerate(["a", "a", "both", "b"])]
        return [(r.rows_written, r.rows_skipped) for r in out]

    assert run2() == first
    assert fs.offline.read_arrow(g2, columns=["key", "ts", "x"]).sort_by(
        [("ts", "ascending"), ("key", "ascending")]).equals(rows)


def test_footers_that_disagree_with_the_pass_refuse_the_batch(fs, group, spark, tmp_path,
                                                               monkeypatch):
    """Fault injected: footers that give one row more than the files hold (as a file
    rewritten after they were read would). The pass counts the rows it reads: refused,
    nothing committed."""
    from sparkfs.errors import SparkfsError

    write(tmp_path / "a.parquet", times(30, 8, nulls=0.0))
    write(tmp_path / "b.parquet", times(30, 9, nulls=0.0))
    fs.ingest("ft", spark.read.parquet(f"file://{tmp_path}/a.parquet"), run_id="r1")
    version = fs.offline.current_version(group)
    real = fused.scan_range

    def off_by_one(df, event_time):
        got = real(df, event_time)
        return {**got, "n": got["n"] + 1}

    monkeypatch.setattr(fused, "scan_range", off_by_one)
    with pytest.raises(SparkfsError, match="gave the write pass other rows"):
        fs.ingest("ft", spark.read.parquet(f"file://{tmp_path}/b.parquet"), run_id="r2")
    assert fs.offline.current_version(group) == version


def test_a_file_spark_skips_is_left_to_spark(fs, group, spark, tmp_path, answers):
    """A corrupt file Spark is told to skip (``ignoreCorruptFiles``): its footer cannot be
    read, so the range job runs, and the ingest stores what Spark read."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a.parquet", times(30, 10, nulls=0.0))
    fs.ingest("ft", spark.read.parquet(f"file://{src}"), run_id="r1")
    write(src / "b.parquet", times(20, 11, nulls=0.0))
    (src / "c.parquet").write_text("not a Parquet file")
    df = spark.read.option("ignoreCorruptFiles", "true").parquet(f"file://{src}")
    again = fs.ingest("ft", df, run_id="r2")
    assert answers == [None]
    assert (again.rows_written, again.rows_skipped) == (20, 30)
