"""Kafka clients shared by the gateways and the registry (aiokafka)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from kneeload.settings import Settings

__all__ = ["bootstrap_servers", "make_producer"]


def bootstrap_servers(settings: Settings) -> list[str]:
    return [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()]


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
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
    return AIOKafkaProducer(**options)
