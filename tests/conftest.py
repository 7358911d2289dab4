"""Session fixtures that use the REAL local stack (Kafka, PostgreSQL, Mosquitto).

`make test` starts the stack before pytest (and stops what it started afterwards); these
fixtures only check it is healthy and give each test session its own isolated resources:
a unique topic prefix and a fresh database, so parallel runs and leftovers never collide.

Storage flavour (``--flavour``): ``plain`` (default) runs with KNEELOAD_STORAGE_TIMESCALE=off on
the local stack's PostgreSQL, whatever it has loaded; ``timescale`` starts a throwaway cluster of
the same PostgreSQL 15 with TimescaleDB preloaded (``kneeload.stack.postgres``, a free port, under
var/pytest-pg/, stopped and deleted at the end) and runs with KNEELOAD_STORAGE_TIMESCALE=on,
Kafka and Mosquitto still the local stack's. It needs the extension installed (``make
timescaledb``); without it the session fails with that hint. A test that holds for one flavour
only is marked ``@pytest.mark.flavour("plain")`` (or ``"timescale"``) and is skipped, with the
reason, on the other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from kneeload.settings import Settings, get_settings, reload_settings

RUN_ID = uuid.uuid4().hex[:10]
FLAVOURS = ("plain", "timescale")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--flavour",
        choices=FLAVOURS,
        default="plain",
        help="storage flavour the database tests run on: plain PostgreSQL partitions (default, "
        "the local stack's server) or timescale (a throwaway cluster with TimescaleDB preloaded)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "flavour(name): the test holds for this storage flavour only (skipped on the other)",
    )
    # before any test module reads the settings: every process of the session sees the choice
    flavour = config.getoption("--flavour")
    os.environ["KNEELOAD_STORAGE_TIMESCALE"] = "on" if flavour == "timescale" else "off"
    reload_settings()


def pytest_runtest_setup(item: pytest.Item) -> None:
    wanted = [m.args[0] for m in item.iter_markers("flavour")]
    flavour = item.config.getoption("--flavour")
    if wanted and flavour not in wanted:
        pytest.skip(f"{' / '.join(wanted)} storage only (this run: --flavour={flavour})")


@pytest.fixture(scope="session")
def flavour(request: pytest.FixtureRequest) -> str:
    """The storage flavour of this run (``--flavour``)."""
    return str(request.config.getoption("--flavour"))


@contextlib.contextmanager
def private_postgres(base: Settings, mode: str, tag: str) -> Iterator[tuple[Settings, str]]:
    """A PostgreSQL cluster of the caller's own (the local stack's code, a free port), started
    with ``storage_timescale=mode`` (``off``: no TimescaleDB preload), stopped and deleted at
    the end; yields its settings and a URL with its password file. It lives under the stack's
    var directory, not pytest's temporary one: a concurrent pytest session resets
    /tmp/pytest-of-<user> to mode 0700, which locked the postgres user out of a running
    cluster (``could not open file ".../global/pg_control": Permission denied``, PANIC)."""
    from kneeload.stack import postgres

    root = base.var_dir / "pytest-pg" / f"{tag}-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    root.mkdir(parents=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    s = base.model_copy(
        update={
            "var_dir": root,
            "database_url": f"postgresql://kneeload@127.0.0.1:{port}/kneeload",
            "storage_timescale": mode,
        }
    )
    postgres.start(s)
    try:
        yield s, f"{s.database_url}?passfile={root / 'pg' / 'pgpass'}"
    finally:
        try:
            postgres.stop(s)
        finally:
            shutil.rmtree(root, ignore_errors=True)


PrivatePostgres = Callable[
    [Settings, str, str], contextlib.AbstractContextManager[tuple[Settings, str]]
]


@pytest.fixture(scope="session")
def private_pg() -> PrivatePostgres:
    """:func:`private_postgres`, for tests that need a server of their own."""
    return private_postgres


@pytest.fixture(scope="session")
def _flavour_server(flavour: str) -> Iterator[None]:
    """``--flavour=timescale``: a PostgreSQL cluster of the session's own with TimescaleDB
    preloaded; KNEELOAD_DATABASE_URL points at it for the session (and its subprocesses)."""
    if flavour != "timescale":
        yield
        return
    from kneeload.stack import postgres

    version = postgres.timescaledb_version()
    if version is None:
        pytest.fail(
            "--flavour=timescale needs the TimescaleDB extension installed into PostgreSQL 15: "
            "`make timescaledb`",
            pytrace=False,
        )
    saved = os.environ.get("KNEELOAD_DATABASE_URL")
    with private_postgres(get_settings(), "on", "timescale") as (_s, url):
        os.environ["KNEELOAD_DATABASE_URL"] = url
        reload_settings()
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("KNEELOAD_DATABASE_URL", None)
            else:
                os.environ["KNEELOAD_DATABASE_URL"] = saved
            reload_settings()


def _require(component: str, ok: bool) -> None:
    if not ok:
        pytest.fail(
            f"the local {component} is not healthy: start the stack with `make up` "
            f"(or run the suite with `make test`)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def base_settings(_flavour_server: None) -> Settings:
    """Settings as the stack wrote them (var/kneeload.env), before per-session isolation
    (with ``--flavour=timescale``: the database server is the session's Timescale cluster)."""
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
