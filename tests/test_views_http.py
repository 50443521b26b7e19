"""``POST /features`` with ``{"view": "name@v", ...}``: the real app (ASGI, real registry
and SQLite store, auth on) answers a view exactly as ``fs.get_online_features(view=...)``
does; bad bodies and missing scopes get one readable line."""

from __future__ import annotations

import pytest
from deltalake import write_deltalake
from fastapi.testclient import TestClient

from sparkfs import FeatureStore, FeatureView
from sparkfs.serving.app import create_app
from sparkfs.serving.auth import new_key
from sparkfs.serving.encoding import encode_response
from sparkfs.testing.conformance import T0, rows, weather_group

KEYS = {name: new_key() for name in ("all", "view", "group", "other")}
SCOPES = {"all": ["features:read"], "view": ["features:read:view:w"],
          "group": ["features:read:weather"], "other": ["features:read:planes"]}


@pytest.fixture
def client(tmp_path):
    fs = FeatureStore({"data_dir": str(tmp_path / "data"), "serving": {"auth": {
        "enabled": True, "keys": [{"name": n, "sha256": KEYS[n][1], "scopes": SCOPES[n]}
                                  for n in KEYS]}}})
    g = weather_group()
    fs.apply([g, FeatureView("w", features=["weather:temp"], key_map={"origin": "airport"})])
    write_deltalake(fs.offline.table_uri(g), rows(g, [
        {"origin": "JFK", "time_hour": T0, "temp": 39.0},
        {"origin": "EWR", "time_hour": T0, "temp": float("nan")}]), mode="append")
    fs.materialize("weather", engine="local")
    with TestClient(create_app(fs)) as c:
        yield c, fs
    fs.close()


def _post(c, body, key="all"):
    return c.post("/features", json=body, headers={"authorization": f"Bearer {KEYS[key][0]}"})


def test_a_view_is_served_as_in_process(client):
    c, fs = client
    entities = [{"airport": "JFK"}, {"airport": "EWR"}, {"airport": "BOS"}]
    r = _post(c, {"view": "w@1", "entity_rows": entities})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["metadata"]["feature_names"] == ["airport", "temp"]
    assert out["results"][1]["values"] == [39.0, None, None]  # NaN and missing: null
    want = encode_response(fs.get_online_features(view="w@1", entity_rows=entities))
    assert out["results"] == want["results"]
    cols = _post(c, {"view": "w", "entities": {"airport": ["JFK"]}}).json()
    assert cols["results"][1]["values"] == [39.0]
    for key in ("view", "group"):  # the view's scope, or every group it reads
        assert _post(c, {"view": "w", "entity_rows": entities}, key).status_code == 200


@pytest.mark.parametrize("body,key,status,message", [
    ({"view": "nope", "entity_rows": [{"airport": "JFK"}]}, "all", 404,
     "feature view 'nope' is not registered"),
    ({"view": "w@3", "entity_rows": [{"airport": "JFK"}]}, "all", 404, "w"),
    ({"view": "w@x", "entity_rows": [{"airport": "JFK"}]}, "all", 422, "malformed"),
    ({"view": "w", "features": ["weather:temp"], "entity_rows": [{"airport": "JFK"}]}, "all",
     422, "give either features (a list of references) or view"),
    ({"entity_rows": [{"airport": "JFK"}]}, "all", 422, "or give view"),
    ({"view": None, "entity_rows": [{"airport": "JFK"}]}, "all", 422, "must not be null"),
    ({"view": "w", "entity_rows": [{"origin": "JFK"}]}, "all", 422,
     "no value for join key 'origin' (column 'airport')"),
    ({"view": "w", "entity_rows": [{"airport": "JFK"}]}, "other", 403,
     "lacks scope 'features:read:view:w'"),
])
def test_bad_view_requests(client, body, key, status, message):
    r = _post(client[0], body, key)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert "Traceback" not in r.text


def test_the_schema_documents_features_or_view(client):
    c, _ = client
    body = c.get("/openapi.json").json()["components"]["schemas"]["FeaturesRequest"]
    assert body["allOf"] == [{"oneOf": [{"required": ["features"]}, {"required": ["view"]}]}]
    assert body["oneOf"] == [{"required": ["entity_rows"]}, {"required": ["entities"]}]
    assert body["properties"]["view"]["type"] == "string"
