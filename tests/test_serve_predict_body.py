"""``POST /deployments/{name}/predict`` parses its JSON body once (``BodyGuard`` parses it
and leaves it in the scope; ``predict_body`` checks it without FastAPI and pydantic parsing
it again), answers exactly as ``fs.predict`` does, refuses every bad body with the same
status and words as when pydantic validated it, and its OpenAPI entry still documents the
body. In process (TestClient over the real app), real SQLite store, real MLflow registry
in a temp dir, no Spark."""

from __future__ import annotations

import datetime as dt
import json

import orjson
import pytest
from deployed_weather import deploy_weather_model
from fastapi.testclient import TestClient

from sparkfs import FeatureStore
from sparkfs.serving import middleware
from sparkfs.serving.app import create_app

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
OK = {"entity_rows": [{"origin": "JFK"}, {"origin": "LGA"}, {"origin": "EWR"}]}


@pytest.fixture(scope="module")
def fs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict_body")
    fs = FeatureStore({"project": "test", "data_dir": str(tmp / "data"),
                       "serving": {"max_batch_size": 10}})
    deploy_weather_model(fs, NOW)
    yield fs
    fs.close()


@pytest.fixture(scope="module")
def client(fs):
    with TestClient(create_app(fs), raise_server_exceptions=False) as c:
        yield c


def test_the_body_is_parsed_once_and_the_answer_is_fs_predicts(client, fs, monkeypatch):
    raw = orjson.dumps(OK)
    parses = []
    real_orjson, real_json = orjson.loads, json.loads

    def counting_orjson(b, *a, **k):
        if b == raw:
            parses.append("orjson")
        return real_orjson(b, *a, **k)

    def counting_json(s, *a, **k):
        if s in (raw, raw.decode()):
            parses.append("json")
        return real_json(s, *a, **k)

    monkeypatch.setattr(middleware, "orjson", type("O", (), {
        "loads": staticmethod(counting_orjson), "JSONDecodeError": orjson.JSONDecodeError}))
    monkeypatch.setattr(json, "loads", counting_json)  # what FastAPI's request.json() uses
    r = client.post("/deployments/d/predict", content=raw,
                    headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert parses == ["orjson"]  # BodyGuard's parse only
    monkeypatch.undo()
    got = r.json()
    local = fs.predict("d", OK["entity_rows"])
    assert got["predictions"] == pytest.approx(local.predictions)
    assert got["features"] == {"temp": [30.0, 28.0, None]}
    assert got["statuses"] == local.statuses
    assert set(got) == {"request_id", "deployment", "model", "predictions", "features",
                        "statuses", "event_times", "latency_ms", "logged"}
    assert got["model"] == {"name": "m", "version": 1} and got["logged"] is True


def test_a_missing_key_is_still_a_422_naming_it(client):
    r = client.post("/deployments/d/predict", json={"entity_rows": [{"x": 1}]})
    assert r.status_code == 422 and "origin" in r.json()["detail"]


# status and detail of each bad body as the route gave them when FastAPI parsed the body
# and pydantic validated it (recorded before predict_body replaced them)
MISSING = "malformed request: body: Field required"
NOT_OBJECT = ("malformed request: body: Input should be a valid dictionary or object to "
              "extract fields from")
CASES = [
    ({"json": {}}, 422, "malformed request: entity_rows: Field required"),
    ({"json": {"entity_rows": []}}, 422, "malformed request: entity_rows: List should have at "
                                         "least 1 item after validation, not 0"),
    ({"json": {"entity_rows": [1]}}, 422,
     "malformed request: entity_rows.0: Input should be a valid dictionary"),
    ({"json": {"entity_rows": [{"origin": "JFK"}, None]}}, 422,
     "malformed request: entity_rows.1: Input should be a valid dictionary"),
    ({"json": {"entity_rows": "x"}}, 422,
     "malformed request: entity_rows: Input should be a valid list"),
    ({"json": {"entity_rows": [{"origin": "JFK"}], "extra": 1}}, 422,
     "malformed request: extra: Extra inputs are not permitted"),
    ({"json": {"entity_rows": [{"origin": "JFK"}], "request_data": {"a": 1}}}, 422,
     "malformed request: request_data.a: Input should be a valid list"),
    ({"json": {"entity_rows": [{"o": 1}], "request_data": {"a": [1], "b": None}}}, 422,
     "malformed request: request_data.b: Input should be a valid list"),
    ({"json": {"entity_rows": [{"origin": "JFK"}], "request_data": [1]}}, 422,
     "malformed request: request_data: Input should be a valid dictionary"),
    ({"json": [1, 2]}, 422, NOT_OBJECT),
    ({"json": "s"}, 422, NOT_OBJECT),
    ({"json": None}, 422, MISSING),
    ({"content": b"", "headers": {"content-type": "application/json"}}, 422, MISSING),
    ({"content": b""}, 422, MISSING),
    ({"content": b'{"entity_rows": [{"origin": "JFK"}]}',
      "headers": {"content-type": "text/plain"}}, 422, NOT_OBJECT),
    ({"content": b'{"entity_rows": [{"origin": "JFK"}]}'}, 422, NOT_OBJECT),
    ({"content": b'{"entity_rows": ', "headers": {"content-type": "application/json"}}, 422,
     "malformed request: JSON decode error: unexpected end of data: line 1 column 17 (char 16)"),
    ({"json": {"entity_rows": [{"origin": "JFK"}] * 11}}, 413,
     "11 entity rows exceed serving.max_batch_size=10; split the request"),
    ({"json": {"entity_rows": [{"origin": "JFK"}], "request_data": None}}, 404,
     "deployment 'nope' does not exist; deployments: ['d']"),
]


@pytest.mark.parametrize(("kwargs", "status", "detail"), CASES)
def test_bad_bodies_get_the_same_status_and_words_as_before(client, kwargs, status, detail):
    r = client.post("/deployments/nope/predict", **kwargs)
    assert (r.status_code, r.json()) == (status, {"detail": detail})


def test_the_openapi_document_still_has_the_request_body_inline(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/deployments/{name}/predict"]["post"]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    assert "$ref" not in json.dumps(schema)  # inline: nothing to resolve
    assert schema["required"] == ["entity_rows"] and schema["additionalProperties"] is False
    assert schema["properties"]["entity_rows"]["minItems"] == 1
    assert set(schema["properties"]) == {"entity_rows", "request_data"}
    ok = spec["paths"]["/deployments/{name}/predict"]["post"]["responses"]["200"]
    assert "PredictResponse" in json.dumps(ok)
