"""Fleet figures for LEVER units: calibration drift of the body-weight support.

A LEVER unit reports the support it was commanded (``bws_pct``, the setpoint) and, when it
has a load cell, the support it measures (``measured_support_pct``). The displayed support
of a BWS device can be off: at a displayed 60 % the measured support ranged 48–71 % with
frame height (de Heer et al. 2021, J Strength Cond Res 35(10):2910–2914; docs/science.md
§7). kneeload therefore keeps the PFJ estimate on the measured support and watches each
unit's error, one small function per step:

1. :func:`is_running`            the belt runs with an athlete on it (only then does the
                                 error mean anything: an empty unit "measures" nothing)
2. :func:`support_bias_pp`       e = measured − commanded, in percentage points (pp)
3. :func:`calibration_summary`   per unit and day: n, bias = mean(e), MAE = mean(|e|)
4. :func:`drift_trend_pp_per_day` least-squares slope of the daily bias over the days
5. :func:`advance_drift`         running time with |e| above the threshold (an episode);
                                 :func:`kneeload.core.alerts.check_unit_calibration_drift`
                                 raises ``unit_calibration_drift`` from it

Every threshold is in :class:`FleetThresholds` with its source (all of them are
**kneeload's own choices**: no published tolerance for BWS treadmills was found).
Samples are weighted equally (units report at a fixed period); running time is credited
between consecutive running samples, gaps capped at ``sample_gap_cap_s``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "DEFAULT_FLEET_THRESHOLDS",
    "CalibrationSummary",
    "DriftEpisode",
    "FleetThresholds",
    "SupportSample",
    "advance_drift",
    "calibration_summary",
    "drift_trend_pp_per_day",
    "is_running",
    "support_bias_pp",
]


@dataclass(frozen=True, slots=True)
class FleetThresholds:
    """Fleet thresholds, each a configurable default with its source.

    Attributes
    ----------
    running_min_speed_mps : float
        Belt speed from which the belt counts as running: 0.5 m/s (1.8 km/h, below any
        walking pace; **kneeload's choice**). Below it the support is not loaded.
    drift_bias_pp : float
        |bias| above which a unit counts as drifting: 3 pp (**kneeload's choice**: a
        tenth of the 10–30 pp that clinics prescribe in steps of 5–10 pp, and well inside
        the −12/+11 pp de Heer et al. 2021 saw across frame heights).
    drift_critical_pp : float
        |bias| from which the alert is critical: 6 pp (**kneeload's choice**: a whole
        prescription step of 5 pp off, plus margin).
    drift_running_s : float
        Running time |bias| must stay above ``drift_bias_pp`` before the alert: 30 min
        (**kneeload's choice**: about one session, so one odd athlete or a bump on the
        frame does not alert).
    sample_gap_cap_s : float
        Longest gap credited as running time between two running samples: 60 s (as the
        unit's minutes in use; **kneeload's choice**).
    trend_days : int
        Days in the drift trend's least-squares window: 14 (**kneeload's choice**).
    """

    running_min_speed_mps: float = 0.5
    drift_bias_pp: float = 3.0
    drift_critical_pp: float = 6.0
    drift_running_s: float = 1800.0
    sample_gap_cap_s: float = 60.0
    trend_days: int = 14

    def __post_init__(self) -> None:
        if not (self.running_min_speed_mps > 0.0):
            raise ValueError(f"running_min_speed_mps={self.running_min_speed_mps}: must be > 0")
        if not (0.0 < self.drift_bias_pp <= self.drift_critical_pp):
            raise ValueError("need 0 < drift_bias_pp ≤ drift_critical_pp")
        if not (self.drift_running_s >= 0.0 and self.sample_gap_cap_s > 0.0):
            raise ValueError("drift_running_s must be ≥ 0 and sample_gap_cap_s > 0")
        if self.trend_days < 2:
            raise ValueError(f"trend_days={self.trend_days}: must be ≥ 2")


DEFAULT_FLEET_THRESHOLDS = FleetThresholds()


class SupportSample(NamedTuple):
    """One LEVER telemetry record, as far as calibration is concerned."""

    belt_speed_mps: float | None
    athlete_id: str | None
    bws_pct: float | None
    measured_support_pct: float | None


def is_running(
    belt_speed_mps: float | None,
    athlete_id: str | None,
    min_speed_mps: float = DEFAULT_FLEET_THRESHOLDS.running_min_speed_mps,
) -> bool:
    """True when the belt runs (speed ≥ ``min_speed_mps``) with an athlete on the unit.

    A missing speed or athlete is not running: the unit's support error is only
    meaningful while someone is held by it.
    """
    return athlete_id is not None and belt_speed_mps is not None and belt_speed_mps >= min_speed_mps


def support_bias_pp(bws_pct: float, measured_support_pct: float) -> float:
    """Support error e = measured − commanded, in percentage points of body weight.

    Positive: the unit holds more weight than prescribed (the athlete is loaded less
    than the clinician believes); negative: less (loaded more).
    """
    return measured_support_pct - bws_pct


class CalibrationSummary(NamedTuple):
    """Calibration of one unit over a set of samples (typically one day)."""

    samples: int
    bias_pp: float | None
    mae_pp: float | None
    max_abs_error_pp: float | None


def calibration_summary(
    samples: Iterable[SupportSample],
    t: FleetThresholds = DEFAULT_FLEET_THRESHOLDS,
) -> CalibrationSummary:
    """Bias and mean absolute error of the running samples.

    bias = (1/n)·Σ eᵢ, MAE = (1/n)·Σ |eᵢ| over the samples that are running
    (:func:`is_running`) and carry both the commanded and the measured support; the
    others are left out. n = 0 gives None for every figure (no estimate).
    """
    n = 0
    s = 0.0
    sa = 0.0
    mx = 0.0
    for x in samples:
        if x.bws_pct is None or x.measured_support_pct is None:
            continue
        if not is_running(x.belt_speed_mps, x.athlete_id, t.running_min_speed_mps):
            continue
        e = support_bias_pp(x.bws_pct, x.measured_support_pct)
        n += 1
        s += e
        sa += abs(e)
        mx = max(mx, abs(e))
    if n == 0:
        return CalibrationSummary(0, None, None, None)
    return CalibrationSummary(n, s / n, sa / n, mx)


def drift_trend_pp_per_day(days: Sequence[float], bias_pp: Sequence[float | None]) -> float | None:
    """Ordinary least-squares slope of daily bias against day number, pp per day.

    slope = Σ (dᵢ − d̄)(bᵢ − b̄) / Σ (dᵢ − d̄)² over the days with a bias (None is left
    out). Fewer than two such days, or all on the same day, give None. The same
    estimator as PostgreSQL's ``regr_slope`` (the fleet views use it).
    """
    pts = [(float(d), float(b)) for d, b in zip(days, bias_pp, strict=True) if b is not None]
    if len(pts) < 2:
        return None
    md = math.fsum(d for d, _ in pts) / len(pts)
    mb = math.fsum(b for _, b in pts) / len(pts)
    sxx = math.fsum((d - md) ** 2 for d, _ in pts)
    if sxx == 0.0:
        return None
    return math.fsum((d - md) * (b - mb) for d, b in pts) / sxx


@dataclass(frozen=True, slots=True)
class DriftEpisode:
    """Running time with |bias| above the threshold, since the last in-tolerance sample.

    Attributes
    ----------
    since_ms : int or None
        Event time (ms) of the first out-of-tolerance sample of the episode; None while
        the unit is within tolerance.
    above_s : float
        Running seconds credited to the episode.
    bias_sum_pp_s : float
        Σ e·Δt over the credited time (mean bias of the episode = this / above_s).
    last_ms : int or None
        Event time of the episode's last running sample (None after a pause: the next
        sample starts crediting afresh, so idle time is never counted).
    alerted : str
        Severity already alerted for this episode ("" when none).
    """

    since_ms: int | None = None
    above_s: float = 0.0
    bias_sum_pp_s: float = 0.0
    last_ms: int | None = None
    alerted: str = ""

    @property
    def mean_bias_pp(self) -> float | None:
        """Time-weighted mean bias of the episode (None before any credited time)."""
        return self.bias_sum_pp_s / self.above_s if self.above_s > 0.0 else None


def advance_drift(
    ep: DriftEpisode,
    time_ms: int,
    sample: SupportSample,
    t: FleetThresholds = DEFAULT_FLEET_THRESHOLDS,
) -> DriftEpisode:
    """The episode after one telemetry sample (pure; returns a new value).

    * not running, or no measured support: the episode pauses (time is not credited,
      the episode is kept — a drifting unit between two sessions is still drifting);
    * running with |e| ≤ ``drift_bias_pp``: the episode ends (back within tolerance);
    * running with |e| > ``drift_bias_pp``: the time since the previous running sample,
      capped at ``sample_gap_cap_s``, is credited (the first sample credits nothing).

    Samples earlier than the episode's last one are ignored (late data never rewinds it).
    """
    if sample.bws_pct is None or sample.measured_support_pct is None:
        return ep
    if not is_running(sample.belt_speed_mps, sample.athlete_id, t.running_min_speed_mps):
        return DriftEpisode(ep.since_ms, ep.above_s, ep.bias_sum_pp_s, None, ep.alerted)
    if ep.last_ms is not None and time_ms < ep.last_ms:
        return ep
    e = support_bias_pp(sample.bws_pct, sample.measured_support_pct)
    if abs(e) <= t.drift_bias_pp:
        return DriftEpisode()
    if ep.since_ms is None:
        return DriftEpisode(time_ms, 0.0, 0.0, time_ms, "")
    gap_s = 0.0 if ep.last_ms is None else min((time_ms - ep.last_ms) / 1000.0, t.sample_gap_cap_s)
    return DriftEpisode(
        ep.since_ms, ep.above_s + gap_s, ep.bias_sum_pp_s + e * gap_s, time_ms, ep.alerted
    )
