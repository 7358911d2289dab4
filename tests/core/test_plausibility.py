"""Input plausibility of the PFJ model: every bound on hand-computed inputs, gait, the fix."""

from __future__ import annotations

import dataclasses

import pytest

from kneeload.core.pfj import assess_pfj_sample
from kneeload.core.plausibility import DEFAULT_BOUNDS, Gait, PlausibilityBounds, check_sample


def chk(v: float, f: float, **kw: float | None):  # type: ignore[no-untyped-def]
    args: dict = {"body_mass_kg": 70.0, "ground_contact_ms": None, "grade_pct": 0.0,
                  "bws_pct": 0.0}  # fmt: skip
    args.update(kw)
    return check_sample(v, f, **args)


@pytest.mark.parametrize(
    ("v", "f", "kw", "reason", "detail"),
    [
        # cadence: running 140–240, walking 60–140; outside both → no estimate
        (3.4, 30.0, {}, "cadence_implausible", "cadence 30 spm implausible (< 60 steps/min)"),
        (0.1, 300.0, {}, "cadence_implausible", "cadence 300 spm implausible (> 240 steps/min)"),
        (3.4, 241.0, {}, "cadence_implausible", "cadence 241 spm implausible (> 240 steps/min)"),
        # step length = 60·v/f: running 0.4–2.5 m
        (12.0, 140.0, {}, "step_length_implausible", "step length 5.14 m implausible (> 2.5 m)"),
        (1.5, 240.0, {}, "step_length_implausible", "step length 0.375 m implausible (< 0.4 m)"),
        # walking step length 0.2–1.1 m
        (2.4, 120.0, {}, "step_length_implausible", "step length 1.2 m implausible (> 1.1 m)"),
        # speed: running 1.0–7.0 m/s; below the walking minimum 0.3 m/s: not moving
        (7.5, 200.0, {}, "speed_implausible", "speed 7.5 m/s implausible (> 7 m/s)"),
        (0.2, 100.0, {}, "not_moving", "speed 0.2 m/s: not moving (< 0.3 m/s)"),
        (0.0, 170.0, {}, "not_moving", "speed 0 m/s: not moving (< 0.3 m/s)"),
        # measured ground contact: 100–450 ms and shorter than the step
        (3.4, 170.0, {"ground_contact_ms": 50.0}, "ground_contact_implausible",
         "ground contact 50 ms implausible (100–450 ms)"),
        (3.4, 150.0, {"ground_contact_ms": 460.0}, "ground_contact_implausible",
         "ground contact 460 ms implausible (100–450 ms)"),
        (3.4, 170.0, {"ground_contact_ms": 360.0}, "ground_contact_implausible",
         "ground contact 360 ms ≥ step time 353 ms (no flight phase)"),
        # grade ±30 %, BWS 0–80 %, body mass 30–250 kg
        (3.4, 170.0, {"grade_pct": -31.0}, "grade_implausible",
         "grade -31 % implausible (-30 to 30 %)"),
        (3.4, 170.0, {"bws_pct": 85.0}, "bws_implausible",
         "body-weight support 85 % implausible (0–80 %)"),
        (3.4, 170.0, {"body_mass_kg": 20.0}, "body_mass_implausible",
         "body mass 20 kg implausible (30–250 kg)"),
        (3.4, 170.0, {"body_mass_kg": 260.0}, "body_mass_implausible",
         "body mass 260 kg implausible (30–250 kg)"),
        # walking: labelled, not estimated with the running model
        (1.3, 96.0, {}, "walking",
         "walking (96 spm at 1.3 m/s, 0.812 m steps): not estimated with the running model"),
        (1.3, 96.0, {"ground_contact_ms": 1100.0}, "walking",  # a foot pod's ground time
         "walking (96 spm at 1.3 m/s, 0.812 m steps): not estimated with the running model"),
    ],
)  # fmt: skip
def test_each_bound(v: float, f: float, kw: dict, reason: str, detail: str) -> None:
    c = chk(v, f, **kw)
    assert (c.reason, c.detail) == (reason, detail)
    assert not c.estimable
    check, est = assess_pfj_sample(v, f, kw.get("body_mass_kg", 70.0), kw.get("ground_contact_ms"),
                                   kw.get("grade_pct", 0.0), kw.get("bws_pct", 0.0))  # fmt: skip
    assert est is None and check == c


@pytest.mark.parametrize(
    ("v", "f", "kw"),
    [
        (3.4, 140.0, {}), (3.4, 240.0, {"ground_contact_ms": 225.0}),  # cadence edges
        (1.0, 140.0, {}), (7.0, 240.0, {}),  # speed edges (steps 0.43 m and 1.75 m)
        (5.83, 140.0, {}), (1.6, 240.0, {}),  # step length edges 2.5 m and 0.4 m
        (3.4, 170.0, {"ground_contact_ms": 100.0}), (3.4, 200.0, {}),
        (3.4, 170.0, {"grade_pct": -30.0}), (3.4, 170.0, {"grade_pct": 30.0}),
        (3.4, 170.0, {"bws_pct": 80.0}), (3.4, 170.0, {"body_mass_kg": 30.0}),
        (3.4, 170.0, {"body_mass_kg": 250.0}),
    ],
)  # fmt: skip
def test_inside_the_bounds_is_running(v: float, f: float, kw: dict) -> None:
    if 60.0 * v / f > 2.5 or 60.0 * v / f < 0.4 or f > 240:
        pytest.skip("not inside by construction")
    c = chk(v, f, **kw)
    assert c.estimable and c.gait is Gait.RUNNING and not c.cadence_corrected, c.detail


def test_half_cadence_is_doubled_only_when_unambiguous() -> None:
    """85 at 3.4 m/s: as steps/min 2.4 m steps (no gait fits); doubled: 170 spm, 1.2 m."""
    c = chk(3.4, 85.0)
    assert c.estimable and c.cadence_corrected and c.cadence_spm == 170.0
    assert c.step_length_m == pytest.approx(1.2)
    _, s = assess_pfj_sample(3.4, 85.0, 70.0)
    assert s is not None and s.cadence_corrected and s.cadence_spm == 170.0
    _, ref = assess_pfj_sample(3.4, 170.0, 70.0)
    assert s.peak_pfj_stress_mpa == ref.peak_pfj_stress_mpa  # type: ignore[union-attr]
    # 90 "spm" (one leg) at 3.4 m/s: 32 MPa before; now 180 spm and ~9 MPa
    _, s90 = assess_pfj_sample(3.4, 90.0, 70.0, 250.0)
    assert s90 is not None and s90.cadence_spm == 180.0 and s90.peak_pfj_stress_mpa < 10.0
    # walking at 96 spm and 1.3 m/s stays walking (doubled it would be 0.41 m at 192 spm)
    assert chk(1.3, 96.0).gait is Gait.WALKING
    # a fix that would need more than doubling is not made
    assert chk(3.4, 50.0).reason == "cadence_implausible"
    # and the fix can be switched off
    off = dataclasses.replace(DEFAULT_BOUNDS, fix_half_cadence=False)
    assert chk(3.4, 85.0, ).cadence_corrected and not check_sample(
        3.4, 85.0, 70.0, bounds=off).estimable  # fmt: skip


def test_bounds_are_configurable_and_documented() -> None:
    b = PlausibilityBounds(run_step_max_m=6.0, run_speed_max_mps=13.0)
    assert check_sample(12.0, 140.0, 70.0, bounds=b).estimable
    with pytest.raises(ValueError, match="need min < max"):
        PlausibilityBounds(run_cadence_min_spm=250.0)
    rows = DEFAULT_BOUNDS.table()
    assert len(rows) == 10 and all(r.source and r.low < r.high for r in rows)
    assert all("kneeload's choice" in r.source for r in rows)  # none is a published bound
