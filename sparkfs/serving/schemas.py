"""The JSON bodies of the online feature service, as pydantic models (they are the
OpenAPI document at ``/openapi.json``).

``POST /features`` takes exactly one of ``entity_rows`` (objects of join-key values) and
``entities`` (Feast-style columns); the schema says so with a ``oneOf`` of two
``required`` lists, and the service enforces it (422 naming both). Likewise exactly one
of ``features`` (references) and ``view`` (``"name"`` or ``"name@version"``).

>>> FeaturesRequest.model_validate({"features": ["weather:temp"],
...                                 "entity_rows": [{"origin": "JFK"}]}).entities is None
True
>>> FeaturesRequest.model_json_schema()["oneOf"]
[{'required': ['entity_rows']}, {'required': ['entities']}]
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: A feature reference's longest accepted text (a name is at most a few dozen chars).
MAX_REF_LENGTH = 256


def _exactly_one_of_rows(schema: dict[str, Any]) -> None:
    schema["oneOf"] = [{"required": ["entity_rows"]}, {"required": ["entities"]}]
    for name in _ABSENT_OR_GIVEN:  # absent or given, never null
        prop = schema["properties"][name]
        prop.pop("default", None)
        branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
        if branches:
            prop.update(branches[0])


def _schema_of_request(schema: dict[str, Any]) -> None:
    _exactly_one_of_rows(schema)
    schema["allOf"] = [{"oneOf": [{"required": ["features"]}, {"required": ["view"]}]}]


_ABSENT_OR_GIVEN = ("entity_rows", "entities", "request_data", "features", "view")


class FeaturesRequest(BaseModel):
    """Body of ``POST /features``: give ``entity_rows`` or ``entities``, not both; and
    ``features`` (references) or ``view`` (a registered feature view), not both.

    >>> FeaturesRequest(features=["weather:temp"], entities={"origin": ["JFK"]}).entities
    {'origin': ['JFK']}
    >>> FeaturesRequest(view="flight_delay@1", entity_rows=[{"origin": "JFK"}]).features is None
    True
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_schema_of_request)

    features: list[str] | None = Field(
        default=None, min_length=1, description="'group:feature', 'group@version:feature' "
        "or 'transform:output' references (or give view instead)")
    view: str | None = Field(
        default=None, min_length=1, max_length=MAX_REF_LENGTH,
        description="a registered feature view, 'name' (latest version) or 'name@version': "
        "its columns, as in a training set of that view (or give features instead)")
    entity_rows: list[dict[str, Any]] | None = Field(
        default=None, description="one object of join-key values per row")
    entities: dict[str, list[Any]] | None = Field(
        default=None, description="Feast-style columns of join-key values")
    request_data: dict[str, list[Any]] | None = Field(
        default=None, description="request-time columns for on-demand transforms")
    full_feature_names: bool = Field(default=False, description="name outputs group__feature")

    @field_validator(*_ABSENT_OR_GIVEN, mode="before")
    @classmethod
    def _not_null(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("must not be null: leave it out instead")
        return v


class FeatureResult(BaseModel):
    """One response column: a value, a status and an event time per entity row."""

    values: list[Any]
    statuses: list[str]
    event_timestamps: list[str | None]


class FeaturesMetadata(BaseModel):
    """Column names of a response (join keys first) and the on-demand transforms run."""

    feature_names: list[str]
    transform_fingerprints: dict[str, str] = Field(
        default_factory=dict, description="on-demand transforms run for this response")


class FeaturesResponse(BaseModel):
    """Body of a successful ``POST /features``."""

    metadata: FeaturesMetadata
    results: list[FeatureResult]


class HTTPError(BaseModel):
    """Every error body: one readable sentence, never a stack trace or a long echo."""

    detail: str


class Health(BaseModel):
    """``GET /health``: liveness, with nothing a stranger could use (no paths, no keys)."""

    status: str
    uptime_s: float
    online_store: str
    max_batch_size: int
    auth: bool
    pyspark_loaded: bool
    transform_guard: dict[str, Any] | None = None  # sparkfs.serving.transform_guard


#: Error statuses documented on every route (see ``sparkfs.serving.errors``).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": HTTPError, "description": text} for code, text in (
        (400, "malformed HTTP request"),
        (401, "missing or invalid API key"),
        (403, "the API key lacks a scope"),
        (404, "unknown group, feature, transform or route"),
        (408, "the body did not arrive in time"),
        (413, "body or batch over a configured limit"),
        (422, "the body is malformed or names bad values"),
        (503, "a dependency (online store, registry, transform code) is unavailable"),
    )}
