"""Utilisation and downtime of LEVER units against a clinic's opening hours.

A unit's state over time comes from its ``unit_status`` history: the worker publishes a
status whenever the unit comes online, goes offline (silent for its timeout), changes
athlete or support, and otherwise at a fixed interval, so the history is a step function
of three states — **in use** (online, an athlete on it), **idle** (online, nobody on it)
and **offline**. Per unit and local day, one small function per step:

1. :func:`parse_opening_hours`  "Mon-Fri 07:00-20:00; Sat 08:00-14:00" in a time zone
2. :func:`open_intervals_utc`   that day's opening hours as UTC intervals (DST-aware:
                                a day of 23 or 25 hours keeps its local opening times)
3. :func:`state_intervals`      the status history as (start, end, state) intervals;
                                an offline status counts from the unit's ``last_seen``
                                (it was silent since), time before the first status is
                                unknown, the last state holds until ``until``
4. :func:`utilisation_day`      minutes of each state inside the opening hours, and
                                minutes in use outside them

Conventions (all **kneeload's choices**): minutes are wall-clock minutes; the opening
hours are the clinic's local times (IANA time zone); a unit not yet heard of that day
contributes "unknown", never "offline" (a unit installed at noon was not down all
morning). The defaults (Mon–Fri 07:00–20:00, Sat 08:00–14:00, UTC) are placeholders a
clinic replaces with its own (``KNEELOAD_FLEET_OPENING_HOURS``, ``KNEELOAD_FLEET_TIMEZONE``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_OPENING_HOURS",
    "OpeningHours",
    "StateInterval",
    "UnitObservation",
    "UnitState",
    "UtilisationDay",
    "open_intervals_utc",
    "parse_opening_hours",
    "state_intervals",
    "utilisation_day",
]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(
    r"^\s*(?P<d1>[a-z]{3})(?:\s*-\s*(?P<d2>[a-z]{3}))?\s+"
    r"(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*(?P<h2>\d{1,2}):(?P<m2>\d{2})\s*$"
)


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """A clinic's weekly opening hours in its local time zone.

    Attributes
    ----------
    timezone : str
        IANA time zone of the clinic (``Europe/Copenhagen``); validated.
    weekly : tuple of (weekday, open_min, close_min)
        ISO weekday (1 = Monday … 7 = Sunday) and the opening and closing time as minutes
        after local midnight, ``0 ≤ open_min < close_min ≤ 1440``. A weekday may appear
        more than once (a lunch break); a weekday absent is closed.
    """

    timezone: str = "UTC"
    weekly: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone={self.timezone!r}: not an IANA time zone") from exc
        for wd, open_min, close_min in self.weekly:
            if not 1 <= wd <= 7:
                raise ValueError(f"weekly: weekday {wd} outside 1 (Monday) … 7 (Sunday)")
            if not 0 <= open_min < close_min <= 1440:
                raise ValueError(
                    f"weekly: {open_min}–{close_min} min: need 0 ≤ open < close ≤ 1440"
                )


def parse_opening_hours(text: str, timezone: str = "UTC") -> OpeningHours:
    """Opening hours from ``"Mon-Fri 07:00-20:00; Sat 08:00-14:00"``.

    Parts are separated by ``;`` or ``,``; each is a weekday or a weekday range (Mon … Sun,
    case-insensitive) and a local time range; ``24:00`` closes at midnight. An empty text
    means always closed. A malformed part raises ``ValueError`` naming it.
    """
    weekly: list[tuple[int, int, int]] = []
    for part in re.split(r"[;,]", text):
        if not part.strip():
            continue
        m = _SPEC.match(part.lower())
        if m is None or m["d1"] not in _DAYS or (m["d2"] and m["d2"] not in _DAYS):
            raise ValueError(f"opening hours: {part.strip()!r} is not like 'Mon-Fri 07:00-20:00'")
        d1 = _DAYS.index(m["d1"]) + 1
        d2 = _DAYS.index(m["d2"]) + 1 if m["d2"] else d1
        if d2 < d1:
            raise ValueError(f"opening hours: {part.strip()!r}: weekday range runs backwards")
        open_min = int(m["h1"]) * 60 + int(m["m1"])
        close_min = int(m["h2"]) * 60 + int(m["m2"])
        weekly += [(wd, open_min, close_min) for wd in range(d1, d2 + 1)]
    return OpeningHours(timezone, tuple(weekly))


DEFAULT_OPENING_HOURS = parse_opening_hours("Mon-Fri 07:00-20:00; Sat 08:00-14:00")


def _local(day: dt.date, minute: int, tz: ZoneInfo) -> dt.datetime:
    base = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    if minute >= 1440:
        nxt = day + dt.timedelta(days=1)
        return dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return base.replace(hour=minute // 60, minute=minute % 60)


def local_day_utc(day: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The local calendar day ``day`` in ``timezone`` as a UTC interval (23–25 h long)."""
    tz = ZoneInfo(timezone)
    return (_local(day, 0, tz).astimezone(dt.UTC), _local(day, 1440, tz).astimezone(dt.UTC))


def open_intervals_utc(day: dt.date, hours: OpeningHours) -> list[tuple[dt.datetime, dt.datetime]]:
    """The opening hours of local day ``day`` as sorted UTC intervals.

    Local wall-clock times are converted with the zone's offset on that day, so 07:00
    stays 07:00 local across a daylight-saving change (its UTC time moves by an hour).
    """
    tz = ZoneInfo(hours.timezone)
    wd = day.isoweekday()
    out = [
        (_local(day, o, tz).astimezone(dt.UTC), _local(day, c, tz).astimezone(dt.UTC))
        for d, o, c in hours.weekly
        if d == wd
    ]
    return sorted(out)


class UnitState(StrEnum):
    IN_USE = "in_use"
    IDLE = "idle"
    OFFLINE = "offline"


class UnitObservation(NamedTuple):
    """One ``unit_status`` record, as far as utilisation is concerned."""

    time: dt.datetime
    online: bool
    in_use: bool
    last_seen: dt.datetime | None = None


class StateInterval(NamedTuple):
    start: dt.datetime
    end: dt.datetime
    state: UnitState


def _state(o: UnitObservation) -> UnitState:
    if not o.online:
        return UnitState.OFFLINE
    return UnitState.IN_USE if o.in_use else UnitState.IDLE


def state_intervals(
    observations: Iterable[UnitObservation], until: dt.datetime
) -> list[StateInterval]:
    """The status history as a step function: each status holds until the next one.

    An offline status starts its interval at the unit's ``last_seen`` when that is
    earlier (the worker notices silence only after the timeout; the unit was silent from
    its last message). Statuses are sorted by time first; the last one holds until
    ``until``. Intervals are disjoint and ordered; empty ones are dropped.
    """
    obs = sorted(observations, key=lambda o: o.time)
    out: list[StateInterval] = []
    for i, o in enumerate(obs):
        start = o.time
        state = _state(o)
        if state is UnitState.OFFLINE and o.last_seen is not None and o.last_seen < start:
            start = max(o.last_seen, out[-1].start if out else o.last_seen)
            if out and out[-1].end > start:
                out[-1] = StateInterval(out[-1].start, start, out[-1].state)
        end = obs[i + 1].time if i + 1 < len(obs) else max(until, o.time)
        if end > start:
            if out and out[-1].state is state and out[-1].end == start:
                out[-1] = StateInterval(out[-1].start, end, state)
            else:
                out.append(StateInterval(start, end, state))
    return [iv for iv in out if iv.end > iv.start]


class UtilisationDay(NamedTuple):
    """One unit's local day, in minutes. ``open_min`` = in use + idle + offline + unknown."""

    date: dt.date
    open_min: float
    in_use_min: float
    idle_min: float
    offline_min: float
    unknown_min: float
    in_use_outside_hours_min: float

    @property
    def utilisation(self) -> float | None:
        """In-use share of the known open time (None when nothing of it is known)."""
        known = self.open_min - self.unknown_min
        return self.in_use_min / known if known > 0 else None


def _overlap_min(a0: dt.datetime, a1: dt.datetime, b0: dt.datetime, b1: dt.datetime) -> float:
    return max(0.0, (min(a1, b1) - max(a0, b0)).total_seconds() / 60.0)


def utilisation_day(
    intervals: Sequence[StateInterval], day: dt.date, hours: OpeningHours
) -> UtilisationDay:
    """Minutes of each state within the opening hours of local day ``day``.

    in_use = Σ |open ∩ in-use intervals|, likewise idle and offline; unknown = open time
    no interval covers (before the unit's first status, or after ``until``); in use
    outside hours = Σ |(local day − open) ∩ in-use intervals|.
    """
    windows = open_intervals_utc(day, hours)
    open_min = sum((b - a).total_seconds() / 60.0 for a, b in windows)
    by_state = dict.fromkeys(UnitState, 0.0)
    for iv in intervals:
        for a, b in windows:
            by_state[iv.state] += _overlap_min(iv.start, iv.end, a, b)
    d0, d1 = local_day_utc(day, hours.timezone)
    in_use_day = sum(
        _overlap_min(iv.start, iv.end, d0, d1) for iv in intervals if iv.state is UnitState.IN_USE
    )
    known = sum(by_state.values())
    return UtilisationDay(
        day,
        open_min,
        by_state[UnitState.IN_USE],
        by_state[UnitState.IDLE],
        by_state[UnitState.OFFLINE],
        max(0.0, open_min - known),
        max(0.0, in_use_day - by_state[UnitState.IN_USE]),
    )
