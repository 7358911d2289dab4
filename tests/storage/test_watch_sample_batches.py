"""Migration 0029: raw watch samples one row per batch on plain PostgreSQL, on a database
migrated before it (both flavours; TimescaleDB keeps its row hypertable) — every sample kept
with its values, readers of kneeload.watch_samples see the same rows, and a sample is still
stored once however often it arrives: replayed, re-sent in another batch, or inserted by
hand."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from kneeload.settings import Settings
from kneeload.storage import load_migrations, migrate
from kneeload.storage.writer import WatchPart, dedup_parts, watch_row

from . import events as ev

migrate_module = sys.modules["kneeload.storage.migrate"]
NOW = datetime.now(UTC).replace(microsecond=0)
COLS = (
    "time, record_id, athlete_id, batch_id, cadence_spm, speed_mps, ground_contact_ms, "
    "vertical_oscillation_mm, vertical_ratio_pct, step_length_mm, power_w, heart_rate_bpm, "
    "grade_pct, distance_m, vertical_load_bw, sources"
)


def _migrate_before_0029(url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    older = [m for m in load_migrations() if m.version < 29]
    with monkeypatch.context() as mp:
        mp.setattr(migrate_module, "load_migrations", lambda: older)
        migrate(url, settings)


def _snapshot(c: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return c.execute(
        f"SELECT {COLS} FROM kneeload.watch_samples WHERE athlete_id = 'ath-up' "
        "ORDER BY record_id, time"
    ).fetchall()


def test_an_existing_database_keeps_every_sample_and_stores_each_once(
    own_database: str, settings: Settings, flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _migrate_before_0029(own_database, settings, monkeypatch)
    old = NOW - timedelta(days=3)
    start = old.replace(second=0)
    with psycopg.connect(own_database, autocommit=True) as c:
        c.execute(
            "INSERT INTO kneeload.watch_batches (batch_id, athlete_id, device_id, session_id, "
            "source, received_at, samples) VALUES ('b-up', 'ath-up', 'w-up', 's-up', 'watch', "
            "%s, 60)",
            (old,),
        )
        # as the sink wrote them: ids '<device>:<epoch ms>', some values null, one sources
        c.execute(
            "INSERT INTO kneeload.watch_samples (time, record_id, athlete_id, batch_id, "
            "cadence_spm, speed_mps, ground_contact_ms, distance_m, sources) "
            "SELECT %s + make_interval(secs => g), 'w-up:' || "
            "((extract(epoch FROM %s::timestamptz) + g) * 1000)::bigint, 'ath-up', 'b-up', "
            "170 + g %% 3, 3.1, CASE WHEN g %% 2 = 0 THEN 240 END, 1000.5 + g * 3.25, "
            "CASE WHEN g = 7 THEN 'power_w=native' END FROM generate_series(0, 59) g",
            (start, start),
        )
        # samples without a batch row (written by hand), irregular times
        c.execute(
            "INSERT INTO kneeload.watch_samples (time, record_id, athlete_id, batch_id, "
            "speed_mps) SELECT %s + make_interval(secs => g * g), 'hand-' || g, 'ath-up', "
            "'b-hand', 2.5 FROM generate_series(0, 9) g",
            (start + timedelta(hours=1),),
        )
        before = _snapshot(c)
    assert len(before) == 70
    report = migrate(own_database, settings)
    assert "0029_watch_sample_batches" in report.applied
    with psycopg.connect(own_database, autocommit=True) as c:
        assert _snapshot(c) == before  # every sample, every value, as before
        kind = c.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'kneeload.watch_samples'::regclass"
        ).fetchone()
        if flavour == "plain":
            assert kind == ("v",)
            assert c.execute(
                "SELECT count(*), sum(n) FROM kneeload.watch_sample_batches"
            ).fetchone() == (2, 70)
            assert c.execute(
                "SELECT retention FROM kneeload.partitioned_tables "
                "WHERE table_name = 'kneeload.watch_sample_batches'"
            ).fetchone() == (timedelta(days=180),)
            assert c.execute(
                "SELECT count(*) FROM kneeload.partitioned_tables "
                "WHERE table_name = 'kneeload.watch_samples'"
            ).fetchone() == (0,)
        else:
            assert kind in {("r",), ("p",)}  # the hypertable stays
    # the sink after the migration: a batch re-sending 20 stored samples and 10 new ones
    from .conftest import _write

    batch = ev.watch_batch("ath-up", start + timedelta(seconds=40), 30, batch_id="b-next",
                           device="w-up", session="s-up")  # fmt: skip
    first = asyncio.run(_write(own_database, [("watch.samples", batch)]))
    again = asyncio.run(_write(own_database, [("watch.samples", {**batch, "batch_id": "b-re"})]))
    assert first.rows["watch.samples"] == 10 and not first.dead_letters
    assert again.rows["watch.samples"] == 0 and not again.dead_letters
    # two overlapping batches in one write, and a repeated record inside one batch
    a = ev.watch_batch("ath-up", NOW - timedelta(hours=1), 20, batch_id="b-a", device="w-up")
    b = ev.watch_batch("ath-up", NOW - timedelta(hours=1) + timedelta(seconds=10), 20,
                       batch_id="b-b", device="w-up")  # fmt: skip
    b["samples"].append(dict(b["samples"][0]))
    both = asyncio.run(_write(own_database, [("watch.samples", a), ("watch.samples", b)]))
    assert both.rows["watch.samples"] == 30 and not both.dead_letters
    # another device may use the same record ids (unique per device, the schema says)
    a2 = {**a, "device_id": "w-two", "batch_id": "b-two"}
    other = asyncio.run(_write(own_database, [("watch.samples", a2)]))
    assert other.rows["watch.samples"] == (20 if flavour == "plain" else 0)
    with psycopg.connect(own_database, autocommit=True) as c:
        total = c.execute(
            "SELECT count(*), count(DISTINCT (record_id, time)) FROM kneeload.watch_samples "
            "WHERE athlete_id = 'ath-up'"
        ).fetchone()
        assert total == ((70 + 10 + 30 + 20, 70 + 10 + 30) if flavour == "plain"
                         else (110, 110))  # fmt: skip
        # by hand: a stored sample again is no row, a new one is one
        dup = c.execute(
            "INSERT INTO kneeload.watch_samples (time, record_id, athlete_id, batch_id, "
            "speed_mps) VALUES (%s, 'hand-3', 'ath-up', 'b-hand', 2.5)"
            + ("" if flavour == "plain" else " ON CONFLICT DO NOTHING"),
            (start + timedelta(hours=1, seconds=9),),
        )
        assert dup.rowcount == 0
        new = c.execute(
            "INSERT INTO kneeload.watch_samples (time, record_id, athlete_id, batch_id, "
            "speed_mps, sources) VALUES (%s, 'hand-x', 'ath-up', 'b-hand', 2.75, %s)",
            (start + timedelta(hours=2), 'a="b\\c{,}'),
        )
        assert new.rowcount == 1
        assert c.execute(
            "SELECT speed_mps, sources FROM kneeload.watch_samples WHERE record_id = 'hand-x'"
        ).fetchone() == (2.75, 'a="b\\c{,}')


def _part(device: str, ids: list[str], start: datetime) -> WatchPart:
    times = [start + timedelta(seconds=i) for i in range(len(ids))]
    samples = [
        (t.isoformat(), r, 170, 3.3, None, None, None, None, None, None, None, float(i), None, None)
        for i, (r, t) in enumerate(zip(ids, times, strict=True))
    ]
    p = WatchPart(device, "ath", "b", samples, times)
    p.row = watch_row(p)
    return p


def test_batch_rows_encode_times_and_ids_compactly_and_dedup_keeps_the_first() -> None:
    t = datetime(2030, 1, 1, tzinfo=UTC)
    ids = [f"w:{int((t + timedelta(seconds=i)).timestamp() * 1000)}" for i in range(5)]
    p = _part("w", ids, t)
    assert p.row is not None
    # step 1 s, ids 'w:' + an arithmetic run (a trailing number is never split)
    assert p.row[5:12] == (5, 1_000_000, None, "w:", int(ids[0][2:]), 1000, None)
    assert p.row[12] == [170.0]  # one value for all
    assert p.row[21] == [0.0, 1.0, 2.0, 3.0, 4.0]  # distance_m per sample
    assert p.row[22] is None and p.row[23] is None  # every value null
    q = _part("w", [*ids[3:], "w:x"], t + timedelta(seconds=3))
    stored = {("w", ids[0], t)}
    out = dedup_parts([p, q], stored)
    assert [len(x.samples) for x in out] == [4, 1]
    assert out[1].samples[0][1] == "w:x" and out[1].row is not None and out[1].row[5] == 1


def test_retention_and_partitions_of_watch_samples_by_their_known_name(
    own_database: str, settings: Settings, flavour: str
) -> None:
    """`kneeload storage retention --set kneeload.watch_samples=...` and `partitions --table
    kneeload.watch_samples` act on the table that holds the samples (on plain since 0029
    kneeload.watch_sample_batches)."""
    from .test_timescale import _cli

    migrate(own_database, settings)
    out = _cli(own_database, "retention", "--set", "kneeload.watch_samples=90 days", "--dry-run")
    held = "kneeload.watch_sample_batches" if flavour == "plain" else "kneeload.watch_samples"
    policies = {p["table"]: p["retention"] for p in out["policies"]}
    assert held in policies
    assert ("kneeload.watch_samples" in policies) == (flavour == "timescale")
    with psycopg.connect(own_database) as c:
        assert c.execute(
            "SELECT retention FROM kneeload.partitioned_tables WHERE table_name = %s", (held,)
        ).fetchone() == (timedelta(days=90),)
    assert held in _cli(own_database, "partitions", "--table", "kneeload.watch_samples")


@pytest.mark.flavour("plain")
def test_one_write_spanning_years_creates_the_partitions_it_needs_not_every_day_between(
    db: str, write: Any
) -> None:
    """Found in CI's real run: the sink replayed a topic holding a FIT file recorded in 2015
    beside samples of 2030 in one poll, and the writer asked for every daily partition from
    the earliest date to the latest — 5,286 empty tables created in 18 s, after which each
    query on watch_sample_batches took seconds to plan and the sink tests timed out. A write
    now creates the partitions of the UTC days its rows fall on, and no other."""
    early = datetime(2003, 6, 1, 7, 0, 5, tzinfo=UTC)
    late = datetime(2011, 6, 1, 23, 59, 50, tzinfo=UTC)  # crosses midnight UTC
    result = write(
        [
            ("watch.samples", ev.watch_batch("ath-span", early, 5, batch_id="sp-a", device="w-sp")),
            ("watch.samples", ev.watch_batch("ath-span", late, 20, batch_id="sp-b", device="w-sp")),
            ("load.samples", ev.load_batch("ath-span", early, 5, batch_id="sp-l1")),
            ("load.samples", ev.load_batch("ath-span", late, 20, batch_id="sp-l2")),
        ]
    )
    assert not result.dead_letters
    with psycopg.connect(db) as c:
        made = c.execute(
            "SELECT t.table_name, to_char(p.range_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') "
            "FROM kneeload.partitioned_tables t "
            "CROSS JOIN LATERAL kneeload.partitions(t.table_name) p "
            "WHERE t.flavour = 'plain' AND NOT p.is_default "
            "AND p.range_start >= '2003-01-01' AND p.range_start < '2012-01-01'"
        ).fetchall()
        days = {d for _t, d in made}
        assert days, "no partition created for the rows written"
        assert days <= {"2003-06-01", "2011-06-01", "2011-06-02"}, sorted(days)[:10]
        assert "kneeload.watch_sample_batches" in {t for t, _d in made}
        assert c.execute(
            "SELECT count(*) FROM kneeload.watch_samples WHERE athlete_id = 'ath-span'"
        ).fetchone() == (25,)


#: the partitions of the window the stack keeps ready (yesterday … a few days ahead)
WINDOW_SQL = (
    "SELECT count(*) FROM kneeload.partitions(%s) WHERE range_end > now() - '1 day'::interval "
    "AND range_start < now() + '3 days'::interval"
)


@pytest.mark.flavour("plain")
def test_drop_empty_removes_the_years_an_older_sink_created_and_keeps_every_row(
    own_database: str, settings: Settings
) -> None:
    """A database hit by the span bug above recovers with ``kneeload storage partitions
    --drop-empty``: the empty partitions far from today go, the default partition, the window
    kept ready and every partition holding a row stay, no row is lost — and a sink that still
    believes a dropped day's partition exists stores that day's rows in the default partition,
    where every query finds them."""
    from .conftest import _write
    from .test_timescale import _cli

    migrate(own_database, settings)
    table = "kneeload.watch_sample_batches"
    day = datetime(2003, 6, 1, 7, tzinfo=UTC)
    with psycopg.connect(own_database, autocommit=True) as c:
        # what the old writer did for one poll holding 2003 and 2003-12-31 (and a far future)
        c.execute("SELECT kneeload.ensure_partitions(%s, '2003-01-01', '2004-01-01')", (table,))
        c.execute("SELECT kneeload.ensure_partitions(%s, '2040-01-01', '2040-01-11')", (table,))
        window = c.execute(
            WINDOW_SQL,
            (table,),
        ).fetchone()
    assert window and window[0] >= 2
    asyncio.run(
        _write(
            own_database,
            [("watch.samples", ev.watch_batch("ath-dr", day, 5, batch_id="dr-1", device="w-dr"))],
        )
    )

    dry = _cli(
        own_database, "partitions", "--table", "kneeload.watch_samples", "--drop-empty", "--dry-run"
    )
    assert dry["would_drop_empty"] == {table: 364 + 10}
    assert len(dry[table]) >= 364 + 10 + 1  # a dry run drops nothing
    out = _cli(own_database, "partitions", "--drop-empty")
    assert out["dropped_empty"][table] == 374
    left = {p["partition"] for p in out[table]}
    assert "watch_sample_batches_default" in left and "watch_sample_batches_p20030601" in left
    assert not any(p.startswith("watch_sample_batches_p2040") for p in left)
    assert not any(p.startswith("watch_sample_batches_p200301") for p in left)
    with psycopg.connect(own_database) as c:
        assert (
            c.execute(
                WINDOW_SQL,
                (table,),
            ).fetchone()
            == window
        )  # the window kept ready is untouched
        assert c.execute(
            "SELECT count(*) FROM kneeload.watch_samples WHERE athlete_id = 'ath-dr'"
        ).fetchone() == (5,)

    async def stale_writer() -> None:
        from kneeload.contracts import dumps
        from kneeload.storage.writer import Message, Writer, decode

        async with await psycopg.AsyncConnection.connect(own_database, autocommit=True) as c:
            w = Writer(c, "test-stale")
            await w.setup()
            w._partitions.add((table, datetime(2040, 1, 5).date()))  # cached before the drop
            doc = ev.watch_batch(
                "ath-dr", datetime(2040, 1, 5, 9, tzinfo=UTC), 4, batch_id="dr-2", device="w-dr"
            )
            m = Message("watch.samples", 0, 0, None, dumps(doc), "direct")
            assert decode(m, "all") is None
            await w.write([m])

    asyncio.run(stale_writer())
    with psycopg.connect(own_database) as c:
        assert c.execute(
            "SELECT count(*) FROM kneeload.watch_samples WHERE athlete_id = 'ath-dr'"
        ).fetchone() == (9,)
        assert c.execute(
            "SELECT count(*) FROM kneeload.watch_sample_batches_default WHERE batch_id = 'dr-2'"
        ).fetchone() == (1,)


def test_partition_dates_of_odd_times_never_raise() -> None:
    """The schema stops at year 2999, but the writer's partition dates must not raise on any
    string (an OverflowError there would fail a whole poll, neighbours included): the end of
    the calendar and unparseable times are skipped, offsets are applied."""
    from kneeload.storage.writer import _utc_dates, date_runs

    odd = ["9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00",
           "not a time", "2100-02-29T08:00:03Z"]  # fmt: skip
    assert _utc_dates(odd) == set()
    got = _utc_dates(["2000-01-01T00:30:00+01:00", "2024-06-01T23:30:00-02:00"])
    assert got == {datetime(1999, 12, 31).date(), datetime(2024, 6, 2).date()}
    day = timedelta(days=1)
    assert date_runs(got, day) == [(d, d + day) for d in sorted(got)]
