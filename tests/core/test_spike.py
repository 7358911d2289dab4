"""Session spikes (kneeload.core.spike, Frandsen et al. 2025) on hand-computed sequences."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kneeload.core.alerts import AlertKind, Severity, check_session_spike
from kneeload.core.pfj import estimate_pfj_sample
from kneeload.core.spike import (
    PastSession,
    SpikeCategory,
    SpikeConfig,
    ceiling,
    session_spike,
    spike_category,
    spike_ratio,
)

DAY = 86_400_000
T = 100 * DAY  # the session under test starts here


def weeks_of_runs(long_m: float, load_per_m: float = 1.0) -> list[PastSession]:
    """Four weeks: 3 easy runs of 6 km and one long run per week."""
    out = []
    for w in range(4):
        for k, d in enumerate((6000.0, 6000.0, 6000.0, long_m)):
            out.append(PastSession(T - (28 - 7 * w - 2 * k) * DAY, d, d * load_per_m))
    return out


def test_ceiling_is_the_longest_and_largest_of_the_window_before_the_session() -> None:
    hist = [
        PastSession(T - 31 * DAY, 30000.0, 1.0),  # outside the 30 days
        PastSession(T - 29 * DAY, 12000.0, 900.0),
        PastSession(T - 2 * DAY, 8000.0, 1200.0),
        PastSession(T, 50000.0, 9999.0),  # the session itself: not its own ceiling
    ]
    assert ceiling(hist, T) == (12000.0, 1200.0, 2)


@pytest.mark.parametrize(
    ("ratio", "category"),
    [
        (None, SpikeCategory.NONE),
        (-0.2, SpikeCategory.NONE),
        (0.10, SpikeCategory.NONE),  # ≤ 10 %: the study's reference group
        (0.1001, SpikeCategory.SMALL),
        (0.30, SpikeCategory.SMALL),
        (0.31, SpikeCategory.MODERATE),
        (1.00, SpikeCategory.MODERATE),
        (1.01, SpikeCategory.LARGE),
    ],
)
def test_categories_of_frandsen_2025(ratio: float | None, category: SpikeCategory) -> None:
    assert spike_category(ratio) is category


def test_ratio() -> None:
    assert spike_ratio(15000.0, 10000.0) == pytest.approx(0.5)
    assert spike_ratio(5.0, 0.0) is None


def test_a_weekly_long_run_within_10_percent_of_the_ceiling_is_no_spike() -> None:
    v = session_spike(16500.0, 16500.0, T, weeks_of_runs(15000.0))  # +10 %
    assert v.spike is None and v.withheld is None
    assert {m.category for m in v.measures} == {SpikeCategory.NONE}
    assert check_session_spike("a", "t", _when(), v, "s1") is None


def test_a_long_run_half_again_as_long_is_a_moderate_spike_alert() -> None:
    v = session_spike(22500.0, 22500.0, T, weeks_of_runs(15000.0))  # +50 %
    assert v.spike is not None and v.spike.category is SpikeCategory.MODERATE
    a = check_session_spike("ath-1", "team-1", _when(), v, "s-long")
    assert a is not None and a.kind is AlertKind.SESSION_SPIKE
    assert a.severity is Severity.WARNING
    assert a.values["ceiling_30d"] == 15000.0 and a.values["ratio"] == pytest.approx(0.5)
    assert a.values["category"] == "moderate" and a.dedup_key.endswith(":s-long")


def test_the_same_distance_on_a_lever_unit_at_20_percent_bws_is_no_pfj_spike() -> None:
    """On the road the +40 % distance is a spike on both measures; at 20 % body-weight
    support the PFJ load per metre is lower (core.pfj), so the PFJ measure stays inside
    the ceiling and only the distance is flagged."""
    # estimated PFJ load per metre (MPa·s/m) of the same running, on the road and on a unit
    road = estimate_pfj_sample(3.0, 170.0, 60.0, bws_pct=0.0).pfj_load_per_km / 1000.0
    lever = estimate_pfj_sample(3.0, 170.0, 60.0, bws_pct=20.0).pfj_load_per_km / 1000.0
    assert lever < road
    hist = weeks_of_runs(10000.0, load_per_m=road)
    on_road = session_spike(14000.0, 14000.0 * road, T, hist)
    on_lever = session_spike(14000.0, 14000.0 * lever, T, hist)
    assert {m.measure: m.category for m in on_road.measures} == {
        "distance_m": SpikeCategory.MODERATE,
        "pfj_load_mpa_s": SpikeCategory.MODERATE,
    }
    pfj = next(m for m in on_lever.measures if m.measure == "pfj_load_mpa_s")
    road_ratio = on_road.measures[1].ratio
    assert pfj.ratio is not None and road_ratio is not None and pfj.ratio < road_ratio
    assert pfj.category.rank < SpikeCategory.MODERATE.rank
    assert on_lever.spike is not None and on_lever.spike.measure == "distance_m"


def test_too_few_sessions_give_no_verdict_and_say_so() -> None:
    hist = [PastSession(T - DAY, 5000.0, 100.0), PastSession(T - 2 * DAY, 5000.0, 100.0)]
    v = session_spike(50000.0, 5000.0, T, hist)
    assert v.spike is None and v.withheld == "too_few_sessions" and v.sessions_in_window == 2
    assert session_spike(50000.0, 5000.0, T, hist, SpikeConfig(min_sessions=2)).spike is not None


@pytest.mark.parametrize(
    ("field", "value"), [("distance_m", -1.0), ("pfj_load_mpa_s", float("nan"))]
)
def test_bad_inputs_are_named(field: str, value: float) -> None:
    kw = {"distance_m": 1000.0, "pfj_load_mpa_s": 10.0, field: value}
    with pytest.raises(ValueError, match=field):
        session_spike(kw["distance_m"], kw["pfj_load_mpa_s"], T, weeks_of_runs(1.0))


@given(st.floats(0.0, 1e6), st.floats(0.0, 1e6))
def test_never_a_spike_at_or_below_the_ceiling(dist: float, load: float) -> None:
    hist = [PastSession(T - k * DAY, dist, load) for k in (1, 2, 3)]
    assert session_spike(dist, load, T, hist).spike is None


def _when() -> dt.datetime:
    return dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
