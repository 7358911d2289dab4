"""Alert rules: pure functions from state to :class:`Alert` (or None), plus a cooldown.

One function per rule, each taking the numbers, the subject (athlete or unit, team or
clinic), the event time and :class:`AlertThresholds`:

=========================  =======================================================
:func:`check_acwr`          ACWR ≥ 1.5 (Gabbett 2016 band; a trend, not a validated
                            injury threshold — Impellizzeri et al. 2020)
:func:`check_week_over_week`  weekly load up > 30 % (Nielsen et al. 2014)
:func:`check_session_load`  session PFJ load ≥ 2 × chronic daily mean (kneeload;
                            retired from the worker in favour of the session spike)
:func:`check_session_spike` a session > 10 % above the longest of the last 30 days, on
                            distance or PFJ load (Frandsen et al. 2025;
                            :mod:`kneeload.core.spike`)
:func:`check_pain`          pain during > 4/10 (LEVER preset)
:func:`check_pain_not_settled`  not back to baseline within 24 h (LEVER preset)
:func:`check_weekly_pain_trend` mean weekly pain up ≥ 1 point
:func:`check_unit_silent`   no telemetry from a unit for longer than its timeout
:func:`check_unit_calibration_drift`  |measured − commanded support| > 3 pp for 30 min
                            of running time (kneeload; :mod:`kneeload.core.fleet`)
=========================  =======================================================

Every alert carries a deterministic ``dedup_key`` (kind, subject, day or window) so
re-processing the same data yields the same key; :func:`apply_cooldown` suppresses
repeats of the same kind for the same subject within ``cooldown`` unless the
severity rises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kneeload.core.fleet import DEFAULT_FLEET_THRESHOLDS, DriftEpisode, FleetThresholds
from kneeload.core.spike import SpikeVerdict

__all__ = [
    "Alert",
    "AlertKind",
    "AlertThresholds",
    "Severity",
    "apply_cooldown",
    "check_acwr",
    "check_pain",
    "check_pain_not_settled",
    "check_session_load",
    "check_unit_calibration_drift",
    "check_unit_silent",
    "check_week_over_week",
    "check_weekly_pain_trend",
    "dedup_key",
]


class AlertKind(StrEnum):
    """What an alert is about: exactly the ``kind`` enum of schemas/alert.schema.json.

    The event schema is the source of truth (a test compares the two), so an alert's
    kind and dedup key are published as core computes them, with no mapping in between.
    """

    ACWR_HIGH = "acwr_high"
    LOAD_SPIKE_WOW = "load_spike_wow"
    SESSION_LOAD_HIGH = "session_load_high"
    PAIN_HIGH = "pain_high"
    PAIN_NOT_SETTLED = "pain_not_settled"
    PAIN_TREND_WORSENING = "pain_trend_worsening"
    UNIT_OFFLINE = "unit_offline"
    UNIT_CALIBRATION_DRIFT = "unit_calibration_drift"
    SESSION_SPIKE = "session_spike"
    # former member names, kept as aliases (same values)
    WEEKLY_LOAD_JUMP = "load_spike_wow"
    PAIN_TREND_WORSE = "pain_trend_worsening"
    UNIT_SILENT = "unit_offline"


class Severity(StrEnum):
    """Ordered info < warning < critical."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0, 1, 2."""
        return ("info", "warning", "critical").index(self.value)


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    """Thresholds, each a configurable default with its source.

    acwr_warning 1.5 (Gabbett 2016 "danger" band; docs/science.md §2), acwr_critical 2.0
    (kneeload's choice); wow_increase_pct 30 (Nielsen et al. 2014, JOSPT);
    session_load_ratio 2.0 × chronic daily mean (kneeload's choice, **unconfirmed**);
    pain_nrs 4 (LEVER; > 6 critical, kneeload's choice); pain_settle_tolerance_nrs 0 and
    pain_settle_hours 24 (LEVER); pain_safe_max_nrs 2 (pain-monitoring model's safe zone,
    Silbernagel et al. 2007, as :class:`kneeload.core.pain.PainPreset`: pain at or below it
    is settled whatever the baseline, and a weekly trend inside it is no finding);
    pain_trend_nrs 1 point week on week (kneeload's choice); unit_timeout 5 min (kneeload's
    choice); cooldown 12 h (kneeload's choice).
    """

    acwr_warning: float = 1.5
    acwr_critical: float = 2.0
    wow_increase_pct: float = 30.0
    session_load_ratio: float = 2.0
    pain_nrs: float = 4.0
    pain_critical_nrs: float = 6.0
    pain_settle_tolerance_nrs: float = 0.0
    pain_settle_hours: float = 24.0
    pain_safe_max_nrs: float = 2.0
    pain_trend_nrs: float = 1.0
    unit_timeout: dt.timedelta = dt.timedelta(minutes=5)
    cooldown: dt.timedelta = dt.timedelta(hours=12)


DEFAULT_THRESHOLDS = AlertThresholds()


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. ``values`` holds the numbers that triggered it."""

    kind: AlertKind
    severity: Severity
    event_time: dt.datetime
    message: str
    values: Mapping[str, float | str | None]
    dedup_key: str
    athlete_id: str | None = None
    unit_id: str | None = None
    team_id: str | None = None
    clinic_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """athlete:<id> or unit:<id>."""
        return (
            f"athlete:{self.athlete_id}" if self.athlete_id is not None else f"unit:{self.unit_id}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (times ISO 8601)."""
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "event_time": self.event_time.isoformat(),
            "message": self.message,
            "values": dict(self.values),
            "dedup_key": self.dedup_key,
            "athlete_id": self.athlete_id,
            "unit_id": self.unit_id,
            "team_id": self.team_id,
            "clinic_id": self.clinic_id,
        }


def dedup_key(kind: AlertKind, subject: str, bucket: str) -> str:
    """Deterministic key ``<kind>:<subject>:<bucket>`` (bucket: a day or window)."""
    return f"{kind.value}:{subject}:{bucket}"


def _athlete_alert(
    kind: AlertKind,
    severity: Severity,
    athlete_id: str,
    team_id: str | None,
    event_time: dt.datetime,
    message: str,
    values: Mapping[str, float | str | None],
    bucket: str | None = None,
) -> Alert:
    b = bucket if bucket is not None else event_time.date().isoformat()
    return Alert(
        kind,
        severity,
        event_time,
        message,
        dict(values),
        dedup_key(kind, f"athlete:{athlete_id}", b),
        athlete_id=athlete_id,
        team_id=team_id,
    )


def check_acwr(
    athlete_id: str,
    team_id: str | None,
    event_time: dt.datetime,
    acwr: float | None,
    acute: float | None = None,
    chronic: float | None = None,
    method: str = "ewma",
    t: AlertThresholds = DEFAULT_THRESHOLDS,
) -> Alert | None:
    """ACWR ≥ ``acwr_warning`` (1.5) → warning, ≥ ``acwr_critical`` (2.0) → critical.

    A withheld ratio (None) never alerts. The message says it is a trend, not a
    validated injury threshold (Impellizzeri et al. 2020; docs/science.md §2).
    """
    if acwr is None or acwr < t.acwr_warning:
        return None
    sev = Severity.CRITICAL if acwr >= t.acwr_critical else Severity.WARNING
    return _athlete_alert(
        AlertKind.ACWR_HIGH,
        sev,
        athlete_id,
        team_id,
        event_time,
        f"Acute:chronic load ratio {acwr:.2f} ({method}) ≥ {t.acwr_warning:g}: "
        "recent knee load well above the usual (a trend, not a validated injury threshold).",
        {"acwr": acwr, "acute": acute, "chronic": chronic, "threshold": t.acwr_warning},
    )


def check_week_over_week(
    athlete_id: str,
    team_id: str | None,
    event_time: dt.datetime,
    wow_change_pct: float | None,
    weekly_load: float | None = None,
    t: AlertThresholds = DEFAULT_THRESHOLDS,
) -> Alert | None:
    """Weekly load up more than ``wow_increase_pct`` (30 %) on the previous week (Nielsen 2014)."""
    if wow_change_pct is None or wow_change_pct <= t.wow_increase_pct:
        return None
    return _athlete_alert(
        AlertKind.LOAD_SPIKE_WOW,
        Severity.WARNING,
        athlete_id,
        team_id,
        event_time,
        f"Weekly knee load up {wow_change_pct:.0f}% on the previous week "
        f"(> {t.wow_increase_pct:g}%).",
        {
            "wow_change_pct": wow_change_pct,
            "weekly_load": weekly_load,
            "threshold": t.wow_increase_pct,
        },
    )


def check_session_load(
    athlete_id: str,
    team_id: str | None,
    event_time: dt.datetime,
    session_load: float,
    chronic_daily_mean: float | None,
    session_id: str | None = None,
    t: AlertThresholds = DEFAULT_THRESHOLDS,
) -> Alert | None:
    """Session PFJ load ≥ ``session_load_ratio`` (2) × the athlete's chronic daily mean.

    No alert without a positive chronic mean (no history to compare with).
    """
    if chronic_daily_mean is None or chronic_daily_mean <= 0.0:
        return None
    ratio = session_load / chronic_daily_mean
    if ratio < t.session_load_ratio:
        return None
    return _athlete_alert(
        AlertKind.SESSION_LOAD_HIGH,
        Severity.WARNING,
        athlete_id,
        team_id,
        event_time,
        f"Session knee load {ratio:.1f}× the athlete's chronic daily mean "
        f"(≥ {t.session_load_ratio:g}×).",
        {
            "session_load": session_load,
            "chronic_daily_mean": chronic_daily_mean,
            "ratio": ratio,
            "threshold": t.session_load_ratio,
        },
        bucket=session_id,
    )


def check_pain(
    athlete_id: str,
    team_id: str | None,
    event_time: dt.datetime,
    pain_nrs: float,
    context: str = "during",
    t: AlertThresholds = DEFAULT_THRESHOLDS,
) -> Alert | None:
    """Pain > ``pain_nrs`` (4/10, LEVER) → warning; > ``pain_critical_nrs`` (6) → critical."""
    if pain_nrs <= t.pain_nrs:
        return None
    sev = Severity.CRITICAL if pain_nrs > t.pain_critical_nrs else Severity.WARNING
    return _athlete_alert(
        AlertKind.PAIN_HIGH,
        sev,
        athlete_id,
        team_id,
        event_time,
        f"Pain {pain_nrs:g}/10 ({context}) above {t.pain_nrs:g}/10.",
        {"pain_nrs": pain_nrs, "threshold": t.pain_nrs},
    )


def check_pain_not_settled(
    athlete_id: str,
    team_id: str | None,
    event_time: dt.datetime,
    baseline_nrs: float,
    pain_nrs: float,
    hours_after_session: float,
    session_id: str | None = None,
    t: AlertThresholds = DEFAULT_THRESHOLDS,
) -> Alert | None:
    """Pain still above baseline (+ tolerance) and above the safe zone (``pain_safe_max_nrs``,
    2/10) once ``pain_settle_hours`` (24 h) have passed.

    ``pain_nrs`` is the last report in the window; evaluated only when the window has
    closed (``hours_after_session`` ≥ 24) or a next-morning report is in.
    """
    if hours_after_session < t.pain_settle_hours * 0.5:  # too early to judge
        return None
    if pain_nrs <= max(baseline_nrs + t.pain_settle_tolerance_nrs, t.pain_safe_max_nrs):
        return None  # back to baseline, or within the safe zone whatever the baseline
    return _athlete_alert(
        AlertKind.PAIN_NOT_SETTLED,
        Severity.WARNING,
        athlete_id,
        team_id,
        event_time,
        f"Pain {pain_nrs:g}/10 {hours_after_session:.0f} h after the session, "
        f"baseline {baseline_nrs:g}/10: "
        f"not back to baseline within {t.pain_settle_hours:g} h.",
        {
            "pain_nrs": pain_nrs,
            "baseline_nrs": baseline_nrs,
            "hours_after_session": hours_after_session,
        },
        bucket=session_id,
    )


def check_weekly_pain_trend(
    athlete_id: str,
    team_id: str | None,
    event_time: dt.datetime,
    this_week_mean_nrs: float | None,
    last_week_mean_nrs: float | None,
    t: AlertThresholds = DEFAULT_THRESHOLDS,
) -> Alert | None:
    """Mean weekly pain up ≥ ``pain_trend_nrs`` (1 point) on last week, above the safe zone."""
    if this_week_mean_nrs is None or last_week_mean_nrs is None:
        return None
    delta = this_week_mean_nrs - last_week_mean_nrs
    if delta < t.pain_trend_nrs or this_week_mean_nrs <= t.pain_safe_max_nrs:
        return None  # not worse, or worse inside the safe zone (no finding)
    iso = event_time.isocalendar()
    return _athlete_alert(
        AlertKind.PAIN_TREND_WORSENING,
        Severity.WARNING,
        athlete_id,
        team_id,
        event_time,
        f"Pain worse week on week: mean {this_week_mean_nrs:.1f} vs {last_week_mean_nrs:.1f}/10.",
        {
            "this_week_mean_nrs": this_week_mean_nrs,
            "last_week_mean_nrs": last_week_mean_nrs,
            "delta": delta,
        },
        bucket=f"{iso.year}-W{iso.week:02d}",
    )


def _compact_utc(t: dt.datetime) -> str:
    """``20240503T065400Z``: a time bucket safe inside ids (the alert schema allows no ``+``)."""
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC)
    return t.strftime("%Y%m%dT%H%M%SZ")


def check_unit_silent(
    unit_id: str,
    clinic_id: str | None,
    last_seen: dt.datetime,
    now: dt.datetime,
    timeout: dt.timedelta | None = None,
    t: AlertThresholds = DEFAULT_THRESHOLDS,
) -> Alert | None:
    """No telemetry from a unit for longer than its timeout (default 5 min).

    The dedup key is bucketed by ``last_seen``: one silence, one key.
    """
    limit = timeout if timeout is not None else t.unit_timeout
    silent = now - last_seen
    if silent <= limit:
        return None
    kind = AlertKind.UNIT_OFFLINE
    return Alert(
        kind,
        Severity.WARNING,
        now,
        f"Unit {unit_id} silent for {silent.total_seconds() / 60:.0f} min (timeout "
        f"{limit.total_seconds() / 60:g} min).",
        {"silent_s": silent.total_seconds(), "timeout_s": limit.total_seconds()},
        dedup_key(kind, f"unit:{unit_id}", _compact_utc(last_seen)),
        unit_id=unit_id,
        clinic_id=clinic_id,
    )


def check_unit_calibration_drift(
    unit_id: str,
    clinic_id: str | None,
    event_time: dt.datetime,
    episode: DriftEpisode,
    t: FleetThresholds = DEFAULT_FLEET_THRESHOLDS,
) -> Alert | None:
    """|measured − commanded support| above ``drift_bias_pp`` (3 pp) for ``drift_running_s``
    (30 min) of running time → warning; a mean bias of at least ``drift_critical_pp`` (6 pp)
    → critical (all kneeload's choices, :class:`kneeload.core.fleet.FleetThresholds`).

    ``episode`` is the unit's :class:`kneeload.core.fleet.DriftEpisode`. One alert per
    episode and severity: None when the episode already alerted at this severity or
    higher. The dedup key is bucketed by the episode's start (plus ``.critical`` for the
    escalation), so a replay yields the same keys.
    """
    mean = episode.mean_bias_pp
    if episode.since_ms is None or mean is None or episode.above_s < t.drift_running_s:
        return None
    sev = Severity.CRITICAL if abs(mean) >= t.drift_critical_pp else Severity.WARNING
    if episode.alerted and Severity(episode.alerted).rank >= sev.rank:
        return None
    kind = AlertKind.UNIT_CALIBRATION_DRIFT
    since = dt.datetime.fromtimestamp(episode.since_ms / 1000.0, dt.UTC)
    bucket = _compact_utc(since) + (".critical" if sev is Severity.CRITICAL else "")
    direction = "more" if mean > 0 else "less"
    return Alert(
        kind,
        sev,
        event_time,
        f"Unit {unit_id} measures {abs(mean):.1f} pp {direction} body-weight support than "
        f"commanded over {episode.above_s / 60:.0f} running minutes (tolerance "
        f"{t.drift_bias_pp:g} pp): check its calibration; PFJ estimates use the measured "
        "support.",
        {
            "bias_pp": round(mean, 3),
            "above_running_s": round(episode.above_s, 1),
            "threshold_pp": t.drift_bias_pp,
            "critical_pp": t.drift_critical_pp,
            "running_threshold_s": t.drift_running_s,
        },
        dedup_key(kind, f"unit:{unit_id}", bucket),
        unit_id=unit_id,
        clinic_id=clinic_id,
    )


def apply_cooldown(
    alerts: Iterable[Alert | None],
    last_sent: Mapping[str, tuple[str, str]],
    cooldown: dt.timedelta = DEFAULT_THRESHOLDS.cooldown,
) -> tuple[list[Alert], dict[str, tuple[str, str]]]:
    """Drop repeats within ``cooldown``; returns (alerts to send, new state).

    State maps ``<kind>:<subject>`` → (ISO event time, severity) of the last alert
    sent; it is a plain JSON-able dict. A repeat passes when the cooldown has elapsed
    or its severity is higher than the last one sent. Exact duplicates (same
    dedup_key in one batch) are dropped. ``None`` entries are skipped so rule outputs
    can be passed directly.
    """
    state = dict(last_sent)
    out: list[Alert] = []
    seen: set[str] = set()
    for a in sorted((a for a in alerts if a is not None), key=lambda a: a.event_time):
        if a.dedup_key in seen:
            continue
        key = f"{a.kind.value}:{a.subject}"
        prev = state.get(key)
        if prev is not None:
            prev_time = dt.datetime.fromisoformat(prev[0])
            escalates = a.severity.rank > Severity(prev[1]).rank
            if a.event_time - prev_time < cooldown and not escalates:
                continue
        seen.add(a.dedup_key)
        state[key] = (a.event_time.isoformat(), a.severity.value)
        out.append(a)
    return out, state


_SPIKE_SEVERITY = {
    "small": Severity.INFO,
    "moderate": Severity.WARNING,
    "large": Severity.CRITICAL,
}


def check_session_spike(
    athlete_id: str,
    team_id: str | None,
    event_time: dt.datetime,
    verdict: SpikeVerdict,
    session_id: str,
    in_progress: bool = False,
) -> Alert | None:
    """``session_spike`` when :func:`kneeload.core.spike.session_spike` found one.

    Severity by Frandsen et al. 2025's category (small → info, moderate → warning, large →
    critical: the large spike had the highest hazard ratio, 2.28). The values name the
    measure that decided (distance or estimated PFJ load), the session's value, the 30-day
    ceiling, the ratio and the category, and both measures' ratios. One alert per session.
    ``in_progress``: the session had not ended at ``event_time`` (its values so far already
    pass the ceiling); the message says "During the session" and the values
    ``in_progress: true`` — true whether the data arrived live or was uploaded later.
    """
    s = verdict.spike
    if s is None:
        return None
    unit = "m" if s.measure == "distance_m" else "MPa·s (estimate)"
    what = "distance" if s.measure == "distance_m" else "PFJ load"
    pct = 100.0 * (s.ratio or 0.0)
    values: dict[str, float | str | None] = {
        "measure": s.measure,
        "session_value": s.value,
        "ceiling_30d": s.ceiling,
        "ratio": s.ratio,
        "category": s.category.value,
        "sessions_in_window": verdict.sessions_in_window,
        "in_progress": in_progress,
    }
    for m in verdict.measures:
        values[f"{m.measure}_ratio"] = m.ratio
    return _athlete_alert(
        AlertKind.SESSION_SPIKE,
        _SPIKE_SEVERITY[s.category.value],
        athlete_id,
        team_id,
        event_time,
        ("During the session, so far — " if in_progress else "")
        + f"Session spike ({s.category.value}): {what} "
        f"{s.value:.0f} {unit}, {pct:.0f}% above the longest of the last 30 days "
        f"({s.ceiling:.0f}); Frandsen et al. 2025.",
        values,
        bucket=session_id,
    )
