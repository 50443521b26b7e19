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


class CodeNotLoadedError(TransformError):
    """A registered on-demand transform's code is not imported in this process (or differs
    from the registered fingerprint): a deployment problem, not a bad request.

    >>> raise CodeNotLoadedError("on-demand transform 'x' is registered but its code is not "
    ...                          "loaded: import the module that defines it")
    Traceback (most recent call last):
    ...
    sparkfs.errors.CodeNotLoadedError: on-demand transform 'x' is registered but ...
    """



class TransformMismatchError(CodeNotLoadedError):
    """A deployment's model was trained with other transform code than the service serves
    (``serving.transform_guard: refuse``): HTTP 503, a deployment problem.

    >>> issubclass(TransformMismatchError, SparkfsError)
    True
    """

class BatchTooLargeError(PayloadTooLargeError):
    """A request asked for more entity rows than ``serving.max_batch_size`` allows.

    >>> issubclass(BatchTooLargeError, SparkfsError)
    True
    """


class ClusterError(SparkfsError):
    """The standalone Spark cluster did not come up, or a submitted application failed.

    >>> str(ClusterError("the Spark cluster is already started"))
    'the Spark cluster is already started'
    """


class KafkaError(SparkfsError):
    """The test Kafka broker (``sparkfs.testing.kafka``) could not start, or was used
    before it started.

    >>> issubclass(KafkaError, SparkfsError)
    True
    """


class JvmArtifactError(SparkfsError):
    """A JVM artifact could not be fetched (the message names it and the registry's answer).

    >>> issubclass(JvmArtifactError, SparkfsError)
    True
    """


class MissingExtraError(SparkfsError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it.

    Raised by ``sparkfs._extras.require`` (see there); an ``ImportError`` too, so code that
    guards an optional import with ``except ImportError`` keeps working.

    >>> issubclass(MissingExtraError, ImportError)
    True
    """


class ConcurrentWriteError(SparkfsError):
    """Other writers kept committing to the same Delta table while this one tried to;
    nothing was written by this call. Retrying the same call (same run id) is safe.

    >>> ConcurrentWriteError("x").retryable
    True
    """

    retryable = True


class PredictionError(SparkfsError):
    """A deployed model failed on a request; the message carries the request id and a
    one-line reason, and the failure is recorded in the deployment's evaluation log."""

    def __init__(self, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.request_id = request_id


class LineageExportError(SparkfsError):
    """OpenLineage events could not be sent (``sparkfs.lineage.openlineage.emit``); the
    message names the transport.

    >>> issubclass(LineageExportError, SparkfsError)
    True
    """


class HBaseServerError(SparkfsError):
    """The real HBase server (``sparkfs.testing.hbase_server``) could not start; the
    message carries the end of its log.

    >>> str(HBaseServerError("cannot start a real HBase: no Java"))
    'cannot start a real HBase: no Java'
    """


def first_line(exc: BaseException, limit: int = 500) -> str:
    """The first line of ``exc``'s message (its type name when the message is empty), at
    most ``limit`` characters: what an error names as its cause, without a traceback.

    >>> first_line(ValueError("bad value\\n  at frame 3"))
    'bad value'
    >>> first_line(KeyError())
    'KeyError'
    """
    lines = str(exc).strip().splitlines()
    return lines[0].strip()[:limit] if lines else type(exc).__name__


def one_line(exc: BaseException, limit: int = 500) -> str:
    """``exc`` as ``<type>: <message>`` on one line (whitespace runs, newlines included,
    become one space), at most ``limit`` characters: a failure's reason as a log row or a
    response keeps it.

    >>> one_line(ZeroDivisionError("division\\n by zero"))
    'ZeroDivisionError: division by zero'
    """
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:limit]
