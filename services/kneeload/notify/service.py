"""``kneeload notify``: alerts topic → delivery ledger → webhook / Slack / email.

Two loops share one process:

* the **consumer** reads the alerts topic (manual offset commits), validates each
  alert against the ``alert`` contract, routes it, writes one ``pending`` ledger row
  per (alert_id, channel) and commits the database *before* committing the offsets;
* the **deliverer** works off the ledger: per channel (= recipient) it applies the
  rate limit (at most ``notify_rate_limit_count`` messages per
  ``notify_rate_limit_window_s``; a burst beyond that is folded into ONE digest),
  claims what it will send, sends, and records the outcome — ``sent``, a retry after an
  exponential backoff, or after ``notify_max_attempts`` (or a permanent 4xx / refused
  recipient) a dead-letter record on the deadletter topic (source ``notify``) and
  ``dead``.

See :mod:`kneeload.notify.ledger` for why each alert reaches each channel once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from kneeload import contracts
from kneeload.contracts import wire
from kneeload.notify import ledger
from kneeload.notify.channels import DeliveryError, Message, SmtpConfig, digest_id, send
from kneeload.notify.ledger import Delivery
from kneeload.notify.routing import Channel, Routing, load_routing
from kneeload.settings import Settings
from kneeload.topics import ALERTS, DEADLETTER, get_topic

__all__ = ["Notifier", "NotifierStats", "backoff_delay", "retry_delay"]

log = logging.getLogger("kneeload.notify")


def _held_for_digest(
    channel: Channel, alert: dict[str, Any], now: datetime
) -> tuple[str | None, datetime | None]:
    """(digest message id, send time) when ``channel``'s daily digest holds ``alert`` back;
    (None, None) to push it now. Judged when the alert is first recorded (processing time:
    a replay finds the row already there and changes nothing)."""
    d = channel.daily_digest
    if d is None or not d.holds(alert):
        return None, None
    at = d.next_send(now)
    return d.message_id(at), at


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before retry number ``attempt`` (1-based): base, 2·base, 4·base, … capped."""
    return float(min(max_s, base_s * (2 ** max(0, attempt - 1))))


def retry_delay(err: DeliveryError, attempt: int, s: Settings) -> float:
    """The backoff, or the receiver's ``Retry-After`` when that is longer (honoured up to
    ``notify_retry_after_max_s``: a receiver cannot park a channel for days)."""
    backoff = backoff_delay(attempt, s.notify_backoff_base_s, s.notify_backoff_max_s)
    if err.retry_after_s is None:
        return backoff
    return max(backoff, min(err.retry_after_s, s.notify_retry_after_max_s))


@dataclass
class NotifierStats:
    consumed: int = 0
    recorded: int = 0
    invalid: int = 0
    sent_messages: int = 0
    sent_alerts: int = 0
    digests: int = 0
    retries: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Planned:
    channel: Channel
    message_id: str
    members: list[Delivery]

    @property
    def attempt(self) -> int:  # the attempt this send is (claim incremented it)
        return max(m.attempts for m in self.members) + 1


class Notifier:
    """The notifier service; ``await Notifier(settings).run(stop)``."""

    def __init__(self, settings: Settings, routing: Routing | None = None) -> None:
        self.s = settings
        self.routing = routing if routing is not None else load_routing(settings)
        self.stats = NotifierStats()
        self.alerts_topic = get_topic(ALERTS, settings).full_name
        self.deadletter_topic = get_topic(DEADLETTER, settings).full_name
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._smtp = SmtpConfig.from_settings(settings)
        # channel -> loop time before which nothing goes to it (its Retry-After)
        self._paused_until: dict[str, float] = {}

    # ------------------------------------------------------------------ lifecycle
    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        await asyncio.to_thread(self._prepare)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.s.kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await self._producer.start()
        try:
            tasks = [
                asyncio.create_task(self._consume_loop(stop), name="notify-consume"),
                asyncio.create_task(self._deliver_loop(stop), name="notify-deliver"),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in tasks:
                if not t.done():
                    t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            for t in done:
                if t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            await self._producer.stop()

    def _prepare(self) -> None:
        from kneeload.topics import reconcile

        reconcile(self.s, topics=[get_topic(ALERTS, self.s), get_topic(DEADLETTER, self.s)])
        ledger.ensure_schema(self.s.database_url)

    async def _connect(self, stop: asyncio.Event) -> psycopg.AsyncConnection[Any]:
        delay = 0.5
        while True:
            try:
                return await psycopg.AsyncConnection.connect(self.s.database_url, autocommit=True)
            except psycopg.OperationalError as exc:
                if stop.is_set():
                    raise
                log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    # ------------------------------------------------------------------ consumer
    async def _consume_loop(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            self.alerts_topic,
            bootstrap_servers=self.s.kafka_bootstrap,
            group_id=self.s.notify_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        conn = await self._connect(stop)
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=300, max_records=500)
                if not batch:
                    continue
                while True:
                    try:
                        await self._record_batch(conn, batch)
                        break
                    except psycopg.OperationalError as exc:
                        log.warning("ledger write failed (%s); reconnecting", exc)
                        with contextlib.suppress(Exception):
                            await conn.close()
                        conn = await self._connect(stop)
                # Offsets only after the ledger commit: a crash before this line replays
                # the batch, and the ledger's primary key turns the replay into a no-op.
                await consumer.commit(
                    {tp: recs[-1].offset + 1 for tp, recs in batch.items() if recs}
                )
                self._wake.set()
        finally:
            await consumer.stop()
            await conn.close()

    async def _record_batch(
        self, conn: psycopg.AsyncConnection[Any], batch: dict[TopicPartition, list[Any]]
    ) -> None:
        rows: list[ledger.Row] = []
        dead: list[dict[str, Any]] = []
        for tp, records in batch.items():
            for rec in records:
                self.stats.consumed += 1
                key = rec.key.decode("utf-8", "replace") if rec.key else None
                try:
                    alert = wire.decode(rec.value)  # a frame, or JSON from before the upgrade
                except contracts.JSONError as exc:
                    dead.append(
                        contracts.dead_letter(
                            "notify", "invalid_json", str(exc), rec.value, topic=tp.topic, key=key
                        )
                    )
                    continue
                errs = contracts.errors("alert", alert)
                if errs:
                    dead.append(
                        contracts.dead_letter(
                            "notify",
                            "schema_invalid",
                            "alert failed its contract",
                            rec.value,
                            topic=tp.topic,
                            key=key,
                            errors=errs,
                        )
                    )
                    continue
                for ch in self.routing.channels_for(alert):
                    mid, not_before = _held_for_digest(ch, alert, datetime.now(UTC))
                    rows.append(
                        (
                            alert["alert_id"],
                            ch.name,
                            alert,
                            tp.topic,
                            tp.partition,
                            rec.offset,
                            mid,
                            not_before,
                        )
                    )
        async with conn.transaction():
            self.stats.recorded += await ledger.record(conn, rows)
        for d in dead:
            self.stats.invalid += 1
            await self._publish_dead_letter(d)

    async def _publish_dead_letter(self, record: dict[str, Any]) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(
            self.deadletter_topic, contracts.dumps(record), key=b"notify"
        )

    # ------------------------------------------------------------------ deliverer
    async def _deliver_loop(self, stop: asyncio.Event) -> None:
        conn = await self._connect(stop)
        timeout = httpx.Timeout(self.s.notify_timeout_s)
        async with httpx.AsyncClient(timeout=timeout) as http:
            try:
                while not stop.is_set():
                    try:
                        await self.deliver_due(conn, http)
                    except psycopg.OperationalError as exc:
                        log.warning("ledger unavailable (%s); reconnecting", exc)
                        with contextlib.suppress(Exception):
                            await conn.close()
                        conn = await self._connect(stop)
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.s.notify_poll_s)
            finally:
                await conn.close()

    async def deliver_due(self, conn: psycopg.AsyncConnection[Any], http: httpx.AsyncClient) -> int:
        """One pass: plan and claim what is due, send it, record outcomes. Messages sent."""
        plan: list[_Planned] = []
        now = asyncio.get_running_loop().time()
        for name in await ledger.due_channels(conn):
            if self._paused_until.get(name, 0.0) > now:
                continue  # the receiver asked us to wait (Retry-After)
            channel = self.routing.channels.get(name)
            async with conn.transaction():
                rows = await ledger.lock_due(conn, name)
                if not rows:
                    continue
                if channel is None:  # removed from the routing since the alert was recorded
                    for r in rows:
                        await self._dead(conn, name, [r], "channel no longer configured")
                    continue
                plan += await self._plan_channel(conn, channel, rows)
        if not plan:
            return 0
        # Channels in parallel; within a channel one message at a time, in order, each
        # recorded the moment its outcome is known: a crash can leave at most the one
        # message in flight per channel unrecorded (it is resent with the same key).
        by_channel: dict[str, list[_Planned]] = defaultdict(list)
        for p in plan:
            by_channel[p.channel.name].append(p)
        record_lock = asyncio.Lock()
        counts = await asyncio.gather(
            *(self._send_channel(conn, http, ps, record_lock) for ps in by_channel.values())
        )
        return sum(counts)

    async def _send_channel(
        self,
        conn: psycopg.AsyncConnection[Any],
        http: httpx.AsyncClient,
        plan: list[_Planned],
        record_lock: asyncio.Lock,
    ) -> int:
        sent = 0
        pause_s: float | None = None
        for p in plan:
            ids = [m.alert_id for m in p.members]
            if pause_s is not None:  # the receiver said wait: the rest of this pass waits too
                async with record_lock:
                    await ledger.postpone(conn, p.channel.name, ids, pause_s)
                continue
            try:
                await self._send(p, http)
                err: DeliveryError | None = None
            except DeliveryError as exc:
                err = exc
            except Exception as exc:  # a bug in rendering must not kill the loop
                log.exception("delivery to %s failed unexpectedly", p.channel.name)
                err = DeliveryError(repr(exc))
            async with record_lock:  # one connection: outcomes are written one at a time
                if err is None:
                    await ledger.mark_sent(conn, p.channel.name, p.message_id, ids)
                    sent += 1
                    self.stats.sent_messages += 1
                    self.stats.sent_alerts += len(ids)
                    self.stats.digests += int(p.message_id.startswith("digest-"))
                    continue
                self.stats.errors.append(f"{p.channel.name}/{p.message_id}: {err}")
                if err.permanent or p.attempt >= self.s.notify_max_attempts:
                    await self._dead(conn, p.channel.name, p.members, f"attempt {p.attempt}: {err}")
                else:
                    delay = retry_delay(err, p.attempt, self.s)
                    await ledger.mark_retry(conn, p.channel.name, ids, delay, str(err))
                    self.stats.retries += 1
                    if err.retry_after_s is not None:
                        pause_s = delay
                        loop_time = asyncio.get_running_loop().time()
                        self._paused_until[p.channel.name] = loop_time + delay
        return sent

    async def _plan_channel(
        self, conn: psycopg.AsyncConnection[Any], channel: Channel, rows: list[Delivery]
    ) -> list[_Planned]:
        """Decide what to send to one recipient now (inside the row-locking transaction)."""
        decided: dict[str, list[Delivery]] = defaultdict(list)
        undecided: list[Delivery] = []
        for r in rows:
            if r.message_id is None:
                undecided.append(r)
            else:
                decided[r.message_id].append(r)
        # Retries keep their message id (same idempotency key, same digest members).
        plan = [_Planned(channel, mid, members) for mid, members in decided.items()]
        if undecided:
            n_sent, frees_at = await ledger.sent_in_window(
                conn, channel.name, self.s.notify_rate_limit_window_s
            )
            quota = max(0, self.s.notify_rate_limit_count - n_sent - len(plan))
            if len(undecided) <= quota:
                plan += [_Planned(channel, r.alert_id, [r]) for r in undecided]
            elif quota >= 1:
                singles, rest = undecided[: quota - 1], undecided[quota - 1 :]
                plan += [_Planned(channel, r.alert_id, [r]) for r in singles]
                plan.append(_Planned(channel, digest_id([r.alert_id for r in rest]), rest))
            else:
                until = frees_at or datetime.now(UTC) + timedelta(
                    seconds=self.s.notify_rate_limit_window_s
                )
                await ledger.defer(conn, channel.name, [r.alert_id for r in undecided], until)
        for p in plan:
            await ledger.claim(
                conn,
                channel.name,
                p.message_id,
                [m.alert_id for m in p.members],
                self.s.notify_lease_s,
            )
        return plan

    async def _send(self, p: _Planned, http: httpx.AsyncClient) -> None:
        msg = Message(p.message_id, [m.alert for m in p.members])
        await send(p.channel, msg, http=http, smtp=self._smtp, timeout_s=self.s.notify_timeout_s)

    async def _dead(
        self,
        conn: psycopg.AsyncConnection[Any],
        channel: str,
        members: Sequence[Delivery],
        error: str,
    ) -> None:
        # Dead letter first, then the ledger: a crash between them re-publishes the same
        # record (its id is deterministic), never loses it.
        for m in members:
            await self._publish_dead_letter(
                contracts.dead_letter(
                    "notify",
                    "delivery_failed",
                    f"channel {channel}: {error}",
                    contracts.dumps(m.alert),
                    topic=self.alerts_topic,
                    key=f"{channel}:{m.alert_id}",
                )
            )
        await ledger.mark_dead(conn, channel, [m.alert_id for m in members], error)
        self.stats.dead += len(members)
