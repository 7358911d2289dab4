"""One run of the chaos workload: its own topics, database, MQTT root and services.

The workload is the demo's seeded simulator (:mod:`kneeload.demo.sim`) at a small size —
a team of runners with watches, a clinic of LEVER units — sent through the real paths by
the demo's driver (:mod:`kneeload.demo.driver`): registration through the admin HTTP path,
watch batches and pain reports over HTTP, LEVER telemetry and setpoints over MQTT with the
units' own accounts, a batch with malformed records, and a late session uploaded as a FIT
file. Devices retry what the gateway refused (503) or did not answer, as real ones do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg

from kneeload.demo.driver import Driver, RetryPolicy
from kneeload.demo.services import kneeload_argv
from kneeload.demo.sim import Scenario, SimConfig
from kneeload.settings import Settings
from kneeload.stack import mosquitto
from kneeload.worker.app import app_id

from .faults import Fault, Injector
from .observe import Progress
from .services import RunServices, UnexpectedExit
from .stack import ChaosStack, free_ports

__all__ = ["RunResult", "WorkloadSize", "run_workload"]

#: how long a device keeps retrying one request (longer than any injected outage)
DEVICE_RETRY_S = 600.0
DRAIN_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class WorkloadSize:
    athletes: int = 6
    units: int = 2
    weeks: int = 3
    duration_scale: float = 0.3
    seed: int = 16

    def sim_config(self, end: dt.datetime) -> SimConfig:
        # unit_timeout_s stays long: a unit's offline judgement is made on a processing-time
        # timer, which no two runs can share (see compare.SKIPPED: unit_status)
        return SimConfig(
            end=end,
            seed=self.seed,
            athletes=self.athletes,
            units=self.units,
            weeks=self.weeks,
            duration_scale=self.duration_scale,
            full_rate_weeks=self.weeks,
            unit_timeout_s=3600,
        )


@dataclass
class RunResult:
    name: str
    database_url: str
    seconds: float
    counters: dict[str, Any]
    faults: list[Fault] = field(default_factory=list)
    unexpected_exits: list[UnexpectedExit] = field(default_factory=list)
    inbox: list[dict[str, Any]] = field(default_factory=list)
    final_state: dict[str, int] | None = None
    drained: bool = False
    commit_stalls: dict[str, dict[str, tuple[int, int]]] | None = None
    error: str | None = None


def _create_database(stack: ChaosStack, name: str) -> str:
    admin = stack.database_url.replace("/kneeload?", "/postgres?")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # name: ours, fixed
        conn.execute(f'CREATE DATABASE "{name}"')
    return stack.database_url.replace("/kneeload?", f"/{name}?")


def _environment(
    stack: ChaosStack, name: str, db_url: str, ports: dict[str, int], bridge_url: str, token: str
) -> tuple[dict[str, str], Settings]:
    import os

    s = stack.settings
    prefix = f"chaos-{name}."
    routes = {
        "channels": {
            "team-hook": {"type": "webhook", "url": f"http://127.0.0.1:{ports['webhook']}/team"},
            "clinic-hook": {
                "type": "webhook",
                "url": f"http://127.0.0.1:{ports['webhook']}/clinic",
            },
        },
        "routes": [
            {"team_id": "*", "channels": ["team-hook"]},
            {"clinic_id": "*", "channels": ["clinic-hook"]},
        ],
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEELOAD_")}
    env.update(
        {
            "KNEELOAD_VAR_DIR": str(s.var_dir),
            "KNEELOAD_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
            "KNEELOAD_KAFKA_CONTROLLER_PORT": str(s.kafka_controller_port),
            "KNEELOAD_DATABASE_URL": db_url,
            "KNEELOAD_MQTT_URL": bridge_url,
            "KNEELOAD_MQTT_TOPIC_ROOT": f"chaos-{name}/lever",
            "KNEELOAD_MQTT_BRIDGE_CLIENT_ID": f"kneeload-chaos-bridge-{name}",
            "KNEELOAD_TOPIC_PREFIX": prefix,
            "KNEELOAD_TOPIC_PARTITIONS": str(s.topic_partitions),
            "KNEELOAD_HTTP_HOST": "127.0.0.1",
            "KNEELOAD_HTTP_PORT": str(ports["http"]),
            "KNEELOAD_ADMIN_TOKEN": token,
            "KNEELOAD_LOG_LEVEL": "INFO",
            "KNEELOAD_STORAGE_SINK_GROUP": f"chaos-{name}-sink",
            "KNEELOAD_NOTIFY_GROUP_ID": f"chaos-{name}-notify",
            "KNEELOAD_NOTIFY_ROUTES": orjson.dumps(routes).decode(),
            # one message per alert: a digest's make-up depends on wall-clock timing
            "KNEELOAD_NOTIFY_RATE_LIMIT_COUNT": "100000",
            "KNEELOAD_NOTIFY_SMTP_PORT": str(ports["smtp"]),
            "KNEELOAD_NOTIFY_ACK_PORT": str(ports["ack"]),
        }
    )
    run_settings = s.model_copy(
        update={
            "topic_prefix": prefix,
            "database_url": db_url,
            "storage_sink_group": f"chaos-{name}-sink",
            "notify_group_id": f"chaos-{name}-notify",
            "mqtt_topic_root": f"chaos-{name}/lever",
        }
    )
    return env, run_settings


def _setup(env: dict[str, str], args: list[str], log: Path) -> None:
    with open(log, "ab") as out:
        rc = subprocess.run(
            [*kneeload_argv(), *args], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=300
        ).returncode
    if rc != 0:
        raise RuntimeError(f"`kneeload {' '.join(args)}` failed (exit {rc}); see {log}")


async def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if await asyncio.to_thread(check):
                return
        except Exception:  # not up yet
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready within {timeout_s:.0f} s")
        await asyncio.sleep(0.3)


async def run_workload(
    name: str,
    stack: ChaosStack,
    sc: Scenario,
    *,
    faults: list[Fault] | None = None,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Run the scenario once (with ``faults`` injected at their steps, if any)."""
    t0 = time.monotonic()
    db_url = _create_database(stack, f"kneeload_chaos_{name}")
    http, webhook, smtp, ack = free_ports(4)
    ports = {"http": http, "webhook": webhook, "smtp": smtp, "ack": ack}
    mq_port = int(stack.settings.mqtt_url.rsplit(":", 1)[1])
    auth = stack.mqtt_auth(f"chaos-{name}/lever")
    bridge_user, bridge_pw = f"chaos-bridge-{name}", secrets.token_urlsafe(18)
    auth.set_bridge(bridge_user, bridge_pw)
    auth.enable()
    auth.reload()
    await _until(
        lambda: mosquitto.can_log_in("127.0.0.1", mq_port, bridge_user, bridge_pw),
        30,
        "bridge account",
    )
    bridge_url = f"mqtt://{bridge_user}:{bridge_pw}@127.0.0.1:{mq_port}"
    token = secrets.token_urlsafe(24)
    env, rs = _environment(stack, name, db_url, ports, bridge_url, token)
    svc = RunServices(stack.settings.var_dir / name, env, webhook, smtp)
    _setup(env, ["topics"], svc.log("setup"))
    _setup(env, ["migrate"], svc.log("setup"))
    progress = Progress(rs, db_url)
    result = RunResult(name, db_url, 0.0, {})
    supervisor: asyncio.Task[None] | None = None
    try:
        svc.start("ingest")
        svc.start("receivers")
        await _until(svc.ingest_ready, 120, "ingest gateway")
        await _until(svc.receivers_ready, 60, "webhook receiver")

        async def mqtt_in_kafka() -> int:
            n = await asyncio.to_thread(progress.mqtt_in_kafka)
            if n is None:
                raise RuntimeError("Kafka unreachable")
            return n

        async def worker_lag() -> int:
            n = await asyncio.to_thread(progress.worker_telemetry_lag)
            if n is None:
                raise RuntimeError("Kafka unreachable")
            return n

        async with Driver(
            sc,
            base_url=f"http://127.0.0.1:{http}",
            admin_token=token,
            mqtt_url=f"mqtt://127.0.0.1:{mq_port}",
            mqtt_root=f"chaos-{name}/lever",
            kafka_mqtt_count=mqtt_in_kafka,
            worker_telemetry_lag=worker_lag,
            retry=RetryPolicy(deadline_s=DEVICE_RETRY_S),
            mqtt_forward_wait_s=DEVICE_RETRY_S,
            telemetry_pacing_s=DEVICE_RETRY_S,
        ) as drv:
            await drv.register()
            for n in ("mqtt-bridge", "worker", "sink", "notify"):
                svc.start(n)
            await _until(lambda: svc.log_has("mqtt-bridge", "bridge subscribed"), 90, "bridge")
            for group in (app_id(rs), rs.storage_sink_group, rs.notify_group_id):

                def stable(g: str = group) -> bool:
                    return progress.group_state(g) == "Stable"

                await _until(stable, 180, f"group {group}")
            supervisor = asyncio.create_task(svc.supervise())
            injector = None
            if faults:
                injector = Injector(
                    faults,
                    stack,
                    svc,
                    progress,
                    lambda: drv.counters.mqtt_published,
                    log=log,
                    t0=svc.t0,
                )
            paced = Pacing()

            async def before_step(step: int, label: str) -> None:
                await paced.settle(progress)
                if injector is not None:
                    await injector.at_step(step, label)

            drv.before_step = before_step
            t_stream = time.monotonic()
            await drv.run()
            fit = await drv.upload_fit(sc.late_session)
            log(
                f"[{name}] workload sent in {time.monotonic() - t_stream:.0f} s: "
                f"{drv.counters.watch_accepted:,} samples, {drv.counters.mqtt_published:,} MQTT "
                f"messages, {drv.counters.pain_accepted} pain reports, FIT {fit['accepted']} "
                f"samples; retries {dict(drv.counters.retries)}"
            )
            if injector is not None:
                await injector.finish()
            c = drv.counters
            result.counters = {
                "pacing_waits_s": round(paced.waited_s, 1),
                "pacing_timeouts_worker": paced.timeouts,
                "watch_accepted": c.watch_accepted,
                "watch_duplicates": c.watch_duplicates,
                "pain_accepted": c.pain_accepted,
                "mqtt_published": c.mqtt_published,
                "fit_accepted": c.fit_accepted,
                "rejected": c.rejected,
                "rejected_by_reason": dict(c.rejected_by_reason),
                "requests": c.requests,
                "retries": dict(c.retries),
                "pacing_timeouts": c.pacing_timeouts,
            }
        result.drained, result.final_state = await _drain(progress, svc, name, log)
        result.commit_stalls = await asyncio.to_thread(progress.stalled)
        if result.commit_stalls:
            log(f"[{name}] committed offsets behind at the end: {result.commit_stalls}")
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        log(f"[{name}] FAILED: {result.error}")
    finally:
        if supervisor is not None:
            supervisor.cancel()
        result.faults = list(faults or [])
        result.unexpected_exits = list(svc.exits)
        await asyncio.to_thread(svc.stop_all)
        result.inbox = svc.inbox_messages()
        progress.close()
        result.seconds = time.monotonic() - t0
    return result


@dataclass
class Pacing:
    """Between workload steps, wait until the worker has consumed everything sent so far.

    The worker's results depend on the order in which it sees its inputs *across* topics
    (a pain report before or after the samples of the run it refers to; the day's BWS
    timeline before the samples) — Kafka orders each partition, not the topics among
    themselves. Pacing the workload step by step gives both runs the same order, so the
    comparison measures what faults do, not how two topics happened to interleave. (Two
    undisturbed runs without pacing differ; see the README's reliability section.)
    """

    limit_s: float = DEVICE_RETRY_S
    waited_s: float = 0.0
    timeouts: int = 0

    async def settle(self, progress: Progress) -> None:
        t = time.monotonic()
        while True:
            lag = await asyncio.to_thread(progress.worker_input_lag)
            if lag == 0:
                break
            if time.monotonic() - t > self.limit_s:
                self.timeouts += 1
                break
            await asyncio.sleep(0.1)
        self.waited_s += time.monotonic() - t


async def _drain(
    progress: Progress, svc: RunServices, name: str, log: Callable[[str], None]
) -> tuple[bool, dict[str, int] | None]:
    """Until nothing is left to do: no consumer lag, every session closed and every day
    final (the worker's idle timer closes the last ones), no pending notification, and
    the counts unchanged over three polls."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    last: dict[str, int] | None = None
    stable = 0
    t = time.monotonic()
    while time.monotonic() < deadline:
        lag = await asyncio.to_thread(progress.lag)
        state = await asyncio.to_thread(progress.pipeline_state)
        done = (
            lag == 0
            and state is not None
            and state["open_sessions"] == 0
            and state["provisional_days"] == 0
            and state["pending_deliveries"] == 0
        )
        stable = stable + 1 if done and state == last else 0
        last = state
        if stable >= 3:
            log(f"[{name}] drained in {time.monotonic() - t:.0f} s: {state}")
            return True, state
        if not all(svc.alive(n) for n in svc.wanted):
            await asyncio.sleep(1)  # the supervisor restarts it
        await asyncio.sleep(2.0)
    log(f"[{name}] NOT drained within {DRAIN_TIMEOUT_S:.0f} s: lag {lag}, {last}")
    return False, last
