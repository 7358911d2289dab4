"""The storage flavour choice on real servers: the stack's TimescaleDB preload,
KNEELOAD_STORAGE_TIMESCALE=auto|on|off, and migration errors that carry the database's message.

Bugs reproduced here (each failed on the code before its fix):

* ``on`` against a server with the extension installed but not preloaded ended in ``the
  connection is closed``: ``CREATE EXTENSION`` raised ``must be preloaded`` (which closes the
  session), and migrate's ``finally`` unlocked the advisory lock on the closed connection,
  replacing the server's message by its own.
* migration 0004 said ``COMMENT ON MATERIALIZED VIEW`` on a continuous aggregate, whose user view
  is a plain view: ``"sample_load_minute" is not a materialized view`` on every Timescale database.

The servers here are throwaway clusters of the same PostgreSQL 15 (``kneeload.stack.postgres``)
on free ports: the local stack is never restarted.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from kneeload.settings import Settings
from kneeload.stack import postgres
from kneeload.storage import Migration, MigrationError, load_migrations, migrate

migrate_module = sys.modules["kneeload.storage.migrate"]

TS_VERSION = postgres.timescaledb_version()
needs_timescale = pytest.mark.skipif(
    TS_VERSION is None,
    reason="TimescaleDB is not installed into PostgreSQL 15 (`make timescaledb`)",
)


@pytest.fixture(scope="module")
def unloaded(settings: Settings, private_pg: Any) -> Iterator[tuple[Settings, str]]:
    """A server started with KNEELOAD_STORAGE_TIMESCALE=off: the extension installed on disk,
    not preloaded — what the local stack was before it preloaded it."""
    with private_pg(settings, "off", "unloaded") as server:
        yield server


def _fresh_db(url: str) -> str:
    u = urlsplit(url)
    name = f"kneeload_fl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(urlunsplit(u._replace(path="/postgres")), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(u._replace(path=f"/{name}"))


def _preload(url: str) -> str:
    with psycopg.connect(url) as c:
        row = c.execute("SHOW shared_preload_libraries").fetchone()
    return str(row[0]) if row else ""


@needs_timescale
def test_the_stack_preloads_timescaledb_when_installed_unless_off(
    settings: Settings,
    private_pg: Any,
    unloaded: tuple[Settings, str],
) -> None:
    with private_pg(settings, "auto", "auto") as (s, url):
        assert "timescaledb" in _preload(url)
        assert postgres.preload_note(s) is None
        with psycopg.connect(url) as c:
            assert c.execute("SHOW timescaledb.telemetry_level").fetchone() == ("off",)
    off, off_url = unloaded
    assert "timescaledb" not in _preload(off_url)
    # a running server without the preload is named by `kneeload stack up`, not restarted
    note = postgres.preload_note(off.model_copy(update={"storage_timescale": "auto"}))
    assert note is not None and "restart" in note and "shared_preload_libraries" in note


@needs_timescale
def test_on_without_the_preload_says_so_and_auto_stays_plain(
    unloaded: tuple[Settings, str],
) -> None:
    s, url = unloaded
    db = _fresh_db(url)
    with pytest.raises(MigrationError) as err:
        migrate(db, s.model_copy(update={"storage_timescale": "on"}))
    msg = str(err.value)
    assert "KNEELOAD_STORAGE_TIMESCALE=on" in msg and "shared_preload_libraries" in msg, msg
    assert "connection is closed" not in msg
    report = migrate(db, s.model_copy(update={"storage_timescale": "auto"}))
    assert report.flavour == "plain" and report.applied
    # a database keeps its flavour: `on` against it now is an error, not a silent switch
    with pytest.raises(MigrationError, match="migrated on plain PostgreSQL"):
        migrate(db, s.model_copy(update={"storage_timescale": "on"}))


def test_a_migration_that_loses_its_session_reports_the_servers_message(
    own_database: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends the session mid-migration (as ``must be preloaded`` did): the error is
    the server's own, with the migration's name — not the unlock's 'the connection is closed'."""
    dies = Migration(1, "dies", "SELECT pg_terminate_backend(pg_backend_pid());")
    monkeypatch.setattr(migrate_module, "load_migrations", lambda: [dies])
    with pytest.raises(MigrationError) as err:
        migrate(own_database, settings)
    msg = str(err.value)
    assert "0001_dies.sql failed" in msg and "terminating connection" in msg, msg
    assert "connection is closed" not in msg


def test_a_failing_migration_names_itself_and_the_database_error(
    own_database: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = Migration(1, "bad", "COMMENT ON MATERIALIZED VIEW pg_catalog.pg_class IS 'x';")
    monkeypatch.setattr(migrate_module, "load_migrations", lambda: [bad])
    with pytest.raises(MigrationError, match=r"0001_bad\.sql failed .*is not a materialized view"):
        migrate(own_database, settings)
    # nothing was recorded and the lock was released: the real migrations apply next
    monkeypatch.undo()
    assert migrate(own_database, settings).applied[0] == "0001_foundation"


def test_migrate_cli_prints_the_error_without_a_traceback(
    own_database: str, settings: Settings, tmp_path: Path
) -> None:
    import os
    import subprocess

    env = {**os.environ, "KNEELOAD_DATABASE_URL": own_database}
    with psycopg.connect(own_database, autocommit=True) as c:  # a conflicting object
        c.execute("CREATE SCHEMA kneeload; CREATE TABLE kneeload.partitioned_tables (x int)")
    out = subprocess.run(
        [str(Path(sys.executable).with_name("kneeload")), "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1
    assert "Error: migration 0001_foundation.sql failed" in out.stderr, out.stderr
    assert "already exists" in out.stderr and "Traceback" not in out.stderr


# --------------------------------------------------------------------------- checksums


def test_0004_fixed_for_timescale_keeps_plain_databases_quiet(
    own_database: str, settings: Settings, flavour: str
) -> None:
    """0004's Timescale branch was fixed after plain databases applied it: their recorded
    checksum (of the old file) is accepted; any other change to an applied file still warns."""
    first = migrate(own_database, settings)
    assert first.flavour == flavour and not first.warnings
    if flavour == "plain":
        with psycopg.connect(own_database, autocommit=True) as c:
            c.execute(
                "UPDATE kneeload.schema_migrations SET checksum = '506bdb698dc010ed' "
                "WHERE version = 4"
            )
        assert migrate(own_database, settings).warnings == []
    with psycopg.connect(own_database, autocommit=True) as c:
        c.execute("UPDATE kneeload.schema_migrations SET checksum = 'deadbeef' WHERE version = 5")
    assert migrate(own_database, settings).warnings == [
        "0005_views.sql changed after it was applied (forward-only: write a new migration instead)"
    ]


def test_checksums_are_per_flavour() -> None:
    """A change inside one flavour's ``@if`` branch leaves the other's checksum alone."""
    from kneeload.storage import Flavour

    m4 = next(m for m in load_migrations() if m.version == 4)
    edited = Migration(4, m4.name, m4.sql.replace("COMMENT ON VIEW", "COMMENT ON  VIEW", 1))
    plain, ts = Flavour("plain"), Flavour("timescale", TS_VERSION)
    assert edited.checksum_for(plain) == m4.checksum_for(plain)
    assert edited.checksum_for(ts) != m4.checksum_for(ts)
    assert edited.checksum != m4.checksum


# --------------------------------------------------------------------------- timescale


@pytest.mark.flavour("timescale")
def test_every_migration_applies_on_timescale(conn: psycopg.Connection[Any]) -> None:
    flavours = {r[0] for r in conn.execute("SELECT flavour FROM kneeload.schema_migrations")}
    assert flavours == {"timescale"}
    hyper = {
        r[0]
        for r in conn.execute(
            "SELECT hypertable_schema || '.' || hypertable_name "
            "FROM timescaledb_information.hypertables"
        )
    }
    registered = {r[0] for r in conn.execute("SELECT table_name FROM kneeload.partitioned_tables")}
    assert registered <= hyper
    caggs = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT view_name, obj_description(format('%I.%I', view_schema, view_name)::regclass)"
            " FROM timescaledb_information.continuous_aggregates"
        )
    }
    assert set(caggs) == {"telemetry_unit_daily"}  # sample_load_minute: a plain view (0023)
    assert all(doc and "continuous aggregate" in doc for doc in caggs.values()), caggs
