"""Pain monitoring (0–10 numeric rating scale) and load suggestions, as clinicians use it.

* :class:`PainReport` — one report: pain_nrs 0–10 with a context (during, after,
  next_morning, rest).
* :func:`baseline_nrs` — an athlete's baseline from rest reports.
* :func:`session_pain` — the numbers of one session pulled from reports: the next-day
  value is the first next-morning (or rest) report within the preset's window (36 h), an
  "after" report never stands in for it.
* :func:`next_day_expected` — when a pending next-day report is expected, and due.
* :func:`classify_session` — acceptable / caution / stop with a reason a clinician
  reads at a glance, under a :class:`PainPreset` (LEVER default, Silbernagel), with an
  absolute safe zone (≤ 2/10).
* :func:`weekly_pain_trend` — this week's mean pain against last week's (the one
  definition: alerts, pain responses and the coaches' overview), and
  :func:`pain_trend_label` — worsening / improving / stable for the overview.
* :func:`suggest_bws` (on a BWS unit) and :func:`suggest_load` (off-unit) — what to do next
  session, addressed to the clinician, never applied automatically. Above the preset's
  during-run limit the suggestion always reduces load.

Sources: docs/science.md §3. The LEVER preset's rule is from the LEVER product guidance,
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
from zoneinfo import ZoneInfo

__all__ = [
    "LEVER",
    "PRESETS",
    "SILBERNAGEL",
    "TREND_CONTEXTS",
    "BwsAction",
    "BwsStepConfig",
    "BwsSuggestion",
    "LoadAction",
    "LoadSuggestion",
    "PainContext",
    "PainPreset",
    "PainReport",
    "PainTrend",
    "PainValueError",
    "SessionClass",
    "SessionClassification",
    "SessionPain",
    "baseline_nrs",
    "classify_session",
    "is_next_day_report",
    "local_date",
    "next_day_expected",
    "pain_trend_label",
    "preset_by_code",
    "session_pain",
    "suggest_bws",
    "suggest_load",
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
    """Rules of a pain-monitoring model. Every threshold is a configurable default.

    Attributes
    ----------
    name, code, source : str
        For the clinician's screen (``name``), machine-readable (``code``, the
        ``pain_response.preset``) and where the rule comes from (``source``, carried on
        every pain response).
    during_max_nrs : float
        Highest acceptable pain during running (LEVER 4, Silbernagel 5). Above it the
        suggestion always reduces load next time.
    safe_max_nrs, safe_source : float, str
        Absolute safe zone: pain at or below this (2/10) is within limits whatever the
        baseline. Pain-monitoring models treat 0–2/10 as safe (Silbernagel et al. 2007;
        zone labels vary between sources, so it is configurable per preset).
    next_day_window_h : float
        The next-day value is the first ``next_morning`` (or ``rest``) report after the
        session within this many hours (36 h: long enough for the next-morning report of a
        morning run, which arrives a little more than 24 h after the session ends;
        kneeload's choice). ``after`` reports never stand in for it.
    next_day_rest_min_h : float
        A ``rest`` report counts as the next-day value only from this many hours after the
        session (8 h, kneeload's choice: a rest report an hour after a run is not "the
        next day").
    next_morning_hour : int
        Local hour at which the next-morning report is expected (8, kneeload's choice; used
        only to say when a pending value is expected).
    after_window_h : float
        ``after`` reports within this many hours of the session end are the session's
        "after" value (2 h, kneeload's choice); shown, never classified as next-day pain.
    settle_tolerance_nrs : float
        "Back to baseline" means ≤ baseline + this (0: exactly back; kneeload's default).
    weekly_worsening_nrs : float
        A rise of this much in mean weekly pain counts as "worse week on week"
        (1 point, kneeload's choice: the presets say "not worse", no size given).
    stop_during_nrs : float
        During-run pain above this means stop (6: kneeload's choice, **unconfirmed**;
        Silbernagel zone labels call > 5 "high risk").
    stop_above_baseline_nrs : float
        Next-day pain this far above baseline (and above the safe zone) means stop (3,
        kneeload's choice, **unconfirmed**).
    """

    name: str
    code: str
    source: str
    during_max_nrs: float
    safe_max_nrs: float = 2.0
    safe_source: str = (
        "pain-monitoring model zones, 0–2/10 safe (Silbernagel et al. 2007; "
        "labels vary between sources)"
    )
    next_day_window_h: float = 36.0
    next_day_rest_min_h: float = 8.0
    next_morning_hour: int = 8
    after_window_h: float = 2.0
    settle_tolerance_nrs: float = 0.0
    weekly_worsening_nrs: float = 1.0
    stop_during_nrs: float = 6.0
    stop_above_baseline_nrs: float = 3.0

    def __post_init__(self) -> None:
        for name in ("during_max_nrs", "safe_max_nrs", "stop_during_nrs"):
            _check_nrs(name, getattr(self, name))
        if not self.safe_max_nrs <= self.during_max_nrs <= self.stop_during_nrs:
            raise PainValueError(
                "during_max_nrs", self.during_max_nrs, "need safe_max ≤ during_max ≤ stop_during"
            )
        w, r = self.next_day_window_h, self.next_day_rest_min_h
        if not (w > 0 and 0 <= r < w):
            raise PainValueError(
                "next_day_window_h", self.next_day_window_h, "need 0 ≤ rest_min_h < window_h"
            )


#: LEVER guidance: during ≤ 4/10, back to baseline by the next day, not worse week on week.
LEVER = PainPreset(
    name="LEVER",
    code="lever",
    source="LEVER product guidance (attributed to Crossley et al. 2016; source unconfirmed)",
    during_max_nrs=4.0,
)

#: Silbernagel pain-monitoring model: ≤ 5/10 during, settled by next morning, not rising.
SILBERNAGEL = PainPreset(
    name="Silbernagel",
    code="silbernagel",
    source="Silbernagel et al. 2007, AJSM 35(6):897–906",
    during_max_nrs=5.0,
)

#: Presets by code (the worker's ``KNEELOAD_WORKER_PAIN_PRESET``).
PRESETS: dict[str, PainPreset] = {p.code: p for p in (LEVER, SILBERNAGEL)}


def preset_by_code(code: str) -> PainPreset:
    """The preset named ``code`` (case-insensitive; ``silb…`` → Silbernagel); LEVER otherwise."""
    c = code.strip().lower()
    return SILBERNAGEL if c.startswith("silb") else PRESETS.get(c, LEVER)


def baseline_nrs(
    reports: Iterable[PainReport], last_n: int = 7, before: dt.datetime | None = None
) -> float | None:
    """Athlete's baseline pain: median of the last ``last_n`` rest reports (None if none).

    Reports after ``before`` are ignored. The median resists one bad day (kneeload's
    choice; the presets only say "baseline", docs/science.md §Pain).
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
    """The pain numbers of one session (None = no report).

    ``next_day_nrs`` is the first ``next_morning`` (or late enough ``rest``) report after
    the session within the preset's window; ``next_day_hours`` its delay after the
    session end and ``next_day_context`` its context. ``after_max_nrs`` is shown but never
    stands in for the next-day value.
    """

    during_max_nrs: float | None
    after_max_nrs: float | None
    next_day_nrs: float | None
    next_day_hours: float | None
    next_day_context: PainContext | None = None


def is_next_day_report(
    context: PainContext | str, hours_after_end: float, preset: PainPreset = LEVER
) -> bool:
    """Whether a report ``hours_after_end`` after a session can be its next-day value:
    a ``next_morning`` report within the window, or a ``rest`` report from
    ``next_day_rest_min_h`` on; never ``during`` or ``after``."""
    ctx = PainContext(context)
    if not 0.0 < hours_after_end <= preset.next_day_window_h:
        return False
    if ctx is PainContext.NEXT_MORNING:
        return True
    return ctx is PainContext.REST and hours_after_end >= preset.next_day_rest_min_h


def session_pain(
    reports: Iterable[PainReport],
    session_start: dt.datetime,
    session_end: dt.datetime,
    preset: PainPreset = LEVER,
    session_id: str | None = None,
) -> SessionPain:
    """Pull a session's numbers from reports (pure; times are passed in).

    * during = max of ``during`` reports in [start, end] (or tagged with ``session_id``);
    * after = max of ``after`` reports in (end, end + ``after_window_h``];
    * next day = the FIRST report, by time, that :func:`is_next_day_report` accepts
      (``next_morning`` within ``next_day_window_h``, or ``rest`` from
      ``next_day_rest_min_h`` on). An ``after`` report — pain is often higher an hour
      after a run — never stands in for it.
    """
    during: list[float] = []
    after: list[float] = []
    nxt: tuple[dt.datetime, float, PainContext] | None = None
    after_until = session_end + dt.timedelta(hours=preset.after_window_h)
    for r in reports:
        t = r.reported_at
        if r.context is PainContext.DURING:
            if (
                session_id is not None and r.session_id == session_id
            ) or session_start <= t <= session_end:
                during.append(r.pain_nrs)
            continue
        if r.context is PainContext.AFTER:
            if session_end < t <= after_until:
                after.append(r.pain_nrs)
            continue
        h = (t - session_end).total_seconds() / 3600.0
        if is_next_day_report(r.context, h, preset) and (nxt is None or t < nxt[0]):
            nxt = (t, r.pain_nrs, r.context)
    return SessionPain(
        max(during) if during else None,
        max(after) if after else None,
        nxt[1] if nxt else None,
        (nxt[0] - session_end).total_seconds() / 3600.0 if nxt else None,
        nxt[2] if nxt else None,
    )


def next_day_expected(
    session_end: dt.datetime, time_zone: str = "UTC", preset: PainPreset = LEVER
) -> tuple[dt.datetime, dt.datetime]:
    """(expected at, due by) of a session's next-day report, for a "pending" answer.

    Expected at ``next_morning_hour`` local time on the day after the session's local
    end date (never later than the window's end); due by the end of
    ``next_day_window_h``. ``session_end`` must be timezone-aware.
    """
    tz = ZoneInfo(time_zone)
    due = session_end + dt.timedelta(hours=preset.next_day_window_h)
    day = session_end.astimezone(tz).date() + dt.timedelta(days=1)
    at = dt.datetime.combine(day, dt.time(preset.next_morning_hour), tzinfo=tz)
    return min(at, due).astimezone(dt.UTC), due.astimezone(dt.UTC)


#: The contexts the weekly trend averages: the knee's response to loading.
TREND_CONTEXTS: tuple[PainContext, ...] = (PainContext.DURING, PainContext.NEXT_MORNING)

#: Days in each of the two weeks compared.
TREND_WEEK_DAYS = 7

#: Comparison slack for :func:`pain_trend_label` (means of integer NRS reports such as 7/3
#: are not exact in floating point; a change of exactly the delta must count).
_TREND_EPS_NRS = 1e-9


class PainTrend(StrEnum):
    """Week-on-week pain trend shown to coaches (``daily_load.pain_trend``)."""

    WORSENING = "worsening"
    IMPROVING = "improving"
    STABLE = "stable"


def local_date(t: dt.datetime, time_zone: str | dt.tzinfo = "UTC") -> dt.date:
    """The calendar date of ``t`` (timezone-aware) in ``time_zone`` (a name or a tzinfo)."""
    tz = ZoneInfo(time_zone) if isinstance(time_zone, str) else time_zone
    return t.astimezone(tz).date()


def weekly_pain_trend(
    reports: Iterable[PainReport],
    as_of_date: dt.date,
    time_zone: str | dt.tzinfo = "UTC",
    contexts: Sequence[PainContext] = TREND_CONTEXTS,
) -> tuple[float | None, float | None, float | None]:
    """(this week's mean, last week's mean, change) of pain as of the local day ``as_of_date``.

    The single definition of the weekly pain trend: the worker's pain_trend_worsening alert,
    the pain response's ``weekly_pain_worsening`` finding and the coaches' overview
    (``daily_load.pain_mean_7d_nrs`` / ``pain_mean_prev_7d_nrs`` / ``pain_trend``) all use it.

    Equation::

        this week = mean of pain_nrs over reports whose local date d has
                    0 ≤ (as_of_date − d) ≤ 6 days
        last week = mean over 7 ≤ (as_of_date − d) ≤ 13 days
        change    = this week − last week

    Assumptions (docs/science.md §3, "Weekly trend"):

    * **Contexts** ``during`` and ``next_morning`` only. The pain-monitoring model's weekly
      rule ("pain should not increase from week to week", Silbernagel et al. 2007, AJSM
      35(6):897–906; Thomeé 1997, Phys Ther 77(12):1690–1703) is about the knee's response
      to loading: pain during the activity and the morning after. ``rest`` reports are the
      baseline (:func:`baseline_nrs`), and ``after`` reports peak within hours of a run and
      depend on when the athlete happens to answer; averaging all four contexts made the
      mean move with the reporting habit (a week with more rest reports read "improving").
    * **Windows** are whole calendar days in the athlete's time zone, today included
      (kneeload's choice): a coach reads "this week" as the last seven days of the athlete's
      calendar, and the value of a day depends on that day and the reports only, so the alert
      raised on a report and the overview row of the same day always agree, whatever the
      arrival order or the time the view is read. A report dated after ``as_of_date`` is
      ignored; a week without reports ages out after 14 days.

    None where a week has no report (no change then).
    """
    tz = ZoneInfo(time_zone) if isinstance(time_zone, str) else time_zone
    this: list[float] = []
    last: list[float] = []
    for r in reports:
        if r.context not in contexts:
            continue
        age_days = (as_of_date - local_date(r.reported_at, tz)).days
        if 0 <= age_days < TREND_WEEK_DAYS:
            this.append(r.pain_nrs)
        elif TREND_WEEK_DAYS <= age_days < 2 * TREND_WEEK_DAYS:
            last.append(r.pain_nrs)
    m_this = statistics.fmean(this) if this else None
    m_last = statistics.fmean(last) if last else None
    delta = m_this - m_last if m_this is not None and m_last is not None else None
    return m_this, m_last, delta


def pain_trend_label(
    mean_7d_nrs: float | None, mean_prev_7d_nrs: float | None, delta_nrs: float = 1.0
) -> PainTrend | None:
    """The coach's label of a weekly trend: worsening / improving / stable, None without both.

    ``worsening`` when this week's mean is ≥ ``delta_nrs`` above last week's, ``improving``
    when ≥ ``delta_nrs`` below, ``stable`` otherwise. ``delta_nrs`` = 1 point by default
    (kneeload's choice, the worker's ``KNEELOAD_WORKER_PAIN_TREND_DELTA_NRS``): below the
    ~2-point clinically important difference of the NRS (Farrar et al. 2001, Pain
    94:149–158) so a trend shows early. Unlike the alert it is shown inside the safe zone too.
    """
    if not delta_nrs > 0:
        raise PainValueError("delta_nrs", delta_nrs, "must be > 0")
    if mean_7d_nrs is None or mean_prev_7d_nrs is None:
        return None
    change = mean_7d_nrs - mean_prev_7d_nrs
    if change >= delta_nrs - _TREND_EPS_NRS:
        return PainTrend.WORSENING
    if -change >= delta_nrs - _TREND_EPS_NRS:
        return PainTrend.IMPROVING
    return PainTrend.STABLE


class SessionClass(StrEnum):
    """Session verdict."""

    ACCEPTABLE = "acceptable"
    CAUTION = "caution"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class SessionClassification:
    """Verdict, one-line reason, the individual findings and the numbers used.

    ``reason`` is for a clinician and names the preset and its source; ``reason_code`` is
    the machine-readable snake_case code of the deciding finding (the pain_response
    event's ``reason``):

    * stop — ``pain_during_above_stop_limit``, ``pain_above_baseline_next_day``, or
      ``multiple_cautions`` (two or more caution findings at once);
    * caution — ``pain_during_above_limit`` (load is reduced next time),
      ``not_back_to_baseline``, ``weekly_pain_worsening``;
    * acceptable — ``within_safe_zone`` (every known value ≤ the safe zone),
      ``within_limits``, or ``within_limits_pending`` while the during-run or next-day
      report is missing.

    ``reduce_load`` is True when the next session must carry less load (stop, or pain
    during the run above the preset's limit); ``next_day_pending`` while the next-day
    report has not arrived.
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
    reduce_load: bool = False
    next_day_pending: bool = False
    preset_code: str = "lever"
    preset_source: str = ""
    in_safe_zone: bool = False

    @property
    def next_day_nrs(self) -> float | None:
        """The next-day value used (``settle_nrs``)."""
        return self.settle_nrs


def _f(x: float) -> str:
    return f"{x:g}"


def classify_session(
    during_nrs: float | None,
    settle_nrs: float | None,
    baseline: float | None,
    weekly_change_nrs: float | None = None,
    preset: PainPreset = LEVER,
    weekly_mean_nrs: float | None = None,
) -> SessionClassification:
    """Classify a session acceptable / caution / stop, as the pain-monitoring model does.

    Rules (numbers from ``preset``; LEVER defaults shown):

    * safe zone — a value ≤ 2/10 is within limits whatever the baseline (with no rest
      reports, 1–2 during and 1–2 next morning is acceptable, not "not back to baseline");
    * stop — during > 6/10; next-day pain ≥ 3 above the baseline, or above the top of the
      safe zone when the baseline is lower (so ≥ 5/10 with a baseline of 0); or two or more
      caution findings at once;
    * caution — during > 4/10 (the preset's limit: load is reduced next time, never held);
      next-day pain above both baseline (+ tolerance) and the safe zone; mean weekly pain up
      ≥ 1 point while above the safe zone;
    * acceptable — none of these; missing reports are named ("pending").

    Parameters
    ----------
    during_nrs : float or None
        Highest pain during the run, 0–10.
    settle_nrs : float or None
        The next-day value (:attr:`SessionPain.next_day_nrs`), 0–10. None: not yet known.
        Never an ``after`` report.
    baseline : float or None
        Athlete's rest baseline (:func:`baseline_nrs`); None is taken as 0 and said so.
    weekly_change_nrs, weekly_mean_nrs : float or None
        Change and current value of mean weekly pain (:func:`weekly_pain_trend`); a rise
        while this week's mean stays in the safe zone is not a finding.

    References
    ----------
    docs/science.md §3; LEVER guidance (**unconfirmed** source); Silbernagel
    et al. 2007.
    """
    _check_nrs("during_nrs", during_nrs)
    _check_nrs("settle_nrs", settle_nrs)
    _check_nrs("baseline", baseline)
    if weekly_change_nrs is not None and not math.isfinite(weekly_change_nrs):
        raise PainValueError("weekly_change_nrs", weekly_change_nrs, "must be finite")
    p = preset
    safe = p.safe_max_nrs
    assumed = baseline is None
    base = 0.0 if baseline is None else baseline
    stops: list[str] = []
    cautions: list[str] = []
    notes: list[str] = []
    stop_codes: list[str] = []
    caution_codes: list[str] = []
    reduce = False
    if during_nrs is None:
        notes.append("no during-run report")
    elif during_nrs > p.stop_during_nrs:
        stops.append(f"pain during run {_f(during_nrs)}/10 > {_f(p.stop_during_nrs)}")
        stop_codes.append("pain_during_above_stop_limit")
    elif during_nrs > p.during_max_nrs:
        cautions.append(
            f"pain during run {_f(during_nrs)}/10 > {_f(p.during_max_nrs)}: reduce load"
        )
        caution_codes.append("pain_during_above_limit")
        reduce = True
    if settle_nrs is None:
        notes.append(f"next-day report pending (within {_f(p.next_day_window_h)} h)")
    elif settle_nrs <= safe:
        pass  # absolute safe zone: back to an acceptable level whatever the baseline
    elif settle_nrs >= max(base, safe) + p.stop_above_baseline_nrs:
        ref = f"baseline {_f(base)}" if base >= safe else f"the safe zone ({_f(safe)})"
        stops.append(
            f"pain next day {_f(settle_nrs)}/10, ≥ {_f(p.stop_above_baseline_nrs)} above {ref}"
        )
        stop_codes.append("pain_above_baseline_next_day")
    elif settle_nrs > base + p.settle_tolerance_nrs:
        cautions.append(f"not back to baseline next day ({_f(settle_nrs)} vs {_f(base)}/10)")
        caution_codes.append("not_back_to_baseline")
    if (
        weekly_change_nrs is not None
        and weekly_change_nrs >= p.weekly_worsening_nrs
        and (weekly_mean_nrs is None or weekly_mean_nrs > safe)
    ):
        cautions.append(f"weekly pain up {weekly_change_nrs:+.1f} points")
        caution_codes.append("weekly_pain_worsening")
    pending = settle_nrs is None or during_nrs is None
    known = [x for x in (during_nrs, settle_nrs) if x is not None]
    in_safe = bool(known) and all(x <= safe for x in known)
    if assumed and not in_safe:
        notes.append("no rest reports: baseline taken as 0/10")
    if stops or len(cautions) >= 2:
        status = SessionClass.STOP
        findings = stops + cautions
        code = stop_codes[0] if stop_codes else "multiple_cautions"
        reduce = True
    elif cautions:
        status = SessionClass.CAUTION
        findings = cautions
        code = caution_codes[0]
    else:
        status = SessionClass.ACCEPTABLE
        if pending:
            code = "within_limits_pending"
        else:
            code = "within_safe_zone" if in_safe else "within_limits"
        findings = [
            (
                f"pain within the safe zone (≤ {_f(safe)}/10)"
                if in_safe
                else f"pain within {p.name} limits"
            )
            + (
                f" (during {_f(during_nrs)}/10 ≤ {_f(p.during_max_nrs)})"
                if during_nrs is not None and not in_safe
                else ""
            )
        ]
    reason = (
        f"{status.value.upper()}: "
        + "; ".join(findings + notes)
        + f" [{p.name} preset: {p.source}]"
    )
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
        reduce,
        settle_nrs is None,
        p.code,
        p.source,
        in_safe,
    )


class BwsAction(StrEnum):
    """What to do with body-weight support next session."""

    HOLD = "hold"
    STEP_DOWN = "step_down"  # less support → more load on the knee
    STEP_UP = "step_up"  # more support → less load


@dataclass(frozen=True, slots=True)
class BwsStepConfig:
    """BWS progression settings.

    step_pct 5 (5–10% per week is common practice, **unconfirmed**; docs/science.md §3);
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
    ``step_pct``; caution → hold, except pain during the run above the preset's limit,
    which like stop → step up by ``step_pct`` (the suggestion always reduces load then).
    Always within [min_pct, unit_max_pct]; at a bound the suggestion is hold, with the reason.
    Addressed to the clinician, never applied automatically (docs/science.md §3).
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
    if c.reduce_load:  # stop, or pain during the run above the preset's limit
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


class LoadAction(StrEnum):
    """What to do with the load of the next session (any session, on or off a BWS unit)."""

    REDUCE = "reduce"
    HOLD = "hold"
    PROGRESS = "progress"


@dataclass(frozen=True, slots=True)
class LoadSuggestion:
    """A suggestion for the clinician about the next session's load; never applied."""

    action: LoadAction
    reason: str
    addressed_to: str = "clinician"
    auto_apply: bool = False


def suggest_load(classification: SessionClassification) -> LoadSuggestion:
    """Next session's load from the pain verdict, for sessions on or off a BWS unit.

    reduce (stop, or pain during the run above the preset's limit: a shorter or slower
    session, or more support on a unit) → the suggestion always reduces load; caution →
    hold; acceptable but pending → hold until the missing report; acceptable → progress
    may continue. The size of a step is the clinician's choice (no published protocol
    fixes it, docs/science.md §3).
    """
    c = classification
    if c.reduce_load:
        return LoadSuggestion(
            LoadAction.REDUCE,
            f"{c.reason}. Reduce load next session: shorter or slower (more support on a "
            "BWS unit).",
        )
    if c.status is SessionClass.CAUTION:
        return LoadSuggestion(LoadAction.HOLD, f"{c.reason}. Hold the load next session.")
    if c.pending:
        return LoadSuggestion(
            LoadAction.HOLD, f"{c.reason}. Hold the load until the missing report arrives."
        )
    return LoadSuggestion(LoadAction.PROGRESS, f"{c.reason}. Progression may continue.")
