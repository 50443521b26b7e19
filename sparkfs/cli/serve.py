"""``sparkfs serve``: run the online feature service (HTTP JSON, no Spark).

    sparkfs serve --config conf/local.yaml --repo jobs/flights/features.py --port 8080 [--workers 2]

``--workers N`` runs N uvicorn worker processes on the one port (default: half the cores);
the repo and config are checked once before any worker starts, so a bad repo or config
fails with one clear message, and a worker that cannot start stops the whole service.

The repo is imported for its on-demand transform code; its definitions must already be
applied (``sparkfs apply``): the service never changes the registry, and refuses to start
when the repo's transform code differs from the registered fingerprint.
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
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 = any free)")
    p.add_argument("--workers", type=int, default=None,
                   help="server processes on the one port (default: half the cores, 1..4)")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from .._extras import require
    from ..errors import ConfigError

    require("fastapi", extra="serve", what="sparkfs serve")
    from ..serving.app import default_workers, load_service, run

    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    fs, attached = load_service(getattr(args, "config", None), args.repo)
    logging.getLogger("sparkfs.serving").info(
        "serving %d feature group(s) with %d worker process(es); code attached for: %s",
        len(fs.list_feature_groups(latest_only=True)), workers, ", ".join(attached) or "nothing")
    try:
        run(fs, host=args.host, port=args.port, repo=args.repo, log_level=args.log_level,
            workers=workers, config=getattr(args, "config", None))
    finally:
        fs.close()
    return 0
