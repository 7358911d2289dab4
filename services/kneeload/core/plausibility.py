"""Plausibility of the PFJ model's inputs: bounds, gait, and the one fix allowed.

The running model (:mod:`kneeload.core.pfj`) is only as good as its inputs. Real devices
send strides/min for steps/min, walking breaks inside a run, GPS spikes and foot-pod
ground times of a second; fed those, the chain returns confident numbers far outside
anything measured (cadence 30 spm → 239 MPa). :func:`check_sample` decides, per sample,
before any estimate is made:

1. **Athlete and device bounds** — body mass, body-weight support, grade
   (:class:`PlausibilityBounds`).
2. **Gait** — the sample is *running* when cadence, speed and step length
   (``L = 60·v / cadence``) are all inside the running bounds, *walking* when they are
   inside the walking bounds. Walking is labelled and not estimated with the running model
   (no flight phase: Morin's sine-wave model does not apply).
3. **The one fix** — a cadence that fits neither gait, while twice that cadence is a
   plausible running cadence (≤ 220 spm) with a plausible step length for the measured
   speed, is a
   strides/min value sent as steps/min (one leg counted). It is doubled, and the sample
   says so (``cadence_corrected``). Nothing else is ever changed.
4. **Ground contact**, when measured: within its running bounds and shorter than the step
   time (a flight phase exists).

A sample that fails gets no estimate. It is kept, flagged with a machine-readable reason
(:attr:`SampleCheck.reason`) and a sentence for people (:attr:`SampleCheck.detail`, e.g.
"step length 5.1 m implausible (> 2.5 m)"), and counted per session. The order of the
checks fixes which reason is named when several fail.

Every bound is a configurable default; :meth:`PlausibilityBounds.table` lists each with
its source, or says it is kneeload's own choice (docs/science.md §1.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "DEFAULT_BOUNDS",
    "BoundRow",
    "Gait",
    "PlausibilityBounds",
    "SampleCheck",
    "check_sample",
]


class Gait(StrEnum):
    """What a sample's cadence, speed and step length say the athlete was doing."""

    RUNNING = "running"
    WALKING = "walking"
    UNKNOWN = "unknown"


class BoundRow(NamedTuple):
    """One bound for people: name, range, unit, source, and whether the source confirms it."""

    name: str
    low: float
    high: float
    unit: str
    source: str
    confirmed: bool


_HEIDERSCHEIT = "Heiderscheit et al. 2011, MSSE 43(2):296–302"


@dataclass(frozen=True, slots=True)
class PlausibilityBounds:
    """Input bounds of the PFJ model; every one a configurable default.

    Attributes (source; **choice** = kneeload's own, anchored where stated)
    ----------
    run_cadence_min_spm, run_cadence_max_spm : float
        140–240 steps/min. **Choice**, anchored on recreational running at 150–200 spm
        (mean ~172 spm at preferred pace, Heiderscheit et al. 2011) with margin for slow
        jogging and fast running.
    walk_cadence_min_spm, walk_cadence_max_spm : float
        60–140 steps/min. **Choice**, anchored on walking at ~100–130 spm.
    run_speed_min_mps, run_speed_max_mps : float
        1.0–7.0 m/s. **Choice**: the model's speed effect comes from 2.5–4.2 m/s data
        (Sports Biomech 2023); 7 m/s is beyond elite distance pace; sprinting is out of
        scope.
    walk_speed_min_mps, walk_speed_max_mps : float
        0.3–2.5 m/s. **Choice**: below 0.3 m/s the athlete is standing (GPS drift), above
        2.5 m/s people run rather than walk.
    run_step_min_m, run_step_max_m : float
        0.4–2.5 m. **Choice**, anchored on ~0.6 m (slow jog) to ~2.2 m (fast running) for
        ``L = speed / (cadence/60)``.
    walk_step_min_m, walk_step_max_m : float
        0.2–1.1 m. **Choice**, anchored on a normal walking step of ~0.7 m.
    contact_min_ms, contact_max_ms : float
        100–450 ms, and shorter than the step time. **Choice**, anchored on running contact
        of ~150–350 ms (elite sprinting ~100 ms); a contact as long as the step leaves no
        flight phase.
    grade_min_pct, grade_max_pct : float
        −30 to +30 %. **Choice**: the grade factor has no published coefficient and the
        data behind its direction stop at ±9° (≈ ±16 %, Gottschall & Kram 2005).
    bws_min_pct, bws_max_pct : float
        0–80 %. **Choice**: the default maximum support of a BWS unit (``BwsStepConfig``);
        set it to the unit's real maximum.
    body_mass_min_kg, body_mass_max_kg : float
        30–250 kg. **Choice** (adults and adolescents).
    fix_half_cadence : bool
        Double a cadence that is exactly a strides/min value (see :func:`check_sample`).
    fix_max_cadence_spm : float
        The doubled cadence must not exceed 220 steps/min: only then is it a plausible
        running cadence for a speed the athlete runs at rather than a sprint cadence
        (**choice**, above the 150–200 spm of recreational runners).
    """

    run_cadence_min_spm: float = 140.0
    run_cadence_max_spm: float = 240.0
    walk_cadence_min_spm: float = 60.0
    walk_cadence_max_spm: float = 140.0
    run_speed_min_mps: float = 1.0
    run_speed_max_mps: float = 7.0
    walk_speed_min_mps: float = 0.3
    walk_speed_max_mps: float = 2.5
    run_step_min_m: float = 0.4
    run_step_max_m: float = 2.5
    walk_step_min_m: float = 0.2
    walk_step_max_m: float = 1.1
    contact_min_ms: float = 100.0
    contact_max_ms: float = 450.0
    grade_min_pct: float = -30.0
    grade_max_pct: float = 30.0
    bws_min_pct: float = 0.0
    bws_max_pct: float = 80.0
    body_mass_min_kg: float = 30.0
    body_mass_max_kg: float = 250.0
    fix_half_cadence: bool = True
    fix_max_cadence_spm: float = 220.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if "_min_" in f.name:
                hi = f.name.replace("_min_", "_max_")
                lo_v, hi_v = getattr(self, f.name), getattr(self, hi)
                if not (math.isfinite(lo_v) and math.isfinite(hi_v) and lo_v < hi_v):
                    raise ValueError(f"{f.name}={lo_v!r}, {hi}={hi_v!r}: need min < max")

    def table(self) -> list[BoundRow]:
        """Every bound with its unit and source, for the README, the science notes and the CLI."""
        c = "kneeload's choice"
        return [
            BoundRow("running cadence", self.run_cadence_min_spm, self.run_cadence_max_spm,
                     "steps/min", f"{c}; recreational running 150–200 spm ({_HEIDERSCHEIT})",
                     False),
            BoundRow("walking cadence", self.walk_cadence_min_spm, self.walk_cadence_max_spm,
                     "steps/min", f"{c}; walking ~100–130 spm", False),
            BoundRow("running speed", self.run_speed_min_mps, self.run_speed_max_mps, "m/s",
                     f"{c}; speed effect measured at 2.5–4.2 m/s (Sports Biomech 2023)", False),
            BoundRow("walking speed", self.walk_speed_min_mps, self.walk_speed_max_mps, "m/s",
                     f"{c}; below: standing, above: running", False),
            BoundRow("running step length", self.run_step_min_m, self.run_step_max_m, "m",
                     f"{c}; ~0.6 m slow jog to ~2.2 m fast running", False),
            BoundRow("walking step length", self.walk_step_min_m, self.walk_step_max_m, "m",
                     f"{c}; normal walking step ~0.7 m", False),
            BoundRow("ground contact (measured, running)", self.contact_min_ms,
                     self.contact_max_ms, "ms",
                     f"{c}; running ~150–350 ms, sprinting ~100 ms; must be < step time",
                     False),
            BoundRow("grade", self.grade_min_pct, self.grade_max_pct, "%",
                     f"{c}; grade data stop at ±9° ≈ ±16 % (Gottschall & Kram 2005)", False),
            BoundRow("body-weight support", self.bws_min_pct, self.bws_max_pct, "%",
                     f"{c}; default unit maximum (BwsStepConfig.unit_max_pct)", False),
            BoundRow("body mass", self.body_mass_min_kg, self.body_mass_max_kg, "kg", c, False),
        ]  # fmt: skip


DEFAULT_BOUNDS = PlausibilityBounds()


class SampleCheck(NamedTuple):
    """What :func:`check_sample` decided for one sample.

    ``cadence_spm`` is the cadence to use (doubled when ``cadence_corrected``);
    ``step_length_m`` is derived from speed and that cadence (an estimate, not measured).
    ``reason`` is None when the running model may estimate the sample; otherwise a
    snake_case code (``walking``, ``not_moving``, ``cadence_implausible``,
    ``step_length_implausible``, ``speed_implausible``, ``ground_contact_implausible``,
    ``grade_implausible``, ``bws_implausible``, ``body_mass_implausible``) and ``detail``
    says it in words.
    """

    gait: Gait
    cadence_spm: float
    step_length_m: float | None
    cadence_corrected: bool = False
    reason: str | None = None
    detail: str | None = None

    @property
    def estimable(self) -> bool:
        """True when the running model may estimate this sample."""
        return self.reason is None


def _in(x: float, lo: float, hi: float) -> bool:
    return lo <= x <= hi  # False for NaN


def _g(x: float) -> str:
    return f"{x:.3g}"


def _fail(gait: Gait, cad: float, step: float | None, reason: str, detail: str) -> SampleCheck:
    return SampleCheck(gait, cad, step, False, reason, detail)


def _running(b: PlausibilityBounds, v: float, cad: float, length: float | None) -> bool:
    return (
        length is not None
        and b.run_cadence_min_spm <= cad <= b.run_cadence_max_spm
        and b.run_speed_min_mps <= v <= b.run_speed_max_mps
        and b.run_step_min_m <= length <= b.run_step_max_m
    )


def _walking(b: PlausibilityBounds, v: float, cad: float, length: float | None) -> bool:
    return (
        length is not None
        and b.walk_cadence_min_spm <= cad <= b.walk_cadence_max_spm
        and b.walk_speed_min_mps <= v <= b.walk_speed_max_mps
        and b.walk_step_min_m <= length <= b.walk_step_max_m
    )


def check_sample(
    speed_mps: float,
    cadence_spm: float,
    body_mass_kg: float,
    ground_contact_ms: float | None = None,
    grade_pct: float = 0.0,
    bws_pct: float = 0.0,
    bounds: PlausibilityBounds = DEFAULT_BOUNDS,
) -> SampleCheck:
    """Decide whether the running model may estimate a sample (see the module docstring).

    Checks, in this order (the first failure is the named reason): body mass, BWS, grade,
    cadence (inside neither gait's range, and not a fixable half cadence), not moving
    (speed below the walking minimum), step length, speed, then — for running samples —
    the measured ground contact.

    Parameters
    ----------
    speed_mps, cadence_spm : float
        Speed (m/s) and cadence in steps/min as received.
    body_mass_kg, ground_contact_ms, grade_pct, bws_pct : float
        As for :func:`kneeload.core.pfj.estimate_pfj_sample` (contact None: not measured).
    bounds : PlausibilityBounds
        The bounds (defaults: :data:`DEFAULT_BOUNDS`).

    Returns
    -------
    SampleCheck
        Never raises: NaN or infinite inputs fail their bound.

    Examples
    --------
    12 m/s at 140 spm → ``step_length_implausible`` ("step length 5.14 m implausible
    (> 2.5 m)"); 85 spm at 3.4 m/s → running at 170 spm, ``cadence_corrected``; 96 spm at
    1.3 m/s → ``walking``.
    """
    b = bounds
    if not _in(body_mass_kg, b.body_mass_min_kg, b.body_mass_max_kg):
        return _fail(Gait.UNKNOWN, cadence_spm, None, "body_mass_implausible",
                     f"body mass {_g(body_mass_kg)} kg implausible "
                     f"({_g(b.body_mass_min_kg)}–{_g(b.body_mass_max_kg)} kg)")  # fmt: skip
    if not _in(bws_pct, b.bws_min_pct, b.bws_max_pct):
        return _fail(Gait.UNKNOWN, cadence_spm, None, "bws_implausible",
                     f"body-weight support {_g(bws_pct)} % implausible "
                     f"({_g(b.bws_min_pct)}–{_g(b.bws_max_pct)} %)")  # fmt: skip
    if not _in(grade_pct, b.grade_min_pct, b.grade_max_pct):
        return _fail(Gait.UNKNOWN, cadence_spm, None, "grade_implausible",
                     f"grade {_g(grade_pct)} % implausible "
                     f"({_g(b.grade_min_pct)} to {_g(b.grade_max_pct)} %)")  # fmt: skip
    v, f = speed_mps, cadence_spm
    step = 60.0 * v / f if f > 0 and math.isfinite(v) and math.isfinite(f) else None

    if _running(b, v, f, step):
        check = SampleCheck(Gait.RUNNING, f, step)
    elif _walking(b, v, f, step):
        assert step is not None
        return SampleCheck(
            Gait.WALKING, f, step, False, "walking",
            f"walking ({_g(f)} spm at {_g(v)} m/s, {_g(step)} m steps): "
            "not estimated with the running model",
        )  # fmt: skip
    elif (
        b.fix_half_cadence
        and step is not None
        and 2.0 * f <= b.fix_max_cadence_spm
        and _running(b, v, 2.0 * f, step / 2.0)
    ):
        check = SampleCheck(Gait.RUNNING, 2.0 * f, step / 2.0, True)
    else:
        return _why_not(v, f, step, b)
    c = ground_contact_ms
    if c is not None:
        step_ms = 60000.0 / check.cadence_spm
        if not _in(c, b.contact_min_ms, b.contact_max_ms):
            return _fail(Gait.RUNNING, check.cadence_spm, check.step_length_m,
                         "ground_contact_implausible",
                         f"ground contact {_g(c)} ms implausible "
                         f"({_g(b.contact_min_ms)}–{_g(b.contact_max_ms)} ms)")  # fmt: skip
        if c >= step_ms:
            return _fail(Gait.RUNNING, check.cadence_spm, check.step_length_m,
                         "ground_contact_implausible",
                         f"ground contact {_g(c)} ms ≥ step time {step_ms:.0f} ms "
                         "(no flight phase)")  # fmt: skip
    return check


def _why_not(v: float, f: float, step: float | None, b: PlausibilityBounds) -> SampleCheck:
    """The reason a sample is neither running nor walking (nor a fixable half cadence)."""
    lo, hi = b.walk_cadence_min_spm, b.run_cadence_max_spm
    if not _in(f, min(lo, b.run_cadence_min_spm), max(hi, b.walk_cadence_max_spm)):
        side = f"< {_g(lo)}" if f < lo else f"> {_g(hi)}"
        return _fail(Gait.UNKNOWN, f, step, "cadence_implausible",
                     f"cadence {_g(f)} spm implausible ({side} steps/min)")  # fmt: skip
    if not v >= b.walk_speed_min_mps:
        return _fail(Gait.UNKNOWN, f, step, "not_moving",
                     f"speed {_g(v)} m/s: not moving "
                     f"(< {_g(b.walk_speed_min_mps)} m/s)")  # fmt: skip
    running = f >= b.run_cadence_min_spm
    s_lo = b.run_step_min_m if running else b.walk_step_min_m
    s_hi = b.run_step_max_m if running else b.walk_step_max_m
    if step is not None and not _in(step, s_lo, s_hi):
        side = f"< {_g(s_lo)}" if step < s_lo else f"> {_g(s_hi)}"
        return _fail(Gait.UNKNOWN, f, step, "step_length_implausible",
                     f"step length {_g(step)} m implausible ({side} m)")  # fmt: skip
    v_hi = b.run_speed_max_mps if running else b.walk_speed_max_mps
    v_lo = b.run_speed_min_mps if running else b.walk_speed_min_mps
    side = f"< {_g(v_lo)}" if not v >= v_lo else f"> {_g(v_hi)}"
    return _fail(Gait.UNKNOWN, f, step, "speed_implausible",
                 f"speed {_g(v)} m/s implausible ({side} m/s)")  # fmt: skip
