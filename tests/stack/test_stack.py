"""The local stack: real broker, database and MQTT round trips; idempotent start; clear errors."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import uuid

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from kneeload.settings import Settings
from kneeload.stack import kafka, mosquitto, postgres
from kneeload.stack.procs import Endpoint, StackError


def test_status_reports_every_component_healthy(base_settings: Settings) -> None:
    for mod in (kafka, postgres, mosquitto):
        st = mod.status(base_settings)
        assert st["healthy"], st


def test_kafka_health_is_one_metadata_request_without_a_client_library(
    base_settings: Settings,
) -> None:
    """`stack status` asks the broker over a socket (kafka-python's admin client cost ~0.2 s
    of import): the real broker lists itself; PostgreSQL's port and a closed port are not
    Kafka."""
    ep = Endpoint.parse(base_settings.kafka_bootstrap, 19092)
    admin = KafkaAdminClient(bootstrap_servers=base_settings.kafka_bootstrap)
    try:
        want = {(b["broker_id"], b["host"], b["port"]) for b in admin.describe_cluster()["brokers"]}
    finally:
        admin.close()
    assert set(kafka.metadata_brokers(ep.host, ep.port)) == want
    pg = Endpoint.parse(base_settings.database_url.split("@", 1)[1], 5432)
    for port in (pg.port, _free_port()):
        s = base_settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{port}"})
        assert not kafka.healthy(s, timeout_s=2.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_up_twice_is_harmless() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kneeload", "stack", "up"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("already running, healthy") == 3, out.stdout


def test_taken_port_names_the_port_and_setting(base_settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        s = base_settings.model_copy(
            update={
                "var_dir": base_settings.var_dir / f"tmp-{uuid.uuid4().hex[:6]}",
                "mqtt_url": f"mqtt://127.0.0.1:{port}",
            }
        )
        with pytest.raises(StackError) as err:
            mosquitto.start(s)
    assert str(port) in str(err.value)
    assert "KNEELOAD_MQTT_URL" in str(err.value)


def test_kafka_python_produce_consume_and_admin(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}stack.kafka-python"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1)])
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    for i in range(10):
        producer.send(topic, key=f"a{i % 3}".encode(), value=f"v{i}".encode())
    producer.flush()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"g-{uuid.uuid4().hex}",
        consumer_timeout_ms=10000,
    )
    got = sorted(m.value.decode() for m in consumer)
    consumer.close()
    admin.close()
    assert got == sorted(f"v{i}" for i in range(10))


def test_aiokafka_produce_consume(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}stack.aiokafka"

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for i in range(20):
                await producer.send_and_wait(topic, f"m{i}".encode(), key=b"k")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            auto_offset_reset="earliest",
            group_id=f"g-{uuid.uuid4().hex}",
            enable_auto_commit=False,
        )
        await consumer.start()
        values: list[bytes] = []
        try:
            while len(values) < 20:
                batch = await consumer.getmany(timeout_ms=5000)
                if not batch:
                    break
                for msgs in batch.values():
                    values.extend(m.value for m in msgs)
            await consumer.commit()
        finally:
            await consumer.stop()
        return values

    values = asyncio.run(run())
    assert values == [f"m{i}".encode() for i in range(20)]  # one key → one partition → in order


def test_database_write_and_read(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE probe (id int primary key, note text)")
        with conn.cursor().copy("COPY probe (id, note) FROM STDIN") as cp:
            for i in range(100):
                cp.write_row((i, f"row {i}"))
        conn.commit()
        assert conn.execute("SELECT count(*), max(id) FROM probe").fetchone() == (100, 99)
        version = conn.execute("SHOW server_version").fetchone()
    assert version is not None and version[0].startswith("15")


def test_endpoint_parsing() -> None:
    assert Endpoint.parse("127.0.0.1:19092,other:1", 9092) == Endpoint("127.0.0.1", 19092)
    assert Endpoint.parse("mqtt://u:p@h:1883", 1) == Endpoint("h", 1883)
    assert Endpoint.parse("localhost", 9092) == Endpoint("localhost", 9092)
