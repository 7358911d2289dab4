"""Utilisation per unit and local day, read from the database's public views.

Thin I/O around :mod:`kneeload.core.utilisation`: the unit state history comes from
``kneeload_api.fleet_unit_states`` (one query, the last status before the period included so
the first day starts in a known state), sessions and athletes per unit-day from
``kneeload_api.fleet_sessions``; every minute figure is computed by the core.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kneeload.core.utilisation import (
    OpeningHours,
    UnitObservation,
    local_day_utc,
    parse_opening_hours,
    state_intervals,
    utilisation_day,
)

__all__ = ["UnitDayRow", "clinic_hours", "period_utc", "read_utilisation", "utilisation_rows"]

COLUMNS = (
    "unit_id",
    "clinic_id",
    "date",
    "open_min",
    "in_use_min",
    "idle_min",
    "offline_min",
    "unknown_min",
    "in_use_outside_hours_min",
    "utilisation_pct",
    "sessions",
    "athletes",
)


@dataclass(frozen=True, slots=True)
class UnitDayRow:
    unit_id: str
    clinic_id: str | None
    date: dt.date
    open_min: float
    in_use_min: float
    idle_min: float
    offline_min: float
    unknown_min: float
    in_use_outside_hours_min: float
    utilisation_pct: float | None
    sessions: int
    athletes: int

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in COLUMNS)


def clinic_hours(
    default_hours: str, default_tz: str, per_clinic_json: str | None
) -> Mapping[str | None, OpeningHours]:
    """Opening hours per clinic id (key None: the default). Raises ValueError naming the
    clinic whose entry is malformed."""
    out: dict[str | None, OpeningHours] = {None: parse_opening_hours(default_hours, default_tz)}
    if not per_clinic_json:
        return out
    try:
        doc = orjson.loads(per_clinic_json)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"fleet_clinic_opening_hours: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ValueError("fleet_clinic_opening_hours: must be a JSON object of clinic ids")
    for clinic, spec in doc.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("hours", ""), str):
            raise ValueError(f"fleet_clinic_opening_hours[{clinic!r}]: need {{timezone, hours}}")
        try:
            out[clinic] = parse_opening_hours(
                spec.get("hours", default_hours), spec.get("timezone", default_tz)
            )
        except ValueError as exc:
            raise ValueError(f"fleet_clinic_opening_hours[{clinic!r}]: {exc}") from exc
    return out


_STATES_SQL = """
WITH prior AS (
    SELECT DISTINCT ON (unit_id) unit_id, clinic_id, time, online, in_use, last_seen
      FROM kneeload_api.fleet_unit_states
     WHERE time < %(t0)s AND (%(clinics)s::text[] IS NULL OR clinic_id = ANY(%(clinics)s))
     ORDER BY unit_id, time DESC
)
SELECT unit_id, clinic_id, time, online, in_use, last_seen FROM prior
UNION ALL
SELECT unit_id, clinic_id, time, online, in_use, last_seen
  FROM kneeload_api.fleet_unit_states
 WHERE time >= %(t0)s AND time < %(t1)s
   AND (%(clinics)s::text[] IS NULL OR clinic_id = ANY(%(clinics)s))
"""

_SESSIONS_SQL = """
SELECT unit_id, clinic_id, start_time, athlete_id FROM kneeload_api.fleet_sessions
 WHERE start_time >= %(t0)s AND start_time < %(t1)s
   AND (%(clinics)s::text[] IS NULL OR clinic_id = ANY(%(clinics)s))
"""


def _days(first: dt.date, last: dt.date) -> Iterable[dt.date]:
    d = first
    while d <= last:
        yield d
        d += dt.timedelta(days=1)


def read_utilisation(
    conn: Any,
    clinics: list[str] | None,
    first: dt.date,
    last: dt.date,
    hours: Mapping[str | None, OpeningHours],
    now: dt.datetime | None = None,
) -> list[UnitDayRow]:
    """Per unit and local day (each clinic's time zone) from ``first`` to ``last``.

    ``clinics`` None means every clinic the connection's role may see (row-level
    security decides). The state after the last status holds until ``now`` (default:
    the current time), never into the future.
    """
    t0, t1 = period_utc(first, last)
    params = {"t0": t0, "t1": t1, "clinics": clinics}
    return utilisation_rows(
        conn.execute(_STATES_SQL, params).fetchall(),
        conn.execute(_SESSIONS_SQL, params).fetchall(),
        first,
        last,
        hours,
        now,
    )


def period_utc(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC interval that holds local days ``first`` … ``last`` in every time zone."""
    t0 = local_day_utc(first, "Etc/GMT-14")[0]  # earliest start of `first` in any zone
    t1 = local_day_utc(last, "Etc/GMT+12")[1]  # latest end of `last` in any zone
    return t0, t1


def utilisation_rows(
    states: Iterable[tuple[str, str | None, dt.datetime, bool, bool, dt.datetime | None]],
    sessions: Iterable[tuple[str, str | None, dt.datetime, str]],
    first: dt.date,
    last: dt.date,
    hours: Mapping[str | None, OpeningHours],
    now: dt.datetime | None = None,
) -> list[UnitDayRow]:
    """Unit-day rows from status rows (unit, clinic, time, online, in_use, last_seen; the
    last one before the period included) and session rows (unit, clinic, start, athlete).

    Each day gets only the state intervals that overlap it (a binary search over the
    unit's sorted intervals), so a long period costs O(days · intervals per day).
    """
    now = now or dt.datetime.now(dt.UTC)
    t1 = period_utc(first, last)[1]
    obs: dict[str, list[UnitObservation]] = defaultdict(list)
    clinic_of: dict[str, str | None] = {}
    for unit, clinic, t, online, in_use, seen in states:
        obs[unit].append(UnitObservation(t, online, in_use, seen))
        clinic_of[unit] = clinic
    per_day: dict[tuple[str, dt.date], list[str]] = defaultdict(list)
    for unit, clinic, start, athlete in sessions:
        clinic_of.setdefault(unit, clinic)
        h = hours.get(clinic_of[unit], hours[None])
        local = start.astimezone(dt.UTC).astimezone(_zone(h.timezone)).date()
        per_day[(unit, local)].append(athlete)
    rows: list[UnitDayRow] = []
    for unit in sorted(clinic_of):
        clinic = clinic_of[unit]
        h = hours.get(clinic, hours[None])
        ivs = state_intervals(obs.get(unit, []), until=min(now, t1))
        ends = [iv.end for iv in ivs]
        for day in _days(first, last):
            d0, d1 = local_day_utc(day, h.timezone)
            lo = bisect.bisect_right(ends, d0)
            day_ivs = []
            for iv in ivs[lo:]:
                if iv.start >= d1:
                    break
                day_ivs.append(iv)
            u = utilisation_day(day_ivs, day, h)
            ss = per_day.get((unit, day), [])
            pct = None if u.utilisation is None else round(100.0 * u.utilisation, 1)
            rows.append(
                UnitDayRow(
                    unit,
                    clinic,
                    day,
                    round(u.open_min, 1),
                    round(u.in_use_min, 1),
                    round(u.idle_min, 1),
                    round(u.offline_min, 1),
                    round(u.unknown_min, 1),
                    round(u.in_use_outside_hours_min, 1),
                    pct,
                    len(ss),
                    len(set(ss)),
                )
            )
    return rows


def _zone(name: str) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)
