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

Figures: the writer's samples/s on each; stored bytes per sample (table + indexes + TOAST,
``pg_total_relation_size`` of every partition / ``hypertable_size``) on plain, on Timescale
before compression and after compressing every chunk (target ≤ 40 B); the time a continuous
aggregate refresh of ``sample_load_minute`` takes over one day of the team (sample_load rows
made from that day's samples), beside the same aggregate computed by a plain GROUP BY over the
same rows on the same server (its same-run baseline). Last line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
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
from kneeload.storage.writer import Message, Writer, decode

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
    return int(
        _one(
            conn,
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
            "WHERE inhparent = 'kneeload.watch_samples'::regclass",
        )
    )


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


def refresh_day(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """sample_load rows for the team's last full day with runs, then the aggregate refresh of
    that day beside the same aggregate as a plain GROUP BY (baseline)."""
    day = _one(
        conn,
        "SELECT date_trunc('day', max(time)) - interval '1 day' FROM kneeload.watch_samples",
    )
    end = day + timedelta(days=1)
    conn.execute(
        "INSERT INTO kneeload.sample_load (time, record_id, athlete_id, session_id, speed_mps, "
        "cadence_spm, ground_contact_ms, peak_pfj_stress_mpa, pfj_impulse_mpa_s) "
        "SELECT time, record_id, athlete_id, session_id, speed_mps, cadence_spm, "
        "ground_contact_ms, 6 + speed_mps, 3 + speed_mps / 2 FROM kneeload.watch_samples "
        "WHERE time >= %s AND time < %s ON CONFLICT DO NOTHING",
        (day, end),
    )
    rows = _one(
        conn, "SELECT count(*) FROM kneeload.sample_load WHERE time >= %s AND time < %s", day, end
    )
    athletes = _one(
        conn,
        "SELECT count(DISTINCT athlete_id) FROM kneeload.sample_load WHERE time >= %s "
        "AND time < %s",
        day,
        end,
    )
    conn.execute("VACUUM ANALYZE kneeload.sample_load")
    t = time.perf_counter()
    conn.execute(
        "CALL refresh_continuous_aggregate('kneeload.sample_load_minute', %s::timestamptz, "
        "%s::timestamptz)",
        (day, end),
    )
    refresh_s = time.perf_counter() - t
    t = time.perf_counter()
    conn.execute(
        "SELECT time_bucket(INTERVAL '1 minute', time), athlete_id, count(*), avg(cadence_spm), "
        "avg(speed_mps), avg(bws_pct), max(peak_pfj_stress_mpa), sum(pfj_impulse_mpa_s) "
        "FROM kneeload.sample_load WHERE time >= %s AND time < %s GROUP BY 1, 2",
        (day, end),
    ).fetchall()
    baseline_s = time.perf_counter() - t
    return {
        "day": day.date().isoformat(),
        "sample_load_rows": rows,
        "athletes": athletes,
        "refresh_s": round(refresh_s, 3),
        "baseline_group_by_s": round(baseline_s, 3),
    }


def run_plain(url: str, raw: list[bytes], n: int, base: Settings) -> dict[str, Any]:
    migrate(url, base.model_copy(update={"storage_timescale": "off"}))
    secs = asyncio.run(write(url, raw))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE kneeload.watch_samples")
        stored = _one(conn, "SELECT count(*) FROM kneeload.watch_samples")
        size = plain_bytes(conn)
    return {
        "samples": stored,
        "writer_samples_per_s": round(n / secs),
        "bytes": size,
        "bytes_per_sample": round(size / stored, 1),
    }


def run_timescale(url: str, raw: list[bytes], n: int, base: Settings) -> dict[str, Any]:
    migrate(url, base.model_copy(update={"storage_timescale": "on"}))
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
        refresh = refresh_day(conn)
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
        "cagg_refresh_one_day": refresh,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--athletes", type=int, default=40)
    ap.add_argument("--weeks", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="8 athletes × 2 weeks")
    args = ap.parse_args()
    if args.quick:
        args.athletes, args.weeks = 8, 2
    base = get_settings()
    run = uuid.uuid4().hex[:8]
    t = time.perf_counter()
    raw, n = batches(args.athletes, args.weeks)
    print(f"simulated {n:,} samples in {len(raw):,} batches ({time.perf_counter() - t:.1f} s)")
    isolated = os.environ.get("KNEELOAD_BENCH_ISOLATED") == "1"
    u = urlsplit(base.database_url)
    admin = urlunsplit(u._replace(path="/postgres"))
    own = f"kneeload_bench_storage_{run}"
    if isolated:
        plain_url = base.database_url
    else:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{own}"')
        plain_url = urlunsplit(u._replace(path=f"/{own}"))
    result: dict[str, Any] = {
        "athletes": args.athletes,
        "weeks": args.weeks,
        "samples_simulated": n,
    }
    try:
        result["plain"] = run_plain(plain_url, raw, n, base)
        print(f"plain: {result['plain']}")
        with timescale_server(base, run) as ts_url:
            result["timescale"] = run_timescale(ts_url, raw, n, base)
        print(f"timescale: {result['timescale']}")
    finally:
        if not isolated:
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)')
    ts = result["timescale"]
    result.update(
        {
            "timescale_bytes_per_sample_compressed": ts["bytes_per_sample_compressed"],
            "plain_bytes_per_sample": result["plain"]["bytes_per_sample"],
            "timescale_writer_samples_per_s": ts["writer_samples_per_s"],
            "plain_writer_samples_per_s": result["plain"]["writer_samples_per_s"],
            "cagg_refresh_day_s": ts["cagg_refresh_one_day"]["refresh_s"],
            "baseline_group_by_day_s": ts["cagg_refresh_one_day"]["baseline_group_by_s"],
        }
    )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
