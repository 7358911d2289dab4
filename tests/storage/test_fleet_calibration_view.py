"""kneeload_api.fleet_calibration_daily on the real database: the unit agent's statuses for
three hand-computed days, written through the sink's writer, read back per unit and day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from kneeload.core.fleet import drift_trend_pp_per_day
from kneeload.worker.fleet import UnitProcessor, new_unit
from kneeload.worker.timeutil import iso

from . import events as ev

D0 = dt.datetime(2024, 3, 4, 9, 0, tzinfo=dt.UTC)
UNIT, CLINIC = "fc-lever-1", "fc-clinic"
# per day: the support errors (measured − commanded, pp) of the running samples
ERRORS = {0: [1.0, 1.0, 1.0], 1: [2.0, 2.0, 2.0], 2: [6.0, 6.0, 0.0]}


def _telemetry(t: dt.datetime, e: float, speed: float = 2.5) -> dict[str, Any]:
    return {
        "unit_id": UNIT,
        "clinic_id": CLINIC,
        "record_id": f"fc-{t.timestamp():.0f}",
        "time": iso(int(t.timestamp() * 1000)),
        "kind": "telemetry",
        "belt_speed_mps": speed,
        "incline_pct": 1.0,
        "bws_pct": 20.0,
        "measured_support_pct": 20.0 + e,
        "athlete_id": "fc-ann",
    }


@pytest.fixture(scope="module")
def calibrated(db: str) -> str:
    import asyncio

    from .conftest import _write

    f = UnitProcessor(unit_timeout_s=600, status_interval_s=0, bws_stale_s=30)
    u = new_unit(UNIT)
    statuses: list[tuple[str, Any]] = []
    for day, errors in ERRORS.items():
        t = D0 + dt.timedelta(days=day)
        records = [_telemetry(t + dt.timedelta(seconds=10 * i), e) for i, e in enumerate(errors)]
        # the belt stopped with the athlete still on the frame: a large "error" that must
        # not count
        records.append(_telemetry(t + dt.timedelta(minutes=5), 30.0, speed=0.0))
        for r in records:
            statuses += [(topic, e) for topic, _, e in f.on_telemetry(u, r, 1000)
                         if topic == "unit.status"]  # fmt: skip
    events: Iterable[tuple[str, Any]] = [
        ("registry.assignments", ev.assignment(UNIT, CLINIC, None, D0)),
        *statuses,
    ]
    result = asyncio.run(_write(db, events))
    assert result.dead_letters == []
    return db


def test_daily_bias_mae_and_trend_while_running(
    calibrated: str, conn: Any, write: Callable[..., Any]
) -> None:
    rows = conn.execute(
        "SELECT date, samples, bias_pp::float8, mae_pp::float8, trend_pp_per_day::float8, "
        "trend_days_with_data, out_of_tolerance, clinic_id "
        "FROM kneeload_api.fleet_calibration_daily WHERE unit_id = %s ORDER BY date",
        (UNIT,),
    ).fetchall()
    d = [D0.date() + dt.timedelta(days=i) for i in range(3)]
    assert rows == [
        (d[0], 3, 1.0, 1.0, None, 1, False, CLINIC),
        (d[1], 3, 2.0, 2.0, 1.0, 2, False, CLINIC),
        # errors 6, 6, 0: bias 4, MAE 4; trend over (0, 1), (1, 2), (2, 4): 1.5 pp/day
        (d[2], 3, 4.0, 4.0, 1.5, 3, True, CLINIC),
    ]
    assert drift_trend_pp_per_day([0, 1, 2], [1.0, 2.0, 4.0]) == pytest.approx(1.5)


def test_trend_window_is_the_last_14_days_with_data(
    conn: Any, write: Callable[[Iterable[tuple[str, Any]]], Any]
) -> None:
    """20 days with a gap (days 5–7 without running samples): each day's trend is the
    least-squares slope of the days with data among it and the 13 before it, as
    kneeload.core.fleet computes it (0020's window frame, not a join over every day)."""
    unit = "fc-lever-window"
    bias = {
        d: (0.5 * d if d < 10 else 5.0 - 0.25 * (d - 10)) for d in range(20) if d not in (5, 6, 7)
    }
    write(
        [("registry.assignments", ev.assignment(unit, CLINIC, None, D0))]
        + [("unit.status", ev.unit_status(unit, CLINIC, D0 + dt.timedelta(days=d), athlete_id=None,
                                         in_use=False, bws=20.0, minutes=0.0,
                                         calibration=(100, b, abs(b))))
           for d, b in bias.items()]
    )  # fmt: skip
    rows = conn.execute(
        "SELECT date, trend_pp_per_day::float8, trend_days_with_data "
        "FROM kneeload_api.fleet_calibration_daily WHERE unit_id = %s ORDER BY date",
        (unit,),
    ).fetchall()
    assert len(rows) == len(bias)
    for day, trend, n in rows:
        k = (day - D0.date()).days
        window = [d for d in bias if k - 14 < d <= k]
        want = drift_trend_pp_per_day(window, [bias[d] for d in window])
        assert n == len(window)
        assert trend == (None if want is None else pytest.approx(round(want, 3), abs=1e-9)), k
