"""``kneeload demo``: the whole platform, end to end, on a simulated team and clinic.

Steps (each fails loudly with what to do):

1. Check the local stack (Kafka, PostgreSQL, Mosquitto) and that every service command
   exists in this checkout — a missing one is named, never faked.
2. Reset the demo's data, so a second run never double counts: stop the previous demo's
   services, delete the previous demo's topics and consumer groups (``demo-*``), drop and
   re-create the database ``kneeload_demo``. Each run gets a fresh topic prefix
   ``demo-<run id>.``; the default topics and database (``kneeload.``, ``kneeload``) are
   never touched.
3. ``kneeload topics`` and ``kneeload migrate`` with the demo's environment.
4. Start the services as background processes (logs and pid files under var/demo/):
   ingest, the local webhook/SMTP receivers, then — after the registry is filled through
   the admin HTTP path — mqtt-bridge, worker, sink, notify.
5. Drive the simulator through HTTP, MQTT and a FIT upload, with progress bars.
6. Wait until the pipeline has drained (consumer lag zero, no open sessions, database
   counts stable), upload the late FIT file, wait for the corrected ACWR, wait for the
   silent unit's offline alert.
7. Summarise: console, ``out/demo-summary.json`` and ``out/team-overview.html``.

The stack and the services stay up for exploration; ``kneeload demo stop`` stops the
services, ``make down`` the stack.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kneeload.demo import services as svc
from kneeload.demo.driver import RetryPolicy
from kneeload.demo.services import DemoError, DemoPaths
from kneeload.demo.sim import Scenario, SimConfig, build_scenario, default_end
from kneeload.settings import REPO_ROOT, Settings, get_settings

__all__ = ["DemoOptions", "run_demo"]

DEMO_DB = "kneeload_demo"  # for the default name "demo": kneeload_<name>
#: Episode changes the demo's channels hold for their daily digest (07:00 UTC) instead of
#: pushing: "it is over" is worth a line in tomorrow's summary, not a ping now.
DIGEST_TRANSITIONS = frozenset({"resolved"})
#: ... and the slow signals: a week-on-week trend is read in the morning summary.
DIGEST_KINDS = frozenset({"pain_trend_worsening", "acwr_high", "load_spike_wow"})
RAW_TOPICS = ("watch.samples", "treadmill.telemetry", "treadmill.setpoints", "pain.reports")


@dataclass
class DemoOptions:
    athletes: int = 12
    units: int = 6
    weeks: int = 8
    duration_scale: float = 1.0
    seed: int = 7
    out_dir: Path = field(default_factory=lambda: REPO_ROOT / "out")
    batch_size: int = 400
    concurrency: int = 12
    stop_services: bool = False
    drain_timeout_s: float = 600.0
    #: Names everything the demo owns: topics <name>-*, database kneeload_<name>, var/<name>/
    name: str = "demo"


@dataclass
class RunContext:
    run_id: str
    prefix: str
    env: dict[str, str]
    settings: Settings
    paths: DemoPaths
    base_url: str
    admin_token: str
    mqtt_root: str
    timings: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------- set-up


def _check_stack(base: Settings) -> None:
    from kneeload.stack import kafka, mosquitto, postgres

    down = []
    if not kafka.healthy(base, timeout_s=10):
        down.append("Kafka")
    if not postgres.healthy(base):
        down.append("PostgreSQL")
    if not mosquitto.round_trip(base):
        down.append("Mosquitto")
    if down:
        raise DemoError(
            f"the local stack is not healthy ({', '.join(down)}): start it with `make up`."
        )


def _check_commands() -> None:
    missing = svc.missing_commands()
    if missing:
        lines = "\n".join(f"  - kneeload {c}: {svc.REQUIRED_COMMANDS[c]}" for c in missing)
        raise DemoError(
            "the demo needs every service of the pipeline, and this checkout lacks:\n"
            f"{lines}\nNothing was faked; the demo stops here."
        )


def _reset(base: Settings, paths: DemoPaths, console: Console, name: str = "demo") -> str:
    """Stop the last demo's services, delete its topics/groups, re-create the database."""
    import psycopg

    from kneeload.demo.observe import Kafka

    stopped = svc.stop_services(paths)
    if stopped:
        console.print(f"stopped the previous demo's services: {', '.join(stopped)}")
    k = Kafka(base.kafka_bootstrap, f"{name}-")
    try:
        n_topics, n_groups = k.delete_prefixed(f"{name}-")
    finally:
        k.close()
    u = urlsplit(base.database_url)
    admin_url = urlunsplit(u._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "kneeload_{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "kneeload_{name}"')
    if n_topics or n_groups:
        console.print(
            f"reset: deleted {n_topics} topics and {n_groups} consumer groups of earlier demo runs"
        )
    return urlunsplit(u._replace(path=f"/kneeload_{name}"))


def _mqtt_setup(base: Settings, run_id: str, name: str = "demo") -> tuple[str, str, str]:
    """(bridge MQTT URL, unit MQTT URL, topic root). With the broker's accounts on (the
    default) the demo's bridge logs in with the stack's bridge account (no credentials in its
    environment: it finds the stored account, as `kneeload mqtt-bridge` does on the stack)
    and the units with the keys the registry gives them; the root is the one the ACL allows.
    Under the anonymous opt-out each run gets a root of its own."""
    from kneeload.bridge.mqttauth import MqttAuth

    u = urlsplit(base.mqtt_url)
    plain = f"mqtt://{u.hostname}:{u.port or 1883}"
    auth = MqttAuth(base)
    if not auth.enabled:
        return plain, plain, f"{name}-{run_id}/lever"
    if auth.account() is None:  # a broker switched on before accounts were stored
        auth.ensure_bridge_account()
        auth.reload()
    return plain, plain, base.mqtt_topic_root


def _environment(
    base: Settings,
    run_id: str,
    db_url: str,
    ports: dict[str, int],
    admin_token: str,
    bridge_mqtt_url: str,
    mqtt_root: str,
    name: str = "demo",
) -> dict[str, str]:
    digest = {
        "at": "07:00",
        "time_zone": "UTC",
        "transitions": sorted(DIGEST_TRANSITIONS),
        "kinds": sorted(DIGEST_KINDS),
    }
    routes = {
        "channels": {
            "coach-webhook": {
                "type": "webhook",
                "url": f"http://127.0.0.1:{ports['webhook']}/coach",
                "daily_digest": digest,
            },
            "coach-slack": {
                "type": "slack",
                "url": f"http://127.0.0.1:{ports['webhook']}/slack",
                "daily_digest": digest,
            },
            "clinic-mail": {
                "type": "email",
                "to": ["physio@clinic-riverside.example"],
                "daily_digest": digest,
            },
        },
        "routes": [
            {"team_id": "*", "channels": ["coach-webhook", "coach-slack"]},
            {"clinic_id": "*", "channels": ["clinic-mail"]},
            {"kinds": ["pain_high", "pain_not_settled"], "channels": ["clinic-mail"]},
        ],
    }
    import orjson

    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEELOAD_")}
    env.update(
        {
            # the user's storage choice reaches every process (migrate, sink, worker, ...):
            # from the shell or var/kneeload.env, as the settings object read it
            "KNEELOAD_STORAGE_TIMESCALE": base.storage_timescale,
            "KNEELOAD_STORAGE_PREMAKE_DAYS": str(base.storage_premake_days),
            "KNEELOAD_VAR_DIR": str(base.var_dir),
            "KNEELOAD_KAFKA_BOOTSTRAP": base.kafka_bootstrap,
            "KNEELOAD_DATABASE_URL": db_url,
            "KNEELOAD_MQTT_URL": bridge_mqtt_url,
            "KNEELOAD_MQTT_TOPIC_ROOT": mqtt_root,
            "KNEELOAD_MQTT_BRIDGE_CLIENT_ID": f"kneeload-demo-bridge-{run_id}",
            "KNEELOAD_TOPIC_PREFIX": f"{name}-{run_id}.",
            "KNEELOAD_HTTP_HOST": "127.0.0.1",
            "KNEELOAD_HTTP_PORT": str(ports["http"]),
            "KNEELOAD_ADMIN_TOKEN": admin_token,
            "KNEELOAD_LOG_LEVEL": "INFO",
            "KNEELOAD_STORAGE_SINK_GROUP": f"{name}-{run_id}-sink",
            "KNEELOAD_NOTIFY_GROUP_ID": f"{name}-{run_id}-notify",
            "KNEELOAD_NOTIFY_ROUTES": orjson.dumps(routes).decode(),
            "KNEELOAD_NOTIFY_SMTP_HOST": "127.0.0.1",
            "KNEELOAD_NOTIFY_SMTP_PORT": str(ports["smtp"]),
            "KNEELOAD_NOTIFY_ACK_PORT": str(ports["ack"]),
            # weeks of event time pass in minutes: close idle sessions and days quickly
            "KNEELOAD_WORKER_IDLE_CLOSE_S": "5",
        }
    )
    return env


def _setup_command(ctx: RunContext, args: list[str], name: str) -> None:
    log = ctx.paths.log(name)
    with open(log, "wb") as out:
        rc = subprocess.run(
            [*svc.kneeload_argv(), *args],
            env=ctx.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        ).returncode
    if rc != 0:
        from kneeload.stack.procs import tail

        raise DemoError(f"`kneeload {' '.join(args)}` failed (exit {rc}).{tail(log, 30)}")


def _http_ready(url: str) -> bool:
    import httpx

    return httpx.get(url, timeout=2).status_code == 200


def _log_has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


# ------------------------------------------------------------------------ the run


def run_demo(opts: DemoOptions, console: Console | None = None) -> int:
    """Run the demo; returns the process exit code (0: every planted situation caught)."""
    console = console or Console()
    t_start = time.monotonic()
    started_at = dt.datetime.now(dt.UTC)
    base = get_settings()
    _check_commands()
    _check_stack(base)
    name = opts.name
    paths = DemoPaths.at(base.var_dir, name)
    run_id = started_at.strftime("%Y%m%d%H%M%S")
    console.rule(f"[bold]kneeload demo[/] run {run_id}")
    db_url = _reset(base, paths, console, name)
    admin_token = secrets.token_urlsafe(24)
    ports = {
        "http": svc.free_port(preferred=18080),
        "webhook": svc.free_port(preferred=18099),
        "smtp": svc.free_port(preferred=18025),
        "ack": svc.free_port(preferred=18090),
    }
    bridge_mqtt_url, unit_mqtt_url, mqtt_root = _mqtt_setup(base, run_id, name)
    env = _environment(base, run_id, db_url, ports, admin_token, bridge_mqtt_url, mqtt_root, name)
    os.environ.update({k: v for k, v in env.items() if k.startswith("KNEELOAD_")})
    from kneeload.settings import reload_settings

    s = reload_settings()
    ctx = RunContext(
        run_id,
        s.topic_prefix,
        env,
        s,
        paths,
        f"http://127.0.0.1:{ports['http']}",
        admin_token,
        mqtt_root,
    )
    svc.write_env(paths, env)
    svc.write_state(
        paths,
        {
            "run_id": run_id,
            "prefix": s.topic_prefix,
            "database": f"kneeload_{name}",
            "ports": ports,
            "started_at": started_at.isoformat(),
        },
    )

    with console.status("creating topics and migrating the database"):
        _setup_command(ctx, ["topics"], "setup-topics")
        _setup_command(ctx, ["migrate"], "setup-migrate")
    ctx.timings["setup_s"] = time.monotonic() - t_start

    cfg = SimConfig(
        end=default_end(),
        seed=opts.seed,
        athletes=opts.athletes,
        units=opts.units,
        weeks=opts.weeks,
        duration_scale=opts.duration_scale,
        # the worker judges unit silence in processing time, and weeks pass in minutes here
        unit_timeout_s=90,
    )
    with console.status("simulating the team and clinic"):
        sc = build_scenario(cfg)
        n_samples = sc.sample_count()
        n_unit = sc.unit_message_count()
    console.print(
        f"scenario: {len(sc.athletes)} runners, {len(sc.units)} LEVER units, {cfg.weeks} weeks "
        f"({cfg.start:%Y-%m-%d} → {cfg.end:%Y-%m-%d %H:%M} UTC), {len(sc.sessions)} runs, "
        f"{n_samples:,} watch samples, {n_unit:,} LEVER messages, {len(sc.pain):,} pain reports"
    )

    with console.status("starting ingest and the local alert receivers"):
        svc.start_service(paths, svc.SERVICES[0], env)
        svc.start_service(
            paths,
            svc.SERVICES[1],
            env,
            argv=[
                sys.executable,
                "-m",
                "kneeload.demo.receivers",
                "--webhook-port",
                str(ports["webhook"]),
                "--smtp-port",
                str(ports["smtp"]),
                "--inbox",
                str(paths.inbox),
            ],
        )
        for f in paths.inbox.glob("*.jsonl"):
            f.unlink()
        svc.wait_for(
            lambda: _http_ready(f"{ctx.base_url}/healthz"),
            timeout_s=90,
            what="ingest gateway",
            services=("ingest",),
            paths=paths,
        )
        svc.wait_for(
            lambda: _http_ready(f"http://127.0.0.1:{ports['webhook']}/healthz"),
            timeout_s=30,
            what="webhook receiver",
            services=("receivers",),
            paths=paths,
        )

    from kneeload.demo.driver import Driver
    from kneeload.demo.observe import Db, Kafka

    kafka = Kafka(s.kafka_bootstrap, s.topic_prefix)
    result: dict[str, Any] = {}
    try:
        code = asyncio.run(
            _drive_and_observe(
                ctx, sc, opts, console, kafka, unit_mqtt_url, Driver, Db, db_url, result
            )
        )
    finally:
        kafka.close()
    from kneeload.demo.report import finish

    result["timings"] = {**ctx.timings, "total_s": time.monotonic() - t_start}
    code = finish(ctx, sc, opts, console, result, started_at) or code
    if opts.stop_services:
        svc.stop_services(paths)
    return code


async def _drive_and_observe(
    ctx: RunContext,
    sc: Scenario,
    opts: DemoOptions,
    console: Console,
    kafka: Any,
    unit_mqtt_url: str,
    driver_cls: Any,
    db_cls: Any,
    db_url: str,
    result: dict[str, Any],
) -> int:
    paths, s = ctx.paths, ctx.settings

    from kneeload.worker.app import app_id as _app_id

    worker_gid = _app_id(s)

    async def worker_telemetry_lag() -> int:
        topics = ("treadmill.telemetry", "treadmill.setpoints", "worker.bws-by-athlete")
        return await asyncio.to_thread(kafka.lag_only, worker_gid, topics)

    async def mqtt_in_kafka() -> int:
        return await asyncio.to_thread(kafka.total, ("treadmill.telemetry", "treadmill.setpoints"))

    async with driver_cls(
        sc,
        base_url=ctx.base_url,
        admin_token=ctx.admin_token,
        mqtt_url=unit_mqtt_url,
        mqtt_root=ctx.mqtt_root,
        batch_size=opts.batch_size,
        concurrency=opts.concurrency,
        kafka_mqtt_count=mqtt_in_kafka,
        worker_telemetry_lag=worker_telemetry_lag,
        retry=RetryPolicy(deadline_s=60.0),  # devices retry a 503 (Kafka briefly unavailable)
    ) as drv:
        with console.status("registering team, clinic, watches and units (admin HTTP path)"):
            await drv.register()
        # the bridge, worker, sink and notifier start after the registry is filled, so their
        # registry views replay it whole before the first message arrives
        with console.status("starting mqtt-bridge, worker, sink, notify"):
            for service in svc.SERVICES[2:6]:
                svc.start_service(paths, service, ctx.env)
            await asyncio.to_thread(
                svc.wait_for,
                lambda: _log_has(paths.log("mqtt-bridge"), "bridge subscribed"),
                timeout_s=60,
                what="mqtt-bridge subscription",
                services=("mqtt-bridge",),
                paths=paths,
            )
            from kneeload.worker.app import app_id

            groups = {"worker": app_id(s), "sink": s.storage_sink_group}
            for name, gid in groups.items():
                await asyncio.to_thread(
                    svc.wait_for,
                    lambda gid=gid: kafka.group_state(gid) == "Stable",
                    timeout_s=120,
                    what=f"{name} consumer group",
                    services=(name,),
                    paths=paths,
                )
            for service in svc.SERVICES[2:6]:
                svc.ensure_running(paths, service.name)
        ctx.timings["services_start_s"] = time.monotonic()

        n_samples = sum(len(p.samples()) for p in sc.streamed_sessions)
        n_unit = sc.unit_message_count()
        progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
        )
        t0 = time.monotonic()
        with progress:
            t_days = progress.add_task("days of event time", total=len(sc.days()), rate="")
            t_samp = progress.add_task("watch samples  → HTTP", total=n_samples, rate="")
            t_mqtt = progress.add_task("LEVER messages → MQTT", total=n_unit, rate="")
            t_pain = progress.add_task("pain reports   → HTTP", total=len(sc.pain), rate="")

            def bump(task: Any, n: int) -> None:
                progress.advance(task, n)
                done = progress.tasks[task].completed
                progress.update(task, rate=f"{done / max(1e-6, time.monotonic() - t0):,.0f}/s")

            drv.on_samples = lambda n: bump(t_samp, n)
            drv.on_mqtt = lambda n: bump(t_mqtt, n)
            drv.on_pain = lambda n: bump(t_pain, n)
            await drv.run(on_day=lambda d: progress.advance(t_days, 1))
        stream_s = time.monotonic() - t0
        ctx.timings["stream_s"] = stream_s
        # the healthy units stay switched on: live heartbeats from now on (not the silent one)
        from kneeload.demo.live_units import write_config

        live_cfg = paths.root / "live-units.json"
        keys = {u.unit_id: drv.keys[u.unit_id] for u in sc.units if u.silent_from is None}
        write_config(live_cfg, unit_mqtt_url, ctx.mqtt_root, keys, period_s=10.0)
        svc.start_service(
            paths,
            svc.SERVICES[6],
            ctx.env,
            argv=[sys.executable, "-m", "kneeload.demo.live_units", str(live_cfg)],
        )
        console.print(
            f"sent in {stream_s:.1f} s: {drv.counters.watch_accepted:,} samples accepted "
            f"({drv.counters.watch_accepted / stream_s:,.0f}/s), "
            f"{drv.counters.mqtt_published:,} MQTT messages, {drv.counters.rejected} rejected"
        )

        db = db_cls(db_url)
        try:
            t1 = time.monotonic()
            await _drain(ctx, kafka, db, console, opts.drain_timeout_s, "pipeline draining")
            ctx.timings["drain_s"] = time.monotonic() - t1
            ctx.timings["end_to_end_s"] = time.monotonic() - t0

            # (e) the late FIT sync
            late = sc.late_session
            before = db.acwr(late.athlete.athlete_id, late.local_date())
            fit = await drv.upload_fit(late)
            t2 = time.monotonic()

            def corrected() -> bool:
                row = db.acwr(late.athlete.athlete_id, late.local_date())
                return bool(row) and (
                    not before or row.get("revision", 0) > before.get("revision", -1)
                )

            await _wait(corrected, 120, "corrected ACWR after the late FIT upload", ctx, console)
            await _drain(ctx, kafka, db, console, opts.drain_timeout_s, "late upload draining")
            after = db.acwr(late.athlete.athlete_id, late.local_date())
            ctx.timings["late_fit_s"] = time.monotonic() - t2
            result["late_fit"] = {
                "athlete_id": late.athlete.athlete_id,
                "session_id": late.session_id,
                "date": late.local_date().isoformat(),
                "upload": fit,
                "before": before,
                "after": after,
            }

            # (c) the silent unit: the worker reports it offline (bounded wait; truth reported)
            silent = sc.planted.silent_unit
            await _wait(
                lambda: any(a["unit_id"] == silent for a in db.alerts()),
                180,
                f"offline alert for {silent}",
                ctx,
                console,
                fail=False,
            )
            await _wait(
                lambda: _inbox_count(paths) > 0,
                60,
                "notifications delivered",
                ctx,
                console,
                fail=False,
            )
            result["counters"] = drv.counters
            result["malformed"] = getattr(drv, "malformed_result", {})
            result["db"] = {
                "sessions": db.sessions(),
                "alerts": db.alerts(),
                "acwr_final": db.acwr_final(),
                "acwr_series": db.acwr_series(),
                "team_overview": db.team_overview(),
                "fleet": db.fleet(),
                "bws_suggestions": db.bws_suggestions(),
                "dead_letters": db.dead_letters(),
                "storage": db.storage(),
                "timeline": db.timeline(),
                "estimates": db.estimates(),
                "dead_lettered_alerts": db.dead_lettered_alerts(),
            }
            result["samples_streamed"] = n_samples
        finally:
            db.close()
    return 0


def _inbox_count(paths: DemoPaths) -> int:
    return sum(1 for f in paths.inbox.glob("*.jsonl") for _ in f.open("rb"))


async def _wait(
    check: Any, timeout_s: float, what: str, ctx: RunContext, console: Console, fail: bool = True
) -> bool:
    deadline = time.monotonic() + timeout_s
    with console.status(f"waiting: {what}"):
        while True:
            try:
                if await asyncio.to_thread(check):
                    return True
            except Exception:  # views can be momentarily unavailable; keep polling
                pass
            for name in ("ingest", "mqtt-bridge", "worker", "sink", "notify"):
                svc.ensure_running(ctx.paths, name)
            if time.monotonic() > deadline:
                if fail:
                    raise DemoError(f"timed out after {timeout_s:.0f} s waiting for {what}")
                console.print(f"[yellow]not seen within {timeout_s:.0f} s: {what}[/]")
                return False
            await asyncio.sleep(0.5)


async def _drain(
    ctx: RunContext, kafka: Any, db: Any, console: Console, timeout_s: float, what: str
) -> None:
    """Until consumer lag is zero, no session is open and the database counts stop changing."""
    from kneeload.worker.app import app_id

    s = ctx.settings
    try:
        from kneeload.storage.sink import SINK_TOPICS

        sink_topics: tuple[str, ...] = tuple(SINK_TOPICS)
    except ImportError:
        sink_topics = RAW_TOPICS
    groups = [
        (app_id(s), RAW_TOPICS),
        (s.storage_sink_group, sink_topics),
        (s.notify_group_id, ("alerts",)),
    ]
    deadline = time.monotonic() + timeout_s
    last: dict[str, int] | None = None
    stable = 0
    with console.status(f"{what}") as status:
        while True:
            lags = {g: await asyncio.to_thread(kafka.lag, g, t) for g, t in groups}
            prog = await asyncio.to_thread(db.progress)
            total_lag = sum(lags.values())
            status.update(
                f"{what}: consumer lag {total_lag:,}, sessions {prog['sessions']:,} "
                f"({prog['open_sessions']} open), daily revisions {prog['daily_revisions']:,}, "
                f"alerts {prog['alerts']}"
            )
            if total_lag == 0 and prog["open_sessions"] == 0 and prog == last:
                stable += 1
                if stable >= 3:
                    return
            else:
                stable = 0
            last = prog
            for name in ("ingest", "mqtt-bridge", "worker", "sink", "notify"):
                svc.ensure_running(ctx.paths, name)
            if time.monotonic() > deadline:
                raise DemoError(f"{what}: not drained after {timeout_s:.0f} s (lag {lags}, {prog})")
            await asyncio.sleep(1.0)
