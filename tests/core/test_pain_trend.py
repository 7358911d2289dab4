"""The weekly pain trend (core.pain.weekly_pain_trend, pain_trend_label): hand-computed.

One definition feeds the pain_trend_worsening alert, the pain response's weekly finding and
the coaches' overview (daily_load.pain_* → team_overview), so these numbers are the ones a
coach sees.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kneeload.core.pain import (
    TREND_CONTEXTS,
    PainContext,
    PainReport,
    PainTrend,
    PainValueError,
    local_date,
    pain_trend_label,
    weekly_pain_trend,
)

DAY = dt.date(2024, 5, 20)  # a Monday


def at(day_offset: int, hour: int, nrs: float, ctx: str = "during", tz: str = "UTC") -> PainReport:
    """A report ``day_offset`` local days from DAY at local ``hour``."""
    local = dt.datetime.combine(DAY + dt.timedelta(days=day_offset), dt.time(hour))
    return PainReport("a1", nrs, PainContext(ctx), local.replace(tzinfo=ZoneInfo(tz)))


def test_hand_computed_weeks_and_contexts() -> None:
    reports = [
        at(0, 7, 4, "next_morning"),  # this week (today)
        at(-3, 18, 3),  # this week
        at(-6, 23, 5),  # this week: 6 days back, the window's first day
        at(-7, 0, 1),  # last week: 7 days back
        at(-13, 12, 2, "next_morning"),  # last week's first day
        at(-14, 12, 9),  # 14 days back: in neither week
        at(1, 8, 9),  # after the as-of day: ignored
        at(-2, 20, 8, "after"),  # "after" and "rest" never count
        at(-9, 20, 0, "rest"),
    ]
    this, last, change = weekly_pain_trend(reports, DAY)
    assert this == pytest.approx((4 + 3 + 5) / 3)  # 4.0
    assert last == pytest.approx((1 + 2) / 2)  # 1.5
    assert change == pytest.approx(2.5)
    assert pain_trend_label(this, last) is PainTrend.WORSENING


def test_windows_are_local_calendar_days() -> None:
    # 23:30 in Sydney on DAY−7 is 13:30 UTC the same day: last week in Sydney …
    syd = at(-7, 23, 6, tz="Australia/Sydney")
    assert local_date(syd.reported_at, "Australia/Sydney") == DAY - dt.timedelta(days=7)
    assert weekly_pain_trend([syd], DAY, "Australia/Sydney") == (None, 6.0, None)
    # … and 01:00 on DAY−6 in Sydney is 15:00 UTC on DAY−7: last week in UTC
    early = at(-6, 1, 6, tz="Australia/Sydney")
    assert weekly_pain_trend([early], DAY, "Australia/Sydney") == (6.0, None, None)
    assert weekly_pain_trend([early], DAY, "UTC") == (None, 6.0, None)


def test_a_week_without_reports_ages_out() -> None:
    reports = [at(0, 8, 3), at(-8, 8, 5)]
    assert weekly_pain_trend(reports, DAY) == (3.0, 5.0, -2.0)
    assert pain_trend_label(3.0, 5.0) is PainTrend.IMPROVING
    # 7 days on, today's report is last week's, the older one is gone
    assert weekly_pain_trend(reports, DAY + dt.timedelta(days=7)) == (None, 3.0, None)
    assert weekly_pain_trend(reports, DAY + dt.timedelta(days=14)) == (None, None, None)
    assert weekly_pain_trend([], DAY) == (None, None, None)


def test_label_thresholds() -> None:
    assert pain_trend_label(None, 2.0) is None and pain_trend_label(2.0, None) is None
    assert pain_trend_label(3.0, 2.0) is PainTrend.WORSENING  # exactly the delta
    assert pain_trend_label(2.0, 3.0) is PainTrend.IMPROVING
    assert pain_trend_label(2.9, 2.0) is PainTrend.STABLE
    assert pain_trend_label(2.0, 2.0) is PainTrend.STABLE
    assert pain_trend_label(2.9, 2.0, delta_nrs=0.5) is PainTrend.WORSENING
    assert pain_trend_label(4.0, 2.0, delta_nrs=2.5) is PainTrend.STABLE
    # means of integer reports: 10/3 − 7/3 is 1 exactly in arithmetic, not in floating point
    assert pain_trend_label((3 + 3 + 4) / 3, (2 + 2 + 3) / 3) is PainTrend.WORSENING
    with pytest.raises(PainValueError):
        pain_trend_label(3.0, 2.0, delta_nrs=0.0)


def test_trend_contexts_are_the_loading_responses() -> None:
    assert set(TREND_CONTEXTS) == {PainContext.DURING, PainContext.NEXT_MORNING}


nrs = st.integers(0, 10)
report = st.tuples(st.integers(-20, 5), st.integers(0, 23), nrs, st.sampled_from(list(PainContext)))


@given(st.lists(report, max_size=30), st.floats(0.1, 5.0))
def test_property_matches_a_by_day_recount(
    rows: list[tuple[int, int, int, PainContext]], delta: float
) -> None:
    """Any reports: the means are those of the counted reports of days 0–6 and 7–13 back,
    within 0–10; the label is antisymmetric (swapping the weeks swaps worsening/improving)."""
    reports = [at(d, h, n, c.value) for d, h, n, c in rows]
    this, last, change = weekly_pain_trend(reports, DAY)
    counted = [(d, n) for d, _, n, c in rows if c in TREND_CONTEXTS]
    w1 = [n for d, n in counted if -6 <= d <= 0]
    w2 = [n for d, n in counted if -13 <= d <= -7]
    assert this == (pytest.approx(sum(w1) / len(w1)) if w1 else None)
    assert last == (pytest.approx(sum(w2) / len(w2)) if w2 else None)
    for m in (this, last):
        assert m is None or 0.0 <= m <= 10.0
    assert (change is None) == (this is None or last is None)
    lab, rev = pain_trend_label(this, last, delta), pain_trend_label(last, this, delta)
    flip = {
        PainTrend.WORSENING: PainTrend.IMPROVING,
        PainTrend.IMPROVING: PainTrend.WORSENING,
        PainTrend.STABLE: PainTrend.STABLE,
        None: None,
    }
    assert rev is flip[lab]
