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

import argparse
import logging
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve online features over HTTP (no Spark)")
    p.add_argument("--config", default=argparse.SUPPRESS,
                   help="YAML config (default: $SPARKFS_CONFIG, else the embedded defaults)")
    p.add_argument("--repo", help="feature repo to import (on-demand transform code)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8080, help="TCP port (default 8080; 0 = any free)")
    p.add_argument("--workers", type=int, default=None,
                   help="server processes on the one port (default: half the cores, 1..4)")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    p.set_defaults(func=_serve)

    k = sub.add_parser("api-key", help="API keys of the online feature service")
    ksub = k.add_subparsers(dest="api_key_command", metavar="ACTION")
    ksub.required = True
    c = ksub.add_parser("create", help="make a key: prints it once, and its hash to configure")
    c.add_argument("--name", required=True, help="the key's name (shown in access logs)")
    c.add_argument("--scope", action="append", required=True, dest="scopes",
                   help="features:read[:GROUP|:view:VIEW], predict[:DEPLOYMENT], "
                   "push[:GROUP] or admin (repeat for several)")
    c.add_argument("--file", help="append the entry (hash, never the key) to this YAML file")
    c.set_defaults(func=_create_key)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0..65535")
    return port


def _serve(args: argparse.Namespace) -> int:
    from .._extras import require
    from ..errors import ConfigError

    require("fastapi", extra="serve", what="sparkfs serve")
    from ..serving.auth import KeyRing
    from ..serving.process import default_workers, load_service, run

    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise ConfigError("give both --ssl-certfile and --ssl-keyfile, or neither")
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    fs, attached = load_service(getattr(args, "config", None), args.repo)
    try:
        keys = KeyRing.from_config(fs.config.serving.auth)  # refuse bad keys before serving
        logging.getLogger("sparkfs.serving").info(
            "serving %d feature group(s) with %d worker process(es), authentication %s; code "
            "attached for: %s", len(fs.list_feature_groups(latest_only=True)), workers,
            f"on ({len(keys._keys)} key(s))" if keys.enabled else "off",
            ", ".join(attached) or "nothing")
        run(fs, host=args.host, port=args.port, repo=args.repo, log_level=args.log_level,
            workers=workers, config=getattr(args, "config", None),
            ssl={"ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile})
    finally:
        fs.close()
    return 0


def _create_key(args: argparse.Namespace) -> int:
    import yaml

    from ..config import ApiKeyConfig
    from ..errors import ConfigError
    from ..serving.auth import new_key

    key, digest = new_key()
    try:
        entry = ApiKeyConfig(name=args.name, sha256=digest, scopes=args.scopes)
    except ValueError as exc:
        first = exc.errors()[0] if hasattr(exc, "errors") else {"msg": str(exc)}
        raise ConfigError(f"api-key create: {first['msg']}") from None
    text = yaml.safe_dump([entry.model_dump()], sort_keys=False)
    if args.file:
        with open(args.file, "a", encoding="utf-8") as f:
            f.write(text)
    print(f"key (shown once; store it in your client's secret store): {key}")
    print("serving.auth.keys entry" + (f" (appended to {args.file})" if args.file else "") + ":")
    print(text, end="")
    return 0
