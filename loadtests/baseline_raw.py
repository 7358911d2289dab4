"""Bare baselines shared by the benchmarks: the raw pipeline with nothing of kneeload in it.

Run: .venv/bin/python loadtests/baseline_raw.py [--samples N] [--runs R]

The raw pipeline moves the SAME records the gateway publishes (``watch_sample_batch``
messages of 100 samples, keyed by athlete) through

    bare aiokafka produce (acks=all, idempotent, linger 5 ms: the gateway's producer options)
      → bare aiokafka consume (assigned partitions, no group, orjson decode)
      → bare COPY (psycopg 3, one transaction per poll) into an equivalent table

with the producer and the consumer+COPY in two processes running at the same time (the
shape of the real pipeline: gateway and sink are separate processes). Samples/s is measured
from the first produce to the commit of the last row; the figure is the median of ``--runs``
runs, each on a fresh topic and an emptied table.

The table is the storage schema's raw watch-sample table copied with
``CREATE TABLE ... (LIKE <it> INCLUDING DEFAULTS INCLUDING INDEXES)`` when ``kneeload
migrate`` has created one in the database, otherwise a plain table of the same shape (the
watch_sample_batch envelope + sample fields, primary key (device_id, record_id)). The JSON
line says which.

Also the helpers the other load tests share (fresh database, topic clean-up, sample
generation, process CPU).

Run by ``loadtests/run_all.py`` (KNEELOAD_BENCH_ISOLATED=1) it uses the database and topic
prefix the runner made; run alone it creates its own and drops them afterwards.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

# --------------------------------------------------------------------------- databases


def admin_url(database_url: str) -> str:
    return urlunsplit(urlsplit(database_url)._replace(path="/postgres"))


def db_url_named(database_url: str, name: str) -> str:
    return urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))


def create_database(base_url: str, name: str) -> str:
    """CREATE DATABASE ``name`` on the server of ``base_url``; returns its URL."""
    import psycopg

    with psycopg.connect(admin_url(base_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return db_url_named(base_url, name)


def drop_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url(base_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def bench_database(database_url: str, name: str) -> Iterator[str]:
    """The database a component bench writes to: KNEELOAD_DATABASE_URL as it is when
    loadtests/run_all.py isolated the bench (KNEELOAD_BENCH_ISOLATED=1, the runner drops it),
    else a throwaway ``kneeload_bench_<name>_<id>`` on the same server, dropped afterwards."""
    if os.environ.get("KNEELOAD_BENCH_ISOLATED") == "1":
        yield database_url
        return
    db_name = f"kneeload_bench_{name}_{uuid.uuid4().hex[:8]}"
    url = create_database(database_url, db_name)
    try:
        yield url
    finally:
        drop_database(database_url, db_name)


def delete_topics(bootstrap: str, prefix: str) -> int:
    """Delete every topic (and consumer group) whose name starts with ``prefix``."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=20_000)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
        try:
            groups = [g[0] for g in admin.list_consumer_groups() if g[0].startswith(prefix)]
            if groups:
                admin.delete_consumer_groups(groups)
        except Exception:
            pass
        return len(mine)
    finally:
        admin.close()


@contextmanager
def isolated(name: str, *, keep: bool = False) -> Iterator[tuple[str, str]]:
    """A fresh database and a unique topic prefix for one bench; both removed afterwards.

    Yields ``(database_url, topic_prefix)`` and exports them as KNEELOAD_DATABASE_URL /
    KNEELOAD_TOPIC_PREFIX so subprocesses (``kneeload worker``...) see the same isolation.
    Under loadtests/run_all.py (KNEELOAD_BENCH_ISOLATED=1) the runner already made them:
    yields the current settings' database and prefix and leaves them to the runner."""
    from kneeload.settings import get_settings, reload_settings

    base = get_settings()
    if os.environ.get("KNEELOAD_BENCH_ISOLATED") == "1":
        yield base.database_url, base.topic_prefix
        return
    run = uuid.uuid4().hex[:8]
    db_name = f"kneeload_bench_{name}_{run}"
    prefix = f"bench-{name}-{run}."
    url = create_database(base.database_url, db_name)
    saved = {k: os.environ.get(k) for k in ("KNEELOAD_DATABASE_URL", "KNEELOAD_TOPIC_PREFIX")}
    os.environ["KNEELOAD_DATABASE_URL"] = url
    os.environ["KNEELOAD_TOPIC_PREFIX"] = prefix
    reload_settings()
    try:
        yield url, prefix
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reload_settings()
        if not keep:
            try:
                delete_topics(base.kafka_bootstrap, prefix)
            finally:
                drop_database(base.database_url, db_name)


# --------------------------------------------------------------------------- records


def iso_ms(t_ms: int) -> str:
    return (
        datetime.fromtimestamp(t_ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def make_samples(device_id: str, start_ms: int, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` realistic 1 Hz running samples of one device starting at ``start_ms``."""
    base_cad = rng.uniform(160, 182)
    base_speed = rng.uniform(2.6, 4.2)
    out = []
    for i in range(n):
        t = start_ms + i * 1000
        speed = round(max(0.5, base_speed + rng.gauss(0, 0.08)), 3)
        cad = round(min(230.0, max(120.0, base_cad + rng.gauss(0, 2.0))), 1)
        out.append(
            {
                "record_id": f"{device_id}:{t}",
                "time": iso_ms(t),
                "cadence_spm": cad,
                "speed_mps": speed,
                "ground_contact_ms": round(rng.uniform(215, 275), 1),
                "vertical_oscillation_mm": round(rng.uniform(70, 100), 1),
                "vertical_ratio_pct": round(rng.uniform(6.5, 9.5), 2),
                "step_length_mm": round(speed * 60_000 / cad, 1),
                "power_w": round(rng.uniform(200, 320), 1),
                "heart_rate_bpm": int(rng.uniform(130, 175)),
                "grade_pct": round(rng.gauss(0, 1.0), 2),
            }
        )
    return out


def make_batches(
    n_samples: int,
    athletes: int,
    batch_size: int = 100,
    *,
    start_ms: int | None = None,
    seed: int = 7,
    athlete_fmt: str = "ath{:05d}",
    device_fmt: str = "w{:05d}",
) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """``(athlete_id, device_id, samples)`` batches, round-robin over athletes so each
    athlete's event time advances at 1 Hz; times end before ``start_ms`` + span."""
    rng = random.Random(seed)
    per_athlete = -(-n_samples // athletes)
    if start_ms is None:  # recent past, so no sample is "in the future" when sent
        start_ms = int(time.time() * 1000) - per_athlete * 1000 - 600_000
    batches: list[tuple[str, str, list[dict[str, Any]]]] = []
    offsets = [0] * athletes
    left = n_samples
    a = 0
    while left > 0:
        k = min(batch_size, left)
        aid, did = athlete_fmt.format(a), device_fmt.format(a)
        batches.append((aid, did, make_samples(did, start_ms + offsets[a] * 1000 + a, k, rng)))
        offsets[a] += k
        left -= k
        a = (a + 1) % athletes
    return batches


def gateway_event(aid: str, did: str, samples: list[dict[str, Any]], i: int) -> dict[str, Any]:
    """The ``watch_sample_batch`` message the gateway publishes for one request."""
    return {
        "batch_id": f"{did}-bench-{i}",
        "athlete_id": aid,
        "device_id": did,
        "team_id": "team-bench",
        "session_id": f"s-{aid}",
        "source": "simulator",
        "sub_sport": None,
        "received_at": iso_ms(int(time.time() * 1000)),
        "samples": samples,
    }


# --------------------------------------------------------------------------- process CPU

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    total = 0.0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / _TICK


def stack_pids() -> dict[str, int]:
    """PIDs of the local stack's Kafka broker and PostgreSQL postmaster (shared by everyone
    on this machine: their CPU includes other people's load)."""
    out: dict[str, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if b"kafka.Kafka" in cmd and "kafka" not in out:
            out["kafka"] = int(d)
        elif b"bin/postgres " in cmd and b" -D " in cmd and "postgres" not in out:
            out["postgres"] = int(d)
    return out


class CpuMeter:
    """CPU used by named process trees and by the whole machine between start() and stop()."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self.t0 = 0.0
        self.c0: dict[str, float] = {}
        self.m0 = 0.0

    def start(self) -> None:
        self.t0 = time.time()
        self.m0 = machine_busy_s()
        self.c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self.c0["bench_client"] = time.process_time()

    def stop(self) -> dict[str, Any]:
        wall = time.time() - self.t0
        c1 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        c1["bench_client"] = time.process_time()
        # a process tree loses the CPU of children that exited (short-lived PostgreSQL
        # backends): such a figure is a lower bound, and a negative one is unknown (None)
        used = {k: c1[k] - self.c0[k] for k in c1}
        used = {k: (v if v >= 0 else None) for k, v in used.items()}
        known = sum(v for v in used.values() if v is not None)
        machine = machine_busy_s() - self.m0
        return {
            "wall_s": round(wall, 2),
            "cpu_s": {k: (round(v, 2) if v is not None else None) for k, v in used.items()},
            "cores_busy": {
                k: (round(v / wall, 2) if v is not None else None) for k, v in used.items()
            },
            "machine_cores_busy": round(machine / wall, 2),
            "others_cores_busy": round(max(0.0, machine - known) / wall, 2),
            "cores": os.cpu_count(),
        }


# --------------------------------------------------------------------------- the raw table

PLAIN_COLUMNS: list[tuple[str, str]] = [
    ("time", "timestamptz NOT NULL"),
    ("athlete_id", "text NOT NULL"),
    ("device_id", "text NOT NULL"),
    ("team_id", "text"),
    ("session_id", "text"),
    ("batch_id", "text"),
    ("record_id", "text NOT NULL"),
    ("source", "text"),
    ("sub_sport", "text"),
    ("received_at", "timestamptz"),
    ("cadence_spm", "real"),
    ("speed_mps", "real"),
    ("ground_contact_ms", "real"),
    ("vertical_oscillation_mm", "real"),
    ("vertical_ratio_pct", "real"),
    ("step_length_mm", "real"),
    ("power_w", "real"),
    ("heart_rate_bpm", "smallint"),
    ("grade_pct", "real"),
    ("distance_m", "double precision"),
    ("vertical_load_bw", "real"),
]
SAMPLE_FIELDS = {c for c, _ in PLAIN_COLUMNS} - {
    "athlete_id",
    "device_id",
    "team_id",
    "session_id",
    "batch_id",
    "source",
    "sub_sport",
    "received_at",
}
ALIASES = {"ts": "time", "sample_time": "time", "event_time": "time"}


def find_raw_table(conn: Any) -> str | None:
    """The storage schema's raw watch-sample table, if ``kneeload migrate`` made one."""
    rows = conn.execute(
        """SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r','p') AND NOT c.relispartition
             AND n.nspname NOT IN ('pg_catalog','information_schema')
             AND c.relname ~ '(watch|raw).*sample|sample.*(raw|watch)'
           ORDER BY c.relname ~ '^watch_samples$' DESC, length(c.relname)"""
    ).fetchall()
    for (name,) in rows:
        cols = {
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped",
                (name,),
            )
        }
        if {"athlete_id", "cadence_spm", "speed_mps"} <= cols:
            return str(name)
    return None


def prepare_table(database_url: str, like: str | None = "auto") -> tuple[str, list[str], str]:
    """Create the baseline table; returns ``(table, columns to COPY, description)``."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        src = find_raw_table(conn) if like == "auto" else like
        conn.execute("DROP TABLE IF EXISTS bench_raw_samples")
        if src:
            conn.execute(
                f"CREATE TABLE bench_raw_samples (LIKE {src} INCLUDING DEFAULTS INCLUDING INDEXES)"
            )
            info = conn.execute(
                "SELECT attname, attnotnull, atthasdef FROM pg_attribute "
                "WHERE attrelid = 'bench_raw_samples'::regclass AND attnum > 0 "
                "AND NOT attisdropped "
                "ORDER BY attnum"
            ).fetchall()
            known = {c for c, _ in PLAIN_COLUMNS} | set(ALIASES)
            cols = [c for c, _, _ in info if c in known]
            missing = [
                c for c, notnull, hasdef in info if notnull and not hasdef and c not in known
            ]
            if missing:  # a NOT NULL column we cannot fill: fall back to the plain shape
                conn.execute("DROP TABLE bench_raw_samples")
            else:
                return "bench_raw_samples", cols, f"LIKE {src} (same columns and indexes)"
        ddl = ", ".join(f"{c} {t}" for c, t in PLAIN_COLUMNS)
        conn.execute(f"CREATE TABLE bench_raw_samples ({ddl}, PRIMARY KEY (device_id, record_id))")
        why = f" ({src} has NOT NULL columns the sample does not carry)" if src else ""
        return (
            "bench_raw_samples",
            [c for c, _ in PLAIN_COLUMNS],
            "plain table of the watch_sample_batch shape, PK (device_id, record_id)" + why,
        )


def row_builder(cols: list[str]) -> Any:
    """A function ``(envelope, sample) -> row tuple`` in ``cols`` order (text COPY)."""
    getters = []
    for c in cols:
        name = ALIASES.get(c, c)
        if name in SAMPLE_FIELDS:
            getters.append((0, name))
        else:
            getters.append((1, name))

    def build(env: dict[str, Any], s: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(s.get(n) if where == 0 else env.get(n) for where, n in getters)

    return build


# --------------------------------------------------------------------------- the pipeline


def _producer_proc(
    bootstrap: str,
    topic: str,
    payloads: list[tuple[bytes, bytes]],
    t0: Any,
    t_end: Any,
    cpu: Any,
) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        p = AIOKafkaProducer(
            bootstrap_servers=bootstrap.split(","),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=1_048_576,
            max_request_size=4_194_304,
        )
        await p.start()
        try:
            t0.value = time.time()
            futs = [await p.send(topic, v, key=k) for k, v in payloads]
            await asyncio.gather(*futs)
            t_end.value = time.time()
        finally:
            await p.stop()

    c0 = time.process_time()
    asyncio.run(run())
    cpu.value = time.process_time() - c0


async def _consume_copy(
    bootstrap: str,
    topic: str,
    database_url: str,
    table: str,
    cols: list[str],
    n_samples: int,
    timeout_s: float,
) -> tuple[float, float]:
    """Consume ``topic`` from the start and COPY every sample; returns (first msg, last commit)."""
    import psycopg
    from aiokafka import AIOKafkaConsumer, TopicPartition

    build = row_builder(cols)
    copy_sql = f"COPY {table} ({', '.join(cols)}) FROM STDIN"
    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=64 << 20,
    )
    await c.start()
    conn = await psycopg.AsyncConnection.connect(database_url)
    first = last = 0.0
    rows = 0
    try:
        parts = None
        deadline = time.time() + 30
        while not parts:
            parts = c.partitions_for_topic(topic)
            if not parts:
                await c._client.force_metadata_update()
                if time.time() > deadline:
                    raise RuntimeError(f"topic {topic} not found")
                await asyncio.sleep(0.05)
        c.assign([TopicPartition(topic, p) for p in sorted(parts)])
        deadline = time.time() + timeout_s
        while rows < n_samples:
            if time.time() > deadline:
                raise TimeoutError(f"raw pipeline: {rows}/{n_samples} rows after {timeout_s:.0f} s")
            batch = await c.getmany(timeout_ms=200, max_records=2000)
            if not batch:
                continue
            if not first:
                first = time.time()
            async with conn.cursor() as cur, cur.copy(copy_sql) as cp:
                for msgs in batch.values():
                    for m in msgs:
                        ev = orjson.loads(m.value)
                        for s in ev["samples"]:
                            await cp.write_row(build(ev, s))
                            rows += 1
            await conn.commit()
            last = time.time()
    finally:
        await conn.close()
        await c.stop()
    return first, last


def raw_pipeline_once(
    bootstrap: str,
    topic: str,
    database_url: str,
    table: str,
    cols: list[str],
    payloads: list[tuple[bytes, bytes]],
    n_samples: int,
    partitions: int,
    timeout_s: float = 300,
) -> dict[str, float]:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()
    ctx = mp.get_context("fork")
    t0, t_end, p_cpu = ctx.Value("d", 0.0), ctx.Value("d", 0.0), ctx.Value("d", 0.0)
    prod = ctx.Process(target=_producer_proc, args=(bootstrap, topic, payloads, t0, t_end, p_cpu))
    meter = CpuMeter(stack_pids())
    meter.start()
    c0 = time.process_time()
    prod.start()
    try:
        first, last = asyncio.run(
            _consume_copy(bootstrap, topic, database_url, table, cols, n_samples, timeout_s)
        )
        c_cpu = time.process_time() - c0
    finally:
        prod.join(60)
    cpu = meter.stop()
    if prod.exitcode != 0:
        raise RuntimeError(f"raw producer process failed (exit {prod.exitcode})")
    total = last - t0.value
    return {
        "samples_per_s": n_samples / total,
        "seconds": total,
        "produce_samples_per_s": n_samples / (t_end.value - t0.value),
        "consume_copy_samples_per_s": n_samples / max(1e-9, last - first),
        "cpu_us_per_sample": (p_cpu.value + c_cpu) / n_samples * 1e6,
        "others_cores_busy": max(0.0, cpu["others_cores_busy"] - p_cpu.value / cpu["wall_s"]),
    }


def raw_pipeline(
    database_url: str,
    topic_prefix: str,
    batches: list[tuple[str, str, list[dict[str, Any]]]],
    *,
    runs: int = 3,
    like: str | None = "auto",
    log: Any = print,
) -> dict[str, Any]:
    """The bare produce → consume → COPY pipeline over ``batches``, median of ``runs``."""
    import psycopg

    from kneeload.settings import get_settings

    s = get_settings()
    table, cols, shape = prepare_table(database_url, like)
    payloads = [
        (aid.encode(), orjson.dumps(gateway_event(aid, did, smp, i)))
        for i, (aid, did, smp) in enumerate(batches)
    ]
    n = sum(len(b[2]) for b in batches)
    per_run = []
    for r in range(runs):
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {table}")
        topic = f"{topic_prefix}baseline.raw.{r}.{uuid.uuid4().hex[:6]}"
        res = raw_pipeline_once(
            s.kafka_bootstrap, topic, database_url, table, cols, payloads, n, s.topic_partitions
        )
        with psycopg.connect(database_url) as conn:
            got = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        if got is None or got[0] != n:
            raise RuntimeError(f"raw pipeline stored {got and got[0]} of {n} samples")
        log(
            f"  raw pipeline run {r + 1}/{runs}: {res['samples_per_s']:,.0f} samples/s "
            f"(produce alone {res['produce_samples_per_s']:,.0f}/s, consume+COPY "
            f"{res['consume_copy_samples_per_s']:,.0f}/s; "
            f"{res['cpu_us_per_sample']:.1f} µs CPU/sample; "
            f"other load on the machine {res['others_cores_busy']:.2f} cores)"
        )
        per_run.append(res)
    with psycopg.connect(database_url) as conn:
        size = conn.execute(f"SELECT pg_total_relation_size('{table}')").fetchone()
    return {
        "raw_samples": n,
        "raw_runs": runs,
        "raw_table": shape,
        "raw_samples_per_s": statistics.median(r["samples_per_s"] for r in per_run),
        "raw_samples_per_s_runs": [round(r["samples_per_s"]) for r in per_run],
        "raw_produce_samples_per_s": statistics.median(r["produce_samples_per_s"] for r in per_run),
        "raw_consume_copy_samples_per_s": statistics.median(
            r["consume_copy_samples_per_s"] for r in per_run
        ),
        "raw_table_bytes_per_row": (size[0] / n) if size else None,
        "raw_cpu_us_per_sample": statistics.median(r["cpu_us_per_sample"] for r in per_run),
        "raw_others_cores_busy": statistics.median(r["others_cores_busy"] for r in per_run),
        "message_bytes_per_sample": sum(len(v) for _, v in payloads) / n,
    }


async def _bare_hops(
    bootstrap: str, topic_a: str, topic_b: str, n: int, every_s: float
) -> list[float]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    servers = bootstrap.split(",")
    opts = {"acks": "all", "enable_idempotence": True, "linger_ms": 5}
    p_in, p_relay = (
        AIOKafkaProducer(bootstrap_servers=servers, **opts),
        AIOKafkaProducer(bootstrap_servers=servers, **opts),
    )
    c_relay = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    c_out = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    for x in (p_in, p_relay, c_relay, c_out):
        await x.start()
    lat: list[float] = []
    try:
        for c, t in ((c_relay, topic_a), (c_out, topic_b)):
            parts = None
            while not parts:
                await c._client.force_metadata_update()
                parts = c.partitions_for_topic(t)
            tps = [TopicPartition(t, p) for p in sorted(parts)]
            c.assign(tps)
            await c.seek_to_beginning(*tps)

        async def relay() -> None:
            async for m in c_relay:
                await p_relay.send_and_wait(topic_b, m.value, key=m.key)

        async def sink() -> None:
            async for m in c_out:
                lat.append((time.time() - orjson.loads(m.value)["t"]) * 1000)
                if len(lat) >= n:
                    return

        r = asyncio.create_task(relay())
        s = asyncio.create_task(sink())
        for i in range(n):
            await p_in.send_and_wait(topic_a, orjson.dumps({"t": time.time()}), key=b"k%d" % i)
            await asyncio.sleep(every_s)
        await asyncio.wait_for(s, 30)
        r.cancel()
    finally:
        for x in (p_in, p_relay, c_relay, c_out):
            await x.stop()
    return lat


def bare_hop_latency(topic_prefix: str, n: int = 100, every_s: float = 0.05) -> dict[str, Any]:
    """Bare two-hop Kafka latency (the alert path without kneeload): produce to topic A
    (acks=all) → a relay consumes A and produces to B (acks=all) → consume B. p50/p99 ms."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from kneeload.settings import get_settings

    s = get_settings()
    run = uuid.uuid4().hex[:6]
    a, b = f"{topic_prefix}baseline.hop-a.{run}", f"{topic_prefix}baseline.hop-b.{run}"
    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap.split(","))
    try:
        admin.create_topics([NewTopic(a, 3, 1), NewTopic(b, 3, 1)])
    finally:
        admin.close()
    lat = sorted(asyncio.run(_bare_hops(s.kafka_bootstrap, a, b, n, every_s)))

    def q(p: float) -> float:
        return lat[max(0, -(-len(lat) * p // 100) - 1)]

    return {"bare_hop_p50_ms": q(50), "bare_hop_p99_ms": q(99), "bare_hop_n": len(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--athletes", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20,000 samples, 1 run")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.runs = 20_000, 1
    batches = make_batches(args.samples, args.athletes, args.batch)
    print(
        f"raw pipeline: {args.samples:,} samples in {len(batches):,} messages of {args.batch}, "
        f"median of {args.runs}",
        file=sys.stderr,
    )
    with isolated("raw") as (url, prefix):
        res = raw_pipeline(url, prefix, batches, runs=args.runs)
        res.update(bare_hop_latency(prefix))
    print(
        f"raw pipeline (bare produce → consume → COPY): {res['raw_samples_per_s']:,.0f} samples/s "
        f"median; produce alone {res['raw_produce_samples_per_s']:,.0f}/s; "
        f"consume+COPY {res['raw_consume_copy_samples_per_s']:,.0f}/s; table: {res['raw_table']}; "
        f"bare 2-hop Kafka latency p50 {res['bare_hop_p50_ms']:.1f} ms "
        f"p99 {res['bare_hop_p99_ms']:.1f} ms"
    )
    print(orjson.dumps(res).decode())


if __name__ == "__main__":
    main()
