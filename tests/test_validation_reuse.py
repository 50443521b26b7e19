"""great-expectations objects reused per thread (``sparkfs.validation.run``): a thread builds
its context, data sources and dataframe assets once and validates every later batch with
them. Reuse must not change a verdict: the same batches give identical reports whether
validated one after another on one thread, each on a fresh thread, or concurrently on
several threads, on pandas and on Spark. A great-expectations metric that fails to compute
refuses the batch with a ``ValidationError`` naming the expectation, and nothing (no Delta
version, no report) is written."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from sparkfs import Entity, FeatureGroup, Field, ValidationError
from sparkfs.errors import NotFoundError
from sparkfs.validation import Expectations, expect, validate_batch
from sparkfs.validation import run as vrun

FLIGHT = Entity("flight", join_keys=["flight_id"])
SUITE = Expectations([
    expect("column_values_to_not_be_null", column="tailnum"),
    expect("column_values_to_be_between", column="distance", min_value=0),
    expect("column_values_to_be_in_set", column="origin", value_set=["EWR", "JFK", "LGA"]),
    expect("column_values_to_not_be_null", column="distance", mostly=0.5),
    expect("table_row_count_to_be_between", min_value=1),
    expect("column_max_to_be_between", column="distance", max_value=2600),
], name="reuse")


def group(suite: Expectations = SUITE, name: str = "facts") -> FeatureGroup:
    return FeatureGroup(
        name, [FLIGHT], "ts",
        [Field("tailnum", "string"), Field("origin", "string"), Field("distance", "double")],
        expectations=suite, validation="quarantine", online=False)


def batch(n: int, seed: int, bad: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    tail = np.array([f"N{i % 97:03d}" for i in ids], dtype=object)
    origin = rng.choice(["EWR", "JFK", "LGA"], n).astype(object)
    dist = rng.uniform(80, 2500, n)
    tail[rng.random(n) < bad] = None
    dist[rng.random(n) < bad] *= -1
    origin[rng.random(n) < bad] = "BOS"
    return pd.DataFrame({
        "flight_id": [f"f{seed}-{i}" for i in ids],
        "ts": pd.Timestamp("2013-01-01", tz="UTC") + pd.to_timedelta(ids, unit="min"),
        "tailnum": tail, "origin": origin, "distance": dist,
    })


BATCHES = [(120, 1, 0.0), (200, 2, 0.1), (50, 3, 0.0), (300, 4, 0.3), (120, 1, 0.0)]


def verdicts(outcome) -> list[dict]:
    r = outcome.report
    return [{"rows": r.rows_input, "quarantined": r.rows_quarantined, "status": r.status},
            *[{k: x[k] for k in ("label", "success", "unexpected_count", "observed_value")}
              for x in r.results]]


def on_fresh_thread(fn):
    """``fn()`` on a new thread (so with new great-expectations objects)."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_reuse_gives_identical_results_across_batches_and_threads(fs_nospark):
    import great_expectations as gx

    g = group()
    fs_nospark.apply([g])
    frames = [batch(*b) for b in BATCHES]

    def validate(pdf):
        return verdicts(validate_batch(fs_nospark.catalog, g, pdf.copy(), "r"))

    fresh = [on_fresh_thread(lambda pdf=pdf: validate(pdf)) for pdf in frames]
    state = on_fresh_thread(lambda: [validate(frames[0]), vrun._gx_state(gx)])[1]
    reused = on_fresh_thread(lambda: [validate(pdf) for pdf in frames]
                             + [vrun._gx_state(gx).batch_definitions])
    assert reused[:-1] == fresh
    assert list(reused[-1]) == [("pandas", g.table_name)]  # one asset, built once
    # the first and last batches are the same rows: same verdicts, though validated in between
    assert fresh[0] == fresh[-1] and fresh[1] != fresh[0]
    assert any(not r["success"] for r in fresh[3][1:]) and fresh[3][0]["quarantined"] > 0

    with ThreadPoolExecutor(3) as pool:
        concurrent = list(pool.map(validate, frames * 3))
        states = set(pool.map(lambda _: id(vrun._gx_state(gx)), range(6)))
    assert concurrent == fresh * 3
    assert 1 <= len(states) <= 3 and id(state) not in states  # per thread, never shared


def test_reuse_on_spark_matches_pandas(fs, spark):
    g = group()
    fs.apply([g])
    frames = [batch(*b) for b in BATCHES[:4]]
    on_spark = [verdicts(validate_batch(fs.catalog, g, spark.createDataFrame(pdf), "s"))
                for pdf in frames]
    on_pandas = [verdicts(validate_batch(fs.catalog, g, pdf.copy(), "p")) for pdf in frames]
    assert on_spark == on_pandas
    assert on_fresh_thread(
        lambda: verdicts(validate_batch(fs.catalog, g, spark.createDataFrame(frames[1]), "t"))
    ) == on_spark[1]


# the metric of this expectation cannot be computed on a string column (str < int in
# pandas, an invalid cast under Spark's ANSI mode): great-expectations catches the error
# and reports it inside the result's exception info, keyed by metric
BROKEN = Expectations([
    expect("column_values_to_not_be_null", column="tailnum"),
    expect("column_values_to_be_between", column="tailnum", min_value=0),
], name="broken")
LABEL = "expect_column_values_to_be_between(tailnum)"


def test_metric_failure_is_refused_naming_the_expectation_pandas(fs_nospark):
    g = group(BROKEN, name="broken")
    fs_nospark.apply([g])
    with pytest.raises(ValidationError) as err:
        validate_batch(fs_nospark.catalog, g, batch(30, 5, 0.0), "r")
    msg = str(err.value)
    assert LABEL in msg and "could not evaluate" in msg and "nothing was written" in msg
    with pytest.raises(NotFoundError, match="no validation report"):
        fs_nospark.validation_report("broken")


def test_metric_failure_is_refused_naming_the_expectation_spark(fs, spark):
    g = group(BROKEN, name="broken")
    fs.apply([g])
    before = fs.offline.current_version(g)
    with pytest.raises(ValidationError) as err:
        fs.ingest("broken", spark.createDataFrame(batch(30, 5, 0.0)), run_id="r1")
    msg = str(err.value)
    assert LABEL in msg and "could not evaluate" in msg and "nothing was written" in msg
    assert fs.offline.current_version(g) == before
    assert len(fs.read_history("broken").to_arrow()) == 0
    with pytest.raises(NotFoundError, match="no validation report"):
        fs.validation_report("broken")
