"""``kneeload sink``: Kafka (raw and derived topics) → PostgreSQL.

The loop: ``getmany`` a batch → decode/validate (bad messages become dead letters) and format
(:meth:`Sink.prepare`, overlapping the previous batch's database work) → one database
transaction with the rows, the dead letters and the next offsets
(:class:`~kneeload.storage.writer.Writer`) → dead letters to the dead-letter topic → Kafka offset
commit. Kafka offsets are committed only after the database commit; the database's own offset
table makes the window between the two harmless (a restarted sink skips what is stored), and
natural-id primary keys make any replay a no-op anyway.

A database error (outage, restart, failover) backs off exponentially (capped) and retries the
same batch on a new connection; at most one more batch is fetched and held meanwhile, and
nothing is lost. SIGTERM/SIGINT
finish the batch in hand, commit, and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from kneeload import contracts
from kneeload.settings import Settings, get_settings
from kneeload.storage.writer import (
    KINDS,
    SAMPLE_TOPICS,
    Message,
    Prepared,
    Writer,
    WriteResult,
    decode,
)
from kneeload.topics.catalogue import (
    DEADLETTER,
    topic_name,
)

log = logging.getLogger("kneeload.sink")

__all__ = ["SINK_TOPICS", "Sink", "SinkStats", "run_sink"]

T = TypeVar("T")

#: Every topic the sink stores.
SINK_TOPICS: tuple[str, ...] = (*SAMPLE_TOPICS, *KINDS)
CRASH_EXIT_CODE = 17


@dataclass(slots=True)
class SinkStats:
    batches: int = 0
    messages: int = 0
    rows: int = 0
    dead_letters: int = 0
    db_errors: int = 0
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "messages": self.messages,
            "rows": self.rows,
            "dead_letters": self.dead_letters,
            "db_errors": self.db_errors,
            "uptime_s": round(time.monotonic() - self.started, 1),
        }


class _DbThread:
    """The sink's database connection lives on a thread of its own with its own event loop.

    The main loop fetches from Kafka, decodes and formats (CPU, holding the GIL); this thread
    feeds COPY data to PostgreSQL and waits on the socket (GIL released) — so the two overlap on
    two cores. Measured on this 2-core machine: 300,000 samples through the writer at 105-120k
    samples/s threaded against 76-88k/s with both halves on one loop (loadtests/bench_sink.py)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="kneeload-sink-db", daemon=True
        )
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Start ``coro`` on the database thread now; the future is awaitable from the
        calling loop. (Submitting synchronously matters: the CPU work that follows must not
        delay the start of the database work.)"""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the database thread and wait for it."""
        return await self.submit(coro)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.sink.drain()  # the batch in flight lands (and commits) before others take over

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.sink.drain()
        await self.sink.seek_to_stored(assigned)


class Sink:
    """One sink process (its consumer group shares the partitions with other sink processes)."""

    def __init__(
        self, settings: Settings | None = None, topics: Sequence[str] = SINK_TOPICS
    ) -> None:
        self.s = settings or get_settings()
        self.topics = tuple(topics)
        self.full = {topic_name(t, self.s): t for t in self.topics}
        self.stats = SinkStats()
        self.stopping = asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.writer: Writer | None = None
        self.stored: dict[tuple[str, int], int] = {}
        self._crash_after = self.s.storage_sink_crash_after_db_commit
        self._inflight: asyncio.Task[None] | None = None
        self._db: _DbThread | None = None

    def _submit_db(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Start a database coroutine on the database thread (started on first use)."""
        if self._db is None:
            self._db = _DbThread()
        return self._db.submit(coro)

    async def _on_db(self, coro: Coroutine[Any, Any, T]) -> T:
        return await self._submit_db(coro)

    # database ------------------------------------------------------------------------------
    async def _connect(self) -> Writer:
        """A connected writer; capped exponential back-off until the database answers."""
        delay = self.s.storage_backoff_initial_s
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.s.database_url,
                    autocommit=True,
                    connect_timeout=5,
                    application_name="kneeload-sink",
                )
                writer = Writer(conn, self.s.storage_sink_group)
                await writer.setup()
                return writer
            except psycopg.OperationalError as exc:
                self.stats.db_errors += 1
                log.warning(
                    "sink: database unavailable (%s); retrying in %.1fs",
                    str(exc).strip()[:200],
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.s.storage_backoff_max_s)

    async def _stored_offsets(self) -> dict[tuple[str, int], int]:
        if self.writer is None:
            self.writer = await self._connect()
        while True:
            try:
                return await self.writer.stored_offsets()
            except psycopg.OperationalError:
                await self._reconnect()

    async def seek_to_stored(self, assigned: Any) -> None:
        """Start each assigned partition where the database says the sink stopped."""
        self.stored = await self._on_db(self._stored_offsets())
        assert self.consumer is not None
        catch_up = {}
        for tp in assigned:
            off = self.stored.get((tp.topic, tp.partition))
            if off is not None:
                self.consumer.seek(tp, off)
                catch_up[tp] = off
        if catch_up:  # Kafka's committed offsets may lag the database's (a crash in the window)
            try:
                await self.consumer.commit(catch_up)
            except Exception as exc:
                log.warning("sink: could not align Kafka offsets with the database's (%s)", exc)

    async def _reconnect(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                await self.writer.conn.close()
        self.writer = None
        self.writer = await self._connect()

    # one batch -----------------------------------------------------------------------------
    def prepare(self, records: dict[TopicPartition, list[Any]]) -> Prepared | None:
        """The CPU half of a batch, no I/O: decode and check every record (bad ones become dead
        letters), note the next offsets, format the COPY data. None when nothing was fetched."""
        msgs: list[Message] = []
        dead: list[dict[str, Any]] = []
        offsets: dict[tuple[str, int], int] = {}
        for tp, recs in records.items():
            logical = self.full.get(tp.topic)
            floor = self.stored.get((tp.topic, tp.partition), -1)
            for r in recs:
                offsets[(tp.topic, tp.partition)] = r.offset + 1
                if r.offset < floor or logical is None:
                    continue  # already stored (seen after a rebalance before the seek took effect)
                m = Message(logical, tp.partition, r.offset, r.key, r.value, tp.topic)
                bad = decode(m, self.s.storage_sink_validate)
                if bad is None:
                    msgs.append(m)
                else:  # (a malformed dead letter is stored, never re-published: see _publish_dead)
                    dead.append(bad)
        if not offsets:
            return None
        batches = self.writer.watch_batches if self.writer is not None else False
        return Writer.prepare(msgs, dead, offsets, batches)

    async def _write(self, batch: Prepared) -> WriteResult:
        """On the database thread: one transaction, retried on a new connection with capped
        exponential back-off while the database is unavailable."""
        delay = self.s.storage_backoff_initial_s
        while True:
            if self.writer is None:
                self.writer = await self._connect()
            try:
                return await self.writer.write_prepared(batch)
            except psycopg.OperationalError as exc:
                self.stats.db_errors += 1
                log.warning(
                    "sink: database error (%s); backing off %.1fs and retrying the batch",
                    str(exc).strip()[:200],
                    delay,
                )
                with contextlib.suppress(Exception):
                    await self.writer.conn.close()
                self.writer = None
                await asyncio.sleep(delay)  # not interruptible: the batch must land before exiting
                delay = min(delay * 2, self.s.storage_backoff_max_s)

    async def store(self, batch: Prepared) -> None:
        """The I/O half: one database transaction (on the database thread, see :meth:`_write`),
        then the dead-letter topic, then the Kafka offset commit."""
        await self._finish(batch, self._submit_db(self._write(batch)))

    async def _finish(self, batch: Prepared, written: asyncio.Future[WriteResult]) -> None:
        result = await written
        offsets = batch.offsets or {}
        for key, off in offsets.items():
            self.stored[key] = off
        self.stats.batches += 1
        self.stats.messages += len(batch.msgs)
        self.stats.rows += sum(result.rows.values())
        self.stats.dead_letters += len(result.dead_letters)
        if (
            self._crash_after
            and self.writer is not None
            and self.writer.commits >= self._crash_after
        ):
            log.error(
                "sink: KNEELOAD_STORAGE_SINK_CRASH_AFTER_DB_COMMIT reached: exiting before the "
                "offset commit"
            )
            os._exit(CRASH_EXIT_CODE)
        await self._publish_dead(result.dead_letters)
        assert self.consumer is not None
        try:
            await self.consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})
        except Exception as exc:  # a rebalance: the database offsets still hold
            log.warning("sink: Kafka offset commit failed (%s); the database offsets hold", exc)

    async def handle(self, records: dict[TopicPartition, list[Any]]) -> None:
        """One batch start to finish (prepare, then store), without overlap."""
        batch = self.prepare(records)
        if batch is not None:
            await self.store(batch)

    async def drain(self) -> None:
        """Wait for the batch being stored (before a rebalance moves partitions, and at exit)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def _publish_dead(self, dead: Sequence[dict[str, Any]]) -> None:
        if not dead or self.producer is None:
            return
        topic = topic_name(DEADLETTER, self.s)
        for d in dead:
            if d.get("topic") == topic:
                continue  # already from the dead-letter topic: stored, not re-published
            await self.producer.send(topic, contracts.dumps(d), key=b"sink")
        await self.producer.flush()

    # lifecycle -----------------------------------------------------------------------------
    async def run(self, *, idle_exit_s: float | None = None) -> SinkStats:
        self.writer = await self._on_db(self._connect())
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.s.kafka_bootstrap,
            group_id=self.s.storage_sink_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="kneeload-sink",
            max_poll_interval_ms=3_600_000,
            rebalance_timeout_ms=20_000,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.s.kafka_bootstrap,
            client_id="kneeload-sink",
            acks="all",
            linger_ms=5,
        )
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe(topics=list(self.full), listener=_Rebalance(self))
        log.info("sink: consuming %d topics as group %s", len(self.full), self.s.storage_sink_group)
        idle_since = time.monotonic()
        try:
            # Pipelined: batch N+1 is fetched, decoded and formatted while batch N is in the
            # database (one transaction at a time, in offset order; at most one in flight).
            while not self.stopping.is_set():
                records = await self.consumer.getmany(
                    timeout_ms=self.s.storage_sink_poll_ms,
                    max_records=self.s.storage_sink_max_records,
                )
                batch = self.prepare(records) if records else None
                if batch is not None:
                    await self.drain()
                    written = self._submit_db(self._write(batch))  # starts now, on its thread
                    self._inflight = asyncio.create_task(self._finish(batch, written))
                    idle_since = time.monotonic()
                elif self._inflight is not None and self._inflight.done():
                    await self.drain()  # surface its exception, if any
                elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                    break
            await self.drain()
        finally:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            with contextlib.suppress(Exception):
                await self.producer.stop()
            if self.writer is not None:
                with contextlib.suppress(Exception):
                    await self._on_db(self.writer.conn.close())
            if self._db is not None:
                self._db.stop()
                self._db = None
        return self.stats


async def run_sink(
    settings: Settings | None = None, *, idle_exit_s: float | None = None
) -> SinkStats:
    """Run the sink until SIGTERM/SIGINT (or ``idle_exit_s`` without messages)."""
    sink = Sink(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, sink.stopping.set)
    return await sink.run(idle_exit_s=idle_exit_s)
