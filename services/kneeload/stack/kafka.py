"""Apache Kafka broker in KRaft mode (one combined broker+controller node on loopback).

Jars come from Maven Central through infra/kafka/pom.xml (``make kafka-jars``) into
``var/kafka/libs``. The configuration is written here from the settings, storage is formatted
once, and the broker is healthy when it answers a metadata request.
"""

from __future__ import annotations

import socket
import struct
import uuid
from pathlib import Path

from kneeload.settings import Settings
from kneeload.stack.procs import (
    Endpoint,
    StackError,
    port_conflict,
    port_open,
    read_pid,
    spawn,
    terminate,
    wait_until,
)

NAME = "kafka"
BOOTSTRAP_SETTING = "KNEELOAD_KAFKA_BOOTSTRAP"
CONTROLLER_SETTING = "KNEELOAD_KAFKA_CONTROLLER_PORT"


def _dirs(s: Settings) -> tuple[Path, Path, Path]:
    root = s.var_dir / "kafka"
    return root, root / "libs", root / "data"


def _server_properties(s: Settings, data: Path) -> str:
    ep = Endpoint.parse(s.kafka_bootstrap, 19092)
    ctl = s.kafka_controller_port
    return f"""# Written by kneeload.stack.kafka from KNEELOAD_* settings; rewritten at every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{ep.host}:{ctl}
listeners=PLAINTEXT://{ep.host}:{ep.port},CONTROLLER://{ep.host}:{ctl}
advertised.listeners=PLAINTEXT://{ep.host}:{ep.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
num.partitions={s.topic_partitions}
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# consumer groups in tests and the demo join without the 3 s production delay
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=168
log.segment.bytes=134217728
message.max.bytes=10485760
replica.fetch.max.bytes=10485760
"""


_LOG4J2 = """# Written by kneeload.stack.kafka
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
logger.apache.name = org.apache.kafka
logger.apache.level = warn
"""


#: Kafka protocol: Metadata request (api key 3) version 4, the oldest Kafka 4 still serves
#: (KIP-896 removed 0-3) and the newest without the flexible (tagged-field) encoding
_METADATA_KEY, _METADATA_VERSION = 3, 4


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise ConnectionError("kafka: connection closed mid-response")
        buf += part
    return buf


def metadata_brokers(host: str, port: int, timeout_s: float = 3.0) -> list[tuple[int, str, int]]:
    """The brokers a Kafka node lists in its answer to a Metadata request for no topics:
    ``[(node id, host, port), ...]``. One request over a plain socket (no client library:
    ``kneeload stack status`` starts in a fraction of the kafka-python import).

    Request v4: header (api key, version, correlation id, client id), then topics = empty
    array, allow_auto_topic_creation = false. Response v4: correlation id, throttle time,
    brokers [node id, host, port, rack], cluster id, controller id, topics (ignored).
    Raises ``OSError`` / ``ValueError`` when nothing or something else answers.
    """
    client = b"kneeload-status"
    corr = 0x6B6C  # any: checked in the answer
    body = struct.pack(">hhih", _METADATA_KEY, _METADATA_VERSION, corr, len(client)) + client
    body += struct.pack(">ib", 0, 0)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        if not 8 <= size <= 1 << 24:
            raise ValueError(f"kafka: not a Kafka answer (size {size})")
        resp = _read_exact(sock, size)
    got, _throttle, n = struct.unpack_from(">iii", resp, 0)
    if got != corr:
        raise ValueError("kafka: answer to another request")
    off, brokers = 12, []
    for _ in range(n):
        node, hlen = struct.unpack_from(">ih", resp, off)
        off += 6
        bhost = resp[off : off + hlen].decode()
        off += hlen
        (bport, rlen) = struct.unpack_from(">ih", resp, off)
        off += 6 + max(rlen, 0)
        brokers.append((node, bhost, bport))
    return brokers


def healthy(s: Settings, timeout_s: float = 3.0) -> bool:
    """The broker answers a metadata request listing at least one broker
    (:func:`metadata_brokers`)."""
    ep = Endpoint.parse(s.kafka_bootstrap, 19092)
    try:
        return bool(metadata_brokers(ep.host, ep.port, timeout_s))
    except (OSError, ValueError, struct.error, UnicodeDecodeError):
        return False


def status(s: Settings) -> dict[str, object]:
    root, _, _ = _dirs(s)
    pid = read_pid(root / "kafka.pid")
    return {
        "component": NAME,
        "pid": pid,
        "endpoint": s.kafka_bootstrap,
        "healthy": healthy(s),
        "log": str(root / "kafka.log"),
    }


def start(s: Settings) -> bool:
    """Start the broker unless it runs; return True if this call started it."""
    root, libs, data = _dirs(s)
    pidfile, log = root / "kafka.pid", root / "kafka.log"
    ep = Endpoint.parse(s.kafka_bootstrap, 19092)
    if read_pid(pidfile) is not None:
        wait_until(lambda: healthy(s), timeout_s=60, what="kafka", log=log)
        return False
    if port_open(ep.host, ep.port):
        if healthy(s):
            raise StackError(
                f"kafka: a Kafka broker not started by kneeload already answers on "
                f"{ep.host}:{ep.port}. "
                f"Stop it or point {BOOTSTRAP_SETTING} elsewhere."
            )
        raise port_conflict(ep.host, ep.port, component="kafka", setting=BOOTSTRAP_SETTING)
    if port_open(ep.host, s.kafka_controller_port):
        raise port_conflict(
            ep.host,
            s.kafka_controller_port,
            component="kafka controller",
            setting=CONTROLLER_SETTING,
        )
    jars = sorted(libs.glob("*.jar"))
    if not jars:
        raise StackError(f"kafka: no jars in {libs}; run `make kafka-jars` (Maven fetches them).")
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "server.properties"
    conf.write_text(_server_properties(s, data))
    (root / "log4j2.properties").write_text(_LOG4J2)
    classpath = f"{libs}/*"
    java_opts = [
        f"-Xms{s.kafka_heap}",
        f"-Xmx{s.kafka_heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={root / 'log4j2.properties'}",
    ]
    if not (data / "meta.properties").exists():
        import subprocess

        cluster_id = (
            (root / "cluster.id").read_text().strip() if (root / "cluster.id").exists() else None
        )
        if not cluster_id:
            cluster_id = _kraft_cluster_id()
            (root / "cluster.id").write_text(cluster_id)
        out = subprocess.run(
            [
                "java",
                *java_opts,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(conf),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise StackError(f"kafka: formatting storage failed:\n{out.stdout}\n{out.stderr}")
    pid = spawn(
        ["java", *java_opts, "-cp", classpath, "kafka.Kafka", str(conf)], log=log, pidfile=pidfile
    )
    wait_until(
        lambda: healthy(s),
        timeout_s=90,
        what="kafka",
        alive=lambda: read_pid(pidfile) == pid,
        log=log,
    )
    return True


def _kraft_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes as unpadded URL-safe base64 (like random-uuid).

    Redrawn while it starts with ``-`` (1 draw in 64), as Kafka's own ``Uuid.randomUuid`` does:
    the storage tool's ``-t <id>`` would read such an id as an option and fail to format
    ("expected one argument"), which once failed a test's private broker."""
    import base64

    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def stop(s: Settings) -> bool:
    root, _, _ = _dirs(s)
    return terminate(root / "kafka.pid", what=NAME, timeout_s=60)
