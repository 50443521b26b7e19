"""The exceptions sparkfs raises, under one base class.

Every message names the object at fault (group, column, key, config key) and says what
to do next. A py4j or Thrift traceback is never the first thing a user reads.

>>> from sparkfs.errors import SparkfsError, DefinitionError
>>> issubclass(DefinitionError, SparkfsError)
True
"""

from __future__ import annotations


class SparkfsError(Exception):
    """Base class of every error sparkfs raises on purpose."""


class ConfigError(SparkfsError, ValueError):
    """A config file or override is missing, malformed, or has an unknown key or bad value."""


class DefinitionError(SparkfsError, ValueError):
    """An Entity, Field, FeatureGroup, Aggregation or transform is not well formed."""


class RegistryError(SparkfsError):
    """The registry refused a change (for example an incompatible schema change)."""


class NotFoundError(SparkfsError, KeyError):
    """A feature group, feature, training set or version does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ValidationError(SparkfsError, ValueError):
    """A batch was refused whole: nothing was written."""


class OnlineStoreError(SparkfsError):
    """The online store could not be reached or refused an operation."""


class TransformError(SparkfsError):
    """A transform is malformed or failed while running."""


class PredictionError(SparkfsError):
    """A deployed model failed on a request; the message carries the request id and a
    one-line reason, and the failure is recorded in the deployment's evaluation log."""

    def __init__(self, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.request_id = request_id
