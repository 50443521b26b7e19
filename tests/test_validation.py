"""Validation with great-expectations: strict refusal, quarantine accounting, Spark and
pandas agreement, stored reports. Real Spark, real Delta tables, real great-expectations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparkfs import Entity, FeatureGroup, Field, ValidationError
from sparkfs.errors import DefinitionError, NotFoundError
from sparkfs.validation import (
    FAILED_COLUMN,
    Expectations,
    as_suite,
    expect,
    read_quarantine,
    record_validation,
    validate_batch,
)

ROOT = Path(__file__).resolve().parents[1]
FLIGHT = Entity("flight", join_keys=["flight_id"])

SUITE = Expectations([
    expect("column_values_to_not_be_null", column="tailnum"),
    expect("column_values_to_be_between", column="distance", min_value=0),
    expect("column_values_to_be_in_set", column="origin", value_set=["EWR", "JFK", "LGA"]),
    expect("column_values_to_match_regex", column="tailnum", regex="^N"),
], name="facts")


def facts_group(policy: str, suite=SUITE, name: str = "facts") -> FeatureGroup:
    return FeatureGroup(
        name, [FLIGHT], "ts",
        [Field("tailnum", "string"), Field("origin", "string"), Field("distance", "double")],
        expectations=suite, validation=policy, online=False)


def batch(n: int, seed: int = 0, bad: float = 0.0, start: int = 0) -> pd.DataFrame:
    """n flights; with probability ``bad`` each of: null tailnum, negative distance,
    unknown origin, tail number not starting with N."""
    rng = np.random.default_rng(seed)
    ids = np.arange(start, start + n)
    tail = np.array([f"N{i % 97:03d}" for i in ids], dtype=object)
    origin = rng.choice(["EWR", "JFK", "LGA"], n).astype(object)
    dist = rng.uniform(80, 2500, n)
    if bad:
        tail[rng.random(n) < bad] = None
        dist[rng.random(n) < bad] *= -1
        origin[rng.random(n) < bad] = "BOS"
        wrong = rng.random(n) < bad
        tail[wrong & (tail != None)] = "X1"  # noqa: E711
    return pd.DataFrame({
        "flight_id": [f"f{i}" for i in ids],
        "ts": pd.Timestamp("2013-01-01", tz="UTC") + pd.to_timedelta(ids, unit="min"),
        "tailnum": tail, "origin": origin, "distance": dist,
    })


def expected_failures(pdf: pd.DataFrame) -> dict[str, list[str]]:
    """The failed expectation labels per flight id, computed here in plain Python."""
    out = {}
    for r in pdf.itertuples():
        f = []
        if r.tailnum is None:
            f.append("expect_column_values_to_not_be_null(tailnum)")
        if r.distance < 0:
            f.append("expect_column_values_to_be_between(distance)")
        if r.origin not in ("EWR", "JFK", "LGA"):
            f.append("expect_column_values_to_be_in_set(origin)")
        if r.tailnum is not None and not r.tailnum.startswith("N"):
            f.append("expect_column_values_to_match_regex(tailnum)")
        if f:
            out[r.flight_id] = f
    return out


# -- suites -------------------------------------------------------------------------------------
def test_suite_survives_registry_round_trip_and_json(fs_nospark, tmp_path):
    g = facts_group("quarantine")
    fs_nospark.apply([g])
    stored = fs_nospark.registry.get_group("facts")
    assert stored.validation == "quarantine"
    assert as_suite(stored.expectations) == SUITE
    path = tmp_path / "facts.json"
    SUITE.to_json(path)
    assert Expectations.from_json(path) == SUITE
    loaded = Expectations.from_json(ROOT / "conf" / "expectations" / "flight_facts.json")
    assert loaded.name == "flight_facts" and len(loaded) == 6


def test_gx_expectation_objects_are_accepted():
    import great_expectations as gx

    suite = Expectations([gx.expectations.ExpectColumnValuesToNotBeNull(column="tailnum"),
                          gx.expectations.ExpectColumnValuesToBeBetween(column="distance",
                                                                        min_value=0)])
    assert suite.to_spec()["expectations"] == [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "tailnum"}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "distance", "min_value": 0.0}}]


def test_malformed_suites_are_refused():
    with pytest.raises(DefinitionError, match="not a great-expectations expectation type"):
        Expectations([{"type": "no_such_thing", "kwargs": {}}])
    with pytest.raises(DefinitionError, match="does not exist"):
        Expectations.from_json(ROOT / "conf" / "expectations" / "nope.json")


# -- strict -------------------------------------------------------------------------------------
def test_strict_refusal_leaves_no_new_delta_version(fs, spark):
    g = facts_group("strict")
    fs.apply([g])
    good = fs.ingest("facts", spark.createDataFrame(batch(200, seed=1)), run_id="good")
    assert good.rows_written == 200 and good.delta_version == 1
    assert fs.validation_report("facts").status == "passed"

    bad = batch(300, seed=2, bad=0.05, start=1000)
    want = expected_failures(bad)
    with pytest.raises(ValidationError) as err:
        fs.ingest("facts", spark.createDataFrame(bad), run_id="bad")
    msg = str(err.value)
    n_null = sum(1 for f in want.values() if "expect_column_values_to_not_be_null(tailnum)" in f)
    assert "'facts'" in msg and "nothing was written" in msg
    assert f"expect_column_values_to_not_be_null(tailnum): {n_null} bad row(s)" in msg
    assert fs.offline.current_version(g) == 1
    assert len(fs.read_history("facts").to_arrow()) == 200
    report = fs.validation_report("facts")
    assert report.status == "refused" and report.run_id == "bad" and report.rows_input == 300
    assert {r["label"] for r in report.failed} == {label for f in want.values() for label in f}


def test_batch_level_expectation_refuses_even_under_quarantine(fs, spark):
    suite = Expectations([expect("table_row_count_to_be_between", min_value=1000),
                          expect("column_values_to_not_be_null", column="tailnum")])
    fs.apply([facts_group("quarantine", suite)])
    with pytest.raises(ValidationError, match="judge.*as a whole"):
        fs.ingest("facts", spark.createDataFrame(batch(50)), run_id="small")
    report = fs.validation_report("facts")
    assert report.status == "refused"
    assert report.failed[0]["observed_value"] == 50


def test_missing_column_is_named(fs, spark):
    suite = Expectations([expect("column_values_to_not_be_null", column="nope")])
    g = facts_group("strict", suite)
    fs.apply([g])
    with pytest.raises(ValidationError, match=r"\['nope'\]"):
        validate_batch(fs.catalog, g, spark.createDataFrame(batch(5)), "r")


# -- quarantine ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_quarantine_row_accounting_on_random_batches(fs, spark, seed):
    g = facts_group("quarantine")
    fs.apply([g])
    rng = np.random.default_rng(seed)
    first = batch(int(rng.integers(50, 400)), seed=seed, bad=float(rng.uniform(0, 0.2)))
    # the second batch repeats some rows of the first (dedup-skipped) and adds new ones
    second = pd.concat([first.iloc[: len(first) // 3],
                        batch(int(rng.integers(50, 400)), seed=seed + 100,
                              bad=float(rng.uniform(0, 0.2)), start=10_000)], ignore_index=True)
    quarantined: dict[str, list[str]] = {}
    for i, pdf in enumerate([first, second]):
        r = fs.ingest("facts", spark.createDataFrame(pdf), run_id=f"run{i}")
        want = expected_failures(pdf)
        assert r.rows_quarantined == len(want)
        assert r.rows_written + r.rows_quarantined + r.rows_skipped == len(pdf)
        quarantined.update({f"{k}|run{i}": v for k, v in want.items()})
    q = read_quarantine(fs.offline, g).to_pandas()
    got = {f"{fid}|{run}": list(f) for fid, run, f in
           zip(q["flight_id"], q["_run_id"], q[FAILED_COLUMN])}
    assert got == quarantined
    stored = set(fs.read_history("facts").to_pandas()["flight_id"])
    everything = set(first["flight_id"]) | set(second["flight_id"])
    bad_ids = set(expected_failures(first)) | set(expected_failures(second))
    assert stored == everything - bad_ids



@pytest.mark.parametrize("writer_engine", [pytest.param("delta-spark", marks=pytest.mark.delta_spark)],
                         indirect=True)
def test_quarantine_row_accounting_through_delta_spark(fs, spark, writer_engine):
    """The same accounting when Spark's own Delta writer commits the valid rows."""
    test_quarantine_row_accounting_on_random_batches(fs, spark, 3)
    assert fs.ingest("facts", spark.createDataFrame(batch(5, seed=1)), run_id="x").engine \
        == "delta-spark"

def test_quarantine_write_is_idempotent_per_run_id(fs, spark):
    g = facts_group("quarantine")
    fs.apply([g])
    pdf = batch(100, seed=7, bad=0.1)
    outcome = validate_batch(fs.catalog, g, spark.createDataFrame(pdf), "r1")
    n = outcome.report.rows_quarantined
    assert n == len(expected_failures(pdf)) > 0
    assert record_validation(fs.catalog, fs.offline, g, outcome, "r1", 1) == n
    assert record_validation(fs.catalog, fs.offline, g, outcome, "r1", 1) == n
    assert read_quarantine(fs.offline, g).num_rows == n


def test_all_rows_quarantined_writes_nothing(fs, spark):
    g = facts_group("quarantine")
    fs.apply([g])
    pdf = batch(20)
    pdf["origin"] = "BOS"
    r = fs.ingest("facts", spark.createDataFrame(pdf), run_id="allbad")
    assert (r.rows_written, r.rows_quarantined) == (0, 20)
    assert fs.offline.current_version(g) == 0
    assert fs.validation_report("facts").rows_quarantined == 20


# -- engines agree ------------------------------------------------------------------------------
def test_spark_and_pandas_inputs_agree(fs, spark):
    suite = Expectations([*SUITE.items,
                          expect("column_value_lengths_to_be_between", column="tailnum",
                                 min_value=4, max_value=4),
                          expect("column_values_to_be_unique", column="tailnum"),
                          expect("column_values_to_not_be_null", column="distance", mostly=0.5),
                          expect("table_row_count_to_be_between", min_value=1)])
    g = facts_group("quarantine", suite)
    fs.apply([g])
    pdf = batch(400, seed=11, bad=0.08)
    pdf.loc[pdf.index[:5], "distance"] = np.nan
    on_spark = validate_batch(fs.catalog, g, spark.createDataFrame(pdf), "s")
    on_pandas = validate_batch(fs.catalog, g, pdf.copy(), "p")
    assert (on_spark.report.engine, on_pandas.report.engine) == ("spark", "pandas")
    strip = [{k: r[k] for k in ("label", "success", "unexpected_count", "observed_value")}
             for r in on_spark.report.results]
    assert strip == [{k: r[k] for k in ("label", "success", "unexpected_count", "observed_value")}
                     for r in on_pandas.report.results]
    assert on_spark.report.rows_quarantined == on_pandas.report.rows_quarantined > 0
    s_bad = on_spark.invalid_df.toPandas()
    assert sorted(s_bad["flight_id"]) == sorted(on_pandas.invalid_df["flight_id"])
    assert (on_spark.valid_df.count() + len(s_bad)) == len(pdf) == \
        (len(on_pandas.valid_df) + len(on_pandas.invalid_df))
    by_id = dict(zip(on_pandas.invalid_df["flight_id"], on_pandas.invalid_df[FAILED_COLUMN]))
    assert all(list(f) == by_id[i] for i, f in zip(s_bad["flight_id"], s_bad[FAILED_COLUMN]))


# -- reports ------------------------------------------------------------------------------------
def test_reports_are_stored_and_shown_by_the_cli(fs, spark, store_config, tmp_path, capsys):
    import yaml

    from sparkfs.cli import main

    g = facts_group("quarantine")
    fs.apply([g])
    with pytest.raises(NotFoundError, match="no validation report"):
        fs.validation_report("facts")
    fs.ingest("facts", spark.createDataFrame(batch(60, seed=8, bad=0.1)), run_id="r1")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(store_config))
    assert main(["--config", str(cfg), "validation-report", "facts"]) == 0
    out = capsys.readouterr().out
    assert "QUARANTINED" in out and "expect_column_values_to_not_be_null(tailnum)" in out
    assert main(["--config", str(cfg), "validation-report", "facts", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run_id"] == "r1" and data["delta_version"] == 1
