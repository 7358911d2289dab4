"""The workers' edge to :mod:`kneeload.core.episodes`: rule verdicts in, alert events out.

A worker collects, per processed event, each rule it evaluated: the core :class:`Alert`
when the rule fired, or a *clear* (:func:`clear`) when it was evaluated and did not.
:func:`publish` runs them through core's episode state machine (state kept in the
athlete's or unit's worker state under ``"episodes"``, plain JSON) and returns one alert
event per episode change only: opened, escalated, resolved. The event's ``alert_id`` is
the change id and its ``dedup_key`` the episode id (both deterministic, so replays upsert);
``values`` gains ``episode_id`` and ``episode_transition``. A resolved event carries the
resolving event's id and time and severity ``info``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, MutableMapping
from typing import Any

import msgspec

from kneeload.core import alerts as core_alerts
from kneeload.core.episodes import (
    Change,
    ConditionState,
    Observation,
    Transition,
    advance,
    condition_key,
    order_key,
)
from kneeload.topics import ALERTS
from kneeload.worker.timeutil import iso

__all__ = ["Clear", "Verdict", "clear", "or_clear", "publish"]

Output = tuple[str, str, dict[str, Any]]


class Clear(msgspec.Struct, frozen=True):
    """A rule evaluated and not firing: the condition is clear."""

    kind: core_alerts.AlertKind
    event_time: dt.datetime
    event_id: str


Verdict = core_alerts.Alert | Clear | None


def clear(kind: core_alerts.AlertKind, event_time: dt.datetime, event_id: str) -> Clear:
    """A clear verdict of ``kind`` from event ``event_id`` at ``event_time``."""
    return Clear(kind, event_time, event_id)


def _ms(t: dt.datetime) -> int:
    return round(t.timestamp() * 1000)


def publish(
    state: MutableMapping[str, Any],
    verdicts: Iterable[Verdict],
    subject: str,
    ids: dict[str, str | None],
) -> list[Output]:
    """Episode changes of ``verdicts`` (``subject`` ``athlete:<id>``/``unit:<id>``).

    ``ids`` has athlete_id, unit_id, team_id and clinic_id for resolved events (a raised
    alert's own ids are used for its changes).
    """
    fired: dict[str, core_alerts.Alert] = {}
    obs: list[Observation] = []
    for v in verdicts:
        if isinstance(v, core_alerts.Alert):
            fired[v.dedup_key] = v
            obs.append(
                Observation(
                    condition_key(v.kind.value, v.subject),
                    _ms(v.event_time),
                    v.dedup_key,
                    v.severity,
                )
            )
        elif isinstance(v, Clear):
            cond = condition_key(v.kind.value, subject)
            obs.append(Observation(cond, _ms(v.event_time), v.event_id, None))
    if not obs:
        return []
    raw = state.get("episodes") or {}
    states = {k: msgspec.convert(s, ConditionState) for k, s in raw.items()}
    out: list[Output] = []
    for o in sorted(obs, key=order_key):
        states, changes = advance(states, o)
        out += [_event(c, fired.get(c.event_id), ids) for c in changes]
    state["episodes"] = {k: msgspec.to_builtins(s) for k, s in states.items()}
    return out


def _event(c: Change, a: core_alerts.Alert | None, ids: dict[str, str | None]) -> Output:
    kind = c.condition.split(":", 1)[0]
    if a is not None and c.transition is not Transition.RESOLVED:
        values: dict[str, Any] = dict(a.values)
        message = a.message if c.transition is Transition.OPENED else f"Escalated: {a.message}"
        severity = a.severity.value
        who = {
            "athlete_id": a.athlete_id,
            "unit_id": a.unit_id,
            "team_id": a.team_id,
            "clinic_id": a.clinic_id,
        }
    else:
        values = {"episode_severity": c.severity.value, "resolved_by": c.event_id}
        message = (
            f"Resolved: {kind} cleared (episode {c.episode_id}, highest severity "
            f"{c.severity.value}), by event {c.event_id}."
        )
        severity = core_alerts.Severity.INFO.value
        who = {k: ids.get(k) for k in ("athlete_id", "unit_id", "team_id", "clinic_id")}
    values["episode_id"] = c.episode_id
    values["episode_transition"] = c.transition.value
    ev = {
        "alert_id": c.change_id,
        "dedup_key": c.episode_id,
        "kind": kind,
        "severity": severity,
        **who,
        "event_time": iso(c.time_ms),
        "message": message[:1000],
        "values": values,
    }
    return (ALERTS, who["athlete_id"] or who["unit_id"] or "", ev)


def or_clear(
    alert: core_alerts.Alert | None,
    kind: core_alerts.AlertKind,
    subject: str,
    event_time: dt.datetime,
    bucket: str,
    evaluable: bool = True,
) -> Verdict:
    """The alert if the rule fired; else a clear (id: the key the alert would have had),
    or None when the rule had nothing to judge (``evaluable`` False: withheld inputs)."""
    if alert is not None:
        return alert
    if not evaluable:
        return None
    return Clear(kind, event_time, core_alerts.dedup_key(kind, subject, bucket))
