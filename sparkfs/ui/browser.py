"""Running the UI in a real browser, for the browser tests and the demo's screenshots:
``serve(app)`` runs an app with uvicorn on a free 127.0.0.1 port in a background thread;
``chromium(playwright)`` launches Debian's Chromium (``/usr/bin/chromium``, installed by
``make chromium``) through Playwright, headless, with no background networking.

>>> CHROMIUM_ARGS[:2]
['--no-sandbox', '--disable-gpu']
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..errors import SparkfsError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any, timeout_s: float = 60.0) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="sparkfs-ui-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise SparkfsError(f"the UI server did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def chromium(playwright: Any) -> Iterator[Any]:
    """A headless Chromium browser (Playwright ``Browser``; Playwright gives each launch a
    fresh temporary profile)."""
    if not os.access(CHROMIUM, os.X_OK):
        raise SparkfsError(f"{CHROMIUM} is missing: run `make chromium` "
                           "(apt-get install chromium)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()
