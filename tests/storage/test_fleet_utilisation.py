"""``kneeload fleet utilisation`` on the real database: a unit's statuses and sessions written
through the sink's writer, read back through kneeload_api.fleet_unit_states and
fleet_sessions, minutes computed by kneeload.core.utilisation in the clinic's time zone."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable
from typing import Any

from click.testing import CliRunner

from kneeload.cli import root

from . import events as ev

# Monday 2 March 2026 in Oslo (CET, UTC+1): open 08:00–18:00 local = 07:00–17:00 UTC
DAY = dt.date(2026, 3, 2)
UNIT, CLINIC, OTHER = "fu-lever-1", "fu-clinic", "fu-lever-2"


def at(h: int, m: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 2, h, m, tzinfo=dt.UTC)


def _status(unit: str, t: dt.datetime, *, online: bool, athlete: str | None) -> dict[str, Any]:
    s = ev.unit_status(
        unit, CLINIC, t, athlete_id=athlete, in_use=athlete is not None, bws=15.0, minutes=0.0
    )
    if not online:
        s |= {
            "online": False,
            "in_use": False,
            "athlete_id": None,
            "last_seen": ev.iso(t - dt.timedelta(minutes=10)),
        }
    return s


def test_utilisation_per_unit_and_local_day(
    write: Callable[[Iterable[tuple[str, Any]]], Any], db: str, monkeypatch: Any
) -> None:
    """UTC timeline: idle 06:00, Ann 08:00–09:00, idle, offline noticed 12:10 (last message
    12:00), idle 13:00, Bo 16:30–17:30, idle. Open 07:00–17:00 UTC (600 min): in use
    60 + 30 = 90, idle 60 + 180 + 210 = 450, offline 60; 30 min in use after hours; two
    sessions by two athletes. The other unit is heard of only at 12:00: 300 min unknown."""
    write(
        [("unit.status", _status(UNIT, at(6), online=True, athlete=None)),
         ("unit.status", _status(UNIT, at(8), online=True, athlete="fu-ann")),
         ("unit.status", _status(UNIT, at(9), online=True, athlete=None)),
         ("unit.status", _status(UNIT, at(12, 10), online=False, athlete=None)),
         ("unit.status", _status(UNIT, at(13), online=True, athlete=None)),
         ("unit.status", _status(UNIT, at(16, 30), online=True, athlete="fu-bo")),
         ("unit.status", _status(UNIT, at(17, 30), online=True, athlete=None)),
         ("unit.status", _status(OTHER, at(12), online=True, athlete=None)),
         ("sessions", ev.session("fu-s1", "fu-ann", at(8), load=900.0, unit=UNIT, bws=15.0)),
         ("sessions", ev.session("fu-s2", "fu-bo", at(16, 30), load=900.0, unit=UNIT, bws=15.0))]
    )  # fmt: skip
    monkeypatch.setenv(
        "KNEELOAD_FLEET_CLINIC_OPENING_HOURS",
        '{"fu-clinic": {"timezone": "Europe/Oslo", "hours": "Mon-Fri 08:00-18:00"}}',
    )
    from kneeload.settings import reload_settings

    reload_settings()
    try:
        res = CliRunner().invoke(
            root,
            ["fleet", "utilisation", "--clinic", CLINIC, "--from", "2026-03-02", "--to",
             "2026-03-03", "--csv", "--database-url", db],
        )  # fmt: skip
    finally:
        monkeypatch.delenv("KNEELOAD_FLEET_CLINIC_OPENING_HOURS")
        reload_settings()
    assert res.exit_code == 0, res.output
    rows = {(r["unit_id"], r["date"]): r for r in csv.DictReader(io.StringIO(res.output))}
    r = rows[(UNIT, "2026-03-02")]
    want = {
        "open_min": 600.0,
        "in_use_min": 90.0,
        "idle_min": 450.0,
        "offline_min": 60.0,
        "unknown_min": 0.0,
        "in_use_outside_hours_min": 30.0,
    }
    assert {k: float(r[k]) for k in want} == want
    assert (r["utilisation_pct"], r["sessions"], r["athletes"]) == ("15.0", "2", "2")
    assert rows[(OTHER, "2026-03-02")]["unknown_min"] == "300.0"
    # the next day: idle all day since 17:30 the day before (state carried in), no sessions
    nxt = rows[(UNIT, "2026-03-03")]
    assert (nxt["idle_min"], nxt["sessions"]) == ("600.0", "0")


def test_malformed_opening_hours_are_a_clear_error(monkeypatch: Any, db: str) -> None:
    monkeypatch.setenv("KNEELOAD_FLEET_OPENING_HOURS", "weekdays 8 to 6")
    from kneeload.settings import reload_settings

    reload_settings()
    try:
        res = CliRunner().invoke(root, ["fleet", "utilisation", "--database-url", db])
    finally:
        monkeypatch.delenv("KNEELOAD_FLEET_OPENING_HOURS")
        reload_settings()
    assert res.exit_code == 1 and "'weekdays 8 to 6'" in res.output, res.output
