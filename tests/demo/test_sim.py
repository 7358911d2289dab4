"""The demo simulator: deterministic, realistic enough, and the planted situations are there.

Pure and fast: nothing here touches the stack.
"""

from __future__ import annotations

import datetime as dt
import statistics

import numpy as np
import pytest

from kneeload import contracts
from kneeload.demo.expect import expected
from kneeload.demo.sim import Scenario, SimConfig, build_scenario

END = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def sc() -> Scenario:
    return build_scenario(SimConfig(end=END))


@pytest.fixture(scope="module")
def exp(sc: Scenario) -> dict:
    return expected(sc)


def test_deterministic_for_a_seed() -> None:
    small = SimConfig(end=END, athletes=4, units=2, weeks=3, duration_scale=0.3)
    a, b = build_scenario(small), build_scenario(small)
    assert a.fingerprint() == b.fingerprint()
    other = build_scenario(
        SimConfig(end=END, athletes=4, units=2, weeks=3, duration_scale=0.3, seed=8)
    )
    assert other.fingerprint() != a.fingerprint()


def test_team_clinic_and_span(sc: Scenario) -> None:
    assert len(sc.athletes) >= 12 and len(sc.units) >= 6
    assert sc.config.end - sc.config.start == dt.timedelta(weeks=8)
    for attr in ("body_mass_kg", "easy_speed_mps", "cadence_spm", "contact_ms"):
        assert len({getattr(a, attr) for a in sc.athletes}) == len(sc.athletes), attr
    assert len({a.time_zone for a in sc.athletes}) >= 6
    assert all(s.end <= sc.config.end and s.start >= sc.config.start for s in sc.sessions)
    assert all(p.time <= sc.config.end for p in sc.pain)
    # volume stays in the budget of a five-minute demo
    assert 300_000 < sc.sample_count() < 1_200_000


def test_samples_are_plausible_and_pass_the_sample_contract(sc: Scenario) -> None:
    contract = contracts.sample_contract()
    for plan in sc.sessions[::25]:
        smp = plan.samples()
        assert np.all(np.diff(smp.t) > 0)
        assert smp.cadence_spm.min() >= 130 and smp.cadence_spm.max() <= 215
        assert np.all(smp.ground_contact_ms < 60000 / smp.cadence_spm)
        assert 150 <= np.median(smp.ground_contact_ms) <= 320
        assert 4 <= np.median(smp.vertical_ratio_pct) <= 12
        for rec in smp.records(plan.device_id, 0, 50):
            assert contract.is_valid(rec), contract.errors(rec)


def test_dynamics_vary_between_athletes_and_couple_cadence_contact_to_speed(sc: Scenario) -> None:
    intervals = [s for s in sc.sessions if s.kind == "intervals"][:6]
    assert intervals
    for plan in intervals:
        smp = plan.samples()
        assert np.corrcoef(smp.speed_mps, smp.cadence_spm)[0, 1] > 0.5
        assert np.corrcoef(smp.speed_mps, smp.ground_contact_ms)[0, 1] < -0.5
    hills = [s for s in sc.sessions if s.kind == "hills"]
    assert hills and max(np.abs(s.samples().grade_pct).max() for s in hills) > 4
    cadences = {
        a.athlete_id: statistics.median(
            float(np.median(s.samples().cadence_spm)) for s in sc.sessions[:80] if s.athlete is a
        )
        for a in sc.athletes
        if any(s.athlete is a for s in sc.sessions[:80])
    }
    assert max(cadences.values()) - min(cadences.values()) > 8


def test_recording_rate_is_irregular_in_older_weeks(sc: Scenario) -> None:
    old = next(s for s in sc.sessions if s.smart_recording)
    new = next(s for s in reversed(sc.sessions) if not s.smart_recording and s.kind != "lever")
    gaps_old = np.diff(old.samples().t)
    assert len(set(gaps_old.tolist())) >= 3 and gaps_old.mean() > 1.5
    assert np.median(np.diff(new.samples().t)) == 1.0


def test_lever_sessions_have_changing_bws_setpoints(sc: Scenario) -> None:
    lever = [s for s in sc.sessions if s.kind == "lever"]
    assert len(lever) > 50
    for plan in lever[::10]:
        pcts = [p for _, p in plan.bws_plan]
        assert len(set(pcts)) >= 2 and all(10 <= p <= 20 for p in pcts)
        msgs = plan.unit_messages()
        kinds = {m.kind for m in msgs}
        assert kinds == {"telemetry", "setpoint"}
        assert all(m.athlete_id == plan.athlete.athlete_id for m in msgs)
        assert plan.sub_sport == "treadmill"
        assert set(np.unique(plan.samples().bws_pct)) <= set(pcts)


@pytest.mark.parametrize("hour", range(0, 24, 1))
def test_nothing_lies_after_the_end_whatever_the_time_of_day(hour: int) -> None:
    """The demo ends at 'now': a report after a run that ended just before it (up to
    45 min later) would be in the gateway's future and rejected (seen at 18:07 UTC)."""
    end = dt.datetime(2026, 12, 2, hour, 7, tzinfo=dt.UTC)
    small = build_scenario(SimConfig(end=end, athletes=6, units=2, weeks=2, duration_scale=0.2))
    assert all(s.end <= end for s in small.sessions)
    assert all(p.time <= end for p in small.pain)
    assert all(m.time <= end for m in small.heartbeats)


def test_pain_reports_during_after_and_next_morning(sc: Scenario) -> None:
    contexts = {p.context for p in sc.pain}
    assert contexts == {"during", "after", "next_morning", "rest"}


def test_planted_load_spike_in_week_6(sc: Scenario, exp: dict) -> None:
    p = sc.planted
    e = exp[p.load_spike_athlete]
    week6 = [x for x in e.series if 35 <= (x.date - sc.config.start.date()).days < 43]
    assert max(x.acwr_ewma or 0 for x in week6) >= 1.6
    assert max(x.wow_change_pct or 0 for x in week6) > 30
    for aid, other in exp.items():
        if aid != p.load_spike_athlete:
            assert max((x.acwr_ewma or 0) for x in other.series) < 1.4, aid


def test_planted_pain_does_not_settle(sc: Scenario) -> None:
    p = sc.planted
    a = sc.by_athlete[p.pain_athlete]
    assert a.unit_id == p.pain_unit
    mine = [r for r in sc.pain if r.athlete_id == a.athlete_id]
    baseline = statistics.median(r.pain_nrs for r in mine if r.context == "rest")
    bad_sessions = {s.session_id for s in sc.sessions if s.athlete is a and s.start >= p.pain_from}
    late = [r for r in mine if r.session_id in bad_sessions]
    assert any(r.context == "during" and r.pain_nrs > 4 for r in late)
    assert any(r.context == "next_morning" for r in late)
    assert all(r.pain_nrs > baseline for r in late if r.context == "next_morning")
    assert any(s.kind == "lever" and s.athlete is a and s.start >= p.pain_from for s in sc.sessions)
    for r in sc.pain:
        if r.athlete_id != a.athlete_id:
            assert r.context == "rest" or r.pain_nrs <= 4
            if r.context == "next_morning":
                assert r.pain_nrs == sc.by_athlete[r.athlete_id].baseline_pain


def test_planted_silent_unit(sc: Scenario) -> None:
    p = sc.planted
    last = {}
    for m in sc.heartbeats:
        last[m.unit_id] = m.time
    for s in sc.sessions:
        for m in s.unit_messages():
            last[m.unit_id] = max(last[m.unit_id], m.time)
    assert last[p.silent_unit] < p.silent_from
    assert sc.config.end - last[p.silent_unit] > dt.timedelta(hours=19)
    for uid, t in last.items():
        if uid != p.silent_unit:
            assert sc.config.end - t <= dt.timedelta(minutes=sc.config.heartbeat_period_min)


def test_planted_drifting_unit_at_the_second_site(sc: Scenario) -> None:
    """Every other unit is at the second site; one of its units with a load cell and an
    athlete drifts: measured − commanded support grows from 0 to 6 pp over two weeks, then
    stays; the other units stay within their noise (mean error ≈ 0)."""
    cfg, p = sc.config, sc.planted
    sites = {u.clinic_id for u in sc.units}
    assert sites == {cfg.clinic_id, cfg.second_clinic_id}
    unit = next(u for u in sc.units if u.unit_id == p.drift_unit)
    assert unit.clinic_id == cfg.second_clinic_id and unit.has_load_cell
    assert p.drift_from == cfg.end - dt.timedelta(days=cfg.drift_days + cfg.drift_plateau_days)
    errors: dict[str, list[tuple[dt.datetime, float]]] = {}
    for s in sc.sessions:
        for m in s.unit_messages():
            if m.kind == "telemetry" and m.measured_support_pct is not None and m.bws_pct:
                errors.setdefault(m.unit_id, []).append(
                    (m.time, m.measured_support_pct - m.bws_pct)
                )
    plateau = p.drift_from + dt.timedelta(days=cfg.drift_days)
    late = [e for t, e in errors[p.drift_unit] if t >= plateau]
    early = [e for t, e in errors[p.drift_unit] if t < p.drift_from]
    assert len(late) >= 90  # ≥ 30 min of running at 20 s telemetry: enough for the alert
    assert statistics.fmean(late) == pytest.approx(6.0, abs=0.3)
    assert abs(statistics.fmean(early)) < 0.3
    for uid, es in errors.items():
        if uid != p.drift_unit:
            assert abs(statistics.fmean(e for _, e in es)) < 0.3, uid


def test_planted_malformed_batch(sc: Scenario) -> None:
    m = sc.malformed
    contract = contracts.sample_contract()
    bad = {rid for rid, _ in m.invalid}
    assert len(bad) >= 6 and m.n_valid >= 30
    assert len({r["record_id"] for r in m.records}) == len(m.records)
    schema_bad = {r["record_id"] for r in m.records if not contract.is_valid(r)}
    # all but the future timestamp are caught by the contract; the gateway clock catches that one
    assert schema_bad <= bad and len(bad - schema_bad) == 1


def test_planted_late_fit_changes_a_past_days_acwr(sc: Scenario, exp: dict) -> None:
    p = sc.planted
    late = sc.late_session
    assert late.session_id == p.late_fit_session and late.delivery == "fit_late"
    assert late.local_date() == p.late_fit_date
    # late enough to be a late sync, recent enough for the worker's 3-day lateness horizon
    assert dt.timedelta(hours=20) <= sc.config.end - late.end <= dt.timedelta(hours=60)
    before = expected(sc, include_late=False, athletes={p.late_fit_athlete})[p.late_fit_athlete]
    after = exp[p.late_fit_athlete]
    assert after.acwr(p.late_fit_date) - before.acwr(p.late_fit_date) > 0.1
    assert after.final_acwr != before.final_acwr


def test_long_runs_progress_like_a_coached_plan(sc: Scenario) -> None:
    """Outside the planted spike, no run is more than 10 % longer (planned minutes) than
    the athlete's longest of the previous 30 days (the session-spike rule's first band),
    once 28 days of history are there (the first long run of the record is its first)."""
    p = sc.planted
    worst = 0.0
    for a in sc.athletes:
        runs = [s for s in sc.sessions if s.athlete.athlete_id == a.athlete_id]
        for i, s in enumerate(runs):
            if a.athlete_id == p.load_spike_athlete and s.week == p.load_spike_week:
                continue
            before = [r.minutes for r in runs[:i] if s.start - r.start <= dt.timedelta(days=30)]
            if s.start - runs[0].start >= dt.timedelta(days=28):
                worst = max(worst, s.minutes / max(before))
    assert 1.0 < worst <= 1.10, worst
