"""Migrations on the real database: idempotence, partitions (plain) or chunks (TimescaleDB),
retention, the Timescale DDL. Run on both flavours (``--flavour``); the partition mechanics of
each are marked with theirs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from kneeload.settings import Settings
from kneeload.storage import Flavour, load_migrations, migrate, render


def test_migrate_twice_is_a_no_op(
    db: str, settings: Settings, conn: psycopg.Connection[Any], flavour: str
) -> None:
    before = conn.execute(
        "SELECT version, applied_at FROM kneeload.schema_migrations ORDER BY 1"
    ).fetchall()
    assert [v for v, _ in before] == [m.version for m in load_migrations()]
    report = migrate(db, settings)
    assert report.applied == [] and report.already == len(before) and report.flavour == flavour
    assert (
        conn.execute(
            "SELECT version, applied_at FROM kneeload.schema_migrations ORDER BY 1"
        ).fetchall()
        == before
    )


@pytest.mark.flavour("plain")
def test_partitions_created_ahead(conn: psycopg.Connection[Any], settings: Settings) -> None:
    rows = conn.execute(
        "SELECT range_start, range_end FROM kneeload.partitions('kneeload.watch_sample_batches') "
        "WHERE NOT is_default"
    ).fetchall()
    ends = [e for _, e in rows]
    assert max(ends) >= datetime.now(UTC) + timedelta(days=settings.storage_premake_days)
    assert min(s for s, _ in rows) <= datetime.now(UTC) - timedelta(days=1)
    # every partitioned table has a default partition and BRIN on time
    for (table,) in conn.execute("SELECT table_name FROM kneeload.partitioned_tables"):
        parts = conn.execute(
            "SELECT partition_name FROM kneeload.partitions(%s) WHERE is_default", (table,)
        ).fetchall()
        assert len(parts) == 1, table
        brin = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname || '.' || tablename = %s "
            "AND indexdef ILIKE '%%using brin%%'",
            (table,),
        ).fetchone()
        assert brin == (1,), table


@pytest.mark.flavour("plain")
def test_partition_for_new_time_moves_rows_out_of_default(conn: psycopg.Connection[Any]) -> None:
    """A row beyond the premade partitions lands in the default partition; creating the
    partition later moves it there — nothing is lost, nothing blocks."""
    t = datetime(2031, 3, 4, 12, 0, tzinfo=UTC)
    conn.execute(
        "INSERT INTO kneeload.watch_samples (time, record_id, athlete_id, batch_id) "
        "VALUES (%s, 'r-future', 'a-x', 'b-x')",
        (t,),
    )
    # (plain: the samples are stored per batch, 0029; the view's INSTEAD OF trigger)
    default = "SELECT count(*) FROM kneeload.watch_sample_batches_default"
    assert conn.execute(default).fetchone() == (1,)
    created = conn.execute(
        "SELECT kneeload.ensure_partitions('kneeload.watch_sample_batches', %s, %s)",
        (t, t + timedelta(seconds=1)),
    ).fetchone()
    assert created == (1,)
    assert conn.execute(default).fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM kneeload.watch_sample_batches_p20310304"
    ).fetchone() == (1,)
    assert conn.execute(
        "SELECT count(*) FROM kneeload.watch_samples WHERE record_id = 'r-future'"
    ).fetchone() == (1,)
    # idempotent
    assert conn.execute(
        "SELECT kneeload.ensure_partitions('kneeload.watch_sample_batches', %s, %s)",
        (t, t + timedelta(seconds=1)),
    ).fetchone() == (0,)
    conn.execute("DROP TABLE kneeload.watch_sample_batches_p20310304")


@pytest.mark.flavour("plain")
def test_the_sink_creates_partitions_for_new_times(
    conn: psycopg.Connection[Any], write: Any
) -> None:
    from .events import watch_batch

    t = datetime(2030, 1, 8, 23, 59, 59, tzinfo=UTC)  # a Tuesday
    write([("watch.samples", watch_batch("ath-part", t, n=3, batch_id="b-part"))])
    names = {
        r[0]
        for r in conn.execute(
            "SELECT partition_name FROM kneeload.partitions('kneeload.watch_sample_batches')"
        )
    }
    assert {"watch_sample_batches_p20300108", "watch_sample_batches_p20300109"} <= names
    assert conn.execute(
        "SELECT count(*) FROM kneeload.watch_sample_batches_default"
    ).fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM kneeload.watch_samples WHERE athlete_id = 'ath-part'"
    ).fetchone() == (3,)


@pytest.mark.flavour("plain")
def test_retention_drops_old_partitions(conn: psycopg.Connection[Any]) -> None:
    old = datetime.now(UTC) - timedelta(days=400)
    conn.execute(
        "SELECT kneeload.ensure_partitions('kneeload.treadmill_telemetry', %s, %s)", (old, old)
    )
    dry = conn.execute(
        "SELECT partition_name, action FROM kneeload.apply_retention(true)"
    ).fetchall()
    name = f"treadmill_telemetry_p{old:%Y%m%d}"
    assert (name, "would drop") in dry
    assert conn.execute("SELECT to_regclass(%s)", (f"kneeload.{name}",)).fetchone() != (None,)
    done = conn.execute(
        "SELECT partition_name, action FROM kneeload.apply_retention(false)"
    ).fetchall()
    assert (name, "dropped") in done
    assert conn.execute("SELECT to_regclass(%s)", (f"kneeload.{name}",)).fetchone() == (None,)


def test_timescale_ddl_is_generated_when_the_extension_is_available() -> None:
    """The DDL the runner generates for TimescaleDB (executed by the suite under
    ``--flavour=timescale``; here also for an older release's API): hypertables instead of
    declarative partitions, columnstore/compression and retention policies, continuous
    aggregates, and that the plain path's partition DDL is absent."""
    sql = {m.name: render(m.sql, Flavour("timescale", "2.19.3")) for m in load_migrations()}
    raw = sql["raw"]
    assert "PARTITION BY RANGE" not in raw and "PARTITION OF" not in raw
    assert (
        "SELECT create_hypertable('kneeload.watch_samples', by_range('time', INTERVAL '1 day'), "
        "if_not_exists => true);" in raw
    )
    assert (
        "ALTER TABLE kneeload.watch_samples SET (timescaledb.enable_columnstore = true, "
        "timescaledb.segmentby = ''athlete_id'', timescaledb.orderby = %L)', 'time DESC' || "
        "coalesce(', ' || k, ''))" in raw
    )  # the order: time, then the rest of the primary key (read from the catalog)
    assert "CALL add_columnstore_policy('kneeload.watch_samples', after => INTERVAL '7 days'" in raw
    assert (
        "SELECT add_retention_policy('kneeload.watch_samples', drop_after => INTERVAL '180 days'"
        in raw
    )
    # hypertables with row-level security are not compressed (timescale/timescaledb#6827)
    assert "add_columnstore_policy('kneeload.pain_reports'" not in raw
    assert "create_hypertable('kneeload.pain_reports', by_range('time', INTERVAL '7 days')" in raw
    assert "CREATE EXTENSION IF NOT EXISTS timescaledb" in sql["foundation"]
    rollups = sql["rollups"]
    assert (
        "WITH (timescaledb.continuous" in rollups and "add_continuous_aggregate_policy" in rollups
    )
    assert "time_bucket(INTERVAL '1 minute', time)" in rollups
    # older TimescaleDB: the compression API and create_hypertable's legacy form
    legacy = render(
        next(m.sql for m in load_migrations() if m.name == "raw"), Flavour("timescale", "2.11.0")
    )
    assert (
        "create_hypertable('kneeload.watch_samples', 'time', chunk_time_interval => INTERVAL '1 "
        "day'" in legacy
    )
    assert (
        "add_compression_policy('kneeload.watch_samples', compress_after => INTERVAL '7 days'"
        in legacy
    )
    # the plain path has none of it
    plain = render(next(m.sql for m in load_migrations() if m.name == "raw"), Flavour("plain"))
    assert "create_hypertable" not in plain and "PARTITION BY RANGE (time)" in plain


def test_flavour_detection_needs_the_library_preloaded(
    conn: psycopg.Connection[Any], settings: Settings
) -> None:
    """``auto`` picks TimescaleDB for a NEW database only when it is installed *and* preloaded
    by the server (an extension merely on disk cannot be created: ``must be preloaded``); a
    database already migrated keeps its flavour. (On CI the stack preloads the library, and
    this test once asked the suite's already-migrated plain database.)"""
    import uuid

    from psycopg.conninfo import make_conninfo

    from kneeload.storage import detect_flavour

    available = conn.execute(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone() == (1,)
    preloaded = "timescaledb" in str(conn.execute("SHOW shared_preload_libraries").fetchone())
    auto = settings.model_copy(update={"storage_timescale": "auto"})
    recorded = conn.execute(
        "SELECT flavour FROM kneeload.schema_migrations ORDER BY version LIMIT 1"
    ).fetchone()
    assert recorded is not None and detect_flavour(conn, auto).name == recorded[0]
    name = f"kneeload_flavour_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(make_conninfo(settings.database_url, dbname=name)) as fresh:
            flavour = detect_flavour(fresh, auto)
        assert flavour.name == ("timescale" if available and preloaded else "plain")
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.mark.flavour("timescale")
def test_hypertables_with_their_chunk_interval_and_policies(conn: psycopg.Connection[Any]) -> None:
    """Every time-partitioned table is a hypertable whose chunk interval is its registered
    granularity; a retention policy job exists exactly where a retention is registered."""
    tables = conn.execute(
        "SELECT table_name, granularity, retention FROM kneeload.partitioned_tables "
        "WHERE flavour = 'timescale'"
    ).fetchall()
    assert tables
    for table, granularity, retention in tables:
        schema, name = table.split(".")
        interval = conn.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_schema = %s AND hypertable_name = %s",
            (schema, name),
        ).fetchone()
        assert interval == (timedelta(days=1 if granularity == "day" else 7),), table
        jobs = conn.execute(
            "SELECT config->>'drop_after' FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention' AND hypertable_schema = %s "
            "AND hypertable_name = %s",
            (schema, name),
        ).fetchall()
        assert len(jobs) == (1 if retention else 0), table


@pytest.mark.flavour("timescale")
def test_the_sink_writes_into_chunks_for_new_times(
    conn: psycopg.Connection[Any], write: Any
) -> None:
    """Chunks appear for any time the sink writes (nothing to create ahead, no default)."""
    from .events import watch_batch

    t = datetime(2030, 1, 8, 23, 59, 59, tzinfo=UTC)
    write([("watch.samples", watch_batch("ath-chunk", t, n=3, batch_id="b-chunk"))])
    ranges = conn.execute(
        "SELECT range_start, range_end FROM timescaledb_information.chunks "
        "WHERE hypertable_schema = 'kneeload' AND hypertable_name = 'watch_samples' "
        "AND range_end > %s AND range_start < %s",
        (t, t + timedelta(seconds=3)),
    ).fetchall()
    assert ranges and min(r[0] for r in ranges) <= t and max(r[1] for r in ranges) > t
    assert conn.execute(
        "SELECT count(*) FROM kneeload.watch_samples WHERE athlete_id = 'ath-chunk'"
    ).fetchone() == (3,)
