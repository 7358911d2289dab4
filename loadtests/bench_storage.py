"""Benchmark: storage on both flavours in one run — plain PostgreSQL partitions and TimescaleDB.

Run: .venv/bin/python loadtests/bench_storage.py [--athletes N] [--weeks W] [--quick]

The same watch samples — the demo's simulator (kneeload.demo.sim: realistic speed, cadence,
contact time, heart rate ... per run, 1 Hz in the last 3 weeks and ~0.45 Hz "smart recording"
before) — are written through the sink's writer (decode, COPY, offsets) into a fresh database
of each flavour:

* plain: the database of KNEELOAD_DATABASE_URL when isolated by loadtests/run_all.py, else a
  throwaway one on the local cluster, migrated with KNEELOAD_STORAGE_TIMESCALE=off;
* timescale: a PostgreSQL 15 cluster of this run's own with TimescaleDB preloaded
  (kneeload.stack.postgres, free port, under var/bench-pg-<run>/, deleted after).

Figures, each flavour beside its same-run baseline:

* the sink's writer samples/s (``Writer.write``: decode, COPY, offsets in one transaction —
  the sink's database half without Kafka; bench_sink.py measures the whole sink on plain);
* stored bytes per sample (table + indexes + TOAST, ``pg_total_relation_size`` of every
  partition / ``hypertable_size``) on plain, on Timescale before compression and after
  compressing every chunk (target ≤ 40 B);
* plain, the layouts of the raw samples against each other on the same samples (issue #20:
  ≤ 150 B per sample stored, indexes included): one row per sample as before migration 0029
  (its primary key (record_id, time)), with TimescaleDB's (time DESC) B-tree added, with an
  int4 batch key instead of the batch_id text, without athlete_id, with the uniqueness held
  by an int8 hash of the record id; and one row per batch with a column array per value
  (0029, the schema's) under pglz and lz4 TOAST compression — each one unpartitioned table;
  and the writer's samples/s into a database migrated before 0029 (rows) beside the
  schema's (per batch), same run;
* chunk interval: the same samples in hypertables of 1 day (the schema's), 6 hours and 7 days
  — chunk count, compressed bytes per sample, and two reads of the compressed history (one
  athlete's week, the samples of every athlete over one day), median of 15;
* a bulk insert of pain reports (one INSERT … SELECT, 1,000 athletes × 20 reports) with the
  athlete_pain_latest triggers, beside the same insert with triggers off;
* the refresh of the continuous aggregate ``telemetry_unit_daily`` over one day of a
  1,000-athlete team on LEVER units (each athlete one 45-minute run at 1 Hz on one of 50 units:
  2.7 M treadmill_telemetry rows), beside the same aggregate as a plain GROUP BY over the same
  rows on the same server. (``sample_load_minute``, timed here before, is a plain view since
  migration 0023; see bench_sample_load.py.)

Last line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg

from kneeload.demo.sim import SimConfig, build_scenario
from kneeload.settings import Settings, get_settings
from kneeload.storage import migrate
from kneeload.storage.writer import (
    _COPY_OPTS,
    _WATCH_COLS,
    Message,
    Writer,
    decode,
    format_watch,
)

PER_BATCH = 300


def batches(athletes: int, weeks: int) -> tuple[list[bytes], int]:
    """Every simulated run's samples as watch.samples batches (as the gateway publishes)."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    sc = build_scenario(
        SimConfig(end=end, athletes=athletes, units=max(2, athletes // 4), weeks=weeks)
    )
    out, n = [], 0
    for plan in sc.sessions:
        recs = plan.samples().records(plan.device_id)
        for i in range(0, len(recs), PER_BATCH):
            part = recs[i : i + PER_BATCH]
            n += len(part)
            out.append(
                orjson.dumps(
                    {
                        "batch_id": f"{plan.session_id}-{i // PER_BATCH}",
                        "athlete_id": plan.athlete.athlete_id,
                        "device_id": plan.device_id,
                        "team_id": plan.athlete.team_id,
                        "session_id": plan.session_id,
                        "source": "simulator",
                        "sub_sport": plan.sub_sport,
                        "received_at": part[-1]["time"],
                        "samples": part,
                    }
                )
            )
    return out, n


async def write(url: str, raw: list[bytes]) -> float:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        w = Writer(conn, "bench-storage")
        await w.setup()
        t = time.perf_counter()
        for i in range(0, len(raw), 20):
            msgs = []
            for j, b in enumerate(raw[i : i + 20]):
                m = Message("watch.samples", 0, i + j, None, b, "bench.watch.samples")
                if decode(m) is None:
                    msgs.append(m)
            await w.write(msgs, [])
        return time.perf_counter() - t


def _one(conn: psycopg.Connection[Any], sql: str, *args: object) -> Any:
    row = conn.execute(sql, args).fetchone()
    return row[0] if row else None


def plain_bytes(conn: psycopg.Connection[Any]) -> int:
    """Bytes of the raw watch samples on plain PostgreSQL: every partition of the table that
    holds them (kneeload.watch_sample_batches since migration 0029, before it the
    kneeload.watch_samples table), heap + indexes + TOAST."""
    table = _one(conn, "SELECT coalesce(to_regclass('kneeload.watch_sample_batches'), "
                 "'kneeload.watch_samples'::regclass)::text")  # fmt: skip
    return int(
        _one(
            conn,
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
            "WHERE inhparent = %s::regclass",
            table,
        )
    )


_ROW_COLS = ", ".join(_WATCH_COLS)
_VALUE_COLS = ", ".join(_WATCH_COLS[2:14])
#: the row layouts compared (one heap row per sample): name -> (CREATE TABLE, INSERT … SELECT
#: from lay_rows in its write order, or None for lay_rows itself, written as the sink did)
_ROW_LAYOUTS: dict[str, tuple[str, str | None]] = {
    "rows (0022: PK (record_id, time) + BRIN time)": (
        "CREATE TABLE lay_rows (time timestamptz NOT NULL, record_id text NOT NULL, "
        "athlete_id text NOT NULL, batch_id text NOT NULL, cadence_spm real, speed_mps real, "
        "ground_contact_ms real, vertical_oscillation_mm real, vertical_ratio_pct real, "
        "step_length_mm real, power_w real, heart_rate_bpm real, grade_pct real, "
        "distance_m float8, vertical_load_bw real, sources text, PRIMARY KEY (record_id, time));"
        "CREATE INDEX ON lay_rows USING brin (time)",
        None,
    ),
    "rows + btree (time DESC) (TimescaleDB's default index)": (
        "CREATE TABLE lay_timedesc (LIKE lay_rows INCLUDING ALL);"
        "CREATE INDEX ON lay_timedesc (time DESC)",
        "INSERT INTO lay_timedesc SELECT * FROM lay_rows ORDER BY ctid",
    ),
    "rows, int4 batch key instead of batch_id text": (
        "CREATE TABLE lay_bkey (time timestamptz NOT NULL, record_id text NOT NULL, "
        "athlete_id text NOT NULL, batch_key int4 NOT NULL, cadence_spm real, speed_mps real, "
        "ground_contact_ms real, vertical_oscillation_mm real, vertical_ratio_pct real, "
        "step_length_mm real, power_w real, heart_rate_bpm real, grade_pct real, "
        "distance_m float8, vertical_load_bw real, sources text, PRIMARY KEY (record_id, time));"
        "CREATE INDEX ON lay_bkey USING brin (time)",
        "INSERT INTO lay_bkey SELECT r.time, r.record_id, r.athlete_id, k.k, "
        f"{_VALUE_COLS} FROM lay_rows r JOIN lay_keys k USING (batch_id) ORDER BY r.ctid",
    ),
    "rows, int4 batch key, no athlete_id (the batch's)": (
        "CREATE TABLE lay_bkey_noath (time timestamptz NOT NULL, record_id text NOT NULL, "
        "batch_key int4 NOT NULL, cadence_spm real, speed_mps real, "
        "ground_contact_ms real, vertical_oscillation_mm real, vertical_ratio_pct real, "
        "step_length_mm real, power_w real, heart_rate_bpm real, grade_pct real, "
        "distance_m float8, vertical_load_bw real, sources text, PRIMARY KEY (record_id, time));"
        "CREATE INDEX ON lay_bkey_noath USING brin (time)",
        "INSERT INTO lay_bkey_noath SELECT r.time, r.record_id, k.k, "
        f"{_VALUE_COLS} FROM lay_rows r JOIN lay_keys k USING (batch_id) ORDER BY r.ctid",
    ),
    "rows, int4 batch key, no athlete_id, unique (int8 hash of record_id, time)": (
        "CREATE TABLE lay_hash (time timestamptz NOT NULL, record_id text NOT NULL, "
        "batch_key int4 NOT NULL, cadence_spm real, speed_mps real, "
        "ground_contact_ms real, vertical_oscillation_mm real, vertical_ratio_pct real, "
        "step_length_mm real, power_w real, heart_rate_bpm real, grade_pct real, "
        "distance_m float8, vertical_load_bw real, sources text);"
        "CREATE UNIQUE INDEX ON lay_hash ((hashtextextended(record_id, 0)), time);"
        "CREATE INDEX ON lay_hash USING brin (time)",
        "INSERT INTO lay_hash SELECT r.time, r.record_id, k.k, "
        f"{_VALUE_COLS} FROM lay_rows r JOIN lay_keys k USING (batch_id) ORDER BY r.ctid",
    ),
}


def _table_bytes(conn: psycopg.Connection[Any], table: str) -> int:
    conn.execute(f"VACUUM ANALYZE {table}")
    return int(_one(conn, "SELECT pg_total_relation_size(%s::regclass)", table))


def plain_layouts(url: str, raw: list[bytes], stored: int) -> dict[str, float]:
    """Bytes per raw sample of each layout on the same samples (heap + indexes + TOAST, one
    unpartitioned table each): the row layouts written in the sink's order (the 0022 table by
    COPY of the writer's CSV, the others copied from it in that order), and the per-batch
    layout of migration 0029 (kneeload.watch_sample_batches, as the writer stored it) with
    pglz (PostgreSQL's default) and lz4 TOAST compression."""
    out: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET search_path = public")
        for create, _ in _ROW_LAYOUTS.values():
            for stmt in create.split(";"):
                conn.execute(stmt)
        copy = f"COPY lay_rows ({_ROW_COLS}) FROM STDIN {_COPY_OPTS}"
        with conn.cursor() as cur, cur.copy(copy) as cp:
            for b in raw:
                m = Message("watch.samples", 0, 0, None, b, "bench.watch.samples")
                if decode(m) is None:
                    cp.write(format_watch([m.doc])[0])
        conn.execute(  # a compact key per batch_id
            "CREATE TABLE lay_keys AS SELECT batch_id, (row_number() OVER ())::int4 AS k "
            "FROM (SELECT DISTINCT batch_id FROM lay_rows) x"
        )
        n = int(_one(conn, "SELECT count(*) FROM lay_rows"))
        for name, (create, fill) in _ROW_LAYOUTS.items():
            table = create.split()[2]
            if fill is not None:
                conn.execute(fill)
            out[name] = round(_table_bytes(conn, table) / n, 1)
        for codec in ("pglz", "lz4"):
            t = f"lay_batches_{codec}"
            conn.execute(f"CREATE TABLE {t} (LIKE kneeload.watch_sample_batches INCLUDING ALL)")
            arrays = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "'kneeload' AND table_name = 'watch_sample_batches' AND data_type = 'ARRAY'"
            ).fetchall()
            for (c,) in arrays:
                conn.execute(f"ALTER TABLE {t} ALTER COLUMN {c} SET COMPRESSION {codec}")
            conn.execute(f"INSERT INTO {t} SELECT * FROM kneeload.watch_sample_batches")
            label = "per batch (0029: arrays, PK-less, (device, last_time) + (athlete, last_time))"
            out[f"{label}, {codec}"] = round(_table_bytes(conn, t) / stored, 1)
        assert n == stored, (n, stored)
    return out


@contextmanager
def timescale_server(base: Settings, run: str) -> Iterator[str]:
    from kneeload.stack import postgres

    if postgres.timescaledb_version() is None:
        raise RuntimeError("TimescaleDB is not installed (make timescaledb)")
    root = base.var_dir / f"bench-pg-{run}"
    root.mkdir(parents=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    s = base.model_copy(
        update={
            "var_dir": root,
            "database_url": f"postgresql://kneeload@127.0.0.1:{port}/kneeload",
            "storage_timescale": "on",
        }
    )
    postgres.start(s)
    try:
        yield f"{s.database_url}?passfile={root / 'pg' / 'pgpass'}"
    finally:
        try:
            postgres.stop(s)
        finally:
            shutil.rmtree(root, ignore_errors=True)


PAIN_ATHLETES, PAIN_PER = 1000, 20


def pain_bulk(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """One INSERT … SELECT of 20,000 pain reports (1,000 athletes × 20, one every 2 days) with
    the athlete_pain_latest triggers, beside the same statement with triggers off
    (session_replication_role = replica; other report ids) — median of 3 each, interleaved."""
    sql = (
        "INSERT INTO kneeload.pain_reports (time, report_id, athlete_id, team_id, pain_nrs, "
        "context) SELECT now() - make_interval(days => r * 2, mins => %s), "
        "format('bulk-%%s-%%s-%%s', %s::text, a, r), format('pain-ath-%%s', a), 'team-b', "
        "(a + r) %% 11, 'after' "
        "FROM generate_series(1, %s) a, generate_series(1, %s) r"
    )
    on, off = [], []
    for k in range(3):
        for triggers, out in ((True, on), (False, off)):
            if not triggers:
                conn.execute("SET session_replication_role = replica")
            t = time.perf_counter()
            conn.execute(sql, (k * 2 + triggers, f"{k}{triggers}", PAIN_ATHLETES, PAIN_PER))
            out.append(time.perf_counter() - t)
            conn.execute("RESET session_replication_role")
    n = PAIN_ATHLETES * PAIN_PER
    return {
        "rows_per_statement": n,
        "rows_per_s": round(n / statistics.median(on)),
        "baseline_no_triggers_rows_per_s": round(n / statistics.median(off)),
    }


#: chunk intervals compared (the schema's is 1 day)
INTERVALS = ("1 day", "6 hours", "7 days")


def chunk_intervals(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The stored samples copied into hypertables of each chunk interval with the schema's
    columnstore settings, every chunk compressed: chunk count, bytes per sample, and two reads
    of compressed history (median of 15 after 2 warm-ups): one athlete's last 7 days (a
    session drill-down, the worker's rebuild) and every athlete's samples of one day."""
    out: dict[str, Any] = {}
    n = _one(conn, "SELECT count(*) FROM kneeload.watch_samples")
    athlete, last = conn.execute(
        "SELECT athlete_id, max(time) FROM kneeload.watch_samples GROUP BY 1 ORDER BY count(*) "
        "DESC LIMIT 1"
    ).fetchone() or (None, None)
    day = last.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    for iv in INTERVALS:
        name = "ci_" + iv.replace(" ", "_")
        t = f"public.{name}"
        conn.execute(f"DROP TABLE IF EXISTS {t}")
        conn.execute(f"CREATE TABLE {t} (LIKE kneeload.watch_samples INCLUDING ALL)")
        conn.execute(f"SELECT create_hypertable('{t}', by_range('time', INTERVAL '{iv}'))")
        conn.execute(
            f"ALTER TABLE {t} SET (timescaledb.enable_columnstore = true, "
            "timescaledb.segmentby = 'athlete_id', timescaledb.orderby = 'time DESC, record_id', "
            "timescaledb.index = '')"
        )
        conn.execute(f"INSERT INTO {t} SELECT * FROM kneeload.watch_samples")
        chunks = len(conn.execute(f"SELECT compress_chunk(c) FROM show_chunks('{t}') c").fetchall())
        conn.execute(f"VACUUM ANALYZE {t}")
        size = int(_one(conn, f"SELECT hypertable_size('{t}')"))
        reads = {
            "athlete_week_ms": (
                f"SELECT time, speed_mps, cadence_spm, ground_contact_ms FROM {t} "
                "WHERE athlete_id = %s AND time > %s - INTERVAL '7 days' ORDER BY time",
                (athlete, last),
            ),
            "all_athletes_day_ms": (
                f"SELECT athlete_id, count(*), avg(speed_mps) FROM {t} "
                "WHERE time >= %s AND time < %s + INTERVAL '1 day' GROUP BY 1",
                (day, day),
            ),
        }
        row: dict[str, Any] = {"chunks": chunks, "bytes_per_sample": round(size / n, 1)}
        for key, (sql, args) in reads.items():
            for _ in range(2):
                conn.execute(sql, args).fetchall()
            ms = []
            for _ in range(15):
                t0 = time.perf_counter()
                conn.execute(sql, args).fetchall()
                ms.append((time.perf_counter() - t0) * 1000)
            row[key] = round(statistics.median(ms), 2)
        out[iv] = row
        conn.execute(f"DROP TABLE {t}")
    return out


def migrate_before(url: str, settings: Settings, version: int) -> None:
    """Migrate ``url`` with the migrations older than ``version`` only (a baseline layout)."""
    mod = sys.modules["kneeload.storage.migrate"]
    every = mod.load_migrations
    older = [m for m in every() if m.version < version]
    mod.load_migrations = lambda: older
    try:
        migrate(url, settings)
    finally:
        mod.load_migrations = every


def run_plain(
    url: str, raw: list[bytes], n: int, base: Settings, rows_url: str | None = None
) -> dict[str, Any]:
    """The schema's layout on ``url``; with ``rows_url``, the same samples written first into a
    database migrated before 0029 (one row per sample): the writer's baseline of this run."""
    plain = base.model_copy(update={"storage_timescale": "off"})
    baseline: dict[str, Any] = {}
    if rows_url is not None:
        migrate_before(rows_url, plain, 29)
        rows_secs = asyncio.run(write(rows_url, raw))
        with psycopg.connect(rows_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE kneeload.watch_samples")
            size = plain_bytes(conn)
            baseline = {
                "rows_0022_writer_samples_per_s": round(n / rows_secs),
                "rows_0022_bytes_per_sample": round(size / n, 1),
            }
    migrate(url, plain)
    secs = asyncio.run(write(url, raw))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE kneeload.watch_sample_batches")
        stored = _one(conn, "SELECT count(*) FROM kneeload.watch_samples")
        size = plain_bytes(conn)
        conn.execute(  # as the sink does before writing into new weeks
            "SELECT kneeload.ensure_partitions('kneeload.pain_reports', "
            "now() - INTERVAL '50 days', "
            "now() + INTERVAL '1 day')"
        )
        pain = pain_bulk(conn)
    return {
        "samples": stored,
        "writer_samples_per_s": round(n / secs),
        "bytes": size,
        "bytes_per_sample": round(size / stored, 1),
        "layouts_bytes_per_sample": plain_layouts(url, raw, stored),
        **baseline,
        "pain_bulk_insert": pain,
    }


TEAM, UNITS, RUN_S = 1000, 50, 45 * 60


def refresh_team_day(conn: psycopg.Connection[Any], team: int = TEAM) -> dict[str, Any]:
    """treadmill_telemetry for one day of a ``team``-athlete team on LEVER units (each athlete
    one 45-minute run at 1 Hz, 20 a day per unit, back to back from 06:00), then the continuous
    aggregate refresh of that day beside the same aggregate as a plain GROUP BY (baseline)."""
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    end = day + timedelta(days=1)
    t = time.perf_counter()
    conn.execute(
        "INSERT INTO kneeload.treadmill_telemetry (time, record_id, unit_id, clinic_id, kind, "
        "belt_speed_mps, incline_pct, bws_pct, athlete_id) "
        "SELECT x.s, format('tm:%%s:%%s', a, i), format('unit-%%s', a %% %s), 'clinic-b', "
        "'telemetry', CASE WHEN i < 60 THEN 0 ELSE 2.5 + (i %% 7) / 10.0 END, 1, "
        "10 + (a %% 5) * 5, format('team-ath-%%s', a) "
        "FROM generate_series(0, %s - 1) a, generate_series(0, %s - 1) i, "
        "LATERAL (SELECT %s::timestamptz + INTERVAL '6 hours' "
        "+ make_interval(secs => (a / %s) * %s + i)) x(s)",
        (UNITS, team, RUN_S, day, UNITS, RUN_S),
    )
    insert_s = time.perf_counter() - t
    rows = _one(
        conn,
        "SELECT count(*) FROM kneeload.treadmill_telemetry WHERE time >= %s AND time < %s",
        day,
        end,
    )
    conn.execute("VACUUM ANALYZE kneeload.treadmill_telemetry")
    t = time.perf_counter()
    conn.execute(
        "CALL refresh_continuous_aggregate('kneeload.telemetry_unit_daily', %s::timestamptz, "
        "%s::timestamptz)",
        (day, end),
    )
    refresh_s = time.perf_counter() - t
    t = time.perf_counter()
    conn.execute(
        "SELECT time_bucket(INTERVAL '1 day', time), unit_id, "
        "count(*) FILTER (WHERE kind = 'telemetry'), "
        "count(*) FILTER (WHERE kind = 'telemetry' AND belt_speed_mps > 0), "
        "avg(bws_pct) FILTER (WHERE belt_speed_mps > 0), max(time) "
        "FROM kneeload.treadmill_telemetry WHERE time >= %s AND time < %s GROUP BY 1, 2",
        (day, end),
    ).fetchall()
    baseline_s = time.perf_counter() - t
    return {
        "day": day.date().isoformat(),
        "athletes": team,
        "units": UNITS,
        "telemetry_rows": rows,
        "insert_s": round(insert_s, 1),
        "refresh_s": round(refresh_s, 3),
        "baseline_group_by_s": round(baseline_s, 3),
    }


def run_timescale(
    url: str, raw: list[bytes], n: int, base: Settings, team: int = TEAM
) -> dict[str, Any]:
    migrate(url, base.model_copy(update={"storage_timescale": "on"}))
    with psycopg.connect(url, autocommit=True) as conn:
        # the policies' jobs would compress or materialise behind the bench's back
        conn.execute(
            "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
            "WHERE hypertable_schema = 'kneeload'"
        )
    secs = asyncio.run(write(url, raw))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE kneeload.watch_samples")
        stored = _one(conn, "SELECT count(*) FROM kneeload.watch_samples")
        before = int(_one(conn, "SELECT hypertable_size('kneeload.watch_samples')"))
        chunks = conn.execute("SELECT show_chunks('kneeload.watch_samples')").fetchall()
        t = time.perf_counter()
        for (c,) in chunks:
            conn.execute("SELECT compress_chunk(%s, if_not_compressed => true)", (c,))
        compress_s = time.perf_counter() - t
        conn.execute("VACUUM ANALYZE kneeload.watch_samples")
        after = int(_one(conn, "SELECT hypertable_size('kneeload.watch_samples')"))
        assert _one(conn, "SELECT count(*) FROM kneeload.watch_samples") == stored
        intervals = chunk_intervals(conn)
        pain = pain_bulk(conn)
        refresh = refresh_team_day(conn, team)
    return {
        "samples": stored,
        "writer_samples_per_s": round(n / secs),
        "chunks": len(chunks),
        "bytes_uncompressed": before,
        "bytes_per_sample_uncompressed": round(before / stored, 1),
        "bytes_compressed": after,
        "bytes_per_sample_compressed": round(after / stored, 1),
        "compression_ratio": round(before / after, 2),
        "compress_s": round(compress_s, 2),
        "chunk_intervals": intervals,
        "pain_bulk_insert": pain,
        "cagg_refresh_team_day": refresh,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--athletes", type=int, default=40)
    ap.add_argument("--weeks", type=int, default=4)
    ap.add_argument("--team", type=int, default=TEAM, help="athletes of the refreshed team-day")
    ap.add_argument("--quick", action="store_true", help="8 athletes × 2 weeks, team of 100")
    ap.add_argument("--plain-only", action="store_true", help="skip the TimescaleDB flavour")
    args = ap.parse_args()
    if args.quick:
        args.athletes, args.weeks, args.team = 8, 2, 100
    base = get_settings()
    run = uuid.uuid4().hex[:8]
    t = time.perf_counter()
    raw, n = batches(args.athletes, args.weeks)
    print(f"simulated {n:,} samples in {len(raw):,} batches ({time.perf_counter() - t:.1f} s)")
    isolated = os.environ.get("KNEELOAD_BENCH_ISOLATED") == "1"
    u = urlsplit(base.database_url)
    admin = urlunsplit(u._replace(path="/postgres"))
    own = f"kneeload_bench_storage_{run}"
    rows = f"{own}_rows"  # the baseline layout (before migration 0029)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{rows}"')
        if not isolated:
            c.execute(f'CREATE DATABASE "{own}"')
    plain_url = base.database_url if isolated else urlunsplit(u._replace(path=f"/{own}"))
    rows_url = urlunsplit(u._replace(path=f"/{rows}"))
    result: dict[str, Any] = {
        "athletes": args.athletes,
        "weeks": args.weeks,
        "samples_simulated": n,
    }
    try:
        result["plain"] = run_plain(plain_url, raw, n, base, rows_url)
        print(f"plain: {result['plain']}")
        for name, b in result["plain"]["layouts_bytes_per_sample"].items():
            print(f"  {b:7.1f} B/sample  {name}")
        if args.plain_only:
            print(orjson.dumps(result).decode())
            return
        with timescale_server(base, run) as ts_url:
            result["timescale"] = run_timescale(ts_url, raw, n, base, args.team)
        print(f"timescale: {result['timescale']}")
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{rows}" WITH (FORCE)')
            if not isolated:
                c.execute(f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)')
    ts = result["timescale"]
    result.update(
        {
            "timescale_bytes_per_sample_compressed": ts["bytes_per_sample_compressed"],
            "plain_bytes_per_sample": result["plain"]["bytes_per_sample"],
            "timescale_writer_samples_per_s": ts["writer_samples_per_s"],
            "plain_writer_samples_per_s": result["plain"]["writer_samples_per_s"],
            "timescale_bytes_per_sample_uncompressed": ts["bytes_per_sample_uncompressed"],
            "cagg_refresh_day_s": ts["cagg_refresh_team_day"]["refresh_s"],
            "baseline_group_by_day_s": ts["cagg_refresh_team_day"]["baseline_group_by_s"],
            "timescale_pain_bulk_rows_per_s": ts["pain_bulk_insert"]["rows_per_s"],
            "timescale_pain_bulk_baseline_rows_per_s": ts["pain_bulk_insert"][
                "baseline_no_triggers_rows_per_s"
            ],
            "plain_pain_bulk_rows_per_s": result["plain"]["pain_bulk_insert"]["rows_per_s"],
            "plain_pain_bulk_baseline_rows_per_s": result["plain"]["pain_bulk_insert"][
                "baseline_no_triggers_rows_per_s"
            ],
        }
    )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
