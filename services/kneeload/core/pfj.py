"""Estimated patellofemoral joint (PFJ) stress from wearable and treadmill data.

Everything here is a MODEL ESTIMATE, not a measurement (docs/science.md §1.3). The
chain, one small function per step:

1. :func:`effective_body_weight_n`   BW_eff = m·g·(1 − BWS/100)
2. :func:`step_time_s`               t_s = 60 / cadence
3. :func:`estimate_ground_contact_ms` t_c from speed when the device sends none
4. :func:`peak_vgrf_n`               Morin sine-wave model, F_max = BW_eff·(π/2)·(t_f/t_c + 1)
5. :func:`grf_factor`, :func:`step_rate_factor`, :func:`speed_factor`, :func:`grade_factor`
6. :func:`peak_pfj_stress_mpa`       σ = σ₀ × GRF factor × step-rate factor × speed × grade
7. :func:`pfj_impulse_per_step_mpa_s` half-sine impulse, peak·(2/π)·t_c
8. :func:`steps_per_km`, :func:`pfj_load_per_km`, :func:`pfj_sample_load_mpa_s`

:func:`estimate_pfj_sample` runs the whole chain for one telemetry sample (the
stream worker's hot path, plain ``math``, a few microseconds);
:func:`estimate_pfj` wraps it with the assumptions spelled out (CLI, API). A session's
totals are summed by :mod:`kneeload.core.session` (one home, the stream worker's).

The laboratory chain of docs/science.md §1.1 (knee moment and angle → stress) is here too
(:func:`quadriceps_lever_arm_m`, :func:`knee_angle_constant`, :func:`pfj_contact_area_mm2`,
:func:`pfj_stress_from_knee_moment_mpa`): it is where the default σ₀ ≈ 10 MPa comes from
and what a lab calibration of :class:`PfjCalibration` would use.

Avoiding double counts
----------------------
* Cadence: F_max falls as cadence rises (longer flight share per step), and the
  step-rate elasticity β already carries the whole published cadence effect. The
  GRF factor therefore evaluates Morin's F_max at the *reference* step time, which
  reduces it to (BW_eff/BW)·(t_c,ref/t_c); cadence acts only through β.
* Speed: the published speed effect (peak ∝ v^0.59) includes the shortening of
  contact with speed. Contact acts through the GRF factor, so the speed factor
  carries only the residual exponent 0.59 − ε, where ε is the exponent of the
  contact-time estimate. With the contact estimated, the total is v^0.59 again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from kneeload.core.plausibility import (
    DEFAULT_BOUNDS,
    PlausibilityBounds,
    SampleCheck,
    check_sample,
)

__all__ = [
    "G_MPS2",
    "ImplausibleInputError",
    "PfjCalibration",
    "PfjEstimate",
    "PfjParams",
    "PfjSample",
    "assess_pfj_sample",
    "effective_body_weight_n",
    "estimate_ground_contact_ms",
    "estimate_pfj",
    "estimate_pfj_sample",
    "grade_factor",
    "grf_factor",
    "knee_angle_constant",
    "peak_pfj_stress_mpa",
    "peak_vgrf_n",
    "pfj_contact_area_mm2",
    "pfj_impulse_per_step_mpa_s",
    "pfj_load_per_km",
    "pfj_sample_load_mpa_s",
    "pfj_stress_from_knee_moment_mpa",
    "quadriceps_lever_arm_m",
    "sample_interval_s",
    "speed_factor",
    "step_length_m",
    "step_rate_factor",
    "step_time_s",
    "steps_per_km",
]

#: Standard gravity, m/s².
G_MPS2 = 9.80665

_TWO_OVER_PI = 2.0 / math.pi
_HALF_PI = math.pi / 2.0


class ImplausibleInputError(ValueError):
    """An input is outside the model's valid range. ``field`` names the input, ``reason``
    is the machine-readable code of :func:`kneeload.core.plausibility.check_sample`."""

    def __init__(self, field: str, value: object, rule: str, reason: str | None = None) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        self.reason = reason or f"{field}_implausible"
        super().__init__(f"{field}={value!r}: {rule}")


@dataclass(frozen=True, slots=True)
class PfjParams:
    """Parameters of the PFJ stress estimator; every default cites its source.

    Attributes
    ----------
    ref_stress_mpa : float
        σ₀, peak PFJ stress at the reference conditions. 10 MPa: docs/science.md §1.3 step 3;
        Roos et al. 2012 (J Biomech 45:1656–1660) worked example ≈ 10 MPa; running peaks
        commonly 7–12 MPa (**unconfirmed** range).
    ref_speed_mps, ref_cadence_spm, ref_ground_contact_ms : float
        Reference conditions at which σ₀ applies: 3.4 m/s, 170 spm, 250 ms (the Morin
        example of docs/science.md §1.3 step 2; kneeload's choice of a typical recreational pace).
    step_rate_exponent : float
        β, peak ∝ (step rate / reference)^β. −1.83 (docs/science.md §1.2: fits Bonacci et al.
        2018's −16% for +10%; Lenhart 2014 ≈ −1.6, Willson 2014 ≈ −2.4).
    speed_exponent_total : float
        Total speed elasticity of peak per-step stress with typical contact: 0.59
        (docs/science.md §1.2, Sports Biomech 2023 doi:10.1080/14763141.2023.2226111,
        assuming the +36% is at 4.2 m/s).
    contact_speed_exponent : float
        δ, the speed exponent of the duty factor: DF(v) = DF_ref·(v/v_ref)^−δ, so at a fixed
        cadence contact falls as v^−δ. 0.45: with preferred cadence rising ≈ v^0.2 this gives
        contact ∝ v^−0.65 at preferred cadence, the exponent measured on treadmill
        force-plate recordings at 2.5–4.5 m/s (issue #18); **unconfirmed** (docs/science.md
        §1.4). It is also the share of the published speed effect that contact carries.
    contact_estimate_cv : float
        Relative uncertainty (1 SD) of an estimated contact time: 0.10 (kneeload's choice:
        between-runner duty factor SD is 6–9 % of its mean in the published table of
        docs/science.md §1.4, plus model error). Shown with every estimated contact and the
        peak built on it.
    contact_max_step_fraction : float
        An *estimated* contact is capped at this fraction of step time so flight time
        stays positive (0.9, kneeload's assumption).
    downhill_per_pct, uphill_per_pct, grade_factor_min : float
        Grade factor 1 + 0.02·|grade| downhill, 1 − 0.01·grade uphill, floored at 0.5.
        No published coefficient links PFJ stress to grade (docs/science.md §1.3): downhill
        raises knee load (Gottschall & Kram 2005: impact peak +54% at −9°, i.e. about
        3.4%/% grade for the GRF impact peak), uphill lowers the knee share (Shih & Ho
        2023). The coefficients are **unconfirmed** assumptions.
    bounds : PlausibilityBounds
        Input plausibility bounds (:mod:`kneeload.core.plausibility`); outside them no
        estimate is made (:class:`ImplausibleInputError` from :func:`estimate_pfj_sample`,
        a flagged sample from :func:`assess_pfj_sample`).
    """

    ref_stress_mpa: float = 10.0
    ref_speed_mps: float = 3.4
    ref_cadence_spm: float = 170.0
    ref_ground_contact_ms: float = 250.0
    step_rate_exponent: float = -1.83
    speed_exponent_total: float = 0.59
    contact_speed_exponent: float = 0.45
    contact_estimate_cv: float = 0.10
    contact_max_step_fraction: float = 0.9
    downhill_per_pct: float = 0.02
    uphill_per_pct: float = 0.01
    grade_factor_min: float = 0.5
    bounds: PlausibilityBounds = DEFAULT_BOUNDS

    @property
    def speed_exponent_residual(self) -> float:
        """Speed exponent left once contact carries its share: 0.59 − 0.45 = 0.14."""
        return self.speed_exponent_total - self.contact_speed_exponent

    def calibrated(self, calibration: PfjCalibration | None) -> PfjParams:
        """These parameters with a per-athlete calibration applied (None: unchanged)."""
        if calibration is None:
            return self
        return replace(
            self,
            ref_stress_mpa=calibration.ref_stress_mpa,
            ref_speed_mps=calibration.ref_speed_mps,
            ref_cadence_spm=calibration.ref_cadence_spm,
            ref_ground_contact_ms=(
                calibration.ref_ground_contact_ms
                if calibration.ref_ground_contact_ms is not None
                else self.ref_ground_contact_ms
            ),
        )


@dataclass(frozen=True, slots=True)
class PfjCalibration:
    """Per-athlete calibration: a reference stress at a reference speed and step rate.

    Typically from a gait-lab session (docs/science.md §1.1 chain, see
    :func:`pfj_stress_from_knee_moment_mpa`) or a clinician's judgement.
    """

    ref_stress_mpa: float
    ref_speed_mps: float
    ref_cadence_spm: float
    ref_ground_contact_ms: float | None = None
    source: str = "per-athlete calibration"

    def __post_init__(self) -> None:
        for name in ("ref_stress_mpa", "ref_speed_mps", "ref_cadence_spm"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ImplausibleInputError(name, v, "must be a finite number > 0")
        c = self.ref_ground_contact_ms
        if c is not None and not (math.isfinite(c) and c > 0):
            raise ImplausibleInputError("ref_ground_contact_ms", c, "must be a finite number > 0")


DEFAULT_PFJ_PARAMS = PfjParams()


# --------------------------------------------------------------------------- chain


def effective_body_weight_n(body_mass_kg: float, bws_pct: float = 0.0) -> float:
    """Effective body weight under body-weight support.

    ``BW_eff = m · g · (1 − bws_pct / 100)``

    Parameters
    ----------
    body_mass_kg : float
        Body mass, 20–300 kg.
    bws_pct : float
        Body-weight support, 0 ≤ bws < 100 %. 0 off a BWS unit. The *displayed*
        support of a unit can be off (de Heer et al. 2021: 48–71% measured at a
        displayed 60%), so pass the unit's calibrated value where known.

    Returns
    -------
    float
        Newtons.

    References
    ----------
    docs/science.md §1.3 step 1; Farina et al. 2017, Sports Med 47:261–275.
    """
    return body_mass_kg * G_MPS2 * (1.0 - bws_pct / 100.0)


def step_time_s(cadence_spm: float) -> float:
    """Step time ``t_s = 60 / cadence_spm`` in seconds (cadence in steps/min, not strides).

    docs/science.md §1.3 step 2. Valid for cadence > 0 (running: ~140–220 spm).
    """
    return 60.0 / cadence_spm


def step_length_m(speed_mps: float, cadence_spm: float) -> float:
    """Step length ``L = v · t_s = 60·v / cadence`` in metres (docs/science.md §1.3 step 4)."""
    return speed_mps * 60.0 / cadence_spm


def steps_per_km(speed_mps: float, cadence_spm: float) -> float:
    """Steps per kilometre ``1000 / L = 1000·cadence / (60·v)`` (docs/science.md §1.3 step 4).

    Valid for speed > 0.
    """
    return 1000.0 * cadence_spm / (60.0 * speed_mps)


def estimate_ground_contact_ms(
    speed_mps: float, cadence_spm: float | None = None, params: PfjParams = DEFAULT_PFJ_PARAMS
) -> float:
    """Ground contact time from speed AND cadence (duty-factor model) when none is measured.

    ``DF(v) = DF_ref·(v/v_ref)^−δ`` (duty factor: contact time / stride time) and
    ``t_c = DF(v)·stride time = DF(v)·120 000 / cadence`` ms, i.e.
    ``t_c = t_c,ref·(v/v_ref)^−δ·(cadence_ref/cadence)``, capped at
    ``contact_max_step_fraction · t_s``. Without a cadence the reference cadence is used.

    Assumptions: the duty factor falls with speed and, at a given speed, is a running style
    largely independent of step frequency (van Oeveren et al. 2021; Patoz et al. 2022:
    low DF–SF correlation), so contact scales with the stride time the cadence gives.
    DF_ref = 250 ms × 170 spm / 120 000 = 0.354 at 3.4 m/s; δ = 0.45 (**unconfirmed**).
    Accuracy against published data and the uncertainty (±10 %, 1 SD) are stated in
    docs/science.md §1.4. Valid for running (see :mod:`kneeload.core.plausibility`).
    Always report that the contact was estimated.
    """
    f = params.ref_cadence_spm if cadence_spm is None else cadence_spm
    t_c = _contact_at_ref_cadence_ms(speed_mps, params) * params.ref_cadence_spm / f
    return min(t_c, params.contact_max_step_fraction * 60000.0 / f)


def _contact_at_ref_cadence_ms(speed_mps: float, params: PfjParams) -> float:
    """``t_c,ref·(v/v_ref)^−δ``: the duty-factor contact at the reference cadence.

    The stress chain evaluates Morin's F_max at the reference step time (see
    :func:`grf_factor`), so with an estimated contact it uses this value: cadence then acts
    only through β, as with a measured contact."""
    return params.ref_ground_contact_ms * (speed_mps / params.ref_speed_mps) ** (
        -params.contact_speed_exponent
    )


def peak_vgrf_n(
    effective_body_weight_n: float, cadence_spm: float, ground_contact_ms: float
) -> float:
    """Peak vertical ground reaction force, sine-wave model of Morin et al. 2005.

    ``t_s = 60/cadence``; ``t_f = t_s − t_c``; ``F_max = BW_eff · (π/2) · (t_f/t_c + 1)``
    (which equals ``BW_eff·(π/2)·t_s/t_c``).

    Example: 170 spm, 250 ms → 2.22 BW. Plausible active peak ≈ 1.2–2.5 BW.
    Valid for 0 < t_c < t_s (a flight phase exists, i.e. running).

    References
    ----------
    Morin et al. 2005, J Appl Biomech 21:167–180; docs/science.md §1.3 step 2.
    """
    t_c = ground_contact_ms / 1000.0
    t_f = 60.0 / cadence_spm - t_c
    return effective_body_weight_n * _HALF_PI * (t_f / t_c + 1.0)


def grf_factor(
    bws_pct: float, ground_contact_ms: float, params: PfjParams = DEFAULT_PFJ_PARAMS
) -> float:
    """GRF factor: Morin's F_max at the *reference* step time relative to the reference F_max.

    ``GRF factor = (BW_eff / BW) · (t_c,ref / t_c) = (1 − bws/100) · t_c,ref / t_c``

    Evaluating F_max at the reference step time keeps cadence out of this factor, so the
    step-rate elasticity β is not counted twice (docs/science.md §1.3 step 3). Body mass
    cancels: σ₀ is the athlete's own stress at full body weight.
    """
    return (1.0 - bws_pct / 100.0) * params.ref_ground_contact_ms / ground_contact_ms


def step_rate_factor(cadence_spm: float, params: PfjParams = DEFAULT_PFJ_PARAMS) -> float:
    """``(cadence / cadence_ref)^β``, β = −1.83 by default.

    +10% step rate → −16%; +5% → −8.5% (docs/science.md §1.2; Lenhart et al. 2014 MSSE 46:557;
    Bonacci et al. 2018 JSAMS 21:574; Willson et al. 2014 Clin Biomech 29:243).
    """
    return (cadence_spm / params.ref_cadence_spm) ** params.step_rate_exponent


def speed_factor(speed_mps: float, params: PfjParams = DEFAULT_PFJ_PARAMS) -> float:
    """``(v / v_ref)^(0.59 − ε)``: the speed effect not already carried by contact time.

    With contact estimated from speed the total is v^0.59 (peak per step +9% to +36%
    from 2.5 to 3.1–4.2 m/s; Sports Biomech 2023, doi:10.1080/14763141.2023.2226111;
    docs/science.md §1.2).
    """
    return (speed_mps / params.ref_speed_mps) ** params.speed_exponent_residual


def grade_factor(grade_pct: float, params: PfjParams = DEFAULT_PFJ_PARAMS) -> float:
    """Grade factor (**unconfirmed** assumption, configurable).

    ``1 + k_down·(−grade)`` downhill, ``1 − k_up·grade`` uphill, floored at
    ``grade_factor_min``; defaults k_down = 0.02/%, k_up = 0.01/%, floor 0.5.
    Downhill raises knee load (Gottschall & Kram 2005, J Biomech 38:445), uphill lowers
    the knee share (Shih & Ho 2023, J Sports Sci Med 22:111); no published coefficient
    links PFJ stress to grade (docs/science.md §1.3). Valid for |grade| ≤ 40 %.
    """
    if grade_pct < 0.0:
        return 1.0 - params.downhill_per_pct * grade_pct
    return max(params.grade_factor_min, 1.0 - params.uphill_per_pct * grade_pct)


def peak_pfj_stress_mpa(
    grf_factor: float,
    step_rate_factor: float,
    speed_factor: float,
    grade_factor: float,
    params: PfjParams = DEFAULT_PFJ_PARAMS,
) -> float:
    """Estimated peak PFJ stress per step, ``σ = σ₀ · GRF · SR · V · G`` (MPa).

    docs/science.md §1.3 step 3. An estimate, not a measurement.
    """
    return params.ref_stress_mpa * grf_factor * step_rate_factor * speed_factor * grade_factor


def pfj_impulse_per_step_mpa_s(peak_pfj_stress_mpa: float, ground_contact_ms: float) -> float:
    """Stress–time impulse of one step, half-sine: ``J = σ_peak · (2/π) · t_c`` (MPa·s).

    docs/science.md §1.3 step 4: peak × steps does not reproduce the published per-distance
    percentages; the impulse form does.
    """
    return peak_pfj_stress_mpa * _TWO_OVER_PI * ground_contact_ms / 1000.0


def pfj_load_per_km(impulse_per_step_mpa_s: float, speed_mps: float, cadence_spm: float) -> float:
    """Cumulative PFJ load per km, ``J · 1000/L`` (MPa·s per km). docs/science.md §1.3 step 4."""
    return impulse_per_step_mpa_s * steps_per_km(speed_mps, cadence_spm)


def pfj_sample_load_mpa_s(
    impulse_per_step_mpa_s: float, cadence_spm: float, duration_s: float
) -> float:
    """PFJ load of a sample lasting ``duration_s``: ``J · cadence/60 · Δt`` (MPa·s).

    Recording is 1 Hz or irregular (docs/science.md §6): pass the real interval.
    """
    return impulse_per_step_mpa_s * cadence_spm / 60.0 * duration_s


#: Interval credited to a session's first sample (s): the nominal 1 Hz watch rate.
FIRST_SAMPLE_INTERVAL_S = 1.0
#: Longest interval one sample may stand for (s): a longer gap is a pause, not running.
MAX_SAMPLE_INTERVAL_S = 5.0


def sample_interval_s(
    t_ms: int,
    prev_t_ms: int | None,
    first_interval_s: float = FIRST_SAMPLE_INTERVAL_S,
    max_interval_s: float = MAX_SAMPLE_INTERVAL_S,
) -> float:
    """Duration ``Δt`` a sample stands for, in seconds, for :func:`pfj_sample_load_mpa_s`.

    ``Δt = min((t − t_prev)/1000, max_interval_s)``; the first sample of a session
    (``prev_t_ms`` None) gets ``first_interval_s``.

    Inputs: ``t_ms`` and ``prev_t_ms`` are event times in epoch milliseconds, samples
    in time order with one sample per time (``t_ms > prev_t_ms``). Assumptions: the
    watch records at ~1 Hz or irregularly (docs/science.md §6), so each sample is credited
    the time since the previous one; a gap longer than ``max_interval_s`` is a pause
    (stopped at a crossing, watch auto-pause) and credits only ``max_interval_s``, so a
    pause adds no phantom running load. Session duration and distance use the same Δt,
    so load, duration and distance stay consistent.
    """
    if prev_t_ms is None:
        return first_interval_s
    return min((t_ms - prev_t_ms) / 1000.0, max_interval_s)


# ------------------------------------------------------------------ laboratory chain


def quadriceps_lever_arm_m(knee_flexion_deg: float) -> float:
    """Quadriceps lever arm ``LA(θ) = 8.0e-8·θ³ − 1.3e-5·θ² + 2.8e-4·θ + 0.046`` (m).

    Fit to van Eijden et al. 1986 (review: Nunes et al. 2018, Gait Posture 62:188);
    docs/science.md §1.1. Valid 0–90°.
    """
    t = knee_flexion_deg
    return 8.0e-8 * t**3 - 1.3e-5 * t**2 + 2.8e-4 * t + 0.046


def knee_angle_constant(knee_flexion_deg: float) -> float:
    """``K(θ) = (0.462 + 0.00147θ − 3.84e-5θ²)/(1 − 0.0162θ + 1.55e-4θ² − 6.98e-7θ³)``.

    K(0°) = 0.462, K(45°) = 0.864, K(90°) = 0.981 (docs/science.md §1.1).
    """
    t = knee_flexion_deg
    return (0.462 + 0.00147 * t - 3.84e-5 * t**2) / (
        1.0 - 0.0162 * t + 1.55e-4 * t**2 - 6.98e-7 * t**3
    )


def pfj_contact_area_mm2(knee_flexion_deg: float) -> float:
    """PFJ contact area ``CA = 0.0781θ² + 0.6763θ + 151.75`` mm² (**unconfirmed** fit).

    Published curves disagree by ~1.6× at 45° (docs/science.md §1.1): pass your own area to
    :func:`pfj_stress_from_knee_moment_mpa` when you have one.
    """
    t = knee_flexion_deg
    return 0.0781 * t**2 + 0.6763 * t + 151.75


def pfj_stress_from_knee_moment_mpa(
    knee_extensor_moment_nm: float, knee_flexion_deg: float, contact_area_mm2: float | None = None
) -> float:
    """Laboratory PFJ stress: ``K(θ) · max(M/LA(θ), 0) / CA(θ)`` (MPa).

    Roos et al. 2012 example: 157 N·m at 44° → ≈ 3,370 N, ≈ 10 MPa (docs/science.md §1.1).
    """
    f_q = max(knee_extensor_moment_nm / quadriceps_lever_arm_m(knee_flexion_deg), 0.0)
    area = (
        contact_area_mm2 if contact_area_mm2 is not None else pfj_contact_area_mm2(knee_flexion_deg)
    )
    return knee_angle_constant(knee_flexion_deg) * f_q / area


# ----------------------------------------------------------------- one sample (hot)


class PfjSample(NamedTuple):
    """Result of :func:`estimate_pfj_sample` (all estimates).

    ``ground_contact_ms`` is the measured contact, or the duty-factor estimate
    (``contact_estimated``) with its 1-SD uncertainty ``contact_uncertainty_ms`` (0 when
    measured). ``cadence_spm`` is the cadence used: doubled when the input was a
    strides/min value (``cadence_corrected``). ``step_length_m`` is derived from speed and
    cadence (always an estimate). ``peak_uncertainty_mpa`` is the part of the peak's
    uncertainty that an estimated contact adds (0 when measured).
    """

    peak_pfj_stress_mpa: float
    pfj_impulse_per_step_mpa_s: float
    pfj_load_per_km: float
    effective_body_weight_n: float
    peak_vgrf_bw: float
    ground_contact_ms: float
    contact_estimated: bool
    contact_uncertainty_ms: float = 0.0
    peak_uncertainty_mpa: float = 0.0
    cadence_spm: float = 0.0
    cadence_corrected: bool = False
    step_length_m: float = 0.0


#: the input a reason of :func:`check_sample` is about (the CLI names that option)
_REASON_FIELD = {
    "body_mass_implausible": "body_mass_kg",
    "bws_implausible": "bws_pct",
    "grade_implausible": "grade_pct",
    "cadence_implausible": "cadence_spm",
    "not_moving": "speed_mps",
    "speed_implausible": "speed_mps",
    "step_length_implausible": "step_length_m",
    "ground_contact_implausible": "ground_contact_ms",
    "walking": "gait",
}


def _chain(
    check: SampleCheck,
    speed_mps: float,
    body_mass_kg: float,
    ground_contact_ms: float | None,
    grade_pct: float,
    bws_pct: float,
    p: PfjParams,
) -> PfjSample:
    """The estimate for a sample :func:`check_sample` accepted (cadence as corrected)."""
    f = check.cadence_spm
    estimated = ground_contact_ms is None
    if ground_contact_ms is None:
        t_c_ms = estimate_ground_contact_ms(speed_mps, f, p)
        t_chain = _contact_at_ref_cadence_ms(speed_mps, p)  # F_max at the reference step time
    else:
        t_c_ms = t_chain = ground_contact_ms
    bw_eff = effective_body_weight_n(body_mass_kg, bws_pct)
    f_max = peak_vgrf_n(bw_eff, f, t_c_ms)
    peak = peak_pfj_stress_mpa(
        grf_factor(bws_pct, t_chain, p),
        step_rate_factor(f, p),
        speed_factor(speed_mps, p),
        grade_factor(grade_pct, p),
        p,
    )
    impulse = pfj_impulse_per_step_mpa_s(peak, t_chain)
    cv = p.contact_estimate_cv if estimated else 0.0
    return PfjSample(
        peak,
        impulse,
        pfj_load_per_km(impulse, speed_mps, f),
        bw_eff,
        f_max / (body_mass_kg * G_MPS2),
        t_c_ms,
        estimated,
        cv * t_c_ms,
        cv * peak,  # peak ∝ 1/t_c through the GRF factor: same relative uncertainty
        f,
        check.cadence_corrected,
        check.step_length_m or 0.0,
    )


def assess_pfj_sample(
    speed_mps: float,
    cadence_spm: float,
    body_mass_kg: float,
    ground_contact_ms: float | None = None,
    grade_pct: float = 0.0,
    bws_pct: float = 0.0,
    params: PfjParams = DEFAULT_PFJ_PARAMS,
) -> tuple[SampleCheck, PfjSample | None]:
    """Plausibility check, then the estimate: the stream worker's hot path. Never raises.

    Returns the :class:`~kneeload.core.plausibility.SampleCheck` and the estimate, or None
    when the sample gets none (walking, or an input outside its bounds: the check says
    which, in a code and in words). Inputs as for :func:`estimate_pfj_sample`.
    """
    check = check_sample(
        speed_mps, cadence_spm, body_mass_kg, ground_contact_ms, grade_pct, bws_pct, params.bounds
    )
    if check.reason is not None:
        return check, None
    return check, _chain(
        check, speed_mps, body_mass_kg, ground_contact_ms, grade_pct, bws_pct, params
    )


def estimate_pfj_sample(
    speed_mps: float,
    cadence_spm: float,
    body_mass_kg: float,
    ground_contact_ms: float | None = None,
    grade_pct: float = 0.0,
    bws_pct: float = 0.0,
    params: PfjParams = DEFAULT_PFJ_PARAMS,
) -> PfjSample:
    """Estimated PFJ stress for one running sample.

    Runs docs/science.md §1.3 end to end::

        BW_eff  = m·g·(1 − bws/100)
        t_s     = 60/cadence;  t_c = measured, else t_c,ref·(v/v_ref)^−0.45·(f_ref/f)
        F_max   = BW_eff·(π/2)·(t_s/t_c)                       (Morin 2005)
        σ_peak  = σ₀ · (1 − bws/100)·(t_c,ref/t_c*) · (f/f_ref)^−1.83 · (v/v_ref)^0.14 · G(grade)
        J_step  = σ_peak·(2/π)·t_c*
        per km  = J_step · 1000·f/(60·v)

    where t_c* is the measured contact, or with an estimated one the duty-factor contact at
    the reference cadence (so cadence acts only through β). Inputs are checked first
    (:func:`kneeload.core.plausibility.check_sample`): a strides/min cadence is doubled
    (``cadence_corrected``), anything else outside the bounds raises.

    Parameters
    ----------
    speed_mps : float
        Belt or ground speed, running: 1–7 m/s by default.
    cadence_spm : float
        Steps per minute (FIT sends strides/min: double it), running 140–240 by default.
    body_mass_kg : float
        30–250 kg by default.
    ground_contact_ms : float, optional
        Measured contact time, 100–450 ms and shorter than the step. Estimated from speed
        and cadence when None (``contact_estimated`` is then True, with its uncertainty).
    grade_pct : float
        Incline, negative downhill, ±30 % by default.
    bws_pct : float
        Body-weight support, 0–80 % by default.
    params : PfjParams
        Model parameters and bounds (apply a calibration with ``params.calibrated(cal)``).

    Returns
    -------
    PfjSample
        Finite, non-negative estimates over the valid input range. ``peak_vgrf_bw`` is
        in multiples of the runner's full body weight m·g.

    Raises
    ------
    ImplausibleInputError
        A ``ValueError`` naming the offending input (``field``), the reason code
        (``reason``, e.g. ``step_length_implausible`` or ``walking``) and the rule in words.
    """
    check, s = assess_pfj_sample(
        speed_mps, cadence_spm, body_mass_kg, ground_contact_ms, grade_pct, bws_pct, params
    )
    if s is None:
        field = _REASON_FIELD.get(check.reason or "", "input")
        value = {
            "body_mass_kg": body_mass_kg,
            "bws_pct": bws_pct,
            "grade_pct": grade_pct,
            "cadence_spm": cadence_spm,
            "speed_mps": speed_mps,
            "step_length_m": check.step_length_m,
            "ground_contact_ms": ground_contact_ms,
            "gait": check.gait.value,
        }.get(field)
        raise ImplausibleInputError(field, value, check.detail or "", check.reason)
    return s


@dataclass(frozen=True)
class PfjEstimate:
    """:func:`estimate_pfj` result: the numbers and the assumptions behind them."""

    sample: PfjSample
    inputs: dict[str, float | None]
    assumptions: tuple[str, ...]
    params: PfjParams
    calibration: PfjCalibration | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (CLI and API output)."""
        s = self.sample
        return {
            "estimate": True,
            "note": "Model estimate of patellofemoral joint stress, not a measurement.",
            "peak_pfj_stress_mpa": s.peak_pfj_stress_mpa,
            "pfj_impulse_per_step_mpa_s": s.pfj_impulse_per_step_mpa_s,
            "pfj_load_per_km": s.pfj_load_per_km,
            "pfj_load_per_km_unit": "MPa·s/km",
            "effective_body_weight_n": s.effective_body_weight_n,
            "peak_vgrf_bw": s.peak_vgrf_bw,
            "peak_pfj_stress_uncertainty_mpa": s.peak_uncertainty_mpa,
            "ground_contact_ms": s.ground_contact_ms,
            "ground_contact_estimated": s.contact_estimated,
            "ground_contact_uncertainty_ms": s.contact_uncertainty_ms,
            "cadence_spm": s.cadence_spm,
            "cadence_corrected": s.cadence_corrected,
            "step_length_m": s.step_length_m,
            "step_length_estimated": True,
            "peak_vgrf_bw_estimated": True,
            "estimated": {  # every value: estimated (True) or measured (False)
                "peak_pfj_stress_mpa": True,
                "pfj_impulse_per_step_mpa_s": True,
                "pfj_load_per_km": True,
                "peak_vgrf_bw": True,
                "step_length_m": True,
                "ground_contact_ms": s.contact_estimated,
                "cadence_spm": s.cadence_corrected,
            },
            "inputs": dict(self.inputs),
            "assumptions": list(self.assumptions),
            "parameters": {
                "ref_stress_mpa": self.params.ref_stress_mpa,
                "ref_speed_mps": self.params.ref_speed_mps,
                "ref_cadence_spm": self.params.ref_cadence_spm,
                "ref_ground_contact_ms": self.params.ref_ground_contact_ms,
                "step_rate_exponent": self.params.step_rate_exponent,
                "speed_exponent_total": self.params.speed_exponent_total,
                "contact_speed_exponent": self.params.contact_speed_exponent,
                "contact_estimate_cv": self.params.contact_estimate_cv,
                "downhill_per_pct": self.params.downhill_per_pct,
                "uphill_per_pct": self.params.uphill_per_pct,
                "calibrated": self.calibration is not None,
            },
            "source": "kneeload.core.pfj; docs/science.md §1.3–1.5",
        }


def estimate_pfj(
    speed_mps: float,
    cadence_spm: float,
    body_mass_kg: float,
    ground_contact_ms: float | None = None,
    grade_pct: float = 0.0,
    bws_pct: float = 0.0,
    params: PfjParams = DEFAULT_PFJ_PARAMS,
    calibration: PfjCalibration | None = None,
) -> PfjEstimate:
    """:func:`estimate_pfj_sample` plus the list of assumptions used (for people, not loops)."""
    p = params.calibrated(calibration)
    s = estimate_pfj_sample(
        speed_mps, cadence_spm, body_mass_kg, ground_contact_ms, grade_pct, bws_pct, p
    )
    a = [
        "Estimate from a sine-wave GRF model (Morin 2005) and published effect sizes; "
        "not a measurement of joint stress.",
        f"Reference stress σ₀ = {p.ref_stress_mpa:g} MPa at {p.ref_speed_mps:g} m/s, "
        f"{p.ref_cadence_spm:g} spm, {p.ref_ground_contact_ms:g} ms contact"
        + (f" ({calibration.source})" if calibration else " (population default, science §1.3)"),
        f"Step-rate elasticity β = {p.step_rate_exponent:g} (docs/science.md §1.2); cadence is "
        "applied only through β (GRF factor at reference step time) so it is not counted twice.",
        f"Speed: peak ∝ v^{p.speed_exponent_total:g} in total; v^{p.speed_exponent_residual:.2f} "
        "beyond what contact time carries.",
        "Impulse per step uses a half-sine stress curve: peak·(2/π)·contact time.",
    ]
    if s.contact_estimated:
        a.append(
            f"Ground contact time NOT measured: estimated from speed and cadence as "
            f"{s.ground_contact_ms:.0f} ± {s.contact_uncertainty_ms:.0f} ms (1 SD; duty factor "
            f"falling as speed^-{p.contact_speed_exponent:g}, unconfirmed); the peak carries "
            f"± {s.peak_uncertainty_mpa:.1f} MPa from it."
        )
    if s.cadence_corrected:
        a.append(
            f"Cadence {cadence_spm:g}/min is a strides/min value for this speed (as steps/min "
            f"the steps would be {2 * s.step_length_m:.2f} m): doubled to {s.cadence_spm:g} "
            "steps/min."
        )
    if grade_pct != 0.0:
        a.append(
            f"Grade factor {grade_factor(grade_pct, p):.3f} from an unconfirmed linear assumption "
            f"(+{p.downhill_per_pct:g}/% downhill, −{p.uphill_per_pct:g}/% uphill)."
        )
    if bws_pct > 0.0:
        a.append(
            f"Body-weight support {bws_pct:g}% taken as delivered; displayed support can be off "
            "(de Heer 2021), use the unit's calibration."
        )
    inputs: dict[str, float | None] = {
        "speed_mps": speed_mps,
        "cadence_spm": cadence_spm,
        "body_mass_kg": body_mass_kg,
        "ground_contact_ms": ground_contact_ms,
        "grade_pct": grade_pct,
        "bws_pct": bws_pct,
    }
    return PfjEstimate(s, inputs, tuple(a), p, calibration)
