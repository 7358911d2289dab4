"""Faults: a seeded schedule over the workload's steps, injection, and recovery times.

Kinds (``make chaos`` injects at least 20 per run):

* ``kill:<service>`` — SIGKILL of ingest, worker, sink, mqtt-bridge or notify (its whole
  process group), restarted after a seeded 0.5–3 s, as a supervisor would;
* ``postgres_stop`` — PostgreSQL stopped in ``immediate`` mode (like a crash: WAL recovery
  at the next start) for 60 s;
* ``kafka_stop`` — the broker SIGKILLed and started again 30 s later (log recovery);
* ``worker_add`` / ``worker_remove`` — a second worker joins the consumer group and later
  leaves it (SIGTERM, a scale-down): two rebalances, partitions and table state moving.

Faults never overlap: a fault is injected at its step once the previous one has recovered,
and the workload keeps running while it lasts. **Recovery** of a fault: every service that
should run is running, the gateway answers ``/healthz``, every consumer group (worker, sink,
notifier) is Stable with all its members (a restarted consumer has rejoined) and has
committed everything that was in its topics when the fault ended, a restarted bridge has
subscribed again and every MQTT message published until then is in Kafka, and the notifier
has nothing pending. ``recovery_s`` is measured from the end of the fault (the restart, or
the start of PostgreSQL/Kafka) to that point; ``outage_s`` is the time from the fault to its
end (for the gateway: until it answers ``/healthz`` again).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .observe import Progress
from .services import RunServices
from .stack import ChaosStack

__all__ = ["Fault", "FaultPlan", "Injector", "plan_faults"]

KILLED = ("ingest", "worker", "sink", "mqtt-bridge", "notify")
POSTGRES_STOP_S = 60.0
KAFKA_STOP_S = 30.0
RECOVERY_LIMIT_S = 300.0


@dataclass
class Fault:
    kind: str
    step: int
    restart_after_s: float = 0.0
    # measured
    injected_at_s: float | None = None
    restored_at_s: float | None = None
    recovered_at_s: float | None = None
    outage_s: float | None = None
    recovery_s: float | None = None
    survived: bool = False
    step_label: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FaultPlan:
    seed: int
    faults: tuple[Fault, ...]


def plan_faults(
    seed: int, steps: int, kills_per_service: int = 3, rebalances: int = 2, first_step: int = 2
) -> list[Fault]:
    """The seeded schedule: which fault at which workload step (sorted by step).

    ``kills_per_service`` × 5 SIGKILLs, one PostgreSQL stop, one Kafka stop, and
    ``rebalances`` worker add/remove pairs (an add always precedes its remove, at most
    one extra worker at a time). Steps are drawn uniformly from ``first_step`` to
    ``steps - 1``; several faults may share a step (they run one after another).
    """
    rng = random.Random(seed)
    kinds = [f"kill:{s}" for s in KILLED for _ in range(kills_per_service)]
    kinds += ["postgres_stop", "kafka_stop"] + ["rebalance"] * (2 * rebalances)
    rng.shuffle(kinds)
    n_reb = 0
    ordered = []
    for k in kinds:  # rebalance tokens alternate add, remove in schedule order
        if k == "rebalance":
            ordered.append("worker_add" if n_reb % 2 == 0 else "worker_remove")
            n_reb += 1
        else:
            ordered.append(k)
    points = sorted(rng.randint(first_step, steps - 1) for _ in ordered)
    return [
        Fault(
            k, p, restart_after_s=round(rng.uniform(0.5, 3.0), 2) if k.startswith("kill:") else 0.0
        )
        for k, p in zip(ordered, points, strict=True)
    ]


@dataclass
class Injector:
    """Injects :attr:`faults` at their steps (see the module docstring)."""

    faults: list[Fault]
    stack: ChaosStack
    services: RunServices
    progress: Progress
    mqtt_published: Callable[[], int]
    log: Callable[[str], None] = print
    t0: float = field(default_factory=time.monotonic)
    _next: int = 0
    _current: asyncio.Task[None] | None = None
    _bridge_log: int = -1

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def at_step(self, step: int, label: str) -> None:
        """Called by the workload before each step: inject what is due at ``step``."""
        while self._next < len(self.faults) and self.faults[self._next].step <= step:
            await self.wait_current()
            f = self.faults[self._next]
            f.step_label = label
            self._next += 1
            self._current = asyncio.create_task(self._run(f))
            await asyncio.sleep(0)  # let the fault begin before the step

    async def finish(self) -> None:
        """Inject whatever is left (the workload ended early) and wait for the last one."""
        await self.at_step(1 << 30, "after the workload")
        await self.wait_current()

    async def wait_current(self) -> None:
        if self._current is not None:
            await self._current
            self._current = None

    # ------------------------------------------------------------------ one fault
    async def _run(self, f: Fault) -> None:
        f.injected_at_s = self.now()
        self.log(f"fault {self.faults.index(f) + 1}/{len(self.faults)}: {f.kind} at {f.step_label}")
        try:
            await self._inject(f)
        except Exception as exc:  # the harness itself failed: record, do not hide
            f.note = f"injection failed: {exc!r}"
            self.log(f"  {f.note}")
            return
        f.restored_at_s = self.now()
        f.outage_s = round(f.restored_at_s - f.injected_at_s, 2)
        ok = await self._await_recovery(f, self._bridge_log)
        f.survived = ok
        if ok and f.recovered_at_s is not None:
            f.recovery_s = round(f.recovered_at_s - f.restored_at_s, 2)
        self.log(
            f"  outage {f.outage_s:.1f} s, "
            + (f"recovered in {f.recovery_s:.1f} s" if ok else f"NOT recovered: {f.note}")
        )

    async def _inject(self, f: Fault) -> None:
        svc = self.services
        self._bridge_log = -1  # >= 0: the bridge restarted, its log from there must say so
        if f.kind.startswith("kill:"):
            name = f.kind.split(":", 1)[1]
            await asyncio.to_thread(svc.kill, name, signal.SIGKILL)
            if name == "mqtt-bridge":
                self._bridge_log = svc.log_size(name)
            await asyncio.sleep(f.restart_after_s)
            svc.start(name)
            if name == "ingest":
                await self._until(svc.ingest_ready, 120, "gateway /healthz")
        elif f.kind == "postgres_stop":
            await asyncio.to_thread(self.stack.stop_postgres, "immediate")
            await asyncio.sleep(POSTGRES_STOP_S)
            await asyncio.to_thread(self.stack.start_postgres)
        elif f.kind == "kafka_stop":
            await asyncio.to_thread(self.stack.kill_kafka)
            await asyncio.sleep(KAFKA_STOP_S)
            await asyncio.to_thread(self.stack.start_kafka)
        elif f.kind == "worker_add":
            svc.start("worker-2")
        elif f.kind == "worker_remove":
            await asyncio.to_thread(svc.kill, "worker-2", signal.SIGTERM)
        else:
            raise ValueError(f"unknown fault kind {f.kind!r}")

    async def _until(self, check: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(check):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not back within {timeout_s:.0f} s")
            await asyncio.sleep(0.2)

    def members(self) -> dict[str, int]:
        """Consumer group → members it must have now (the extra worker counts while up)."""
        g = list(self.progress.groups)  # worker, sink, notify (observe.groups_of order)
        return {g[0]: 1 + ("worker-2" in self.services.wanted), g[1]: 1, g[2]: 1}

    async def _await_recovery(self, f: Fault, bridge_log: int) -> bool:
        deadline = time.monotonic() + RECOVERY_LIMIT_S
        snap = None
        published = self.mqtt_published()
        while time.monotonic() < deadline:
            if snap is None:
                snap = await asyncio.to_thread(self.progress.snapshot)
            if snap is not None and await asyncio.to_thread(
                self._recovered, snap, published, bridge_log
            ):
                f.recovered_at_s = self.now()
                return True
            await asyncio.sleep(0.25)
        f.note = f"not recovered within {RECOVERY_LIMIT_S:.0f} s"
        return False

    def _recovered(self, snap: dict[str, Any], published: int, bridge_log: int) -> bool:
        svc = self.services
        if not all(svc.alive(n) for n in svc.wanted):
            return False
        if not svc.ingest_ready():
            return False
        # every consumer has (re)joined its group: a restarted process that has not is
        # not processing yet, however little there was to do
        for group, members in self.members().items():
            if self.progress.group(group) != ("Stable", members):
                return False
        if bridge_log >= 0 and not svc.log_has("mqtt-bridge", "bridge subscribed", bridge_log):
            return False
        if self.progress.caught_up(snap) is not True:
            return False
        forwarded = self.progress.mqtt_in_kafka()
        if forwarded is None or forwarded < published:
            return False
        state = self.progress.pipeline_state()
        return state is not None and state["pending_deliveries"] == 0
