"""Running the service: loading the store, uvicorn's options, worker processes and the
connection guard.

uvicorn alone keeps a connection that never sends a request open forever and accepts
connections until the process runs out of file descriptors. ``GuardedHttpToolsProtocol``
(uvicorn's httptools protocol plus two rules) closes a connection whose request head does
not arrive within ``serving.header_timeout_s`` (with a 408) and answers a connection over
``serving.max_connections`` per process with a 503 and closes it at once. Idle keep-alive
connections are closed after ``serving.keep_alive_s`` (uvicorn's ``timeout_keep_alive``);
bodies are bounded by ``sparkfs.serving.middleware.BodyGuard``.

TLS: put the service behind a TLS-terminating proxy, or pass ``ssl_certfile`` /
``ssl_keyfile`` (uvicorn's options) to ``run`` (``sparkfs serve --ssl-certfile ...``).

>>> default_workers() >= 1
True
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import sys
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

error_log = logging.getLogger("sparkfs.serving")

_WORKER_ENV = "_SPARKFS_SERVE_WORKER"  # JSON: what each worker process loads
_GUARD_ENV = "_SPARKFS_SERVE_GUARD"    # JSON: header timeout and connection limit

_REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: 67\r\n\r\n"
            b'{"detail":"too many connections (serving.max_connections); retry"}')
_SLOW = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
         b"connection: close\r\ncontent-length: 67\r\n\r\n"
         b'{"detail":"the request head did not arrive in serving.header_timeout_s"}')


def _guard_limits() -> tuple[float, int]:
    spec = json.loads(os.environ.get(_GUARD_ENV) or "{}")
    return float(spec.get("header_timeout_s", 10.0)), int(spec.get("max_connections", 1000))


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout and a connection limit (see the
    module docstring). Limits come from ``run`` through the environment, so worker
    processes get them too."""

    _limits: tuple[float, int] | None = None

    def connection_made(self, transport: Any) -> None:
        cls = type(self)
        if cls._limits is None:
            cls._limits = _guard_limits()
        header_timeout, max_connections = cls._limits
        super().connection_made(transport)
        self._head_timer: Any = None
        if len(self.connections) > max_connections:
            transport.write(_REFUSED)
            transport.close()
            return
        self._start_head_timer(header_timeout)

    def _start_head_timer(self, seconds: float) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(seconds, self._head_timeout)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(_SLOW)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        limits = type(self)._limits
        if limits is not None:
            self._start_head_timer(limits[0])

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


def load_service(config: str | None, repo: str | None) -> tuple[Any, list[str]]:
    """A ``FeatureStore`` from ``config`` with the code of ``repo``'s registered
    definitions attached (nothing is applied). Returns ``(fs, attached_labels)``."""
    from ..store import FeatureStore

    fs = FeatureStore.from_config(config)
    attached: list[str] = []
    if repo:
        from ..repo import load_repo

        attached = fs.catalog.attach(load_repo(repo))
    missing = [s["name"] for s in fs.registry.list("on_demand")
               if f"on_demand:{s['name']}" not in attached]
    if missing:
        error_log.warning("on-demand transforms %s are registered but their code is not in the "
                          "repo given (--repo); requests for them will fail", missing)
    return fs, attached


def worker_app() -> Any:
    """The app of one ``sparkfs serve --workers N`` worker process (a uvicorn factory):
    loads the store and repo that ``run`` passed down in the environment."""
    from .app import create_app

    spec = json.loads(os.environ[_WORKER_ENV])
    logging.basicConfig(stream=sys.stderr, level=spec["log_level"].upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    fs, _ = load_service(spec["config"], spec["repo"])
    return create_app(fs)


def default_workers() -> int:
    """Half the cores (at least 1, at most 4). Measured on a 2-core machine shared with its
    clients, 2 workers under 8 clients cost ~3x the CPU per request of 1 worker."""
    return max(1, min(4, (os.cpu_count() or 1) // 2))


def is_loopback(host: str) -> bool:
    """True when ``host`` only listens on this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uvicorn_options(fs: Any, host: str, port: int, log_level: str,
                    ssl: dict[str, Any] | None = None) -> dict[str, Any]:
    """uvicorn's keyword arguments for ``fs.config.serving`` (and sets the guard's limits
    in the environment for this process and its workers)."""
    import uvloop  # noqa: F401  (a dependency: fail here, not deep in uvicorn)

    s = fs.config.serving
    os.environ[_GUARD_ENV] = json.dumps({"header_timeout_s": s.header_timeout_s,
                                         "max_connections": s.max_connections})
    GuardedHttpToolsProtocol._limits = None
    opts: dict[str, Any] = dict(host=host, port=port, access_log=False, log_level=log_level,
                                http=GuardedHttpToolsProtocol, loop="uvloop",
                                timeout_keep_alive=s.keep_alive_s,
                                limit_concurrency=s.max_connections + 64,
                                # a worker imports the repo and opens the store before it is
                                # ready: uvicorn's 5 s kills it on a busy host
                                timeout_worker_healthcheck=60)
    opts.update({k: v for k, v in (ssl or {}).items() if v is not None})
    return opts


def run(fs: Any, host: str = "127.0.0.1", port: int = 8080, repo: str | None = None,
        log_level: str = "info", workers: int = 1, config: str | None = None,
        ssl: dict[str, Any] | None = None) -> None:
    """Serve ``fs`` with uvicorn until interrupted (blocking).

    ``workers > 1`` runs that many processes on one listening socket; each loads its own
    store from ``config`` and ``repo`` (``fs`` has already checked that they load).
    ``ssl``: uvicorn's ``ssl_certfile``, ``ssl_keyfile``... passed through."""
    from .._extras import require
    from .app import create_app

    uvicorn = require("uvicorn", extra="serve", what="the HTTP service")
    if not fs.config.serving.auth.enabled and not is_loopback(host):
        error_log.warning("listening on %s without authentication: anyone who can reach this "
                          "port reads every online feature; set serving.auth (see "
                          "conf/cluster.yaml)", host)
    opts = uvicorn_options(fs, host, port, log_level, ssl)
    if workers <= 1:
        uvicorn.run(create_app(fs), **opts)
        return
    os.environ[_WORKER_ENV] = json.dumps({"config": config, "repo": repo,
                                          "log_level": log_level})
    uvicorn.run("sparkfs.serving.process:worker_app", factory=True, workers=workers, **opts)
