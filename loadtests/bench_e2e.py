"""End-to-end benchmark: HTTP ingest → Kafka → worker → Kafka → sink → PostgreSQL rows and alerts.

Run: .venv/bin/python loadtests/bench_e2e.py [--samples N] [--quick] [--profile]

Starts the REAL services as subprocesses on an isolated topic prefix and a fresh database
(``kneeload migrate``, ``kneeload topics``, then ``kneeload worker``, ``kneeload sink``,
``kneeload ingest``), registers athletes and their watches through the registry's own
operations (``kneeload.registry.ops``, the code behind ``kneeload registry`` and the
gateway's admin paths), then:

(0) raw baseline, measured first in the same run, before any service starts:
    ``baseline_raw.raw_pipeline`` over the same records (bare produce → consume → COPY).

(a) throughput: every sample posted as fast as the gateway takes it (100-sample batches,
    ``--clients`` concurrent HTTP connections, each client owning a set of athletes so an
    athlete's batches stay in order). Samples/s = N / (first request → the moment BOTH the
    raw table ``kneeload.watch_samples`` and the derived per-sample table
    ``kneeload.sample_load`` hold all N rows, polled every 0.25 s). Latency: the last
    sample of every 10th batch is a marker; p50/p99 from the batch's HTTP send (client
    ``time.time()`` just before the POST: same host, same clock) to its row being visible
    in ``kneeload.sample_load`` (polled every 0.1 s by primary key: resolution ~0.1 s) and to
    its ``load.samples`` event on Kafka (consumed directly). Under a saturating push these
    latencies are mostly queueing; (b) gives them at a steady rate as well.

(b) alert latency at a steady 2,000 samples/s (20 batches of 100 per second on other
    athletes, paced): every 0.4 s a pain report with pain 8/10 in context ``during`` is
    posted to ``/v1/pain`` for an athlete who has not had one (the worker's ``pain_high``
    rule, critical above 6/10; a fresh athlete each time so the 12 h cooldown never hides
    one). p50/p99 from the POST to the alert on the alerts topic (our own consumer) and to
    the row in ``kneeload.alerts`` (polled every 50 ms). The per-sample derived-row latency
    at this steady rate is reported too.

(c) sample → derived row at a steady 10,000 samples/s (``--steady-rate``, ``--steady-s``
    20 s, on athletes of its own, paced as (b), no pain reports): p50/p99 from a marker
    batch's send to its row in ``kneeload.sample_load`` (every 5th batch), printed beside the
    same run's bare 2-hop Kafka relay. The gateway's accepted rate is reported too, and
    ``sustained`` says whether the box kept up (accepted ≥ 95 % of the target over the
    phase, every marker arrived); when it did not, the achieved rate is the figure to quote.

Per-service CPU seconds (from /proc, process trees) during (a) give µs of CPU per sample
per service; ``--profile`` also samples each service with py-spy during (a) and prints the
functions where the time goes (written to ``loadtests/results/profile-*.txt``).

A service or command that does not exist yet makes the bench fail loudly, naming it; it
never invents numbers. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_raw as br
from kneeload.contracts import wire

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KNEELOAD = str(BIN / "kneeload")
RESULTS = ROOT / "loadtests" / "results"

RAW_TABLE = "kneeload.watch_samples"
DERIVED_TABLE = "kneeload.sample_load"  # a view: one row per sample of the table below (0023)
DERIVED_BATCHES = "kneeload.sample_load_batches"
#: plain PostgreSQL since migration 0029: raw samples are one row per batch here and
#: ``kneeload.watch_samples`` is a view over it (TimescaleDB keeps the hypertable)
RAW_BATCHES = "kneeload.watch_sample_batches"
#: tables whose rows are batches: counted (and sized) in samples, ``sum(n)``
BATCH_TABLES = (DERIVED_BATCHES, RAW_BATCHES)
#: the derived row of a posted batch's last sample, looked up per stored batch (the view would
#: compute every sample's record id on each poll): a batch's n-th sample is its latest
DERIVED_LAST_ID = (
    "(b.record_prefix || coalesce(b.record_suffixes[b.n], "
    "(b.record_from + (b.n - 1) * b.record_step)::text))"
)
DERIVED_LAST_SQL = (
    f"SELECT {DERIVED_LAST_ID} FROM {DERIVED_BATCHES} b WHERE {DERIVED_LAST_ID} = ANY(%s)"
)
ALERTS_TABLE = "kneeload.alerts"
SERVICES = ("migrate", "topics", "ingest", "worker", "sink")


class BenchError(RuntimeError):
    """The bench cannot measure: a missing service, a crashed process, rows that never arrive."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    v = sorted(values)
    return v[max(0, math.ceil(q / 100 * len(v)) - 1)]


def lat_summary(ms: list[float], expected: int) -> dict[str, Any]:
    return {
        "n": len(ms),
        "expected": expected,
        "p50_ms": pct(ms, 50),
        "p99_ms": pct(ms, 99),
        "max_ms": max(ms) if ms else None,
    }


# --------------------------------------------------------------------------- services


def available_commands() -> set[str]:
    out = subprocess.run([KNEELOAD, "--help"], capture_output=True, text=True, check=False)
    cmds: set[str] = set()
    in_cmds = False
    for line in out.stdout.splitlines():
        if line.strip().startswith("Commands:"):
            in_cmds = True
            continue
        if in_cmds and line.startswith("  ") and line.strip():
            cmds.add(line.split()[0])
    return cmds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(
                f"`kneeload {self.name}` exited with {self.proc.returncode}:\n{self.tail()}"
            )

    def tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + x for x in lines[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


def run_cmd(args: list[str], env: dict[str, str], what: str, timeout: float = 180) -> None:
    r = subprocess.run([KNEELOAD, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise BenchError(f"`kneeload {' '.join(args)}` failed ({what}):\n{r.stdout}\n{r.stderr}")


# --------------------------------------------------------------------------- registry


async def register(athletes: list[str], team: str) -> dict[str, tuple[str, str]]:
    """Athlete + watch for each id through the registry operations; ``{athlete: (device, key)}``."""
    from kneeload.registry import RegistryView, RegistryWriter
    from kneeload.registry.ops import put_athlete, register_device
    from kneeload.settings import get_settings

    s = get_settings()
    view = RegistryView(s, client_id="kneeload-bench")
    await view.start(timeout_s=30)
    keys: dict[str, tuple[str, str]] = {}
    try:
        async with RegistryWriter(s, view=view) as w:
            for aid in athletes:
                await put_athlete(
                    w,
                    athlete_id=aid,
                    body_mass_kg=62.0 + (hash(aid) % 25),
                    team_id=team,
                    time_zone="UTC",
                    display_name=None,
                    active=True,
                )
            for aid in athletes:
                did = "w-" + aid
                _, key = await register_device(
                    w, view, did, kind="watch", athlete_id=aid, mqtt=False
                )
                keys[aid] = (did, key)
    finally:
        await view.stop()
    return keys


# --------------------------------------------------------------------------- pollers


class RowWatcher:
    """Polls a table by primary key for outstanding record ids; notes when each became visible."""

    def __init__(self, conn: Any, table: str, id_col: str, period_s: float) -> None:
        self.conn, self.table, self.id_col, self.period = conn, table, id_col, period_s
        self.pending: dict[str, float] = {}  # id -> send time
        self.latency_ms: dict[str, float] = {}
        self.stopped = False

    async def run(self) -> None:
        sql = f"SELECT {self.id_col} FROM {self.table} WHERE {self.id_col} = ANY(%s)"
        if self.table == DERIVED_TABLE:
            sql = DERIVED_LAST_SQL
        while not self.stopped:
            if self.pending:
                ids = list(self.pending)
                async with self.conn.cursor() as cur:
                    await cur.execute(sql, (ids,))
                    found = [r[0] for r in await cur.fetchall()]
                now = time.time()
                for i in found:
                    sent = self.pending.pop(i, None)
                    if sent is not None:
                        self.latency_ms[i] = (now - sent) * 1000
            await asyncio.sleep(self.period)


class TopicWatcher:
    """Consumes a topic from its end; calls ``match(value) -> [ids]`` and notes arrival times."""

    def __init__(self, topic: str, match: Any) -> None:
        self.topic, self.match = topic, match
        self.pending: dict[str, float] = {}
        self.latency_ms: dict[str, float] = {}
        self.stopped = False
        self.ready = asyncio.Event()

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from kneeload.settings import get_settings

        c = AIOKafkaConsumer(
            bootstrap_servers=get_settings().kafka_bootstrap.split(","),
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        await c.start()
        try:
            parts = c.partitions_for_topic(self.topic)
            while not parts:
                await c._client.force_metadata_update()
                parts = c.partitions_for_topic(self.topic)
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            c.assign(tps)
            await c.seek_to_end(*tps)
            for tp in tps:
                await c.position(tp)
            self.ready.set()
            while not self.stopped:
                batch = await c.getmany(timeout_ms=50)
                now = time.time()
                for msgs in batch.values():
                    for m in msgs:
                        for i in self.match(m.value):
                            sent = self.pending.pop(i, None)
                            if sent is not None:
                                self.latency_ms[i] = (now - sent) * 1000
        finally:
            await c.stop()


def load_samples_ids(value: bytes) -> list[str]:
    try:
        ev = wire.decode(value)
        return [s["record_id"] for s in ev.get("samples", ()) if "record_id" in s]
    except Exception:
        return []


def alert_ids(value: bytes) -> list[str]:
    try:
        ev = wire.decode(value)
        return [ev["athlete_id"]] if ev.get("kind") == "pain_high" and ev.get("athlete_id") else []
    except Exception:
        return []


def count_sql(table: str, raw_batches: bool = False) -> str:
    """How many samples ``table`` holds, without unnesting a batch table's arrays.

    ``raw_batches``: the raw samples are stored by batch (plain since 0029), so the raw view is
    counted from the batch table.
    """
    if table == DERIVED_TABLE:
        table = DERIVED_BATCHES
    elif table == RAW_TABLE and raw_batches:
        table = RAW_BATCHES
    return f"SELECT {'coalesce(sum(n), 0)' if table in BATCH_TABLES else 'count(*)'} FROM {table}"


async def count_rows(conn: Any, table: str, raw_batches: bool = False) -> int:
    sql = count_sql(table, raw_batches)
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
    return int(row[0])


# --------------------------------------------------------------------------- HTTP load


def watch_body(samples: list[dict[str, Any]], aid: str) -> bytes:
    return orjson.dumps({"session_id": f"s-{aid}", "samples": samples})


async def post_all(
    session: Any,
    url: str,
    work: list[list[tuple[dict[str, str], bytes, str | None]]],
    on_send: Any,
    errors: Counter[str],
) -> None:
    async def client(items: list[tuple[dict[str, str], bytes, str | None]]) -> None:
        for headers, body, marker in items:
            on_send(marker, time.time())
            async with session.post(url, data=body, headers=headers) as r:
                data = await r.read()
                if r.status != 200:
                    errors[f"{r.status}: {data[:200]!r}"] += 1

    await asyncio.gather(*(client(w) for w in work))


# --------------------------------------------------------------------------- profiling


def pyspy() -> str | None:
    return shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")


def _fn(frame: str) -> str:
    """``func (path/file.py:123)`` → ``func (path/file.py)``: one entry per function."""
    head, sep, rest = frame.rpartition(":")
    return head + ")" if sep and rest.rstrip(")").isdigit() else frame


def summarize_collapsed(path: Path, top: int = 12) -> dict[str, Any]:
    """From py-spy's collapsed stacks (active threads only: py-spy drops idle ones by
    default): share of samples per function as the leaf (self) and anywhere on the stack
    (inclusive), per function, in percent of the process's active samples."""
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    skip = (
        "process ",
        "<module>",
        "main (kneeload/cli.py",
        "Runner.run",
        "run (asyncio/",
        "_run_once",
        "run_forever",
        "Handle._run",
        "_bootstrap",
        "asyncio_run",
    )
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        try:
            k = int(n)
        except ValueError:
            continue
        frames = [_fn(f) for f in stack.split(";")]
        total += k
        self_t[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    t = max(1, total)
    return {
        "samples": total,
        "top_self": [(f, round(100 * v / t, 1)) for f, v in self_t.most_common(top)],
        "top_inclusive": [
            (f, round(100 * v / t, 1))
            for f, v in incl.most_common(200)
            if any(x in f for x in ("kneeload/", "faust/", "aiokafka/", "psycopg/", "<string>"))
            and not any(x in f for x in skip)
            and "/cli.py" not in f
        ][:top],
    }


# --------------------------------------------------------------------------- the bench


async def phase_throughput(
    args: argparse.Namespace,
    url: str,
    batches: list[tuple[str, str, list[dict[str, Any]]]],
    keys: dict[str, tuple[str, str]],
    db_url: str,
    services: list[Service],
    topic_load: str,
    base_raw: int,
    base_derived: int,
    raw_batches: bool = False,
) -> dict[str, Any]:
    import aiohttp
    import psycopg

    n = sum(len(b[2]) for b in batches)
    work: list[list[tuple[dict[str, str], bytes, str | None]]] = [[] for _ in range(args.clients)]
    client_of: dict[str, int] = {}
    markers = 0
    for i, (aid, _did, samples) in enumerate(batches):
        c = client_of.setdefault(aid, len(client_of) % args.clients)
        did, key = keys[aid]
        marker = samples[-1]["record_id"] if i % 10 == 9 or i == len(batches) - 1 else None
        markers += marker is not None
        headers = {"X-Device-Id": did, "X-Api-Key": key, "Content-Type": "application/json"}
        work[c].append((headers, watch_body(samples, aid), marker))
    conn_poll = await psycopg.AsyncConnection.connect(db_url, autocommit=True)
    conn_count = await psycopg.AsyncConnection.connect(db_url, autocommit=True)
    rows = RowWatcher(conn_poll, DERIVED_TABLE, "record_id", 0.1)
    topic = TopicWatcher(topic_load, load_samples_ids)
    t_topic = asyncio.create_task(topic.run())
    await asyncio.wait_for(topic.ready.wait(), 30)
    t_rows = asyncio.create_task(rows.run())

    def on_send(marker: str | None, t: float) -> None:
        if marker is not None:
            rows.pending[marker] = t
            topic.pending[marker] = t

    errors: Counter[str] = Counter()
    meter = br.CpuMeter({**{s.name: s.pid for s in services}, **br.stack_pids()})
    prof: dict[str, subprocess.Popen[bytes]] = {}
    prof_dir = Path(tempfile.mkdtemp(prefix="kneeload-prof-"))
    if args.profile:
        exe = pyspy()
        if exe is None:
            log("  --profile: py-spy is not installed (pip install py-spy); profiling skipped")
        else:
            only = {x for x in args.profile_only.split(",") if x}
            idle = ["--idle", "--threads"] if args.profile_idle else []
            for s in services:
                if only and s.name not in only:
                    continue
                prof[s.name] = subprocess.Popen(
                    [
                        exe,
                        "record",
                        "--pid",
                        str(s.pid),
                        "--subprocesses",
                        "--format",
                        "raw",
                        "--rate",
                        "97",
                        *idle,
                        "--output",
                        str(prof_dir / f"{s.name}.txt"),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            await asyncio.sleep(1.0)
    conn = aiohttp.TCPConnector(limit=args.clients, force_close=False)
    meter.start()
    t0 = time.time()
    async with aiohttp.ClientSession(
        connector=conn, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        sender = asyncio.create_task(post_all(session, url, work, on_send, errors))
        t_http_done = None
        t_raw = t_derived = None
        last_progress = time.time()
        progress = (0, 0)
        while True:
            await asyncio.sleep(0.25)
            for s in services:
                s.check()
            if t_http_done is None and sender.done():
                sender.result()
                t_http_done = time.time()
                log(
                    f"  HTTP: {n:,} samples posted in {t_http_done - t0:.1f} s "
                    f"({n / (t_http_done - t0):,.0f}/s); errors: {sum(errors.values())}"
                )
            raw_n = (
                await count_rows(conn_count, RAW_TABLE, raw_batches) - base_raw
                if t_raw is None
                else n
            )
            der_n = (
                await count_rows(conn_count, DERIVED_TABLE) - base_derived
                if t_derived is None
                else n
            )
            now = time.time()
            if t_raw is None and raw_n >= n:
                t_raw = now
            if t_derived is None and der_n >= n:
                t_derived = now
            if t_raw and t_derived:
                break
            if (raw_n, der_n) != progress:
                progress, last_progress = (raw_n, der_n), now
            elif now - last_progress > args.stall_s:
                raise BenchError(
                    f"rows stopped arriving: {RAW_TABLE} {raw_n:,}/{n:,}, {DERIVED_TABLE} "
                    f"{der_n:,}/{n:,} for {args.stall_s:.0f} s; http errors: {dict(errors)}\n"
                    + "\n".join(f"  {s.name}:\n{s.tail(12)}" for s in services)
                )
    usage = meter.stop()
    profiles: dict[str, Any] = {}
    for name, p in prof.items():
        p.send_signal(signal.SIGINT)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
        f = prof_dir / f"{name}.txt"
        if f.exists():
            RESULTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, RESULTS / f"profile-{name}.collapsed.txt")
            profiles[name] = summarize_collapsed(f)
    await asyncio.sleep(1.0)  # let the last markers' topic events arrive
    rows.stopped = topic.stopped = True
    await asyncio.gather(t_rows, t_topic, return_exceptions=True)
    await conn_poll.close()
    await conn_count.close()
    if errors:
        raise BenchError(f"gateway answered non-200 during the throughput phase: {dict(errors)}")
    end = max(t_raw, t_derived)
    wall = end - t0
    cpu = usage["cpu_s"]
    svc_us = sum(cpu[x.name] for x in services) / n * 1e6
    # the whole platform: its services and the Kafka broker and PostgreSQL they drive
    plat_us = sum(v for k, v in cpu.items() if k != "bench_client" and v is not None) / n * 1e6
    return {
        "samples": n,
        "batches": len(batches),
        "clients": args.clients,
        "end_to_end_samples_per_s": n / wall,
        "seconds": wall,
        "http_samples_per_s": n / ((t_http_done or end) - t0),
        "raw_rows_samples_per_s": n / (t_raw - t0),
        "derived_rows_samples_per_s": n / (t_derived - t0),
        "sample_to_derived_row": lat_summary(list(rows.latency_ms.values()), markers),
        "sample_to_derived_event": lat_summary(list(topic.latency_ms.values()), markers),
        "cpu_s": cpu,
        "cpu_us_per_sample": {
            k: (round(v / n * 1e6, 1) if v is not None else None) for k, v in cpu.items()
        },
        "cpu_cores_busy": usage["cores_busy"],
        "services_cpu_us_per_sample": round(svc_us, 1),
        "platform_cpu_us_per_sample": round(plat_us, 1),
        "machine_cores_busy": usage["machine_cores_busy"],
        "others_cores_busy": usage["others_cores_busy"],
        "profiles": profiles,
    }


async def phase_steady(
    args: argparse.Namespace,
    url: str,
    keys: dict[str, tuple[str, str]],
    steady: list[str],
    alerters: list[str],
    db_url: str,
    services: list[Service],
    topic_alerts: str,
    topic_load: str,
    rate: int,
    duration: float,
) -> dict[str, Any]:
    """Batches of ``steady`` athletes paced at ``rate`` samples/s for ``duration`` s (every
    5th batch's last sample a marker: send → derived row), and a pain report for each of
    ``alerters`` every ``--alert-every-s`` (send → alert event / row); none when empty."""
    import random

    import aiohttp
    import psycopg

    per_tick = max(1, round(rate / args.batch / 20))  # batches every 50 ms
    tick = 0.05
    rng = random.Random(11 + rate)
    start_ms = int(time.time() * 1000) - int(duration * rate / len(steady)) * 1000 - 900_000
    offsets = dict.fromkeys(steady, 0)
    conn_poll = await psycopg.AsyncConnection.connect(db_url, autocommit=True)
    conn_poll2 = await psycopg.AsyncConnection.connect(db_url, autocommit=True)
    alert_rows = RowWatcher(conn_poll, ALERTS_TABLE, "athlete_id", 0.05)
    alert_topic = TopicWatcher(topic_alerts, alert_ids)
    sample_rows = RowWatcher(conn_poll2, DERIVED_TABLE, "record_id", 0.1)
    # the marker's load.samples event: splits the derived-row latency into the part up to
    # the worker's output (gateway, Kafka, worker) and the sink's part after it
    sample_topic = TopicWatcher(topic_load, load_samples_ids)
    tasks = [asyncio.create_task(alert_topic.run()), asyncio.create_task(sample_topic.run())]
    await asyncio.wait_for(alert_topic.ready.wait(), 30)
    await asyncio.wait_for(sample_topic.ready.wait(), 30)
    tasks += [asyncio.create_task(alert_rows.run()), asyncio.create_task(sample_rows.run())]
    errors: Counter[str] = Counter()
    sent_samples = 0
    sample_markers = 0
    accepted = [0, 0.0]  # samples answered 200 by the gateway, time of the last answer
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        inflight: set[asyncio.Task[None]] = set()

        async def post(headers: dict[str, str], body: bytes, path: str, n: int = 0) -> None:
            async with session.post(url + path, data=body, headers=headers) as r:
                data = await r.read()
                if r.status != 200:
                    errors[f"{path} {r.status}: {data[:200]!r}"] += 1
                else:
                    accepted[0] += n
                    accepted[1] = time.time()

        def spawn(coro: Any) -> None:
            t = asyncio.create_task(coro)
            inflight.add(t)
            t.add_done_callback(inflight.discard)

        meter = br.CpuMeter({**{x.name: x.pid for x in services}, **br.stack_pids()})
        meter.start()
        t0 = time.time()
        next_alert = t0 + 1.0
        a_i = s_i = 0
        k = 0
        while True:
            now = time.time()
            if now - t0 >= duration:
                break
            for _ in range(per_tick):
                aid = steady[s_i % len(steady)]
                s_i += 1
                did, key = keys[aid]
                smp = br.make_samples(did, start_ms + offsets[aid] * 1000, args.batch, rng)
                offsets[aid] += args.batch
                if s_i % 5 == 0:
                    sample_rows.pending[smp[-1]["record_id"]] = time.time()
                    sample_topic.pending[smp[-1]["record_id"]] = time.time()
                    sample_markers += 1
                spawn(
                    post(
                        {"X-Device-Id": did, "X-Api-Key": key, "Content-Type": "application/json"},
                        watch_body(smp, aid),
                        "/v1/watch/samples",
                        args.batch,
                    )
                )
                sent_samples += args.batch
            if a_i < len(alerters) and now >= next_alert:
                aid = alerters[a_i]
                a_i += 1
                did, key = keys[aid]
                body = orjson.dumps(
                    {
                        "report_id": f"bench-{uuid.uuid4().hex}",
                        "time": br.iso_ms(int(now * 1000)),
                        "pain_nrs": 8,
                        "context": "during",
                    }
                )
                t_send = time.time()
                alert_rows.pending[aid] = t_send
                alert_topic.pending[aid] = t_send
                spawn(
                    post(
                        {"X-Device-Id": did, "X-Api-Key": key, "Content-Type": "application/json"},
                        body,
                        "/v1/pain",
                    )
                )
                next_alert += args.alert_every_s
            k += 1
            await asyncio.sleep(max(0.0, t0 + k * tick - time.time()))
            if k % 20 == 0:
                for s in services:
                    s.check()
        wall = time.time() - t0
        usage = meter.stop()
        if inflight:
            await asyncio.gather(*inflight)
        http_wall = max(accepted[1], t0 + wall) - t0
    deadline = time.time() + args.stall_s
    while (
        alert_rows.pending or alert_topic.pending or sample_rows.pending
    ) and time.time() < deadline:
        await asyncio.sleep(0.2)
    for w in (alert_rows, alert_topic, sample_rows, sample_topic):
        w.stopped = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await conn_poll.close()
    await conn_poll2.close()
    if errors:
        raise BenchError(f"gateway answered non-200 during a steady phase: {dict(errors)}")
    lat = lat_summary(list(sample_rows.latency_ms.values()), sample_markers)
    return {
        "target_samples_per_s": rate,
        "steady_samples_per_s": sent_samples / wall,
        # the gateway's answers: below the sent rate when the box cannot keep up
        "http_accepted_samples_per_s": accepted[0] / http_wall,
        "sustained": bool(
            accepted[0] >= 0.95 * rate * duration
            and http_wall <= 1.05 * duration + 1.0
            and lat["n"] == sample_markers
        ),
        "cpu_s": usage["cpu_s"],
        "cpu_cores_busy": usage["cores_busy"],
        "machine_cores_busy": usage["machine_cores_busy"],
        "others_cores_busy": usage["others_cores_busy"],
        "seconds": wall,
        "pain_reports": len(alerters),
        "alert_kind": "pain_high (pain 8/10, context during, via POST /v1/pain)",
        "report_to_alert_event": lat_summary(list(alert_topic.latency_ms.values()), len(alerters)),
        "report_to_alert_row": lat_summary(list(alert_rows.latency_ms.values()), len(alerters)),
        "sample_to_derived_row_steady": lat,
        "sample_to_derived_event_steady": lat_summary(
            list(sample_topic.latency_ms.values()), sample_markers
        ),
    }


async def warm_up(
    url: str,
    athletes: list[str],
    keys: dict[str, tuple[str, str]],
    db_url: str,
    services: list[Service],
    timeout_s: float,
) -> None:
    """One 10-sample batch per athlete, hours back, until all are in the derived table:
    proves the whole chain works and leaves every athlete's state created."""
    import random

    import aiohttp
    import psycopg

    rng = random.Random(3)
    start = int(time.time() * 1000) - 6 * 3600_000
    ids = []
    async with aiohttp.ClientSession() as session:
        for aid in athletes:
            did, key = keys[aid]
            smp = br.make_samples(did, start, 10, rng)
            ids.append(smp[-1]["record_id"])
            async with session.post(
                url + "/v1/watch/samples",
                data=watch_body(smp, aid),
                headers={"X-Device-Id": did, "X-Api-Key": key, "Content-Type": "application/json"},
            ) as r:
                if r.status != 200:
                    raise BenchError(f"warm-up POST refused: {r.status} {(await r.read())[:300]!r}")
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        deadline = time.time() + timeout_s
        while True:
            for s in services:
                s.check()
            cur = await conn.execute(DERIVED_LAST_SQL, (ids,))
            got = len(set(r[0] for r in await cur.fetchall()))
            if got == len(ids):
                return
            if time.time() > deadline:
                raise BenchError(
                    f"warm-up: {got}/{len(ids)} derived rows after {timeout_s:.0f} s\n"
                    + "\n".join(f"  {s.name}:\n{s.tail(15)}" for s in services)
                )
            await asyncio.sleep(0.5)


async def wait_healthy(url: str, svc: Service, timeout_s: float = 60) -> None:
    import aiohttp

    deadline = time.time() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.time() < deadline:
            svc.check()
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.3)
    raise BenchError(f"`kneeload ingest` not healthy after {timeout_s:.0f} s:\n{svc.tail()}")


def kafka_bytes(prefix: str, n: int) -> dict[str, float]:
    """Bytes on the broker's disk per sample of the throughput phase, per topic (local
    broker's log.dirs; replication 1, no compression). Includes the warm-up, a few %."""
    from kneeload.settings import get_settings

    props = get_settings().var_dir / "kafka" / "server.properties"
    logdir = None
    with contextlib.suppress(OSError):
        for line in props.read_text().splitlines():
            if line.startswith("log.dirs="):
                logdir = Path(line.split("=", 1)[1].split(",")[0])
    if logdir is None or not logdir.is_dir():
        return {}
    sizes: Counter[str] = Counter()
    for d in logdir.iterdir():
        if d.name.startswith(prefix) and d.is_dir():
            topic = d.name[len(prefix) :].rsplit("-", 1)[0]
            sizes[topic] += sum(f.stat().st_size for f in d.glob("*.log"))
    return {t: round(b / n, 1) for t, b in sorted(sizes.items()) if b}


def run(args: argparse.Namespace, db_url: str, prefix: str) -> dict[str, Any]:
    import psycopg

    from kneeload.settings import get_settings
    from kneeload.topics import ALERTS, LOAD_SAMPLES, topic_name

    have = available_commands()
    missing = [c for c in SERVICES if c not in have]
    if missing:
        raise BenchError(
            "cannot run end to end: missing service command(s): "
            + ", ".join(f"`kneeload {c}`" for c in missing)
            + f" (the CLI has: {', '.join(sorted(have))})"
        )
    s = get_settings()
    env = dict(
        os.environ,
        KNEELOAD_DATABASE_URL=db_url,
        KNEELOAD_TOPIC_PREFIX=prefix,
        KNEELOAD_LOG_LEVEL="WARNING",
    )
    port = free_port()
    env["KNEELOAD_HTTP_PORT"] = str(port)
    url = f"http://127.0.0.1:{port}"
    t = time.time()
    run_cmd(["migrate"], env, "database migrations")
    run_cmd(["topics"], env, "topic catalogue")
    log(f"  migrate + topics: {time.time() - t:.1f} s")

    n_load = args.athletes
    load_ids = [f"ath{i:05d}" for i in range(n_load)]
    steady_ids = [f"std{i:04d}" for i in range(args.steady_athletes)]
    alert_ids_ = [f"alr{i:04d}" for i in range(args.alerts)]
    rate_ids = [] if args.skip_steady else [f"rat{i:04d}" for i in range(args.steady_athletes)]
    t = time.time()
    keys = asyncio.run(register(load_ids + steady_ids + alert_ids_ + rate_ids, "team-bench"))
    log(f"  registered {len(keys)} athletes and watches in {time.time() - t:.1f} s")

    batches = br.make_batches(args.samples, n_load, args.batch, device_fmt="w-ath{:05d}")
    assert all(keys[aid][0] == did for aid, did, _ in batches)
    result: dict[str, Any] = {"samples": args.samples, "athletes": n_load, "batch": args.batch}

    log(f"(0) raw baseline: bare produce → consume → COPY of the same {args.samples:,} samples")
    raw = br.raw_pipeline(db_url, prefix, batches, runs=args.raw_runs, log=log)
    result.update(raw)
    result.update(br.bare_hop_latency(prefix))
    log(
        f"  bare 2-hop Kafka relay latency p50 {result['bare_hop_p50_ms']:.1f} ms "
        f"p99 {result['bare_hop_p99_ms']:.1f} ms"
    )
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_samples")

    logdir = Path(tempfile.mkdtemp(prefix="kneeload-e2e-"))
    services: list[Service] = []
    try:
        services.append(Service("worker", [KNEELOAD, "worker"], env, logdir))
        services.append(Service("sink", [KNEELOAD, "sink"], env, logdir))
        ingest = Service("ingest", [KNEELOAD, "ingest", "--port", str(port)], env, logdir)
        services.append(ingest)
        asyncio.run(wait_healthy(url, ingest))
        t = time.time()
        asyncio.run(
            warm_up(url, load_ids + steady_ids + rate_ids, keys, db_url, services, args.warmup_s)
        )
        log(f"  services up, warm-up through the whole chain in {time.time() - t:.1f} s")
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (RAW_BATCHES,)).fetchone()
            raw_batches = bool(row and row[0])
            base_raw = conn.execute(count_sql(RAW_TABLE, raw_batches)).fetchone()[0]  # type: ignore[index]
            base_der = conn.execute(
                f"SELECT coalesce(sum(n), 0) FROM {DERIVED_BATCHES}"
            ).fetchone()[0]  # type: ignore[index]

        log(
            f"(a) throughput: {args.samples:,} samples, {len(batches):,} POSTs of {args.batch}, "
            f"{args.clients} clients"
        )
        a = asyncio.run(
            phase_throughput(
                args,
                url + "/v1/watch/samples",
                batches,
                keys,
                db_url,
                services,
                topic_name(LOAD_SAMPLES, s),
                base_raw,
                base_der,
                raw_batches,
            )
        )
        result["throughput"] = a
        log(
            f"  end to end {a['end_to_end_samples_per_s']:,.0f} samples/s "
            f"(raw rows {a['raw_rows_samples_per_s']:,.0f}/s, derived rows "
            f"{a['derived_rows_samples_per_s']:,.0f}/s, HTTP {a['http_samples_per_s']:,.0f}/s); "
            f"sample→derived row p50 {a['sample_to_derived_row']['p50_ms']} ms "
            f"p99 {a['sample_to_derived_row']['p99_ms']} ms; CPU µs/sample {a['cpu_us_per_sample']}"
        )
        with psycopg.connect(db_url) as conn:
            sizes = {}
            for tbl in (
                RAW_BATCHES if raw_batches else RAW_TABLE,
                DERIVED_BATCHES,
                "kneeload.watch_batches",
                "kneeload.minute_load",
            ):
                try:
                    r = conn.execute(
                        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                        "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid "
                        "WHERE c.oid = %s::regclass OR i.inhparent = %s::regclass",
                        (tbl, tbl),
                    ).fetchone()
                    # the derived batches' rows are counted in samples: bytes_per_row per sample
                    cnt = conn.execute(count_sql(tbl)).fetchone()
                    sizes[tbl] = {"rows": cnt[0] if cnt else 0, "bytes": int(r[0]) if r else 0}
                except psycopg.Error as exc:
                    conn.rollback()
                    sizes[tbl] = {"error": str(exc).splitlines()[0]}
        for v in sizes.values():
            if v.get("rows"):
                v["bytes_per_row"] = round(v["bytes"] / v["rows"], 1)
        result["table_sizes"] = sizes
        result["kafka_bytes_per_sample"] = kb = kafka_bytes(prefix, args.samples)
        result["kafka_bytes_per_sample_total"] = round(
            sum(v for t, v in kb.items() if not t.startswith("baseline.")), 1
        )

        if not args.skip_alerts:
            log(
                f"(b) alerts at a steady {args.alert_rate:,} samples/s: "
                f"{args.alerts} pain reports, "
                f"one every {args.alert_every_s} s"
            )
            b = asyncio.run(
                phase_steady(
                    args,
                    url,
                    keys,
                    steady_ids,
                    alert_ids_,
                    db_url,
                    services,
                    topic_name(ALERTS, s),
                    topic_name(LOAD_SAMPLES, s),
                    args.alert_rate,
                    len(alert_ids_) * args.alert_every_s + 3.0,
                )
            )
            result["alerts"] = b
            log(
                f"  steady {b['steady_samples_per_s']:,.0f} samples/s; pain report → alert event "
                f"p50 {b['report_to_alert_event']['p50_ms']} ms "
                f"p99 {b['report_to_alert_event']['p99_ms']} ms; "
                f"→ alert row p50 {b['report_to_alert_row']['p50_ms']} ms "
                f"p99 {b['report_to_alert_row']['p99_ms']} ms"
            )
        if not args.skip_steady:
            log(
                f"(c) sample → derived row at a steady {args.steady_rate:,} samples/s for "
                f"{args.steady_s:.0f} s ({len(rate_ids)} athletes)"
            )
            c = asyncio.run(
                phase_steady(
                    args,
                    url,
                    keys,
                    rate_ids,
                    [],
                    db_url,
                    services,
                    topic_name(ALERTS, s),
                    topic_name(LOAD_SAMPLES, s),
                    args.steady_rate,
                    args.steady_s,
                )
            )
            result["steady"] = c
            lat, ev = c["sample_to_derived_row_steady"], c["sample_to_derived_event_steady"]
            log(
                f"  sent {c['steady_samples_per_s']:,.0f} samples/s, gateway accepted "
                f"{c['http_accepted_samples_per_s']:,.0f}/s "
                f"({'sustained' if c['sustained'] else 'NOT sustained'}); sample → derived row "
                f"p50 {lat['p50_ms']:.1f} ms p99 {lat['p99_ms']:.1f} ms "
                f"({lat['n']}/{lat['expected']} markers; to its load.samples event p50 "
                f"{ev['p50_ms']:.1f} ms p99 {ev['p99_ms']:.1f} ms) beside the bare 2-hop relay's "
                f"p50 {result['bare_hop_p50_ms']:.1f} ms p99 {result['bare_hop_p99_ms']:.1f} ms"
            )
    finally:
        for svc in reversed(services):
            svc.stop()
        if not args.keep_logs:
            shutil.rmtree(logdir, ignore_errors=True)
        else:
            log(f"  service logs kept in {logdir}")

    result["end_to_end_samples_per_s"] = result["throughput"]["end_to_end_samples_per_s"]
    result["ratio_to_raw"] = result["end_to_end_samples_per_s"] / result["raw_samples_per_s"]
    svc = result["throughput"]["services_cpu_us_per_sample"]
    result["cpu_ratio_to_raw"] = result["raw_cpu_us_per_sample"] / svc if svc else None
    if "steady" in result:
        st = result["steady"]
        result["steady_sample_to_derived_row_p50_ms"] = st["sample_to_derived_row_steady"]["p50_ms"]
        result["steady_sample_to_derived_row_p99_ms"] = st["sample_to_derived_row_steady"]["p99_ms"]
        result["steady_sample_to_derived_event_p99_ms"] = st["sample_to_derived_event_steady"][
            "p99_ms"
        ]
        result["steady_http_accepted_samples_per_s"] = st["http_accepted_samples_per_s"]
        result["steady_sustained"] = st["sustained"]
    if "alerts" in result:
        ev = result["alerts"]["report_to_alert_event"]["p99_ms"]
        row = result["alerts"]["report_to_alert_row"]["p99_ms"]
        result["p99_alert_latency_ms"] = (
            max(x for x in (ev, row) if x is not None) if (ev or row) else None
        )
        result["p99_alert_latency_event_ms"] = ev
        result["p99_alert_latency_row_ms"] = row
        lost = result["alerts"]["pain_reports"] - result["alerts"]["report_to_alert_row"]["n"]
        if lost:
            raise BenchError(f"{lost} pain_high alert(s) never reached {ALERTS_TABLE}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--athletes", type=int, default=200, help="athletes of the throughput phase")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--clients", type=int, default=8, help="concurrent HTTP connections")
    ap.add_argument("--raw-runs", type=int, default=3)
    ap.add_argument("--alert-rate", type=int, default=2000, help="steady samples/s of phase (b)")
    ap.add_argument("--alerts", type=int, default=100, help="pain reports injected in (b)")
    ap.add_argument("--alert-every-s", type=float, default=0.4)
    ap.add_argument("--steady-athletes", type=int, default=200)
    ap.add_argument("--skip-alerts", action="store_true")
    ap.add_argument(
        "--steady-rate", type=int, default=10_000, help="samples/s of phase (c): derived latency"
    )
    ap.add_argument("--steady-s", type=float, default=20.0, help="seconds of phase (c)")
    ap.add_argument("--skip-steady", action="store_true")
    ap.add_argument(
        "--profile-idle",
        action="store_true",
        help="with --profile: also idle samples, per thread (where a service waits)",
    )
    ap.add_argument(
        "--profile-only", default="", help="with --profile: these services only (comma list)"
    )
    ap.add_argument("--warmup-s", type=float, default=180)
    ap.add_argument("--stall-s", type=float, default=90, help="fail when no row arrives this long")
    ap.add_argument("--profile", action="store_true", help="py-spy each service during (a)")
    ap.add_argument("--keep-logs", action="store_true")
    ap.add_argument("--quick", action="store_true", help="20,000 samples, 20 alerts, 1 raw run")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.athletes, args.raw_runs = 20_000, 50, 1
        args.alerts, args.steady_athletes, args.alert_every_s = 20, 50, 0.25
        args.steady_s = 5.0
    try:
        with br.isolated("e2e") as (db_url, prefix):  # or the runner's (run_all.py)
            result = run(args, db_url, prefix)
    except BenchError as exc:
        log(f"END-TO-END BENCH FAILED: {exc}")
        print(orjson.dumps({"error": str(exc)[:4000]}).decode())
        sys.exit(1)
    t = result["throughput"]
    print(
        f"end to end: {result['end_to_end_samples_per_s']:,.0f} samples/s vs raw pipeline "
        f"{result['raw_samples_per_s']:,.0f} samples/s (ratio {result['ratio_to_raw']:.3f}); "
        f"sample→derived row p50/p99 {t['sample_to_derived_row']['p50_ms']}/"
        f"{t['sample_to_derived_row']['p99_ms']} ms; p99 alert latency "
        f"{result.get('p99_alert_latency_ms')} ms; sample→derived row p99 at a steady "
        f"{args.steady_rate:,}/s {result.get('steady_sample_to_derived_row_p99_ms')} ms"
    )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
