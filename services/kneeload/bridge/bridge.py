"""The MQTT bridge: LEVER units' MQTT topics -> Kafka, losing nothing across restarts.

Topic layout (``settings.mqtt_topic_root``, default ``lever``)::

    lever/<unit_id>/telemetry   treadmill_telemetry, kind=telemetry  -> treadmill.telemetry
    lever/<unit_id>/heartbeat   treadmill_telemetry, kind=heartbeat  -> treadmill.telemetry
    lever/<unit_id>/setpoint    bws_setpoint_change                  -> treadmill.setpoints

The payload is the same JSON a unit would POST to ``/v1/treadmill/...`` (without unit,
clinic and athlete, which come from the topic and the registry). Kafka key: the unit id.

Delivery: the bridge subscribes with QoS 1 on a persistent session (fixed client id,
``clean_session=False``), so the broker queues messages while the bridge is down. Automatic
PUBACK is switched off (paho's ``manual_ack``): a message is acknowledged to the broker
only after Kafka acknowledged the event (``acks=all``) or its dead letter, and PUBACKs are
sent in arrival order. A crash before that means the broker redelivers; the record id
makes the redelivery a duplicate that is dropped (and the sink's key dedupes again).

Login: the bridge's own account — ``KNEELOAD_MQTT_USERNAME``/``_PASSWORD`` when set, else the
local stack's stored account (``kneeload-bridge.account.json``, see
:mod:`kneeload.bridge.mqttauth`), else anonymous. It watches that file: when an account appears
or changes (``kneeload registry mqtt-auth enable``) it ends its session gracefully and logs in
again with the same client id, so its persistent session — and every message queued in it —
carries over. While connected it announces itself, retained, on
``kneeload/bridges/<client id>`` (client id, login, pid, time; cleared when it leaves), which
is how ``mqtt-auth enable`` knows it may switch the broker to accounts without losing messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from kneeload import contracts
from kneeload.bridge.mqttauth import BRIDGES_TOPIC, bridge_credentials
from kneeload.ingest.pipeline import SETPOINT, TELEMETRY, Ingestor
from kneeload.registry import RegistryView
from kneeload.registry.kafkaio import make_producer
from kneeload.settings import Settings, get_settings

__all__ = ["ANNOUNCE_S", "KINDS", "MqttBridge"]

#: Seconds between a connected bridge's retained announcements.
ANNOUNCE_S = 30

log = logging.getLogger("kneeload.bridge")

#: topic suffix -> (schema, telemetry kind)
KINDS: dict[str, tuple[str, str | None]] = {
    "telemetry": (TELEMETRY, "telemetry"),
    "heartbeat": (TELEMETRY, "heartbeat"),
    "setpoint": (SETPOINT, None),
}


class MqttBridge:
    """Forward LEVER MQTT messages to Kafka. ``await bridge.run()`` until ``stop()``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        view: RegistryView | None = None,
        producer: AIOKafkaProducer | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._own_view = view is None
        self._own_producer = producer is None
        self.view = view or RegistryView(self.settings, client_id="kneeload-bridge-registry")
        self._producer = producer
        self.ingestor: Ingestor
        self._stop = asyncio.Event()
        self.connected = asyncio.Event()
        self.forwarded = 0
        self.dead_lettered = 0
        self.username: str | None = None  # the login of the current session
        self._account_file: Path | None = None
        self._account_state: tuple[int, int] | None = None
        self._relogin = False

    def stop(self) -> None:
        self._stop.set()

    @property
    def status_topic(self) -> str:
        return f"{BRIDGES_TOPIC}/{self.settings.mqtt_bridge_client_id}"

    def _client(self) -> aiomqtt.Client:
        u = urlsplit(self.settings.mqtt_url)
        user, password, self._account_file = bridge_credentials(self.settings)
        self._account_state = _file_state(self._account_file)
        self.username = user
        client = aiomqtt.Client(
            hostname=u.hostname or "127.0.0.1",
            port=u.port or 1883,
            username=user,
            password=password,
            identifier=self.settings.mqtt_bridge_client_id,
            # gone without a goodbye: the broker clears the retained announcement
            will=aiomqtt.Will(self.status_topic, b"", qos=1, retain=True),
            clean_session=False,
            protocol=aiomqtt.ProtocolVersion.V311,
            keepalive=30,
            max_queued_incoming_messages=10_000,
        )
        # Acknowledge only after Kafka did (aiomqtt has no public switch; paho does).
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        self.producer = self._producer or make_producer(self.settings, client_id="kneeload-bridge")
        self.ingestor = Ingestor(self.settings, self.view, self.producer)
        if self._own_producer:
            await self.producer.start()
        if self._own_view:
            await self.view.start()
        try:
            backoff = 0.5
            while not self._stop.is_set():
                try:
                    await self._session()
                    backoff = 0.5
                    if self._relogin:  # a new account: log in again at once
                        self._relogin = False
                        self.connected.clear()
                        continue
                except aiomqtt.MqttError as exc:
                    log.warning("MQTT connection lost (%s); reconnecting in %.1fs", exc, backoff)
                except (TimeoutError, KafkaError) as exc:
                    log.warning(
                        "Kafka did not acknowledge (%s): reconnecting so the broker redelivers", exc
                    )
                self.connected.clear()
                if not self._stop.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), backoff)
                    backoff = min(backoff * 2, 10.0)
        finally:
            if self._own_view:
                await self.view.stop()
            if self._own_producer:
                await self.producer.stop()

    async def _session(self) -> None:
        root = self.settings.mqtt_topic_root
        pending: deque[tuple[aiomqtt.Message, asyncio.Future[Any] | None]] = deque()
        wake = asyncio.Event()
        async with self._client() as client:
            for kind in KINDS:
                await client.subscribe(f"{root}/+/{kind}", qos=1)
            await self._announce(client)
            self.connected.set()
            log.info(
                "bridge subscribed to %s/+/{%s} as client %s, login %s",
                root,
                ",".join(KINDS),
                self.settings.mqtt_bridge_client_id,
                self.username or "anonymous",
            )

            async def acker() -> None:
                while True:
                    while not pending:
                        wake.clear()
                        await wake.wait()
                    message, fut = pending[0]
                    if fut is not None:
                        await fut  # Kafka acknowledged (raises -> session ends, no PUBACK)
                    pending.popleft()
                    if message.qos > 0:
                        client._client.ack(message.mid, message.qos)

            ack_task = asyncio.create_task(acker())
            stop_task = asyncio.create_task(self._stop.wait())
            account_task = asyncio.create_task(self._account_changed(client))
            try:
                messages = aiter(client.messages)
                while True:
                    nxt = asyncio.ensure_future(anext(messages))
                    done, _ = await asyncio.wait(
                        {nxt, stop_task, ack_task, account_task},
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if account_task in done:
                        log.info("bridge account changed: logging in again (session kept)")
                        self._relogin = True
                    if ack_task in done:
                        nxt.cancel()
                        ack_task.result()  # re-raise the Kafka failure
                    if nxt not in done:
                        nxt.cancel()
                        break
                    message = nxt.result()
                    pending.append((message, await self.handle(message)))
                    wake.set()
                # graceful stop: wait until everything taken is acknowledged
                while pending and not ack_task.done():
                    await asyncio.sleep(0.01)
                if not self._relogin:  # leaving for good: take the announcement down
                    with contextlib.suppress(aiomqtt.MqttError):
                        await client.publish(self.status_topic, b"", qos=1, retain=True)
            finally:
                ack_task.cancel()
                stop_task.cancel()
                account_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ack_task

    async def _announce(self, client: aiomqtt.Client) -> None:
        status = {
            "client_id": self.settings.mqtt_bridge_client_id,
            "username": self.username,
            "pid": os.getpid(),
            "seen_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        await client.publish(self.status_topic, contracts.dumps(status), qos=1, retain=True)

    async def _account_changed(self, client: aiomqtt.Client) -> None:
        """Return when the stored account appeared or changed; meanwhile re-announce every
        ``ANNOUNCE_S`` (readers treat an announcement older than 3 of those as stale)."""
        beats = 0
        while True:
            await asyncio.sleep(1.0)
            account = self._account_file
            if account is not None and _file_state(account) != self._account_state:
                return
            beats += 1
            if beats % ANNOUNCE_S == 0:
                await self._announce(client)

    async def handle(self, message: aiomqtt.Message) -> asyncio.Future[Any] | None:
        """Validate and enqueue one MQTT message; the future resolves when Kafka acknowledged."""
        topic = message.topic.value
        parts = topic.split("/")
        payload = (
            bytes(message.payload)
            if isinstance(message.payload, bytes | bytearray)
            else str(message.payload).encode()
        )
        root_len = len(self.settings.mqtt_topic_root.split("/"))
        unit_id = parts[root_len] if len(parts) == root_len + 2 else ""
        schema_kind = KINDS.get(parts[-1])
        device = self.view.device(unit_id) if unit_id else None
        problem: tuple[str, str] | None = None
        if schema_kind is None or not unit_id:
            problem = ("unknown_topic", f"topic {topic[:200]!r} is not <root>/<unit_id>/<kind>")
        elif device is None:
            problem = ("unknown_device", f"unit {unit_id!r} is not registered")
        elif device["revoked"]:
            problem = ("device_revoked", f"unit {unit_id!r} is revoked")
        elif device["kind"] != "lever_unit":
            problem = (
                "wrong_device_kind",
                f"device {unit_id!r} is a {device['kind']}, not a lever_unit",
            )
        if problem is not None:
            self.dead_lettered += 1
            return await self.ingestor._dlq_send(
                "mqtt", problem[0], problem[1], payload, key=unit_id or topic[:256]
            )
        assert device is not None and schema_kind is not None
        try:
            record = contracts.loads(payload)
        except contracts.JSONError as exc:
            code = (
                "non_finite_number"
                if isinstance(exc, contracts.NonFiniteNumberError)
                else "invalid_json"
            )
            self.dead_lettered += 1
            return await self.ingestor._dlq_send("mqtt", code, str(exc)[:500], payload, key=unit_id)
        schema, kind = schema_kind
        result, fut = await self.ingestor.submit(
            schema, record, device=device, source="mqtt", kind=kind
        )
        if result.result == "accepted":
            self.forwarded += 1
        elif result.result == "rejected":
            self.dead_lettered += 1
        return fut


def _file_state(path: Path | None) -> tuple[int, int] | None:
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return None if st is None else (st.st_mtime_ns, st.st_size)
