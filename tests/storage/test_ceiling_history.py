"""kneeload_api.ceiling_history on the real database agrees with kneeload.core.spike: the
longest distance and largest PFJ load that would not be a spike on a day are 1.10 × the
maxima of the sessions started in the 30 days before its local midnight, none below 3."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from kneeload.core.spike import PastSession, ceiling, session_spike

from . import events as ev

ATH, TEAM = "ceil-ann", "ceil-team"
TZ = "Europe/Oslo"
# (local start, distance m, PFJ load MPa·s): four runs, then a day to plan
RUNS = [
    (dt.datetime(2026, 5, 1, 7), 8000.0, 9000.0),
    (dt.datetime(2026, 5, 5, 7), 12000.0, 11000.0),
    (dt.datetime(2026, 5, 9, 7), 10000.0, 14000.0),
    (dt.datetime(2026, 6, 5, 7), 9000.0, 9500.0),
]


def _utc(local: dt.datetime) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return local.replace(tzinfo=ZoneInfo(TZ)).astimezone(dt.UTC)


@pytest.fixture(scope="module")
def ceilings(db: str) -> str:
    import asyncio

    from .conftest import _write

    t0 = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    events: list[tuple[str, Any]] = [("registry.athletes", ev.athlete(ATH, TEAM, "Ann", t0, TZ))]
    for i, (start, dist, load) in enumerate(RUNS):
        s = ev.session(f"ceil-s{i}", ATH, _utc(start), load=load, team=TEAM)
        s["distance_m"] = dist
        events.append(("sessions", s))
    for d in (dt.date(2026, 5, 10), dt.date(2026, 6, 6), dt.date(2026, 6, 9)):
        events.append(("daily.load", ev.daily(ATH, d, load=1.0, acwr=None, team=TEAM)))
    asyncio.run(_write(db, events))
    return db


def _row(db: str, d: dt.date) -> dict[str, Any]:
    with psycopg.connect(db) as c:
        cur = c.execute(
            "SELECT * FROM kneeload_api.ceiling_history WHERE athlete_id = %s AND date = %s",
            (ATH, d),
        )
        names = [x.name for x in cur.description or []]
        row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


@pytest.mark.parametrize("day", [dt.date(2026, 5, 10), dt.date(2026, 6, 6), dt.date(2026, 6, 9)])
def test_the_view_agrees_with_core(ceilings: str, day: dt.date) -> None:
    midnight = _utc(dt.datetime(day.year, day.month, day.day))
    past = [PastSession(int(_utc(s).timestamp() * 1000), d, p) for s, d, p in RUNS]
    c = ceiling(past, int(midnight.timestamp() * 1000))
    r = _row(ceilings, day)
    assert r["sessions_in_window"] == c.sessions and r["team_id"] == TEAM
    if c.sessions < 3:
        assert r["verdict"] == "too_few_sessions" and r["ceiling_distance_m"] is None
        return
    assert r["verdict"] == "ceiling"
    assert r["ceiling_distance_m"] == pytest.approx(1.1 * c.distance_m)
    assert r["ceiling_pfj_load_mpa_s"] == pytest.approx(1.1 * c.pfj_load_mpa_s)
    # at the ceiling: no spike by core; just above: a spike
    at = session_spike(
        r["ceiling_distance_m"], r["ceiling_pfj_load_mpa_s"], int(midnight.timestamp() * 1000), past
    )
    assert at.spike is None
    over = session_spike(
        r["ceiling_distance_m"] * 1.01, 0.0, int(midnight.timestamp() * 1000), past
    )
    assert over.spike is not None and over.spike.measure == "distance_m"


def test_hand_computed(ceilings: str) -> None:
    # 10 May: three runs in the window, longest 12 km, largest load 14,000 MPa·s
    r = _row(ceilings, dt.date(2026, 5, 10))
    assert (r["longest_distance_m"], r["largest_pfj_load_mpa_s"]) == (12000.0, 14000.0)
    assert r["ceiling_distance_m"] == pytest.approx(13200.0)
    # 9 June: only the 5 June run within 30 days
    assert _row(ceilings, dt.date(2026, 6, 9))["verdict"] == "too_few_sessions"


def test_kneeload_ceiling_answers_for_a_day(ceilings: str) -> None:
    import orjson
    from click.testing import CliRunner

    from kneeload.cli import root

    args = ["ceiling", "--athlete-id", ATH, "--database-url", ceilings, "--date"]
    res = CliRunner().invoke(root, [*args, "2026-05-10", "--json"])
    assert res.exit_code == 0, res.output
    out = orjson.loads(res.output)
    assert out["verdict"] == "ceiling" and out["ceiling_distance_m"] == pytest.approx(13200.0)
    assert out["sessions_in_window"] == 3 and out["estimate"] is True
    res = CliRunner().invoke(root, [*args, "2026-06-09"])
    assert res.exit_code == 0 and "no ceiling yet" in res.output, res.output


NOW_ATH, FEW_ATH, NOW_TEAM = "ceil-now", "ceil-few", "ceil-now-team"


@pytest.fixture(scope="module")
def today(db: str) -> tuple[str, list[PastSession], dt.datetime]:
    """Runs relative to today (team_overview is about today): four for one athlete, two for
    another."""
    import asyncio
    from zoneinfo import ZoneInfo

    from .conftest import _write

    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    local_today = dt.datetime.now(ZoneInfo(TZ)).date()
    midnight = _utc(dt.datetime.combine(local_today, dt.time()))
    events: list[tuple[str, Any]] = [
        ("registry.athletes", ev.athlete(NOW_ATH, NOW_TEAM, "Now", t0, TZ)),
        ("registry.athletes", ev.athlete(FEW_ATH, NOW_TEAM, "Few", t0, TZ)),
    ]
    past: list[PastSession] = []
    for i, (days_ago, dist, load) in enumerate(
        [(40, 30000.0, 40000.0), (20, 9000.0, 9000.0), (9, 14000.0, 10000.0), (2, 8000.0, 12500.0)]
    ):
        start = midnight - dt.timedelta(days=days_ago) + dt.timedelta(hours=7)
        s = ev.session(f"ceil-now-s{i}", NOW_ATH, start, load=load, team=NOW_TEAM)
        s["distance_m"] = dist
        events.append(("sessions", s))
        past.append(PastSession(int(start.timestamp() * 1000), dist, load))
    for i in range(2):
        start = midnight - dt.timedelta(days=3 + i)
        events.append(
            ("sessions", ev.session(f"ceil-few-s{i}", FEW_ATH, start, load=5000.0, team=NOW_TEAM))
        )
    asyncio.run(_write(db, events))
    return db, past, midnight


def test_team_overview_shows_todays_ceiling_as_core_computes_it(
    today: tuple[str, list[PastSession], dt.datetime],
) -> None:
    """Issue #14 item 3: the coach's overview carries today's ceiling per athlete (the 40-day
    old 30 km run is outside the window; three runs are in it)."""
    db, past, midnight = today
    c = ceiling(past, int(midnight.timestamp() * 1000))
    assert (c.sessions, c.distance_m, c.pfj_load_mpa_s) == (3, 14000.0, 12500.0)
    with psycopg.connect(db) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT athlete_id, ceiling_distance_m, ceiling_pfj_load_mpa_s, ceiling_verdict, "
                "ceiling_sessions_in_window FROM kneeload_api.team_overview WHERE team_id = %s",
                (NOW_TEAM,),
            )
        }
    dist, load, verdict, n = rows[NOW_ATH]
    assert verdict == "ceiling" and n == 3
    assert dist == pytest.approx(1.1 * c.distance_m) and load == pytest.approx(
        1.1 * c.pfj_load_mpa_s
    )
    assert rows[FEW_ATH] == (None, None, "too_few_sessions", 2)
    # the quick answer agrees
    import orjson
    from click.testing import CliRunner

    from kneeload.cli import root

    res = CliRunner().invoke(
        root, ["ceiling", "--athlete-id", NOW_ATH, "--database-url", db, "--json"]
    )
    assert res.exit_code == 0, res.output
    assert orjson.loads(res.output)["ceiling_distance_m"] == pytest.approx(dist)
