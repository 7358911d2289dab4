"""The public views on a small seeded dataset, corrections/upserts, acknowledgement, and
row-level security with real database roles."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from . import events as ev

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()


@pytest.fixture(scope="module")
def seeded(db: str) -> str:
    """Two teams (a: ann, ben; b: cai), one clinic with one unit, a bit of everything."""
    global NOW, TODAY
    NOW = datetime.now(UTC).replace(microsecond=0)  # at seeding time, not collection time
    TODAY = NOW.date()
    import asyncio

    from .conftest import _write

    t0 = NOW - timedelta(minutes=1)
    events: list[tuple[str, Any]] = [
        ("registry.athletes", ev.athlete("v-ann", "v-team-a", "Ann", NOW - timedelta(days=30))),
        ("registry.athletes", ev.athlete("v-ben", "v-team-a", "Ben", NOW - timedelta(days=30))),
        ("registry.athletes", ev.athlete("v-cai", "v-team-b", "Cai", NOW - timedelta(days=30))),
        ("registry.assignments", ev.assignment("v-lever-1", "v-clinic-n", "v-ann", t0)),
        (
            "sessions",
            ev.session(
                "v-s1",
                "v-ann",
                NOW - timedelta(days=1),
                load=900.0,
                team="v-team-a",
                unit="v-lever-1",
                bws=20.0,
            ),
        ),
        (
            "sessions",
            ev.session("v-s2", "v-cai", NOW - timedelta(days=1), load=500.0, team="v-team-b"),
        ),
        (
            "daily.load",
            ev.daily(
                "v-ann",
                TODAY,
                load=1000.0,
                acwr=1.6,
                status="provisional",
                team="v-team-a",
                pain=(4.5, 1.0, "worsening"),  # the worker's, from core.pain
            ),
        ),
        (
            "daily.load",
            ev.daily(
                "v-ann",
                TODAY - timedelta(days=1),
                load=800.0,
                acwr=1.1,
                team="v-team-a",
                pain=(1.0, 3.0, "improving"),  # yesterday's: never shown today
            ),
        ),
        ("daily.load", ev.daily("v-cai", TODAY, load=400.0, acwr=0.7, team="v-team-b")),
        ("pain.reports", ev.pain("v-p1", "v-ann", NOW - timedelta(days=10), 1, team="v-team-a")),
        (
            "pain.reports",
            ev.pain("v-p2", "v-ann", NOW - timedelta(days=2), 4, team="v-team-a", session="v-s1"),
        ),
        ("pain.reports", ev.pain("v-p3", "v-ann", NOW - timedelta(hours=1), 5, team="v-team-a")),
        (
            "pain.responses",
            ev.pain_response(
                "v-p2", "v-ann", NOW - timedelta(days=2), nrs=4, unit="v-lever-1", team="v-team-a"
            ),
        ),
        ("alerts", ev.alert("v-al-1", "v-ann", NOW - timedelta(hours=2), team="v-team-a")),
        ("alerts", ev.alert("v-al-2", "v-cai", NOW - timedelta(hours=2), team="v-team-b")),
        (
            "alerts",
            ev.alert(
                "v-al-u",
                None,
                NOW - timedelta(hours=1),
                unit="v-lever-1",
                team=None,
                clinic="v-clinic-n",
                kind="unit_offline",
            ),
        ),
        (
            "unit.status",
            ev.unit_status(
                "v-lever-1",
                "v-clinic-n",
                t0,
                athlete_id="v-ann",
                in_use=True,
                bws=20.0,
                minutes=60.0,
            ),
        ),
        (
            "load.samples",
            ev.load_batch(
                "v-ann",
                NOW - timedelta(seconds=30),
                n=5,
                batch_id="v-lb1",
                team="v-team-a",
                session="v-s1",
                unit="v-lever-1",
                bws=20.0,
            ),
        ),
        (
            "load.samples",
            ev.load_batch(
                "v-cai", NOW - timedelta(seconds=30), n=5, batch_id="v-lb2", team="v-team-b"
            ),
        ),
    ]
    result = asyncio.run(_write(db, events))
    assert result.dead_letters == []
    return db


def _rows(conn: psycopg.Connection[Any], sql: str, *args: Any) -> list[dict[str, Any]]:
    cur = conn.execute(sql, args)
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_team_overview(seeded: str, conn: psycopg.Connection[Any]) -> None:
    rows = {
        r["athlete_id"]: r
        for r in _rows(
            conn,
            "SELECT * FROM kneeload_api.team_overview WHERE team_id IN ('v-team-a', 'v-team-b')",
        )
    }
    assert set(rows) == {"v-ann", "v-ben", "v-cai"}
    ann = rows["v-ann"]
    assert ann["today_load"] == 1000.0 and ann["today_status"] == "provisional"
    assert ann["acwr"] == 1.6 and ann["acwr_band"] == "danger" and ann["acwr_method"] == "ewma"
    assert ann["latest_pain_nrs"] == 5 and ann["pain_trend"] == "worsening"  # today's row
    assert (ann["pain_mean_7d"], ann["pain_mean_prev_7d"]) == (4.5, 1.0)
    # no row today, no trend: the worker publishes today's row while a report still counts
    assert rows["v-ben"]["pain_trend"] is None and rows["v-ben"]["pain_mean_7d"] is None
    assert ann["open_alerts"] == 1
    assert rows["v-ben"]["today_load"] is None and rows["v-ben"]["acwr_band"] is None
    assert rows["v-cai"]["acwr_band"] == "low"


def test_bands_come_from_the_settings_table(seeded: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("UPDATE kneeload.config SET value = '1.7' WHERE key = 'acwr_band_danger'")
    try:
        band = conn.execute(
            "SELECT acwr_band FROM kneeload_api.team_overview WHERE athlete_id = 'v-ann'"
        )
        assert band.fetchone() == ("caution",)
    finally:
        conn.execute("UPDATE kneeload.config SET value = '1.5' WHERE key = 'acwr_band_danger'")
    sources = dict(conn.execute("SELECT key, source FROM kneeload_api.thresholds").fetchall())
    assert "Gabbett" in sources["acwr_band_high"]


def test_other_views(seeded: str, conn: psycopg.Connection[Any]) -> None:
    tl = _rows(conn, "SELECT * FROM kneeload_api.athlete_timeline WHERE athlete_id = 'v-ann'")
    assert [
        (r["session_id"], r["pfj_load_mpa_s"], r["mean_bws_pct"], r["session_pain_nrs"]) for r in tl
    ] == [("v-s1", 900.0, 20.0, 4)]
    hist = _rows(
        conn,
        "SELECT method, acwr, acwr_band FROM kneeload_api.acwr_history "
        "WHERE athlete_id = 'v-ann' AND date = %s ORDER BY method",
        TODAY,
    )
    assert [(r["method"], r["acwr_band"]) for r in hist] == [
        ("ewma", "danger"),
        ("rac", "danger"),
        ("rau", "danger"),
    ]
    sugg = _rows(conn, "SELECT * FROM kneeload_api.bws_suggestions WHERE athlete_id = 'v-ann'")
    assert [(r["unit_id"], r["suggested_bws_pct"]) for r in sugg] == [("v-lever-1", 25.0)]
    fleet = _rows(conn, "SELECT * FROM kneeload_api.fleet_status WHERE unit_id = 'v-lever-1'")
    assert len(fleet) == 1
    f = fleet[0]
    assert (
        f["online"]
        and f["in_use"]
        and f["athlete_id"] == "v-ann"
        and f["clinic_id"] == "v-clinic-n"
    )
    assert f["minutes_used_today"] == 60.0 and float(f["utilisation_pct"]) == 10.0
    live = {
        r["athlete_id"]: r
        for r in _rows(
            conn, "SELECT * FROM kneeload_api.live_session WHERE athlete_id IN ('v-ann', 'v-cai')"
        )
    }
    assert set(live) == {"v-ann", "v-cai"} and live["v-ann"]["peak_pfj_stress_mpa"] == 12.0
    assert live["v-ann"]["bws_pct"] == 20.0
    fs = _rows(
        conn, "SELECT session_id FROM kneeload_api.fleet_sessions WHERE unit_id = 'v-lever-1'"
    )
    assert fs == [{"session_id": "v-s1"}]
    pvl = _rows(
        conn, "SELECT * FROM kneeload_api.pain_vs_load WHERE athlete_id = 'v-ann' ORDER BY date"
    )
    assert [r["date"] for r in pvl] == [TODAY - timedelta(days=1), TODAY]
    open_ids = {r["alert_id"] for r in _rows(conn, "SELECT alert_id FROM kneeload_api.open_alerts")}
    assert {"v-al-1", "v-al-2", "v-al-u"} <= open_ids
    docs = dict(
        conn.execute(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c JOIN "
            "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'kneeload_api'"
        )
    )
    assert all(docs.values()) and len(docs) >= 14


def test_daily_load_corrections_keep_latest_and_history(
    seeded: str, conn: psycopg.Connection[Any], write: Any
) -> None:
    d = TODAY - timedelta(days=5)
    write(
        [
            (
                "daily.load",
                ev.daily(
                    "v-ben",
                    d,
                    load=100.0,
                    acwr=1.0,
                    revision=1,
                    status="provisional",
                    team="v-team-a",
                ),
            ),
            (
                "daily.load",
                ev.daily(
                    "v-ben",
                    d,
                    load=150.0,
                    acwr=1.2,
                    revision=3,
                    status="final",
                    corrected=True,
                    team="v-team-a",
                ),
            ),
        ]
    )
    write(
        [
            (
                "daily.load",
                ev.daily(
                    "v-ben", d, load=120.0, acwr=1.1, revision=2, status="final", team="v-team-a"
                ),
            )
        ]
    )  # late-arriving older revision: ignored
    row = conn.execute(
        "SELECT load, revision, status, corrected FROM kneeload.daily_load "
        "WHERE athlete_id = 'v-ben' AND date = %s",
        (d,),
    ).fetchone()
    assert row == (150.0, 3, "final", True)
    revs = conn.execute(
        "SELECT revision FROM kneeload_api.daily_load_revisions WHERE athlete_id = 'v-ben' "
        "AND date = %s ORDER BY 1",
        (d,),
    ).fetchall()
    assert revs == [(1,), (2,), (3,)]
    # sessions: newer revision wins, replay is a no-op
    write(
        [
            (
                "sessions",
                ev.session(
                    "v-s9", "v-ben", NOW, load=10.0, revision=2, status="open", team="v-team-a"
                ),
            ),
            (
                "sessions",
                ev.session(
                    "v-s9", "v-ben", NOW, load=5.0, revision=1, status="open", team="v-team-a"
                ),
            ),
        ]
    )
    assert conn.execute(
        "SELECT pfj_load_mpa_s, revision FROM kneeload.sessions WHERE session_id = 'v-s9'"
    ).fetchone() == (10.0, 2)


def test_acknowledge_alert(seeded: str, db: str) -> None:
    from kneeload.storage import acknowledge_alert

    with psycopg.connect(db) as c:
        assert acknowledge_alert(c, "v-al-2", "coach-zoe") is True
        assert acknowledge_alert(c, "v-al-2", "coach-other") is False  # the first one is kept
        c.commit()
        row = c.execute(
            "SELECT acknowledged_by, acknowledged_at IS NOT NULL FROM kneeload_api.alerts "
            "WHERE alert_id = 'v-al-2'"
        ).fetchone()
        assert row == ("coach-zoe", True)
        assert c.execute(
            "SELECT count(*) FROM kneeload_api.open_alerts WHERE alert_id = 'v-al-2'"
        ).fetchone() == (0,)


@pytest.fixture(scope="module")
def roles(seeded: str) -> Iterator[dict[str, str]]:
    """Real, cluster-wide roles with names unique to this run; dropped at the end."""
    tag = uuid.uuid4().hex[:8]
    names = {
        "coach_a": f"kl_t_coach_a_{tag}",
        "coach_b": f"kl_t_coach_b_{tag}",
        "clinic": f"kl_t_clinic_{tag}",
    }
    with psycopg.connect(seeded, autocommit=True) as c:
        for r in names.values():
            c.execute(f'CREATE ROLE "{r}" NOLOGIN')
        c.execute("SELECT kneeload.grant_coach(%s, 'v-team-a', 'Coach A')", (names["coach_a"],))
        c.execute("SELECT kneeload.grant_coach(%s, 'v-team-b')", (names["coach_b"],))
        c.execute("SELECT kneeload.grant_clinic(%s, 'v-clinic-n')", (names["clinic"],))
    try:
        yield names
    finally:
        with psycopg.connect(seeded, autocommit=True) as c:
            for r in names.values():
                c.execute(f'DROP OWNED BY "{r}"')
                c.execute(f'DROP ROLE IF EXISTS "{r}"')


def _as(db: str, role: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db) as c:
        c.execute(f'SET ROLE "{role}"')
        return c.execute(sql, args).fetchall()


VIEWS = [
    "team_overview",
    "athlete_timeline",
    "acwr_history",
    "daily_load_revisions",
    "pain_vs_load",
    "correlations",
    "bws_suggestions",
    "alerts",
    "open_alerts",
    "fleet_status",
    "fleet_sessions",
    "fleet_bws_distribution",
    "live_session",
    "live_session_samples",
]


def test_coach_reading_another_team_gets_zero_rows(roles: dict[str, str], seeded: str) -> None:
    a = roles["coach_a"]
    assert _as(
        seeded, a, "SELECT count(*) FROM kneeload_api.team_overview WHERE team_id = 'v-team-b'"
    ) == [(0,)]
    for view in VIEWS:  # nothing of team b through any view
        rows = _as(seeded, a, f"SELECT * FROM kneeload_api.{view}")
        text = repr(rows)
        assert "v-cai" not in text and "v-team-b" not in text, view
    assert {r[0] for r in _as(seeded, a, "SELECT athlete_id FROM kneeload_api.team_overview")} == {
        "v-ann",
        "v-ben",
    }
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # views only (migration 0009)
        _as(seeded, a, "SELECT count(*) FROM kneeload.daily_load WHERE athlete_id = 'v-cai'")
    b = roles["coach_b"]
    assert {r[0] for r in _as(seeded, b, "SELECT athlete_id FROM kneeload_api.team_overview")} == {
        "v-cai"
    }
    assert _as(
        seeded, b, "SELECT count(*) FROM kneeload_api.athlete_timeline WHERE athlete_id = 'v-ann'"
    ) == [(0,)]
    # coaches see no units (no clinic grant) and cannot read raw or internal tables at all
    assert _as(seeded, a, "SELECT count(*) FROM kneeload_api.fleet_status") == [(0,)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as(seeded, a, "SELECT count(*) FROM kneeload.watch_samples")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as(seeded, a, "SELECT count(*) FROM kneeload.sink_offsets")


def test_clinic_role_sees_only_its_units(roles: dict[str, str], seeded: str) -> None:
    c = roles["clinic"]
    assert [r[0] for r in _as(seeded, c, "SELECT unit_id FROM kneeload_api.fleet_status")] == [
        "v-lever-1"
    ]
    assert _as(seeded, c, "SELECT count(*) FROM kneeload_api.team_overview") == [(0,)]
    # sessions run on its unit are visible to the clinic, others are not
    assert [r[0] for r in _as(seeded, c, "SELECT session_id FROM kneeload_api.fleet_sessions")] == [
        "v-s1"
    ]
    assert [r[0] for r in _as(seeded, c, "SELECT alert_id FROM kneeload_api.open_alerts")] == [
        "v-al-u"
    ]


def test_coach_acknowledges_only_own_alerts(roles: dict[str, str], seeded: str) -> None:
    with psycopg.connect(seeded) as c:
        c.execute(f'SET ROLE "{roles["coach_b"]}"')
        assert c.execute("SELECT kneeload.acknowledge_alert('v-al-1', 'coach-b')").fetchone() == (
            False,
        )
        c.commit()
    with psycopg.connect(seeded) as c:
        assert c.execute(
            "SELECT acknowledged_at FROM kneeload.alerts WHERE alert_id = 'v-al-1'"
        ).fetchone() == (None,)
        c.execute(f'SET ROLE "{roles["coach_a"]}"')
        assert c.execute("SELECT kneeload.acknowledge_alert('v-al-1')").fetchone() == (True,)
        c.commit()
        assert c.execute(
            "SELECT acknowledged_by FROM kneeload_api.alerts WHERE alert_id = 'v-al-1'"
        ).fetchone() == (roles["coach_a"],)


def test_overview_has_no_pain_trend_arithmetic(conn: psycopg.Connection[Any]) -> None:
    """0028: the trend is the worker's (core.pain) — no averaging of reports in the view, and
    the SQL-only delta setting is gone (the worker's KNEELOAD_WORKER_PAIN_TREND_DELTA_NRS)."""
    (sql,) = conn.execute(
        "SELECT pg_get_viewdef('kneeload_api.team_overview'::regclass)"
    ).fetchone() or ("",)
    assert "avg(" not in sql and "worsening" not in sql and "td.pain_trend" in sql
    assert conn.execute(
        "SELECT count(*) FROM kneeload.config WHERE key = 'pain_trend_delta_nrs'"
    ).fetchone() == (0,)
