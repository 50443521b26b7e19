"""A real standalone Spark cluster on 127.0.0.1 for tests: one master and one worker.

Both run from pyspark's own ``bin/spark-class`` (``SPARK_HOME`` is the installed pyspark
package), so nothing needs downloading. Every port is picked free, the worker writes
into its own ``SPARK_WORKER_DIR`` under the cluster's work directory, the master's REST
submission server is off, and each daemon runs in its own process group that ``stop``
ends by id (the worker's executors die with it).

Use it as a context manager, or build a pytest fixture with ``spark_cluster_fixture``::

    with SparkCluster(workdir) as cluster:
        cluster.submit(["jobs/ingest.py", "--group", "weather", ...])

    # conftest.py or a test module
    spark_cluster = spark_cluster_fixture(scope="module")

Nothing starts before ``start()`` (or ``with``):

>>> cluster = SparkCluster(cores=1, memory="1g")
>>> cluster.running
False
>>> cluster.master_url
Traceback (most recent call last):
...
sparkfs.errors.ClusterError: the Spark cluster is not running: call start() or use it in a with block
>>> 1024 <= free_port() <= 65535
True
"""  # noqa: E501 (doctest output)

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ..errors import ClusterError

HOST = "127.0.0.1"
_JVM_OPTS = "-XX:-UsePerfData"


def spark_home() -> str:
    """The installed pyspark package directory, which carries ``bin/`` and ``jars/``.

    >>> os.path.isfile(os.path.join(spark_home(), "bin", "spark-class"))
    True
    """
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.origin:
        raise ClusterError("pyspark is not installed: pip install the project first")
    return os.path.dirname(spec.origin)


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class SparkCluster:
    """A master and one worker on 127.0.0.1, started with ``spark-class``.

    ``workdir`` holds the daemons' logs, the worker directory and the Spark conf dir
    (a fresh temporary directory, removed on stop, when not given). ``cores`` and
    ``memory`` are the worker's resources. ``start`` waits until the master's status
    page lists the worker as ALIVE, for at most ``startup_timeout`` seconds.
    """

    def __init__(self, workdir: str | os.PathLike | None = None, cores: int = 1,
                 memory: str = "1g", startup_timeout: float = 180.0,
                 env: Mapping[str, str] | None = None) -> None:
        self.cores = cores
        self.memory = memory
        self.startup_timeout = startup_timeout
        self._own_workdir = workdir is None
        self._workdir = Path(workdir) if workdir is not None else None
        self._extra_env = dict(env or {})
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Path] = {}
        self.master_port = 0
        self.master_webui_port = 0

    # -- state ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs.values())

    @property
    def master_url(self) -> str:
        """``spark://127.0.0.1:PORT``, to pass to ``--master``."""
        if not self.running:
            raise ClusterError("the Spark cluster is not running: call start() or use it in a "
                               "with block")
        return f"spark://{HOST}:{self.master_port}"

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise ClusterError("the Spark cluster has no work directory before start()")
        return self._workdir

    @property
    def worker_dir(self) -> Path:
        return self.workdir / "worker"

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "conf"

    def env(self) -> dict[str, str]:
        """The environment daemons and ``spark-submit`` run with."""
        env = dict(os.environ)
        env.update({
            "SPARK_HOME": spark_home(),
            "SPARK_CONF_DIR": str(self.conf_dir),
            "SPARK_LOCAL_IP": HOST,
            "SPARK_LOCAL_DIRS": str(self.workdir / "local"),
            "SPARK_WORKER_DIR": str(self.worker_dir),
            "SPARK_LOG_DIR": str(self.workdir / "logs"),
            "SPARK_PID_DIR": str(self.workdir),
            "SPARK_DAEMON_MEMORY": "512m",
            "SPARK_DAEMON_JAVA_OPTS": _JVM_OPTS,
            "SPARK_LAUNCHER_OPTS": _JVM_OPTS,
            "SPARK_SUBMIT_OPTS": _JVM_OPTS,
            "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
            "PYSPARK_DRIVER_PYTHON": os.environ.get("PYSPARK_DRIVER_PYTHON", sys.executable),
        })
        env.update(self._extra_env)
        return env

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "SparkCluster":
        if self._procs:
            raise ClusterError("the Spark cluster is already started")
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="sparkfs-cluster-"))
        for d in (self.workdir, self.worker_dir, self.conf_dir, self.workdir / "local",
                  self.workdir / "logs"):
            d.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "spark-defaults.conf").write_text(
            "spark.master.rest.enabled false\n"
            "spark.ui.enabled false\n"
            "spark.ui.showConsoleProgress false\n"
            f"spark.driver.host {HOST}\n"
            f"spark.driver.bindAddress {HOST}\n"
            f"spark.driver.extraJavaOptions {_JVM_OPTS}\n"
            f"spark.executor.extraJavaOptions {_JVM_OPTS}\n"
            "spark.sql.session.timeZone UTC\n")
        try:
            self.master_port, self.master_webui_port = free_port(), free_port()
            self._spawn("master", "org.apache.spark.deploy.master.Master",
                        ["--host", HOST, "--port", str(self.master_port),
                         "--webui-port", str(self.master_webui_port)])
            self._wait(lambda: self._status() is not None, "master", "to accept connections")
            self._spawn("worker", "org.apache.spark.deploy.worker.Worker",
                        [f"spark://{HOST}:{self.master_port}", "--host", HOST,
                         "--port", str(free_port()), "--webui-port", str(free_port()),
                         "--cores", str(self.cores), "--memory", self.memory,
                         "--work-dir", str(self.worker_dir)])
            self._wait(self._worker_alive, "worker", "to register with the master")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """End each daemon's process group (worker first), by its id; then clean up."""
        for name in ("worker", "master"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                _kill_group(proc, timeout)
        self._procs.clear()
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> "SparkCluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- applications -----------------------------------------------------------------------
    def submit(self, args: Sequence[str], conf: Mapping[str, str] | None = None,
               timeout: float = 600.0, check: bool = True,
               cwd: str | os.PathLike | None = None,
               env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``spark-submit --master <this cluster> [--conf k=v ...] *args`` (client mode).

        Returns the completed process (stdout and stderr captured as text). With
        ``check`` a non-zero exit raises ``ClusterError`` carrying the end of its output.
        """
        settings = {"spark.executor.memory": "512m", "spark.cores.max": str(self.cores)}
        settings.update(conf or {})
        cmd = [os.path.join(spark_home(), "bin", "spark-submit"), "--master", self.master_url]
        for k, v in settings.items():
            cmd += ["--conf", f"{k}={v}"]
        cmd += list(args)
        run_env = self.env()
        run_env.update(env or {})
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  cwd=cwd, env=run_env, start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"spark-submit {' '.join(args)} did not finish in {timeout:.0f}s:\n"
                               f"{_tail(exc.stderr)}") from None
        if check and proc.returncode != 0:
            raise ClusterError(f"spark-submit {' '.join(args)} failed with exit code "
                               f"{proc.returncode}:\n{_tail(proc.stderr)}\n{_tail(proc.stdout)}")
        return proc

    def status(self) -> dict:
        """The master's JSON status (``workers``, ``activeapps``, ``completedapps``...)."""
        status = self._status()
        if status is None:
            raise ClusterError(f"the Spark master on port {self.master_webui_port} does not "
                               "answer")
        return status

    def log(self, name: str) -> str:
        """The captured output of the ``master`` or ``worker`` daemon."""
        path = self._logs.get(name)
        return path.read_text(errors="replace") if path and path.exists() else ""

    # -- internals --------------------------------------------------------------------------
    def _spawn(self, name: str, main_class: str, args: list[str]) -> None:
        log = self.workdir / "logs" / f"{name}.out"
        self._logs[name] = log
        cmd = [os.path.join(spark_home(), "bin", "spark-class"), main_class, *args]
        with open(log, "wb") as out:
            self._procs[name] = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env(), cwd=str(self.workdir), start_new_session=True)

    def _status(self) -> dict | None:
        url = f"http://{HOST}:{self.master_webui_port}/json/"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.loads(resp.read().decode())
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def _worker_alive(self) -> bool:
        status = self._status() or {}
        return any(w.get("state") == "ALIVE" for w in status.get("workers", []))

    def _wait(self, ready, name: str, what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            proc = self._procs[name]
            if proc.poll() is not None:
                raise ClusterError(f"the Spark {name} exited with code {proc.returncode} before "
                                   f"it was ready:\n{_tail(self.log(name))}")
            if ready():
                return
            time.sleep(0.5)
        raise ClusterError(f"the Spark {name} took more than {self.startup_timeout:.0f}s {what}:"
                           f"\n{_tail(self.log(name))}")


def _kill_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the process group led by ``proc`` (started with a new session), then SIGKILL."""
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                continue
    # Children (executors, python workers) share the group: make sure none outlives it.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tail(text: Any, lines: int = 40) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").splitlines()[-lines:])


def spark_cluster_fixture(
    scope: Literal["session", "package", "module", "class", "function"] = "session",
    **options: Any,
):
    """A pytest fixture that yields a started ``SparkCluster`` and stops it afterwards.

    ``options`` go to ``SparkCluster`` (``cores``, ``memory``, ``startup_timeout``...).

    >>> spark_cluster = spark_cluster_fixture(scope="module", cores=1)
    >>> callable(spark_cluster)
    True
    """
    import pytest

    @pytest.fixture(scope=scope)
    def spark_cluster(tmp_path_factory) -> Iterator[SparkCluster]:
        with SparkCluster(tmp_path_factory.mktemp("spark-cluster"), **options) as cluster:
            yield cluster

    return spark_cluster
