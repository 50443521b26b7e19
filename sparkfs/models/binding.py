"""``FeatureBinding``: the features a model consumes, as recorded with the model.

A model logged with ``fs.log_model(..., training_set=...)`` is bound to the feature view
its training set was built from (``"name@version"``; None when the training set was built
from a plain list of references) and to the exact references, naming option and key map
of that training set. ``columns`` are the model's input columns in order with their
sparkfs dtypes, resolved by the same resolver the online path uses, so the signature
built from them is what every scoring path hands the model.

>>> b = FeatureBinding(view="delays@1", features=("weather@1:temp",), columns=(("temp", "double"),))
>>> FeatureBinding.from_json(b.to_json()) == b
True
>>> b.column_names
['temp']
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..dtypes import ALL
from ..errors import DefinitionError

#: sparkfs dtype -> MLflow ColSpec type. Integer features are declared ``double``: a missing
#: value reaches the model as NaN (the frame Spark's pandas UDF gives it, and the one the
#: online path builds), which MLflow refuses to enforce into an integer column.
MLFLOW_TYPES = {n: d.mlflow for n, d in ALL.items() if d.mlflow is not None}


@dataclass(frozen=True)
class FeatureBinding:
    """A model's feature view, references and input columns (name, sparkfs dtype)."""

    view: str | None
    features: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    full_feature_names: bool = False
    key_map: Mapping[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def to_json(self) -> str:
        """A compact JSON form (stored as a model-version tag and in deployments)."""
        return json.dumps({"view": self.view, "features": list(self.features),
                           "columns": [list(c) for c in self.columns],
                           "full_feature_names": self.full_feature_names,
                           "key_map": dict(self.key_map)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> "FeatureBinding":
        d = json.loads(text) if isinstance(text, str) else dict(text)
        return cls(view=d.get("view"), features=tuple(d["features"]),
                   columns=tuple((c, t) for c, t in d["columns"]),
                   full_feature_names=bool(d.get("full_feature_names")),
                   key_map=dict(d.get("key_map") or {}))


def view_label(manifest: Mapping[str, Any]) -> str | None:
    """The ``name@version`` of the view a training-set manifest records, if any.

    >>> view_label({"view": {"name": "delays", "version": 2}}), view_label({"view": "a@1"})
    ('delays@2', 'a@1')
    >>> view_label({}) is None
    True
    """
    v = manifest.get("view")
    if not v:
        return None
    if isinstance(v, Mapping):
        return f"{v['name']}@{v.get('version') or 1}"
    return str(v)


def binding_from_manifest(manifest: Mapping[str, Any],
                          resolve_columns: Callable[[list[str], bool], list[tuple[str, str]]],
                          ) -> FeatureBinding:
    """The binding of a training set: its view, references and options; ``resolve_columns
    (features, full_feature_names)`` gives the input columns (the online resolver)."""
    features = list(manifest["features"])
    full = bool((manifest.get("options") or {}).get("full_feature_names", False))
    columns = resolve_columns(features, full)
    for name, dtype in columns:
        if dtype not in MLFLOW_TYPES:
            raise DefinitionError(f"feature {name!r} has dtype {dtype}, which cannot be a model "
                                  f"input column yet (supported: {sorted(MLFLOW_TYPES)})")
    return FeatureBinding(view=view_label(manifest), features=tuple(features),
                          columns=tuple(columns), full_feature_names=full,
                          key_map=dict(manifest.get("key_map") or {}))


def signature_schema(binding: FeatureBinding):
    """The MLflow input ``Schema`` of a binding (one ColSpec per column, in order).

    >>> signature_schema(FeatureBinding(None, ("w:t",), (("t", "double"), ("n", "long"))))
    ['t': double (required), 'n': double (required)]
    """
    from mlflow.types import ColSpec, Schema

    return Schema([ColSpec(MLFLOW_TYPES[d], n) for n, d in binding.columns])


def schema_columns(schema: Any) -> list[tuple[str, str]]:
    """``[(name, mlflow type)]`` of an MLflow input schema (for comparisons and messages)."""
    out = []
    for spec in schema.inputs:
        t = getattr(spec.type, "name", None) or str(spec.type)
        out.append((spec.name, str(t)))
    return out


def mismatch(binding: FeatureBinding, schema: Any) -> str | None:
    """Why an MLflow input schema does not match a binding's columns, or None.

    >>> b = FeatureBinding(None, ("w:t",), (("t", "double"),))
    >>> mismatch(b, signature_schema(b)) is None
    True
    >>> mismatch(b, signature_schema(FeatureBinding(None, (), (("t", "string"),))))
    "the signature's input columns [('t', 'string')] differ from the view's [('t', 'double')]"
    """
    if schema is None:
        return "the model has no input signature"
    got = schema_columns(schema)
    want = [(n, MLFLOW_TYPES[d]) for n, d in binding.columns]
    if got != want:
        return f"the signature's input columns {got} differ from the view's {want}"
    return None
