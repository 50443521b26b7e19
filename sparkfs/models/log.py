"""``log_model``: what ``fs.log_model`` does, with the collaborators it needs.

>>> callable(log_model)
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import DefinitionError
from .binding import FeatureBinding, binding_from_manifest
from .mlflow_store import ModelRegistry, ModelVersionInfo


def log_model(registry: ModelRegistry, model: Any, name: str, training_set: Any,
              resolve_columns: Callable[[list[str], bool], list[tuple[str, str]]],
              flavor: Any = None, signature: Any = None, description: str = "",
              **flavor_options: Any) -> ModelVersionInfo:
    """Log ``model`` as a new version of ``name``, bound to ``training_set`` (a stored
    ``TrainingSet``; None logs an unbound model, which ``deploy`` refuses).

    The signature's inputs are the training set's feature columns as the online resolver
    names and types them."""
    from ..definitions import check_name

    check_name(name, "model")
    if training_set is None:
        if signature is None:
            raise DefinitionError(f"model {name!r}: without a training set give signature= "
                                  "(better: log it with training_set=... to bind its features)")
        binding = FeatureBinding(view=None, features=(), columns=())
        return registry.log_model(model, name, binding, "", {}, flavor=flavor,
                                  signature=signature, description=description, **flavor_options)
    if not getattr(training_set, "name", None):
        raise DefinitionError(f"model {name!r}: the training set must be a stored one "
                              "(fs.create_training_set), so the model can name it")
    manifest = training_set.manifest
    binding = binding_from_manifest(manifest, resolve_columns)
    label = f"{training_set.name}@{training_set.version}"
    return registry.log_model(model, name, binding, label, manifest, flavor=flavor,
                              signature=signature, description=description, **flavor_options)
