"""Session spikes: a session against the athlete's longest of the last 30 days.

Frandsen et al. 2025 (Br J Sports Med, doi:10.1136/bjsports-2024-109380; Garmin-RUNSAFE,
5,205 runners, 588,071 sessions, 18 months) compared three exposures for overuse injury.
Only one predicted it: the distance of a single session relative to the **longest session
of the previous 30 days**, in four categories — regression or an increase of ≤ 10 %
(reference), a small spike > 10–30 % (hazard rate ratio 1.64, 95 % CI 1.31–2.05), a
moderate spike > 30–100 % (1.52, 1.16–2.00) and a large spike > 100 % (2.28, 1.50–3.48).
The acute:chronic workload ratio showed a negative dose-response and the week-to-week change
no relationship (docs/science.md §2.4).

kneeload applies the rule to two measures: the session's distance (as published) and its
estimated patellofemoral-joint load (MPa·s, kneeload's own measure — a session on a LEVER
unit at 20 % body-weight support carries less PFJ load than the same distance on the road,
so the same distance can be a spike on the road and not on the unit). One small function
per step:

1. :func:`ceiling`          the longest distance and largest PFJ load of the sessions that
                            started in the ``window_days`` before the session
2. :func:`spike_ratio`      value / ceiling − 1 (as a fraction; None without a ceiling)
3. :func:`spike_category`   the four categories above
4. :func:`session_spike`    both measures, the worse one decides; no verdict with fewer
                            than ``min_sessions`` sessions in the window (said, not guessed)

Every threshold is in :class:`SpikeConfig` with its source.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "DEFAULT_SPIKE_CONFIG",
    "Ceiling",
    "MeasureSpike",
    "PastSession",
    "SpikeCategory",
    "SpikeConfig",
    "SpikeVerdict",
    "ceiling",
    "session_spike",
    "spike_category",
    "spike_ratio",
]

_DAY_MS = 86_400_000


class SpikeCategory(StrEnum):
    """Frandsen et al. 2025's categories, ordered none < small < moderate < large."""

    NONE = "none"  # regression or an increase of at most 10 % (the study's reference)
    SMALL = "small"  # > 10–30 %
    MODERATE = "moderate"  # > 30–100 %
    LARGE = "large"  # > 100 %

    @property
    def rank(self) -> int:
        return list(SpikeCategory).index(self)


@dataclass(frozen=True, slots=True)
class SpikeConfig:
    """Session-spike thresholds, each a configurable default with its source.

    Attributes
    ----------
    window_days : float
        Window of the ceiling: 30 days before the session (Frandsen et al. 2025).
    min_sessions : int
        Sessions the window must hold for a verdict: 3 (**kneeload's choice**: with one or
        two sessions the "longest" is whatever happened to be run).
    small_pct, moderate_pct, large_pct : float
        Lower bounds (exclusive) of the categories: 10, 30, 100 % (Frandsen et al. 2025).
    """

    window_days: float = 30.0
    min_sessions: int = 3
    small_pct: float = 10.0
    moderate_pct: float = 30.0
    large_pct: float = 100.0

    def __post_init__(self) -> None:
        if not self.window_days > 0.0:
            raise ValueError(f"window_days={self.window_days}: must be > 0")
        if self.min_sessions < 1:
            raise ValueError(f"min_sessions={self.min_sessions}: must be ≥ 1")
        if not 0.0 <= self.small_pct < self.moderate_pct < self.large_pct:
            raise ValueError("need 0 ≤ small_pct < moderate_pct < large_pct")


DEFAULT_SPIKE_CONFIG = SpikeConfig()


class PastSession(NamedTuple):
    """A session as the ceiling needs it."""

    start_ms: int
    distance_m: float
    pfj_load_mpa_s: float


class Ceiling(NamedTuple):
    """The longest distance and the largest PFJ load of the sessions in the window."""

    distance_m: float
    pfj_load_mpa_s: float
    sessions: int


def ceiling(history: Iterable[PastSession], before_ms: int, window_days: float = 30.0) -> Ceiling:
    """max distance and max PFJ load over the sessions with
    ``before_ms − window_days·86 400 000 ≤ start_ms < before_ms`` (the session itself and
    later ones excluded); zeros and ``sessions = 0`` when none."""
    lo = before_ms - window_days * _DAY_MS
    d = load = 0.0
    n = 0
    for s in history:
        if lo <= s.start_ms < before_ms:
            n += 1
            d = max(d, s.distance_m)
            load = max(load, s.pfj_load_mpa_s)
    return Ceiling(d, load, n)


def spike_ratio(value: float, ceiling_value: float) -> float | None:
    """r = value / ceiling − 1 (0.25 = 25 % longer than the ceiling); None when the ceiling
    is not positive (nothing to compare with)."""
    if not ceiling_value > 0.0:
        return None
    return value / ceiling_value - 1.0


def spike_category(ratio: float | None, cfg: SpikeConfig = DEFAULT_SPIKE_CONFIG) -> SpikeCategory:
    """The category of an increase ``ratio`` (fraction): ≤ small_pct none, ≤ moderate_pct
    small, ≤ large_pct moderate, above large. None (no ceiling) is none. The percentage is
    rounded to 1e-9 so that exactly +10 % (16.5 km after 15 km) is not a spike by a float's
    last bit."""
    if ratio is None:
        return SpikeCategory.NONE
    pct = round(100.0 * ratio, 9)
    if pct <= cfg.small_pct:
        return SpikeCategory.NONE
    if pct <= cfg.moderate_pct:
        return SpikeCategory.SMALL
    if pct <= cfg.large_pct:
        return SpikeCategory.MODERATE
    return SpikeCategory.LARGE


class MeasureSpike(NamedTuple):
    measure: str  # "distance_m" or "pfj_load_mpa_s"
    value: float
    ceiling: float
    ratio: float | None
    category: SpikeCategory


class SpikeVerdict(NamedTuple):
    """The worse of the two measures (``spike``), both measures, or why there is none."""

    spike: MeasureSpike | None
    measures: tuple[MeasureSpike, ...]
    sessions_in_window: int
    withheld: str | None  # "too_few_sessions" when no verdict is given


def session_spike(
    distance_m: float,
    pfj_load_mpa_s: float,
    start_ms: int,
    history: Iterable[PastSession],
    cfg: SpikeConfig = DEFAULT_SPIKE_CONFIG,
) -> SpikeVerdict:
    """Classify a session against its 30-day ceiling on distance and on PFJ load.

    Raises ``ValueError`` naming the field for a negative or non-finite input.
    """
    for name, v in (("distance_m", distance_m), ("pfj_load_mpa_s", pfj_load_mpa_s)):
        if not (v >= 0.0 and v < float("inf")):
            raise ValueError(f"{name}={v}: must be a finite number ≥ 0")
    c = ceiling(history, start_ms, cfg.window_days)
    if c.sessions < cfg.min_sessions:
        return SpikeVerdict(None, (), c.sessions, "too_few_sessions")
    measures = tuple(
        MeasureSpike(m, v, cv, r, spike_category(r, cfg))
        for m, v, cv in (
            ("distance_m", distance_m, c.distance_m),
            ("pfj_load_mpa_s", pfj_load_mpa_s, c.pfj_load_mpa_s),
        )
        for r in (spike_ratio(v, cv),)
    )
    worst = max(measures, key=lambda s: (s.category.rank, s.ratio or 0.0))
    return SpikeVerdict(
        worst if worst.category is not SpikeCategory.NONE else None, measures, c.sessions, None
    )
