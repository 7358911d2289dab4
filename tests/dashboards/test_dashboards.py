"""Dashboards as code: committed JSON == generated; every panel's SQL, with Grafana's macros
and template variables expanded as Grafana expands them, runs on the real database filled by
the real pipeline (conftest ``pipeline_db``: HTTP → ingest → Kafka → worker → sink) and
returns rows with the columns the panel expects; alert rules' SQL too; acknowledgement shows
up on the dashboards."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from kneeload.dashboards import alerting
from kneeload.dashboards.build import DEFAULT_OUT, generate
from kneeload.dashboards.definitions import SCHEMA_VERSION, build_all, expected_columns
from kneeload.dashboards.macros import TimeRange, expand, format_interval
from kneeload.settings import Settings

from .pipeline import ATHLETE, ATHLETE2, ATHLETE3, CLINIC, TEAM, UNIT

TEAM_TABLE = "Athletes — today's estimated PFJ load, ceiling, ACWR band, pain"

RANGES = {
    "kneeload-team-overview": timedelta(days=30),
    "kneeload-athlete-detail": timedelta(days=90),
    "kneeload-clinic-fleet": timedelta(days=7),
    "kneeload-live-session": timedelta(minutes=15),
}
VARS = {"team": TEAM, "athlete": ATHLETE, "clinic": CLINIC}


def test_committed_files_equal_generated() -> None:
    for rel, text in generate().items():
        path = DEFAULT_OUT / rel
        assert path.exists(), f"{rel} missing: run `kneeload dashboards build`"
        assert path.read_text() == text, f"{rel} is stale: run `kneeload dashboards build`"


def test_schema_version_datasource_and_estimated_labels() -> None:
    for name, d in build_all().items():
        assert d["schemaVersion"] == SCHEMA_VERSION >= 41, name
        for p in d["panels"]:
            assert p["datasource"]["uid"] == "kneeload-pg"
            for t in p["targets"]:
                sql = t["rawSql"]
                assert "kneeload_api." in sql
                # only the documented views, never tables
                assert not re.search(r"\bkneeload\.(?!config)\w+", sql), sql
                for label in re.findall(r'AS "([^"]+)"', sql):
                    if "PFJ" in label:
                        assert "estimated" in label, label
            if "PFJ" in p["title"]:
                assert "estimated" in p["title"].lower(), p["title"]
    assert build_all()["live-session"]["refresh"] == "5s"


def test_macro_expansion_matches_grafana() -> None:
    tr = TimeRange(
        datetime(2017, 4, 21, 5, 1, 17, tzinfo=UTC),
        datetime(2017, 4, 21, 5, 6, 17, tzinfo=UTC),
        interval=timedelta(minutes=5),
        variables={"team": "o'brien", "units": ["a", "b"]},
        multi=frozenset({"units"}),
    )
    assert expand("$__timeFilter(t)", tr) == (
        "t BETWEEN '2017-04-21T05:01:17Z' AND '2017-04-21T05:06:17Z'"
    )
    assert expand("$__timeGroupAlias(t, $__interval)", tr) == (
        'floor(extract(epoch from t)/300)*300 AS "time"'
    )
    assert expand("$__timeGroup(t,'5m'), x", tr).endswith('AS "time", x')  # pre-5.3 rule
    assert expand("$__time(c)", tr) == 'c AS "time"'
    assert expand("$__timeFrom() $__timeTo()", tr) == (
        "'2017-04-21T05:01:17Z' '2017-04-21T05:06:17Z'"
    )
    assert expand("'$team' IN ($units)", tr) == "'o''brien' IN ('a','b')"
    assert expand("$__interval_ms", tr) == "300000"
    assert [format_interval(timedelta(seconds=s)) for s in (0.5, 20, 120, 7200, 86400)] == [
        "500ms", "20s", "2m", "2h", "1d"]  # fmt: skip
    ts = TimeRange(tr.start, tr.end, timescaledb=True)
    assert expand("$__timeGroup(t, '1m')", ts) == "time_bucket('60.000s',t)"


def _panels() -> list[tuple[str, str, str, str, str]]:
    out = []
    for d in build_all().values():
        for p in d["panels"]:
            for t in p["targets"]:
                out.append((d["uid"], p["title"], t["refId"], t["rawSql"], t["format"]))
    return out


@pytest.mark.parametrize(("uid", "title", "ref", "sql", "fmt"), _panels(),
                         ids=[f"{u}:{t}:{r}" for u, t, r, _, _ in _panels()])  # fmt: skip
def test_panel_sql_runs_on_the_pipeline_data(
    pipeline_db: str, uid: str, title: str, ref: str, sql: str, fmt: str
) -> None:
    """Every panel returns its columns and, from the seeded team and clinic, at least one row.
    Only "Acknowledged alerts" may be empty here: acknowledgements are not pipeline input;
    test_acknowledge_... below acknowledges alerts and shows that panel filled."""
    expect = list(expected_columns()[(uid, title, ref)])
    now = datetime.now(UTC)
    tr = TimeRange(now - RANGES[uid], now, interval=timedelta(seconds=10), variables=VARS)
    with psycopg.connect(pipeline_db) as conn:
        cur = conn.execute(expand(sql, tr))
        cols = [c.name for c in cur.description or []]
        rows = cur.fetchall()
    assert cols == expect
    if title != "Acknowledged alerts":  # filled by test_acknowledge_... (acks aren't sink input)
        assert rows, f"{title}: no rows from the pipeline's data"
    if fmt == "time_series":
        assert cols[0] == "time" and all(r[0] is not None for r in rows)


PAIN_PANEL = "Pain responses and suggestions for the clinician"


def _panel_rows(conn: psycopg.Connection[Any], title: str, days: float = 90) -> list[Any]:
    [p] = [p for d in build_all().values() for p in d["panels"] if p["title"] == title]
    now = datetime.now(UTC)
    tr = TimeRange(now - timedelta(days=days), now, interval=timedelta(seconds=10), variables=VARS)
    return conn.execute(expand(p["targets"][0]["rawSql"], tr)).fetchall()


def test_panels_show_what_the_pipeline_computed(pipeline_db: str) -> None:
    """Not just rows: the worker's numbers as the seeded data make them (sessions on the unit
    with their BWS, ACWR from 28+ days of history, the pain-driven BWS step-up, the
    correlation withheld with its n, the unit's sessions and today's minutes)."""
    with psycopg.connect(pipeline_db) as conn:
        team = {r[1]: r for r in _panel_rows(conn, TEAM_TABLE)}
        assert set(team) == {ATHLETE, ATHLETE2, ATHLETE3}
        assert team[ATHLETE][2] > 0 and team[ATHLETE][4] is not None and team[ATHLETE][6]
        assert team[ATHLETE3][2] is None and team[ATHLETE3][10] == 0  # registered, no data yet
        sessions = _panel_rows(conn, "Sessions")
        assert len(sessions) == 5  # 4 closed + the live one
        assert sorted(r[5] for r in sessions if r[4] == UNIT) == [15.0, 20.0, 25.0, 25.0]
        assert [r[9] for r in sessions if r[9] is not None] == [7]  # pain tied to its session
        assert sum(r[11] == "closed" for r in sessions) >= 4  # the live one: idle-closed (4 s)
        sug = {(r[2], r[3], r[5], r[6], r[7]) for r in _panel_rows(conn, PAIN_PANEL)}
        # pain during the run above the LEVER limit: more support, whatever came after; the
        # "after" 7/10 never stands in for the next-day value (2/10, the safe zone): no stop
        assert ("during", "caution", "step_up", 15.0, 20.0) in sug
        assert ("next_morning", "caution", "step_up", 15.0, 20.0) in sug
        assert all(r[3] != "stop" for r in _panel_rows(conn, PAIN_PANEL))
        corr = _panel_rows(conn, "Pain–load correlation (r with its n)")
        assert {r[0] for r in corr} == {"same day (lag 0)", "next morning (lag 1)"}
        assert all(r[3] is None and r[4] >= 1 and r[8] for r in corr)  # too few pairs: withheld
        assert _panel_rows(conn, "Sessions and minutes per unit", 7)[0][:2] == (UNIT, 4)
        [unit] = _panel_rows(conn, "Units side by side")
        assert unit[0] == UNIT and unit[5] > 0  # minutes today from the live telemetry
        acwr = _panel_rows(conn, "ACWR per method (estimated PFJ load) with bands")
        assert {r[1] for r in acwr} >= {"ewma", "rac"}
        # the fleet figures `kneeload fleet refresh` stored: one athlete ran on the unit, so
        # its outcomes are withheld (n 1 < 5) and unranked; the unit's measured support equals
        # the commanded one in the pipeline's telemetry: bias 0, in tolerance
        [out] = _panel_rows(
            conn, "Outcomes by unit (n; withheld below the minimum n, never ranked)"
        )
        assert out[:2] == (UNIT, 1) and out[2] is None and out[9].startswith("withheld below n = 5")
        assert out[10] is None and out[11] is None
        [cal] = _panel_rows(conn, "Calibration per unit (latest day)")
        assert cal[0] == UNIT and float(cal[3]) == 0.0 and cal[6] == "ok"
        [hrs] = _panel_rows(conn, "Opening hours per unit: in use, idle, offline (downtime)", 7)
        stored = conn.execute(
            "SELECT date, unit_id, sessions FROM kneeload_api.fleet_utilisation_daily "
            "WHERE sessions > 0 ORDER BY date"
        ).fetchall()
        on_unit = conn.execute(
            "SELECT session_id, start_time, status FROM kneeload_api.fleet_sessions "
            "WHERE unit_id = %s ORDER BY start_time",
            (UNIT,),
        ).fetchall()
        assert hrs[0] == UNIT and hrs[7] == 4, (stored, on_unit)  # the last week's four sessions


def test_variable_queries_return_the_seeded_tenants(pipeline_db: str) -> None:
    found = {}
    now = datetime.now(UTC)
    with psycopg.connect(pipeline_db) as conn:
        for d in build_all().values():
            for v in d["templating"]["list"]:
                sql = expand(v["query"], TimeRange(now - timedelta(hours=1), now, variables=VARS))
                found[(d["uid"], v["name"])] = [r[0] for r in conn.execute(sql)]
    assert TEAM in found[("kneeload-team-overview", "team")]
    assert {ATHLETE, ATHLETE2} <= set(found[("kneeload-athlete-detail", "athlete")])
    assert CLINIC in found[("kneeload-clinic-fleet", "clinic")]
    assert found[("kneeload-live-session", "athlete")] == [ATHLETE]


def test_alert_rules_mirror_every_kind_and_their_sql_runs(pipeline_db: str) -> None:
    rules = alerting.alert_rules()["groups"][0]["rules"]
    kinds = {r["labels"]["kneeload_kind"] for r in rules}
    schema = json.loads((DEFAULT_OUT.parent / "schemas" / "alert.schema.json").read_text())
    assert kinds == set(schema["properties"]["kind"]["enum"])
    with psycopg.connect(pipeline_db) as conn:
        for r in rules:
            cur = conn.execute(r["data"][0]["model"]["rawSql"])
            assert [c.name for c in cur.description or []] == ["tenant", "open_alerts"]
            rows: dict[Any, Any] = dict(cur.fetchall())
            if r["labels"]["kneeload_kind"] == "pain_high":
                assert rows[TEAM] >= 2


def _alert_id(conn: psycopg.Connection[Any], athlete: str, kind: str) -> str:
    row = conn.execute(
        "SELECT alert_id FROM kneeload_api.alerts WHERE athlete_id = %s AND kind = %s "
        "ORDER BY event_time LIMIT 1",
        (athlete, kind),
    ).fetchone()
    assert row, (athlete, kind)
    return str(row[0])


def test_acknowledge_via_cli_and_http_shows_on_the_dashboards(
    pipeline_db: str, settings: Settings
) -> None:
    """The worker's pain alerts, acknowledged by CLI (athlete 1) and HTTP (athlete 2), leave the
    open alerts and fill the "Acknowledged alerts" and athlete "Alerts" panels."""
    from starlette.testclient import TestClient

    from kneeload.cli import root
    from kneeload.notify.ack import ack_app

    with psycopg.connect(pipeline_db) as conn:
        a1, a2 = _alert_id(conn, ATHLETE, "pain_high"), _alert_id(conn, ATHLETE2, "pain_high")
    res = CliRunner().invoke(root, ["alerts", "ack", a1, "--by", "coach-anna"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["acknowledged_by"] == "coach-anna"
    missing = CliRunner().invoke(root, ["alerts", "ack", "no-such-alert", "--by", "coach-anna"])
    assert missing.exit_code != 0

    app = ack_app(settings.model_copy(update={"notify_ack_token": "s3cret"}))
    with TestClient(app) as http:
        url = f"/alerts/{a2}/ack"
        assert http.post(url, json={"by": "coach-ben"}).status_code == 401
        bad = http.post(url, json={"by": "coach-ben"}, headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401
        ok = http.post(url, json={"by": "coach-ben"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["acknowledged_by"] == "coach-ben"
        again = http.post(url, json={"by": "coach-cat"},
                          headers={"Authorization": "Bearer s3cret"})  # fmt: skip
        assert again.json()["acknowledged_by"] == "coach-ben"  # the first ack is kept
        assert http.post("/alerts/nope/ack", json={"by": "x"},
                         headers={"Authorization": "Bearer s3cret"}).status_code == 404  # fmt: skip

    now = datetime.now(UTC)
    with psycopg.connect(pipeline_db) as conn:
        open_ids = {r[0] for r in conn.execute("SELECT alert_id FROM kneeload_api.open_alerts")}
        assert a1 not in open_ids and a2 not in open_ids
        panels = {p["title"]: p for d in build_all().values() for p in d["panels"]}
        tr = TimeRange(now - timedelta(days=90), now + timedelta(minutes=1), variables=VARS)
        acked = panels["Acknowledged alerts"]["targets"][0]["rawSql"]
        rows = conn.execute(expand(acked, tr)).fetchall()
        ep1, ep2 = (
            conn.execute(
                "SELECT episode_id FROM kneeload_api.alerts WHERE alert_id = %s", (a,)
            ).fetchone()[0]  # type: ignore[index]
            for a in (a1, a2)
        )
        # one row per acknowledged episode (acknowledging a change acknowledges its episode)
        assert {(r[1], r[6]) for r in rows} == {("coach-anna", ep1), ("coach-ben", ep2)}
        detail = panels["Alerts (with acknowledgement)"]["targets"][0]["rawSql"]
        rows = conn.execute(expand(detail, tr)).fetchall()
        assert ("pain_high", "opened", "coach-anna") in {(r[2], r[3], r[5]) for r in rows}
    assert UNIT


def test_unit_offline_alert_reaches_the_database(pipeline_db: str) -> None:
    """The pipeline's unit went silent (fleet_status shows it offline); its unit_offline alert
    should be in kneeload_api.alerts, not in the dead letters."""
    with psycopg.connect(pipeline_db) as conn:
        dead = conn.execute(
            "SELECT errors FROM kneeload.dead_letters WHERE key = %s AND payload LIKE %s",
            (UNIT, '%"kind":"unit_offline"%'),
        ).fetchall()
        stored = conn.execute(
            "SELECT count(*) FROM kneeload_api.alerts "
            "WHERE clinic_id = %s AND kind = 'unit_offline'",
            (CLINIC,),
        ).fetchone()
    assert not dead, dead
    assert stored and stored[0] >= 1
