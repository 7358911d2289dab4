"""Outcomes of the athletes who trained on a LEVER unit or at a clinic, for fleet comparisons.

For each athlete of a group (a unit, or a clinic's units) over a period, from the athlete's
sessions on the group's units, their pain reports and their pain alert episodes, one small
function per figure:

1. :func:`pain_trajectory`      mean next-morning pain of the first two weeks against the
                                last two weeks of the athlete's time on the group's units
2. :func:`bws_progression`      days from the first session to the first session at
                                ≤ 5 % body-weight support, or "still above" (censored)
3. :func:`median_pfj_load_per_km` median estimated PFJ load per km of the sessions
4. :func:`count_pain_flares`    pain flares: pain alert episodes opened in the window

and per group (:func:`group_outcomes`): n for every figure, the figure itself only when its
n reaches :attr:`OutcomeConfig.min_n` (below it the figure is *withheld*: shown as n only),
and :func:`rank_groups`, which ranks only groups whose figure is not withheld.

Definitions (the issue's, made precise here; every choice is **kneeload's own** unless a
source is named):

* *pain flare* — one pain alert episode (kinds ``pain_high``, ``pain_not_settled``,
  ``pain_trend_worsening``; :mod:`kneeload.core.episodes`): the definition ``make demo``
  scores its planted flare by (:mod:`kneeload.demo.quality`). An episode is one condition
  from opening to resolution, so a bad week is one flare, not one per report.
* *next-morning report* — a pain report with context ``next_morning``
  (:class:`kneeload.core.pain.PainContext`): the settle value of the pain-monitoring model
  (Silbernagel et al. 2007), comparable across athletes because it is taken at the same
  moment of the day.
* *time on the units* — from the start of the athlete's first session on the group's units
  in the period to the end of the last one plus the next-day window of the pain preset
  (36 h, :attr:`kneeload.core.pain.PainPreset.next_day_window_h`), so the morning after the
  last session counts; clipped to the period.
* *BWS progression* is time-to-event data: athletes still above the target at their last
  session are censored, so the group figure is the Kaplan–Meier median (Kaplan & Meier
  1958, J Am Stat Assoc 53(282):457–481), not the median of those who got there.

These are observational figures: a unit or clinic whose athletes start with more pain or
more support will show different outcomes for reasons other than the unit. The report
says so; n is always shown.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "DEFAULT_OUTCOME_CONFIG",
    "FLARE_KINDS",
    "AthleteOutcome",
    "BwsProgression",
    "GroupOutcome",
    "OutcomeConfig",
    "OutcomeValueError",
    "PainTrajectory",
    "SessionOnUnit",
    "athlete_outcome",
    "bws_progression",
    "count_pain_flares",
    "group_outcomes",
    "km_median_days",
    "median_pfj_load_per_km",
    "pain_trajectory",
    "rank_groups",
]

#: Alert kinds whose episodes are pain flares (kneeload.core.alerts.AlertKind values).
FLARE_KINDS: tuple[str, ...] = ("pain_high", "pain_not_settled", "pain_trend_worsening")


class OutcomeValueError(ValueError):
    """An outcome input is out of range; ``field`` names it."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        self.field = field
        super().__init__(f"{field}={value!r}: {rule}")


@dataclass(frozen=True, slots=True)
class OutcomeConfig:
    """Outcome settings, each a configurable default with its source.

    Attributes
    ----------
    window_days : float
        Length of the first and the last pain window: 14 days (the issue's "first vs the
        last two weeks").
    bws_target_pct : float
        Body-weight support at or below which an athlete counts as progressed: 5 % (the
        issue's "≤ 5 % BWS"; **kneeload's choice** of threshold for "off the support": the
        step clinics take is 5–10 %, docs/science.md §3, so 5 % is one step from none).
    min_n : int
        Athletes a figure needs before it is shown and compared: 5 (**kneeload's own
        choice**: below five athletes one athlete's course decides a group's figure).
        Below it the figure is withheld (n shown), and the group is never ranked on it.
    next_day_window_h : float
        Hours after the last session during which its next-morning report still counts:
        36 h (the pain preset's next-day window, :class:`kneeload.core.pain.PainPreset`).
    """

    window_days: float = 14.0
    bws_target_pct: float = 5.0
    min_n: int = 5
    next_day_window_h: float = 36.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.window_days) and self.window_days > 0):
            raise OutcomeValueError("window_days", self.window_days, "must be > 0")
        if not (0.0 <= self.bws_target_pct < 100.0):
            raise OutcomeValueError("bws_target_pct", self.bws_target_pct, "must be in [0, 100)")
        if self.min_n < 1:
            raise OutcomeValueError("min_n", self.min_n, "must be ≥ 1")
        if not (math.isfinite(self.next_day_window_h) and self.next_day_window_h >= 0):
            raise OutcomeValueError("next_day_window_h", self.next_day_window_h, "must be ≥ 0")


DEFAULT_OUTCOME_CONFIG = OutcomeConfig()


class SessionOnUnit(NamedTuple):
    """One session on a unit of the group, as far as outcomes are concerned."""

    start: dt.datetime
    end: dt.datetime
    mean_bws_pct: float | None
    pfj_load_per_km: float | None


def _aware(field: str, t: dt.datetime) -> None:
    if t.tzinfo is None:
        raise OutcomeValueError(field, t, "must be timezone-aware")


def _check_pct(field: str, v: float | None) -> None:
    if v is not None and not (0.0 <= v <= 100.0):
        raise OutcomeValueError(field, v, "must be a percentage in [0, 100]")


# ------------------------------------------------------------------------------- 1. pain


class PainTrajectory(NamedTuple):
    """Mean next-morning pain (NRS 0–10) in the first and the last window.

    ``change_nrs`` = last − first (negative: better); None when either window has no
    report or the windows overlap (time on the units shorter than two windows).
    """

    first_mean_nrs: float | None
    last_mean_nrs: float | None
    change_nrs: float | None
    first_reports: int
    last_reports: int


def pain_trajectory(
    reports: Iterable[tuple[dt.datetime, float]],
    start: dt.datetime,
    end: dt.datetime,
    window_days: float = DEFAULT_OUTCOME_CONFIG.window_days,
) -> PainTrajectory:
    """Mean next-morning pain of the first vs the last ``window_days`` of [start, end].

    first = mean{pᵢ : start ≤ tᵢ < start + w}, last = mean{pᵢ : end − w < tᵢ ≤ end},
    change = last − first, over next-morning reports (time, NRS) only — the caller passes
    those (the settle value of the pain-monitoring model). Reports outside [start, end]
    are ignored. When end − start < 2w the windows would share reports: the means are
    given, the change is None (no trajectory over too short a time).

    Raises
    ------
    OutcomeValueError
        naming ``pain_nrs`` outside 0–10, ``end`` before ``start``, or naive times.
    """
    _aware("start", start)
    _aware("end", end)
    if end < start:
        raise OutcomeValueError("end", end, "must not be before start")
    w = dt.timedelta(days=window_days)
    first: list[float] = []
    last: list[float] = []
    for t, nrs in reports:
        if not (0.0 <= nrs <= 10.0):
            raise OutcomeValueError("pain_nrs", nrs, "must be on the 0–10 numeric rating scale")
        if not start <= t <= end:
            continue
        if t < start + w:
            first.append(float(nrs))
        if t > end - w:
            last.append(float(nrs))
    m1 = statistics.fmean(first) if first else None
    m2 = statistics.fmean(last) if last else None
    change = None
    if m1 is not None and m2 is not None and end - start >= 2 * w:
        change = m2 - m1
    return PainTrajectory(m1, m2, change, len(first), len(last))


# -------------------------------------------------------------------------------- 2. BWS


class BwsProgression(NamedTuple):
    """Days from the first session with a BWS value to the first at ≤ the target.

    ``reached`` False: still above at the last session (``days`` is then the time
    observed, first to last session: a censored time). ``first_bws_pct`` and
    ``last_bws_pct`` are the support of those sessions.
    """

    days: float
    reached: bool
    first_bws_pct: float
    last_bws_pct: float
    sessions: int


def bws_progression(
    sessions: Iterable[tuple[dt.datetime, float | None]],
    target_pct: float = DEFAULT_OUTCOME_CONFIG.bws_target_pct,
) -> BwsProgression | None:
    """Time to ≤ ``target_pct`` body-weight support, from (session start, mean BWS %).

    days = (t_reach − t_first) / 86 400 s, where t_first is the first session with a BWS
    value and t_reach the first at or below the target (0 when the first already is);
    sessions without a value are left out. None when no session has a value.
    """
    pts = sorted((t, float(b)) for t, b in sessions if b is not None)
    if not pts:
        return None
    for i, (t, b) in enumerate(pts):
        _aware("start", t)
        _check_pct("mean_bws_pct", b)
        if b <= target_pct:
            return BwsProgression(_days(pts[0][0], t), True, pts[0][1], b, i + 1)
    return BwsProgression(_days(pts[0][0], pts[-1][0]), False, pts[0][1], pts[-1][1], len(pts))


def _days(a: dt.datetime, b: dt.datetime) -> float:
    return (b - a).total_seconds() / 86400.0


def km_median_days(events: Iterable[tuple[float, bool]]) -> float | None:
    """Kaplan–Meier median time to event from (days, reached) pairs.

    Ŝ(t) = Π_{tⱼ ≤ t} (1 − dⱼ/nⱼ) over the distinct event times tⱼ, dⱼ events at tⱼ and
    nⱼ athletes still at risk (time ≥ tⱼ; a censored time counts as at risk at its own
    time). The median is the first tⱼ with Ŝ(tⱼ) ≤ 0.5; None when Ŝ never falls that
    far (fewer than half are known to have reached the target) or there are no pairs.

    References
    ----------
    Kaplan EL, Meier P. Nonparametric estimation from incomplete observations. J Am Stat
    Assoc 1958;53(282):457–481.
    """
    ev = sorted(events)
    for d, _ in ev:
        if not (math.isfinite(d) and d >= 0):
            raise OutcomeValueError("days", d, "must be finite and ≥ 0")
    at_risk = len(ev)
    s = 1.0
    i = 0
    while i < len(ev):
        t = ev[i][0]
        same = [r for d, r in ev[i:] if d == t]
        d_events = sum(same)
        if d_events:
            s *= 1.0 - d_events / at_risk
            if s <= 0.5 + 1e-12:
                return t
        at_risk -= len(same)
        i += len(same)
    return None


# ------------------------------------------------------------------------- 3. PFJ per km


def median_pfj_load_per_km(values: Iterable[float | None]) -> float | None:
    """Median estimated PFJ load per km (MPa·s/km) of the values given; None left out.

    The median, not the mean: one short session with a large per-km figure (a sprint, a
    session of a few hundred metres) should not move a unit's figure. None when empty.
    """
    xs = []
    for v in values:
        if v is None:
            continue
        if not (math.isfinite(v) and v >= 0):
            raise OutcomeValueError("pfj_load_per_km", v, "must be finite and ≥ 0")
        xs.append(float(v))
    return statistics.median(xs) if xs else None


# ------------------------------------------------------------------------------ 4. flares


def count_pain_flares(
    opened_at: Iterable[dt.datetime], start: dt.datetime, end: dt.datetime
) -> int:
    """Pain flares: pain alert episodes (:data:`FLARE_KINDS`) opened in [start, end].

    The caller passes the opening times of the athlete's episodes of those kinds; one
    episode is one flare however many changes (escalations) it had.
    """
    _aware("start", start)
    _aware("end", end)
    return sum(1 for t in opened_at if start <= t <= end)


# ------------------------------------------------------------------------------ athletes


class AthleteOutcome(NamedTuple):
    """One athlete's outcomes in one group over a period (None: no data for the figure)."""

    athlete_id: str
    sessions: int
    start: dt.datetime
    end: dt.datetime
    pain: PainTrajectory
    bws: BwsProgression | None
    pfj_load_per_km: float | None
    flares: int


def athlete_outcome(
    athlete_id: str,
    sessions: Sequence[SessionOnUnit],
    next_morning: Iterable[tuple[dt.datetime, float]],
    flare_opened_at: Iterable[dt.datetime],
    period: tuple[dt.datetime, dt.datetime],
    cfg: OutcomeConfig = DEFAULT_OUTCOME_CONFIG,
) -> AthleteOutcome | None:
    """The four figures for one athlete from their sessions on the group's units.

    The athlete's time on the units is [first session start, last session end +
    ``next_day_window_h``] clipped to ``period``; pain and flares are counted in it. None
    when no session starts inside the period.
    """
    p0, p1 = period
    _aware("period", p0)
    _aware("period", p1)
    own = sorted((s for s in sessions if p0 <= s.start <= p1), key=lambda s: s.start)
    if not own:
        return None
    for s in own:
        _check_pct("mean_bws_pct", s.mean_bws_pct)
    start = own[0].start
    end = min(p1, max(s.end for s in own) + dt.timedelta(hours=cfg.next_day_window_h))
    return AthleteOutcome(
        athlete_id,
        len(own),
        start,
        end,
        pain_trajectory(next_morning, start, end, cfg.window_days),
        bws_progression(((s.start, s.mean_bws_pct) for s in own), cfg.bws_target_pct),
        median_pfj_load_per_km(s.pfj_load_per_km for s in own),
        count_pain_flares(flare_opened_at, start, end),
    )


# -------------------------------------------------------------------------------- groups


class GroupOutcome(NamedTuple):
    """Outcomes of one group (a unit or a clinic). Every figure has its own n (athletes
    with data for it); a figure whose n is below ``min_n`` is None (withheld).

    * pain: mean of the athletes' first-window and last-window means and of their changes
      (NRS points; negative = better), over athletes with both windows;
    * BWS: athletes with a BWS value, how many reached the target, the Kaplan–Meier median
      days to it (None also when fewer than half are known to reach it) and the share that
      reached it by their last session;
    * PFJ: median of the athletes' median estimated PFJ load per km (each athlete counts
      once, however many sessions);
    * flares: total, athletes with at least one, flares per athlete.
    """

    group_id: str
    athletes: int
    sessions: int
    pain_n: int
    pain_first_mean_nrs: float | None
    pain_last_mean_nrs: float | None
    pain_change_nrs: float | None
    bws_n: int
    bws_reached: int
    bws_median_days: float | None
    bws_reached_share: float | None
    pfj_n: int
    pfj_load_per_km_median: float | None
    flares_n: int
    flares: int | None
    athletes_with_flare: int | None
    flares_per_athlete: float | None
    min_n: int

    def withheld(self) -> tuple[str, ...]:
        """Names of the figures withheld for small n."""
        out = []
        for name, n in (
            ("pain", self.pain_n),
            ("bws", self.bws_n),
            ("pfj", self.pfj_n),
            ("flares", self.flares_n),
        ):
            if n < self.min_n:
                out.append(name)
        return tuple(out)


def _mean(xs: Sequence[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def group_outcomes(
    group_id: str,
    athletes: Sequence[AthleteOutcome],
    min_n: int = DEFAULT_OUTCOME_CONFIG.min_n,
) -> GroupOutcome:
    """Aggregate athletes' outcomes; each figure withheld (None) when its n < ``min_n``.

    n is never withheld. See :class:`GroupOutcome` for each figure's definition.
    """
    if min_n < 1:
        raise OutcomeValueError("min_n", min_n, "must be ≥ 1")
    pains = [a.pain for a in athletes if a.pain.change_nrs is not None]
    bws = [a.bws for a in athletes if a.bws is not None]
    pfj = [a.pfj_load_per_km for a in athletes if a.pfj_load_per_km is not None]
    n = len(athletes)

    def keep(count: int, value: float | None) -> float | None:
        return value if count >= min_n else None

    reached = sum(1 for b in bws if b.reached)
    with_flare = sum(1 for a in athletes if a.flares > 0)
    total_flares = sum(a.flares for a in athletes)
    ok_flares = n >= min_n
    return GroupOutcome(
        group_id,
        n,
        sum(a.sessions for a in athletes),
        len(pains),
        keep(len(pains), _mean([p.first_mean_nrs for p in pains if p.first_mean_nrs is not None])),
        keep(len(pains), _mean([p.last_mean_nrs for p in pains if p.last_mean_nrs is not None])),
        keep(len(pains), _mean([p.change_nrs for p in pains if p.change_nrs is not None])),
        len(bws),
        reached,
        keep(len(bws), km_median_days((b.days, b.reached) for b in bws)),
        keep(len(bws), reached / len(bws) if bws else None),
        len(pfj),
        keep(len(pfj), statistics.median(pfj) if pfj else None),
        n,
        total_flares if ok_flares else None,
        with_flare if ok_flares else None,
        total_flares / n if ok_flares and n else None,
        min_n,
    )


#: figures :func:`rank_groups` ranks on: (GroupOutcome field, its n field, lower is better)
RANKABLE: dict[str, tuple[str, str, bool]] = {
    "pain_change_nrs": ("pain_change_nrs", "pain_n", True),
    "bws_median_days": ("bws_median_days", "bws_n", True),
    "bws_reached_share": ("bws_reached_share", "bws_n", False),
    "pfj_load_per_km_median": ("pfj_load_per_km_median", "pfj_n", True),
    "flares_per_athlete": ("flares_per_athlete", "flares_n", True),
}


def rank_groups(groups: Sequence[GroupOutcome], figure: str) -> dict[str, int | None]:
    """Rank groups on one figure (1 = best), only those whose figure is shown.

    A group whose n for the figure is below its ``min_n`` (withheld), or whose figure is
    None, gets rank None: it is never ranked. Ties share the better rank ("1, 1, 3").
    ``figure`` is one of :data:`RANKABLE`; lower is better except ``bws_reached_share``.
    """
    if figure not in RANKABLE:
        raise OutcomeValueError("figure", figure, f"must be one of {sorted(RANKABLE)}")
    field, n_field, lower = RANKABLE[figure]
    vals: dict[str, float] = {}
    for g in groups:
        v = getattr(g, field)
        if v is not None and getattr(g, n_field) >= g.min_n:
            vals[g.group_id] = float(v) if lower else -float(v)
    ranks: dict[str, int | None] = {g.group_id: None for g in groups}
    for gid, v in vals.items():
        ranks[gid] = 1 + sum(1 for w in vals.values() if w < v)
    return ranks
