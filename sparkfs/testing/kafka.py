"""A real single-node Kafka broker (KRaft mode, no ZooKeeper) on 127.0.0.1, from the jars
``sparkfs.jvm`` fetched (the ``kafka`` bundle), for tests, benchmarks and the demo.

One JVM is both controller and broker. Its storage is formatted under a temporary directory,
ports are picked free, and it runs in its own process group so that ``stop()`` (also on
``with`` exit and at interpreter exit) leaves no JVM behind. Ready means a client's metadata
request is answered.

>>> broker = KafkaBroker()
>>> broker.running
False
>>> broker.bootstrap_servers
Traceback (most recent call last):
...
sparkfs.errors.KafkaError: the Kafka broker is not running: call start() first

Typical use (needs Java and the fetched jars)::

    with KafkaBroker() as kafka:
        kafka.create_topic("departures", partitions=2)
        kafka.produce("departures", [b'{"carrier": "UA"}'])
        spark.read.format("kafka").option("kafka.bootstrap.servers", kafka.bootstrap_servers)
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import KafkaError

HOST = "127.0.0.1"

_LOG4J2 = """\
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d %p %c{{1}} %m%n
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = info
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 random bytes in URL-safe base64, never starting with
    ``-`` (the storage tool would read such an id as an option; Kafka's own
    ``Uuid.randomUuid`` draws again in that case, and so does this).

    >>> ids = [new_cluster_id() for _ in range(500)]
    >>> {len(i) for i in ids}, any(i.startswith("-") for i in ids)
    ({22}, False)
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaBroker:
    """A throw-away single-node Kafka broker; ``start()``/``stop()`` or use it with ``with``."""

    def __init__(self, workdir: str | os.PathLike | None = None, heap: str = "512m",
                 start_timeout: float = 90.0) -> None:
        self._given_dir = Path(workdir) if workdir else None
        self._dir: Path | None = None
        self._heap = heap
        self._timeout = start_timeout
        self._proc: subprocess.Popen | None = None
        self._port = 0

    @property
    def running(self) -> bool:
        """True while the broker's JVM is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT`` for clients and Spark's ``kafka.bootstrap.servers``."""
        if not self.running:
            raise KafkaError("the Kafka broker is not running: call start() first")
        return f"{HOST}:{self._port}"

    def log(self) -> str:
        """The broker's log file (warnings and start-up), for error messages."""
        path = self._dir / "kafka.log" if self._dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def start(self) -> "KafkaBroker":
        """Format storage, start the JVM and wait until it answers metadata requests."""
        from .. import jvm

        java = shutil.which("java")
        if java is None:
            raise KafkaError("java is not installed: the Kafka broker needs Java 17")
        classpath = jvm.classpath("kafka")
        self._dir = self._given_dir or Path(tempfile.mkdtemp(prefix="sparkfs-kafka-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        self._port, controller = _free_port(), _free_port()
        props = self._dir / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller", "node.id=1",
            f"controller.quorum.voters=1@{HOST}:{controller}",
            f"listeners=PLAINTEXT://{HOST}:{self._port},CONTROLLER://{HOST}:{controller}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{self._port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self._dir / 'data'}",
            "num.partitions=1", "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "group.initial.rebalance.delay.ms=0", "auto.create.topics.enable=false", ""]))
        log4j = self._dir / "log4j2.properties"
        log4j.write_text(_LOG4J2.format(log=self._dir / "kafka.log"))
        base = [java, f"-Xmx{self._heap}", "-XX:-UsePerfData", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
        cluster_id = new_cluster_id()
        fmt = subprocess.run(base + ["kafka.tools.StorageTool", "format", "-t", cluster_id,
                                     "-c", str(props)], capture_output=True, text=True)
        if fmt.returncode != 0:
            raise KafkaError(f"formatting Kafka storage failed: {(fmt.stderr or fmt.stdout)[-800:]}")
        self._proc = subprocess.Popen(base + ["kafka.Kafka", str(props)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        atexit.register(self.stop)
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise KafkaError("the Kafka broker exited while starting:\n" + self.log()[-2000:])
            if self._answers():
                return self
            time.sleep(0.5)
        self.stop()
        raise KafkaError(f"the Kafka broker did not answer within {self._timeout:.0f} s:\n"
                         + self.log()[-2000:])

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the broker's process group (TERM, then KILL) and remove its temp directory."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            import signal

            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
            except ProcessLookupError:
                pass
        if self._dir is not None and self._given_dir is None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "KafkaBroker":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- client helpers (confluent-kafka) ------------------------------------------------
    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create a topic and wait until it exists."""
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                                replication_factor=1)])
        for fut in futures.values():
            fut.result(timeout=30)

    def produce(self, topic: str, values: Iterable[bytes | str],
                keys: Iterable[bytes | str | None] | None = None) -> int:
        """Send ``values`` (with optional ``keys``) and wait until all are acknowledged."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap_servers, "acks": "all",
                             "enable.idempotence": True, "linger.ms": 5})
        errors: list[str] = []

        def _ack(err, _msg):
            if err is not None:
                errors.append(str(err))

        n = 0
        key_list = list(keys) if keys is not None else None
        for i, value in enumerate(values):
            key = key_list[i] if key_list is not None else None
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=_ack)
                    break
                except BufferError:
                    producer.poll(0.1)
            n += 1
        remaining = producer.flush(60)
        if remaining or errors:
            raise KafkaError(f"{remaining} message(s) not delivered to {topic!r}; "
                             f"errors: {errors[:3]}")
        return n

    def _answers(self) -> bool:
        try:  # the port first, so that librdkafka does not log refused connections
            socket.create_connection((HOST, self._port), timeout=1).close()
        except OSError:
            return False
        try:
            from confluent_kafka.admin import AdminClient

            admin = AdminClient({"bootstrap.servers": f"{HOST}:{self._port}",
                                 "socket.connection.setup.timeout.ms": 2000})
            admin.list_topics(timeout=2)
            return True
        except Exception:  # not up yet: KafkaException or a timeout
            return False
