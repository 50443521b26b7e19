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


class RegistryUnavailableError(RegistryError):
    """The registry cannot be read or written right now: locked by another process or on a
    read-only disk. Reads and the service keep working from what they already know."""


class UnavailableError(SparkfsError):
    """A dependency of the request (online store, registry) is down or did not answer in
    time; retry later (HTTP 503)."""


class PayloadTooLargeError(SparkfsError, ValueError):
    """A request is larger than a configured limit (body bytes, entity rows): HTTP 413."""


class AuthenticationError(SparkfsError):
    """No API key, or one that matches no configured key (HTTP 401)."""


class PermissionDeniedError(SparkfsError):
    """The API key lacks the scope an operation needs (HTTP 403); the message names it."""


class RequestTimeoutError(SparkfsError):
    """A client did not send its request in time (``serving.body_timeout_s``): HTTP 408."""
