"""``sparkfs ui``: the read-only web UI on its own (no feature API, no Spark).

    sparkfs ui --port 8000 [--host 127.0.0.1] [--config conf/local.yaml]

then open http://127.0.0.1:8000/ui. The same pages are served at ``/ui`` by
``sparkfs serve``. ``ui`` is a plain function with typed defaults, so a Typer app
registers it as is (``app.command()(ui)``); ``register`` adds it to the argparse CLI.
"""

from __future__ import annotations

import argparse


def ui(port: int = 8000, host: str = "127.0.0.1", config: str | None = None) -> int:
    """Serve the web UI for the store of ``config`` (default: ``$SPARKFS_CONFIG``, else the
    embedded defaults) on ``host:port`` until interrupted; returns the exit code."""
    from ..errors import SparkfsError
    from ..store import FeatureStore

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise SparkfsError(f"--port {port!r} is not a TCP port (0..65535)")
    import uvicorn

    from ..ui import create_ui_app

    fs = FeatureStore.from_config(config)
    try:
        print(f"sparkfs ui: serving http://{host}:{port}/ui (read-only; Ctrl-C stops)",
              flush=True)
        uvicorn.run(create_ui_app(fs), host=host, port=port, log_level="warning")
    finally:
        fs.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="serve the read-only web UI (no feature API, no Spark)")
    p.add_argument("--config", default=argparse.SUPPRESS,
                   help="YAML config (default: $SPARKFS_CONFIG, else the embedded defaults)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.set_defaults(func=lambda a: ui(a.port, a.host, getattr(a, "config", None)))
