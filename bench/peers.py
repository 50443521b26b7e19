"""Peer feature stores for benchmarks, each in its own virtual environment.

``feast_python()`` creates (once) or reuses ``.bench-venvs/feast`` with Feast 0.67 and
returns the path of its python. Feast pins its own pandas/deltalake/great-expectations,
so it never goes into the project's environment. Other benchmarks import this module:

    from peers import feast_python            # bench/ is on sys.path when run as a script
    py = feast_python()                       # raises PeerUnavailable with pip's output

Run it directly to build the environment: ``python bench/peers.py`` prints JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".bench-venvs"
FEAST_VERSION = "0.67.0"


class PeerUnavailable(RuntimeError):
    """A peer could not be installed or started; the message carries the reason."""


def _python_of(env: Path) -> Path:
    return env / "bin" / "python"


def feast_python(quiet: bool = True) -> str:
    """Python of a venv with ``feast==0.67.0`` (created on first use, reused after)."""
    env = VENVS / "feast"
    py = _python_of(env)
    stamp = env / f".feast-{FEAST_VERSION}"
    if stamp.exists() and py.exists():
        return str(py)
    VENVS.mkdir(exist_ok=True)
    if not py.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
    cmd = [str(py), "-m", "pip", "install", "-q", f"feast=={FEAST_VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PeerUnavailable(f"pip install feast=={FEAST_VERSION} failed:\n"
                              f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    check = subprocess.run([str(py), "-c", "import feast; print(feast.__version__)"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise PeerUnavailable(f"feast does not import:\n{check.stderr[-2000:]}")
    stamp.write_text(check.stdout.strip())
    return str(py)


if __name__ == "__main__":
    try:
        print(json.dumps({"feast_python": feast_python(quiet=False)}))
    except PeerUnavailable as exc:
        print(json.dumps({"error": str(exc)}))
        sys.exit(1)
