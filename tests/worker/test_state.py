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
    Chunk,
    PainEntry,
    SampleRow,
    SpikeEntry,
    TeamDirectory,
    TeamEntry,
    TeamPair,
    TeamSeries,
    decode_chunk,
    decode_state,
    decode_team,
    encode_chunk,
    encode_state,
    encode_team,
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


def test_chunks_of_an_older_worker_decode_to_rows() -> None:
    doc = orjson.loads(FIXTURE.read_bytes())
    for key, text in doc["chunks"].items():
        old = orjson.loads(text)
        c = decode_chunk(text.encode())
        assert c.batch_id == old["b"] and key.endswith(f"|{c.batch_id}")
        assert [r.record_id for r in c.rows] == [r[1] for r in old["rows"]]
        assert decode_chunk(encode_chunk(c)) == c
    # rows from before the vertical load and contact source were kept (8 values), late 0/1
    short = b'{"b":"b1","rows":[[1718002800000,"r1","2024-06-10T07:00:00Z",3.2,170.0,240,0.0,1]]}'
    (r,) = decode_chunk(short).rows
    assert r == SampleRow(1718002800000, "r1", "2024-06-10T07:00:00Z", 3.2, 170.0, 240.0, 0.0, True)
    assert isinstance(decode_chunk(encode_chunk(Chunk("b", [r]))).rows[0], SampleRow)


def test_a_registry_record_of_the_wrong_types_leaves_a_state_that_still_decodes() -> None:
    """The state is typed: a value of another type must never reach it, or the athlete's
    changelog value could not be read back after a restart."""
    proc, st, _ = _fresh()
    bad = {**athlete_record("a1", "t1"), "body_mass_kg": "70", "time_zone": 5, "team_id": 7}
    proc.on_registry(st, {**bad, "calibration": "x"})
    assert (st.body_mass_kg, st.tz, st.team_id, st.calibration) == (None, "UTC", None, None)
    assert decode_state(encode_state(st)) == st


def test_chunks_are_compressed_and_plain_messagepack_still_reads() -> None:
    rows = [
        SampleRow(1718002800000 + 1000 * i, f"r{i}", "2024-06-10T07:00:00Z", 3.2, 170.0, 240.0, 0.0)
        for i in range(100)
    ]
    c = Chunk("b1", rows)
    raw = encode_chunk(c)
    plain = msgspec.msgpack.encode(c)
    assert raw[:1] == b"\x78" and len(raw) < len(plain) / 2
    assert decode_chunk(raw) == c == decode_chunk(plain)


def test_team_values_of_an_older_worker_decode_and_round_trip() -> None:
    entry = b'{"series":{"pfj_load_mpa_s:1":{"t":1718002800000,"pairs":[["2024-06-10",812,3.0]]}}}'
    directory = b'{"athletes":["a1","a2"],"t":{"pfj_load_mpa_s:1":1718002800000}}'
    e, d = decode_team(entry), decode_team(directory)
    assert e == TeamEntry(
        {"pfj_load_mpa_s:1": TeamSeries(1718002800000, [TeamPair("2024-06-10", 812.0, 3.0)])}
    )
    assert d == TeamDirectory(["a1", "a2"], {"pfj_load_mpa_s:1": 1718002800000})
    assert decode_team(encode_team(e)) == e and decode_team(encode_team(d)) == d
