"""Schemathesis against the service's own ``/openapi.json`` (the real app over ASGI, a real
registry and SQLite store, auth on): generated valid and invalid bodies get no 5xx, and
every response conforms to the documented statuses, content types and schemas.

``positive_data_acceptance`` is left out on purpose: a schema-valid body usually names
groups that do not exist, and 404 is the right answer to it. Examples are bounded so the
run takes about a minute."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from sparkfs import Entity, FeatureGroup, FeatureStore, Field  # noqa: E402
from sparkfs.serving.app import create_app  # noqa: E402
from sparkfs.serving.auth import new_key  # noqa: E402

KEY, DIGEST = new_key()


def _app(tmp_dir: str):
    fs = FeatureStore({"data_dir": tmp_dir, "serving": {
        "max_batch_size": 50, "auth": {"enabled": True, "keys": [
            {"name": "fuzz", "sha256": DIGEST, "scopes": ["features:read"]}]}}})
    weather = FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
                           [Field("temp", "double"), Field("obs", "array<double>")])
    fs.apply([weather])
    fs.online.write_batch(weather, pa.table({
        "origin": ["JFK"], "temp": [float("nan")], "obs": [[1.0, float("nan")]],
        "time_hour": [dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)]}))
    return create_app(fs)


import tempfile  # noqa: E402

APP = _app(tempfile.mkdtemp(prefix="sparkfs-fuzz-"))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_5xx_and_responses_match_the_schema(case):
    case.call_and_validate(headers={"authorization": f"Bearer {KEY}"},
                           excluded_checks=[positive_data_acceptance])


def test_the_schema_says_exactly_one_of_entity_rows_and_entities():
    body = APP.openapi()["components"]["schemas"]["FeaturesRequest"]
    assert body["oneOf"] == [{"required": ["entity_rows"]}, {"required": ["entities"]}]
    documented = APP.openapi()["paths"]["/features"]["post"]["responses"]
    assert {"400", "401", "403", "404", "413", "422", "503"} <= set(documented)
