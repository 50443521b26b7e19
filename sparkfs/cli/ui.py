"""``sparkfs ui``: the read-only web UI on its own (no feature API; Spark only for the
drift page).

    sparkfs ui --port 8000 [--host 127.0.0.1] [--config conf/local.yaml]

then open http://127.0.0.1:8000/ui. The same pages are served at ``/ui`` by
``sparkfs serve``. ``ui`` is a plain function;
``sparkfs.cli`` declares the command (with the global ``--config``).
"""

from __future__ import annotations


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
