"""A real single-node HBase 2.6 and its Thrift1 server, started from the fetched jars.

``RealHBase`` runs two JVMs on 127.0.0.1, each in its own process group:

* ``org.apache.hadoop.hbase.master.HMaster start`` in **standalone mode**
  (``hbase.cluster.distributed=false``): master, region server and ZooKeeper in one JVM,
  data under ``<workdir>/root`` on the local filesystem;
* ``org.apache.hadoop.hbase.thrift.ThriftServer``: the Thrift1 gateway happybase speaks
  (binary protocol, buffered transport, thread-pool server).

Every port (ZooKeeper client, master, region server, Thrift) is picked free; the web UIs
are off. The classpath is the ``hbase`` JVM bundle (``sparkfs.jvm``, pinned in
``conf/jvm/hbase/pom.xml``) after a generated conf directory holding ``hbase-site.xml``
and a ``log4j.properties`` that sends each JVM's log to ``<workdir>/logs/<name>.log``.
Java 17 needs the ``--add-opens`` flags in ``JAVA_OPTS``.

``start()`` returns once a ``happybase.Connection`` lists tables (``startup_seconds``
records how long that took); ``stop()`` sends SIGTERM to each process group, waits
``stop_grace`` seconds, then SIGKILLs the group: no JVM outlives it, also when a test
fails. As a context manager::

    with RealHBase() as hbase:
        fs = FeatureStore({"online": hbase.online_config(), ...})

``unavailable_reason()`` says why it cannot start here (no Java, jars not fetched), or
returns None. From a shell: ``sparkfs dev-hbase --real``.

>>> hb = RealHBase()
>>> hb.running
False
>>> hb.port
Traceback (most recent call last):
...
sparkfs.errors.HBaseServerError: the HBase server is not running: call start() or use it in a with block
>>> "--add-opens=java.base/java.nio=ALL-UNNAMED" in JAVA_OPTS
True
"""  # noqa: E501 (doctest output)

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from ..errors import HBaseServerError
from .spark_cluster import _kill_group, _tail, free_port

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.hadoop.hbase.master.HMaster"
THRIFT_CLASS = "org.apache.hadoop.hbase.thrift.ThriftServer"

#: JVM flags HBase 2.6 needs on Java 17 (it reaches into JDK internals through reflection).
JAVA_OPTS = [
    "-XX:-UsePerfData", "-XX:+UseG1GC", "-Djava.net.preferIPv4Stack=true",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    *(f"--add-opens=java.base/{pkg}=ALL-UNNAMED" for pkg in (
        "java.lang", "java.lang.reflect", "java.nio", "java.io", "java.util",
        "java.util.concurrent", "java.util.concurrent.atomic", "jdk.internal.misc",
        "sun.nio.ch")),
]

_LOG4J = """\
log4j.rootLogger=WARN,F
log4j.appender.F=org.apache.log4j.FileAppender
log4j.appender.F.File=${sparkfs.log.file}
log4j.appender.F.layout=org.apache.log4j.PatternLayout
log4j.appender.F.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.zookeeper=ERROR
log4j.logger.org.apache.hadoop.metrics2=ERROR
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
"""


def java_executable() -> str | None:
    """``$JAVA_HOME/bin/java`` when set, else ``java`` on the PATH, else None."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.isfile(os.path.join(home, "bin", "java")):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def unavailable_reason() -> str | None:
    """Why a real HBase cannot start on this machine, in one line; None when it can.

    >>> unavailable_reason() is None or isinstance(unavailable_reason(), str)
    True
    """
    from .. import jvm

    if java_executable() is None:
        return "no Java: install a JDK 17 (apt-get install openjdk-17-jre-headless)"
    if not jvm.is_fetched("hbase"):
        return ("the HBase jars are not fetched: run `python -m sparkfs.jvm fetch hbase` "
                "(Maven Central) or `make setup`")
    return None


def site_xml(settings: dict[str, Any]) -> str:
    """An ``hbase-site.xml`` document holding ``settings``.

    >>> print(site_xml({"hbase.cluster.distributed": False}))
    <?xml version="1.0"?>
    <configuration>
      <property><name>hbase.cluster.distributed</name><value>false</value></property>
    </configuration>
    """
    def text(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    props = "".join(f"  <property><name>{escape(k)}</name><value>{escape(text(v))}</value>"
                    "</property>\n" for k, v in settings.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{props}</configuration>'


class RealHBase:
    """A standalone HBase plus Thrift1 server on 127.0.0.1 (see the module docstring).

    ``workdir`` holds data, conf and logs (a fresh temporary directory, removed on stop,
    when not given). ``thrift_port=0`` picks a free port. ``heap`` is the master JVM's
    ``-Xmx`` (the Thrift JVM gets 256m).
    """

    def __init__(self, workdir: str | os.PathLike | None = None, thrift_port: int = 0,
                 heap: str = "768m", startup_timeout: float = 240.0,
                 stop_grace: float = 10.0) -> None:
        self._own_workdir = workdir is None
        self._workdir = Path(workdir) if workdir is not None else None
        self._want_port = thrift_port
        self.heap = heap
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self._procs: dict[str, subprocess.Popen] = {}
        self._port = 0
        self.zk_port = 0
        self.startup_seconds: float | None = None

    # -- state ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs.values())

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        """The Thrift1 port happybase connects to."""
        if not self.running:
            raise HBaseServerError("the HBase server is not running: call start() or use it "
                                   "in a with block")
        return self._port

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise HBaseServerError("the HBase server has no work directory before start()")
        return self._workdir

    def log_path(self, name: str) -> Path:
        """The log file of the ``master`` or ``thrift`` JVM."""
        return self.workdir / "logs" / f"{name}.log"

    def log(self, name: str) -> str:
        """The end of the ``master`` or ``thrift`` JVM's log and console output."""
        parts = []
        for path in (self.log_path(name), self.workdir / "logs" / f"{name}.out"):
            if path.exists():
                parts.append(_tail(path.read_text(errors="replace"), 30))
        return "\n".join(parts)

    def online_config(self, **overrides: Any) -> dict[str, Any]:
        """The ``online`` config section pointing sparkfs at this server."""
        config = {"type": "hbase", "host": self.host, "port": self.port}
        config.update(overrides)
        return config

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "RealHBase":
        if self._procs:
            raise HBaseServerError("the HBase server is already started")
        reason = unavailable_reason()
        if reason is not None:
            raise HBaseServerError(f"cannot start a real HBase: {reason}")
        from .. import jvm

        t0 = time.monotonic()
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="sparkfs-hbase-"))
        conf = self.workdir / "conf"
        for d in (conf, self.workdir / "logs", self.workdir / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        self.zk_port = free_port()
        self._port = self._want_port or free_port()
        settings = {
            "hbase.cluster.distributed": False,
            "hbase.rootdir": (self.workdir / "root").as_uri(),
            "hbase.tmp.dir": str(self.workdir / "tmp"),
            "hbase.zookeeper.quorum": HOST,
            "hbase.zookeeper.property.clientPort": self.zk_port,
            "hbase.zookeeper.property.dataDir": str(self.workdir / "zk"),
            "hbase.master.port": free_port(),
            "hbase.regionserver.port": free_port(),
            "hbase.master.ipc.address": HOST,
            "hbase.regionserver.ipc.address": HOST,
            "hbase.master.info.port": -1,
            "hbase.regionserver.info.port": -1,
            "hbase.thrift.info.port": -1,
            "hbase.unsafe.stream.capability.enforce": False,
            "hbase.regionserver.handler.count": 10,
        }
        (conf / "hbase-site.xml").write_text(site_xml(settings))
        (conf / "log4j.properties").write_text(_LOG4J)
        classpath = os.pathsep.join([str(conf), jvm.classpath("hbase")])
        atexit.register(self.stop)  # also when the caller never reaches stop()
        try:
            self._spawn("master", classpath, self.heap, [MASTER_CLASS, "start"])
            self._spawn("thrift", classpath, "256m",
                        [THRIFT_CLASS, "-p", str(self._port), "--bind", HOST, "--infoport", "-1",
                         "-threadpool", "start"])
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = round(time.monotonic() - t0, 2)
        return self

    def stop(self) -> None:
        """End the Thrift server's and the master's process groups; remove an own workdir."""
        for name in ("thrift", "master"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                _kill_group(proc, self.stop_grace)
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> "RealHBase":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------
    def _spawn(self, name: str, classpath: str, heap: str, args: list[str]) -> None:
        java = java_executable()
        assert java is not None  # checked by unavailable_reason()
        cmd = [java, f"-Xmx{heap}", *JAVA_OPTS, f"-Dsparkfs.log.file={self.log_path(name)}",
               f"-Dhbase.log.dir={self.workdir / 'logs'}", "-cp", classpath, *args]
        with open(self.workdir / "logs" / f"{name}.out", "wb") as out:
            self._procs[name] = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=str(self.workdir), start_new_session=True)

    def _wait_ready(self) -> None:
        """Until a happybase connection lists tables (the master is initialised), then
        until a probe table can be created, written and dropped (the region server holds
        ``hbase:meta``; the first create otherwise waits ~10 s inside a test)."""
        import happybase

        deadline = time.monotonic() + self.startup_timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise HBaseServerError(
                        f"the HBase {name} JVM exited with code {proc.returncode} before it "
                        f"was ready:\n{self.log(name)}")
            try:
                con = happybase.Connection(HOST, self._port, timeout=20_000)
                try:
                    con.tables()
                    self._probe(con)
                    return
                finally:
                    con.close()
            except Exception as exc:  # not up yet: refused, reset, or master initialising
                last = exc
            time.sleep(0.5)
        raise HBaseServerError(
            f"HBase did not answer on Thrift port {self._port} within "
            f"{self.startup_timeout:.0f}s (last: {type(last).__name__}: {last}):\n"
            f"{self.log('master')}\n{self.log('thrift')}")

    @staticmethod
    def _probe(con: Any) -> None:
        name = b"sparkfs_startup_probe"
        if name not in con.tables():
            con.create_table(name, {"f": {}})
        con.table(name).put(b"r", {b"f:q": b"v"})
        con.delete_table(name, disable=True)
