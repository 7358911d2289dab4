"""Alert episodes: one open episode per subject (athlete or unit) and condition.

A rule evaluated on an event gives an *observation* of its condition: raised with a
severity, or clear. :func:`advance` folds observations into episodes and returns only the
changes a coach needs to hear about:

* ``opened``    — the condition is raised and no episode of it is open;
* ``escalated`` — raised again, at a higher severity than the open episode has had;
* ``resolved``  — the rule evaluated clear while an episode was open (the resolving
  event's id and time are in the change).

Repeats at the same or a lower severity change nothing (the history of every
observation stays in the alerts table; the episode keeps its highest severity). This
replaces the 12 h cooldown of :func:`kneeload.core.alerts.apply_cooldown`, after which
an unchanged condition was announced again.

Determinism: observations of one condition are applied in (event time, event id)
order; an observation at or before the last one applied to that condition is ignored.
So redelivering anything already applied (at-least-once streams, replays from an
earlier offset) changes nothing, and :func:`replay` of any permutation with duplicates
of a set of observations gives the same episodes. A late observation older than the
latest one of its condition is ignored too: an episode's story is told forward only.

The episode id is ``<condition>:<opening time, compact UTC>``, so a replay re-derives the
same ids; a change's id appends its sequence number in the episode (0 opened, 1, 2, …
escalations) or ``resolved``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from enum import StrEnum

import msgspec

from kneeload.core.alerts import Severity

__all__ = [
    "Change",
    "ConditionState",
    "Observation",
    "Transition",
    "advance",
    "condition_key",
    "order_key",
    "replay",
]


class Transition(StrEnum):
    """What happened to an episode."""

    OPENED = "opened"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


class Observation(msgspec.Struct, frozen=True):
    """One evaluation of a rule: ``severity`` None means the condition is clear."""

    condition: str  # "<kind>:<subject>", see condition_key
    time_ms: int  # event time of the evaluating event, epoch ms
    event_id: str  # the evaluating event (alert dedup key, session id, report id, ...)
    severity: Severity | None


class ConditionState(msgspec.Struct):
    """Typed state of one condition (kept after its episode resolves: the watermark)."""

    last_ms: int
    last_event_id: str
    episode_id: str | None = None  # the open episode, None when none is open
    severity: Severity | None = None  # highest severity of the open episode
    seq: int = 0  # changes so far in the open episode


class Change(msgspec.Struct, frozen=True):
    """One episode change (what is notified and recorded)."""

    change_id: str  # "<episode_id>:<seq>" or "<episode_id>:resolved"
    episode_id: str
    condition: str
    transition: Transition
    severity: Severity  # the episode's severity after the change
    time_ms: int
    event_id: str  # the event that opened, escalated or resolved the episode


def condition_key(kind: str, subject: str) -> str:
    """``<kind>:<subject>`` (subject ``athlete:<id>`` or ``unit:<id>``)."""
    return f"{kind}:{subject}"


def _compact(time_ms: int) -> str:
    return dt.datetime.fromtimestamp(time_ms / 1000.0, dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _change(cs: ConditionState, obs: Observation, tr: Transition) -> Change:
    assert cs.episode_id is not None and cs.severity is not None
    suffix = "resolved" if tr is Transition.RESOLVED else str(cs.seq)
    return Change(
        f"{cs.episode_id}:{suffix}",
        cs.episode_id,
        obs.condition,
        tr,
        cs.severity,
        obs.time_ms,
        obs.event_id,
    )


def advance(
    states: Mapping[str, ConditionState], obs: Observation
) -> tuple[dict[str, ConditionState], list[Change]]:
    """Apply one observation; returns (new states, changes: zero or one).

    Pure: ``states`` is not modified (the condition's entry is replaced).
    """
    out = dict(states)
    prev = states.get(obs.condition)
    if prev is not None and (obs.time_ms, obs.event_id) <= (prev.last_ms, prev.last_event_id):
        return out, []  # redelivered or late: already told
    cs = (
        ConditionState(obs.time_ms, obs.event_id)
        if prev is None
        else msgspec.structs.replace(prev, last_ms=obs.time_ms, last_event_id=obs.event_id)
    )
    out[obs.condition] = cs
    if obs.severity is None:
        if cs.episode_id is None:
            return out, []
        ch = _change(cs, obs, Transition.RESOLVED)
        cs.episode_id, cs.severity, cs.seq = None, None, 0
        return out, [ch]
    if cs.episode_id is None:
        cs.episode_id = f"{obs.condition}:{_compact(obs.time_ms)}"
        cs.severity, cs.seq = obs.severity, 0
        return out, [_change(cs, obs, Transition.OPENED)]
    assert cs.severity is not None
    if obs.severity.rank <= cs.severity.rank:
        return out, []
    cs.severity, cs.seq = obs.severity, cs.seq + 1
    return out, [_change(cs, obs, Transition.ESCALATED)]


def order_key(o: Observation) -> tuple[int, str, str, int]:
    """Application order: event time, event id, condition, then severity (clear first)."""
    return (o.time_ms, o.event_id, o.condition, -1 if o.severity is None else o.severity.rank)


def replay(
    observations: Iterable[Observation],
    states: Mapping[str, ConditionState] | None = None,
) -> tuple[dict[str, ConditionState], list[Change]]:
    """All observations in (time, event id) order through :func:`advance`."""
    st: dict[str, ConditionState] = dict(states or {})
    changes: list[Change] = []
    for o in sorted(set(observations), key=order_key):
        st, ch = advance(st, o)
        changes += ch
    return st, changes
