"""Pure ASGI middleware of the service: the access log and the request-body guard.

``BodyGuard`` reads a request body before any route parses it, and refuses it early:

* a ``content-length`` over ``max_body_bytes`` -> 413 before a byte is read; a body that
  streams past the limit -> 413 as soon as it does (never buffered whole);
* a body that does not arrive within ``body_timeout_s`` -> 408;
* a JSON body nested deeper than ``max_json_depth`` or holding a string (or object key)
  longer than ``max_string_length`` -> 422 naming the path and at most a short prefix;
* malformed JSON -> 422 (orjson's message: position, never the text).

The route then gets the same bytes, and the parsed JSON in ``scope[PARSED_BODY]`` (a
route that reads it, ``POST /deployments/{name}/predict``, parses nothing again).
Requests without a body pass straight through.

>>> check_json({"a": [{"b": "x" * 5}]}, max_depth=8, max_string=4)
Traceback (most recent call last):
...
sparkfs.errors.ValidationError: malformed request: a[0].b: a string of 5 characters exceeds ...
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ..errors import PayloadTooLargeError, RequestTimeoutError, SparkfsError, ValidationError
from .errors import error_response

access_log = logging.getLogger("sparkfs.serving.access")

_PREFIX = 16  # characters of a refused value that a message may show

#: The ASGI scope key under which ``BodyGuard`` leaves a JSON body it parsed (absent when
#: it parsed none: no body, or not a JSON content type).
PARSED_BODY = "sparkfs.parsed_body"


def check_json(value: Any, max_depth: int, max_string: int) -> None:
    """Refuse ``value`` (parsed JSON) if it nests deeper than ``max_depth`` or holds a
    string or key longer than ``max_string`` (``ValidationError`` naming the path).

    A body within the limits (nearly every one) is recognised by ``_within``, which
    tracks no paths; only a body it finds over a limit is walked again here, to name the
    same path, in the same order, as before.

    >>> check_json({"entity_rows": [{"origin": "JFK"}]}, max_depth=8, max_string=16)
    """
    if not _within(value, max_depth, max_string):
        _refuse(value, max_depth, max_string)


def _refuse(value: Any, max_depth: int, max_string: int) -> None:
    """``check_json``'s walk with paths: raise ``ValidationError`` for the first node over a
    limit (depth first, last child first), naming its path."""
    stack: list[tuple[Any, int, tuple]] = [(value, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, str):
            if len(node) > max_string:
                raise ValidationError(
                    f"malformed request: {_path(path)}: a string of {len(node)} characters "
                    f"exceeds serving.max_string_length={max_string} (starts "
                    f"{node[:min(_PREFIX, max_string)]!r})")
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > max_depth:
            raise ValidationError(f"malformed request: {_path(path)}: JSON nested deeper than "
                                  f"serving.max_json_depth={max_depth}")
        if isinstance(node, dict):
            for k, v in node.items():
                if len(k) > max_string:
                    raise ValidationError(
                        f"malformed request: {_path(path)}: a key of {len(k)} characters "
                        f"exceeds serving.max_string_length={max_string} (starts "
                        f"{k[:min(_PREFIX, max_string)]!r})")
                stack.append((v, depth + 1, path + (k,)))
        else:
            stack.extend((v, depth + 1, path + (i,)) for i, v in enumerate(node))


def _within(value: Any, max_depth: int, max_string: int) -> bool:
    """Whether ``check_json`` would accept ``value``: the same checks (a dict or list deeper
    than ``max_depth``, a string or key longer than ``max_string``), without the path of
    each node.

    >>> _within({"a": [["x"]]}, 3, 4), _within({"a": [["x"]]}, 2, 4), _within(["xy"], 4, 1)
    (True, False, False)
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if len(node) > max_string:
                return False
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > max_depth:
            return False
        if isinstance(node, dict):
            for k in node:
                if len(k) > max_string:
                    return False
            children: Iterable[Any] = node.values()
        else:
            children = node
        depth += 1
        for v in children:  # strings and scalars checked here, containers stacked
            if type(v) is str:
                if len(v) > max_string:
                    return False
            elif isinstance(v, (dict, list, str)):
                stack.append((v, depth))
    return True


def _path(path: tuple) -> str:
    out = ""
    for p in path[:8]:
        out += f"[{p}]" if isinstance(p, int) else (f".{p[:_PREFIX]}" if out else p[:_PREFIX])
    return out or "body"


class BodyGuard:
    """Size, time, depth and string-length limits on request bodies (module docstring)."""

    def __init__(self, app: Any, max_body_bytes: int, body_timeout_s: float,
                 max_json_depth: int, max_string_length: int) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.timeout = body_timeout_s
        self.max_depth = max_json_depth
        self.max_string = max_string_length

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
            if body and is_json(scope):
                parsed = parse_json(body)
                check_json(parsed, self.max_depth, self.max_string)
                scope[PARSED_BODY] = parsed
        except SparkfsError as exc:
            await error_response(exc)(scope, receive, send)
            return
        sent = [False]

        async def replay() -> dict:
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, scope: dict, receive: Any) -> bytes:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise ValidationError("malformed request: content-length is not a number") \
                        from None
                if declared > self.max_body:
                    raise PayloadTooLargeError(
                        f"the body is {declared} bytes, over serving.max_body_bytes="
                        f"{self.max_body}; send fewer entity rows per request")
        deadline = time.monotonic() + self.timeout
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.001))
            except TimeoutError:
                raise RequestTimeoutError(f"the body did not arrive within serving.body_timeout_s="
                                       f"{self.timeout:g} s") from None
            if message["type"] != "http.request":  # the client went away
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLargeError(
                    f"the body is over serving.max_body_bytes={self.max_body} bytes; send "
                    "fewer entity rows per request")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """``body`` parsed as JSON; malformed JSON is a ``ValidationError`` (422) with orjson's
    message (a position, never the text).

    >>> parse_json(b'{"a": 1}')
    {'a': 1}
    >>> try:
    ...     parse_json(b'{"a": ')
    ... except ValidationError as exc:
    ...     print(str(exc)[:45])
    malformed request: JSON decode error: unexpec
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"malformed request: JSON decode error: {exc}") from None


def is_json(scope: Mapping[str, Any]) -> bool:
    """Whether the request of ASGI ``scope`` says its body is JSON (its content type)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return False


class AccessLogMiddleware:
    """One log line per request: method, path, status, batch size, latency (pure ASGI)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            state = scope.get("state") or {}
            access_log.info("%s %s status=%d batch=%s latency_ms=%.2f key=%s", scope["method"],
                            scope["path"][:200], status[0], state.get("batch_size", "-"),
                            (time.perf_counter() - start) * 1000, state.get("key_name", "-"))
