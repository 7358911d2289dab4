"""Readers reach only the kneeload_api views (catalog check), and row-level security of the
fleet views for a team role, a clinic role and a role holding both grants (real roles on the
real database)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from . import events as ev

#: Every privilege a role can hold on a relation (table, view, sequence) or its columns.
_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def _reader_relation_privileges(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    """(schema, relation, privilege) of every relation outside the system catalogs on which
    kneeload_reader holds a privilege, on the relation or on any of its columns."""
    out: list[tuple[str, str, str]] = []
    rows = conn.execute(
        "SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%%'"
    ).fetchall()
    for oid, schema, name, kind in rows:
        privs = ("USAGE", "SELECT", "UPDATE") if kind == "S" else _TABLE_PRIVILEGES
        for p in privs:
            if kind == "S":
                held = conn.execute(
                    "SELECT has_sequence_privilege('kneeload_reader', %s::oid, %s)", (oid, p)
                ).fetchone()
            else:
                held = conn.execute(
                    "SELECT has_table_privilege('kneeload_reader', %s::oid, %s) OR "
                    "(%s IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES') AND "
                    "has_any_column_privilege('kneeload_reader', %s::oid, %s))",
                    (oid, p, p, oid, p),
                ).fetchone()
            if held == (True,):
                out.append((schema, name, p))
    return out


#: TimescaleDB grants SELECT on its own catalog (hypertable and chunk metadata, job
#: configuration and statistics; no row of ours) to PUBLIC, as its functions need it
_TIMESCALE_CATALOG = (
    "_timescaledb_cache",
    "_timescaledb_catalog",
    "_timescaledb_config",
    "timescaledb_experimental",
    "timescaledb_information",
)


def _ours(schema: str, name: str) -> bool:
    """Not TimescaleDB's catalog: its chunk, compressed-chunk and materialisation tables (in
    ``_timescaledb_internal``) hold our rows and count as ours."""
    if schema in _TIMESCALE_CATALOG:
        return False
    if schema == "_timescaledb_internal":
        ours = ("_hyper_", "_compressed_", "_materialized_", "_partial_", "_direct_")
        return name.startswith(ours)
    return True


def test_readers_hold_privileges_only_on_kneeload_api(conn: psycopg.Connection[Any]) -> None:
    held = _reader_relation_privileges(conn)
    outside = sorted({(s, n, p) for s, n, p in held if s != "kneeload_api" and _ours(s, n)})
    assert outside == [], f"kneeload_reader reaches relations outside kneeload_api: {outside}"
    views = {n for n, in conn.execute(
        "SELECT viewname FROM pg_views WHERE schemaname = 'kneeload_api'"
    )}  # fmt: skip
    readable = {n for s, n, p in held if p == "SELECT"}
    assert views <= readable, f"views readers cannot read: {views - readable}"
    # the one writable thing: acknowledging (two columns of open alerts)
    writable = {(n, p) for s, n, p in held if p != "SELECT"}
    assert writable == {("alert_acknowledgement", "UPDATE")}, writable


def test_views_run_as_kneeload_api_owner_which_reads_only_rls_tables(
    conn: psycopg.Connection[Any],
) -> None:
    """The views' rights are kneeload_api_owner's: not the tables' owner, no BYPASSRLS, and
    every table it may read has row-level security (except the thresholds in config); a view of
    schema kneeload it may read (kneeload.sample_load, 0023) is its own, so the tables under it
    are read with its rights, under their row-level security."""
    bad_views = conn.execute(
        "SELECT c.relname, c.relowner::regrole::text, c.reloptions FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'kneeload_api' "
        "AND c.relkind = 'v' AND (c.relowner <> 'kneeload_api_owner'::regrole "
        "OR coalesce(array_to_string(c.reloptions, ','), '') ~* 'security_invoker=(true|on)')"
    ).fetchall()
    assert bad_views == []
    owner = conn.execute(
        "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles "
        "WHERE rolname = 'kneeload_api_owner'"
    ).fetchone()
    assert owner == (False, False, False)
    assert conn.execute(
        "SELECT count(*) FROM pg_auth_members WHERE roleid = 'kneeload_api_owner'::regrole "
        "AND member IN (SELECT oid FROM pg_roles WHERE NOT rolsuper) "
        "AND member <> (SELECT nspowner FROM pg_namespace WHERE nspname = 'kneeload')"
    ).fetchone() == (0,), "only the migrating owner may be a member of kneeload_api_owner"
    unprotected = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'kneeload' AND c.relkind IN ('r', 'p', 'v', 'm') "
        "AND has_table_privilege('kneeload_api_owner', c.oid, 'SELECT') "
        "AND NOT c.relrowsecurity AND c.relname <> 'config' AND NOT (c.relkind = 'v' AND "
        "c.relowner = 'kneeload_api_owner'::regrole) ORDER BY 1"
    ).fetchall()
    assert unprotected == []


def test_a_view_added_later_is_secured_by_migrate(db: str) -> None:
    """A later migration that (re)creates a view the 0005 way (security_invoker, owned by the
    migrating role) is brought under the rule by the next `kneeload migrate`."""
    from kneeload.storage import migrate

    name = f"t_later_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(
            f"CREATE VIEW kneeload_api.{name} WITH (security_invoker = true) AS "
            "SELECT athlete_id FROM kneeload.athletes"
        )
    try:
        migrate(db)
        with psycopg.connect(db, autocommit=True) as c:
            row = c.execute(
                "SELECT relowner::regrole::text, reloptions, "
                "has_table_privilege('kneeload_reader', oid, 'SELECT') FROM pg_class "
                "WHERE oid = %s::regclass",
                (f"kneeload_api.{name}",),
            ).fetchone()
            assert row == ("kneeload_api_owner", None, True)
    finally:
        with psycopg.connect(db, autocommit=True) as c:
            c.execute(f"DROP VIEW IF EXISTS kneeload_api.{name}")


# --------------------------------------------------------------------------- fleet views

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def _minute(athlete: str, team: str, unit: str, t: datetime, bws: float) -> dict[str, Any]:
    return {
        "id": f"{athlete}:{int(t.timestamp())}",
        "athlete_id": athlete,
        "team_id": team,
        "session_id": f"f-s-{athlete}",
        "unit_id": unit,
        "minute": ev.iso(t),
        "samples": 60,
        "duration_s": 60,
        "distance_m": 200.0,
        "mean_speed_mps": 3.3,
        "mean_cadence_spm": 170.0,
        "mean_bws_pct": bws,
        "peak_pfj_stress_mpa": 8.0,
        "pfj_load_mpa_s": 300.0,
        "revision": 0,
        "estimate": True,
    }


#: athlete -> (team, unit, clinic of the unit)
FLEET = {
    "f-a1": ("f-team-a", "f-lever-1", "f-clinic-n"),
    "f-b1": ("f-team-b", "f-lever-2", "f-clinic-n"),
    "f-c1": ("f-team-c", "f-lever-3", "f-clinic-m"),
}


@pytest.fixture(scope="module")
def fleet_db(db: str) -> str:
    """Three athletes of three teams, each on a LEVER unit (two units of clinic n, one of
    clinic m): registry, unit status, a session, per-minute and per-sample load on the unit."""
    from .conftest import _write

    t0 = NOW - timedelta(minutes=5)
    events: list[tuple[str, Any]] = []
    for i, (a, (team, unit, clinic)) in enumerate(sorted(FLEET.items())):
        bws = 10.0 * (i + 1)
        events += [
            ("registry.athletes", ev.athlete(a, team, a.upper(), NOW - timedelta(days=30))),
            ("registry.assignments", ev.assignment(unit, clinic, a, t0)),
            (
                "unit.status",
                ev.unit_status(unit, clinic, t0, athlete_id=a, in_use=True, bws=bws, minutes=30.0),
            ),
            ("sessions", ev.session(f"f-s-{a}", a, t0, load=500.0, team=team, unit=unit, bws=bws)),
            ("load.minute", _minute(a, team, unit, t0, bws)),
            ("load.minute", _minute(a, team, unit, t0 + timedelta(minutes=1), bws)),
            (
                "load.samples",
                ev.load_batch(
                    a,
                    NOW - timedelta(seconds=30),
                    n=3,
                    batch_id=f"f-lb-{a}",
                    team=team,
                    session=f"f-s-{a}",
                    unit=unit,
                    bws=bws,
                ),
            ),
        ]
    result = asyncio.run(_write(db, events))
    assert result.dead_letters == []
    return db


@pytest.fixture(scope="module")
def fleet_roles(fleet_db: str) -> Iterator[dict[str, str]]:
    """A team role (team a), a clinic role (clinic n) and a role with both a team (a) and a
    clinic (m); real cluster-wide roles, dropped at the end."""
    tag = uuid.uuid4().hex[:8]
    names = {k: f"kl_f_{k}_{tag}" for k in ("team", "clinic", "both")}
    with psycopg.connect(fleet_db, autocommit=True) as c:
        for r in names.values():
            c.execute(f'CREATE ROLE "{r}" NOLOGIN')
        c.execute("SELECT kneeload.grant_coach(%s, 'f-team-a')", (names["team"],))
        c.execute("SELECT kneeload.grant_clinic(%s, 'f-clinic-n')", (names["clinic"],))
        c.execute("SELECT kneeload.grant_coach(%s, 'f-team-a')", (names["both"],))
        c.execute("SELECT kneeload.grant_clinic(%s, 'f-clinic-m')", (names["both"],))
    try:
        yield names
    finally:
        with psycopg.connect(fleet_db, autocommit=True) as c:
            for r in names.values():
                c.execute(f'DROP OWNED BY "{r}"')
                c.execute(f'DROP ROLE IF EXISTS "{r}"')


def _as(db: str, role: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db) as c:
        c.execute(f'SET ROLE "{role}"')
        return c.execute(sql).fetchall()


def _units(rows: list[tuple[Any, ...]]) -> list[str]:
    return sorted({r[0] for r in rows if str(r[0]).startswith("f-")})


# Which units each role sees in each fleet view: the team role only where its athlete ran
# (sessions and minutes are the athlete's); clinic n both its units, whoever ran on them; the
# role with team a and clinic m the union of the two.
EXPECTED = {
    ("fleet_status", "team"): [],
    ("fleet_status", "clinic"): ["f-lever-1", "f-lever-2"],
    ("fleet_status", "both"): ["f-lever-3"],
    ("fleet_sessions", "team"): ["f-lever-1"],
    ("fleet_sessions", "clinic"): ["f-lever-1", "f-lever-2"],
    ("fleet_sessions", "both"): ["f-lever-1", "f-lever-3"],
    ("fleet_bws_distribution", "team"): ["f-lever-1"],
    ("fleet_bws_distribution", "clinic"): ["f-lever-1", "f-lever-2"],
    ("fleet_bws_distribution", "both"): ["f-lever-1", "f-lever-3"],
}


@pytest.mark.parametrize(("view", "who"), sorted(EXPECTED))
def test_fleet_views_per_role(
    fleet_roles: dict[str, str], fleet_db: str, view: str, who: str
) -> None:
    rows = _as(fleet_db, fleet_roles[who], f"SELECT unit_id FROM kneeload_api.{view}")
    assert _units(rows) == EXPECTED[(view, who)]


def test_fleet_views_as_owner_see_every_unit(fleet_db: str) -> None:
    with psycopg.connect(fleet_db) as c:
        for view in ("fleet_status", "fleet_sessions", "fleet_bws_distribution"):
            rows = c.execute(f"SELECT unit_id FROM kneeload_api.{view}").fetchall()
            assert _units(rows) == ["f-lever-1", "f-lever-2", "f-lever-3"], view


def test_clinic_minutes_and_samples_on_its_units(
    fleet_roles: dict[str, str], fleet_db: str
) -> None:
    """The clinic sees the minutes (with BWS band and athlete count) and the live samples run
    on its units, also of an athlete whose team it has no grant for (f-b1 on f-lever-2)."""
    clinic = fleet_roles["clinic"]
    rows = _as(
        fleet_db,
        clinic,
        "SELECT unit_id, clinic_id, bws_band_low_pct, minutes, athletes "
        "FROM kneeload_api.fleet_bws_distribution WHERE unit_id LIKE 'f-%' ORDER BY 1",
    )
    assert rows == [
        ("f-lever-1", "f-clinic-n", 10, 2.0, 1),
        ("f-lever-2", "f-clinic-n", 20, 2.0, 1),
    ]
    samples = _as(
        fleet_db,
        clinic,
        "SELECT DISTINCT athlete_id FROM kneeload_api.live_session_samples "
        "WHERE athlete_id LIKE 'f-%' ORDER BY 1",
    )
    assert samples == [("f-a1",), ("f-b1",)]
    # ... but not the athletes themselves: names and team dashboards stay the team's
    assert _as(fleet_db, clinic, "SELECT count(*) FROM kneeload_api.team_overview") == [(0,)]


def test_reader_cannot_query_raw_tables(fleet_roles: dict[str, str], fleet_db: str) -> None:
    for table in ("sample_load", "minute_load", "pain_reports", "alerts", "devices"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _as(fleet_db, fleet_roles["both"], f"SELECT count(*) FROM kneeload.{table}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as(fleet_db, fleet_roles["both"], "SELECT count(*) FROM kneeload.tenant_grants")
