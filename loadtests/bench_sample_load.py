"""Benchmark: the worker's per-sample estimates stored one row per sample (before, 0003/0011)
against one row per load.samples batch (after, 0023), in one run on one database.

Run: .venv/bin/python loadtests/bench_sample_load.py [--athletes N] [--days D] [--repeats R]

The demo's simulator makes D days of runs for N athletes (1 Hz watch batches of 300 samples,
ending now); the worker's own per-athlete logic (kneeload.worker.athlete, no Kafka) turns them
into load.samples batches. Both layouts get the same batches, decoded like the sink does:

* before: ``bench_before.sample_load``, the replaced table (plain day partitions, default
  partition, BRIN, PK (record_id, time), index (athlete_id, time)), CSV COPY of one row per
  sample as the writer did;
* after: ``kneeload.sample_load_batches`` through ``Writer.write`` (one row per batch).

Figures (medians of R interleaved repeats): samples/s written, stored bytes per sample
(pg_total_relation_size of every partition holding rows, after VACUUM ANALYZE), and the live
panel's two queries — the team table (latest sample per athlete, kneeload_api.live_session's
SQL) and one athlete's per-sample series by minute (live_session_samples) — over the same
window on both.
Last line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline_raw import isolated
from kneeload.demo.sim import SimConfig, build_scenario
from kneeload.settings import get_settings
from kneeload.storage import migrate
from kneeload.storage.writer import (
    LoadBatchDoc,
    Message,
    Writer,
    _struct_rows,
    decode,
)
from kneeload.topics.catalogue import LOAD_SAMPLES
from kneeload.worker.athlete import AthleteProcessor, WorkerConfig, new_state

PER_BATCH = 300

BEFORE_DDL = """
DROP SCHEMA IF EXISTS bench_before CASCADE;
CREATE SCHEMA bench_before;
CREATE TABLE bench_before.sample_load (
    time timestamptz NOT NULL, record_id text NOT NULL, athlete_id text NOT NULL,
    session_id text, speed_mps real, cadence_spm real, ground_contact_ms real,
    ground_contact_estimated boolean, grade_pct real, bws_pct real, unit_id text,
    peak_pfj_stress_mpa real, pfj_impulse_mpa_s real, late boolean,
    estimated boolean, gait text, no_estimate_reason text, no_estimate_detail text,
    cadence_used_spm real, cadence_corrected boolean, ground_contact_uncertainty_ms real,
    ground_contact_source text, step_length_m real, step_length_estimated boolean,
    vertical_load_bw real, vertical_load_estimated boolean,
    PRIMARY KEY (record_id, time)
) PARTITION BY RANGE (time);
CREATE INDEX ON bench_before.sample_load (athlete_id, time);
CREATE INDEX ON bench_before.sample_load USING brin (time);
CREATE TABLE bench_before.sample_load_default PARTITION OF bench_before.sample_load DEFAULT;
"""
BEFORE_COLS = (
    "time, record_id, speed_mps, cadence_spm, ground_contact_ms, ground_contact_estimated, "
    "grade_pct, bws_pct, unit_id, peak_pfj_stress_mpa, pfj_impulse_mpa_s, late, estimated, gait, "
    "no_estimate_reason, no_estimate_detail, cadence_used_spm, cadence_corrected, "
    "ground_contact_uncertainty_ms, ground_contact_source, step_length_m, "
    "step_length_estimated, vertical_load_bw, vertical_load_estimated, athlete_id, session_id"
)

# kneeload_api.live_session / live_session_samples as of 0011 (before) and 0023 (after), with
# the window as a parameter instead of now() - live_window_s (the simulated runs end now)
LIVE_BEFORE = """
SELECT a.athlete_id, s.time, s.cadence_spm, s.peak_pfj_stress_mpa FROM kneeload.athletes a
 CROSS JOIN LATERAL (SELECT x.* FROM bench_before.sample_load x WHERE x.athlete_id = a.athlete_id
                        AND x.time >= %(t)s ORDER BY x.time DESC LIMIT 1) s
 WHERE a.team_id = %(team)s"""
LIVE_AFTER = """
SELECT a.athlete_id, s.time, s.cadence_spm, s.peak_pfj_stress_mpa FROM kneeload.athletes a
 CROSS JOIN LATERAL (SELECT x.* FROM kneeload.sample_load x WHERE x.athlete_id = a.athlete_id
                        AND x.batch_last_time >= %(t)s AND x.time >= %(t)s
                      ORDER BY x.batch_last_time DESC, x.time DESC LIMIT 1) s
 WHERE a.team_id = %(team)s"""
SERIES_BEFORE = """
SELECT date_trunc('minute', time), avg(peak_pfj_stress_mpa) FROM bench_before.sample_load x
 WHERE x.time >= %(t)s AND x.athlete_id = %(a)s GROUP BY 1 ORDER BY 1"""
SERIES_AFTER = """
SELECT date_trunc('minute', time), avg(peak_pfj_stress_mpa) FROM kneeload.sample_load x
 WHERE x.batch_last_time >= %(t)s AND x.time >= %(t)s AND x.athlete_id = %(a)s
 GROUP BY 1 ORDER BY 1"""


def load_batches(athletes: int, days: int) -> list[bytes]:
    """The worker's load.samples batches for the simulated runs (JSON, as on the topic)."""
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    sc = build_scenario(
        SimConfig(
            end=end, athletes=athletes, units=max(2, athletes // 4), weeks=max(2, 1 + days // 7)
        )
    )
    start = end - timedelta(days=days)
    cfg = WorkerConfig()
    proc = AthleteProcessor(cfg, {})
    states: dict[str, Any] = {}
    out: list[bytes] = []
    for plan in sorted(sc.sessions, key=lambda p: p.start):
        if plan.start < start:
            continue
        aid = plan.athlete.athlete_id
        st = states.setdefault(aid, new_state(aid, cfg))
        recs = plan.samples().records(plan.device_id)
        for i in range(0, len(recs), PER_BATCH):
            batch = {
                "batch_id": f"{plan.session_id}-{i // PER_BATCH}",
                "athlete_id": aid,
                "device_id": plan.device_id,
                "team_id": plan.athlete.team_id,
                "session_id": plan.session_id,
                "source": "simulator",
                "samples": recs[i : i + PER_BATCH],
            }
            now_ms = int(datetime.now(UTC).timestamp() * 1000)
            for topic, _key, value in proc.on_batch(st, batch, now_ms):
                if topic == LOAD_SAMPLES:
                    out.append(orjson.dumps(value))
    return out


def decoded(raw: list[bytes]) -> list[Message]:
    msgs = []
    for i, b in enumerate(raw):
        m = Message(LOAD_SAMPLES, 0, i, None, b, "bench.load.samples")
        if decode(m) is None:
            msgs.append(m)
    return msgs


async def write_after(url: str, msgs: list[Message]) -> float:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        w = Writer(conn, "bench-sample-load")
        await w.setup()
        t = time.perf_counter()
        for i in range(0, len(msgs), 20):
            await w.write(msgs[i : i + 20], [])
        return time.perf_counter() - t


async def write_before(url: str, msgs: list[Message]) -> float:
    """The replaced path: one CSV row per sample (the writer's formatter of a typed batch),
    COPY into the partitioned table, one transaction per 20 messages."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        for i in range(0, len(msgs), 20):
            part = []
            for m in msgs[i : i + 20]:
                d = m.doc
                assert isinstance(d, LoadBatchDoc)
                part.append(_struct_rows(d.samples, (d.athlete_id, d.session_id), False))
            async with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(
                    f"COPY bench_before.sample_load ({BEFORE_COLS}) FROM STDIN "
                    "(FORMAT csv, NULL 'null')"
                ) as cp,
            ):
                await cp.write(b"".join(part))
        return time.perf_counter() - t


def size(conn: psycopg.Connection[Any], table: str) -> int:
    """Table + indexes + TOAST of the partitions holding rows (after VACUUM ANALYZE): the
    empty partitions made ahead are a fixed cost (~60 KB each) a small run would divide by
    few samples."""
    row = conn.execute(
        "SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass "
        "AND c.reltuples > 0",
        (table,),
    ).fetchone()
    return int(row[0]) if row else 0


def timed(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], n: int) -> float:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.execute(sql, params).fetchall()
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--athletes", type=int, default=40)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    t = time.perf_counter()
    raw = load_batches(args.athletes, args.days)
    msgs = decoded(raw)
    n = sum(len(m.doc.samples) for m in msgs)
    print(f"{n:,} samples in {len(msgs):,} load.samples batches ({time.perf_counter() - t:.1f} s)")
    base = get_settings()
    res: dict[str, Any] = {"athletes": args.athletes, "days": args.days, "samples": n}
    with isolated("sample_load") as (url, _prefix):
        migrate(url, base.model_copy(update={"storage_timescale": "off"}))
        rates: dict[str, list[float]] = {"before": [], "after": []}
        sizes: dict[str, int] = {}
        for r in range(args.repeats):
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(BEFORE_DDL)
                lo = min(m.doc.samples[0].time for m in msgs)[:10]
                days = (datetime.now(UTC).date() - datetime.fromisoformat(lo).date()).days + 2
                for k in range(days):
                    d = datetime.fromisoformat(lo).date() + timedelta(days=k)
                    c.execute(
                        f"CREATE TABLE bench_before.sample_load_{d:%Y%m%d} PARTITION OF "
                        f"bench_before.sample_load FOR VALUES FROM ('{d}') TO "
                        f"('{d + timedelta(days=1)}')"
                    )
                c.execute("TRUNCATE kneeload.sample_load_batches")
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for which in order:
                fn = write_before if which == "before" else write_after
                rates[which].append(n / asyncio.run(fn(url, msgs)))
            with psycopg.connect(url, autocommit=True) as c:
                c.execute("VACUUM ANALYZE bench_before.sample_load")
                c.execute("VACUUM ANALYZE kneeload.sample_load_batches")
                sizes = {
                    "before": size(c, "bench_before.sample_load"),
                    "after": size(c, "kneeload.sample_load_batches"),
                }
                got = c.execute("SELECT count(*) FROM kneeload.sample_load").fetchone()
                assert got is not None and got[0] == n, (got, n)
        with psycopg.connect(url, autocommit=True) as c:
            team = c.execute("SELECT team_id FROM kneeload.athletes LIMIT 1").fetchone()
            busy = c.execute(
                "SELECT athlete_id, max(time) FROM bench_before.sample_load GROUP BY 1 "
                "ORDER BY 2 DESC LIMIT 1"
            ).fetchone()
            assert team is not None and busy is not None
            # the live window: the last 3 h (the panel's 15 min would hold few simulated runs)
            p = {"t": busy[1] - timedelta(hours=3), "team": team[0], "a": busy[0]}
            same = c.execute(LIVE_BEFORE, p).fetchall() == c.execute(LIVE_AFTER, p).fetchall()
            times = {
                name: timed(c, sql, p, 21)
                for name, sql in (
                    ("live_team_before_ms", LIVE_BEFORE),
                    ("live_team_after_ms", LIVE_AFTER),
                    ("series_before_ms", SERIES_BEFORE),
                    ("series_after_ms", SERIES_AFTER),
                )
            }
            times.update(
                {
                    k.replace("before", "before2"): timed(c, sql, p, 21)
                    for k, sql in (
                        ("live_team_before_ms", LIVE_BEFORE),
                        ("series_before_ms", SERIES_BEFORE),
                    )
                }
            )
            c.execute("DROP SCHEMA bench_before CASCADE")
    res.update(
        {
            "bytes_per_sample_before": round(sizes["before"] / n, 1),
            "bytes_per_sample_after": round(sizes["after"] / n, 1),
            "samples_per_s_before": round(statistics.median(rates["before"])),
            "samples_per_s_after": round(statistics.median(rates["after"])),
            "samples_per_s_runs": {k: [round(x) for x in v] for k, v in rates.items()},
            "batches": len(msgs),
            "live_rows_identical": same,
            **{k: round(v, 2) for k, v in times.items()},
        }
    )
    print(orjson.dumps(res).decode())


if __name__ == "__main__":
    main()
