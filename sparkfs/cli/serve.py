"""``sparkfs serve``: run the online feature service (HTTP JSON, no Spark); ``sparkfs
api-key create``: make an API key for it.

    sparkfs serve --config conf/local.yaml --repo jobs/flights/features.py --port 8080 [--workers 2]
    sparkfs api-key create --name app --scope features:read:weather [--file keys.yaml]

``--workers N`` runs N uvicorn worker processes on the one port (default: half the cores);
the repo and config are checked once before any worker starts, so a bad repo or config
fails with one clear message, and a worker that cannot start stops the whole service.
``--ssl-certfile``/``--ssl-keyfile`` serve HTTPS (uvicorn's TLS); otherwise terminate TLS
at a proxy in front of the service.

The repo is imported for its on-demand transform code; its definitions must already be
applied (``sparkfs apply``): the service never changes the registry, and refuses to start
when the repo's transform code differs from the registered fingerprint.

``api-key create`` prints the new key once (only its sha256 is ever stored) and the
``serving.auth.keys`` entry to configure; ``--file`` appends that entry to a keys file
(``serving.auth.keys_file``).
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Literal

import typer

from . import CONFIG_HELP, config_of


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``api-key create`` to ``app``.

    >>> app = typer.Typer(); register(app)
    >>> [c.name for c in app.registered_commands], [g.name for g in app.registered_groups]
    (['serve'], ['api-key'])
    """
    app.command("serve", help="serve online features over HTTP (no Spark)")(_serve)
    keys = typer.Typer(help="API keys of the online feature service", no_args_is_help=False)
    keys.command("create", help="make a key: prints it once, and its hash to configure")(
        _create_key)
    app.add_typer(keys, name="api-key")


def _port(text: str) -> int:
    """A TCP port number (0..65535)."""
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{text[:20]!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    return port


def _serve(ctx: typer.Context,
           config: Annotated[str | None, typer.Option("--config", help=CONFIG_HELP)] = None,
           repo: Annotated[str | None, typer.Option(
               help="feature repo to import (on-demand transform code)")] = None,
           host: Annotated[str, typer.Option(
               help="interface to bind (default 127.0.0.1)")] = "127.0.0.1",
           port: Annotated[int, typer.Option(
               parser=_port, help="TCP port (default 8080; 0 = any free)")] = 8080,
           workers: Annotated[int | None, typer.Option(
               help="server processes on the one port (default: half the cores, 1..4)")
           ] = None,
           log_level: Annotated[Literal["critical", "error", "warning", "info", "debug"],
                                typer.Option("--log-level")] = "info",
           ssl_certfile: Annotated[str | None, typer.Option(
               help="serve HTTPS with this certificate (PEM)")] = None,
           ssl_keyfile: Annotated[str | None, typer.Option(
               help="the certificate's private key (PEM)")] = None) -> int:
    from .._extras import require
    from ..errors import ConfigError

    require("fastapi", extra="serve", what="sparkfs serve")
    from ..serving.auth import KeyRing
    from ..serving.process import default_workers, load_service, run

    config = config if config is not None else config_of(ctx)
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise ConfigError("give both --ssl-certfile and --ssl-keyfile, or neither")
    logging.basicConfig(stream=sys.stderr, level=log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    fs, attached = load_service(config, repo)
    try:
        keys = KeyRing.from_config(fs.config.serving.auth)  # refuse bad keys before serving
        logging.getLogger("sparkfs.serving").info(
            "serving %d feature group(s) with %d worker process(es), authentication %s; code "
            "attached for: %s", len(fs.list_feature_groups(latest_only=True)), workers,
            f"on ({len(keys._keys)} key(s))" if keys.enabled else "off",
            ", ".join(attached) or "nothing")
        run(fs, host=host, port=port, repo=repo, log_level=log_level, workers=workers,
            config=config, ssl={"ssl_certfile": ssl_certfile, "ssl_keyfile": ssl_keyfile})
    finally:
        fs.close()
    return 0


def _create_key(name: Annotated[str, typer.Option(
                    help="the key's name (shown in access logs)")],
                scopes: Annotated[list[str], typer.Option(
                    "--scope", help="features:read[:GROUP|:view:VIEW], predict[:DEPLOYMENT], "
                    "push[:GROUP] or admin (repeat for several)")],
                file: Annotated[str | None, typer.Option(
                    help="append the entry (hash, never the key) to this YAML file")] = None,
                ) -> int:
    import yaml

    from ..config import ApiKeyConfig
    from ..errors import ConfigError
    from ..serving.auth import new_key

    key, digest = new_key()
    try:
        entry = ApiKeyConfig(name=name, sha256=digest, scopes=scopes)
    except ValueError as exc:
        first = exc.errors()[0] if hasattr(exc, "errors") else {"msg": str(exc)}
        raise ConfigError(f"api-key create: {first['msg']}") from None
    text = yaml.safe_dump([entry.model_dump()], sort_keys=False)
    if file:
        with open(file, "a", encoding="utf-8") as f:
            f.write(text)
    print(f"key (shown once; store it in your client's secret store): {key}")
    print("serving.auth.keys entry" + (f" (appended to {file})" if file else "") + ":")
    print(text, end="")
    return 0
