"""An in-memory view of the registry, kept current by consuming its compacted topics.

    >>> view = RegistryView(settings)
    >>> await view.start()             # replays registry.* from the beginning, then follows
    >>> view.athlete("ath-1")          # latest athlete_record, or None
    >>> view.team_of("ath-1"); view.clinic_of("u-1"); view.athlete_on("u-1")
    >>> device = view.authenticate("w-1", api_key, kinds=("watch", "app"))
    >>> await view.stop()

The gateway, the MQTT bridge, the stream worker and the notifier each hold one. It reads
the three compacted topics (``registry.athletes``, ``registry.devices``,
``registry.assignments``) without a consumer group, so every process sees every record;
the latest value per key wins and a tombstone (null value) deletes. :meth:`start` returns
once the view has caught up with the end offsets the broker reported at start (so a
gateway never serves with an empty registry); afterwards a background task follows new
records. :meth:`apply` lets a writer see its own write at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from kneeload import contracts
from kneeload.registry.kafkaio import bootstrap_servers
from kneeload.registry.keys import key_matches
from kneeload.registry.records import ASSIGNMENT, ATHLETE, DEVICE
from kneeload.settings import Settings, get_settings
from kneeload.topics import REGISTRY_ASSIGNMENTS, REGISTRY_ATHLETES, REGISTRY_DEVICES, topic_name

__all__ = ["AuthError", "RegistryUnavailableError", "RegistryView"]

log = logging.getLogger(__name__)

#: logical topic -> (schema, key field)
_TOPICS: dict[str, tuple[str, str]] = {
    REGISTRY_ATHLETES: (ATHLETE, "athlete_id"),
    REGISTRY_DEVICES: (DEVICE, "device_id"),
    REGISTRY_ASSIGNMENTS: (ASSIGNMENT, "unit_id"),
}

Listener = Callable[[str, str, "dict[str, Any] | None"], None]


class RegistryUnavailableError(RuntimeError):
    """The registry topics could not be read (broker down, topics missing)."""


class AuthError(Exception):
    """A device could not be authenticated. ``code`` is machine-readable, ``status`` the HTTP status."""  # noqa: E501

    def __init__(self, code: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class RegistryView:
    """Latest athlete, device and unit-assignment records, by id."""

    def __init__(
        self, settings: Settings | None = None, *, client_id: str = "kneeload-registry"
    ) -> None:
        self.settings = settings or get_settings()
        self._client_id = client_id
        self._tables: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in _TOPICS}
        self._names = {topic_name(t, self.settings): t for t in _TOPICS}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Listener] = []
        self._ready = asyncio.Event()
        self.invalid_records = 0

    # ------------------------------------------------------------------ lookups
    @property
    def athletes(self) -> Mapping[str, dict[str, Any]]:
        return MappingProxyType(self._tables[REGISTRY_ATHLETES])

    @property
    def devices(self) -> Mapping[str, dict[str, Any]]:
        return MappingProxyType(self._tables[REGISTRY_DEVICES])

    @property
    def assignments(self) -> Mapping[str, dict[str, Any]]:
        return MappingProxyType(self._tables[REGISTRY_ASSIGNMENTS])

    def athlete(self, athlete_id: str) -> dict[str, Any] | None:
        return self._tables[REGISTRY_ATHLETES].get(athlete_id)

    def device(self, device_id: str) -> dict[str, Any] | None:
        return self._tables[REGISTRY_DEVICES].get(device_id)

    def assignment(self, unit_id: str) -> dict[str, Any] | None:
        return self._tables[REGISTRY_ASSIGNMENTS].get(unit_id)

    def team_of(self, athlete_id: str) -> str | None:
        a = self.athlete(athlete_id)
        return a["team_id"] if a else None

    def clinic_of(self, unit_id: str) -> str | None:
        """Clinic of a LEVER unit: from its device record, else from its assignment."""
        d = self.device(unit_id)
        if d and d.get("clinic_id"):
            return str(d["clinic_id"])
        a = self.assignment(unit_id)
        return a["clinic_id"] if a else None

    def athlete_on(self, unit_id: str) -> str | None:
        a = self.assignment(unit_id)
        return a["athlete_id"] if a else None

    def authenticate(
        self, device_id: str | None, api_key: str | None, *, kinds: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """The device record if ``api_key`` is the device's current key; :class:`AuthError` if
        credentials are missing (401), the device unknown (401), the key wrong (401), the device
        revoked (403) or of a kind not allowed here (403)."""
        if not device_id or not api_key:
            raise AuthError("missing_credentials", "send X-Device-Id and X-Api-Key headers")
        d = self.device(device_id)
        if d is None:
            raise AuthError("unknown_device", f"device {device_id[:128]!r} is not registered")
        if not key_matches(api_key, d["api_key_sha256"]):
            raise AuthError("invalid_api_key", "the API key does not match the device")
        if d["revoked"]:
            raise AuthError("device_revoked", f"device {device_id!r} is revoked", 403)
        if kinds is not None and d["kind"] not in kinds:
            raise AuthError(
                "wrong_device_kind",
                f"device kind {d['kind']!r} may not use this endpoint (allowed: {', '.join(kinds)})",  # noqa: E501
                403,
            )
        return d

    # ------------------------------------------------------------------ changes
    def on_change(self, listener: Listener) -> None:
        """Call ``listener(logical_topic, key, record_or_None)`` after every applied change."""
        self._listeners.append(listener)

    def apply(self, logical_topic: str, key: str, value: dict[str, Any] | None) -> bool:
        """Apply one record (``None`` deletes). Invalid records are counted and ignored."""
        schema, key_field = _TOPICS[logical_topic]
        table = self._tables[logical_topic]
        if value is None:
            table.pop(key, None)
        else:
            if not contracts.is_valid(schema, value) or value.get(key_field) != key:
                self.invalid_records += 1
                log.warning("ignoring invalid %s record for key %r", schema, key)
                return False
            table[key] = value
        for listener in self._listeners:
            listener(logical_topic, key, value)
        return True

    # ------------------------------------------------------------------ lifecycle
    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def start(self, *, timeout_s: float = 30.0) -> None:
        """Replay the registry topics and return once caught up; keep following afterwards."""
        if self._consumer is not None:
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(self.settings),
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=250,
        )
        try:
            await asyncio.wait_for(consumer.start(), timeout_s)
            tps = await self._partitions(consumer, timeout_s)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise RegistryUnavailableError(
                f"cannot read the registry topics at {self.settings.kafka_bootstrap!r}: {exc}"
            ) from exc
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._consumer = consumer
        end = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while True:
            behind = [tp for tp in tps if await consumer.position(tp) < end[tp]]
            if not behind:
                break
            if time.monotonic() > deadline:
                await self.stop()
                raise RegistryUnavailableError(f"registry replay did not finish in {timeout_s}s")
            self._consume(await consumer.getmany(timeout_ms=500, max_records=10_000))
        self._ready.set()
        self._task = asyncio.create_task(self._follow(), name="registry-view")

    async def _partitions(
        self, consumer: AIOKafkaConsumer, timeout_s: float
    ) -> list[TopicPartition]:
        deadline = time.monotonic() + timeout_s
        while True:
            cluster = await consumer._client.fetch_all_metadata()
            parts = {n: cluster.partitions_for_topic(n) or set() for n in self._names}
            missing = [n for n, p in parts.items() if not p]
            if not missing:
                break
            if time.monotonic() > deadline:
                raise RegistryUnavailableError(
                    f"registry topics missing: {', '.join(missing)} (run `kneeload topics`)"
                )
            await asyncio.sleep(0.5)
        return [TopicPartition(n, p) for n in self._names for p in sorted(parts[n])]

    def _consume(self, batches: dict[TopicPartition, list[Any]]) -> None:
        for tp, messages in batches.items():
            logical = self._names[tp.topic]
            for msg in messages:
                key = msg.key.decode("utf-8", "replace") if msg.key is not None else None
                if key is None:
                    self.invalid_records += 1
                    continue
                try:
                    value = contracts.loads(msg.value) if msg.value is not None else None
                except contracts.JSONError:
                    self.invalid_records += 1
                    continue
                self.apply(logical, key, value)

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                self._consume(await self._consumer.getmany(timeout_ms=1000, max_records=10_000))
            except asyncio.CancelledError:
                raise
            except Exception:  # keep serving the last known registry; log and retry
                log.exception("registry view: consuming failed; retrying")
                await asyncio.sleep(1.0)

    async def caught_up(self, timeout_s: float = 10.0) -> None:
        """Wait until everything written to the registry topics so far has been applied."""
        if self._consumer is None:
            raise RegistryUnavailableError("registry view not started")
        tps = list(self._consumer.assignment())
        end = await self._consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while any([await self._consumer.position(tp) < end[tp] for tp in tps]):
            if time.monotonic() > deadline:
                raise TimeoutError("registry view did not catch up")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None
        self._ready.clear()

    async def __aenter__(self) -> RegistryView:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
