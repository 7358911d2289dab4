"""Security suite — row-level security as a property, with real roles on a real database.

A database of its own holds three teams and two clinics, with cross-tenant data: an athlete
of one team training on another clinic's unit, alerts about units and about athletes, team-
and athlete-scope correlations, live samples on units and overground. For random grants of
teams and clinics to reader roles (hypothesis), every ``kneeload_api`` view returns, for each
role, exactly the rows of its teams and clinics (compared on each view's row identity), no
value of another tenant's athletes leaks into any column, every function a reader may call
behaves (``acknowledge_alert`` acknowledges exactly the visible open alerts; no other
function runs with more rights than the reader's, except the allow-listed scalar helpers),
and readers reach none of the tables behind the views.

The visibility rules are the documented ones (README "Tenancy"): a team grant shows the
team's athletes and everything about them; a clinic grant shows the clinic's units and what
was recorded on them (sessions, minute and sample load, pain responses with a BWS
suggestion, alerts, status).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kneeload.settings import Settings
from kneeload.storage import migrate

from . import events as ev
from .conftest import _write

P = "rls" + uuid.uuid4().hex[:6]
TEAMS = [f"{P}-team-{i}" for i in range(3)]
CLINICS = [f"{P}-clinic-{i}" for i in range(2)]
#: athletes per team; the first athlete of teams 0 and 1 trains on a unit
ATHLETES = {t: [f"{t}-ath-{j}" for j in range(2)] for t in TEAMS}
UNITS = {c: [f"{c}-unit-{j}" for j in range(2)] for c in CLINICS}
#: who trains on which unit (across tenants on purpose): team 0 -> clinic 1, team 1 -> clinic 0
ON_UNIT = {ATHLETES[TEAMS[0]][0]: UNITS[CLINICS[1]][0], ATHLETES[TEAMS[1]][0]: UNITS[CLINICS[0]][1]}
ROLES = [f"{P}_reader_{i}" for i in range(4)]
TEAM_OF = {a: t for t, ath in ATHLETES.items() for a in ath}
CLINIC_OF = {u: c for c, units in UNITS.items() for u in units}


def _name(athlete: str) -> str:
    return f"Secret {athlete}"


def _seed_events(now: datetime) -> list[tuple[str, Any]]:
    today = now.date()
    out: list[tuple[str, Any]] = []
    for c, units in UNITS.items():
        for u in units:
            rider = next((a for a, uu in ON_UNIT.items() if uu == u), None)
            since = now - timedelta(days=9)
            out.append(("registry.assignments", ev.assignment(u, c, rider, since)))
            out.append(
                (
                    "unit.status",
                    ev.unit_status(
                        u, c, now - timedelta(seconds=20), athlete_id=rider, in_use=bool(rider),
                        bws=20.0 if rider else None, minutes=30.0,
                        calibration=(40, 1.5, 2.0) if rider else None,
                    ),
                )
            )  # fmt: skip
            out.append(
                (
                    "alerts",
                    ev.alert(
                        f"{u}-offline", None, now - timedelta(hours=1), unit=u, team=None,
                        clinic=c, kind="unit_offline",
                    ),
                )
            )  # fmt: skip
    for t, athletes in ATHLETES.items():
        out.append(
            (
                "correlations",
                {
                    "id": f"team:{t}:pfj_load_mpa_s:0:rmcorr:{today}",
                    "scope": "team", "athlete_id": None, "team_id": t,
                    "metric": "pfj_load_mpa_s", "lag_days": 0, "method": "rmcorr", "n": 20,
                    "r": 0.3, "df": 17, "ci_low": 0.1, "ci_high": 0.5, "p_value": 0.04,
                    "withheld_reason": None, "time": ev.iso(now - timedelta(hours=2)),
                },
            )
        )  # fmt: skip
        for a in athletes:
            unit = ON_UNIT.get(a)
            out.append(("registry.athletes", ev.athlete(a, t, _name(a), now - timedelta(days=30))))
            s_id = f"{a}-s1"
            out.append(
                (
                    "sessions",
                    ev.session(s_id, a, now - timedelta(days=1), load=700.0, team=t, unit=unit,
                               bws=20.0 if unit else None),
                )
            )  # fmt: skip
            for k in range(2):
                out.append(
                    ("daily.load", ev.daily(a, today - timedelta(days=k), load=600.0 + k,
                                            acwr=1.1, team=t))
                )  # fmt: skip
            out.append(("pain.reports", ev.pain(f"{a}-p1", a, now - timedelta(hours=3), 5,
                                                session=s_id, team=t)))  # fmt: skip
            out.append(("pain.reports", ev.pain(f"{a}-p2", a, now - timedelta(days=1, hours=-1), 2,
                                                context="next_morning", team=t)))  # fmt: skip
            resp = ev.pain_response(f"{a}-p1", a, now - timedelta(hours=3), nrs=5, unit=unit,
                                    team=t)  # fmt: skip
            out.append(("pain.responses", resp))
            out.append(
                (
                    "correlations",
                    {
                        "id": f"athlete:{a}:pfj_load_mpa_s:1:spearman:{today}",
                        "scope": "athlete", "athlete_id": a, "team_id": t,
                        "metric": "pfj_load_mpa_s", "lag_days": 1, "method": "spearman",
                        "n": 12, "r": 0.4, "df": 10, "ci_low": 0.1, "ci_high": 0.6,
                        "p_value": 0.03, "withheld_reason": None,
                        "time": ev.iso(now - timedelta(hours=1)),
                    },
                )
            )  # fmt: skip
            out.append(("alerts", ev.alert(f"{a}-acwr", a, now - timedelta(hours=2), team=t)))
            if unit:
                al = ev.alert(f"{a}-pain-on-unit", a, now - timedelta(hours=2), team=t,
                              unit=unit, clinic=CLINIC_OF[unit], kind="pain_high")  # fmt: skip
                out.append(("alerts", al))
            out.append(
                (
                    "load.samples",
                    ev.load_batch(a, now - timedelta(seconds=40), n=4, batch_id=f"{a}-live",
                                  team=t, session=s_id, unit=unit, bws=20.0 if unit else 0.0),
                )
            )  # fmt: skip
            for m in range(3):
                minute = (now - timedelta(days=1)).replace(second=0, microsecond=0) + timedelta(
                    minutes=m
                )
                out.append(
                    (
                        "load.minute",
                        {
                            "id": f"{a}:{ev.iso(minute)}", "athlete_id": a, "team_id": t,
                            "session_id": s_id, "unit_id": unit, "minute": ev.iso(minute),
                            "samples": 60, "duration_s": 60, "distance_m": 200.0,
                            "mean_speed_mps": 3.3, "mean_cadence_spm": 172.0,
                            "mean_bws_pct": 20.0 if unit else 0.0, "peak_pfj_stress_mpa": 8.0,
                            "pfj_load_mpa_s": 300.0, "revision": 0, "estimate": True,
                        },
                    )
                )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def rls_db(base_settings: Settings, settings: Settings) -> Iterator[str]:
    """A database of this module (seeded, migrated) and the reader roles; dropped after."""
    admin = urlsplit(settings.database_url)
    admin_url = urlunsplit(admin._replace(path="/postgres"))
    name = f"kneeload_{P}"
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(admin._replace(path=f"/{name}"))
    try:
        migrate(url, settings)
        result = asyncio.run(_write(url, _seed_events(datetime.now(UTC).replace(microsecond=0))))
        assert result.dead_letters == [], result.dead_letters
        with psycopg.connect(url, autocommit=True) as c:
            for r in ROLES:
                c.execute(f'CREATE ROLE "{r}" NOLOGIN')
                c.execute(f'GRANT kneeload_reader TO "{r}"')
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for r in ROLES:
                c.execute(f'DROP ROLE IF EXISTS "{r}"')


# --------------------------------------------------------------------------- the rules


class Scope:
    """What one role may see: its teams and clinics, and the athletes and units in them."""

    def __init__(self, teams: set[str], clinics: set[str]) -> None:
        self.teams, self.clinics = teams, clinics
        self.athletes = {a for a, t in TEAM_OF.items() if t in teams}
        self.units = {u for u, c in CLINIC_OF.items() if c in clinics}

    def athlete(self, r: dict[str, Any]) -> bool:
        return r.get("athlete_id") in self.athletes

    def unit(self, r: dict[str, Any], col: str = "unit_id") -> bool:
        return r.get(col) in self.units

    def athlete_or_unit(self, r: dict[str, Any]) -> bool:
        return self.athlete(r) or self.unit(r)

    def generic(self, r: dict[str, Any]) -> bool:
        """Rule for a view this test does not know: visible through any subject column it
        has; a view without one is global (like the thresholds)."""
        subject = [k for k in ("athlete_id", "unit_id", "clinic_id", "team_id") if k in r]
        if not subject:
            return True
        return (
            self.athlete(r)
            or self.unit(r)
            or (r.get("clinic_id") in self.clinics and r.get("unit_id") is None)
            or (r.get("athlete_id") is None and r.get("team_id") in self.teams)
        )


Rule = Callable[[Scope, dict[str, Any]], bool]
#: view -> (row identity columns, visibility rule)
VIEWS: dict[str, tuple[tuple[str, ...], Rule]] = {
    "team_overview": (("athlete_id", "metric"), Scope.athlete),
    "athlete_timeline": (("session_id",), Scope.athlete_or_unit),
    "acwr_history": (("athlete_id", "date", "metric", "method"), Scope.athlete),
    "daily_load_revisions": (("athlete_id", "date", "metric", "revision"), Scope.athlete),
    "pain_vs_load": (("athlete_id", "date", "metric"), Scope.athlete),
    "correlations": (
        ("scope", "athlete_id", "team_id", "metric", "lag_days", "method"),
        lambda s, r: s.athlete(r) or (r["athlete_id"] is None and r["team_id"] in s.teams),
    ),
    "bws_suggestions": (("report_id",), Scope.athlete_or_unit),
    "alerts": (("alert_id",), Scope.athlete_or_unit),
    "open_alerts": (("alert_id",), Scope.athlete_or_unit),
    "alert_episodes": (("episode_id",), Scope.athlete_or_unit),
    "alert_acknowledgement": (("alert_id",), lambda s, r: _alert_visible(s, r["alert_id"])),
    "fleet_status": (("unit_id",), Scope.unit),
    # a unit's state history is the clinic's (its athlete column does not open it to teams)
    "fleet_unit_states": (("unit_id", "time"), Scope.unit),
    "fleet_sessions": (("session_id",), Scope.athlete_or_unit),
    "fleet_bws_distribution": (
        ("unit_id", "date", "bws_band_low_pct"),
        lambda s, r: s.unit(r) or bool(s.athletes & _group_athletes(r)),
    ),
    "live_session": (("athlete_id",), Scope.athlete),
    "live_session_samples": (("athlete_id", "session_id", "time"), Scope.athlete_or_unit),
    "thresholds": (("key",), lambda s, r: True),
}

_ALERTS: dict[str, dict[str, Any]] = {}
_GROUPS: dict[tuple[Any, ...], set[str]] = {}


def _alert_visible(s: Scope, alert_id: str) -> bool:
    return s.athlete_or_unit(_ALERTS[alert_id])


def _group_athletes(r: dict[str, Any]) -> set[str]:
    return _GROUPS.get((r["unit_id"], r["date"], r["bws_band_low_pct"]), set())


def _rows(c: psycopg.Connection[Any], sql: str, *args: Any) -> list[dict[str, Any]]:
    cur = c.execute(sql, args)  # type: ignore[arg-type]
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@pytest.fixture(scope="module")
def owner_view(rls_db: str) -> dict[str, list[dict[str, Any]]]:
    """Every view as the owner sees it (all rows), plus the facts the rules need."""
    with psycopg.connect(rls_db, autocommit=True) as c:
        views = [
            v for (v,) in c.execute(
                "SELECT viewname FROM pg_views WHERE schemaname = 'kneeload_api' ORDER BY 1"
            )
        ]  # fmt: skip
        out = {v: _rows(c, f"SELECT * FROM kneeload_api.{v}") for v in views}
        for a in _rows(c, "SELECT alert_id, athlete_id, unit_id FROM kneeload.alerts"):
            _ALERTS[a["alert_id"]] = a
        for g in _rows(
            c,
            "SELECT unit_id, utc_date AS date, "
            "(floor(coalesce(mean_bws_pct, 0) / 10) * 10)::int AS band, "
            "array_agg(DISTINCT athlete_id) AS athletes "
            "FROM kneeload.minute_load WHERE unit_id IS NOT NULL GROUP BY 1, 2, 3",
        ):
            _GROUPS[(g["unit_id"], g["date"], g["band"])] = set(g["athletes"])
    assert all(out[v] for v in ("team_overview", "alerts", "fleet_status", "fleet_sessions"))
    return out


_KEYISH = {"id", "time", "date", "minute", "metric", "method", "scope", "lag_days", "revision"}


def _generic_key(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """Row identity of a view this test does not know: its ids, times and dimensions (names
    joined from other tables may be NULL for a reader who cannot see that table's row)."""
    cols = tuple(rows[0]) if rows else ()
    return tuple(c for c in cols if c in _KEYISH or c.endswith("_id")) or cols


def _key(row: dict[str, Any], cols: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(row.get(c) for c in cols)


def _as(c: psycopg.Connection[Any], role: str, sql: str) -> list[dict[str, Any]]:
    c.execute(f'SET ROLE "{role}"')
    try:
        return _rows(c, sql)
    finally:
        c.execute("RESET ROLE")


def _grant(c: psycopg.Connection[Any], role: str, teams: set[str], clinics: set[str]) -> None:
    c.execute(
        "SELECT kneeload.revoke_tenant(role_name, kind, tenant_id) FROM kneeload.tenant_grants "
        "WHERE role_name = %s",
        (role,),
    )
    for t in sorted(teams):
        c.execute("SELECT kneeload.grant_coach(%s, %s)", (role, t))
    for cl in sorted(clinics):
        c.execute("SELECT kneeload.grant_clinic(%s, %s)", (role, cl))


def _grant_drawn(db: str, drawn: list[tuple[set[str], set[str]]]) -> None:
    """Give each of :data:`ROLES` exactly the drawn teams and clinics."""
    with psycopg.connect(db, autocommit=True) as c:
        for role, (teams, clinics) in zip(ROLES, drawn, strict=True):
            _grant(c, role, teams, clinics)


grants = st.lists(
    st.tuples(st.sets(st.sampled_from(TEAMS)), st.sets(st.sampled_from(CLINICS))),
    min_size=len(ROLES),
    max_size=len(ROLES),
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],  # a failure names role and grants; no shrinking
)
@given(drawn=grants)
def test_every_view_shows_exactly_the_roles_tenants(
    rls_db: str,
    owner_view: dict[str, list[dict[str, Any]]],
    drawn: list[tuple[set[str], set[str]]],
) -> None:
    _grant_drawn(rls_db, drawn)
    with psycopg.connect(rls_db, autocommit=True) as c:
        for role, (teams, clinics) in zip(ROLES, drawn, strict=True):
            scope = Scope(teams, clinics)
            hidden_names = {_name(a) for a in TEAM_OF if a not in scope.athletes}
            for view, all_rows in owner_view.items():
                default = (_generic_key(all_rows), Scope.generic)
                cols, rule = VIEWS.get(view, default)
                got = _as(c, role, f"SELECT * FROM kneeload_api.{view}")
                want = Counter(_key(r, cols) for r in all_rows if rule(scope, r))
                have = Counter(_key(r, cols) for r in got)
                assert have == want, (
                    f"{view} as {role} (teams {sorted(teams)}, clinics {sorted(clinics)}): "
                    f"missing {sorted(want - have, key=repr)[:5]}, "
                    f"extra {sorted(have - want, key=repr)[:5]}"
                )
                leaked = {
                    v for r in got for v in r.values() if isinstance(v, str) and v in hidden_names
                }
                assert not leaked, f"{view} as {role} shows other tenants' names {leaked}"


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)
@given(drawn=grants)
def test_acknowledge_alert_reaches_exactly_the_visible_alerts(
    rls_db: str, owner_view: dict[str, list[dict[str, Any]]], drawn: list[tuple[set[str], set[str]]]
) -> None:
    _grant_drawn(rls_db, drawn)
    for role, (teams, clinics) in zip(ROLES, drawn, strict=True):
        scope = Scope(teams, clinics)
        with psycopg.connect(rls_db) as c:  # one transaction per role, rolled back
            c.execute(f'SET ROLE "{role}"')
            acked = {
                a
                for a in sorted(_ALERTS)
                if _rows(c, "SELECT kneeload.acknowledge_alert(%s, 'coach') AS ok", a)[0]["ok"]
            }
            c.rollback()
        assert acked == {a for a in _ALERTS if _alert_visible(scope, a)}, (role, teams, clinics)


#: SECURITY DEFINER functions a reader may call, and why that is safe (scalar, no tenant rows)
DEFINER_ALLOWED = {
    "kneeload.config_value": "a threshold of kneeload.config (kneeload_api.thresholds)",
    "kneeload.acwr_band": "a band name from the configured thresholds",
}


def test_functions_a_reader_may_call(rls_db: str, owner_view: dict[str, Any]) -> None:
    """Every function in kneeload's schemas a reader can execute runs with the reader's own
    rights (so row-level security and privileges apply), unless allow-listed above; the ones
    that would write or administer fail for a reader."""
    role = ROLES[0]
    with psycopg.connect(rls_db, autocommit=True) as c:
        _grant(c, role, {TEAMS[0]}, {CLINICS[0]})
        fns = _rows(
            c,
            "SELECT n.nspname || '.' || p.proname AS sig, p.prosecdef AS definer, "
            "p.prorettype::regtype::text AS returns FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname IN ('kneeload', 'kneeload_api', 'notify') "
            "AND has_function_privilege(%s, p.oid, 'EXECUTE') ORDER BY 1",
            role,
        )
    definers = {f["sig"] for f in fns if f["definer"]}
    assert definers <= set(DEFINER_ALLOWED), definers - set(DEFINER_ALLOWED)
    # administrative functions: refused for a reader, or (where the reader's call finds
    # nothing to do without touching anything it may not) a no-op result
    admin_calls = {
        "kneeload.ensure_partitions": "SELECT kneeload.ensure_partitions('kneeload.sample_load', "
        "now() + interval '400 days', now() + interval '401 days')",
        "kneeload.apply_retention": "SELECT count(*) FROM kneeload.apply_retention(false)",
        "kneeload.refresh_athlete_pain": "SELECT kneeload.refresh_athlete_pain(ARRAY['x'])",
        "kneeload.secure_api_views": "SELECT kneeload.secure_api_views()",
        "kneeload.grant_coach": f"SELECT kneeload.grant_coach('{role}', '{TEAMS[1]}')",
        "kneeload.grant_clinic": f"SELECT kneeload.grant_clinic('{role}', '{CLINICS[1]}')",
        "kneeload.revoke_tenant": f"SELECT kneeload.revoke_tenant('{role}', 'team', '{TEAMS[0]}')",
    }
    present = {f["sig"] for f in fns}
    assert "kneeload.acknowledge_alert" in present  # the one thing readers are meant to call
    outcomes = {}
    for name, call in admin_calls.items():
        if name not in present:
            continue
        with psycopg.connect(rls_db) as c:
            c.execute(f'SET ROLE "{role}"')
            try:
                outcomes[name] = c.execute(call).fetchone()  # type: ignore[arg-type]
            except psycopg.errors.InsufficientPrivilege:
                outcomes[name] = "refused"
            c.rollback()
    assert {k: v for k, v in outcomes.items() if v not in ("refused", (0,))} == {}
    # granting tenants is not even executable for readers
    assert not present & {"kneeload.grant_coach", "kneeload.grant_clinic", "kneeload.revoke_tenant"}


def test_readers_reach_no_table(rls_db: str) -> None:
    role = ROLES[1]
    with psycopg.connect(rls_db, autocommit=True) as c:
        _grant(c, role, set(TEAMS), set(CLINICS))
        relations = [
            (t, kind) for (t, kind) in c.execute(
                "SELECT format('%I.%I', n.nspname, c.relname), c.relkind FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname IN ('kneeload', 'notify') AND c.relkind IN ('r', 'p', 'v', 'm') "
                "AND NOT c.relispartition ORDER BY 1"
            )
        ]  # fmt: skip
    reached = []
    for t, kind in relations:
        writes = [f"DELETE FROM {t}"] if kind in ("r", "p") else []
        for sql in (f"SELECT 1 FROM {t} LIMIT 1", *writes):
            with psycopg.connect(rls_db) as c:
                c.execute(f'SET ROLE "{role}"')
                try:
                    c.execute(sql)  # type: ignore[arg-type]
                    reached.append(sql)
                except psycopg.errors.InsufficientPrivilege:
                    pass
                c.rollback()
    assert reached == [], f"a reader reaches tables directly: {reached}"
