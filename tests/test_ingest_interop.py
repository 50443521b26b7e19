"""delta-rs and delta-spark on one table: each engine reads and time-travels what the
other wrote, a table alternately appended by both stays consistent (run ids, dedupe and
corrections hold across engines), and the Spark-free paths (history via delta-rs, DuckDB
training sets, materialization) read delta-spark's commits."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, Field

pytestmark = pytest.mark.delta_spark
UTC = dt.UTC


def ts(h):
    return dt.datetime(2013, 1, 1, h, tzinfo=UTC)


def batch(rows):
    return pd.DataFrame(rows, columns=["origin", "time_hour", "temp", "gusts"])


@pytest.fixture
def stores(spark, tmp_path):
    from conftest import NO_DELTA_JARS, delta_jars_fetched

    from sparkfs.sparkutil import has_delta_jars

    if not delta_jars_fetched() or not has_delta_jars(spark):
        pytest.skip(NO_DELTA_JARS)
    airport = Entity("airport", ["origin"])
    g = FeatureGroup("weather", [airport], "time_hour",
                     [Field("temp", "double"), Field("gusts", "int")], online=True)
    made = {}
    for engine in ("delta-rs", "delta-spark"):
        made[engine] = FeatureStore({"project": "t", "data_dir": str(tmp_path / "data"),
                                     "offline": {"engine": engine}}, spark=spark)
    made["delta-rs"].apply([airport, g])
    yield made, g
    for s in made.values():
        s.close()


def test_alternating_engines_on_one_table(stores, spark):
    made, g = stores
    rs, sp = made["delta-rs"], made["delta-spark"]
    r1 = sp.ingest("weather", batch([("JFK", ts(1), 1.0, 1), ("LGA", ts(1), 2.0, None)]), run_id="a")
    assert (r1.engine, r1.delta_version, r1.rows_written) == ("delta-spark", 1, 2)
    r2 = rs.ingest("weather", batch([("JFK", ts(1), 1.0, 1),       # stored by delta-spark: skipped
                                     ("JFK", ts(2), 3.0, 3)]), run_id="b")
    assert (r2.engine, r2.delta_version, r2.rows_written, r2.rows_skipped) == ("delta-rs", 2, 1, 1)
    # run ids are shared: each engine sees the other's app transaction
    assert rs.ingest("weather", batch([("EWR", ts(1), 9.0, 9)]), run_id="a").noop
    assert sp.ingest("weather", batch([("EWR", ts(1), 9.0, 9)]), run_id="b").noop
    r3 = sp.ingest("weather", batch([("JFK", ts(2), 3.5, 3),       # correction
                                     ("LGA", ts(1), 2.0, None)]),  # identical incl. null: skipped
                   run_id="c")
    assert (r3.delta_version, r3.rows_written, r3.rows_skipped) == (3, 1, 1)
    replay = sp.ingest("weather", batch([("JFK", ts(1), 1.0, 1)]), run_id="d")
    assert replay.noop and replay.rows_written == 0
    assert rs.offline.current_version(g) == 3

    # protocol and types both engines agree on
    table = rs.offline.table(g)
    proto = table.protocol()
    assert (proto.min_reader_version, proto.min_writer_version) == (1, 2)
    assert not proto.writer_features and not proto.reader_features
    spark_schema = {f.name: f.dataType.simpleString()
                    for f in spark.read.format("delta").load(rs.offline.table_uri(g)).schema}
    assert spark_schema["time_hour"] == "timestamp" and spark_schema["_commit_time"] == "timestamp"

    # every version, read by delta-rs and by Spark's Delta reader, is the same rows
    want_counts = {0: 0, 1: 2, 2: 3, 3: 4}
    for version, n in want_counts.items():
        by_rs = rs.read_history("weather", version=version).to_pandas()
        by_spark = (spark.read.format("delta").option("versionAsOf", version)
                    .load(rs.offline.table_uri(g)).toPandas())
        assert len(by_rs) == len(by_spark) == n, version
        cols = ["origin", "time_hour", "temp", "gusts", "_run_id"]
        key = ["origin", "time_hour", "_run_id"]
        left = by_rs[cols].sort_values(key).reset_index(drop=True)
        right = by_spark[cols].sort_values(key).reset_index(drop=True)
        right["time_hour"] = pd.to_datetime(right["time_hour"]).dt.tz_localize("UTC") \
            if getattr(right["time_hour"].dt, "tz", None) is None else right["time_hour"]
        pd.testing.assert_frame_equal(left, right, check_dtype=False)
    hist = rs.read_history("weather").to_pandas()
    assert hist["gusts"].isna().sum() == 1  # the null stayed null through both writers
    assert sorted(hist["_run_id"]) == ["a", "a", "b", "c"]


def test_spark_free_paths_read_delta_spark_commits(stores):
    made, g = stores
    sp = made["delta-spark"]
    sp.ingest("weather", batch([("JFK", ts(1), 1.0, 1), ("JFK", ts(3), 2.0, 2),
                                ("LGA", ts(2), 5.0, None)]), run_id="a")
    spine = pd.DataFrame({"origin": ["JFK", "JFK", "LGA"], "t": [ts(2), ts(4), ts(2)]})
    got = sp.get_historical_features(spine, ["weather:temp", "weather:gusts"], timestamp_col="t",
                                     engine="duckdb").to_pandas().sort_values(["origin", "t"])
    assert got["temp"].tolist() == [1.0, 2.0, 5.0]
    assert got["gusts"].isna().tolist() == [False, False, True]
    from sparkfs.online.materialize import materialize

    res = materialize(sp.offline, sp.online, g, engine="local")
    assert res is not None
    online = sp.get_online_features(["weather:temp"], entity_rows=[{"origin": "JFK"},
                                                                    {"origin": "LGA"}]).to_dict()
    assert online["temp"] == [2.0, 5.0]


def _artifact(jar_name: str) -> str:
    """``delta-storage-4.4.0.jar`` -> ``delta-storage``."""
    import re

    return re.sub(r"-\d[\w.\-]*\.jar$", "", jar_name)


def test_delta_bundle_adds_only_jars_pyspark_lacks():
    import os

    import pyspark
    from conftest import NO_DELTA_JARS, delta_jars_fetched

    from sparkfs.jvm import jars
    from sparkfs.sparkutil import DELTA_SQL_CONF, delta_spark_conf

    if not delta_jars_fetched():
        pytest.skip(NO_DELTA_JARS)
    ours = [p.name for p in jars("delta")]
    shipped = {_artifact(n) for n in os.listdir(os.path.join(os.path.dirname(pyspark.__file__),
                                                              "jars"))}
    assert any(n.startswith("delta-spark_2.13-4.4.0") for n in ours), ours
    duplicates = [n for n in ours if _artifact(n) in shipped]
    assert not duplicates, f"jars pyspark already ships: {duplicates}"
    conf = delta_spark_conf({"spark.jars": "/opt/x.jar", "spark.sql.extensions": "a.B"})
    assert conf["spark.jars"].split(",")[0] == "/opt/x.jar"
    assert len(conf["spark.jars"].split(",")) == len(ours) + 1
    assert conf["spark.sql.extensions"] == "a.B," + DELTA_SQL_CONF["spark.sql.extensions"]
