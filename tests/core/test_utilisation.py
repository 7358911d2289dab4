"""Unit utilisation against opening hours (kneeload.core.utilisation), on hand-computed
timelines: states inside and outside the hours, offline from the last message, unknown
before the first status, and opening hours across both daylight-saving changes."""

from __future__ import annotations

import datetime as dt
import itertools

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kneeload.core.utilisation import (
    DEFAULT_OPENING_HOURS,
    OpeningHours,
    UnitObservation,
    UnitState,
    local_day_utc,
    open_intervals_utc,
    parse_opening_hours,
    state_intervals,
    utilisation_day,
)
from kneeload.fleet.report import state_changes

UTC = dt.UTC
MONDAY = dt.date(2026, 11, 30)


def at(h: int, m: int = 0, day: dt.date = MONDAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)


def test_parse_opening_hours() -> None:
    h = parse_opening_hours("Mon-Fri 07:00-20:00; sat 08:00-14:00", "Europe/Copenhagen")
    assert h.timezone == "Europe/Copenhagen"
    assert h.weekly == (*tuple((d, 420, 1200) for d in range(1, 6)), (6, 480, 840))
    assert parse_opening_hours("Sun 00:00-24:00").weekly == ((7, 0, 1440),)
    assert parse_opening_hours("").weekly == ()
    assert DEFAULT_OPENING_HOURS.weekly[-1] == (6, 480, 840)


@pytest.mark.parametrize(
    ("text", "tz", "match"),
    [
        ("Mon-Fri 7-20", "UTC", "'mon-fri 7-20'|'Mon-Fri 7-20'"),
        ("Fri-Mon 07:00-20:00", "UTC", "backwards"),
        ("Mon 20:00-07:00", "UTC", "open < close"),
        ("Mon 07:00-20:00", "Mars/Olympus", "IANA"),
    ],
)
def test_bad_opening_hours_are_named(text: str, tz: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_opening_hours(text, tz)


def test_open_intervals_keep_local_times_across_daylight_saving() -> None:
    h = parse_opening_hours("Mon-Sun 07:00-20:00", "Europe/Copenhagen")
    # CET (+1) on Saturday 28 March 2026, CEST (+2) from Sunday 29 March 02:00
    assert open_intervals_utc(dt.date(2026, 3, 28), h) == [
        (at(6, 0, dt.date(2026, 3, 28)), at(19, 0, dt.date(2026, 3, 28)))
    ]
    assert open_intervals_utc(dt.date(2026, 3, 29), h) == [
        (at(5, 0, dt.date(2026, 3, 29)), at(18, 0, dt.date(2026, 3, 29)))
    ]
    # back to CET on Sunday 25 October 2026
    assert open_intervals_utc(dt.date(2026, 10, 25), h) == [
        (at(6, 0, dt.date(2026, 10, 25)), at(19, 0, dt.date(2026, 10, 25)))
    ]
    d0, d1 = local_day_utc(dt.date(2026, 3, 29), "Europe/Copenhagen")
    assert (d1 - d0) == dt.timedelta(hours=23)
    d0, d1 = local_day_utc(dt.date(2026, 10, 25), "Europe/Copenhagen")
    assert (d1 - d0) == dt.timedelta(hours=25)


def test_a_day_on_a_unit() -> None:
    """Open 07:00–20:00 (780 min). Idle 06:00, athlete 08:00–09:00, idle, silent from 12:00
    (the worker saw it at 12:10), back idle 13:00, athlete 19:30–20:30, idle, data to 21:00.
    In use 60 + 30 = 90 in hours and 30 after; idle 60 + 180 + 390 = 630; offline 60."""
    obs = [
        UnitObservation(at(6), True, False),
        UnitObservation(at(8), True, True),
        UnitObservation(at(9), True, False),
        UnitObservation(at(12, 10), False, False, last_seen=at(12)),
        UnitObservation(at(13), True, False),
        UnitObservation(at(19, 30), True, True),
        UnitObservation(at(20, 30), True, False),
    ]
    ivs = state_intervals(reversed(obs), until=at(21))
    assert [(iv.start, iv.state) for iv in ivs][3] == (at(12), UnitState.OFFLINE)
    u = utilisation_day(ivs, MONDAY, parse_opening_hours("Mon 07:00-20:00"))
    assert (u.open_min, u.in_use_min, u.idle_min, u.offline_min, u.unknown_min) == (
        780.0,
        90.0,
        630.0,
        60.0,
        0.0,
    )
    assert u.in_use_outside_hours_min == 30.0
    assert u.utilisation == pytest.approx(90 / 780)


def test_a_unit_first_heard_of_mid_morning_is_unknown_before_not_offline() -> None:
    ivs = state_intervals([UnitObservation(at(10), True, False)], until=at(23))
    u = utilisation_day(ivs, MONDAY, parse_opening_hours("Mon 07:00-20:00"))
    assert (u.unknown_min, u.idle_min, u.offline_min) == (180.0, 600.0, 0.0)
    assert u.utilisation == 0.0
    closed = utilisation_day(ivs, MONDAY, parse_opening_hours("Tue 07:00-20:00"))
    assert closed.open_min == 0.0 and closed.utilisation is None


def test_hours_in_the_clinics_time_zone() -> None:
    """The same UTC timeline in New York: open 07:00–20:00 EST = 12:00–01:00 UTC."""
    obs = [UnitObservation(at(0), True, False), UnitObservation(at(12), True, True)]
    ivs = state_intervals(obs, until=at(14))
    u = utilisation_day(ivs, MONDAY, parse_opening_hours("Mon 07:00-20:00", "America/New_York"))
    assert (u.in_use_min, u.unknown_min) == (120.0, 660.0)


_T0 = at(0)
_obs = st.lists(
    st.builds(
        lambda m, online, in_use, back: UnitObservation(
            _T0 + dt.timedelta(minutes=m),
            online,
            online and in_use,
            None if online else _T0 + dt.timedelta(minutes=max(0, m - back)),
        ),
        st.integers(0, 1440),
        st.booleans(),
        st.booleans(),
        st.integers(0, 120),
    ),
    max_size=30,
)


@given(_obs, st.sampled_from(["UTC", "Europe/Copenhagen", "Asia/Kolkata"]))
def test_minutes_add_up_to_the_opening_hours(obs: list[UnitObservation], tz: str) -> None:
    ivs = state_intervals(obs, until=at(23, 59))
    for a, b in itertools.pairwise(ivs):
        assert a.end <= b.start
    h = OpeningHours(tz, ((1, 420, 1200),))
    u = utilisation_day(ivs, MONDAY, h)
    total = u.in_use_min + u.idle_min + u.offline_min + u.unknown_min
    assert total == pytest.approx(u.open_min)
    assert u.in_use_outside_hours_min >= 0.0


_runs = st.lists(
    st.tuples(st.integers(0, 2000), st.booleans(), st.booleans(), st.integers(0, 30)),
    max_size=40,
)


@settings(deadline=None)
@given(_runs)
def test_state_changes_keep_the_intervals(rows: list[tuple[int, bool, bool, int]]) -> None:
    """The fleet report hands the core only the first status of each run of one state
    (kneeload.fleet.report.state_changes): the intervals are the same as from every status."""
    obs = [
        UnitObservation(at(0) + dt.timedelta(minutes=m), on, on and use,
                        at(0) + dt.timedelta(minutes=m - back))
        for m, on, use, back in sorted(set(rows), key=lambda r: r[0])
    ]  # fmt: skip
    obs = list({o.time: o for o in obs}.values())  # one status per instant
    frame = pl.DataFrame(
        [("u", None, o.time, o.online, o.in_use, o.last_seen) for o in obs],
        schema={
            "unit_id": pl.String,
            "clinic_id": pl.String,
            "time": pl.Datetime("us", "UTC"),
            "online": pl.Boolean,
            "in_use": pl.Boolean,
            "last_seen": pl.Datetime("us", "UTC"),
        },
        orient="row",
    )
    kept = [
        UnitObservation(t, on, use, seen)
        for _, _, t, on, use, seen in state_changes(frame.lazy()).collect().iter_rows()
    ]
    until = at(0) + dt.timedelta(minutes=2100)
    assert state_intervals(kept, until) == state_intervals(obs, until)
