"""Pain presets, baseline, classification and BWS suggestions."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kneeload.core.pain import (
    LEVER,
    SILBERNAGEL,
    BwsAction,
    BwsStepConfig,
    PainContext,
    PainReport,
    PainValueError,
    SessionClass,
    baseline_nrs,
    classify_session,
    session_pain,
    suggest_bws,
    weekly_pain_trend,
)

T0 = dt.datetime(2024, 3, 1, 18, 0, tzinfo=dt.UTC)


def rep(nrs: float, ctx: str, hours: float) -> PainReport:
    return PainReport("ath1", nrs, PainContext(ctx), T0 + dt.timedelta(hours=hours))


def test_lever_acceptable_caution_stop() -> None:
    assert classify_session(3, 1, 1).status is SessionClass.ACCEPTABLE
    assert classify_session(4, 1, 1).status is SessionClass.ACCEPTABLE  # ≤ 4 allowed
    c = classify_session(5, 1, 1)
    assert c.status is SessionClass.CAUTION and "5/10 > 4" in c.reason
    c = classify_session(3, 2, 1)
    assert c.status is SessionClass.CAUTION and "not back to baseline within 24 h" in c.reason
    assert classify_session(7, 1, 1).status is SessionClass.STOP
    assert classify_session(5, 2, 1).status is SessionClass.STOP  # two cautions at once
    assert classify_session(2, 5, 1).status is SessionClass.STOP  # +4 above baseline next day
    c = classify_session(2, 1, 1, weekly_change_nrs=1.5)
    assert c.status is SessionClass.CAUTION and "weekly pain up" in c.reason


def test_silbernagel_allows_5() -> None:
    assert classify_session(5, 1, 1, preset=SILBERNAGEL).status is SessionClass.ACCEPTABLE
    assert classify_session(5, 1, 1, preset=LEVER).status is SessionClass.CAUTION
    assert classify_session(6, 1, 1, preset=SILBERNAGEL).status is SessionClass.CAUTION


def test_reason_readable_and_pending() -> None:
    c = classify_session(3, None, None)
    assert c.pending and c.baseline_assumed
    assert c.reason.startswith("ACCEPTABLE:") and "24 h follow-up pending" in c.reason
    assert "baseline taken as 0/10" in c.reason


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
    assert sp.during_max_nrs == 5 and sp.after_max_nrs == 4 and sp.settle_nrs == 2
    assert sp.settle_hours == pytest.approx(13.0)
    week = [rep(2, "during", -24 * 10), rep(4, "during", -24 * 2), rep(5, "next_morning", -24)]
    this, last, delta = weekly_pain_trend(week, T0)
    assert (this, last, delta) == (4.5, 2.0, 2.5)


def test_bws_suggestions() -> None:
    ok = classify_session(2, 0, 0)
    s = suggest_bws(20, ok)
    assert s.action is BwsAction.STEP_DOWN and s.suggested_bws_pct == 15
    assert s.addressed_to == "clinician" and s.auto_apply is False
    assert "20% → 15%" in s.reason
    assert suggest_bws(20, classify_session(5, 0, 0)).action is BwsAction.HOLD
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
        (2.0, 0.0, 0.0, None): "within_limits",
        (None, 0.0, 0.0, None): "within_limits_pending",
        (5.0, 0.0, 0.0, None): "pain_during_above_limit",
        (8.0, 0.0, 0.0, None): "pain_during_above_stop_limit",
        (2.0, 2.0, 0.0, None): "not_back_to_baseline",
        (2.0, 6.0, 0.0, None): "pain_above_baseline_next_day",
        (2.0, 0.0, 0.0, 1.5): "weekly_pain_worsening",
        (5.0, 2.0, 0.0, None): "multiple_cautions",
    }
    for (during, settle, base, weekly), code in cases.items():
        c = classify_session(during, settle, base, weekly)
        assert c.reason_code == code, (during, settle, base, weekly, c.reason)
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,63}", c.reason_code)
