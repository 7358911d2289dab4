"""The athlete state's storage: typed structs as MessagePack, and the JSON of older workers.

An upgraded worker recovers the ``athletes`` changelog that an older worker wrote (orjson
JSON dicts with positional lists): it must read every athlete as it is and carry on with
exactly the results an upgraded-from-the-start worker gives (tests/worker/legacy.py).
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from kneeload.core.session import LoadSums, MinuteSums
from kneeload.worker.athlete import AthleteProcessor, new_state
from kneeload.worker.state import (
    AthleteState,
    BwsEntry,
    PainEntry,
    SpikeEntry,
    decode_state,
    encode_state,
)

from .helpers import athlete_record
from .legacy import CUT, FIXTURE, config, events, feed


def _canon(out: list[Any]) -> list[bytes]:
    return [orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in out]


def _fresh() -> tuple[AthleteProcessor, AthleteState, dict[str, bytes]]:
    chunks: dict[str, bytes] = {}
    proc = AthleteProcessor(config(), chunks)
    st = new_state("a1", config())
    proc.on_registry(st, athlete_record("a1", "t1"))
    return proc, st, chunks


def test_an_older_workers_json_state_loads_and_carries_on_unchanged() -> None:
    doc = orjson.loads(FIXTURE.read_bytes())
    evs = events()
    # the reference: today's worker from the first event on
    proc, st, _ = _fresh()
    feed(proc, st, evs[:CUT])
    want = feed(proc, st, evs[CUT:])
    # the upgrade: today's worker recovers the older worker's changelog values
    raw = orjson.dumps(doc["state"])  # what the changelog holds: JSON, starts with "{"
    old = decode_state(raw)
    assert isinstance(old, AthleteState) and len(old.sessions) == 4
    s2 = old.sessions["s2"]
    assert s2.acc is not None and isinstance(s2.acc.sums, LoadSums)
    assert s2.acc.reasons["walking"].count == 60  # the walking stretch, counted
    assert all(isinstance(m, MinuteSums) for m in s2.acc.minutes.values())
    assert isinstance(old.bws[0], BwsEntry) and isinstance(old.pain[0], PainEntry)
    assert all(isinstance(e, SpikeEntry) for e in old.spike_hist.values())
    chunks = {k: v.encode() for k, v in doc["chunks"].items()}
    proc2 = AthleteProcessor(config(), chunks)
    got = feed(proc2, old, evs[CUT:])
    assert len(got) > 50
    assert _canon(got) == _canon(want)
    assert old == st  # and the state ends where the reference's does


def test_state_round_trips_through_messagepack_and_is_smaller_than_json() -> None:
    proc, st, _ = _fresh()
    feed(proc, st, events())
    raw = encode_state(st)
    assert raw[:1] != b"{"  # never taken for the JSON of an older worker
    assert decode_state(raw) == st
    as_json = orjson.dumps(msgspec.to_builtins(st))
    assert len(raw) < len(as_json)
    # a re-encoded legacy state is the same struct
    legacy = decode_state(orjson.dumps(orjson.loads(FIXTURE.read_bytes())["state"]))
    assert decode_state(encode_state(legacy)) == legacy
