"""The Faust app: agents over co-partitioned topics, plain keyed tables, one timer.

``athlete`` agent — one stream over ``watch.samples``, ``registry.athletes``,
``pain.reports``, the internal ``worker.bws-by-athlete`` and ``worker.tick-athletes``
(all keyed by athlete_id, same partition count, so partition *p* of each lands on the
same worker). It runs :class:`kneeload.worker.athlete.AthleteProcessor`.

``fleet`` agent — one stream over ``treadmill.telemetry``, ``treadmill.setpoints``,
``registry.assignments``, ``worker.tick-units`` and the internal
``worker.devices-by-unit`` (keyed by unit_id); runs
:class:`kneeload.worker.fleet.UnitProcessor` and re-keys treadmill entries by athlete
into ``worker.bws-by-athlete``.

``devices`` agent — ``registry.devices`` (one partition, keyed by device id): each LEVER
unit's record (its ``timeout_s``) re-keyed by unit into ``worker.devices-by-unit``
(:func:`kneeload.worker.fleet.device_to_unit`), so it reaches the worker that owns the
unit.

``team`` agent — ``worker.pairs-by-team`` (keyed by team_id): each athlete's paired
load/pain observations, published by the athlete agent; runs
:class:`kneeload.worker.team.TeamProcessor` (repeated-measures correlation per team).

State: four plain (not windowed) tables with the in-memory store and a changelog
topic each (``athletes``, ``chunks``, ``units``, ``teams``); a restarted worker replays
the changelog. Athletes', units' and teams' values are typed structs of
:mod:`kneeload.worker.state` stored as MessagePack (JSON of older workers is read and
converted); chunks are compressed MessagePack. A decoded copy is cached per key and
reused while the table still holds the very bytes object written last (identity check), so
recovery and rebalances are always honoured. Tables use the producer's partitioner
(murmur2 of the key, as every input topic), so they can be written outside one event.

Batching: the athlete agent reads ``take_events`` (up to ``TAKE_MAX_EVENTS`` or
``TAKE_WITHIN_S``), keeps changed states in memory and writes each changed athlete
once per take, after the take's outputs. Faust acks a take's events only when the
body returns and flushes the producer before committing offsets, so a committed
offset still implies the stored state and outputs of everything before it; a crash
replays at most the uncommitted takes, and replayed batches are recognised by their
stored chunk (re-emitted, not counted).

Processing-time: a timer sends one tick per *assigned* partition of the tick topics;
the agents then run the idle checks for the keys of that partition (a table can only
be written from inside a stream, so the timer cannot do it itself).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import faust
import orjson
from kafka.partitioner.default import murmur2

from kneeload.contracts import JSONError, dead_letter, is_valid, wire
from kneeload.settings import Settings
from kneeload.topics import (
    DEADLETTER,
    PAIN_REPORTS,
    REGISTRY_ASSIGNMENTS,
    REGISTRY_ATHLETES,
    REGISTRY_DEVICES,
    TREADMILL_SETPOINTS,
    TREADMILL_TELEMETRY,
    WATCH_SAMPLES,
    catalogue,
    get_topic,
)
from kneeload.topics.catalogue import (
    WORKER_PAIRS_BY_TEAM,
    WORKER_TICK_ATHLETES,
    WORKER_TICK_UNITS,
    internal_catalogue,
    internal_logical_names,
)
from kneeload.worker.athlete import AthleteProcessor, Output, WorkerConfig, new_state
from kneeload.worker.fleet import (
    BWS_BY_ATHLETE,
    DEVICES_BY_UNIT,
    UnitProcessor,
    device_to_unit,
    fleet_thresholds,
    new_unit,
)
from kneeload.worker.state import (
    decode_state,
    decode_team,
    decode_unit,
    encode_state,
    encode_team,
    encode_unit,
)
from kneeload.worker.team import TeamProcessor

log = logging.getLogger("kneeload.worker")

TICK_ATHLETES = WORKER_TICK_ATHLETES
#: events per take of the athlete stream, and the longest wait to fill one (s)
TAKE_MAX_EVENTS = 1000
TAKE_WITHIN_S = 0.05
TICK_UNITS = WORKER_TICK_UNITS
PAIRS_BY_TEAM = WORKER_PAIRS_BY_TEAM
#: logical names of the worker's internal topics (topics.catalogue.internal_catalogue)
INTERNAL_TOPICS = internal_logical_names()


def app_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}{settings.worker_app_id}"


def partition_of(key: str, partitions: int) -> int:
    """Kafka's default (murmur2) partition of a string key, as every producer computes it."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class CachedTable(MutableMapping[str, Any]):
    """A Faust table of encoded bytes seen as decoded values (cached by object identity);
    orjson unless ``encode``/``decode`` say otherwise."""

    def __init__(
        self,
        table: Any,
        encode: Callable[[Any], bytes] = orjson.dumps,
        decode: Callable[[bytes], Any] = orjson.loads,
    ) -> None:
        self.table = table
        self.encode, self.decode = encode, decode
        self.cache: dict[str, tuple[bytes, Any]] = {}

    def load(self, key: str) -> Any:
        raw = self.table.get(key.encode())
        hit = self.cache.get(key)
        if hit is not None and hit[0] is raw:  # also a value kept but not flushed yet
            return hit[1]
        if raw is None:
            self.cache.pop(key, None)
            return None
        value = self.decode(raw)
        self.cache[key] = (raw, value)
        return value

    def store(self, key: str, value: Any) -> None:
        raw = self.encode(value)
        self.table[key.encode()] = raw
        self.cache[key] = (raw, value)

    def keep(self, key: str, value: Any) -> None:
        """Hold a (new or changed) value in memory until :meth:`flush` writes it."""
        hit = self.cache.get(key)
        if hit is None or hit[1] is not value:
            self.cache[key] = (self.table.get(key.encode()), value)

    def flush(self, key: str) -> None:
        """Write the in-memory value of ``key`` to the table (and so its changelog)."""
        hit = self.cache.get(key)
        if hit is not None:
            self.store(key, hit[1])

    # MutableMapping of raw bytes (the chunk store)
    def forget(self, partitions: set[int], n: int) -> None:
        """Drop the decoded values of keys whose owner is in ``partitions`` (revoked:
        another worker may own them next; a later assignment recovers them from the
        changelog)."""
        for k in [k for k in self.cache if partition_of(owner_of(k), n) in partitions]:
            del self.cache[k]

    def delete(self, key: str) -> None:
        """Remove ``key`` (a tombstone in the changelog); absent keys are fine."""
        self.cache.pop(key, None)
        with contextlib.suppress(KeyError):
            del self.table[key.encode()]

    def __getitem__(self, key: str) -> Any:
        return self.table[key.encode()]

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.encode() in self.table

    def keys_in(self, partition: int, n: int) -> list[str]:
        """The keys of one partition (murmur2 of the key, as the inputs and changelogs)."""
        return [k for k in self if partition_of(k, n) == partition]

    def __iter__(self) -> Iterator[str]:
        return iter([k.decode() for k in list(self.table.keys())])

    def __len__(self) -> int:
        return len(self.table)


class StagedTable(MutableMapping[str, Any]):
    """Decoded values of a :class:`CachedTable` whose writes wait for :meth:`commit`.

    What a plain processor (:class:`kneeload.worker.team.TeamProcessor`) reads and
    writes during one event; the agent publishes the event's outputs first and then
    commits the state that accounts for them (as the athlete agent does per take).
    """

    _GONE: Any = object()

    def __init__(self, table: CachedTable) -> None:
        self.table = table
        self.pending: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        v = self.pending[key] if key in self.pending else self.table.load(key)
        if v is None or v is self._GONE:
            raise KeyError(key)
        return v

    def __setitem__(self, key: str, value: Any) -> None:
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        self[key]  # KeyError if absent
        self.pending[key] = self._GONE

    def __iter__(self) -> Iterator[str]:
        keys = set(self.table) | set(self.pending)
        return iter(sorted(k for k in keys if k in self))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def commit(self) -> None:
        """Write the held changes to the table (and so its changelog)."""
        for k, v in self.pending.items():
            if v is self._GONE:
                self.table.delete(k)
            else:
                self.table.store(k, v)
        self.pending.clear()


def owner_of(key: str) -> str:
    """The athlete, unit or team a table key belongs to (chunk keys are
    ``athlete|session|batch``, team entries ``team|athlete``)."""
    return key.split("|", 1)[0]


def changelog_partition(key: str, partitions: int) -> int:
    """Changelog partition of a table key: its owner's partition in every input topic."""
    return partition_of(owner_of(key), partitions)


class OwnerPartitionedTable(faust.Table):
    """A table whose changelog partition is the partition of the key's owner.

    Written outside one event's context (once per take), so Faust cannot take the
    partition from the current event; the producer's partitioner would hash the whole
    key instead (a chunk key ``a1|s|b``, or a JSON-serialised ``"a1"``) and put the
    record in another partition than the athlete's. After a rebalance the worker that
    owns the athlete would then not recover it. Keys are raw utf-8 bytes.
    """

    def partition_for_key(self, key: Any) -> int | None:
        k = key.decode() if isinstance(key, bytes) else str(key)
        return changelog_partition(k, self.partitions or 1)


def changelog_topic(settings: Settings, table: str) -> str:
    """Name of a worker table's changelog topic (Faust: ``<app id>-<table>-changelog``)."""
    return f"{app_id(settings)}-{table}-changelog"


#: the worker's tables (each with a changelog topic)
TABLES = ("athletes", "chunks", "units", "teams")
#: changelog topic configs besides Faust's ``cleanup.policy=compact``: a restarted worker reads
#: every record of its changelogs, so Kafka's log cleaner must actually compact them. It only
#: compacts closed segments (default: a segment closes at 1 GiB or after 7 days, so a running
#: worker's overwritten states, per-batch chunks and tombstones would all be re-read); an
#: hourly segment, a low dirty ratio and tombstones kept for an hour bound what a restart reads
#: to about the latest value per key plus the last hour's writes.
CHANGELOG_CONFIGS: dict[str, str] = {
    "segment.ms": "3600000",
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": "3600000",
}


def create_app(settings: Settings) -> faust.App:
    """Build the worker app from settings (no connection is made until it runs)."""
    cfg = WorkerConfig.from_settings(settings)
    n = settings.topic_partitions
    prefix = settings.topic_prefix
    app = faust.App(
        app_id(settings),
        broker=[f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",")],
        store="memory://",
        topic_partitions=n,
        topic_replication_factor=settings.topic_replication,
        table_standby_replicas=0,
        stream_wait_empty=False,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        producer_linger=0.005,
        producer_max_batch_size=1 << 20,
        producer_max_request_size=4 << 20,
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    names = {t.logical_name: t.full_name for t in catalogue(settings)}

    def raw_topic(*logical: str, partitions: int = n) -> Any:
        return app.topic(
            *(names.get(x, prefix + x) for x in logical),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )

    def table(name: str) -> Any:
        return app.tables.add(
            OwnerPartitionedTable(
                app, name=name, key_type=bytes, value_type=bytes, partitions=n,
                default=None, beacon=app.tables.beacon, use_partitioner=True,
                extra_topic_configs=CHANGELOG_CONFIGS,
            )
        )  # fmt: skip

    athletes = CachedTable(table("athletes"), encode_state, decode_state)
    chunks = CachedTable(table("chunks"))
    units = CachedTable(table("units"), encode_unit, decode_unit)
    teams = CachedTable(table("teams"), encode_team, decode_team)
    proc = AthleteProcessor(cfg, chunks)
    fleet = UnitProcessor(
        settings.worker_unit_timeout_s,
        settings.worker_unit_status_interval_s,
        cfg.bws_stale_s,
        fleet_thresholds(settings),
    )
    out_topics: dict[str, Any] = {}

    def out_topic(logical: str) -> Any:
        t = out_topics.get(logical)
        if t is None:
            t = out_topics[logical] = raw_topic(logical)
        return t

    async def publish(outputs: list[Output]) -> None:
        for logical, key, ev in outputs:
            # frames inside the platform; a dead letter stays JSON (an edge record)
            value = orjson.dumps(ev) if logical == DEADLETTER else wire.encode(ev)
            await out_topic(logical).send(key=key.encode(), value=value)

    def reject(
        topic: str, key: bytes | None, value: bytes | None, code: str, detail: str
    ) -> Output:
        ev = dead_letter(
            "worker",
            code,
            detail,
            value,
            topic=topic,
            key=key.decode("utf-8", "replace") if key else None,
        )
        return ("deadletter", "worker", ev)

    t_watch, t_reg, t_pain = names[WATCH_SAMPLES], names[REGISTRY_ATHLETES], names[PAIN_REPORTS]
    t_bws, t_tick_a, t_tick_u = prefix + BWS_BY_ATHLETE, prefix + TICK_ATHLETES, prefix + TICK_UNITS
    t_dev, t_pairs = prefix + DEVICES_BY_UNIT, prefix + PAIRS_BY_TEAM
    t_tel, t_set, t_asg = (
        names[TREADMILL_TELEMETRY],
        names[TREADMILL_SETPOINTS],
        names[REGISTRY_ASSIGNMENTS],
    )

    async def athlete_event(event: Any, now: int, dirty: set[str], outs: list[Output]) -> None:
        """One event of the athlete stream: state updated in memory, outputs collected."""
        topic = event.message.topic
        key, value = event.key, event.value
        if topic == t_tick_a:
            for aid in athletes.keys_in(event.message.partition, n):
                try:
                    st = athletes.load(aid)
                    o = proc.on_tick(st, now) if st is not None else []
                except Exception:  # one athlete must not stop the partition's timer
                    log.exception("athlete %s: idle check failed", aid)
                    continue
                if o:
                    dirty.add(aid)
                    outs += o
            return
        try:
            doc: Any = wire.decode(value) if value is not None else None
        except JSONError as exc:
            outs.append(reject(topic, key, value, "invalid_json", str(exc)))
            return
        if doc is None and topic != t_reg:
            return
        try:
            if topic == t_watch:  # validated by the gateways (the per-sample hot path)
                aid = doc["athlete_id"]
                st = athletes.load(aid) or new_state(aid, cfg)
                o = proc.on_batch(st, doc, now)
            elif topic == t_bws:
                aid = doc["athlete_id"]
                st = athletes.load(aid) or new_state(aid, cfg)
                o = proc.on_bws(st, doc, now)
            elif topic == t_pain:
                if not is_valid("pain_report", doc):
                    outs.append(reject(topic, key, value, "schema_invalid", "pain_report"))
                    return
                aid = doc["athlete_id"]
                st = athletes.load(aid) or new_state(aid, cfg)
                o = proc.on_pain(st, doc, now)
            elif topic == t_reg:
                if doc is None or key is None:
                    return
                aid = doc.get("athlete_id") or key.decode()
                st = athletes.load(aid) or new_state(aid, cfg)
                o = proc.on_registry(st, doc)
            else:
                return
        except Exception as exc:  # one bad event must not stop the partition
            log.exception("athlete agent failed on %s", topic)
            outs.append(reject(topic, key, value, "processing_failed", repr(exc)))
            return
        athletes.keep(aid, st)
        dirty.add(aid)
        outs += o

    @app.agent(
        raw_topic(WATCH_SAMPLES, REGISTRY_ATHLETES, PAIN_REPORTS, BWS_BY_ATHLETE, TICK_ATHLETES)
    )
    async def athlete(stream: Any) -> None:
        # Events in takes: each athlete's state is serialised into the changelog once per
        # take (not once per input batch). Faust acks a take's events only after this
        # body returns, and flushes the producer before it commits offsets, so a
        # committed offset always has the state (and the outputs) of everything before it.
        async for events in stream.take_events(TAKE_MAX_EVENTS, within=TAKE_WITHIN_S):
            now = int(time.time() * 1000)
            dirty: set[str] = set()
            outs: list[Output] = []
            for event in events:
                await athlete_event(event, now, dirty, outs)
            await publish(outs)  # outputs first, then the state that accounts for them
            for aid in dirty:
                athletes.flush(aid)

    @app.agent(
        raw_topic(
            TREADMILL_TELEMETRY, TREADMILL_SETPOINTS, REGISTRY_ASSIGNMENTS, TICK_UNITS,
            DEVICES_BY_UNIT,
        )
    )  # fmt: skip
    async def units_agent(stream: Any) -> None:
        async for event in stream.events():
            topic = event.message.topic
            key, value = event.key, event.value
            now = int(time.time() * 1000)
            if topic == t_tick_u:
                for uid in units.keys_in(event.message.partition, n):
                    u = units.load(uid)
                    outs = fleet.on_tick(u, now) if u is not None else []
                    if outs:
                        units.store(uid, u)
                        await publish(outs)
                continue
            try:
                doc = wire.decode(value) if value is not None else None
            except JSONError as exc:
                await publish([reject(topic, key, value, "invalid_json", str(exc))])
                continue
            if doc is None:
                continue
            try:
                uid = doc["unit_id"]
                u = units.load(uid)
                if u is None:
                    if topic == t_dev and doc.get("deleted"):
                        continue  # a deleted device that never was a unit here
                    u = new_unit(uid)
                if topic == t_asg:
                    outs = fleet.on_assignment(u, doc)
                elif topic == t_dev:
                    fleet.on_device(u, doc)
                    outs = []
                elif topic in (t_tel, t_set):
                    name = "treadmill_telemetry" if topic == t_tel else "bws_setpoint_change"
                    if not is_valid(name, doc):
                        await publish([reject(topic, key, value, "schema_invalid", name)])
                        continue
                    outs = fleet.on_telemetry(u, doc, now)
                else:
                    continue
            except Exception as exc:
                log.exception("fleet agent failed on %s", topic)
                await publish([reject(topic, key, value, "processing_failed", repr(exc))])
                continue
            units.store(uid, u)
            await publish(outs)

    devices_n = get_topic(REGISTRY_DEVICES, settings).partitions

    @app.agent(raw_topic(REGISTRY_DEVICES, partitions=devices_n))
    async def devices_agent(stream: Any) -> None:
        # registry.devices is not co-partitioned with the unit streams (one partition,
        # keyed by device id): re-key each LEVER unit's record by unit.
        async for event in stream.events():
            key, value = event.key, event.value
            try:
                doc = wire.decode(value) if value is not None else None
            except JSONError:
                log.warning("ignoring a device record that is not JSON (key %r)", key)
                continue
            if doc is not None and not is_valid("device_record", doc):
                log.warning("ignoring an invalid device record (key %r)", key)
                continue
            o = device_to_unit(key.decode("utf-8", "replace") if key else None, doc)
            if o is not None:
                await publish([o])

    team_proc = TeamProcessor({})

    @app.agent(raw_topic(PAIRS_BY_TEAM))
    async def team_agent(stream: Any) -> None:
        async for event in stream.events():
            topic, key, value = event.message.topic, event.key, event.value
            try:
                doc = wire.decode(value) if value is not None else None
            except JSONError as exc:
                await publish([reject(topic, key, value, "invalid_json", str(exc))])
                continue
            if not (
                isinstance(doc, dict)
                and isinstance(doc.get("team_id"), str)
                and isinstance(doc.get("athlete_id"), str)
                and isinstance(doc.get("series"), dict)
            ):
                await publish([reject(topic, key, value, "invalid_pairs", "team pairs")])
                continue
            staged = team_proc.store = StagedTable(teams)
            try:
                outs = team_proc.on_pairs(doc)
            except Exception as exc:
                log.exception("team agent failed")
                await publish([reject(topic, key, value, "processing_failed", repr(exc))])
                continue
            await publish(outs)  # outputs first, then the state that accounts for them
            staged.commit()

    tick_a, tick_u = raw_topic(TICK_ATHLETES), raw_topic(TICK_UNITS)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # (mode types it narrowly)
    async def on_revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", ())
        parts = {tp.partition for tp in revoked if tp.topic == t_watch}
        if parts:
            athletes.forget(parts, n)
        parts = {tp.partition for tp in revoked if tp.topic == t_tel}
        if parts:
            units.forget(parts, n)
        parts = {tp.partition for tp in revoked if tp.topic == t_pairs}
        if parts:
            teams.forget(parts, n)

    @app.timer(interval=settings.worker_tick_s)
    async def ticker() -> None:
        try:
            assigned = app.consumer.assignment()
        except Exception:  # not started yet
            return
        for tp in assigned:
            if tp.topic == t_tick_a:
                await tick_a.send(key=b"tick", value=b"{}", partition=tp.partition)
            elif tp.topic == t_tick_u:
                await tick_u.send(key=b"tick", value=b"{}", partition=tp.partition)

    from kneeload.worker import watchdog

    watchdog.install(
        app, settings, settings.worker_stall_timeout_s, settings.worker_watchdog_interval_s
    )
    app.kneeload_agents = (athlete, units_agent, devices_agent, team_agent)  # type: ignore[attr-defined]
    return app


def ensure_topics(settings: Settings) -> None:
    """The catalogue's topics and the worker's internal topics (idempotent reconcile).

    Parameters
    ----------
    settings : Settings
        Broker, prefix, partitions and replication.
    """
    from kneeload.topics import reconcile

    reconcile(settings)
    reconcile(settings, topics=internal_catalogue(settings))
