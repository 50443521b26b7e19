"""Property-based fuzzing of ``POST /features`` field by field (hypothesis; the real app over
ASGI, a real registry and SQLite store, an on-demand transform with request data): entity
key values of every JSON type (unicode, lone surrogates, huge and non-finite numbers,
nested values), feature references (``name@version`` included), request-data columns and
whole body shapes. The service never answers 5xx; a refused request gets a 4xx whose
detail names the field, key or column at fault, and a valid one gets 200.

Complements ``test_serving_fuzz.py`` (schemathesis from the OpenAPI document), which
generates bodies from the schema and checks conformance rather than these oracles."""

from __future__ import annotations

import datetime as dt
import json
import tempfile

import orjson
import pandas as pd
import pyarrow as pa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkfs import Entity, FeatureGroup, FeatureStore, Field, transform
from sparkfs.serving.app import create_app

MAX_STRING = 64
RANGES = {"int": (-(2 ** 31), 2 ** 31 - 1), "long": (-(2 ** 63), 2 ** 63 - 1)}
#: join key -> dtype; no name is a substring of another, so a detail names exactly one
KEYS = {"origin": "string", "year": "int", "user_id": "long"}
FIELDS = ("features", "entity_rows", "entities", "request_data", "full_feature_names")
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


@transform(output="double", on_demand=True,
           inputs={"distance": "double", "sched_dep_ts": "timestamp"},
           features={"t": "weather:temp"})
def adjusted(distance: pd.Series, sched_dep_ts: pd.Series, t: pd.Series) -> pd.Series:
    return t + distance / 1000.0 + sched_dep_ts.dt.hour


def _app() -> tuple[TestClient, FeatureStore]:
    fs = FeatureStore({"data_dir": tempfile.mkdtemp(prefix="sparkfs-fuzz-fields-"),
                       "serving": {"max_batch_size": 20, "max_string_length": MAX_STRING,
                                   "max_json_depth": 8}})
    weather = FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
                           [Field("temp", "double")])
    trips = FeatureGroup("trips", [Entity("rider", ["year", "user_id"],
                                          dtypes={"year": "int", "user_id": "long"})],
                         "ts", [Field("n", "long")])
    fs.apply([weather, trips, adjusted])
    t = dt.datetime.now(dt.UTC)
    fs.online.write_batch(weather, pa.table({"origin": ["JFK"], "temp": [39.0],
                                             "time_hour": [t]}))
    fs.online.write_batch(trips, pa.table({"year": pa.array([2013], pa.int32()),
                                           "user_id": [7], "n": [3], "ts": [t]}))
    return TestClient(create_app(fs), raise_server_exceptions=False), fs


CLIENT, FS = _app()

# JSON-ish values, including what JSON cannot carry (NaN, Infinity, lone surrogates)
_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2 ** 70, 2 ** 70)
            | st.floats(allow_nan=True, allow_infinity=True)
            | st.text(max_size=80) | st.text(st.characters(codec="utf-8"), max_size=8)
            | st.sampled_from(["\ud800", "JFK", "", " ", "\x00", "٣", "1", "१२"]))
values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def _post(body: dict, ensure_ascii: bool = True):
    raw = json.dumps(body, allow_nan=True, ensure_ascii=ensure_ascii)
    data = raw.encode("utf-8", "surrogatepass")
    return CLIENT.post("/features", content=data,
                       headers={"content-type": "application/json"}), data


def _json_ok(data: bytes) -> bool:
    """Whether the body is JSON the service takes (RFC 8259: no NaN/Infinity, valid UTF-8)."""
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def _longest_string(v) -> int:
    if isinstance(v, str):
        return len(v)
    if isinstance(v, list):
        return max((_longest_string(x) for x in v), default=0)
    if isinstance(v, dict):
        return max([_longest_string(x) for x in v.values()] + [len(k) for k in v], default=0)
    return 0


def _key_ok(value, dtype: str) -> bool:
    if dtype == "string":
        return isinstance(value, str)
    lo, hi = RANGES[dtype]
    return type(value) is int and lo <= value <= hi


def _check(r, names: list[str]) -> str:
    """Never a 5xx; a 4xx has a short JSON detail naming one of ``names``."""
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        detail = r.json()["detail"]
        assert isinstance(detail, str) and len(detail) < 1000, detail
        assert any(n in detail for n in names), (names, detail)
        return detail
    return ""


def _key_values(dtype: str):
    """Mostly values of the right type (in and out of range, long texts), some of any type."""
    if dtype == "string":
        good = st.text(max_size=MAX_STRING + 8) | st.sampled_from(["JFK", "", "\ud800", "١"])
    else:
        lo, hi = RANGES[dtype]
        good = (st.integers(lo - 3, lo + 3) | st.integers(hi - 3, hi + 3) | st.integers(-9, 9)
                | st.integers())
    return st.one_of(good, good, values)


@SETTINGS
@given(origin=_key_values("string"), year=_key_values("int"), user_id=_key_values("long"),
       ascii_only=st.booleans())
def test_any_key_value_is_served_or_refused_naming_the_key(origin, year, user_id, ascii_only):
    row = {"origin": origin, "year": year, "user_id": user_id}
    r, data = _post({"features": ["weather:temp", "trips:n"], "entity_rows": [row]},
                    ascii_only)
    if not _json_ok(data):
        assert r.status_code == 422 and "JSON decode error" in r.json()["detail"], r.text
        return
    sent = json.loads(data)["entity_rows"][0]
    bad = [k for k, d in KEYS.items() if not _key_ok(sent[k], d)
           or _longest_string(sent[k]) > MAX_STRING]
    if not bad:
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["metadata"]["feature_names"] == ["origin", "year", "user_id", "temp", "n"]
        hit = (sent["origin"], sent["year"], sent["user_id"]) == ("JFK", 2013, 7)
        assert body["results"][3]["statuses"][0] == ("present" if sent["origin"] == "JFK"
                                                     else "missing")
        assert body["results"][4]["statuses"][0] == ("present" if hit else "missing") or \
            (sent["year"], sent["user_id"]) == (2013, 7)
        return
    assert r.status_code == 422, r.text
    _check(r, bad)


refs = st.one_of(
    st.text(max_size=40),
    st.text(st.sampled_from("weathr:@*0123456789٣ _-tmpn."), max_size=30),
    st.builds(lambda g, v, f: f"{g}@{v}:{f}", st.sampled_from(["weather", "trips", "adjusted", "x"]),
              st.one_of(st.integers(-5, 10 ** 30).map(str), st.text(max_size=6)),
              st.sampled_from(["temp", "n", "adjusted", "*", "", "nope"])),
    st.builds(lambda g, f: f"{g}:{f}", st.sampled_from(["weather", "trips", "adjusted", "Weather"]),
              st.sampled_from(["temp", "n", "adjusted", "*", "", "nope", "temp\x00"])),
)


@SETTINGS
@given(ref=refs)
def test_any_feature_reference_is_served_or_refused_naming_it(ref):
    rows = [{"origin": "JFK", "year": 2013, "user_id": 7}]
    r, data = _post({"features": [ref], "entity_rows": rows,
                     "request_data": {"distance": [100.0],
                                      "sched_dep_ts": ["2013-01-01T10:15:00Z"]}})
    if len(ref) > MAX_STRING:
        assert r.status_code == 422 and "max_string_length" in r.json()["detail"]
        return
    detail = _check(r, ["features", "feature", "transform", "reference", repr(ref)[1:17]])
    if r.status_code == 200:
        assert len(r.json()["metadata"]["feature_names"]) >= 2
    else:
        assert r.status_code in (404, 422), (r.status_code, detail)


_distance = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(),
                      st.none(), st.floats(), st.text(max_size=6), st.booleans(), values)
_times = st.one_of(
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda t: t.isoformat()),
    st.datetimes().map(lambda t: t.isoformat()),
    st.sampled_from(["2013-01-01T10:15:00Z", "2013-01-01", "garbage", "2013-13-45T99:00",
                     "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1e10", "", "NaT",
                     "2013-01-01T10:15:00+25:00", "now"]),
    st.none(), st.integers(), st.floats(), st.text(max_size=12), values)


@SETTINGS
@given(data=st.data(), n=st.integers(0, 3))
def test_any_request_data_is_computed_or_refused_naming_the_column(data, n):
    column = lambda elem: st.one_of(st.lists(elem, min_size=n, max_size=n),  # noqa: E731
                                    st.lists(elem, min_size=n, max_size=n), values)
    distance, ts = data.draw(column(_distance)), data.draw(column(_times))
    rows = [{"origin": "JFK"}] * n
    r, raw = _post({"features": ["weather:temp", "adjusted:adjusted"], "entity_rows": rows,
                    "request_data": {"distance": distance, "sched_dep_ts": ts}})
    if not _json_ok(raw):
        assert r.status_code == 422, r.text
        return
    _check(r, ["request_data", "distance", "sched_dep_ts"])
    if r.status_code == 200:
        assert len(r.json()["results"][-1]["values"]) == n


@SETTINGS
@given(field=st.sampled_from(FIELDS), value=values)
def test_any_field_of_any_shape_is_refused_naming_the_field(field, value):
    body = {"features": ["weather:temp"], "entity_rows": [{"origin": "JFK"}]}
    if field == "entities":
        body.pop("entity_rows")
    body[field] = value
    r, data = _post(body)
    if not _json_ok(data):
        assert r.status_code == 422, r.text
        return
    names = [field, "entity row", "join key", "feature", "request_data", "max_string_length",
             "max_json_depth", "max_batch_size", "exactly one of"]
    _check(r, names)


@SETTINGS
@given(body=values)
def test_any_body_is_never_a_5xx(body):
    r, data = _post(body if isinstance(body, dict) else {"features": body})
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        assert r.json()["detail"]


def test_timestamps_in_request_data_are_iso_text_never_a_guess():
    """Found by the fuzzer: 'now' read as the clock, '1/2/2013' as January 2nd, a number
    as nanoseconds since 1970."""
    for sent in ("now", "1/2/2013", "Jan 1 2013", 5, True):
        r, _ = _post({"features": ["adjusted:adjusted"], "entity_rows": [{"origin": "JFK"}],
                      "request_data": {"distance": [1.0], "sched_dep_ts": [sent]}})
        assert r.status_code == 422, r.text
        assert "'sched_dep_ts'" in r.json()["detail"] and "timestamp" in r.json()["detail"]
    r, _ = _post({"features": ["adjusted:adjusted"], "entity_rows": [{"origin": "JFK"}],
                  "request_data": {"distance": [True], "sched_dep_ts": ["2013-01-01T10:00Z"]}})
    assert r.status_code == 422 and "'distance'" in r.json()["detail"], r.text
    r, _ = _post({"features": ["adjusted:adjusted"], "entity_rows": [{"origin": "JFK"}],
                  "request_data": {"distance": [1000.0], "sched_dep_ts": ["2013-01-01 10:00Z"]}})
    assert r.status_code == 200 and r.json()["results"][-1]["values"] == [39.0 + 1.0 + 10], r.text
