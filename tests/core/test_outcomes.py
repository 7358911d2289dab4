"""Outcomes by unit and clinic (kneeload.core.outcomes) on hand-computed sequences: pain of
the first vs the last two weeks, days to ≤ 5 % BWS with censoring (Kaplan–Meier median),
median PFJ load per km, pain flares, withholding below the minimum n and never ranking a
withheld group; hypothesis properties for the invariants."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kneeload.core.outcomes import (
    AthleteOutcome,
    OutcomeConfig,
    OutcomeValueError,
    PainTrajectory,
    SessionOnUnit,
    athlete_outcome,
    bws_progression,
    count_pain_flares,
    group_outcomes,
    km_median_days,
    median_pfj_load_per_km,
    pain_trajectory,
    rank_groups,
)

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 2, 8, tzinfo=UTC)


def day(n: float, h: float = 0.0) -> dt.datetime:
    return T0 + dt.timedelta(days=n, hours=h)


# ----------------------------------------------------------------------------- pain


def test_pain_first_vs_last_two_weeks() -> None:
    """28 days: first window days 0–14 (3, 4 → 3.5), last window days 14–28 (1, 2, 0 → 1);
    change −2.5. A report outside [start, end] is ignored."""
    reports = [(day(1), 3), (day(13), 4), (day(15), 1), (day(20), 2), (day(27.9), 0),
               (day(40), 9)]  # fmt: skip
    p = pain_trajectory(reports, day(0), day(28))
    assert p == PainTrajectory(3.5, 1.0, -2.5, 2, 3)


def test_pain_windows_overlap_gives_no_change() -> None:
    """20 days < two windows: the means are given, the change is not (reports shared)."""
    p = pain_trajectory([(day(2), 4), (day(10), 2)], day(0), day(20))
    assert p.change_nrs is None
    assert (p.first_mean_nrs, p.last_mean_nrs, p.first_reports, p.last_reports) == (3.0, 2.0, 2, 1)


def test_pain_missing_window() -> None:
    p = pain_trajectory([(day(1), 4)], day(0), day(30))
    assert (p.first_mean_nrs, p.last_mean_nrs, p.change_nrs) == (4.0, None, None)


def test_pain_inputs_validated_naming_the_field() -> None:
    with pytest.raises(OutcomeValueError, match="pain_nrs=11"):
        pain_trajectory([(day(1), 11)], day(0), day(30))
    with pytest.raises(OutcomeValueError, match="end="):
        pain_trajectory([], day(3), day(1))
    with pytest.raises(OutcomeValueError, match="start="):
        pain_trajectory([], dt.datetime(2026, 3, 2), day(1))


# ------------------------------------------------------------------------------ BWS


def test_bws_days_to_target() -> None:
    """30 % on day 0, 20 % day 7, 10 % day 14, 5 % day 21.5 → 21.5 days, reached."""
    b = bws_progression([(day(7), 20.0), (day(0), 30.0), (day(14), 10.0), (day(21.5), 5.0),
                         (day(25), 0.0), (day(3), None)])  # fmt: skip
    assert b is not None
    assert (b.days, b.reached, b.first_bws_pct, b.last_bws_pct, b.sessions) == (
        21.5, True, 30.0, 5.0, 4
    )  # fmt: skip


def test_bws_still_above_is_censored_at_last_session() -> None:
    b = bws_progression([(day(0), 30.0), (day(10), 15.0), (day(12), 10.0)])
    assert b is not None and (b.days, b.reached, b.last_bws_pct) == (12.0, False, 10.0)


def test_bws_first_session_at_target_and_none() -> None:
    b = bws_progression([(day(0), 5.0), (day(1), 10.0)])
    assert b is not None and (b.days, b.reached) == (0.0, True)
    assert bws_progression([(day(0), None)]) is None
    with pytest.raises(OutcomeValueError, match="mean_bws_pct=120"):
        bws_progression([(day(0), 120.0)])


def test_km_median_hand_computed() -> None:
    """Times 10, 20 (censored), 30, 40, 50 (censored).
    S(10) = 4/5 = 0.8; at 20 one censored leaves 3 at risk; S(30) = 0.8·2/3 = 0.533;
    S(40) = 0.533·1/2 = 0.267 ≤ 0.5 → median 40. (Median of the reached only would be 30.)"""
    ev = [(10.0, True), (20.0, False), (30.0, True), (40.0, True), (50.0, False)]
    assert km_median_days(ev) == 40.0
    assert km_median_days([(5.0, True), (6.0, False), (7.0, False)]) is None  # S stays 2/3
    assert km_median_days([(5.0, True), (9.0, True)]) == 5.0  # S(5) = 0.5
    assert km_median_days([]) is None


# ------------------------------------------------------------------------ PFJ, flares


def test_median_pfj_load_per_km() -> None:
    assert median_pfj_load_per_km([300.0, None, 100.0, 200.0, 1000.0]) == 250.0
    assert median_pfj_load_per_km([None]) is None
    with pytest.raises(OutcomeValueError, match="pfj_load_per_km=-1"):
        median_pfj_load_per_km([-1.0])


def test_flares_in_window() -> None:
    assert count_pain_flares([day(-1), day(0), day(5), day(10), day(11)], day(0), day(10)) == 3


# --------------------------------------------------------------------------- athlete


def test_athlete_outcome_window_and_figures() -> None:
    """Sessions days 0, 7, 14, 21, 28 (30-min runs, BWS 25→5 %, load/km 100..300); time on
    the unit = day 0 08:00 → day 28 08:30 + 36 h; a session before the period is left out;
    next-morning pain 4, 4 (first two weeks) and 1 (last two) → −3; one flare in the
    window, one before the first session."""
    sess = [
        SessionOnUnit(day(7 * i), day(7 * i, 0.5), 25.0 - 5 * i, 100.0 + 50 * i) for i in range(5)
    ]
    early = SessionOnUnit(day(-30), day(-30, 0.5), 40.0, 50.0)
    a = athlete_outcome(
        "ath",
        [early, *sess],
        [(day(1), 4), (day(8), 4), (day(29), 1)],
        [day(-10), day(9)],
        (day(-1), day(60)),
    )
    assert a is not None
    assert (a.sessions, a.start, a.end) == (5, day(0), day(28, 0.5 + 36))
    assert a.pain.change_nrs == -3.0
    assert a.bws is not None and (a.bws.days, a.bws.reached) == (28.0, True)
    assert (a.pfj_load_per_km, a.flares) == (200.0, 1)
    assert athlete_outcome("x", [early], [], [], (day(-1), day(60))) is None


# ---------------------------------------------------------------------------- groups


def _athlete(i: int, change: float | None, days: float, reached: bool, pfj: float,
             flares: int) -> AthleteOutcome:  # fmt: skip
    first = 4.0
    pain = PainTrajectory(first, None if change is None else first + change, change, 3, 3)
    from kneeload.core.outcomes import BwsProgression

    return AthleteOutcome(f"a{i}", 4, day(0), day(30), pain,
                          BwsProgression(days, reached, 30.0, 5.0 if reached else 15.0, 4),
                          pfj, flares)  # fmt: skip


def test_group_figures_and_withholding() -> None:
    """Five athletes: pain changes −2, −1, 0, −3 and one without → pain n 4 < 5: withheld;
    BWS 10 ✓, 20 ✓, 30 ✗, 40 ✓, 50 ✗ → KM median 40, 3/5 reached; PFJ 100..500 → 300;
    flares 0, 1, 0, 2, 0 → 3 in total, 2 athletes, 0.6 per athlete."""
    athletes = [
        _athlete(0, -2.0, 10, True, 100.0, 0),
        _athlete(1, -1.0, 20, True, 200.0, 1),
        _athlete(2, 0.0, 30, False, 300.0, 0),
        _athlete(3, -3.0, 40, True, 400.0, 2),
        _athlete(4, None, 50, False, 500.0, 0),
    ]
    g = group_outcomes("unit-1", athletes, min_n=5)
    assert (g.athletes, g.sessions, g.pain_n, g.pain_change_nrs) == (5, 20, 4, None)
    assert g.withheld() == ("pain",)
    assert (g.bws_n, g.bws_reached, g.bws_median_days, g.bws_reached_share) == (5, 3, 40, 0.6)
    assert (g.pfj_n, g.pfj_load_per_km_median) == (5, 300.0)
    assert (g.flares, g.athletes_with_flare, g.flares_per_athlete) == (3, 2, 0.6)
    g4 = group_outcomes("unit-1", athletes, min_n=4)
    assert g4.pain_change_nrs == -1.5 and g4.pain_first_mean_nrs == 4.0 and g4.withheld() == ()


def test_small_group_is_never_ranked() -> None:
    """unit-a (5 athletes) and unit-b (5) are ranked on PFJ per km; unit-c has 2 athletes
    with the lowest figure of all: withheld, rank None, and it does not push the others."""
    a = group_outcomes("unit-a", [_athlete(i, -1.0, 10, True, 300.0, 0) for i in range(5)])
    b = group_outcomes("unit-b", [_athlete(i, -2.0, 10, True, 200.0, 1) for i in range(5)])
    c = group_outcomes("unit-c", [_athlete(i, -5.0, 10, True, 50.0, 0) for i in range(2)])
    assert c.pfj_load_per_km_median is None and c.pfj_n == 2
    assert rank_groups([a, b, c], "pfj_load_per_km_median") == {"unit-a": 2, "unit-b": 1,
                                                                "unit-c": None}  # fmt: skip
    assert rank_groups([a, b, c], "pain_change_nrs") == {"unit-a": 2, "unit-b": 1, "unit-c": None}
    assert rank_groups([a, b], "bws_reached_share") == {"unit-a": 1, "unit-b": 1}  # a tie
    with pytest.raises(OutcomeValueError, match="figure="):
        rank_groups([a], "athletes")


def test_config_validated_naming_the_field() -> None:
    with pytest.raises(OutcomeValueError, match="min_n=0"):
        OutcomeConfig(min_n=0)
    with pytest.raises(OutcomeValueError, match="bws_target_pct"):
        OutcomeConfig(bws_target_pct=100.0)
    with pytest.raises(OutcomeValueError, match="min_n=0"):
        group_outcomes("g", [], min_n=0)


# ------------------------------------------------------------------------ properties

_events = st.lists(
    st.tuples(st.floats(0, 100, allow_nan=False).map(lambda x: round(x, 1)), st.booleans()),
    max_size=30,
)


@given(_events)
def test_km_median_is_an_event_time_and_none_without_half(ev: list[tuple[float, bool]]) -> None:
    m = km_median_days(ev)
    reached = [d for d, r in ev if r]
    if m is not None:
        assert m in reached
        # at least half the athletes are known to have reached it by m, or were censored
        # earlier — never more than all events
        assert sum(1 for d in reached if d <= m) >= 1
    if ev and all(r for _, r in ev):  # no censoring: KM median = the lower sample median
        srt = sorted(d for d, _ in ev)
        assert m == srt[(len(srt) - 1) // 2]


@given(
    st.lists(st.tuples(st.floats(0, 60), st.integers(0, 10)), max_size=40),
    st.floats(0, 60),
)
def test_pain_means_stay_on_the_scale_and_change_is_their_difference(
    reps: list[tuple[float, int]], span_d: float
) -> None:
    p = pain_trajectory([(day(d), n) for d, n in reps], day(0), day(span_d))
    for m in (p.first_mean_nrs, p.last_mean_nrs):
        assert m is None or 0.0 <= m <= 10.0
    if p.change_nrs is not None:
        assert p.first_mean_nrs is not None and p.last_mean_nrs is not None
        assert p.change_nrs == pytest.approx(p.last_mean_nrs - p.first_mean_nrs)
        assert span_d >= 28


@given(st.lists(st.tuples(st.floats(0, 90), st.one_of(st.none(), st.floats(0, 100))),
                max_size=30), st.floats(0, 50))  # fmt: skip
def test_bws_progression_properties(sess: list[tuple[float, float | None]], target: float) -> None:
    b = bws_progression([(day(d), x) for d, x in sess], target)
    vals = [x for _, x in sess if x is not None]
    if not vals:
        assert b is None
        return
    assert b is not None and b.days >= 0
    assert b.reached == any(x <= target for x in vals)
    assert b.reached == (b.last_bws_pct <= target)


@given(st.integers(1, 8), st.lists(st.integers(0, 12), min_size=1, max_size=8))
def test_withheld_groups_are_never_ranked(min_n: int, sizes: list[int]) -> None:
    groups = [
        group_outcomes(
            f"g{k}", [_athlete(i, -1.0, 10, True, 100.0 + k, 0) for i in range(n)], min_n
        )
        for k, n in enumerate(sizes)
    ]
    ranks = rank_groups(groups, "pfj_load_per_km_median")
    for g in groups:
        assert (ranks[g.group_id] is None) == (g.athletes < min_n)
        assert (g.pfj_load_per_km_median is None) == (g.athletes < min_n)
        assert g.athletes == sizes[int(g.group_id[1:])]  # n is always shown
