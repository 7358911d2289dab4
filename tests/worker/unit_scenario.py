"""A LEVER unit's scenario for the unit state's upgrade test (tests/worker/test_unit_state.py):
assignment, device record, running telemetry with a drifting load cell (calibration sums, a
drift episode and its alert), a setpoint change, a heartbeat after the belt stopped, silence
(offline episode) and being heard again, over two UTC days."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kneeload.core.fleet import FleetThresholds

from .helpers import UTC, iso

D0 = dt.datetime(2024, 6, 10, 23, 58, tzinfo=UTC)
TH = FleetThresholds(drift_bias_pp=3.0, drift_critical_pp=6.0, drift_running_s=60.0)
#: events before this index are applied by the older worker (its state is the fixture):
#: after the offline episode opened, before the unit is heard again and runs once more
CUT = 35


def _tel(t: dt.datetime, measured: float | None, speed: float = 2.5) -> dict[str, Any]:
    return {
        "unit_id": "u1", "clinic_id": "c1", "record_id": f"r-{t.timestamp():.0f}",
        "time": iso(t), "kind": "telemetry", "belt_speed_mps": speed, "incline_pct": 0.0,
        "bws_pct": 20.0, "measured_support_pct": measured, "athlete_id": "a1",
    }  # fmt: skip


def events() -> list[tuple[str, Any, int]]:
    """(kind, record, processing time ms) in order; kinds: assign, device, tel, tick."""
    s = dt.timedelta(seconds=1)
    out: list[tuple[str, Any, int]] = [
        ("assign", {"athlete_id": "a1", "clinic_id": "c1"}, 0),
        ("device", {"unit_id": "u1", "timeout_s": 120, "clinic_id": "c1"}, 0),
    ]
    now = 1_000
    for i in range(30):  # across midnight: +5 pp for 150 s, then within tolerance
        t = D0 + 10 * i * s
        out.append(("tel", _tel(t, 25.0 if i < 16 else 20.5), now))
        now += 10_000
        if i == 20:
            sp = {"unit_id": "u1", "clinic_id": "c1", "time": iso(t + 5 * s), "kind": "setpoint",
                  "bws_pct": 15.0, "athlete_id": "a1"}  # fmt: skip
            out.append(("tel", sp, now))
    hb = {"unit_id": "u1", "clinic_id": "c1", "time": iso(D0 + 3600 * s), "kind": "heartbeat"}
    out.append(("tel", hb, now + 10_000))
    out.append(("tick", None, now + 10_000 + 200_000))  # silent > 120 s: offline
    out.append(("tel", {**hb, "time": iso(D0 + 4000 * s)}, now + 400_000))  # heard again
    now += 400_000
    for i in range(12):  # a second run, drifting again (+7 pp: critical)
        now += 10_000
        out.append(("tel", _tel(D0 + (4100 + 10 * i) * s, 27.0), now))
    return out
