"""Benchmark: ``kneeload sink`` writing raw watch samples into PostgreSQL, plain or TimescaleDB.

Run: .venv/bin/python loadtests/bench_sink.py [--samples N] [--per-batch K] [--runs R]
     [--flavour plain|timescale|both]

Three figures, medians of R runs, fresh record ids every run:

* ``sink_samples_per_s`` — the real sink (:class:`kneeload.storage.sink.Sink`, in process)
  consuming pre-produced ``watch.samples`` batches from the real broker: fetch, decode, check,
  COPY into the partitioned table, offsets in the same transaction, commit, Kafka commit.
  Timed from the first batch fetched to the last commit (the sink formats batch N+1 while
  batch N is in the database).
* ``writer_samples_per_s`` — the same database path without Kafka (decode + writer).
* ``bare_copy_samples_per_s`` — the baseline: a bare ``COPY`` of the same rows, already
  formatted as CSV (by the writer's own formatter, outside the timing), into the same table,
  same transaction size.

Plain: the database of KNEELOAD_DATABASE_URL when run isolated by loadtests/run_all.py
(KNEELOAD_BENCH_ISOLATED=1), else a throwaway database on the local cluster. TimescaleDB: a
PostgreSQL cluster of the run's own with the extension preloaded (bench_storage's
``timescale_server``, under var/, deleted after), the stack's Kafka. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from kneeload.contracts import wire
from kneeload.settings import Settings, get_settings
from kneeload.storage import migrate
from kneeload.storage.sink import _DbThread
from kneeload.storage.writer import (
    _WATCH_BATCH_COLS,
    _WATCH_BATCH_TEXT,
    SAMPLE_TOPICS,
    WATCH_BATCHES,
    Message,
    Writer,
    _copy_row,
    decode,
    format_watch,
    watch_parts,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_raw as br

COLS = ", ".join(SAMPLE_TOPICS["watch.samples"][1])  # the writer's own column order


def make_batches(run: str, samples: int, per_batch: int, athletes: int = 200) -> list[bytes]:
    """Watch sample batches as the gateway publishes them (internal wire frames, 1 Hz, every
    field set)."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    out = []
    for b in range(samples // per_batch):
        a = b % athletes
        t0 = base + timedelta(seconds=(b // athletes) * per_batch)
        out.append(
            wire.encode(
                {
                    "batch_id": f"{run}-b{b}",
                    "athlete_id": f"ath-{a:04d}",
                    "device_id": f"w-{run}-{a}",
                    "team_id": f"team-{a % 20:02d}",
                    "session_id": f"s-{run}-{a}",
                    "source": "simulator",
                    "sub_sport": None,
                    "received_at": t0.isoformat().replace("+00:00", "Z"),
                    "samples": [
                        {
                            "record_id": f"w-{run}-{a}:{b}:{i}",
                            "time": (t0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
                            "cadence_spm": 168 + i % 9,
                            "speed_mps": round(3.1 + (i % 7) / 10, 2),
                            "ground_contact_ms": 240 + i % 15,
                            "vertical_oscillation_mm": 82.5,
                            "vertical_ratio_pct": 7.6,
                            "step_length_mm": 1150,
                            "power_w": 262,
                            "heart_rate_bpm": 150 + i % 10,
                            "grade_pct": 0.5,
                            "distance_m": round(3.3 * i, 1),
                            "vertical_load_bw": None,
                        }
                        for i in range(per_batch)
                    ],
                }
            )
        )
    return out


async def writer_run(url: str, batches: list[bytes], chunk: int) -> float:
    """Decode + writer, pipelined as the sink runs it: batch N+1 is decoded and formatted
    (:meth:`Writer.prepare`) on this thread while batch N is written by the database thread."""
    db = _DbThread()
    try:

        async def connect() -> Writer:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            w = Writer(conn, "bench-writer")
            await w.setup()
            return w

        w = await db.call(connect())
        t = time.perf_counter()
        inflight: Any = None
        for i in range(0, len(batches), chunk):
            msgs = []
            for j, raw in enumerate(batches[i : i + chunk]):
                m = Message("watch.samples", 0, i + j, None, raw, "bench.watch.samples")
                if decode(m) is None:
                    msgs.append(m)
            batch = w.prepare(msgs, (), {("bench.watch.samples", 0): i + chunk})
            if inflight is not None:
                await inflight
            inflight = db.submit(w.write_prepared(batch))
        if inflight is not None:
            await inflight
        dt = time.perf_counter() - t
        await db.call(w.conn.close())
        return dt
    finally:
        db.stop()


def bare_copy_run(url: str, batches: list[bytes], chunk: int) -> float:
    """A bare COPY of the rows the writer would store, formatted outside the timing: one per
    sample into kneeload.watch_samples, or on plain since migration 0029 one per batch into
    kneeload.watch_sample_batches (the writer's rows, no de-duplication query)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (WATCH_BATCHES,)).fetchone()
    per_batch = bool(row and row[0])
    bufs: list[Any] = []
    for i in range(0, len(batches), chunk):
        docs = [wire.decode(b) for b in batches[i : i + chunk]]
        if per_batch:
            rows = [p.row for p in watch_parts(docs)]
            bufs.append([_copy_row(r, _WATCH_BATCH_COLS, _WATCH_BATCH_TEXT) for r in rows if r])
        else:
            bufs.append(format_watch(docs)[0])
    copy = (
        f"COPY {WATCH_BATCHES} ({', '.join(_WATCH_BATCH_COLS)}) FROM STDIN"
        if per_batch
        else f"COPY kneeload.watch_samples ({COLS}) FROM STDIN (FORMAT csv, NULL 'null')"
    )
    with psycopg.connect(url) as conn:
        t = time.perf_counter()
        for buf in bufs:
            with conn.cursor() as cur, cur.copy(copy) as cp:
                if per_batch:
                    for r in buf:
                        cp.write_row(r)
                else:
                    cp.write(buf)
            conn.commit()
        return time.perf_counter() - t


async def kafka_run(s: Settings, url: str, batches: list[bytes], run: str) -> float:
    """Pre-produce, then time the real Sink from its first batch to its last commit."""
    from aiokafka import AIOKafkaProducer

    from kneeload.storage.sink import Sink
    from kneeload.topics import get_topic, reconcile

    s = s.model_copy(
        update={"topic_prefix": f"{s.topic_prefix}sinkbench-{run}."}
    )  # fresh topic per run
    topic = get_topic("watch.samples", s)
    reconcile(s, topics=[topic])
    producer = AIOKafkaProducer(
        bootstrap_servers=s.kafka_bootstrap,
        linger_ms=20,
        max_request_size=8 * 1024 * 1024,
        max_batch_size=1024 * 1024,
    )
    await producer.start()
    try:
        for i, b in enumerate(batches):
            await producer.send(topic.full_name, b, key=f"ath-{i % 200:04d}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    s2 = s.model_copy(update={"database_url": url, "storage_sink_group": f"bench-sink-{run}"})
    sink = Sink(s2, topics=("watch.samples",))
    first: list[float] = []
    last: list[float] = []
    prepare, finish = sink.prepare, sink._finish

    def timed_prepare(records: Any) -> Any:
        if not first:
            first.append(time.perf_counter())
        return prepare(records)

    async def timed_finish(batch: Any, written: Any) -> None:
        await finish(batch, written)
        last.append(time.perf_counter())

    sink.prepare = timed_prepare  # type: ignore[method-assign]
    sink._finish = timed_finish  # type: ignore[method-assign]
    await sink.run(idle_exit_s=5)
    from kneeload.topics.admin import delete_topics

    delete_topics([topic.full_name], s)
    return last[-1] - first[0]


def count(url: str) -> int:
    with psycopg.connect(url) as c:
        row = c.execute("SELECT count(*) FROM kneeload.watch_samples").fetchone()
        return int(row[0]) if row else 0


def measure(s: Settings, url: str, args: argparse.Namespace) -> dict[str, float]:
    """Medians of the three figures on the database ``url`` (migrated here)."""
    chunk = s.storage_sink_max_records
    res: dict[str, list[float]] = {"sink": [], "writer": [], "bare": []}
    migrate(url, s)
    for r in range(args.runs):
        tag = uuid.uuid4().hex[:6]
        before = count(url)
        batches = make_batches(f"bw{tag}", args.samples, args.per_batch)
        res["writer"].append(args.samples / asyncio.run(writer_run(url, batches, chunk)))
        batches = make_batches(f"bc{tag}", args.samples, args.per_batch)
        res["bare"].append(args.samples / bare_copy_run(url, batches, chunk))
        if not args.no_kafka:
            batches = make_batches(f"bk{tag}", args.samples, args.per_batch)
            res["sink"].append(args.samples / asyncio.run(kafka_run(s, url, batches, tag)))
        written = count(url) - before
        expected = args.samples * (2 if args.no_kafka else 3)
        assert written == expected, f"run {r}: {written} rows written, expected {expected}"
        print(
            f"{'timescale' if s.storage_timescale == 'on' else 'plain'} run {r + 1}: "
            + ", ".join(f"{k} {v[-1]:,.0f} samples/s" for k, v in res.items() if v),
            flush=True,
        )
    return {k: statistics.median(v) for k, v in res.items() if v}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=300_000)
    ap.add_argument("--per-batch", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-kafka", action="store_true", help="skip the through-Kafka figure")
    ap.add_argument(
        "--flavour",
        choices=("plain", "timescale", "both"),
        default="plain",
        help="plain: the stack's PostgreSQL (partitions); timescale: a cluster of this run's own "
        "with TimescaleDB preloaded (hypertables; Kafka is the stack's); both: plain, then "
        "timescale (top-level figures are plain's, timescale's under 'timescale_*')",
    )
    args = ap.parse_args()
    s = get_settings()
    meds: dict[str, dict[str, float]] = {}
    if args.flavour in ("plain", "both"):
        plain = s.model_copy(update={"storage_timescale": "off"})
        with br.bench_database(s.database_url, "sink") as url:
            meds["plain"] = measure(plain, url, args)
    if args.flavour in ("timescale", "both"):
        from bench_storage import timescale_server

        ts = s.model_copy(update={"storage_timescale": "on"})
        with timescale_server(s, uuid.uuid4().hex[:8]) as url:
            meds["timescale"] = measure(ts, url, args)
    first = meds["plain" if "plain" in meds else "timescale"]

    def figures(med: dict[str, float]) -> dict[str, Any]:
        return {
            "sink_samples_per_s": round(med.get("sink", med["writer"])),
            "writer_samples_per_s": round(med["writer"]),
            "bare_copy_samples_per_s": round(med["bare"]),
            "ratio_sink_to_bare_copy": round(med.get("sink", med["writer"]) / med["bare"], 3),
        }

    out = {
        "bench": "sink",
        "flavour": args.flavour,
        "samples": args.samples,
        "samples_per_batch": args.per_batch,
        "messages_per_transaction": s.storage_sink_max_records,
        "runs": args.runs,
        **figures(first),
        "target_samples_per_s": 100_000,
        "validation": s.storage_sink_validate,
    }
    if args.flavour == "both":
        out |= {f"timescale_{k}": v for k, v in figures(meds["timescale"]).items()}
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
