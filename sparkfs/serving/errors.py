"""One table from exception class to HTTP status, and the handlers that use it.

Routes raise ``sparkfs.errors`` exceptions and never build error responses themselves;
the first row of ``STATUS`` whose class the exception is an instance of gives the status.
4xx is bad input, 503 an unavailable dependency, 500 only a bug of ours (its traceback goes
to the server log, the client gets the exception's class name). A detail never echoes
more than ``MAX_DETAIL`` characters of what the client sent.

>>> from sparkfs.errors import NotFoundError, OnlineStoreError
>>> status_of(NotFoundError("x")), status_of(OnlineStoreError("down")), status_of(KeyError())
(404, 503, 500)
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    AuthenticationError,
    CodeNotLoadedError,
    DefinitionError,
    NotFoundError,
    OnlineStoreError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RegistryUnavailableError,
    RequestTimeoutError,
    SparkfsError,
    TransformError,
    UnavailableError,
    ValidationError,
)
from .encoding import json_response

error_log = logging.getLogger("sparkfs.serving")

#: exception class -> HTTP status; the first matching row wins (subclasses first).
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (RequestTimeoutError, 408),
    (PayloadTooLargeError, 413),
    (CodeNotLoadedError, 503),      # a TransformError: the service lacks the code (--repo)
    (OnlineStoreError, 503),
    (RegistryUnavailableError, 503),
    (UnavailableError, 503),
    (ValidationError, 422),
    (DefinitionError, 422),
    (TransformError, 422),
)

#: The longest detail sent back; longer ones are cut (a client's 10 MB value is not echoed).
MAX_DETAIL = 600


def status_of(exc: BaseException) -> int:
    """The HTTP status of ``exc`` (see ``STATUS``); 500 for anything not in the table."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def short(text: str, limit: int = MAX_DETAIL) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out.

    >>> short("x" * 10, 4)
    'xxxx... (6 more characters)'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def error_response(exc: BaseException, request: Any = None) -> Response:
    """The JSON response for ``exc``: ``{"detail": ...}`` with its status from ``STATUS``."""
    status = status_of(exc)
    headers = None
    if status == 500:
        if request is not None:
            error_log.error("unhandled error on %s %s", request.method, request.url.path,
                            exc_info=exc)
        detail = f"internal error ({type(exc).__name__}); see the server log"
    else:
        detail = short(str(exc))
        if status == 401:
            headers = {"www-authenticate": 'Bearer realm="sparkfs"'}
        elif status == 503:
            retry = getattr(exc, "retry_after_s", None)
            if retry:
                headers = {"retry-after": str(max(1, round(retry)))}
    return json_response({"detail": detail}, status, headers)


def malformed_detail(exc: RequestValidationError) -> str:
    """Where and what, never the value (pydantic's input is left out)."""
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{short(loc, 80) or 'body'}: {short(str(e.get('msg')), 200)}")
    return "malformed request: " + "; ".join(parts)


def install(app: FastAPI) -> None:
    """Register the handlers: validation errors -> 422, HTTP errors keep their status,
    everything else through ``STATUS``."""

    @app.exception_handler(RequestValidationError)
    async def _malformed(request: Request, exc: RequestValidationError) -> Response:
        return json_response({"detail": malformed_detail(exc)}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return json_response({"detail": short(str(exc.detail))}, exc.status_code,
                             getattr(exc, "headers", None))

    @app.exception_handler(SparkfsError)
    async def _ours(request: Request, exc: SparkfsError) -> Response:
        return error_response(exc, request)

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception) -> Response:
        return error_response(exc, request)
