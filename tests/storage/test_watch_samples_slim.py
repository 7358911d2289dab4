"""Migration 0022: watch_samples without the per-batch device_id and session_id, on a database
migrated before it (both flavours; on TimescaleDB with a compressed chunk) — every sample kept,
each still finds its device and session through its batch, the sink writes and de-duplicates
as before, and a sample that disagrees with its batch stops the migration instead of being
silently rewritten."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from kneeload.settings import Settings
from kneeload.storage import MigrationError, load_migrations, migrate

from . import events as ev

migrate_module = sys.modules["kneeload.storage.migrate"]
NOW = datetime.now(UTC).replace(microsecond=0)


def _migrate_before_0022(url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    older = [m for m in load_migrations() if m.version < 22]
    with monkeypatch.context() as mp:
        mp.setattr(migrate_module, "load_migrations", lambda: older)
        migrate(url, settings)


def _old_samples(c: psycopg.Connection[Any], batch: str, t: datetime, device: str) -> None:
    c.execute(
        "INSERT INTO kneeload.watch_samples (time, record_id, athlete_id, device_id, session_id, "
        "batch_id, speed_mps) SELECT %s + make_interval(secs => g), %s || ':' || g, 'ath-slim', "
        "%s, 's-slim', %s, 3.1 FROM generate_series(0, 59) g",
        (t, device, device, batch),
    )


def _columns(c: psycopg.Connection[Any]) -> set[str]:
    return {
        r[0]
        for r in c.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'kneeload' "
            "AND table_name = 'watch_samples'"
        ).fetchall()
    }


def test_an_existing_database_keeps_every_sample_with_its_device_and_session(
    own_database: str, settings: Settings, flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _migrate_before_0022(own_database, settings, monkeypatch)
    old = NOW - timedelta(days=10)
    with psycopg.connect(own_database, autocommit=True) as c:
        # b-sink: as the sink wrote it (batch row and samples); b-hand: samples only
        c.execute(
            "INSERT INTO kneeload.watch_batches (batch_id, athlete_id, device_id, session_id, "
            "source, received_at, samples) VALUES ('b-sink', 'ath-slim', 'w-slim', 's-slim', "
            "'watch', %s, 60)",
            (old,),
        )
        _old_samples(c, "b-sink", old, "w-slim")
        _old_samples(c, "b-hand", old + timedelta(minutes=5), "w-hand")
        if flavour == "timescale":
            c.execute(
                "SELECT compress_chunk(ch) FROM show_chunks('kneeload.watch_samples', "
                "older_than => INTERVAL '7 days') ch"
            )
            assert c.execute(
                "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = "
                "'watch_samples' AND is_compressed"
            ).fetchone() == (1,)
    report = migrate(own_database, settings)
    assert "0022_watch_samples_slim" in report.applied
    with psycopg.connect(own_database, autocommit=True) as c:
        view = c.execute(  # plain since 0029: a view over batch rows, with the batch's device
            "SELECT relkind = 'v' FROM pg_class WHERE oid = 'kneeload.watch_samples'::regclass"
        ).fetchone() == (True,)
        assert not ({"session_id"} if view else {"device_id", "session_id"}) & _columns(c)
        rows = c.execute(
            "SELECT b.device_id, b.session_id, count(*) FROM kneeload.watch_samples s "
            "JOIN kneeload.watch_batches b USING (batch_id) WHERE s.athlete_id = 'ath-slim' "
            "GROUP BY 1, 2 ORDER BY 1"
        ).fetchall()
        assert rows == [("w-hand", "s-slim", 60), ("w-slim", "s-slim", 60)]
        assert c.execute(
            "SELECT source, samples FROM kneeload.watch_batches WHERE batch_id = 'b-hand'"
        ).fetchone() == ("watch_samples (migration 0022)", 60)
    # the sink after the migration: a new batch, then the same batch replayed (DO NOTHING)
    from .conftest import _write

    batch = ev.watch_batch("ath-slim", NOW - timedelta(hours=1), 30, batch_id="b-new",
                           device="w-slim", session="s-new")  # fmt: skip
    first = asyncio.run(_write(own_database, [("watch.samples", batch)]))
    again = asyncio.run(_write(own_database, [("watch.samples", {**batch, "batch_id": "b-re"})]))
    assert first.rows["watch.samples"] == 30 and not first.dead_letters
    assert again.rows["watch.samples"] == 0 and not again.dead_letters
    with psycopg.connect(own_database, autocommit=True) as c:
        assert c.execute(
            "SELECT count(*), min(b.session_id) FROM kneeload.watch_samples s "
            "JOIN kneeload.watch_batches b USING (batch_id) WHERE s.time > %s",
            (NOW - timedelta(hours=2),),
        ).fetchone() == (30, "s-new")
        assert c.execute(
            "SELECT count(*) FROM kneeload.watch_samples WHERE athlete_id = 'ath-slim'"
        ).fetchone() == (150,)
        if flavour == "timescale":
            # segment by athlete, order by time and the rest of the key, no bloom filter
            settings_row = c.execute(
                "SELECT segmentby, orderby, index::text FROM "
                "_timescaledb_catalog.compression_settings "
                "WHERE relid = 'kneeload.watch_samples'::regclass"
            ).fetchone()
            assert settings_row is not None
            assert list(settings_row[0]) == ["athlete_id"]
            assert list(settings_row[1]) == ["time", "record_id"]
            assert "bloom" not in (settings_row[2] or "")
            c.execute(
                "SELECT compress_chunk(ch, if_not_compressed => true) FROM "
                "show_chunks('kneeload.watch_samples') ch"
            )
            compressed = c.execute(
                "SELECT format('%I.%I', k.schema_name, k.table_name) "
                "FROM _timescaledb_catalog.chunk x "
                "JOIN _timescaledb_catalog.chunk k ON k.id = x.compressed_chunk_id "
                "JOIN _timescaledb_catalog.hypertable h ON h.id = x.hypertable_id "
                "WHERE h.table_name = 'watch_samples' ORDER BY x.id DESC LIMIT 1"
            ).fetchone()
            assert compressed is not None
            cols = {
                r[0]
                for r in c.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attnum > 0 AND NOT attisdropped",
                    (compressed[0],),
                ).fetchall()
            }
            assert not [x for x in cols if "bloom" in x], cols
            assert c.execute(
                "SELECT count(*) FROM kneeload.watch_samples WHERE athlete_id = 'ath-slim'"
            ).fetchone() == (150,)


def test_a_sample_that_disagrees_with_its_batch_stops_the_migration(
    own_database: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _migrate_before_0022(own_database, settings, monkeypatch)
    t = NOW - timedelta(hours=3)
    with psycopg.connect(own_database, autocommit=True) as c:
        c.execute(
            "INSERT INTO kneeload.watch_batches (batch_id, athlete_id, device_id, session_id, "
            "source, received_at, samples) VALUES ('b-x', 'ath-slim', 'w-1', 's-1', 'watch', "
            "%s, 60)",
            (t,),
        )
        _old_samples(c, "b-x", t, "w-other")
    with pytest.raises(MigrationError, match="other than their batch"):
        migrate(own_database, settings)
    with psycopg.connect(own_database, autocommit=True) as c:
        assert {"device_id", "session_id"} <= _columns(c)  # nothing dropped
