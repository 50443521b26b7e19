"""``rebuild_online``: the online store rebuilt from Delta alone equals, value by value, the
one that incremental materialization built — also into a brand-new empty store."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, Field
from sparkfs.errors import DefinitionError

T0 = pd.Timestamp("2013-01-01", tz="UTC")


def _group():
    return FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
                        [Field("temp", "double"), Field("gusts", "long"), Field("sky", "string")],
                        ttl="36500d")


def _batches(seed: int = 7):
    rng = np.random.default_rng(seed)
    keys = [f"K{i:03d}" for i in range(60)]
    for b in range(4):  # out-of-order hours, corrections of earlier rows, missing values
        n = 150
        hours = rng.integers(0, 48, n)
        temp = rng.normal(10, 5, n).round(2)
        temp[rng.random(n) < 0.1] = np.nan
        frame = pd.DataFrame({
            "origin": rng.choice(keys, n),
            "time_hour": T0 + pd.to_timedelta(hours, unit="h"),
            "temp": temp,
            "gusts": pd.array(rng.integers(0, 40, n), dtype="Int64"),
            "sky": rng.choice(["clear", "rain", None], n),
        })
        frame.loc[rng.random(n) < 0.1, "gusts"] = pd.NA
        yield b, frame.drop_duplicates(["origin", "time_hour"])


def _snapshot(fs, keys):
    resp = fs.get_online_features(["weather:temp", "weather:gusts", "weather:sky"],
                                  [{"origin": k} for k in keys])
    d = resp.to_dict()
    return [(d["temp"][i], d["gusts"][i], d["sky"][i], resp.event_times["temp"][i])
            for i in range(len(keys))]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, float) and math.isnan(u):
                assert isinstance(v, float) and math.isnan(v), (x, y)
            else:
                assert u == v, (x, y)


@pytest.mark.parametrize("engine", ["local", "spark"])
def test_rebuild_into_an_empty_store_equals_incremental_materialization(fs, tmp_path, engine):
    g = _group()
    fs.apply([g])
    for b, frame in _batches():
        fs.ingest("weather", frame, run_id=f"w-{b}")
        fs.materialize("weather")  # incremental, one commit at a time
    keys = sorted({k for _, f in _batches() for k in f["origin"]}) + ["NOPE"]
    incremental = _snapshot(fs, keys)
    assert sum(v[3] is not None for v in incremental) == len(keys) - 1

    # a second store: same registry and Delta history, a brand-new empty online database
    other = FeatureStore({**fs.config.model_dump(mode="json"),
                          "online": {"type": "sqlite", "path": str(tmp_path / "new.db")}},
                         spark=fs.spark)
    try:
        assert all(v[3] is None for v in _snapshot(other, keys))
        result = other.rebuild_online("weather", engine=engine)
        assert result.from_delta_version is None
        assert result.to_delta_version == fs.offline.current_version(g)
        _same(_snapshot(other, keys), incremental)
    finally:
        other.close()


def test_rebuild_repairs_a_damaged_store_and_needs_an_online_group(fs):
    g = _group()
    fs.apply([g])
    for b, frame in _batches(seed=3):
        fs.ingest("weather", frame, run_id=f"w-{b}", materialize=True)
    keys = sorted({k for _, f in _batches(seed=3) for k in f["origin"]})
    good = _snapshot(fs, keys)
    fs.online.drop(g)  # damage: values and watermark gone
    assert all(v[3] is None for v in _snapshot(fs, keys))
    results = fs.rebuild_online(engine="local")  # every online group
    assert [r.group for r in results] == ["weather"]
    _same(_snapshot(fs, keys), good)
    offline_only = FeatureGroup("cold", [Entity("airport", ["origin"])], "time_hour",
                                [Field("temp", "double")], online=False)
    fs.apply([offline_only])
    with pytest.raises(DefinitionError, match="online=False"):
        fs.rebuild_online("cold")
