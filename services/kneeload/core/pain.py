"""Pain monitoring (0–10 numeric rating scale) and body-weight-support suggestions.

* :class:`PainReport` — one report: pain_nrs 0–10 with a context (during, after,
  next_morning, rest).
* :func:`baseline_nrs` — an athlete's baseline from rest reports.
* :func:`session_pain` — the numbers of one session pulled from reports.
* :func:`classify_session` — acceptable / caution / stop with a reason a clinician
  reads at a glance, under a :class:`PainPreset` (LEVER default, Silbernagel).
* :func:`weekly_pain_trend` — this week's mean pain against last week's.
* :func:`suggest_bws` — hold / step down / step up support for the next session,
  addressed to the clinician, never applied automatically.

Sources: DOMAIN.md §3. The LEVER preset's rule is from the LEVER product guidance,
which attributes it to Crossley et al. 2016, but it was not found in that paper:
**unconfirmed** source. Silbernagel et al. 2007, AJSM 35(6):897–906 (tendinopathy).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "LEVER",
    "SILBERNAGEL",
    "BwsAction",
    "BwsStepConfig",
    "BwsSuggestion",
    "PainContext",
    "PainPreset",
    "PainReport",
    "PainValueError",
    "SessionClass",
    "SessionClassification",
    "SessionPain",
    "baseline_nrs",
    "classify_session",
    "session_pain",
    "suggest_bws",
    "weekly_pain_trend",
]


class PainValueError(ValueError):
    """A pain input is out of range; ``field`` names it."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        self.field = field
        super().__init__(f"{field}={value!r}: {rule}")


class PainContext(StrEnum):
    """When the pain was felt."""

    DURING = "during"
    AFTER = "after"
    NEXT_MORNING = "next_morning"
    REST = "rest"


def _check_nrs(field: str, v: float | None) -> None:
    if v is not None and not (0.0 <= v <= 10.0):
        raise PainValueError(field, v, "must be on the 0–10 numeric rating scale")


@dataclass(frozen=True, slots=True)
class PainReport:
    """One pain report on the 0–10 numeric rating scale (NRS)."""

    athlete_id: str
    pain_nrs: float
    context: PainContext
    reported_at: dt.datetime
    session_id: str | None = None

    def __post_init__(self) -> None:
        _check_nrs("pain_nrs", self.pain_nrs)
        object.__setattr__(self, "context", PainContext(self.context))


@dataclass(frozen=True, slots=True)
class PainPreset:
    """Rules of a pain-monitoring model. All thresholds are configurable defaults.

    Attributes
    ----------
    name, source : str
        For the clinician's screen.
    during_max_nrs : float
        Highest acceptable pain during running (LEVER 4, Silbernagel 5).
    settle_within_h : float
        Pain must be back to baseline within this many hours after the session
        (LEVER 24 h; Silbernagel "by next morning", taken as 24 h).
    settle_tolerance_nrs : float
        "Back to baseline" means ≤ baseline + this (0: exactly back; kneeload's default).
    weekly_worsening_nrs : float
        A rise of this much in mean weekly pain counts as "worse week on week"
        (1 point, kneeload's choice: the presets say "not worse", no size given).
    stop_during_nrs : float
        During-run pain above this means stop (6: kneeload's choice, **unconfirmed**;
        Silbernagel zone labels call > 5 "high risk").
    stop_above_baseline_nrs : float
        Next-day pain this far above baseline means stop (3, kneeload's choice,
        **unconfirmed**).
    """

    name: str
    source: str
    during_max_nrs: float
    settle_within_h: float
    settle_tolerance_nrs: float = 0.0
    weekly_worsening_nrs: float = 1.0
    stop_during_nrs: float = 6.0
    stop_above_baseline_nrs: float = 3.0


#: LEVER guidance: during ≤ 4/10, back to baseline within 24 h, not worse week on week.
LEVER = PainPreset(
    name="LEVER",
    source="LEVER product guidance (attributed to Crossley et al. 2016; source unconfirmed)",
    during_max_nrs=4.0,
    settle_within_h=24.0,
)

#: Silbernagel pain-monitoring model: ≤ 5/10 during, settled by next morning, not rising.
SILBERNAGEL = PainPreset(
    name="Silbernagel",
    source="Silbernagel et al. 2007, AJSM 35(6):897–906",
    during_max_nrs=5.0,
    settle_within_h=24.0,
)


def baseline_nrs(
    reports: Iterable[PainReport], last_n: int = 7, before: dt.datetime | None = None
) -> float | None:
    """Athlete's baseline pain: median of the last ``last_n`` rest reports (None if none).

    Reports after ``before`` are ignored. The median resists one bad day (kneeload's
    choice; DOMAIN.md §3 only says "baseline").
    """
    rest = sorted(
        (
            r
            for r in reports
            if r.context is PainContext.REST and (before is None or r.reported_at <= before)
        ),
        key=lambda r: r.reported_at,
    )
    if not rest:
        return None
    return float(statistics.median(r.pain_nrs for r in rest[-last_n:]))


@dataclass(frozen=True, slots=True)
class SessionPain:
    """The pain numbers of one session (None = no report)."""

    during_max_nrs: float | None
    after_max_nrs: float | None
    settle_nrs: float | None
    settle_hours: float | None


def session_pain(
    reports: Iterable[PainReport],
    session_start: dt.datetime,
    session_end: dt.datetime,
    preset: PainPreset = LEVER,
    session_id: str | None = None,
) -> SessionPain:
    """Pull a session's numbers from reports (pure; times are passed in).

    during = max of ``during`` reports in [start, end] (or tagged with ``session_id``);
    after = max of ``after`` reports in (end, end + 2 h]; settle = the LAST report
    (after / next_morning / rest) in (end, end + settle_within_h], i.e. where the pain
    stood when the window closed.
    """
    during: list[float] = []
    after: list[float] = []
    settle: tuple[dt.datetime, float] | None = None
    horizon = session_end + dt.timedelta(hours=preset.settle_within_h)
    for r in reports:
        t = r.reported_at
        if r.context is PainContext.DURING:
            if (
                session_id is not None and r.session_id == session_id
            ) or session_start <= t <= session_end:
                during.append(r.pain_nrs)
            continue
        if not (session_end < t <= horizon):
            continue
        if r.context is PainContext.AFTER and t <= session_end + dt.timedelta(hours=2):
            after.append(r.pain_nrs)
        if settle is None or t >= settle[0]:
            settle = (t, r.pain_nrs)
    return SessionPain(
        max(during) if during else None,
        max(after) if after else None,
        settle[1] if settle else None,
        (settle[0] - session_end).total_seconds() / 3600.0 if settle else None,
    )


def weekly_pain_trend(
    reports: Iterable[PainReport],
    as_of: dt.datetime,
    contexts: Sequence[PainContext] = (PainContext.DURING, PainContext.NEXT_MORNING),
) -> tuple[float | None, float | None, float | None]:
    """(this week's mean, last week's mean, change) over the trailing 7 and prior 7 days.

    Week-on-week comparison of DOMAIN.md §3 ("not worse week on week"). None where a
    week has no report.
    """
    this: list[float] = []
    last: list[float] = []
    for r in reports:
        if r.context not in contexts:
            continue
        age = (as_of - r.reported_at).total_seconds() / 86400.0
        if 0.0 <= age < 7.0:
            this.append(r.pain_nrs)
        elif 7.0 <= age < 14.0:
            last.append(r.pain_nrs)
    m_this = statistics.fmean(this) if this else None
    m_last = statistics.fmean(last) if last else None
    delta = m_this - m_last if m_this is not None and m_last is not None else None
    return m_this, m_last, delta


class SessionClass(StrEnum):
    """Session verdict."""

    ACCEPTABLE = "acceptable"
    CAUTION = "caution"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class SessionClassification:
    """Verdict, one-line reason, the individual findings and the numbers used.

    ``reason`` is for a clinician; ``reason_code`` is the machine-readable snake_case
    code of the deciding finding (the pain_response event's ``reason``):

    * stop — ``pain_during_above_stop_limit``, ``pain_above_baseline_next_day``, or
      ``multiple_cautions`` (two or more caution findings at once);
    * caution — ``pain_during_above_limit``, ``not_back_to_baseline``,
      ``weekly_pain_worsening``;
    * acceptable — ``within_limits``, or ``within_limits_pending`` while the during-run
      or follow-up report is missing.
    """

    status: SessionClass
    reason: str
    findings: tuple[str, ...]
    preset: str
    during_max_nrs: float | None
    settle_nrs: float | None
    baseline_nrs: float
    baseline_assumed: bool
    weekly_change_nrs: float | None
    pending: bool
    reason_code: str = "within_limits"


def _f(x: float) -> str:
    return f"{x:g}"


def classify_session(
    during_nrs: float | None,
    settle_nrs: float | None,
    baseline: float | None,
    weekly_change_nrs: float | None = None,
    preset: PainPreset = LEVER,
) -> SessionClassification:
    """Classify a session acceptable / caution / stop.

    Rules (numbers from ``preset``; LEVER defaults shown):

    * stop — during > 6/10, or pain 24 h later ≥ baseline + 3, or two or more of
      the caution findings at once;
    * caution — during > 4/10; not back to baseline (+ tolerance) within 24 h; mean
      weekly pain up ≥ 1 point;
    * acceptable — none of these. Missing reports are named ("pending").

    Parameters
    ----------
    during_nrs : float or None
        Highest pain during the run, 0–10.
    settle_nrs : float or None
        Pain when the settle window closed (next morning), 0–10. None: not yet known.
    baseline : float or None
        Athlete's rest baseline (:func:`baseline_nrs`); None is taken as 0 and said so.
    weekly_change_nrs : float or None
        Change of mean weekly pain (:func:`weekly_pain_trend`).

    References
    ----------
    DOMAIN.md §3; LEVER guidance (**unconfirmed** source); Silbernagel et al. 2007.
    """
    _check_nrs("during_nrs", during_nrs)
    _check_nrs("settle_nrs", settle_nrs)
    _check_nrs("baseline", baseline)
    if weekly_change_nrs is not None and not math.isfinite(weekly_change_nrs):
        raise PainValueError("weekly_change_nrs", weekly_change_nrs, "must be finite")
    p = preset
    assumed = baseline is None
    base = 0.0 if baseline is None else baseline
    stops: list[str] = []
    cautions: list[str] = []
    notes: list[str] = []
    stop_codes: list[str] = []
    caution_codes: list[str] = []
    if during_nrs is None:
        notes.append("no during-run report")
    elif during_nrs > p.stop_during_nrs:
        stops.append(f"pain during run {_f(during_nrs)}/10 > {_f(p.stop_during_nrs)}")
        stop_codes.append("pain_during_above_stop_limit")
    elif during_nrs > p.during_max_nrs:
        cautions.append(f"pain during run {_f(during_nrs)}/10 > {_f(p.during_max_nrs)}")
        caution_codes.append("pain_during_above_limit")
    hrs = _f(p.settle_within_h)
    if settle_nrs is None:
        notes.append(f"{hrs} h follow-up pending")
    elif settle_nrs >= base + p.stop_above_baseline_nrs:
        stops.append(
            f"pain {hrs} h later {_f(settle_nrs)}/10, "
            f"≥ {_f(p.stop_above_baseline_nrs)} above baseline {_f(base)}"
        )
        stop_codes.append("pain_above_baseline_next_day")
    elif settle_nrs > base + p.settle_tolerance_nrs:
        cautions.append(f"not back to baseline within {hrs} h ({_f(settle_nrs)} vs {_f(base)}/10)")
        caution_codes.append("not_back_to_baseline")
    if weekly_change_nrs is not None and weekly_change_nrs >= p.weekly_worsening_nrs:
        cautions.append(f"weekly pain up {weekly_change_nrs:+.1f} points")
        caution_codes.append("weekly_pain_worsening")
    pending = settle_nrs is None or during_nrs is None
    if assumed:
        notes.append("no rest reports: baseline taken as 0/10")
    if stops or len(cautions) >= 2:
        status = SessionClass.STOP
        findings = stops + cautions
        code = stop_codes[0] if stop_codes else "multiple_cautions"
    elif cautions:
        status = SessionClass.CAUTION
        findings = cautions
        code = caution_codes[0]
    else:
        status = SessionClass.ACCEPTABLE
        code = "within_limits_pending" if pending else "within_limits"
        findings = [
            f"pain within {p.name} limits"
            + (
                f" (during {_f(during_nrs)}/10 ≤ {_f(p.during_max_nrs)})"
                if during_nrs is not None
                else ""
            )
        ]
    reason = f"{status.value.upper()}: " + "; ".join(findings + notes)
    return SessionClassification(
        status,
        reason,
        tuple(findings + notes),
        p.name,
        during_nrs,
        settle_nrs,
        base,
        assumed,
        weekly_change_nrs,
        pending,
        code,
    )


class BwsAction(StrEnum):
    """What to do with body-weight support next session."""

    HOLD = "hold"
    STEP_DOWN = "step_down"  # less support → more load on the knee
    STEP_UP = "step_up"  # more support → less load


@dataclass(frozen=True, slots=True)
class BwsStepConfig:
    """BWS progression settings.

    step_pct 5 (5–10% per week is common practice, **unconfirmed**; DOMAIN.md §3);
    unit_max_pct 80 (set to the unit's real maximum); min_pct 0;
    acceptable_sessions_to_progress 1 (consecutive acceptable sessions before a step
    down is suggested; kneeload's choice).
    """

    step_pct: float = 5.0
    unit_max_pct: float = 80.0
    min_pct: float = 0.0
    acceptable_sessions_to_progress: int = 1

    def __post_init__(self) -> None:
        if not (self.step_pct > 0):
            raise PainValueError("step_pct", self.step_pct, "must be > 0")
        if not (0.0 <= self.min_pct < self.unit_max_pct < 100.0):
            raise PainValueError(
                "unit_max_pct", self.unit_max_pct, "need 0 ≤ min_pct < unit_max_pct < 100"
            )


@dataclass(frozen=True, slots=True)
class BwsSuggestion:
    """A suggestion for the clinician; kneeload never applies it."""

    action: BwsAction
    current_bws_pct: float
    suggested_bws_pct: float
    reason: str
    addressed_to: str = "clinician"
    auto_apply: bool = False


def suggest_bws(
    current_bws_pct: float,
    classification: SessionClassification,
    config: BwsStepConfig = BwsStepConfig(),
    consecutive_acceptable: int = 1,
) -> BwsSuggestion:
    """Suggest next session's body-weight support from the last session's pain verdict.

    acceptable (for ``acceptable_sessions_to_progress`` sessions) → step down support by
    ``step_pct``; caution → hold; stop → step up by ``step_pct``. Always within
    [min_pct, unit_max_pct]; at a bound the suggestion is hold, with the reason.
    Addressed to the clinician, never applied automatically (DOMAIN.md §3).
    """
    if not (config.min_pct <= current_bws_pct <= config.unit_max_pct):
        raise PainValueError(
            "current_bws_pct",
            current_bws_pct,
            f"must be within {config.min_pct}–{config.unit_max_pct} %",
        )
    c = classification
    step = config.step_pct
    cur = current_bws_pct
    why = c.reason
    if c.status is SessionClass.STOP:
        new = min(config.unit_max_pct, cur + step)
        if new == cur:
            return BwsSuggestion(
                BwsAction.HOLD,
                cur,
                cur,
                f"{why}. Already at the unit's maximum support ({_f(cur)}%): "
                "consider pausing running and review.",
            )
        return BwsSuggestion(
            BwsAction.STEP_UP,
            cur,
            new,
            f"{why}. Consider more support: {_f(cur)}% → {_f(new)}% BWS.",
        )
    if c.status is SessionClass.CAUTION:
        return BwsSuggestion(
            BwsAction.HOLD, cur, cur, f"{why}. Consider holding support at {_f(cur)}% BWS."
        )
    if c.pending:
        return BwsSuggestion(
            BwsAction.HOLD,
            cur,
            cur,
            f"{why}. Hold at {_f(cur)}% BWS until the missing report arrives.",
        )
    if consecutive_acceptable < config.acceptable_sessions_to_progress:
        return BwsSuggestion(
            BwsAction.HOLD,
            cur,
            cur,
            f"{why}. {consecutive_acceptable} of {config.acceptable_sessions_to_progress} "
            "acceptable "
            f"sessions before reducing support; hold at {_f(cur)}% BWS.",
        )
    new = max(config.min_pct, cur - step)
    if new == cur:
        return BwsSuggestion(
            BwsAction.HOLD, cur, cur, f"{why}. Already at {_f(cur)}% support: no further reduction."
        )
    return BwsSuggestion(
        BwsAction.STEP_DOWN, cur, new, f"{why}. Consider less support: {_f(cur)}% → {_f(new)}% BWS."
    )
