"""alert_quality against the simulator's ground truth, on hand-made alert rows (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from kneeload.demo.quality import alert_quality, ground_truth, spike_sessions
from kneeload.demo.sim import Scenario, SimConfig, build_scenario

END = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def sc() -> Scenario:
    return build_scenario(SimConfig(end=END))


def _row(kind: str, t: dt.datetime, athlete: str | None = None, unit: str | None = None,
         tr: str | None = "opened") -> dict:  # fmt: skip
    return {
        "kind": kind,
        "athlete_id": athlete,
        "unit_id": unit,
        "event_time": t.isoformat(),
        "episode_transition": tr,
    }


def test_ground_truth_windows(sc: Scenario) -> None:
    g = {s.name: s for s in ground_truth(sc)}
    p = sc.planted
    assert g["load_spike"].subject == f"athlete:{p.load_spike_athlete}"
    assert g["load_spike"].end - g["load_spike"].start == dt.timedelta(days=9)
    assert g["pain"].start == p.pain_from
    assert g["silent_unit"].start == p.silent_from - dt.timedelta(hours=2)  # a heartbeat period


def test_precision_recall_and_rates(sc: Scenario) -> None:
    p = sc.planted
    g = {s.name: s for s in ground_truth(sc)}
    spike_t = g["load_spike"].start + dt.timedelta(days=3)
    healthy = next(
        a.athlete_id
        for a in sc.athletes
        if a.athlete_id not in (p.load_spike_athlete, p.pain_athlete)
    )
    rows = [
        _row("acwr_high", spike_t, p.load_spike_athlete),  # caught in its window
        _row("acwr_high", spike_t, p.load_spike_athlete, tr="escalated"),
        _row("acwr_high", spike_t + dt.timedelta(days=1), p.load_spike_athlete, tr="resolved"),
        _row("acwr_high", sc.config.start + dt.timedelta(days=3), healthy),  # false positive
        _row("pain_high", p.pain_from - dt.timedelta(days=1), p.pain_athlete),  # too early
        _row("unit_offline", p.silent_from + dt.timedelta(hours=2), unit=p.silent_unit, tr=None),
    ]
    q = alert_quality(sc, rows)
    assert q["per_kind"]["acwr_high"] == {
        "episodes": 2,
        "true_positives": 1,
        "precision": 0.5,
        "situations_expecting": 1,
        "recall": 1.0,
    }
    assert q["per_kind"]["pain_high"]["precision"] == 0.0
    assert q["per_kind"]["pain_high"]["recall"] == 0.0
    assert q["per_kind"]["unit_offline"]["recall"] == 1.0  # a row without episode = opened
    sit = q["per_situation"]
    assert sit["load_spike"]["caught"] and sit["load_spike"]["episodes"] == 1
    assert sit["load_spike"]["notifications"] == 3 and sit["load_spike"]["meets_target"]
    assert not sit["pain"]["caught"] and not q["all_caught"]
    h = q["healthy"]
    assert h["athletes"] == len(sc.athletes) - 2 and h["athlete_weeks"] == 8 * h["athletes"]
    assert h["episodes"] == 1 and h["notifications"] == 1
    assert h["episodes_per_athlete_week"] == round(1 / (8 * h["athletes"]), 3)


def test_spike_sessions_by_the_rule_include_the_planted_spike() -> None:
    small = build_scenario(SimConfig(end=END, athletes=4, units=2, weeks=6, duration_scale=0.2))
    spikes = spike_sessions(small)
    p = small.planted
    mine = [s for s in spikes if s.subject == f"athlete:{p.load_spike_athlete}"]
    assert mine and all(s.kinds == ("session_spike",) for s in spikes)
    assert any(
        s.start >= small.config.start + dt.timedelta(days=7 * p.load_spike_week) for s in mine
    )
    q = alert_quality(small, [], spikes)
    assert q["per_kind"]["session_spike"]["situations_expecting"] == len(spikes) + 1
    assert q["per_kind"]["session_spike"]["recall"] == 0.0  # nothing raised
    assert len(q["spike_sessions"]) == len(spikes)


def test_resolutions_held_for_the_digest_and_the_spike_caught_while_running(sc: Scenario) -> None:
    """Two spike sessions in the camp week: two episodes, each opened (the first while its
    session still ran) and resolved. With resolutions held for the daily digest the coach
    is pushed 2 notifications, and 2 more lines wait for the digest."""
    p = sc.planted
    start = {s.name: s for s in ground_truth(sc)}["load_spike"].start
    a = p.load_spike_athlete
    rows = [
        dict(_row("session_spike", start + dt.timedelta(days=2), a), in_progress=True),
        _row("session_spike", start + dt.timedelta(days=3), a, tr="resolved"),
        _row("session_spike", start + dt.timedelta(days=5), a),
        _row("session_spike", start + dt.timedelta(days=6), a, tr="resolved"),
    ]
    held = alert_quality(sc, rows, digest_transitions=frozenset({"resolved"}))
    v = held["per_situation"]["load_spike"]
    assert (v["episodes"], v["notifications"], v["in_digest"]) == (2, 2, 2)
    assert v["caught_live"] and v["meets_target"]
    pushed = alert_quality(sc, rows)["per_situation"]["load_spike"]
    assert (pushed["notifications"], pushed["in_digest"]) == (4, 0) and not pushed["meets_target"]
    not_live = alert_quality(sc, [dict(r, in_progress=False) for r in rows])
    assert not not_live["per_situation"]["load_spike"]["caught_live"]


def test_slow_signals_held_for_the_digest_are_not_pushed(sc: Scenario) -> None:
    p = sc.planted
    a = p.pain_athlete
    t = p.pain_from + dt.timedelta(days=1)
    rows = [
        _row("pain_high", t, a),
        _row("pain_not_settled", t + dt.timedelta(hours=12), a),
        _row("pain_trend_worsening", t + dt.timedelta(hours=20), a),
        _row("pain_high", t + dt.timedelta(days=7), a, tr="escalated"),
    ]
    q = alert_quality(sc, rows, digest_kinds=frozenset({"pain_trend_worsening"}))
    v = q["per_situation"]["pain"]
    assert (v["episodes"], v["notifications"], v["in_digest"]) == (3, 3, 1) and v["meets_target"]
