"""One conformance suite for every online store backend, for sparkfs's tests and yours.

Subclass ``OnlineConformance`` in a test module and provide the ``online_config`` fixture
(the ``online`` config section for the backend); pytest then runs every ``test_*`` method
against it. Every test runs on real storage: a SQLite file, happybase over TCP to the
HBase emulator, a real HBase Thrift server, or your own deployment. Each test applies its
groups into a fresh data directory and drops their online tables afterwards, so give a
shared server a ``table_prefix`` of its own.

``expired_status`` is what a value past its ttl reads as: ``expired`` where the store
keeps it (SQLite), ``missing`` where the store removes it itself (HBase's column-family
TTL). The helpers ``rows``, ``weather_group``, ``ALL_DTYPES`` and ``same_value`` build
history rows and compare values exactly (NaN equals NaN, ``1`` is not ``1.0``).

>>> class TestMyHBase(OnlineConformance):
...     expired_status = "missing"
...
...     @pytest.fixture
...     def online_config(self):
...         return {"type": "hbase", "host": "hbase.internal", "port": 9090,
...                 "table_prefix": "conformance"}
>>> "test_newest_event_wins_whatever_the_write_order" in dir(TestMyHBase)
True
>>> same_value(float("nan"), float("nan")), same_value(1, 1.0)
(True, False)
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pyarrow as pa
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, Field
from sparkfs.errors import NotFoundError, ValidationError
from sparkfs.offline.tables import history_schema
from sparkfs.serving.online import get_online_features

UTC = dt.UTC
T0 = dt.datetime(2013, 1, 1, tzinfo=UTC)

airport = Entity("airport", join_keys=["origin"])
flight = Entity("flight", join_keys=["year", "code"], dtypes={"year": "int"})

ALL_DTYPES = FeatureGroup(
    "kitchen_sink", [flight], "ts",
    [Field("b", "boolean"), Field("i", "int"), Field("l", "long"), Field("f", "float"),
     Field("d", "double"), Field("s", "string"), Field("t", "timestamp"), Field("dt", "date"),
     Field("af", "array<float>"), Field("ad", "array<double>")])


def weather_group(name: str = "weather", ttl=None) -> FeatureGroup:
    """A small group keyed by ``origin`` with two double features (``temp``, ``wind_speed``)."""
    return FeatureGroup(name, [airport], "time_hour",
                        [Field("temp", "double"), Field("wind_speed", "double")], ttl=ttl)


def rows(group: FeatureGroup, data: list[dict], commit: dt.datetime | None = None) -> pa.Table:
    """An Arrow table in the group's history layout (system columns filled)."""
    schema = history_schema(group)
    cols: dict[str, list[Any]] = {}
    for f in schema:
        if f.name == "_commit_time":
            cols[f.name] = [commit or dt.datetime.now(UTC)] * len(data)
        elif f.name == "_run_id":
            cols[f.name] = ["test"] * len(data)
        else:
            cols[f.name] = [r.get(f.name) for r in data]
    return pa.table(cols, schema=schema)


def same_value(a, b) -> bool:
    """Exact equality for online values: NaN equals NaN, lists element-wise, same type."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b)


class OnlineConformance:
    """The behaviour every backend must show. ``expired_status`` is what a value past
    its ttl reads as: SQLite reports ``expired``; HBase drops such cells itself."""

    expired_status = "expired"

    @pytest.fixture
    def online_config(self):  # pragma: no cover - subclasses provide it
        """The ``online`` config section of the store under test (subclasses override)."""
        raise NotImplementedError(f"{type(self).__name__} must define an online_config fixture")

    @pytest.fixture
    def fs(self, tmp_path, online_config):
        store = FeatureStore({"project": "test", "data_dir": str(tmp_path / "data"),
                              "online": online_config})
        yield store
        for g in store.list_feature_groups():
            store.online.drop(g)
        store.close()

    def test_every_dtype_round_trips_exactly(self, fs):
        g = ALL_DTYPES
        fs.apply([g])
        f32 = pa.array([0.1, 3.4e38, -1e-7], pa.float32()).to_pylist()
        tz_ts = dt.datetime(2013, 6, 1, 12, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
        data = [
            {"year": 2013, "code": "AA-1\x00x", "ts": T0, "b": True, "i": -2 ** 31, "l": 2 ** 63 - 1,
             "f": f32[0], "d": float("nan"), "s": "Zürich ✈", "t": tz_ts,
             "dt": dt.date(2013, 2, 28), "af": [f32[1], None, float("nan")], "ad": [1e-300, -0.0]},
            {"year": -5, "code": "", "ts": T0, "b": False, "i": 0, "l": -2 ** 63, "f": f32[2],
             "d": None, "s": "", "t": dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
             "dt": dt.date(1900, 1, 1), "af": [], "ad": None},
            {"year": 2014, "code": "nulls", "ts": T0},
        ]
        fs.online.write_batch(g, rows(g, data))
        feats = [f.name for f in g.features]
        got = fs.online.read(g, [(2013, "AA-1\x00x"), (-5, ""), (2014, "nulls"), (1, "x")], feats)
        assert got[3] is None
        expected = rows(g, data).to_pylist()
        for row, want in zip(got[:3], expected):
            assert row.event_time_us == 1356998400000000
            for name, value in zip(feats, row.values):
                assert same_value(value, want[name]), (name, value, want[name])
        t = got[0].values[feats.index("t")]
        assert t.utcoffset() == dt.timedelta(0) and t == tz_ts

    def test_newest_event_wins_whatever_the_write_order(self, fs):
        g = weather_group()
        fs.apply([g])
        new = rows(g, [{"origin": "JFK", "time_hour": T0 + dt.timedelta(hours=5), "temp": 39.0}])
        old = rows(g, [{"origin": "JFK", "time_hour": T0 + dt.timedelta(hours=4), "temp": 35.1}])
        fs.online.write_batch(g, new)
        fs.online.write_batch(g, old)   # a late, older event
        fs.online.write_batch(g, new)   # a replay
        [row] = fs.online.read(g, [("JFK",)], ["temp"])
        assert row.values == (39.0,)
        assert row.event_time_us == 1357016400000000

    def test_equal_event_time_later_commit_wins(self, fs):
        g = weather_group()
        fs.apply([g])
        when = T0 + dt.timedelta(hours=1)
        first = rows(g, [{"origin": "JFK", "time_hour": when, "temp": 1.0}], commit=T0 + dt.timedelta(days=1))
        fix = rows(g, [{"origin": "JFK", "time_hour": when, "temp": 2.0}], commit=T0 + dt.timedelta(days=2))
        fs.online.write_batch(g, first)
        fs.online.write_batch(g, fix)
        assert fs.online.read(g, [("JFK",)], ["temp"])[0].values == (2.0,)

    def test_missing_keys_align_with_the_request(self, fs):
        g = weather_group()
        fs.apply([g])
        keys = [f"K{i:03d}" for i in range(600)]
        fs.online.write_batch(g, rows(g, [{"origin": k, "time_hour": T0, "temp": float(i)}
                                          for i, k in enumerate(keys) if i % 3]))
        asked = [("nope",)] + [(k,) for k in reversed(keys)]
        got = fs.online.read(g, asked, ["wind_speed", "temp"])
        assert got[0] is None
        for (k,), row in zip(asked[1:], got[1:]):
            i = int(k[1:])
            assert (row is None) == (i % 3 == 0)
            if row is not None:
                assert row.values == (None, float(i))

    def test_unmaterialized_group_reads_as_missing(self, fs):
        g = weather_group("never_written")
        fs.apply([g])
        resp = fs.get_online_features(["never_written:temp"], [{"origin": "JFK"}])
        assert resp.to_dict() == {"origin": ["JFK"], "temp": [None]}
        assert resp.statuses["temp"] == ["missing"]

    def test_watermarks_and_drop(self, fs):
        g = weather_group()
        fs.apply([g])
        assert fs.online.get_watermark(g) is None
        fs.online.set_watermark(g, 3)
        fs.online.set_watermark(g, 4)
        assert fs.online.get_watermark(g) == 4
        fs.online.write_batch(g, rows(g, [{"origin": "JFK", "time_hour": T0, "temp": 1.0}]))
        fs.online.drop(g)
        assert fs.online.get_watermark(g) is None
        assert fs.online.read(g, [("JFK",)], ["temp"]) == [None]

    def test_refuses_rows_with_null_keys_whole(self, fs):
        g = weather_group()
        fs.apply([g])
        bad = rows(g, [{"origin": "JFK", "time_hour": T0, "temp": 1.0},
                       {"origin": None, "time_hour": T0, "temp": 2.0}])
        with pytest.raises(ValidationError, match="weather.*1 rows have a null 'origin'"):
            fs.online.write_batch(g, bad)
        assert fs.online.read(g, [("JFK",)], ["temp"]) == [None]

    def test_get_online_features_several_groups_and_statuses(self, fs):
        now = dt.datetime.now(UTC)
        weather = weather_group(ttl="2d")
        planes = FeatureGroup("planes", [Entity("plane", ["tailnum"])], "registered_at",
                              [Field("seats", "int")])
        fs.apply([weather, planes])
        fs.online.write_batch(weather, rows(weather, [
            {"origin": "JFK", "time_hour": now - dt.timedelta(hours=1), "temp": 40.5},
            {"origin": "EWR", "time_hour": now - dt.timedelta(days=3), "temp": 10.0}]))
        fs.online.write_batch(planes, rows(planes, [
            {"tailnum": "N1", "registered_at": T0, "seats": 150}]))
        resp = fs.get_online_features(
            ["weather:temp", "planes:seats"],
            [{"origin": "JFK", "tailnum": "N1"}, {"origin": "EWR", "tailnum": "N2"},
             {"origin": "LGA", "tailnum": "N1"}],
            full_feature_names=True)
        assert resp.to_dict() == {"origin": ["JFK", "EWR", "LGA"], "tailnum": ["N1", "N2", "N1"],
                                  "weather__temp": [40.5, None, None],
                                  "planes__seats": [150, None, 150]}
        assert resp.statuses["weather__temp"] == ["present", self.expired_status, "missing"]
        assert resp.statuses["planes__seats"] == ["present", "missing", "present"]
        assert resp.event_times["planes__seats"][0] == T0

    def test_ttl_is_judged_at_read_time(self, fs):
        g = weather_group(ttl="2d")
        fs.apply([g])
        now = dt.datetime.now(UTC)
        fs.online.write_batch(g, rows(g, [{"origin": "JFK", "time_hour": now - dt.timedelta(hours=47),
                                           "temp": 1.0}]))
        fresh = get_online_features(fs.catalog, fs.online, ["weather:temp"],
                                    [{"origin": "JFK"}], now=now)
        later = get_online_features(fs.catalog, fs.online, ["weather:temp"],
                                    [{"origin": "JFK"}], now=now + dt.timedelta(hours=2))
        assert fresh.to_dict(include_status=True)["temp__status"] == ["present"]
        assert later.to_dict(include_status=True) == {
            "origin": ["JFK"], "temp": [None], "temp__status": ["expired"]}

    def test_unknown_names_are_clear_errors(self, fs):
        g = weather_group()
        fs.apply([g])
        with pytest.raises(NotFoundError, match="'nosuch' is not registered"):
            fs.get_online_features(["nosuch:temp"], [{"origin": "JFK"}])
        with pytest.raises(NotFoundError, match="has no feature 'tmp'.*temp"):
            fs.get_online_features(["weather:tmp"], [{"origin": "JFK"}])
