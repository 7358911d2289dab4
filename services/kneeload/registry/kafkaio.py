"""Kafka clients shared by the gateways and the registry (aiokafka)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer

from kneeload.settings import Settings

__all__ = ["BoundedProducer", "bootstrap_servers", "make_producer"]


def bootstrap_servers(settings: Settings) -> list[str]:
    return [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()]


class BoundedProducer(AIOKafkaProducer):
    """A producer whose every send answers within ``produce_timeout_s``.

    aiokafka waits for a broker without limit: for metadata before a send and, with
    ``acks=all`` and idempotence, for the acknowledgement. A gateway must answer instead
    (503 ``kafka_unavailable``, the device retries), so the wait for the send and the wait
    for its acknowledgement each raise :class:`TimeoutError` after ``produce_timeout_s``.
    The record itself is not withdrawn (the acknowledgement is shielded): if it reaches
    Kafka later, the device's retry is a duplicate the record ids make harmless.
    """

    def __init__(self, *, produce_timeout_s: float, **options: Any) -> None:
        super().__init__(**options)
        self.produce_timeout_s = produce_timeout_s

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        t = self.produce_timeout_s
        fut = await asyncio.wait_for(super().send(*args, **kwargs), t)
        return asyncio.ensure_future(asyncio.wait_for(asyncio.shield(fut), t))


def make_producer(
    settings: Settings, *, produce_timeout_s: float | None = None, **overrides: Any
) -> AIOKafkaProducer:
    """A durable producer: idempotent, ``acks=all`` (a send returns only once every in-sync
    replica has the record), values/keys as bytes. No compression: on loopback it costs
    CPU and saves nothing; lz4 is the choice across a network (install ``lz4``)."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "client_id": "kneeload-ingest",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": settings.ingest_linger_ms,
        "max_batch_size": 1_048_576,
        "max_request_size": 4_194_304,
        "request_timeout_ms": 30_000,
    }
    options.update(overrides)
    if produce_timeout_s is not None:
        return BoundedProducer(produce_timeout_s=produce_timeout_s, **options)
    return AIOKafkaProducer(**options)
