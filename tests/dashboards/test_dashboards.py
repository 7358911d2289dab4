"""Dashboards as code: committed JSON == generated; every panel's SQL, with Grafana's macros
and template variables expanded as Grafana expands them, runs on the real database and
returns the columns the panel expects; alert rules' SQL too; acknowledgement shows up."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner

from kneeload.dashboards import alerting
from kneeload.dashboards.build import DEFAULT_OUT, generate
from kneeload.dashboards.definitions import SCHEMA_VERSION, build_all, expected_columns
from kneeload.dashboards.macros import TimeRange, expand, format_interval

from .conftest import ATHLETE, CLINIC, TEAM, UNIT

NOW = datetime.now(UTC)
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
def test_panel_sql_runs_on_the_real_database(
    filled_db: str, uid: str, title: str, ref: str, sql: str, fmt: str
) -> None:
    expect = list(expected_columns()[(uid, title, ref)])
    tr = TimeRange(NOW - RANGES[uid], NOW, interval=timedelta(seconds=10), variables=VARS)
    with psycopg.connect(filled_db) as conn:
        cur = conn.execute(expand(sql, tr))  # type: ignore[arg-type]
        cols = [c.name for c in cur.description or []]
        rows = cur.fetchall()
    assert cols == expect
    if title != "Acknowledged alerts":  # filled by test_acknowledge_... (acks aren't sink input)
        assert rows, f"{title}: no rows from the seeded database"
    if fmt == "time_series":
        assert cols[0] == "time" and all(r[0] is not None for r in rows)


def test_variable_queries_return_the_seeded_tenants(filled_db: str) -> None:
    found = {}
    with psycopg.connect(filled_db) as conn:
        for d in build_all().values():
            for v in d["templating"]["list"]:
                sql = expand(v["query"], TimeRange(NOW - timedelta(hours=1), NOW, variables=VARS))
                found[(d["uid"], v["name"])] = [r[0] for r in conn.execute(sql)]  # type: ignore[arg-type]
    assert TEAM in found[("kneeload-team-overview", "team")]
    assert ATHLETE in found[("kneeload-athlete-detail", "athlete")]
    assert CLINIC in found[("kneeload-clinic-fleet", "clinic")]
    assert found[("kneeload-live-session", "athlete")] == [ATHLETE]


def test_alert_rules_mirror_every_kind_and_their_sql_runs(filled_db: str) -> None:
    rules = alerting.alert_rules()["groups"][0]["rules"]
    kinds = {r["labels"]["kneeload_kind"] for r in rules}
    schema = json.loads((DEFAULT_OUT.parent / "schemas" / "alert.schema.json").read_text())
    assert kinds == set(schema["properties"]["kind"]["enum"])
    with psycopg.connect(filled_db) as conn:
        for r in rules:
            cur = conn.execute(r["data"][0]["model"]["rawSql"])
            assert [c.name for c in cur.description or []] == ["tenant", "open_alerts"]
            rows = dict(cur.fetchall())
            if r["labels"]["kneeload_kind"] == "unit_offline":
                assert rows == {CLINIC: 1.0}


def test_acknowledge_via_cli_and_http_shows_on_the_dashboards(filled_db: str, settings) -> None:  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    from kneeload.cli import root
    from kneeload.notify.ack import ack_app

    res = CliRunner().invoke(root, ["alerts", "ack", "dash-acwr_high", "--by", "coach-anna"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["acknowledged_by"] == "coach-anna"
    missing = CliRunner().invoke(root, ["alerts", "ack", "no-such-alert", "--by", "coach-anna"])
    assert missing.exit_code != 0

    app = ack_app(settings.model_copy(update={"notify_ack_token": "s3cret"}))
    with TestClient(app) as http:
        assert http.post("/alerts/dash-pain_high/ack", json={"by": "coach-ben"}).status_code == 401
        bad = http.post("/alerts/dash-pain_high/ack", json={"by": "coach-ben"},
                        headers={"Authorization": "Bearer wrong"})  # fmt: skip
        assert bad.status_code == 401
        ok = http.post("/alerts/dash-pain_high/ack", json={"by": "coach-ben"},
                       headers={"Authorization": "Bearer s3cret"})  # fmt: skip
        assert ok.status_code == 200 and ok.json()["acknowledged_by"] == "coach-ben"
        again = http.post("/alerts/dash-pain_high/ack", json={"by": "coach-cat"},
                          headers={"Authorization": "Bearer s3cret"})  # fmt: skip
        assert again.json()["acknowledged_by"] == "coach-ben"  # the first ack is kept
        assert http.post("/alerts/nope/ack", json={"by": "x"},
                         headers={"Authorization": "Bearer s3cret"}).status_code == 404  # fmt: skip

    with psycopg.connect(filled_db) as conn:
        open_ids = {r[0] for r in conn.execute("SELECT alert_id FROM kneeload_api.open_alerts")}
        assert "dash-acwr_high" not in open_ids and "dash-pain_high" not in open_ids
        assert "dash-unit_offline" in open_ids
        d = build_all()["team-overview"]
        [acked] = [p for p in d["panels"] if p["title"] == "Acknowledged alerts"]
        tr = TimeRange(NOW - timedelta(days=1), datetime.now(UTC) + timedelta(minutes=1),
                       variables=VARS)  # fmt: skip
        rows = conn.execute(expand(acked["targets"][0]["rawSql"], tr)).fetchall()  # type: ignore[arg-type]
        assert {(r[1], r[6]) for r in rows} == {
            ("coach-anna", "dash-acwr_high"), ("coach-ben", "dash-pain_high")}  # fmt: skip
    assert UNIT
