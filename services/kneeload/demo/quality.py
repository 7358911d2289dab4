"""Alert quality of a demo run: episodes and notifications against the simulator's ground truth.

Ground truth (:func:`ground_truth`) is what the simulator planted, with a time window and
the alert kinds that should catch it:

* ``load_spike``: the spike athlete's camp week (± 1 day for local dates); kinds
  ``session_spike`` (the default overload rule once it lands), ``session_load_high``,
  ``acwr_high``, ``load_spike_wow``;
* ``pain``: the pain athlete from the flare's start to the end; kinds ``pain_high``,
  ``pain_not_settled``, ``pain_trend_worsening``;
* ``silent_unit``: the unit from its last heartbeat period before the silence to the end
  (the offline alert is stamped from the unit's last message); kinds ``unit_offline``;
* ``drifting_unit``: the unit from the start of its support drift to the end; kinds
  ``unit_calibration_drift``.

:func:`alert_quality` scores the run's alert rows (one row per episode change: opened,
escalated, resolved; rows without an episode are counted as opened episodes of their own):

* per kind: precision = episodes of the kind that open inside the window of a planted
  situation expecting that kind / all episodes of the kind; recall = planted situations
  expecting the kind with such an episode / planted situations expecting it (None when
  nothing of the kind was expected or raised);
* per planted situation: caught (an expected-kind episode opened in its window), episodes
  and notifications (changes) of its subject inside the window;
* healthy athletes (nothing planted that alerts): episodes and notifications per
  athlete-week.

"Notifications" are episode changes: notify sends each change once per routed channel
(routing is by team/clinic, so per channel the count is the same).
Targets (issue #14): every situation caught, ≤ 3 per situation, ≤ 0.15 per healthy
athlete-week.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kneeload.demo.sim import Scenario

__all__ = ["Situation", "alert_quality", "ground_truth", "spike_sessions"]

OVERLOAD_KINDS = ("session_spike", "session_load_high", "acwr_high", "load_spike_wow")
PAIN_KINDS = ("pain_high", "pain_not_settled", "pain_trend_worsening")
UNIT_KINDS = ("unit_offline",)
DRIFT_KINDS = ("unit_calibration_drift",)
TARGET_PER_SITUATION = 3.0
TARGET_PER_HEALTHY_ATHLETE_WEEK = 0.15


@dataclass(frozen=True, slots=True)
class Situation:
    """One planted situation: subject, window [start, end], the kinds that catch it."""

    name: str
    subject: str  # athlete:<id> or unit:<id>
    start: dt.datetime
    end: dt.datetime
    kinds: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "kinds": list(self.kinds),
        }

    def contains(self, subject: str, t: dt.datetime) -> bool:
        return subject == self.subject and self.start <= t <= self.end


def ground_truth(sc: Scenario) -> list[Situation]:
    """The planted situations that alerts should catch, with their windows."""
    p, cfg = sc.planted, sc.config
    day = dt.timedelta(days=1)
    week_start = cfg.start + dt.timedelta(days=7 * p.load_spike_week)
    end = cfg.end + day  # processing-time checks (silence) may stamp just past the end
    return [
        Situation(
            "load_spike",
            f"athlete:{p.load_spike_athlete}",
            week_start - day,
            week_start + dt.timedelta(days=7) + day,
            OVERLOAD_KINDS,
        ),
        Situation("pain", f"athlete:{p.pain_athlete}", p.pain_from, end, PAIN_KINDS),
        Situation(  # the offline alert is stamped from the last message (a heartbeat before)
            "silent_unit",
            f"unit:{p.silent_unit}",
            p.silent_from - dt.timedelta(minutes=cfg.heartbeat_period_min),
            end,
            UNIT_KINDS,
        ),
        *(
            [Situation("drifting_unit", f"unit:{p.drift_unit}", p.drift_from, end, DRIFT_KINDS)]
            if p.drift_unit and p.drift_from is not None
            else []
        ),
    ]


def spike_sessions(sc: Scenario) -> list[Situation]:
    """Every simulated session that is a spike by kneeload's session-spike rule
    (:func:`kneeload.core.spike.session_spike`, default config), from the simulator's own
    samples: distance and estimated PFJ load (:func:`kneeload.demo.expect.session_pfj_load`)
    against the athlete's sessions of the previous 30 days. The window is the session, to an
    hour after its end (the worker judges a session when it closes)."""
    from kneeload.core.spike import PastSession, session_spike
    from kneeload.demo.expect import session_pfj_load

    out: list[Situation] = []
    past: dict[str, list[PastSession]] = {}
    for plan in sc.sessions:
        aid = plan.athlete.athlete_id
        smp = plan.samples()
        dist = float(smp.distance_m[-1]) if len(smp) else 0.0
        start_ms = round(plan.start.timestamp() * 1000)
        mine = past.setdefault(aid, [])
        load = session_pfj_load(plan)
        verdict = session_spike(dist, load, start_ms, mine)
        mine.append(PastSession(start_ms, dist, load))
        if verdict.spike is not None:
            out.append(
                Situation(
                    f"spike:{plan.session_id}:{verdict.spike.category.value}",
                    f"athlete:{aid}",
                    plan.start,
                    plan.end + dt.timedelta(hours=1),
                    ("session_spike",),
                )
            )
    return out


def _time(x: Any) -> dt.datetime:
    return x if isinstance(x, dt.datetime) else dt.datetime.fromisoformat(str(x))


def _subject(a: Mapping[str, Any]) -> str:
    return f"athlete:{a['athlete_id']}" if a.get("athlete_id") else f"unit:{a.get('unit_id')}"


def _ratio(n: int, d: int) -> float | None:
    return round(n / d, 3) if d else None


def alert_quality(
    sc: Scenario,
    alerts: Iterable[Mapping[str, Any]],
    spikes: list[Situation] | None = None,
    digest_transitions: frozenset[str] = frozenset(),
    digest_kinds: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The ``alert_quality`` block of out/demo-summary.json (see the module docstring).

    ``alerts`` rows need kind, athlete_id, unit_id, event_time and, for episode changes,
    episode_transition (rows without it count as an opened episode) and ``in_progress``
    (a session_spike raised while its session still ran). ``spikes``
    (:func:`spike_sessions`) adds every rule-spike session as ground truth of
    ``session_spike`` (per kind precision and recall; not a planted situation).
    ``digest_transitions`` / ``digest_kinds``: the changes the demo's channels hold for their
    daily digest (notify's ``daily_digest``) — counted as ``in_digest``, not as pushed
    notifications.
    """
    truth = ground_truth(sc)
    kind_truth = truth + list(spikes or [])
    rows = [dict(a, _t=_time(a["event_time"]), _s=_subject(a)) for a in alerts]
    opened = [r for r in rows if (r.get("episode_transition") or "opened") == "opened"]
    pushed = [
        r
        for r in rows
        if (r.get("episode_transition") or "opened") not in digest_transitions
        and r["kind"] not in digest_kinds
    ]
    per_kind: dict[str, Any] = {}
    kinds = sorted({r["kind"] for r in opened} | {k for s in kind_truth for k in s.kinds})
    for k in kinds:
        eps = [r for r in opened if r["kind"] == k]
        expecting = [s for s in kind_truth if k in s.kinds]
        hits = [r for r in eps if any(s.contains(r["_s"], r["_t"]) for s in expecting)]
        found = [s for s in expecting if any(s.contains(r["_s"], r["_t"]) for r in eps)]
        if not eps and not expecting:
            continue
        per_kind[k] = {
            "episodes": len(eps),
            "true_positives": len(hits),
            "precision": _ratio(len(hits), len(eps)),
            "situations_expecting": len(expecting),
            "recall": _ratio(len(found), len(expecting)),
        }
    situations: dict[str, Any] = {}
    for s in truth:
        mine = [r for r in pushed if s.contains(r["_s"], r["_t"])]
        held = [r for r in rows if s.contains(r["_s"], r["_t"])]
        eps = [r for r in opened if s.contains(r["_s"], r["_t"])]
        situations[s.name] = {
            **s.as_dict(),
            "caught": any(r["kind"] in s.kinds for r in eps),
            "episodes": len(eps),
            "notifications": len(mine),
            "in_digest": len(held) - len(mine),
            "meets_target": len(eps) <= TARGET_PER_SITUATION and len(mine) <= TARGET_PER_SITUATION,
        }
        if "session_spike" in s.kinds:  # issue #14: the planted spike caught while it runs
            situations[s.name]["caught_live"] = any(
                r["kind"] == "session_spike" and r.get("in_progress") for r in mine
            )
    planted_athletes = {s.subject for s in truth if s.subject.startswith("athlete:")}
    healthy = [f"athlete:{a.athlete_id}" for a in sc.athletes]
    healthy = [h for h in healthy if h not in planted_athletes]
    weeks = len(healthy) * (sc.config.end - sc.config.start) / dt.timedelta(days=7)
    h_eps = sum(1 for r in opened if r["_s"] in healthy)
    h_notes = sum(1 for r in pushed if r["_s"] in healthy)
    per_week = {
        "athletes": len(healthy),
        "athlete_weeks": round(weeks, 2),
        "episodes": h_eps,
        "notifications": h_notes,
        "episodes_per_athlete_week": round(h_eps / weeks, 3) if weeks else None,
        "notifications_per_athlete_week": round(h_notes / weeks, 3) if weeks else None,
    }
    per_week["meets_target"] = weeks > 0 and max(h_eps, h_notes) / weeks <= (
        TARGET_PER_HEALTHY_ATHLETE_WEEK
    )
    return {
        "spike_sessions": [s.name.split(":", 1)[1] for s in spikes or []],
        "per_kind": per_kind,
        "per_situation": situations,
        "healthy": per_week,
        "all_caught": all(v["caught"] for v in situations.values()),
        "targets": {
            "per_situation_max": TARGET_PER_SITUATION,
            "per_healthy_athlete_week_max": TARGET_PER_HEALTHY_ATHLETE_WEEK,
        },
        "digest_transitions": sorted(digest_transitions),
        "digest_kinds": sorted(digest_kinds),
        "note": "episodes count when they open inside a planted window; notifications are "
        "the episode changes pushed at once (each once per routed channel); changes of the "
        "digest transitions wait for the channels' daily digest (in_digest)",
    }
