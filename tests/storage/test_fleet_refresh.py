"""``kneeload fleet refresh`` stores the core's fleet figures for the clinic dashboard, and
row-level security shows a clinic role only its own units and its own clinic's outcomes.

Clinic fs-c1 has unit fs-u1 (five athletes, shown figures), clinic fs-c2 unit fs-u2 (one
athlete, withheld). Refreshing twice replaces the rows (no duplicates)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from click.testing import CliRunner

from kneeload.cli import root

from . import events as ev

T0 = dt.datetime(2026, 5, 4, tzinfo=dt.UTC)  # a Monday


def at(d: float, h: float = 0.0) -> dt.datetime:
    return T0 + dt.timedelta(days=d, hours=h)


def _events() -> Iterable[tuple[str, Any]]:
    for unit, clinic in (("fs-u1", "fs-c1"), ("fs-u2", "fs-c2")):
        yield "registry.assignments", ev.assignment(unit, clinic, None, at(-3))
        yield "unit.status", ev.unit_status(unit, clinic, at(0, 6), athlete_id=None,
                                            in_use=False, bws=20.0, minutes=0.0)  # fmt: skip
    for aid, unit in [(f"fs-a{k}", "fs-u1") for k in range(5)] + [("fs-b0", "fs-u2")]:
        for i in range(5):
            yield "sessions", ev.session(f"{aid}-s{i}", aid, at(7 * i, 9), load=900.0,
                                         unit=unit, bws=20.0 - 4 * i)  # fmt: skip
        for n, (d, nrs) in enumerate(((1, 3), (29, 1))):
            r = ev.pain_response(f"{aid}-p{n}", aid, at(d, 7), nrs=nrs, unit=None)
            yield "pain.responses", r | {"context": "next_morning"}


def test_refresh_stores_figures_and_clinic_sees_only_its_own(
    write: Callable[[Iterable[tuple[str, Any]]], Any], db: str
) -> None:
    write(list(_events()))
    args = ["fleet", "refresh", "--clinic", "fs-c1", "--clinic", "fs-c2", "--from",
            "2026-05-04", "--to", "2026-06-07", "--database-url", db]  # fmt: skip
    for _ in range(2):  # a second refresh replaces the rows
        res = CliRunner().invoke(root, args)
        assert res.exit_code == 0, res.output
        assert "stored 70 unit-days and 4 outcome groups" in res.output
    with psycopg.connect(db) as c:
        days = c.execute(
            "SELECT unit_id, count(*), sum(open_min), sum(idle_min), sum(sessions) "
            "FROM kneeload_api.fleet_utilisation_daily WHERE unit_id LIKE 'fs-%' GROUP BY 1 "
            "ORDER BY 1"
        ).fetchall()
        # 5 weeks of default hours: 5 × (5 × 13 h + 6 h) = 355 h; idle from 06:00 on day 0
        assert days == [("fs-u1", 35, 21300.0, 21300.0, 25), ("fs-u2", 35, 21300.0, 21300.0, 5)]
        out = dict(c.execute(
            "SELECT group_id, pain_change_nrs FROM kneeload_api.fleet_outcomes "
            "WHERE group_id LIKE 'fs-%'"
        ).fetchall())  # fmt: skip
        assert out == {"fs-u1": -2.0, "fs-u2": None, "fs-c1": -2.0, "fs-c2": None}
    role = f"kl_fs_clinic_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(f'CREATE ROLE "{role}" NOLOGIN')
        c.execute("SELECT kneeload.grant_clinic(%s, 'fs-c1')", (role,))
    try:
        with psycopg.connect(db) as c:
            c.execute(f'SET ROLE "{role}"')
            units = c.execute(
                "SELECT DISTINCT unit_id FROM kneeload_api.fleet_utilisation_daily"
            ).fetchall()
            groups = c.execute(
                "SELECT level, group_id FROM kneeload_api.fleet_outcomes ORDER BY 1, 2"
            ).fetchall()
        assert units == [("fs-u1",)]
        assert groups == [("clinic", "fs-c1"), ("unit", "fs-u1")]
    finally:
        with psycopg.connect(db, autocommit=True) as c:
            c.execute(f'DROP OWNED BY "{role}"')
            c.execute(f'DROP ROLE IF EXISTS "{role}"')
