"""Security suite — ids and names with quotes and SQL metacharacters, end to end.

Through the dashboards' real pipeline (conftest ``dash_pipeline``):

* ids with characters outside the id grammar (quotes, ``;``, ``--``, ``%``, backslash,
  space, non-ASCII, NUL) are refused at the door with a reason — admin paths and device
  paths — and nothing of them reaches the registry;
* ids using every character the grammar allows (``.``, ``:``, ``-``, ``_``) flow through
  registry → Kafka → worker → sink → views, with ``_`` chosen so that a ``LIKE`` anywhere
  would mix up two teams and two athletes (``t_1`` / ``tx1``);
* free text (display names) with quotes, SQL, markup and backslashes is stored verbatim;
* every dashboard panel's SQL with ``$team`` / ``$athlete`` (expanded as Grafana does,
  quotes doubled) shows exactly one tenant's rows — also for a hostile variable value;
* a database role whose name holds quotes is granted a team with ``kneeload storage
  grant-coach`` and sees exactly that team.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from psycopg import sql

from kneeload.dashboards.definitions import build_all
from kneeload.dashboards.macros import TimeRange, expand
from kneeload.demo import services as svc
from worker.helpers import iso, samples

from . import pipeline

R = uuid.uuid4().hex[:6]
TEAM, TEAM_X = f"t_1.{R}", f"tx1.{R}"  # '_' matches any character under LIKE
ATH, ATH_X = f"a_1:{R}.x-y", f"ax1:{R}.x-y"
NAMES = {
    ATH: 'O\'Brien "Bob"; DROP TABLE kneeload.athletes;-- \\ <b>x</b> 😀',
    ATH_X: "Robert'); SELECT pg_sleep(5);--",
}
ROLE = f'coach "o\'brien" {R}'
BAD_IDS = [
    "o'brien",
    'x"y',
    "a;DROP TABLE kneeload.athletes;--",
    "' OR '1'='1",
    "a b",
    "a%",
    "a\\b",
    "ä",
    "a\x00b",
    "-leading-dash",
    "x" * 129,
]


@pytest.fixture(scope="module")
def ids_pipeline(dash_pipeline: pipeline.Pipeline) -> Iterator[pipeline.Pipeline]:
    """The dashboards' running pipeline (conftest) with two more teams driven through it;
    their ids cannot match the dashboards tests' own (``team-dash`` and so on)."""
    p = dash_pipeline
    try:
        for team, aid in ((TEAM, ATH), (TEAM_X, ATH_X)):
            athlete = {"team_id": team, "body_mass_kg": 64.0, "time_zone": "UTC",
                       "display_name": NAMES[aid]}  # fmt: skip
            p.admin("PUT", f"/admin/athletes/{quote(aid)}", athlete)
            rec = p.admin("POST", "/admin/devices", {"device_id": f"w.{aid}", "kind": "watch",
                                                     "athlete_id": aid})  # fmt: skip
            p.keys[f"w.{aid}"] = rec["api_key"]
        for k, aid in enumerate((ATH, ATH_X)):
            start = p.now - dt.timedelta(hours=3 + k)
            p.post(f"w.{aid}", "/v1/watch/samples",
                   {"session_id": f"s:{aid}", "samples": samples(start, 90, tag=aid)})  # fmt: skip
            p.post(f"w.{aid}", "/v1/pain", {"report_id": f"p.{aid}",
                   "time": iso(start + dt.timedelta(minutes=20)), "pain_nrs": 7,
                   "context": "after", "session_id": f"s:{aid}"})  # fmt: skip
        p.wait(
            "both teams in the views",
            {
                f"{aid} closed session, day and alert": "SELECT "
                f"(SELECT count(*) FROM kneeload_api.athlete_timeline WHERE athlete_id = '{aid}' "
                "AND status = 'closed') = 1 AND "
                f"(SELECT count(*) FROM kneeload_api.acwr_history WHERE athlete_id = '{aid}') > 0 "
                f"AND (SELECT count(*) FROM kneeload_api.alerts WHERE athlete_id = '{aid}') > 0"
                for aid in (ATH, ATH_X)
            },
            timeout_s=240,
        )
        yield p
    finally:
        with psycopg.connect(p.database_url, autocommit=True) as c:
            if c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone():
                c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(ROLE)))
                c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


def test_ids_outside_the_grammar_are_refused(ids_pipeline: pipeline.Pipeline) -> None:
    p = ids_pipeline
    auth = {"Authorization": f"Bearer {p.admin_token}"}
    for bad in BAD_IDS:
        r = httpx.put(p.base_url + "/admin/athletes/" + quote(bad, safe=""), headers=auth,
                      json={"body_mass_kg": 60, "team_id": TEAM})  # fmt: skip
        assert 400 <= r.status_code < 500 and r.json()["error"]["code"], (bad, r.text)
        for body in (
            {"body_mass_kg": 60, "team_id": bad},
            {"device_id": bad, "kind": "watch", "athlete_id": ATH},
        ):
            path = "/admin/devices" if "device_id" in body else f"/admin/athletes/{quote(ATH)}"
            method = "POST" if "device_id" in body else "PUT"
            r = httpx.request(method, p.base_url + path, headers=auth, json=body)
            assert 400 <= r.status_code < 500 and r.json()["error"]["code"], (bad, r.text)
        if "\x00" in bad:
            continue  # no HTTP client sends NUL in a header
        r = httpx.post(
            p.base_url + "/v1/pain",
            headers={"X-Device-Id": bad.encode(), "X-Api-Key": b"k"},
            json={"report_id": "r", "time": iso(p.now), "pain_nrs": 1, "context": "rest"},
        )
        assert r.status_code == 401, (bad, r.text)
    reg = httpx.get(p.base_url + "/admin/registry", headers=auth).json()
    seen = (
        set(reg["athletes"])
        | set(reg["devices"])
        | {a.get("team_id") for a in reg["athletes"].values()}
    )
    assert not seen & set(BAD_IDS)
    assert reg["athletes"][ATH]["team_id"] == TEAM  # the refused updates changed nothing


def test_metacharacter_ids_and_names_flow_through_verbatim(
    ids_pipeline: pipeline.Pipeline,
) -> None:
    p = ids_pipeline
    rows = dict(
        p.rows(
            "SELECT athlete_id, display_name FROM kneeload_api.team_overview "
            "WHERE team_id IN (%s, %s)",
            TEAM,
            TEAM_X,
        )
    )
    assert rows == NAMES
    for aid, team in ((ATH, TEAM), (ATH_X, TEAM_X)):
        got = p.rows(
            "SELECT DISTINCT team_id FROM kneeload_api.athlete_timeline WHERE athlete_id = %s", aid
        )
        assert got == [(team,)]
        assert p.rows("SELECT session_id FROM kneeload_api.athlete_timeline WHERE athlete_id = %s",
                      aid) == [(f"s:{aid}",)]  # fmt: skip


def _dashboard_rows(db: str, variables: dict[str, str]) -> list[tuple[str, list[Any]]]:
    now = dt.datetime.now(dt.UTC)
    out = []
    with psycopg.connect(db) as conn:
        for d in build_all().values():
            for panel in d["panels"]:
                for t in panel["targets"]:
                    tr = TimeRange(
                        now - dt.timedelta(days=30), now, dt.timedelta(minutes=5), False, variables
                    )
                    got = conn.execute(expand(t["rawSql"], tr)).fetchall()  # type: ignore[arg-type]
                    out.append((f"{d['uid']}:{panel['title']}", [v for r in got for v in r]))
    return out


def test_dashboard_variables_show_one_tenant(ids_pipeline: pipeline.Pipeline) -> None:
    db = ids_pipeline.database_url
    mine, theirs = {ATH, TEAM, NAMES[ATH]}, {ATH_X, TEAM_X, NAMES[ATH_X]}
    shown: set[Any] = set()
    for panel, values in _dashboard_rows(db, {"team": TEAM, "athlete": ATH, "clinic": "none"}):
        leaked = theirs & set(values)
        assert not leaked, f"{panel} with $team={TEAM!r} shows {leaked}"
        shown |= mine & set(values)
    assert shown >= {ATH, NAMES[ATH]}  # the panels do show the chosen tenant, names included
    hostile = {"team": f"{TEAM}' OR '1'='1", "athlete": f"{ATH}' OR ''='", "clinic": "x'--"}
    for panel, values in _dashboard_rows(db, hostile):
        assert not (mine | theirs) & set(values), f"{panel} answered a hostile variable"


def test_role_with_quotes_in_its_name_sees_its_team_only(
    ids_pipeline: pipeline.Pipeline,
) -> None:
    p = ids_pipeline
    with psycopg.connect(p.database_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(ROLE)))
    out = subprocess.run(
        [*svc.kneeload_argv(), "storage", "grant-coach", "--role", ROLE, "--team", TEAM],
        env=p.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    with psycopg.connect(p.database_url) as c:
        c.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(ROLE)))
        seen = {r[0] for r in c.execute("SELECT athlete_id FROM kneeload_api.team_overview")}
        alerts = {r[0] for r in c.execute("SELECT athlete_id FROM kneeload_api.alerts")}
    assert seen == {ATH} and alerts == {ATH}
