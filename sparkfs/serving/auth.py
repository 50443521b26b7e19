"""API keys and scopes of the online feature service (``serving.auth`` in config).

A client sends its key as ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``). The
service stores only the sha256 hex digest of each key (``sparkfs api-key create`` makes a
key, prints it once and prints the digest to configure) and compares digests with
``hmac.compare_digest`` against every configured key, so neither the time taken nor the
logs reveal a key. A missing or unknown key is refused with 401, a key without the scope
an operation needs with 403 naming that scope.

Scopes (see ``sparkfs.config.parse_scope``): ``features:read`` (every group and view) or
``features:read:GROUP`` / ``features:read:view:VIEW``; ``predict`` / ``predict:DEPLOYMENT``;
``push`` / ``push:GROUP``; ``admin`` (everything). Keys come from ``serving.auth.keys``,
from the environment variable named by ``keys_env`` and from the YAML file ``keys_file``
(both hold a list of ``{name, sha256, scopes}``).

>>> key, digest = new_key()
>>> from sparkfs.config import AuthConfig
>>> ring = KeyRing.from_config(AuthConfig(enabled=True, keys=[
...     {"name": "app", "sha256": digest, "scopes": ["features:read:weather"]}]))
>>> p = ring.authenticate({"authorization": f"Bearer {key}"})
>>> p.name, p.allows("features:read", "weather"), p.allows("features:read", "planes")
('app', True, False)
>>> p.require("push", "weather")
Traceback (most recent call last):
...
sparkfs.errors.PermissionDeniedError: API key 'app' lacks scope 'push:weather'
>>> ring.authenticate({"x-api-key": "wrong"})
Traceback (most recent call last):
...
sparkfs.errors.AuthenticationError: the API key is not valid
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.requests import Request

from ..config import ApiKeyConfig, AuthConfig, parse_scope
from ..errors import AuthenticationError, ConfigError, PermissionDeniedError


def digest(key: str) -> str:
    """The sha256 hex digest of ``key`` (what the config stores).

    >>> digest("k")[:12]
    '8254c329a928'
    """
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh random key (``sfs_`` + 43 URL-safe characters) and its digest."""
    key = "sfs_" + secrets.token_urlsafe(32)
    return key, digest(key)


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: a key's name and its grants (scope -> targets; ``None``
    targets: all of them)."""

    name: str
    grants: Mapping[str, frozenset[str] | None] = field(default_factory=dict)

    def allows(self, scope: str, target: str | None = None) -> bool:
        """True when the key holds ``scope`` for ``target`` (or for everything)."""
        if "admin" in self.grants:
            return True
        if scope not in self.grants:
            return False
        targets = self.grants[scope]
        return targets is None or (target is not None and target in targets)

    def require(self, scope: str, target: str | None = None) -> None:
        """Raise ``PermissionDeniedError`` naming the scope unless ``allows``."""
        if not self.allows(scope, target):
            wanted = scope if target is None else f"{scope}:{target}"
            raise PermissionDeniedError(f"API key {self.name!r} lacks scope {wanted!r}")

    @property
    def open(self) -> bool:
        """True when this is the principal of a service without authentication."""
        return self is ANONYMOUS


#: The principal of every request when ``serving.auth.enabled`` is false.
ANONYMOUS = Principal("anonymous", {"admin": None})


def _grants(scopes: list[str]) -> dict[str, frozenset[str] | None]:
    out: dict[str, set[str] | None] = {}
    for text in scopes:
        scope, target = parse_scope(text)
        if target is None or out.get(scope, set()) is None:
            out[scope] = None
        else:
            out.setdefault(scope, set()).add(target)  # type: ignore[union-attr]
    return {k: None if v is None else frozenset(v) for k, v in out.items()}


class KeyRing:
    """The configured keys; ``authenticate(headers)`` gives the request's ``Principal``."""

    def __init__(self, enabled: bool, keys: list[ApiKeyConfig]) -> None:
        self.enabled = enabled
        self._keys = [(bytes.fromhex(k.sha256), Principal(k.name, _grants(k.scopes)))
                      for k in keys]
        if enabled and not self._keys:
            raise ConfigError("serving.auth is enabled but no key is configured: add keys "
                              "(serving.auth.keys, keys_env or keys_file; `sparkfs api-key "
                              "create` makes one)")

    @classmethod
    def from_config(cls, auth: AuthConfig, env: Mapping[str, str] | None = None) -> "KeyRing":
        """Keys from the config section, its environment variable and its file."""
        env = os.environ if env is None else env
        keys = list(auth.keys)
        if auth.keys_env:
            if not env.get(auth.keys_env):
                raise ConfigError(f"serving.auth.keys_env: environment variable "
                                  f"{auth.keys_env} is not set or empty")
            keys += _parse_keys(env[auth.keys_env], f"${auth.keys_env}")
        if auth.keys_file:
            try:
                with open(auth.keys_file, encoding="utf-8") as f:
                    text = f.read()
            except OSError as exc:
                raise ConfigError(f"serving.auth.keys_file {auth.keys_file!r} cannot be read "
                                  f"({exc.strerror})") from None
            keys += _parse_keys(text, auth.keys_file)
        return cls(auth.enabled, keys)

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The principal of the key in ``headers`` (lower-case names); ``AuthenticationError``
        when auth is on and the key is missing or unknown."""
        if not self.enabled:
            return ANONYMOUS
        key = headers.get("x-api-key")
        if key is None:
            scheme, _, token = (headers.get("authorization") or "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" and token.strip() else None
        if key is None:
            raise AuthenticationError("an API key is required: send 'Authorization: Bearer "
                                      "<key>' (or 'X-API-Key: <key>')")
        presented = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        found = None
        for stored, principal in self._keys:  # every key compared: no early exit
            if hmac.compare_digest(stored, presented):
                found = principal
        if found is None:
            raise AuthenticationError("the API key is not valid")
        return found


def _parse_keys(text: str, source: str) -> list[ApiKeyConfig]:
    import yaml
    from pydantic import ValidationError

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{source}: API keys are not valid YAML/JSON") from None
    if not isinstance(data, list):
        raise ConfigError(f"{source}: API keys must be a list of {{name, sha256, scopes}}")
    out = []
    for i, item in enumerate(data):
        try:
            out.append(ApiKeyConfig.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise ConfigError(f"{source}: key {i}: {loc}: {first['msg']}") from None
    return out


def principal_of(request: Request) -> Principal:
    """FastAPI dependency: the ``Principal`` of ``request`` (401 when it has none)."""
    ring: KeyRing = request.app.state.keys
    p = ring.authenticate(request.headers)
    if not p.open:
        request.scope.setdefault("state", {})["key_name"] = p.name
    return p
