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

Layout: each agent's logic is a plain class or function that tests can call without Faust
(:class:`AthleteAgent`, :class:`UnitAgent`, :func:`device_event`, :class:`TeamAgent`,
:meth:`WorkerTables.forget_revoked`, :func:`tick_targets`); :func:`create_app` and the
``add_*`` functions only wire them to Faust topics, tables and the timer.

Processing-time: a timer sends one tick per *assigned* partition of the tick topics;
the agents then run the idle checks for the keys of that partition (a table can only
be written from inside a stream, so the timer cannot do it itself).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeGuard

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
    AthleteState,
    UnitState,
    decode_team,
    decode_unit,
    encode_team,
    encode_unit,
)
from kneeload.worker.statestore import PartedStates
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


@dataclass(frozen=True, slots=True)
class WorkerTopics:
    """Full names of the topics the worker's agents read (catalogue names; the worker's
    internal topics carry the settings' prefix)."""

    watch: str
    registry: str
    pain: str
    bws: str
    tick_athletes: str
    telemetry: str
    setpoints: str
    assignments: str
    tick_units: str
    devices: str
    pairs: str

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerTopics:
        """The names under ``settings`` (topic prefix, catalogue)."""
        name, prefix = topic_namer(settings), settings.topic_prefix
        return cls(
            watch=name(WATCH_SAMPLES),
            registry=name(REGISTRY_ATHLETES),
            pain=name(PAIN_REPORTS),
            bws=prefix + BWS_BY_ATHLETE,
            tick_athletes=prefix + TICK_ATHLETES,
            telemetry=name(TREADMILL_TELEMETRY),
            setpoints=name(TREADMILL_SETPOINTS),
            assignments=name(REGISTRY_ASSIGNMENTS),
            tick_units=prefix + TICK_UNITS,
            devices=prefix + DEVICES_BY_UNIT,
            pairs=prefix + PAIRS_BY_TEAM,
        )


def topic_namer(settings: Settings) -> Callable[[str], str]:
    """Logical topic name → full name: the catalogue's, else the prefixed internal name."""
    names = {t.logical_name: t.full_name for t in catalogue(settings)}
    prefix = settings.topic_prefix
    return lambda logical: names.get(logical, prefix + logical)


def reject(topic: str, key: bytes | None, value: bytes | None, code: str, detail: str) -> Output:
    """The dead-letter output for an input record the worker cannot use."""
    ev = dead_letter(
        "worker",
        code,
        detail,
        value,
        topic=topic,
        key=key.decode("utf-8", "replace") if key else None,
    )
    return ("deadletter", "worker", ev)


def encode_output(logical: str, ev: dict[str, Any]) -> bytes:
    """An output's value: a frame inside the platform; a dead letter stays JSON (an edge
    record)."""
    return orjson.dumps(ev) if logical == DEADLETTER else wire.encode(ev)


class AthleteAgent:
    """What the ``athlete`` agent does with its events, without Faust: each event updates
    the athlete's state in memory (``athletes.keep``) and collects the outputs; the agent
    publishes a take's outputs and then :meth:`flush` writes each changed athlete once."""

    __slots__ = ("athletes", "cfg", "partitions", "proc", "topics")

    def __init__(
        self,
        topics: WorkerTopics,
        athletes: PartedStates,
        proc: AthleteProcessor,
        cfg: WorkerConfig,
        partitions: int,
    ) -> None:
        self.topics, self.athletes, self.proc = topics, athletes, proc
        self.cfg, self.partitions = cfg, partitions

    def on_event(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        now_ms: int,
        dirty: set[str],
        outs: list[Output],
    ) -> None:
        """One event of the athlete stream: state updated in memory, outputs collected
        into ``outs``, the athletes it changed added to ``dirty``."""
        if topic == self.topics.tick_athletes:
            self.on_tick(partition, now_ms, dirty, outs)
            return
        try:
            doc: Any = wire.decode(value) if value is not None else None
        except JSONError as exc:
            outs.append(reject(topic, key, value, "invalid_json", str(exc)))
            return
        if doc is None and topic != self.topics.registry:
            return
        try:
            if topic == self.topics.pain and not is_valid("pain_report", doc):
                outs.append(reject(topic, key, value, "schema_invalid", "pain_report"))
                return
            applied = self.apply(topic, key, doc, now_ms)
        except Exception as exc:  # one bad event must not stop the partition
            log.exception("athlete agent failed on %s", topic)
            outs.append(reject(topic, key, value, "processing_failed", repr(exc)))
            return
        if applied is not None:
            aid, st, o = applied
            self.athletes.keep(aid, st)
            dirty.add(aid)
            outs += o

    def apply(
        self, topic: str, key: bytes | None, doc: Any, now_ms: int
    ) -> tuple[str, AthleteState, list[Output]] | None:
        """Run the processor for one decoded input (a valid pain report): the athlete, its
        updated state and the outputs; None for a record that changes nothing."""
        t, proc = self.topics, self.proc
        if topic == t.watch:  # validated by the gateways (the per-sample hot path)
            aid = doc["athlete_id"]
            st = self.state_of(aid)
            return aid, st, proc.on_batch(st, doc, now_ms)
        if topic == t.bws:
            aid = doc["athlete_id"]
            st = self.state_of(aid)
            return aid, st, proc.on_bws(st, doc, now_ms)
        if topic == t.pain:
            aid = doc["athlete_id"]
            st = self.state_of(aid)
            return aid, st, proc.on_pain(st, doc, now_ms)
        if topic == t.registry and doc is not None and key is not None:
            aid = doc.get("athlete_id") or key.decode()
            st = self.state_of(aid)
            return aid, st, proc.on_registry(st, doc)
        return None

    def state_of(self, athlete_id: str) -> AthleteState:
        """The athlete's state (a new one for an athlete not seen before)."""
        return self.athletes.load(athlete_id) or new_state(athlete_id, self.cfg)

    def on_tick(self, partition: int, now_ms: int, dirty: set[str], outs: list[Output]) -> None:
        """Idle checks for every athlete of ``partition`` (a tick of the processing-time
        timer)."""
        for aid in self.athletes.keys_in(partition, self.partitions):
            try:
                st = self.athletes.load(aid)
                o = self.proc.on_tick(st, now_ms) if st is not None else []
            except Exception:  # one athlete must not stop the partition's timer
                log.exception("athlete %s: idle check failed", aid)
                continue
            if o:
                dirty.add(aid)
                outs += o

    def flush(self, dirty: set[str]) -> None:
        """Write each changed athlete's state to the table (after the take's outputs)."""
        for aid in dirty:
            self.athletes.flush(aid)


class UnitAgent:
    """What the ``fleet`` agent does with its events, without Faust: each event updates
    the unit's state and writes it to the table (``units.store``) before its outputs are
    published."""

    __slots__ = ("fleet", "partitions", "topics", "units")

    def __init__(
        self, topics: WorkerTopics, units: CachedTable, fleet: UnitProcessor, partitions: int
    ) -> None:
        self.topics, self.units, self.fleet, self.partitions = topics, units, fleet, partitions

    def on_tick(self, partition: int, now_ms: int) -> Iterator[list[Output]]:
        """Idle checks for every unit of ``partition``: each changed unit is stored, then
        its outputs are yielded (to be published before the next unit is checked)."""
        for uid in self.units.keys_in(partition, self.partitions):
            u = self.units.load(uid)
            outs = self.fleet.on_tick(u, now_ms) if u is not None else []
            if outs:
                self.units.store(uid, u)
                yield outs

    def on_event(
        self, topic: str, key: bytes | None, value: bytes | None, now_ms: int
    ) -> list[Output]:
        """One input record: the unit's state stored, the outputs (or a dead letter)
        returned."""
        try:
            doc = wire.decode(value) if value is not None else None
        except JSONError as exc:
            return [reject(topic, key, value, "invalid_json", str(exc))]
        if doc is None:
            return []
        try:
            uid = doc["unit_id"]
            u = self.units.load(uid)
            if u is None:
                if topic == self.topics.devices and doc.get("deleted"):
                    return []  # a deleted device that never was a unit here
                u = new_unit(uid)
            if topic in (self.topics.telemetry, self.topics.setpoints):
                name = (
                    "treadmill_telemetry"
                    if topic == self.topics.telemetry
                    else "bws_setpoint_change"
                )
                if not is_valid(name, doc):
                    return [reject(topic, key, value, "schema_invalid", name)]
            outs = self.apply(topic, u, doc, now_ms)
        except Exception as exc:
            log.exception("fleet agent failed on %s", topic)
            return [reject(topic, key, value, "processing_failed", repr(exc))]
        if outs is None:
            return []
        self.units.store(uid, u)
        return outs

    def apply(
        self, topic: str, u: UnitState, doc: dict[str, Any], now_ms: int
    ) -> list[Output] | None:
        """Run the processor for one decoded input (valid telemetry): the outputs, None for
        a topic the agent does not handle."""
        t = self.topics
        if topic == t.assignments:
            return self.fleet.on_assignment(u, doc)
        if topic == t.devices:
            self.fleet.on_device(u, doc)
            return []
        if topic in (t.telemetry, t.setpoints):
            return self.fleet.on_telemetry(u, doc, now_ms)
        return None


def device_event(key: bytes | None, value: bytes | None) -> Output | None:
    """The ``devices`` agent's step: a ``registry.devices`` record re-keyed by unit (None
    for a record that is not JSON, invalid, or not a LEVER unit's)."""
    try:
        doc = wire.decode(value) if value is not None else None
    except JSONError:
        log.warning("ignoring a device record that is not JSON (key %r)", key)
        return None
    if doc is not None and not is_valid("device_record", doc):
        log.warning("ignoring an invalid device record (key %r)", key)
        return None
    return device_to_unit(key.decode("utf-8", "replace") if key else None, doc)


def is_team_pairs(doc: object) -> TypeGuard[dict[str, Any]]:
    """Whether a decoded ``worker.pairs-by-team`` record has the fields the team agent
    reads."""
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("team_id"), str)
        and isinstance(doc.get("athlete_id"), str)
        and isinstance(doc.get("series"), dict)
    )


class TeamAgent:
    """What the ``team`` agent does with one record, without Faust: the outputs, and the
    staged team state to commit once they are published."""

    __slots__ = ("proc", "teams")

    def __init__(self, teams: CachedTable, proc: TeamProcessor) -> None:
        self.teams, self.proc = teams, proc

    def on_event(
        self, topic: str, key: bytes | None, value: bytes | None
    ) -> tuple[list[Output], StagedTable | None]:
        """One team-pairs record: its outputs (or a dead letter) and the state to commit
        after them (None when nothing changed)."""
        try:
            doc = wire.decode(value) if value is not None else None
        except JSONError as exc:
            return [reject(topic, key, value, "invalid_json", str(exc))], None
        if not is_team_pairs(doc):
            return [reject(topic, key, value, "invalid_pairs", "team pairs")], None
        staged = self.proc.store = StagedTable(self.teams)
        try:
            outs = self.proc.on_pairs(doc)
        except Exception as exc:
            log.exception("team agent failed")
            return [reject(topic, key, value, "processing_failed", repr(exc))], None
        return outs, staged


@dataclass(frozen=True, slots=True)
class WorkerTables:
    """The worker's four tables as decoded values (see :data:`TABLES`)."""

    athletes: PartedStates
    chunks: CachedTable
    units: CachedTable
    teams: CachedTable

    def forget_revoked(self, revoked: Iterable[Any], topics: WorkerTopics, partitions: int) -> None:
        """Drop the cached values of revoked partitions (``revoked``: Kafka topic
        partitions with ``topic`` and ``partition``); each table goes by the partitions of
        one input topic its keys are co-partitioned with."""
        revoked = list(revoked)
        for table, topic in (
            (self.athletes, topics.watch),
            (self.units, topics.telemetry),
            (self.teams, topics.pairs),
        ):
            parts = {tp.partition for tp in revoked if tp.topic == topic}
            if parts:
                table.forget(parts, partitions)


def tick_targets(assigned: Iterable[Any], topics: WorkerTopics) -> list[tuple[str, int]]:
    """The (tick topic, partition) pairs a timer tick goes to: every assigned partition of
    the two tick topics."""
    ticks = (topics.tick_athletes, topics.tick_units)
    return [(tp.topic, tp.partition) for tp in assigned if tp.topic in ticks]


class Publisher:
    """Sends outputs to their topics (raw topics made on first use)."""

    __slots__ = ("make_topic", "topics")

    def __init__(self, make_topic: Callable[[str], Any]) -> None:
        self.make_topic = make_topic
        self.topics: dict[str, Any] = {}

    def topic(self, logical: str) -> Any:
        """The Faust topic of a logical output topic."""
        t = self.topics.get(logical)
        if t is None:
            t = self.topics[logical] = self.make_topic(logical)
        return t

    async def __call__(self, outputs: list[Output]) -> None:
        for logical, key, ev in outputs:
            await self.topic(logical).send(key=key.encode(), value=encode_output(logical, ev))


def faust_app(settings: Settings) -> faust.App:
    """The Faust app object with the worker's broker, producer and consumer settings."""
    return faust.App(
        app_id(settings),
        broker=[f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",")],
        store="memory://",
        topic_partitions=settings.topic_partitions,
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


def add_tables(app: faust.App, partitions: int) -> WorkerTables:
    """The worker's tables (in-memory store, a changelog each), registered with ``app``."""

    def table(name: str) -> Any:
        return app.tables.add(
            OwnerPartitionedTable(
                app, name=name, key_type=bytes, value_type=bytes, partitions=partitions,
                default=None, beacon=app.tables.beacon, use_partitioner=True,
                extra_topic_configs=CHANGELOG_CONFIGS,
            )
        )  # fmt: skip

    return WorkerTables(
        athletes=PartedStates(table("athletes")),  # hot/cold records: worker/statestore.py
        chunks=CachedTable(table("chunks")),
        units=CachedTable(table("units"), encode_unit, decode_unit),
        teams=CachedTable(table("teams"), encode_team, decode_team),
    )


class RawTopics:
    """Makes the worker's Faust topics (raw bytes keys and values) from logical names."""

    __slots__ = ("app", "name", "partitions")

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app, self.name, self.partitions = app, topic_namer(settings), settings.topic_partitions

    def __call__(self, *logical: str, partitions: int | None = None) -> Any:
        return self.app.topic(
            *(self.name(x) for x in logical),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions or self.partitions,
        )


def add_athlete_agent(
    app: faust.App, raw_topic: RawTopics, logic: AthleteAgent, publish: Publisher
) -> Any:
    """The ``athlete`` agent: takes of events through :class:`AthleteAgent`."""

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
            for e in events:
                m = e.message
                logic.on_event(m.topic, m.partition, e.key, e.value, now, dirty, outs)
            await publish(outs)  # outputs first, then the state that accounts for them
            logic.flush(dirty)

    return athlete


def add_units_agent(
    app: faust.App, raw_topic: RawTopics, logic: UnitAgent, publish: Publisher
) -> Any:
    """The ``fleet`` agent: one event at a time through :class:`UnitAgent`."""
    tick_units = logic.topics.tick_units

    @app.agent(
        raw_topic(
            TREADMILL_TELEMETRY, TREADMILL_SETPOINTS, REGISTRY_ASSIGNMENTS, TICK_UNITS,
            DEVICES_BY_UNIT,
        )
    )  # fmt: skip
    async def units_agent(stream: Any) -> None:
        async for e in stream.events():
            now = int(time.time() * 1000)
            if e.message.topic == tick_units:
                for outs in logic.on_tick(e.message.partition, now):
                    await publish(outs)
            else:
                await publish(logic.on_event(e.message.topic, e.key, e.value, now))

    return units_agent


def add_devices_agent(
    app: faust.App, raw_topic: RawTopics, settings: Settings, publish: Publisher
) -> Any:
    """The ``devices`` agent: :func:`device_event` for each ``registry.devices`` record.

    registry.devices is not co-partitioned with the unit streams (one partition, keyed by
    device id): each LEVER unit's record is re-keyed by unit.
    """
    devices_n = get_topic(REGISTRY_DEVICES, settings).partitions

    @app.agent(raw_topic(REGISTRY_DEVICES, partitions=devices_n))
    async def devices_agent(stream: Any) -> None:
        async for e in stream.events():
            o = device_event(e.key, e.value)
            if o is not None:
                await publish([o])

    return devices_agent


def add_team_agent(
    app: faust.App, raw_topic: RawTopics, logic: TeamAgent, publish: Publisher
) -> Any:
    """The ``team`` agent: each record through :class:`TeamAgent`, its outputs published
    before the state that accounts for them is committed."""

    @app.agent(raw_topic(PAIRS_BY_TEAM))
    async def team_agent(stream: Any) -> None:
        async for e in stream.events():
            outs, staged = logic.on_event(e.message.topic, e.key, e.value)
            await publish(outs)
            if staged is not None:
                staged.commit()

    return team_agent


def add_revocation(app: faust.App, tables: WorkerTables, topics: WorkerTopics, n: int) -> None:
    """On a rebalance, drop the cached values of the revoked partitions
    (:meth:`WorkerTables.forget_revoked`)."""

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # (mode types it narrowly)
    async def on_revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        tables.forget_revoked(args[0] if args else kwargs.get("revoked", ()), topics, n)


def add_ticker(
    app: faust.App, raw_topic: RawTopics, topics: WorkerTopics, interval_s: float
) -> None:
    """The processing-time timer: a tick to every assigned partition of the tick topics
    (:func:`tick_targets`)."""
    tick_topics = {
        topics.tick_athletes: raw_topic(TICK_ATHLETES),
        topics.tick_units: raw_topic(TICK_UNITS),
    }

    @app.timer(interval=interval_s)
    async def ticker() -> None:
        try:
            assigned = app.consumer.assignment()
        except Exception:  # not started yet
            return
        for topic, partition in tick_targets(assigned, topics):
            await tick_topics[topic].send(key=b"tick", value=b"{}", partition=partition)


def create_app(settings: Settings) -> faust.App:
    """Build the worker app from settings (no connection is made until it runs): the
    Faust wiring of :class:`AthleteAgent`, :class:`UnitAgent`, :func:`device_event`,
    :class:`TeamAgent`, the revocation hook and the tick timer."""
    from kneeload.worker import watchdog

    cfg = WorkerConfig.from_settings(settings)
    n = settings.topic_partitions
    app = faust_app(settings)
    topics = WorkerTopics.from_settings(settings)
    raw_topic = RawTopics(app, settings)
    tables = add_tables(app, n)
    publish = Publisher(raw_topic)
    fleet = UnitProcessor(
        settings.worker_unit_timeout_s,
        settings.worker_unit_status_interval_s,
        cfg.bws_stale_s,
        fleet_thresholds(settings),
    )
    athlete_logic = AthleteAgent(
        topics, tables.athletes, AthleteProcessor(cfg, tables.chunks), cfg, n
    )
    app.kneeload_agents = (  # type: ignore[attr-defined]
        add_athlete_agent(app, raw_topic, athlete_logic, publish),
        add_units_agent(app, raw_topic, UnitAgent(topics, tables.units, fleet, n), publish),
        add_devices_agent(app, raw_topic, settings, publish),
        add_team_agent(app, raw_topic, TeamAgent(tables.teams, TeamProcessor({})), publish),
    )
    add_revocation(app, tables, topics, n)
    add_ticker(app, raw_topic, topics, settings.worker_tick_s)
    watchdog.install(
        app, settings, settings.worker_stall_timeout_s, settings.worker_watchdog_interval_s
    )
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
