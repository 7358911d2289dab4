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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from kneeload import contracts
from kneeload.ingest.pipeline import SETPOINT, TELEMETRY, Ingestor
from kneeload.registry import RegistryView
from kneeload.registry.kafkaio import make_producer
from kneeload.settings import Settings, get_settings, reveal

__all__ = ["KINDS", "MqttBridge"]

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

    def stop(self) -> None:
        self._stop.set()

    def _client(self) -> aiomqtt.Client:
        u = urlsplit(self.settings.mqtt_url)
        client = aiomqtt.Client(
            hostname=u.hostname or "127.0.0.1",
            port=u.port or 1883,
            username=self.settings.mqtt_username,
            password=reveal(self.settings.mqtt_password),
            identifier=self.settings.mqtt_bridge_client_id,
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
            self.connected.set()
            log.info(
                "bridge subscribed to %s/+/{%s} as %s",
                root,
                ",".join(KINDS),
                self.settings.mqtt_bridge_client_id,
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
            try:
                messages = aiter(client.messages)
                while True:
                    nxt = asyncio.ensure_future(anext(messages))
                    done, _ = await asyncio.wait(
                        {nxt, stop_task, ack_task}, return_when=asyncio.FIRST_COMPLETED
                    )
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
            finally:
                ack_task.cancel()
                stop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ack_task

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
