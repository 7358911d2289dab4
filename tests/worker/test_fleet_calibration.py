"""The unit agent's calibration figures and drift alert, plain logic on hand-computed telemetry."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kneeload.core.fleet import FleetThresholds
from kneeload.worker.fleet import UnitProcessor, new_unit
from kneeload.worker.state import UnitCal

from .helpers import UTC, iso

D0 = dt.datetime(2024, 6, 10, 8, 0, tzinfo=UTC)
TH = FleetThresholds(drift_bias_pp=3.0, drift_critical_pp=6.0, drift_running_s=60.0)


def tel(
    t: dt.datetime, measured: float | None, speed: float = 2.5, athlete: str | None = "a1"
) -> dict[str, Any]:
    return {
        "unit_id": "u1",
        "clinic_id": "c1",
        "record_id": f"r-{t.timestamp():.0f}",
        "time": iso(t),
        "kind": "telemetry",
        "belt_speed_mps": speed,
        "incline_pct": 0.0,
        "bws_pct": 20.0,
        "measured_support_pct": measured,
        "athlete_id": athlete,
    }


def feed(records: list[dict[str, Any]]) -> tuple[dict[str, Any], list]:
    f = UnitProcessor(unit_timeout_s=600, status_interval_s=10**9, bws_stale_s=30, thresholds=TH)
    u = new_unit("u1")
    out: list = []
    for r in records:
        out += f.on_telemetry(u, r, 1000)
    return u, out


def test_day_figures_use_running_samples_only_and_each_day_closes() -> None:
    day1 = [tel(D0 + dt.timedelta(seconds=10 * i), 24.0) for i in range(6)]  # e = +4, 50 s
    day1 += [tel(D0 + dt.timedelta(seconds=70), 45.0, speed=0.0)]  # belt stopped
    day1 += [tel(D0 + dt.timedelta(seconds=80), 0.0, athlete=None)]  # nobody on it
    day1 += [tel(D0 + dt.timedelta(seconds=90), None)]  # no load cell reading
    d2 = D0 + dt.timedelta(days=1)
    day2 = [tel(d2 + dt.timedelta(seconds=10 * i), m) for i, m in enumerate((25.0, 25.0, 19.0))]
    u, out = feed(day1 + day2)
    status = [e for t, _, e in out if t == "unit.status"]
    closing = [s for s in status if s["date"] == "2024-06-10"][-1]
    assert closing["time"] == iso(D0 + dt.timedelta(seconds=50))  # that day's last sample
    assert closing["calibration_samples"] == 6
    assert closing["support_bias_pp"] == pytest.approx(4.0)
    assert closing["support_mae_pp"] == pytest.approx(4.0)
    assert u.cal["2024-06-11"] == UnitCal(3.0, 9.0, 11.0)  # n, Σe, Σ|e| of +5, +5, −1
    alerts = [e for t, _, e in out if t == "alerts"]
    # 50 s above 3 pp on day 1; the idle records pause the episode (day 2's first sample
    # credits nothing); 10 s more at +5 → 60 s: alert
    assert [a["kind"] for a in alerts] == ["unit_calibration_drift"]
    assert alerts[0]["event_time"] == iso(d2 + dt.timedelta(seconds=10))
    assert alerts[0]["severity"] == "warning"
    assert alerts[0]["dedup_key"] == "unit_calibration_drift:unit:u1:20240610T080000Z"
    assert alerts[0]["values"]["above_running_s"] == 60.0
    assert u.drift is not None and u.drift.since_ms is None  # −1 pp ended the episode


def test_setpoints_and_heartbeats_do_not_touch_calibration() -> None:
    sp = {
        "unit_id": "u1",
        "clinic_id": "c1",
        "record_id": "s1",
        "time": iso(D0),
        "bws_pct": 30.0,
        "previous_bws_pct": 20.0,
        "athlete_id": "a1",
    }
    u, out = feed([sp, tel(D0 + dt.timedelta(seconds=1), 20.0)])
    assert u.cal == {"2024-06-10": UnitCal(1.0, 0.0, 0.0)}
    assert not [e for t, _, e in out if t == "alerts"]
