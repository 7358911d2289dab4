"""Calibration drift of LEVER units (kneeload.core.fleet), on hand-computed telemetry."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kneeload.core.alerts import AlertKind, Severity, check_unit_calibration_drift
from kneeload.core.fleet import (
    DriftEpisode,
    FleetThresholds,
    SupportSample,
    advance_drift,
    calibration_summary,
    drift_trend_pp_per_day,
    is_running,
    support_bias_pp,
)

T0 = dt.datetime(2024, 6, 10, 8, 0, tzinfo=dt.UTC)
T0_MS = int(T0.timestamp() * 1000)


def test_running_means_belt_moving_with_an_athlete() -> None:
    assert is_running(2.5, "a1")
    assert is_running(0.5, "a1")  # the default threshold itself counts
    assert not is_running(0.49, "a1")
    assert not is_running(0.0, "a1")
    assert not is_running(2.5, None)  # nobody on the unit
    assert not is_running(None, "a1")
    assert is_running(0.3, "a1", min_speed_mps=0.2)


def test_bias_is_measured_minus_commanded() -> None:
    assert support_bias_pp(20.0, 23.0) == 3.0
    assert support_bias_pp(20.0, 16.5) == -3.5


def test_daily_calibration_counts_only_running_samples() -> None:
    samples = [
        SupportSample(2.5, "a1", 20.0, 23.0),  # e = +3
        SupportSample(2.5, "a1", 20.0, 25.0),  # e = +5
        SupportSample(0.0, "a1", 20.0, 40.0),  # belt stopped: the athlete stepped off
        SupportSample(2.5, None, 20.0, 0.0),  # belt running empty
        SupportSample(2.5, "a1", 20.0, None),  # no load cell reading
        SupportSample(2.5, "a1", None, 20.0),  # no commanded support
        SupportSample(2.5, "a1", 20.0, 16.0),  # e = -4
    ]
    s = calibration_summary(samples)
    assert s.samples == 3
    assert s.bias_pp == pytest.approx(4.0 / 3.0)  # (3 + 5 − 4) / 3
    assert s.mae_pp == pytest.approx(4.0)  # (3 + 5 + 4) / 3
    assert s.max_abs_error_pp == 5.0
    assert calibration_summary(samples[2:6]) == (0, None, None, None)


def test_trend_is_the_least_squares_slope_of_daily_bias() -> None:
    # points (0, 1), (1, 2), (3, 4): d̄ = 4/3, b̄ = 7/3, Sxy = Sxx = 42/9 → slope 1
    assert drift_trend_pp_per_day([0, 1, 2, 3], [1.0, 2.0, None, 4.0]) == pytest.approx(1.0)
    assert drift_trend_pp_per_day([0, 1], [2.0, 2.0]) == pytest.approx(0.0)
    assert drift_trend_pp_per_day([0, 1], [2.0, None]) is None
    assert drift_trend_pp_per_day([3, 3], [1.0, 2.0]) is None


@given(
    st.integers(2, 30),
    st.floats(-1, 1, allow_nan=False),
    st.floats(-5, 5, allow_nan=False),
)
def test_trend_recovers_a_linear_drift(n_days: int, slope: float, start: float) -> None:
    days = list(range(n_days))
    bias: list[float | None] = [start + slope * d for d in days]
    assert drift_trend_pp_per_day(days, bias) == pytest.approx(slope, abs=1e-9)


def _at(ep: DriftEpisode, s: float, sample: SupportSample, t: FleetThresholds) -> DriftEpisode:
    return advance_drift(ep, T0_MS + int(s * 1000), sample, t)


TH = FleetThresholds(drift_bias_pp=3.0, drift_critical_pp=6.0, drift_running_s=120.0)


def run(e: float) -> SupportSample:
    return SupportSample(2.5, "a1", 20.0, 20.0 + e)


def test_drift_episode_credits_running_time_only_and_alerts_once() -> None:
    ep = DriftEpisode()
    ep = _at(ep, 0, run(4.0), TH)  # starts the episode, credits nothing
    assert ep.since_ms == T0_MS and ep.above_s == 0.0
    ep = _at(ep, 30, run(4.0), TH)  # 30 s at +4
    assert ep.above_s == 30.0 and ep.bias_sum_pp_s == 120.0
    ep = _at(ep, 40, SupportSample(0.0, "a1", 20.0, 35.0), TH)  # belt stops: a pause
    assert ep.above_s == 30.0 and ep.last_ms is None and ep.since_ms == T0_MS
    ep = _at(ep, 600, run(5.0), TH)  # runs again: the idle 560 s are not credited
    assert ep.above_s == 30.0
    assert check_unit_calibration_drift("u1", "c1", T0, ep, TH) is None
    ep = _at(ep, 700, run(5.0), TH)  # a 100 s gap is capped at 60 s
    assert ep.above_s == 90.0 and ep.bias_sum_pp_s == 420.0
    ep = _at(ep, 650, run(9.0), TH)  # late sample: ignored
    assert ep.above_s == 90.0
    ep = _at(ep, 730, run(5.0), TH)  # 120 s above the threshold now
    assert ep.above_s == 120.0 and ep.mean_bias_pp == pytest.approx(570.0 / 120.0)
    a = check_unit_calibration_drift("u1", "c1", T0 + dt.timedelta(seconds=730), ep, TH)
    assert a is not None
    assert a.kind is AlertKind.UNIT_CALIBRATION_DRIFT and a.severity is Severity.WARNING
    assert a.unit_id == "u1" and a.clinic_id == "c1" and a.athlete_id is None
    assert a.values["bias_pp"] == pytest.approx(4.75)
    assert a.values["above_running_s"] == 120.0
    assert a.dedup_key == "unit_calibration_drift:unit:u1:20240610T080000Z"
    assert "4.8 pp more" in a.message
    ep = DriftEpisode(ep.since_ms, ep.above_s, ep.bias_sum_pp_s, ep.last_ms, "warning")
    assert check_unit_calibration_drift("u1", "c1", T0, ep, TH) is None  # once per episode
    ep = _at(ep, 760, run(2.0), TH)  # back within tolerance: the episode ends
    assert ep == DriftEpisode()


def test_drift_escalates_to_critical_and_negative_bias() -> None:
    ep = DriftEpisode()
    for s in range(0, 181, 30):
        ep = _at(ep, s, run(-8.0), TH)
    assert ep.above_s == 180.0 and ep.mean_bias_pp == pytest.approx(-8.0)
    ep = DriftEpisode(ep.since_ms, ep.above_s, ep.bias_sum_pp_s, ep.last_ms, "warning")
    a = check_unit_calibration_drift("u1", None, T0, ep, TH)
    assert a is not None and a.severity is Severity.CRITICAL
    assert a.dedup_key.endswith("20240610T080000Z.critical")
    assert "8.0 pp less" in a.message


def test_samples_without_measured_support_leave_the_episode_alone() -> None:
    ep = _at(DriftEpisode(), 0, run(4.0), TH)
    assert _at(ep, 10, SupportSample(2.5, "a1", 20.0, None), TH) == ep
    assert _at(ep, 10, SupportSample(2.5, None, 20.0, 20.0), TH).last_ms is None


def test_thresholds_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="drift_bias_pp"):
        FleetThresholds(drift_bias_pp=7.0, drift_critical_pp=6.0)
    with pytest.raises(ValueError, match="running_min_speed_mps"):
        FleetThresholds(running_min_speed_mps=0.0)
    with pytest.raises(ValueError, match="trend_days"):
        FleetThresholds(trend_days=1)
