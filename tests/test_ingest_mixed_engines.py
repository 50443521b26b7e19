"""delta-rs and delta-spark ingests of the same rows racing on one table: the rows are
stored once, whichever engine commits first.

The race is made deterministic by injecting the other engine's commit at the worst
moment: a delta-spark MERGE of the same rows (another run id) lands after the delta-rs
writer chose the version to commit on and before it opens the table to commit. The
delta-rs commit must then fail on that version and the retry must dedupe against the
MERGE's files. The other order (a delta-rs commit landing inside a MERGE) is Delta's own
conflict check: it applies because delta-rs commits are marked as not blind appends."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys

import pandas as pd
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, Field

pytestmark = pytest.mark.delta_spark
T0 = dt.datetime(2013, 1, 1, tzinfo=dt.UTC)


def rows(n: int = 200) -> pd.DataFrame:
    return pd.DataFrame({"origin": [f"K{i % 20}" for i in range(n)],
                         "time_hour": [T0 + dt.timedelta(hours=i // 20) for i in range(n)],
                         "temp": [float(i) if i % 7 else None for i in range(n)]})


@pytest.fixture
def stores(spark, tmp_path):
    from conftest import NO_DELTA_JARS, delta_jars_fetched

    from sparkfs.sparkutil import has_delta_jars

    if not delta_jars_fetched() or not has_delta_jars(spark):
        pytest.skip(NO_DELTA_JARS)
    airport = Entity("airport", ["origin"])
    g = FeatureGroup("weather", [airport], "time_hour", [Field("temp", "double")])
    made = {engine: FeatureStore({"project": "t", "data_dir": str(tmp_path / "data"),
                                  "offline": {"engine": engine},
                                  "ingest": {"statistics": False}}, spark=spark)
            for engine in ("delta-rs", "delta-spark")}
    made["delta-rs"].apply([airport, g])
    yield made, g
    for s in made.values():
        s.close()


def test_a_merge_landing_just_before_a_delta_rs_commit_is_deduped_against(stores, monkeypatch):
    made, g = stores
    rs, sp = made["delta-rs"], made["delta-spark"]
    opened = rs.offline.table
    fired = []

    def table(group, version=None, as_of=None):
        # the delta-rs writer opens the table to commit: the MERGE lands first
        if not fired and sys._getframe(1).f_code.co_name == "attempt":
            fired.append(sp.ingest("weather", rows(), run_id="spark-run"))
        return opened(group, version, as_of)

    monkeypatch.setattr(rs.offline, "table", table)
    out = rs.ingest("weather", rows(), run_id="rs-run")
    assert fired, "the injected MERGE did not run"
    merged = fired[0]
    assert (merged.engine, merged.rows_written, merged.delta_version) == ("delta-spark", 200, 1)
    assert out.engine == "delta-rs" and out.rows_written == 0, out
    hist = rs.offline.read_arrow(g).to_pandas()
    assert len(hist) == 200 and not hist.duplicated(["origin", "time_hour"]).any()
    assert rs.offline.current_version(g) == 1
    stray = [d for d in os.listdir(rs.offline.table_uri(g)) if d.startswith("ingest-")]
    assert stray == []  # the loser's staged files are gone


def test_delta_rs_commits_are_not_blind_appends_so_a_merge_checks_them(stores):
    made, g = stores
    rs, sp = made["delta-rs"], made["delta-spark"]
    assert rs.ingest("weather", rows(), run_id="a").rows_written == 200
    log = os.path.join(rs.offline.table_uri(g), "_delta_log", f"{1:020d}.json")
    with open(log) as f:
        info = next(json.loads(line)["commitInfo"] for line in f if '"commitInfo"' in line)
    assert info["isBlindAppend"] is False
    # and the MERGE reading after it finds every row stored
    again = sp.ingest("weather", rows(), run_id="b")
    assert (again.rows_written, len(rs.offline.read_arrow(g))) == (0, 200)
