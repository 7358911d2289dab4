"""Pain presets, baseline, classification and BWS suggestions."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kneeload.core.pain import (
    LEVER,
    SILBERNAGEL,
    BwsAction,
    BwsStepConfig,
    LoadAction,
    PainContext,
    PainPreset,
    PainReport,
    PainValueError,
    SessionClass,
    baseline_nrs,
    classify_session,
    is_next_day_report,
    next_day_expected,
    preset_by_code,
    session_pain,
    suggest_bws,
    suggest_load,
    weekly_pain_trend,
)

T0 = dt.datetime(2024, 3, 1, 18, 0, tzinfo=dt.UTC)


def rep(nrs: float, ctx: str, hours: float) -> PainReport:
    return PainReport("ath1", nrs, PainContext(ctx), T0 + dt.timedelta(hours=hours))


def test_lever_acceptable_caution_stop() -> None:
    assert classify_session(3, 1, 1).status is SessionClass.ACCEPTABLE
    assert classify_session(4, 1, 1).status is SessionClass.ACCEPTABLE  # ≤ 4 allowed
    c = classify_session(5, 1, 1)
    assert c.status is SessionClass.CAUTION and "5/10 > 4" in c.reason and c.reduce_load
    c = classify_session(3, 3, 1)
    assert c.status is SessionClass.CAUTION and "not back to baseline next day" in c.reason
    assert not c.reduce_load
    assert classify_session(3, 2, 1).status is SessionClass.ACCEPTABLE  # 2/10: safe zone
    assert classify_session(7, 1, 1).status is SessionClass.STOP
    assert classify_session(5, 3, 1).status is SessionClass.STOP  # two cautions at once
    assert classify_session(2, 5, 1).status is SessionClass.STOP  # 5 ≥ safe zone 2 + 3
    c = classify_session(2, 1, 1, weekly_change_nrs=1.5)
    assert c.status is SessionClass.CAUTION and "weekly pain up" in c.reason


def test_silbernagel_allows_5() -> None:
    assert classify_session(5, 1, 1, preset=SILBERNAGEL).status is SessionClass.ACCEPTABLE
    assert classify_session(5, 1, 1, preset=LEVER).status is SessionClass.CAUTION
    assert classify_session(6, 1, 1, preset=SILBERNAGEL).status is SessionClass.CAUTION


def test_reason_readable_and_pending() -> None:
    c = classify_session(3, None, None)
    assert c.pending and c.baseline_assumed and c.next_day_pending
    assert c.reason.startswith("ACCEPTABLE:") and "next-day report pending" in c.reason
    assert "baseline taken as 0/10" in c.reason
    assert "LEVER preset: LEVER product guidance" in c.reason  # preset and source named


def test_out_of_range_names_field() -> None:
    with pytest.raises(PainValueError, match="during_nrs"):
        classify_session(11, 0, 0)
    with pytest.raises(PainValueError, match="pain_nrs"):
        rep(-1, "rest", 0)


def test_baseline_from_rest_reports() -> None:
    reports = [rep(x, "rest", -24 * i) for i, x in enumerate([1, 2, 1, 8])] + [rep(9, "during", 1)]
    assert baseline_nrs(reports) == 1.5
    assert baseline_nrs([rep(3, "during", 0)]) is None


def test_session_pain_and_weekly_trend() -> None:
    reports = [
        rep(3, "during", 0.5),
        rep(5, "during", 0.8),
        rep(4, "after", 1.5),
        rep(2, "next_morning", 14),
        rep(1, "rest", 30),
    ]
    sp = session_pain(reports, T0, T0 + dt.timedelta(hours=1))
    assert sp.during_max_nrs == 5 and sp.after_max_nrs == 4 and sp.next_day_nrs == 2
    assert sp.next_day_hours == pytest.approx(13.0)
    assert sp.next_day_context is PainContext.NEXT_MORNING
    week = [rep(2, "during", -24 * 10), rep(4, "during", -24 * 2), rep(5, "next_morning", -24)]
    this, last, delta = weekly_pain_trend(week, T0.date())
    assert (this, last, delta) == (4.5, 2.0, 2.5)


def test_bws_suggestions() -> None:
    ok = classify_session(2, 0, 0)
    s = suggest_bws(20, ok)
    assert s.action is BwsAction.STEP_DOWN and s.suggested_bws_pct == 15
    assert s.addressed_to == "clinician" and s.auto_apply is False
    assert "20% → 15%" in s.reason
    # pain during the run above the preset's limit: the suggestion reduces load, never holds
    assert suggest_bws(20, classify_session(5, 0, 0)).action is BwsAction.STEP_UP
    assert suggest_bws(20, classify_session(2, 4, 1)).action is BwsAction.HOLD  # not settled
    up = suggest_bws(20, classify_session(8, 0, 0))
    assert up.action is BwsAction.STEP_UP and up.suggested_bws_pct == 25
    assert suggest_bws(2, ok).suggested_bws_pct == 0  # never below 0
    assert suggest_bws(0, ok).action is BwsAction.HOLD
    top = suggest_bws(78, classify_session(8, 0, 0), BwsStepConfig(unit_max_pct=80))
    assert top.suggested_bws_pct == 80
    assert suggest_bws(80, classify_session(8, 0, 0)).action is BwsAction.HOLD
    need2 = BwsStepConfig(acceptable_sessions_to_progress=2)
    assert suggest_bws(20, ok, need2, consecutive_acceptable=1).action is BwsAction.HOLD
    assert suggest_bws(20, ok, need2, consecutive_acceptable=2).action is BwsAction.STEP_DOWN
    with pytest.raises(PainValueError, match="current_bws_pct"):
        suggest_bws(95, ok)


@given(
    bws=st.floats(0, 60),
    step=st.floats(0.5, 20),
    during=st.floats(0, 10),
    settle=st.floats(0, 10),
)
def test_bws_suggestion_always_within_unit_bounds(
    bws: float, step: float, during: float, settle: float
) -> None:
    cfg = BwsStepConfig(step_pct=step, unit_max_pct=60)
    s = suggest_bws(bws, classify_session(during, settle, 1), cfg)
    assert 0 <= s.suggested_bws_pct <= 60
    assert abs(s.suggested_bws_pct - bws) <= step + 1e-9


def test_reason_codes_are_snake_case_and_name_the_deciding_finding() -> None:
    import re

    cases = {
        (2.0, 0.0, 0.0, None): "within_safe_zone",
        (4.0, 0.0, 0.0, None): "within_limits",
        (None, 0.0, 0.0, None): "within_limits_pending",
        (5.0, 0.0, 0.0, None): "pain_during_above_limit",
        (8.0, 0.0, 0.0, None): "pain_during_above_stop_limit",
        (2.0, 3.0, 1.0, None): "not_back_to_baseline",
        (2.0, 6.0, 0.0, None): "pain_above_baseline_next_day",
        (2.0, 0.0, 0.0, 1.5): "weekly_pain_worsening",
        (5.0, 3.0, 1.0, None): "multiple_cautions",
    }
    for (during, settle, base, weekly), code in cases.items():
        c = classify_session(during, settle, base, weekly)
        assert c.reason_code == code, (during, settle, base, weekly, c.reason)
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,63}", c.reason_code)


# --------------------------------------------------------------- the model as clinicians use it


def test_safe_zone_without_baseline_is_acceptable_and_progresses() -> None:
    """1–2/10 during and 1–2/10 next morning with no rest reports: safe, not "caution/hold"."""
    for during, nxt in ((1, 1), (2, 2), (1, 2), (2, 0)):
        c = classify_session(during, nxt, None)
        assert c.status is SessionClass.ACCEPTABLE, c.reason
        assert c.reason_code == "within_safe_zone" and c.in_safe_zone
        assert suggest_bws(20, c).action is BwsAction.STEP_DOWN
        assert suggest_load(c).action is LoadAction.PROGRESS
    # 3/10 next morning without a baseline is above the safe zone: not back to baseline (0);
    # "far above" is measured from the top of the safe zone: 5/10 = 2 + 3 stops
    assert classify_session(1, 3, None).reason_code == "not_back_to_baseline"
    assert classify_session(1, 4, 0).reason_code == "not_back_to_baseline"
    assert classify_session(1, 5, None).reason_code == "pain_above_baseline_next_day"
    assert classify_session(1, 6, 3).reason_code == "pain_above_baseline_next_day"
    assert classify_session(1, 5, 3).reason_code == "not_back_to_baseline"
    # the safe zone is per preset
    strict = dataclasses.replace(LEVER, safe_max_nrs=1.0)
    assert classify_session(1, 2, None, preset=strict).status is SessionClass.CAUTION


@pytest.mark.parametrize(
    ("preset", "during", "status"),
    [(LEVER, 5, SessionClass.CAUTION), (LEVER, 6, SessionClass.CAUTION),
     (LEVER, 7, SessionClass.STOP), (SILBERNAGEL, 6, SessionClass.CAUTION)],
)  # fmt: skip
def test_above_the_during_limit_always_reduces_load(
    preset: PainPreset, during: int, status: SessionClass
) -> None:
    """LEVER: > 4/10 means reduce — 6/10 used to give "hold"; on and off a unit, with or
    without the next-day report, the suggestion now reduces load."""
    for nxt in (None, 0, 1):
        c = classify_session(during, nxt, 0, preset=preset)
        assert c.status is status and c.reduce_load, c.reason
        assert suggest_load(c).action is LoadAction.REDUCE
        s = suggest_bws(20, c)
        assert s.action is BwsAction.STEP_UP and s.suggested_bws_pct == 25


def test_after_report_never_stands_in_for_the_next_day_value() -> None:
    """An "after" report of 5/10 one hour after a run, then 1/10 next morning: no STOP."""
    end = T0 + dt.timedelta(hours=1)
    during = rep(3, "during", 0.5)
    after = rep(5, "after", 2.0)  # one hour after the session end
    morning = rep(1, "next_morning", 14.5)
    sp = session_pain([during, after], T0, end)
    assert sp.after_max_nrs == 5 and sp.next_day_nrs is None  # pending, not 5
    c = classify_session(sp.during_max_nrs, sp.next_day_nrs, None)
    assert c.status is SessionClass.ACCEPTABLE and c.next_day_pending
    assert suggest_load(c).action is LoadAction.HOLD
    sp = session_pain([during, after, morning], T0, end)
    assert sp.next_day_nrs == 1 and sp.next_day_hours == pytest.approx(13.5)
    c = classify_session(sp.during_max_nrs, sp.next_day_nrs, None)
    assert c.status is SessionClass.ACCEPTABLE and not c.pending


def test_morning_run_next_morning_report_at_24_5_h_is_found() -> None:
    """A 07:00–08:00 run; the next-morning report at 08:30 the next day (+24.5 h): inside
    the 36 h window (the old fixed 24 h left it pending for ever)."""
    start = dt.datetime(2024, 3, 4, 7, 0, tzinfo=dt.UTC)
    end = start + dt.timedelta(hours=1)
    morning = PainReport("ath1", 3, PainContext.NEXT_MORNING, end + dt.timedelta(hours=24.5))
    sp = session_pain([morning], start, end)
    assert sp.next_day_nrs == 3 and sp.next_day_hours == pytest.approx(24.5)
    # a report after the window is not the next-day value
    late = PainReport("ath1", 3, PainContext.NEXT_MORNING, end + dt.timedelta(hours=36.5))
    assert session_pain([late], start, end).next_day_nrs is None
    # the window is configurable
    short = dataclasses.replace(LEVER, next_day_window_h=24.0)
    assert session_pain([morning], start, end, short).next_day_nrs is None


def test_next_day_is_the_first_next_morning_or_late_rest_report() -> None:
    end = T0 + dt.timedelta(hours=1)
    reports = [
        rep(4, "after", 1.5),  # after: never
        rep(3, "rest", 2.0),  # rest 1 h after the run: too early (< 8 h)
        rep(2, "next_morning", 14.0),  # the first next-day report
        rep(6, "next_morning", 20.0),  # later: not the value
    ]
    sp = session_pain(reports, T0, end)
    assert (sp.next_day_nrs, sp.next_day_hours) == (2, pytest.approx(13.0))
    rest = [rep(1, "rest", 13.0), rep(5, "next_morning", 14.0)]
    sp = session_pain(rest, T0, end)
    assert sp.next_day_nrs == 1 and sp.next_day_context is PainContext.REST
    assert not is_next_day_report("after", 12.0)
    assert not is_next_day_report("during", 12.0)
    assert is_next_day_report("next_morning", 0.5)
    assert not is_next_day_report("rest", 7.9) and is_next_day_report("rest", 8.0)


def test_pending_next_day_value_says_when_it_is_expected() -> None:
    end = dt.datetime(2024, 3, 4, 17, 30, tzinfo=dt.UTC)  # 18:30 in Berlin (CET)
    at, due = next_day_expected(end, "Europe/Berlin")
    assert at == dt.datetime(2024, 3, 5, 7, 0, tzinfo=dt.UTC)  # 08:00 Berlin next day
    assert due == end + dt.timedelta(hours=36)
    at, _ = next_day_expected(end, "UTC", dataclasses.replace(LEVER, next_morning_hour=6))
    assert at == dt.datetime(2024, 3, 5, 6, 0, tzinfo=dt.UTC)


def test_every_verdict_names_preset_and_source() -> None:
    for preset in (LEVER, SILBERNAGEL):
        for args in ((1, 1, 0), (5, None, 0), (8, 1, 0), (2, 6, 0)):
            c = classify_session(*args, preset=preset)
            assert c.preset == preset.name and c.preset_code == preset.code
            assert c.preset_source == preset.source and preset.source in c.reason
    assert LEVER.code == "lever" and SILBERNAGEL.code == "silbernagel"
    assert "unconfirmed" in LEVER.source and "Silbernagel" in LEVER.safe_source
    assert preset_by_code("Silbernagel") is SILBERNAGEL and preset_by_code("lever") is LEVER
    with pytest.raises(PainValueError, match="during_max_nrs"):
        dataclasses.replace(LEVER, safe_max_nrs=5.0)


def test_weekly_rise_inside_the_safe_zone_is_not_a_finding() -> None:
    assert classify_session(1, 1, 0, 1.0, weekly_mean_nrs=1.5).status is SessionClass.ACCEPTABLE
    c = classify_session(1, 1, 0, 1.0, weekly_mean_nrs=3.0)
    assert c.reason_code == "weekly_pain_worsening"
