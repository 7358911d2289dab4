"""The worker agents' logic without Faust (kneeload.worker.app): what each agent does with a
raw record — decode, dead-letter, dispatch to the processor, keep or store the state — called
directly on plain dict tables, beside the processors run by hand."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from kneeload.contracts import wire
from kneeload.core.fleet import FleetThresholds
from kneeload.worker.app import (
    AthleteAgent,
    CachedTable,
    TeamAgent,
    UnitAgent,
    WorkerTables,
    WorkerTopics,
    device_event,
    partition_of,
    tick_targets,
)
from kneeload.worker.athlete import AthleteProcessor, Output, WorkerConfig, new_state
from kneeload.worker.fleet import UnitProcessor
from kneeload.worker.state import decode_team, decode_unit, encode_team, encode_unit
from kneeload.worker.statestore import PartedStates
from kneeload.worker.team import TeamProcessor

from .helpers import UTC, athlete_record, batches, samples

D0 = dt.datetime(2024, 6, 10, 7, 0, tzinfo=UTC)
CFG = WorkerConfig(day_grace_s=60, publish_interval_s=0)
N = 4
T = WorkerTopics(
    watch="watch.samples", registry="registry.athletes", pain="pain.reports",
    bws="worker.bws-by-athlete", tick_athletes="worker.tick-athletes",
    telemetry="treadmill.telemetry", setpoints="treadmill.setpoints",
    assignments="registry.assignments", tick_units="worker.tick-units",
    devices="worker.devices-by-unit", pairs="worker.pairs-by-team",
)  # fmt: skip


def athlete_agent() -> tuple[AthleteAgent, dict[bytes, bytes]]:
    raw: dict[bytes, bytes] = {}
    athletes = PartedStates(raw)
    return AthleteAgent(T, athletes, AthleteProcessor(CFG, {}), CFG, N), raw


def dead_letters(outs: list[Output]) -> list[str]:
    return [ev["reason_code"] for topic, _, ev in outs if topic == "deadletter"]


def test_the_athlete_agent_gives_what_the_processor_gives_and_flushes_once() -> None:
    agent, raw = athlete_agent()
    bs = batches("a1", "t1", samples(D0, 300), session_id="s1")
    dirty: set[str] = set()
    outs: list[Output] = []
    rec = athlete_record("a1", "t1")
    agent.on_event(T.registry, 0, b"a1", wire.encode(rec), 0, dirty, outs)
    for b in bs:
        agent.on_event(T.watch, 0, b"a1", wire.encode(b), 0, dirty, outs)
    assert dirty == {"a1"} and raw == {}  # kept in memory until the flush
    agent.flush(dirty)
    assert PartedStates(raw).load("a1") == agent.athletes.load("a1")

    proc, st = AthleteProcessor(CFG, {}), new_state("a1", CFG)
    want = proc.on_registry(st, wire.decode(wire.encode(rec)))
    for b in bs:
        want += proc.on_batch(st, wire.decode(wire.encode(b)), 0)
    assert outs == want and PartedStates(raw).load("a1") == st

    dirty, outs = set(), []
    partition = partition_of("a1", N)
    agent.on_event(T.tick_athletes, partition, b"tick", b"{}", 10**13, dirty, outs)
    assert outs == proc.on_tick(st, 10**13) and outs and dirty == {"a1"}


def test_the_athlete_agent_dead_letters_bad_records_and_keeps_going() -> None:
    agent, raw = athlete_agent()
    dirty: set[str] = set()
    outs: list[Output] = []
    agent.on_event(T.watch, 0, b"a1", b"{not json", 0, dirty, outs)
    agent.on_event(T.pain, 0, b"a1", wire.encode({"athlete_id": "a1"}), 0, dirty, outs)
    agent.on_event(T.watch, 0, b"a1", wire.encode({"samples": []}), 0, dirty, outs)
    agent.on_event(T.watch, 0, b"a1", None, 0, dirty, outs)  # a tombstone: nothing
    agent.on_event("other.topic", 0, b"a1", wire.encode({"athlete_id": "a1"}), 0, dirty, outs)
    assert dead_letters(outs) == ["invalid_json", "schema_invalid", "processing_failed"]
    assert dirty == set() and raw == {}


def test_the_unit_agent_stores_a_unit_only_for_a_valid_record() -> None:
    raw: dict[bytes, bytes] = {}
    th = FleetThresholds(drift_bias_pp=3.0, drift_critical_pp=6.0, drift_running_s=60.0)
    agent = UnitAgent(
        T, CachedTable(raw, encode_unit, decode_unit), UnitProcessor(120, 60, 30, th), N
    )
    gone = wire.encode({"unit_id": "u1", "deleted": True})
    assert agent.on_event(T.devices, b"u1", gone, 0) == [] and raw == {}
    bad = wire.encode({"unit_id": "u1", "kind": "telemetry"})
    assert dead_letters(agent.on_event(T.telemetry, b"u1", bad, 0)) == ["schema_invalid"]
    assert dead_letters(agent.on_event(T.telemetry, b"u1", b"[", 0)) == ["invalid_json"]
    assert raw == {}
    dev = wire.encode({"unit_id": "u1", "timeout_s": 120, "clinic_id": "c1"})
    assert agent.on_event(T.devices, b"u1", dev, 0) == [] and set(raw) == {b"u1"}
    ticks = list(agent.on_tick(partition_of("u1", N), 10**9))
    assert all(ticks) and decode_unit(raw[b"u1"]) == agent.units.load("u1")


def test_device_records_and_team_pairs() -> None:
    assert device_event(b"d1", b"{oops") is None
    assert device_event(b"d1", wire.encode({"device_id": "d1"})) is None  # invalid
    raw: dict[bytes, bytes] = {}
    agent = TeamAgent(CachedTable(raw, encode_team, decode_team), TeamProcessor({}))
    outs, staged = agent.on_event(T.pairs, b"t1", wire.encode({"team_id": "t1"}))
    assert dead_letters(outs) == ["invalid_pairs"] and staged is None
    pairs: dict[str, Any] = {"team_id": "t1", "athlete_id": "a1", "series": {}}
    outs, staged = agent.on_event(T.pairs, b"t1", wire.encode(pairs))
    assert outs == [] and staged is not None


def test_ticks_go_to_assigned_tick_partitions_and_revocation_forgets_owners() -> None:
    tp = SimpleNamespace
    assigned = [tp(topic=T.tick_athletes, partition=1), tp(topic=T.watch, partition=1),
                tp(topic=T.tick_units, partition=3)]  # fmt: skip
    assert tick_targets(assigned, T) == [(T.tick_athletes, 1), (T.tick_units, 3)]
    agent, _raw = athlete_agent()
    st = new_state("a1", CFG)
    agent.athletes.store("a1", st)
    tables = WorkerTables(agent.athletes, CachedTable({}), CachedTable({}), CachedTable({}))
    p = partition_of("a1", N)
    tables.forget_revoked([tp(topic=T.telemetry, partition=p)], T, N)
    assert "a1" in agent.athletes.cache
    tables.forget_revoked([tp(topic=T.watch, partition=p)], T, N)
    assert "a1" not in agent.athletes.cache and agent.athletes.load("a1") == st
