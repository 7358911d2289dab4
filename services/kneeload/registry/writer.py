"""Publishing registry changes to the compacted registry topics."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from kneeload import contracts
from kneeload.registry.kafkaio import make_producer
from kneeload.registry.records import ASSIGNMENT, ATHLETE, DEVICE
from kneeload.registry.view import RegistryView
from kneeload.settings import Settings, get_settings
from kneeload.topics import REGISTRY_ASSIGNMENTS, REGISTRY_ATHLETES, REGISTRY_DEVICES, topic_name

__all__ = ["RegistryWriter"]

_BY_SCHEMA = {
    ATHLETE: (REGISTRY_ATHLETES, "athlete_id"),
    DEVICE: (REGISTRY_DEVICES, "device_id"),
    ASSIGNMENT: (REGISTRY_ASSIGNMENTS, "unit_id"),
}


class RegistryWriter:
    """Validates and publishes registry records (``acks=all``); optionally applies each
    acknowledged write to a local :class:`RegistryView` at once (read-your-writes)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        producer: AIOKafkaProducer | None = None,
        view: RegistryView | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._own = producer is None
        self._producer = producer or make_producer(self.settings, client_id="kneeload-registry")
        self.view = view

    async def start(self) -> None:
        if self._own:
            await self._producer.start()

    async def stop(self) -> None:
        if self._own:
            await self._producer.stop()

    async def __aenter__(self) -> RegistryWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def put(self, schema: str, record: dict[str, Any]) -> dict[str, Any]:
        """Publish ``record`` (an athlete_record, device_record or unit_assignment)."""
        logical, key_field = _BY_SCHEMA[schema]
        contracts.validate(schema, record)
        key = record[key_field]
        await self._producer.send_and_wait(
            topic_name(logical, self.settings), contracts.dumps(record), key=key.encode()
        )
        if self.view is not None:
            self.view.apply(logical, key, record)
        return record

    async def delete(self, schema: str, key: str) -> None:
        """Publish a tombstone: compaction removes the key."""
        logical, _ = _BY_SCHEMA[schema]
        await self._producer.send_and_wait(
            topic_name(logical, self.settings), None, key=key.encode()
        )
        if self.view is not None:
            self.view.apply(logical, key, None)
