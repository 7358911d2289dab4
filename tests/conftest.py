"""Session fixtures that use the REAL local stack (Kafka, PostgreSQL, Mosquitto).

`make test` starts the stack before pytest (and stops what it started afterwards); these
fixtures only check it is healthy and give each test session its own isolated resources:
a unique topic prefix and a fresh database, so parallel runs and leftovers never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from kneeload.settings import Settings, get_settings, reload_settings

RUN_ID = uuid.uuid4().hex[:10]


def _require(component: str, ok: bool) -> None:
    if not ok:
        pytest.fail(
            f"the local {component} is not healthy: start the stack with `make up` "
            f"(or run the suite with `make test`)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings as the stack wrote them (var/kneeload.env), before per-session isolation."""
    return get_settings()


@pytest.fixture(scope="session")
def kafka_bootstrap(base_settings: Settings) -> str:
    from kneeload.stack import kafka

    _require("Kafka broker", kafka.healthy(base_settings, timeout_s=10))
    return base_settings.kafka_bootstrap


@pytest.fixture(scope="session")
def topic_prefix() -> str:
    """A topic prefix unique to this test session (topics are deleted at the end)."""
    return f"test-{RUN_ID}."


@pytest.fixture(scope="session")
def database_url(base_settings: Settings) -> Iterator[str]:
    """A fresh database for this test session on the real local PostgreSQL, dropped at the end."""
    import psycopg

    from kneeload.stack import postgres

    _require("PostgreSQL", postgres.healthy(base_settings))
    name = f"kneeload_test_{RUN_ID}"
    admin = urlsplit(base_settings.database_url)
    admin_url = urlunsplit(admin._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(admin._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def own_database(settings: Settings) -> Iterator[str]:
    """A database of the test's own (dropped after it): for tests whose commands read every
    athlete in the database (rebuild-state) or count whole tables, where the session
    database holds every earlier test's data."""
    import time

    import psycopg

    base = urlsplit(settings.database_url)
    name = f"kneeload_own_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit(base._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(base._replace(path=f"/{name}"))
    finally:
        for attempt in range(20):  # a stopping service may still be reconnecting
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except psycopg.errors.ObjectInUse:
                time.sleep(0.5 * (attempt + 1))


@pytest.fixture(scope="session")
def mqtt_url(base_settings: Settings) -> str:
    from kneeload.stack import mosquitto

    _require("Mosquitto", mosquitto.round_trip(base_settings))
    return base_settings.mqtt_url


@pytest.fixture(scope="session")
def settings(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, mqtt_url: str
) -> Iterator[Settings]:
    """Isolated settings for services under test: real stack, own topics, own database.

    Exported as KNEELOAD_* variables too, so subprocesses (a worker started with
    `kneeload worker`) see the same isolation.
    """
    env = {
        "KNEELOAD_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "KNEELOAD_TOPIC_PREFIX": topic_prefix,
        "KNEELOAD_DATABASE_URL": database_url,
        "KNEELOAD_MQTT_URL": mqtt_url,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    s = reload_settings()
    try:
        yield s
    finally:
        _delete_topics(kafka_bootstrap, topic_prefix)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reload_settings()


def _delete_topics(bootstrap: str, prefix: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
    except Exception:  # cleanup is best-effort; leftovers carry a unique prefix
        pass
    finally:
        admin.close()
