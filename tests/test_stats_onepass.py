"""One-pass statistics (sparkfs.monitoring.sketches) against exact values from pandas.

Random batches with nulls, NaNs, +-inf, empty partitions and single rows, split into
partials in random places and merged in random order: counts, nulls, NaNs, min, max,
mean and stddev must equal pandas' (to float tolerance); quantiles must lie within the
documented KLL rank error; distinct counts within the documented HLL error; histogram
counts must add up and match exact bin counts within the documented rank error.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkfs.monitoring.sketches import (
    DISTINCT_RELATIVE_ERROR,
    HISTOGRAM_RANK_ERROR,
    KLL_K,
    QUANTILE_RANK_ERROR,
    Partial,
)

SPECS = [("x", "double"), ("n", "long"), ("s", "string"), ("b", "boolean"), ("t", "timestamp")]


def make_table(rng: np.random.Generator, rows: int, special: bool = True) -> pa.Table:
    """``rows`` random rows; with ``special``, nulls, NaNs and +-inf mixed into x."""
    x = rng.normal(10.0, 3.0, rows)
    x_mask = np.zeros(rows, bool)
    if special and rows:
        picks = rng.integers(0, 10, rows)
        x = np.where(picks == 0, np.nan, x)
        x = np.where(picks == 1, np.inf, x)
        x = np.where(picks == 2, -np.inf, x)
        x_mask = picks == 3
    n = rng.integers(-1000, 1000, rows)
    n_mask = rng.random(rows) < 0.1
    s = rng.choice(["a", "b", "c", "dd"], rows)
    b = rng.random(rows) < 0.3
    t = (1_356_998_400_000_000 + rng.integers(0, 10**9, rows)).astype("datetime64[us]")
    return pa.table({
        "x": pa.array(x, pa.float64(), mask=x_mask),
        "n": pa.array(n, pa.int64(), mask=n_mask),
        "s": pa.array(s, pa.string(), mask=rng.random(rows) < 0.05),
        "b": pa.array(b, pa.bool_()),
        "t": pa.array(t, pa.timestamp("us", tz="UTC"), mask=rng.random(rows) < 0.05),
    })


def partial_of(table: pa.Table, cuts: list[int], order: list[int] | None = None) -> Partial:
    """Partials of ``table`` cut at ``cuts`` (empty pieces included), serialized and merged
    in ``order``."""
    bounds = [0, *sorted(min(c, table.num_rows) for c in cuts), table.num_rows]
    pieces = []
    for lo, hi in zip(bounds, bounds[1:]):
        p = Partial.empty(SPECS)
        p.update(table.slice(lo, hi - lo))
        pieces.append(Partial.from_bytes(p.to_bytes()))
    merged = Partial.empty(SPECS)
    for i in order if order is not None else range(len(pieces)):
        merged.merge(pieces[i])
    return merged


def rank_of(values: np.ndarray, v: float) -> tuple[float, float]:
    """The normalized rank interval of ``v`` among ``values``."""
    s = np.sort(values)
    return np.searchsorted(s, v, "left") / len(s), np.searchsorted(s, v, "right") / len(s)


def check_against_pandas(table: pa.Table, stats: dict, rows: int) -> None:
    pdf = table.to_pandas()
    assert rows == len(pdf)
    # numeric double with nulls, NaN, +-inf
    x = table.column("x").to_numpy(zero_copy_only=False)  # nulls as NaN
    null_x = table.column("x").null_count
    nan_x = int(np.isnan(x).sum()) - null_x
    vals = x[~np.isnan(x)]
    sx = stats["x"]
    assert (sx["count"], sx["nulls"], sx["nans"]) == (len(vals), null_x, nan_x)
    if len(vals):
        assert sx["min"] == vals.min() and sx["max"] == vals.max()
        mean, std = pd.Series(vals).mean(), pd.Series(vals).std()
        if math.isnan(mean):
            assert sx["mean"] is None
        else:
            assert sx["mean"] == pytest.approx(mean, rel=1e-9, abs=1e-9)
        if math.isnan(std):
            assert sx["stddev"] is None
        else:
            assert sx["stddev"] == pytest.approx(std, rel=1e-9, abs=1e-9)
        for name, q in sx["quantiles"].items():
            lo, hi = rank_of(vals, q)
            target = int(name[1:]) / 100
            eps = 0.0 if len(vals) <= KLL_K else QUANTILE_RANK_ERROR
            assert lo - eps - 1 / len(vals) <= target <= hi + eps + 1 / len(vals), (name, q)
        assert sum(sx["histogram"]["counts"]) == len(vals)
    else:
        assert sx["min"] is None and sx["mean"] is None and sx["distinct"] == 0
        assert all(v is None for v in sx["quantiles"].values())
    # numeric long with nulls
    n = pdf["n"].dropna().astype("int64")
    sn = stats["n"]
    assert (sn["count"], sn["nulls"], sn["nans"]) == (len(n), int(pdf["n"].isna().sum()), 0)
    if len(n):
        assert (sn["min"], sn["max"]) == (int(n.min()), int(n.max()))
        assert isinstance(sn["min"], int)
        assert sn["mean"] == pytest.approx(n.mean(), rel=1e-12)
        assert sn["stddev"] == (None if len(n) < 2 else pytest.approx(n.std(), rel=1e-9))
        exact = n.nunique()
        assert abs(sn["distinct"] - exact) <= max(1, DISTINCT_RELATIVE_ERROR * exact)
        edges, counts = sn["histogram"]["edges"], sn["histogram"]["counts"]
        assert sum(counts) == len(n) and len(edges) == len(counts) + 1
        # bin j holds edges[j] <= v < edges[j + 1]; the edge bins hold the tails
        bins = np.searchsorted(np.array(edges[1:-1]), n.to_numpy(), side="right")
        exact_counts = np.bincount(bins, minlength=len(counts))
        tol = 0 if len(n) <= KLL_K else 2 * HISTOGRAM_RANK_ERROR * len(n) + 1
        assert np.abs(np.array(counts) - exact_counts).max() <= tol
    # categorical: exact value counts (few values), min, max
    s = pdf["s"].dropna()
    ss = stats["s"]
    assert (ss["count"], ss["nulls"]) == (len(s), int(pdf["s"].isna().sum()))
    if len(s):
        assert ss["values"] == s.value_counts().to_dict()
        assert (ss["min"], ss["max"], ss["distinct"]) == (s.min(), s.max(), s.nunique())
    sb = stats["b"]
    if len(pdf):
        assert sb["values"] == {("true" if k else "false"): v
                                for k, v in pdf["b"].value_counts().to_dict().items()}
    # temporal: naive UTC ISO strings, like the Spark path stored them
    t = pdf["t"].dropna()
    st_ = stats["t"]
    assert (st_["count"], st_["nulls"]) == (len(t), int(pdf["t"].isna().sum()))
    if len(t):
        assert st_["min"] == t.min().tz_localize(None).isoformat()
        assert st_["max"] == t.max().tz_localize(None).isoformat()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(0, 3000), seed=st.integers(0, 2**32 - 1),
       cuts=st.lists(st.integers(0, 3000), max_size=6), special=st.booleans())
def test_merged_partials_match_pandas(rows, seed, cuts, special):
    table = make_table(np.random.default_rng(seed), rows, special)
    p = partial_of(table, cuts)
    check_against_pandas(table, p.finish(), p.rows)


def test_single_row_and_all_missing():
    one = pa.table({"x": [2.5], "n": pa.array([7], pa.int64()), "s": ["z"], "b": [True],
                    "t": pa.array([0], pa.timestamp("us", tz="UTC"))})
    p = partial_of(one, [0, 1, 1])  # two empty pieces around the row
    s = p.finish()
    assert s["x"]["count"] == 1 and s["x"]["mean"] == 2.5
    assert s["x"]["stddev"] is None  # one value: no sample deviation
    assert s["x"]["quantiles"]["p1"] == s["x"]["quantiles"]["p99"] == 2.5
    assert s["x"]["histogram"] == {"edges": [2.5, 3.5], "counts": [1], "clipped": False}
    assert s["t"]["min"] == "1970-01-01T00:00:00" and s["n"]["distinct"] == 1
    missing = pa.table({"x": pa.array([None, None], pa.float64()),
                        "n": pa.array([None, None], pa.int64()),
                        "s": pa.array([None, None], pa.string()), "b": [None, True],
                        "t": pa.array([None, None], pa.timestamp("us", tz="UTC"))})
    s = partial_of(missing, []).finish()
    assert (s["x"]["count"], s["x"]["nulls"], s["x"]["mean"], s["x"]["distinct"]) == (0, 2, None, 0)
    assert "histogram" not in s["x"] and "values" not in s["s"] and s["s"]["min"] is None
    assert s["b"]["values"] == {"true": 1}


def test_large_batch_within_documented_bounds():
    """Beyond the sketches' exact range: quantiles, histogram bins and the distinct count
    stay inside the documented error; moments stay exact."""
    rng = np.random.default_rng(7)
    table = make_table(rng, 60_000)
    p = partial_of(table, [5_000, 5_000, 20_000, 41_000], order=[3, 0, 4, 1, 2])
    check_against_pandas(table, p.finish(), p.rows)
    x = rng.lognormal(0, 2, 50_000)  # long tails: the histogram is clipped to p1..p99
    wide = Partial.empty([("v", "double")])
    wide.update(pa.table({"v": x}))
    h = wide.finish()["v"]["histogram"]
    assert h["clipped"] and sum(h["counts"]) == len(x)
    assert h["counts"][0] == pytest.approx((x < h["edges"][1]).sum(),
                                           abs=2 * HISTOGRAM_RANK_ERROR * len(x) + 1)
    d = Partial.empty([("v", "long")])
    d.update(pa.table({"v": rng.integers(0, 40_000, 100_000)}))
    got = d.finish()["v"]["distinct"]
    truth = 40_000 * (1 - math.exp(-100_000 / 40_000))  # expected distinct of the draws
    assert abs(got - truth) <= DISTINCT_RELATIVE_ERROR * truth + 0.01 * truth


def test_spark_partitions_match_arrow(spark):
    """The executors' partials (mapInArrow, empty partitions included) merge to the same
    statistics as one Arrow pass over the same rows."""
    from sparkfs.monitoring.sketches import spark_partial

    table = make_table(np.random.default_rng(3), 500)
    df = spark.createDataFrame(table).repartition(7).union(
        spark.createDataFrame(table.slice(0, 0)).repartition(3))
    got = spark_partial(df, SPECS)
    check_against_pandas(table, got.finish(), got.rows)
    one = Partial.empty(SPECS)
    one.update(table)
    want, have = one.finish(), got.finish()
    for name in ("n", "s", "b", "t"):
        moments = ("mean", "stddev")
        assert {k: v for k, v in have[name].items() if k not in moments} \
            == {k: v for k, v in want[name].items() if k not in moments}
        for k in moments:
            if want[name].get(k) is not None:
                assert have[name][k] == pytest.approx(want[name][k], rel=1e-12)
    assert have["x"]["count"] == want["x"]["count"] and have["x"]["nans"] == want["x"]["nans"]


def test_distinct_sketch_is_the_one_datasketches_builds_value_by_value():
    """A double feature's HLL sketch is the one datasketches builds from each distinct
    non-NaN value of each batch, in order (its bytes, HIP estimate included): NaN counted
    apart, -0.0 and 0.0 one value, +-inf values like others."""
    from datasketches import HLL_8, hll_sketch

    from sparkfs.monitoring.sketches import HLL_LG_K

    rng = np.random.default_rng(5)
    x = np.concatenate([np.round(rng.normal(size=20_000), 3), rng.random(20_000),
                        [-0.0, 0.0, np.nan, np.inf, -np.inf, 5e-324]])
    p = Partial.empty([("x", "double")])
    want = hll_sketch(HLL_LG_K, HLL_8)  # fed in the same order: HLL's HIP estimate keeps it
    for piece in np.array_split(x, 7):
        p.update(pa.table({"x": pa.array(piece, pa.float64())}))
        last = None
        for v in sorted(v for v in piece.tolist() if v == v):  # NaN is counted apart
            if v != last:
                want.update(v)
            last = v
    assert p.features["x"].hll.serialize_compact() == want.serialize_compact()
