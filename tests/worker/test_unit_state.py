"""The LEVER unit's state is typed (kneeload.worker.state.UnitState, MessagePack in the
``units`` table); a worker upgraded over an older worker's changelog reads its JSON dicts
(tests/worker/data/legacy_unit_state.json: the state the worker of 74dc397 kept after the
first CUT events of tests/worker/unit_scenario.py) and carries on with the same outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import orjson

from kneeload.worker.fleet import UnitProcessor, new_unit
from kneeload.worker.state import (
    UnitCal,
    UnitCalLast,
    UnitDrift,
    UnitFwd,
    UnitState,
    decode_unit,
    encode_unit,
)

from .unit_scenario import CUT, TH, events

FIXTURE = Path(__file__).parent / "data" / "legacy_unit_state.json"


def _proc() -> UnitProcessor:
    return UnitProcessor(unit_timeout_s=600, status_interval_s=30, bws_stale_s=30, thresholds=TH)


def _feed(f: UnitProcessor, u: UnitState, evs: list[tuple[str, Any, int]]) -> list[Any]:
    out: list[Any] = []
    for kind, rec, now in evs:
        if kind == "assign":
            out += f.on_assignment(u, rec)
        elif kind == "device":
            f.on_device(u, rec)
        elif kind == "tel":
            out += f.on_telemetry(u, rec, now)
        else:
            out += f.on_tick(u, now)
    return out


def _canon(out: list[Any]) -> list[bytes]:
    return [orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in out]


def test_an_older_workers_unit_dict_loads_and_carries_on_unchanged() -> None:
    evs = events()
    ref = new_unit("u1")
    f = _proc()
    _feed(f, ref, evs[:CUT])
    want = _feed(f, ref, evs[CUT:])
    old = decode_unit(FIXTURE.read_bytes())  # what the changelog holds: JSON, starts with "{"
    assert isinstance(old, UnitState)
    assert old.cal["2024-06-10"] == UnitCal(12.0, 60.0, 60.0)  # n, Σe, Σ|e|: 12 × +5 pp
    assert isinstance(old.last_fwd, UnitFwd) and isinstance(old.cal_last, UnitCalLast)
    assert old.drift == UnitDrift(None, 0.0, 0.0, None, "")  # the first episode ended
    assert old.episodes["unit_offline:unit:u1"]["severity"] == "warning"
    got = _feed(_proc(), old, evs[CUT:])
    kinds = [o[2]["kind"] for o in got if o[0] == "alerts"]
    assert kinds == ["unit_offline", "unit_calibration_drift"], kinds  # resolved, then raised
    assert _canon(got) == _canon(want)
    assert old == ref  # and the state ends where the reference's does


def test_unit_state_round_trips_and_is_smaller_than_json() -> None:
    u = new_unit("u1")
    _feed(_proc(), u, events())
    raw = encode_unit(u)
    assert raw[:1] != b"{" and decode_unit(raw) == u
    assert len(raw) < len(orjson.dumps(msgspec.to_builtins(u)))
    # the older worker's JSON, re-encoded, is the same struct
    old = decode_unit(FIXTURE.read_bytes())
    assert decode_unit(encode_unit(old)) == old
