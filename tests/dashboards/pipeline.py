"""The REAL pipeline for the dashboard tests: `kneeload migrate` and `kneeload topics`, then
`kneeload ingest` (HTTP on a free port), `kneeload worker` and `kneeload sink` as
subprocesses, and a small team + clinic driven through the gateway's HTTP paths only.

Process handling is the demo's (kneeload.demo.services: pid files, logs, start/stop, polling
with the log's tail on failure); the worker's fast test timers and the 1 Hz sample generator
are the worker tests' (tests/worker/helpers.py). Nothing here writes Kafka or the database
directly: the views are filled by gateway → Kafka → worker → Kafka → sink → PostgreSQL.

Isolation: the session's database, and topics under a sub-prefix of the session's topic
prefix (``<prefix>dash.``) so that the worker tests' leftovers in the same session are not
reprocessed here; the session's topic clean-up still deletes them.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from kneeload.demo import services as svc
from kneeload.settings import Settings
from kneeload.stack.procs import tail
from worker.helpers import WORKER_ENV, iso, samples

UTC = dt.UTC
TEAM, CLINIC = "team-dash", "clinic-dash"
ATHLETE, ATHLETE2, ATHLETE3 = "ath-dash-1", "ath-dash-2", "ath-dash-3"
UNIT = "lever-dash-1"
SESSION_S = 120  # samples per session (1 Hz)
#: athlete 3's display name: markup and quotes that reports and dashboards must show as text
HOSTILE_NAME = """Zoë <script>alert("x")</script> O'Neil & <b>co</b>"""
SERVICES = ("ingest", "worker", "sink")


@dataclass
class Pipeline:
    paths: svc.DemoPaths
    env: dict[str, str]
    base_url: str
    admin_token: str
    database_url: str
    now: dt.datetime
    keys: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ http
    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = httpx.request(
            method,
            self.base_url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text[:500]}"
        return r.json()

    def post(self, device: str, path: str, body: Any) -> dict[str, Any]:
        r = httpx.post(
            self.base_url + path,
            json=body,
            headers={"X-Device-Id": device, "X-Api-Key": self.keys[device]},
            timeout=30,
        )
        assert r.status_code == 200, f"POST {path} as {device}: {r.status_code} {r.text[:500]}"
        out: dict[str, Any] = r.json()
        assert not out.get("rejected"), out
        return out

    # ------------------------------------------------------------------ database
    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params or None).fetchall()

    def wait(self, what: str, checks: dict[str, str], timeout_s: float = 60.0) -> None:
        """Poll ``checks`` (name → SQL returning one truthy value) until all hold; no sleeps
        beyond the polling interval, bounded by ``timeout_s``; fail with the services' logs."""
        t0 = time.monotonic()
        pending = dict(checks)
        errors: list[str] = []

        def done() -> bool:
            for name, sql in list(pending.items()):
                try:
                    ok = self.rows(sql)[0][0]
                except psycopg.Error as exc:  # a broken check must not look like "not yet"
                    errors.append(f"{name}: {exc}")
                    raise
                if ok:
                    del pending[name]
            return not pending

        try:
            svc.wait_for(done, timeout_s=timeout_s, what=what, services=SERVICES,
                         paths=self.paths, poll_s=0.3)  # fmt: skip
        except svc.DemoError as exc:
            raise AssertionError(f"{exc}\nstill missing: {sorted(pending)} {errors[-1:]}") from exc
        self.timings[what] = round(time.monotonic() - t0, 1)


def _run(p: Pipeline, *args: str) -> None:
    log = p.paths.log("setup-" + args[0])
    with open(log, "wb") as out:
        rc = subprocess.run([*svc.kneeload_argv(), *args], env=p.env, stdout=out,
                            stderr=subprocess.STDOUT, timeout=120).returncode  # fmt: skip
    assert rc == 0, f"`kneeload {' '.join(args)}` exited {rc}{tail(log, 30)}"


def start(settings: Settings, root: Path, sub: str = "dash.") -> Pipeline:
    """Migrate, create the topics and start ingest, worker and sink on ``settings`` (topics
    under the sub-prefix ``sub`` of the session's prefix)."""
    t0 = time.monotonic()
    paths = svc.DemoPaths(root)
    for d in (paths.logs, paths.pids):
        d.mkdir(parents=True, exist_ok=True)
    prefix = f"{settings.topic_prefix}{sub}"
    port = svc.free_port()
    token = secrets.token_urlsafe(18)
    env = {
        **os.environ,
        **WORKER_ENV,  # idle close 4 s, tick 0.5 s, unit timeout 3 s, 2 partitions
        "KNEELOAD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "KNEELOAD_DATABASE_URL": settings.database_url,
        "KNEELOAD_TOPIC_PREFIX": prefix,
        "KNEELOAD_HTTP_HOST": "127.0.0.1",
        "KNEELOAD_HTTP_PORT": str(port),
        "KNEELOAD_ADMIN_TOKEN": token,
        "KNEELOAD_STORAGE_SINK_GROUP": f"{prefix}sink",
        "KNEELOAD_STORAGE_SINK_POLL_MS": "100",
        "KNEELOAD_LOG_LEVEL": "INFO",
    }
    p = Pipeline(paths, env, f"http://127.0.0.1:{port}", token, settings.database_url,
                 dt.datetime.now(UTC).replace(microsecond=0))  # fmt: skip
    _run(p, "migrate")
    _run(p, "topics")
    for name in SERVICES:
        svc.start_service(paths, svc.Service(name, (name,)), env)
    svc.wait_for(lambda: httpx.get(p.base_url + "/healthz", timeout=2).status_code == 200,
                 timeout_s=60, what="ingest gateway", services=SERVICES, paths=paths)  # fmt: skip
    p.timings["start"] = round(time.monotonic() - t0, 1)
    return p


def stop(p: Pipeline) -> None:
    svc.stop_services(p.paths)


# ---------------------------------------------------------------------- the data


def register(p: Pipeline) -> None:
    """Three athletes of one team (one without any data), a watch each, one LEVER unit of a
    clinic assigned to the first athlete — all through the gateway's admin paths."""
    for i, aid in enumerate((ATHLETE, ATHLETE2, ATHLETE3), 1):
        name = HOSTILE_NAME if aid == ATHLETE3 else f"Runner {i}"
        p.admin("PUT", f"/admin/athletes/{aid}", {"team_id": TEAM, "body_mass_kg": 60.0 + 5 * i,
                "time_zone": "UTC", "display_name": name, "active": True})  # fmt: skip
        rec = p.admin("POST", "/admin/devices", {"device_id": f"w-{aid}", "kind": "watch",
                                                 "athlete_id": aid})  # fmt: skip
        p.keys[f"w-{aid}"] = rec["api_key"]
    rec = p.admin("POST", "/admin/devices", {"device_id": UNIT, "kind": "lever_unit",
                                             "clinic_id": CLINIC, "max_bws_pct": 40})  # fmt: skip
    p.keys[UNIT] = rec["api_key"]
    p.admin("PUT", f"/admin/units/{UNIT}/assignment", {"athlete_id": ATHLETE})


def _telemetry(start: dt.datetime, n_s: int, bws: float, tag: str) -> list[dict[str, Any]]:
    return [{"record_id": f"{UNIT}:{tag}:{k}", "time": iso(start + dt.timedelta(seconds=k)),
             "kind": "telemetry", "belt_speed_mps": 3.0, "incline_pct": 0.0, "bws_pct": bws,
             "measured_support_pct": bws}
            for k in range(-10, n_s + 1, 5)]  # fmt: skip


def _session(p: Pipeline, aid: str, start: dt.datetime, n: int, on_unit_bws: float | None) -> None:
    if on_unit_bws is not None:  # the unit first: its BWS is joined to the watch's samples
        p.post(UNIT, "/v1/treadmill/telemetry",
               _telemetry(start, n, on_unit_bws, start.strftime("%Y%m%d%H%M%S")))  # fmt: skip
    tag = f"{aid}-"
    out = p.post(f"w-{aid}", "/v1/watch/samples", {"samples": samples(start, n, tag=tag)})
    assert out.get("accepted") == n, out


def drive_sessions(p: Pipeline) -> dict[str, dt.datetime]:
    """Short 1 Hz sessions spread over 30 days of event time, in event-time order per athlete:
    athlete 1 once 29 days ago (so ACWR has its 28 days of history) and on 3 of the last 3
    days on the LEVER unit; athlete 2 on the last 2 days with a watch only."""
    r = p.now - dt.timedelta(hours=2)
    starts = {f"{ATHLETE}:{k}": r - dt.timedelta(days=k) for k in (29, 3, 2, 1)}
    starts |= {f"{ATHLETE2}:{k}": r - dt.timedelta(days=k, minutes=30) for k in (2, 1)}
    for key, start in starts.items():
        aid, k = key.split(":")
        bws = None if aid != ATHLETE or k == "29" else 10.0 + 5 * int(k)
        _session(p, aid, start, SESSION_S, bws)
    return starts


def drive_pain(p: Pipeline, starts: dict[str, dt.datetime]) -> None:
    """Pain over HTTP: athlete 1 during (6/10: over the LEVER limit of 4) and after (7/10)
    the session of yesterday (its id as the pipeline stored it), next morning 2/10; athlete
    2 after yesterday's session (5/10)."""
    s1, s2 = starts[f"{ATHLETE}:1"], starts[f"{ATHLETE2}:1"]
    end1 = s1 + dt.timedelta(seconds=SESSION_S)
    [(sid,)] = p.rows("SELECT session_id FROM kneeload_api.athlete_timeline "
                      "WHERE athlete_id = %s AND start_time = %s", ATHLETE, s1)  # fmt: skip
    reports = [
        (ATHLETE, "p1-during", s1 + dt.timedelta(seconds=60), 6, "during", sid),
        (ATHLETE, "p1-after", end1 + dt.timedelta(minutes=10), 7, "after", sid),
        (ATHLETE, "p1-morning", min(end1 + dt.timedelta(hours=14), p.now - dt.timedelta(minutes=5)),
         2, "next_morning", None),
        (ATHLETE2, "p2-after", s2 + dt.timedelta(seconds=SESSION_S, minutes=10), 5, "after", None),
    ]  # fmt: skip
    for aid, rid, t, nrs, ctx, session in reports:
        p.post(f"w-{aid}", "/v1/pain", {"report_id": rid, "time": iso(t), "pain_nrs": nrs,
                                        "context": ctx, "session_id": session})  # fmt: skip


def drive_live(p: Pipeline) -> dt.datetime:
    """Athlete 1 running on the unit right now: the last 60 s, telemetry and samples."""
    start = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(seconds=62)
    _session(p, ATHLETE, start, 60, 25.0)
    return start


#: name → SQL (one truthy value) the seeded data must make true, per phase
SESSIONS_READY = {
    "athlete 1: 4 closed sessions": f"SELECT count(*) = 4 FROM kneeload_api.athlete_timeline "
    f"WHERE athlete_id = '{ATHLETE}' AND status = 'closed'",
    "athlete 2: 2 closed sessions": f"SELECT count(*) = 2 FROM kneeload_api.athlete_timeline "
    f"WHERE athlete_id = '{ATHLETE2}' AND status = 'closed'",
    "3 unit sessions with BWS": f"SELECT count(*) = 3 FROM kneeload_api.fleet_sessions "
    f"WHERE unit_id = '{UNIT}' AND mean_bws_pct > 0",
    "ACWR after 28 days": f"SELECT count(*) > 0 FROM kneeload_api.acwr_history "
    f"WHERE athlete_id = '{ATHLETE}' AND acwr IS NOT NULL",
}
PAIN_READY = {
    "pain_high athlete 1": f"SELECT count(*) > 0 FROM kneeload_api.alerts "
    f"WHERE athlete_id = '{ATHLETE}' AND kind = 'pain_high'",
    "pain_high athlete 2": f"SELECT count(*) > 0 FROM kneeload_api.alerts "
    f"WHERE athlete_id = '{ATHLETE2}' AND kind = 'pain_high'",
    "BWS suggestion": f"SELECT count(*) > 0 FROM kneeload_api.bws_suggestions "
    f"WHERE athlete_id = '{ATHLETE}' AND unit_id = '{UNIT}'",
    "correlation": f"SELECT count(*) > 0 FROM kneeload_api.correlations "
    f"WHERE athlete_id = '{ATHLETE}'",
    # the unit's silence (3 s here) after its telemetry: offline, and an alert on the topic
    "unit offline": f"SELECT count(*) > 0 FROM kneeload_api.fleet_status "
    f"WHERE unit_id = '{UNIT}' AND NOT online",
    "unit_offline alert (stored or dead-lettered)": "SELECT count(*) > 0 FROM ("
    f"SELECT 1 FROM kneeload_api.alerts WHERE clinic_id = '{CLINIC}' AND kind = 'unit_offline' "
    f"UNION ALL SELECT 1 FROM kneeload.dead_letters WHERE key = '{UNIT}' "
    'AND payload LIKE \'%"kind":"unit_offline"%\') x',
}
LIVE_READY = {
    "live session": f"SELECT count(*) > 0 FROM kneeload_api.live_session "
    f"WHERE athlete_id = '{ATHLETE}' AND bws_pct > 0",
    "today's load": f"SELECT count(*) > 0 FROM kneeload_api.team_overview "
    f"WHERE athlete_id = '{ATHLETE}' AND today_load > 0",
    "unit minutes today": f"SELECT count(*) > 0 FROM kneeload_api.fleet_status "
    f"WHERE unit_id = '{UNIT}' AND minutes_used_today > 0",
    # the live session stored AND idle-closed (4 s here) before `fleet refresh`, which counts
    # closed sessions only (fleet.frames): waiting for the row alone still let the clinic panel
    # count 3 of 4 on a loaded machine (reproduced: 1 in 3 runs with both cores busy)
    "the live session stored and closed": f"SELECT count(*) >= 4 FROM kneeload_api.fleet_sessions "
    f"WHERE unit_id = '{UNIT}' AND status = 'closed'",
}


def fill(settings: Settings, root: Path, log: Callable[[str], None] = print) -> Pipeline:
    """Start the services and drive the data through them; the caller stops them (``stop``)."""
    t0 = time.monotonic()
    p = start(settings, root)
    try:
        register(p)
        starts = drive_sessions(p)
        p.wait("sessions", SESSIONS_READY)
        drive_pain(p, starts)  # after the sessions are in: pain refers to them
        p.wait("pain", PAIN_READY)
        drive_live(p)  # last: the live views look back only live_window_s (120 s)
        p.wait("live", LIVE_READY)
        _run(p, "fleet", "refresh", "--all")  # the core's fleet figures for the dashboard
    except BaseException:
        stop(p)
        raise
    p.timings["total"] = round(time.monotonic() - t0, 1)
    log(f"dashboards pipeline fixture timings (s): {p.timings}")
    return p
