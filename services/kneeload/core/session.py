"""Session and minute aggregates of estimated PFJ load: running sums and the figures reported.

Every number a session or a minute reports comes from here, and only here (the stream worker
keeps the sums in its state; ``kneeload.core.pfj`` gives one sample's load):

1. :class:`LoadSample`         one sample's contribution: speed, cadence, support, the
                               interval Δt it stands for (``pfj.sample_interval_s``), its
                               estimated load J·f/60·Δt (``pfj.pfj_sample_load_mpa_s``)
2. :func:`add_samples`         running sums of a session (:class:`LoadSums`), in time order
3. :func:`add_to_minutes`      the same sums per UTC minute (:class:`MinuteSums`)
4. :func:`session_figures`     means per sample, load per km, coverage of the session's span
5. :func:`minute_figures`      a minute's means, duration and distance

Assumptions: samples arrive de-duplicated (one per time) and in time order, so the sums are
the same floating-point numbers whether built incrementally or recomputed in one go. A
sample without an estimate (walking, implausible input) still counts for duration, distance
and the means, with zero load (docs/science.md §6). Every load figure is a model ESTIMATE.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import NamedTuple

import msgspec

__all__ = [
    "MINUTE_MS",
    "LoadSample",
    "LoadSums",
    "MinuteFigures",
    "MinuteSums",
    "SessionFigures",
    "add_samples",
    "add_to_minutes",
    "coverage_pct",
    "mean_per_sample",
    "minute_figures",
    "minute_start_ms",
    "session_figures",
    "session_load_per_km",
]

MINUTE_MS = 60_000
#: a minute's duration and distance are capped at what one minute can hold (a first sample
#: credited its nominal interval may overlap the minute before)
MINUTE_MAX_DURATION_S = 60.0
MINUTE_MAX_DISTANCE_M = 1000.0


class LoadSample(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One sample's contribution to the aggregates (a Struct: built once per sample on the
    worker's hot path, ~10× cheaper to create than a NamedTuple).

    ``interval_s`` is Δt (:func:`kneeload.core.pfj.sample_interval_s`); ``pfj_load_mpa_s``
    is J·f/60·Δt, 0 when the sample has no estimate, and ``peak_pfj_stress_mpa`` None then.
    """

    t_ms: int
    speed_mps: float
    cadence_spm: float
    bws_pct: float
    interval_s: float
    pfj_load_mpa_s: float
    peak_pfj_stress_mpa: float | None
    unit_id: str | None = None


class LoadSums(msgspec.Struct, array_like=True, gc=False):
    """Running sums over samples (stored compactly as an array, in this field order)."""

    samples: int = 0
    duration_s: float = 0.0  # Σ Δt
    distance_m: float = 0.0  # Σ v·Δt
    speed_sum_mps: float = 0.0  # Σ v (the mean is per sample, not per second)
    cadence_sum_spm: float = 0.0
    bws_sum_pct: float = 0.0
    peak_pfj_stress_mpa: float | None = None  # max over estimated samples
    pfj_load_mpa_s: float = 0.0  # Σ J·f/60·Δt


class MinuteSums(LoadSums, array_like=True, gc=False):
    """:class:`LoadSums` of one minute, with the LEVER unit of its latest joined sample.
    The peak starts at 0 (a minute without an estimate reports 0 MPa)."""

    peak_pfj_stress_mpa: float | None = 0.0
    unit_id: str | None = None


def add_samples(sums: LoadSums, samples: Iterable[LoadSample]) -> None:
    """Add time-ordered samples to ``sums`` (in place; the additions in sample order).

    Σ Δt, Σ v·Δt, Σ v, Σ f, Σ BWS, Σ load and max peak (docs/science.md §1.3 step 4)."""
    n, dur, dist = sums.samples, sums.duration_s, sums.distance_m
    s_v, s_f, s_b = sums.speed_sum_mps, sums.cadence_sum_spm, sums.bws_sum_pct
    peak, load = sums.peak_pfj_stress_mpa, sums.pfj_load_mpa_s
    for s in samples:
        n += 1
        dur += s.interval_s
        dist += s.speed_mps * s.interval_s
        s_v += s.speed_mps
        s_f += s.cadence_spm
        s_b += s.bws_pct
        load += s.pfj_load_mpa_s
        p = s.peak_pfj_stress_mpa
        if p is not None and (peak is None or p > peak):
            peak = p
    sums.samples, sums.duration_s, sums.distance_m = n, dur, dist
    sums.speed_sum_mps, sums.cadence_sum_spm, sums.bws_sum_pct = s_v, s_f, s_b
    sums.peak_pfj_stress_mpa, sums.pfj_load_mpa_s = peak, load


def minute_start_ms(t_ms: int) -> int:
    """Start of the UTC minute holding ``t_ms`` (epoch ms)."""
    return t_ms - t_ms % MINUTE_MS


def add_to_minutes(minutes: MutableMapping[str, MinuteSums], samples: list[LoadSample]) -> set[str]:
    """Add time-ordered samples to their minutes' sums (key: the minute's start in epoch ms,
    as text); returns the keys touched. A minute's unit is the latest non-null unit."""
    touched: set[str] = set()
    i = 0
    while i < len(samples):
        start = minute_start_ms(samples[i].t_ms)
        j = i
        while j < len(samples) and samples[j].t_ms < start + MINUTE_MS:
            j += 1
        key = str(start)
        m = minutes.get(key)
        if m is None:
            m = minutes[key] = MinuteSums()
        add_samples(m, samples[i:j])
        unit = next((s.unit_id for s in reversed(samples[i:j]) if s.unit_id is not None), None)
        if unit is not None:
            m.unit_id = unit
        touched.add(key)
        i = j
    return touched


def mean_per_sample(total: float, samples: int) -> float | None:
    """``total / samples``; None without samples."""
    return total / samples if samples else None


def session_load_per_km(pfj_load_mpa_s: float, distance_m: float) -> float | None:
    """Estimated PFJ load per km of a session, ``Σ load / (distance/1000)`` (MPa·s/km);
    None without distance."""
    return pfj_load_mpa_s / (distance_m / 1000.0) if distance_m > 0 else None


def coverage_pct(duration_s: float, start_ms: int, end_ms: int, first_interval_s: float) -> float:
    """Share of a session's span the samples stand for, in %.

    ``100 · Σ Δt / ((end − start)/1000 + first_interval_s)``, clamped to [0, 100]; the span
    includes the nominal interval credited to the first sample, so an unbroken 1 Hz session
    covers 100 %. Pauses longer than the longest credited interval lower it.
    """
    span_s = (end_ms - start_ms) / 1000.0 + first_interval_s
    if span_s <= 0:
        return 0.0
    return max(0.0, min(100.0, 100.0 * duration_s / span_s))


class SessionFigures(NamedTuple):
    """What a session reports from its sums."""

    duration_s: float
    distance_m: float
    mean_speed_mps: float | None
    mean_cadence_spm: float | None
    mean_bws_pct: float | None
    peak_pfj_stress_mpa: float | None
    pfj_load_mpa_s: float
    pfj_load_per_km: float | None
    samples: int
    coverage_pct: float


def session_figures(
    sums: LoadSums, start_ms: int, end_ms: int, first_interval_s: float
) -> SessionFigures:
    """A session's figures: the sums, the means per sample, load per km and coverage."""
    n = sums.samples
    return SessionFigures(
        sums.duration_s,
        sums.distance_m,
        mean_per_sample(sums.speed_sum_mps, n),
        mean_per_sample(sums.cadence_sum_spm, n),
        mean_per_sample(sums.bws_sum_pct, n),
        sums.peak_pfj_stress_mpa,
        sums.pfj_load_mpa_s,
        session_load_per_km(sums.pfj_load_mpa_s, sums.distance_m),
        n,
        coverage_pct(sums.duration_s, start_ms, end_ms, first_interval_s),
    )


class MinuteFigures(NamedTuple):
    """What a minute reports from its sums (means per sample; duration and distance capped
    at one minute's worth)."""

    samples: int
    duration_s: float
    distance_m: float
    mean_speed_mps: float
    mean_cadence_spm: float
    mean_bws_pct: float
    peak_pfj_stress_mpa: float
    pfj_load_mpa_s: float


def minute_figures(m: MinuteSums) -> MinuteFigures:
    """A minute's figures (a minute holds at least one sample)."""
    n = m.samples
    return MinuteFigures(
        n,
        min(m.duration_s, MINUTE_MAX_DURATION_S),
        min(m.distance_m, MINUTE_MAX_DISTANCE_M),
        m.speed_sum_mps / n,
        m.cadence_sum_spm / n,
        m.bws_sum_pct / n,
        m.peak_pfj_stress_mpa or 0.0,
        m.pfj_load_mpa_s,
    )
