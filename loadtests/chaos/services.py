"""The kneeload services of one chaos run, started as real processes and supervised.

Each service is ``kneeload <command>`` with the run's environment (own topic prefix,
database, MQTT topic root, ports, consumer groups), in its own process group, logging to
``<var>/<run>/logs/<name>.log`` (appended across restarts). The supervisor restarts a
service that exited on its own — what ``restart: unless-stopped`` does in
``infra/compose.yaml`` — and records it: an exit nobody caused is a finding, reported
beside the injected faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kneeload.demo.services import kneeload_argv
from kneeload.stack.procs import pid_alive, spawn, tail

__all__ = ["RunServices", "UnexpectedExit"]

#: start order; the receivers take the notifier's webhooks
SERVICE_ARGS: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest",),
    "mqtt-bridge": ("mqtt-bridge",),
    "worker": ("worker",),
    "sink": ("sink",),
    "notify": ("notify",),
    "worker-2": ("worker",),
}


@dataclass
class UnexpectedExit:
    service: str
    at_s: float
    status: int | None
    log_tail: str


@dataclass
class RunServices:
    """The processes of one run (see the module docstring)."""

    root: Path
    env: dict[str, str]
    webhook_port: int
    smtp_port: int
    t0: float = field(default_factory=time.monotonic)
    pids: dict[str, int] = field(default_factory=dict)
    wanted: set[str] = field(default_factory=set)
    exits: list[UnexpectedExit] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for d in ("logs", "pids", "inbox"):
            (self.root / d).mkdir(parents=True, exist_ok=True)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    # ------------------------------------------------------------------ processes
    def _argv(self, name: str) -> list[str]:
        if name == "receivers":
            return [
                sys.executable,
                "-m",
                "kneeload.demo.receivers",
                "--webhook-port",
                str(self.webhook_port),
                "--smtp-port",
                str(self.smtp_port),
                "--inbox",
                str(self.inbox),
            ]
        return [*kneeload_argv(), *SERVICE_ARGS[name]]

    def start(self, name: str) -> int:
        """Start ``name`` (it is then supervised)."""
        log = self.log(name)
        with open(log, "ab") as f:
            f.write(f"\n=== start {name} at +{time.monotonic() - self.t0:.1f} s ===\n".encode())
        pid = spawn(
            self._argv(name), log=log, pidfile=self.root / "pids" / f"{name}.pid", env=self.env
        )
        self.pids[name] = pid
        self.wanted.add(name)
        return pid

    def alive(self, name: str) -> bool:
        pid = self.pids.get(name)
        return pid is not None and pid_alive(pid)

    def _reap(self, pid: int) -> int | None:
        with contextlib.suppress(ChildProcessError):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
        return None

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the service's process group and wait until it is gone; the
        supervisor leaves it down until :meth:`start`."""
        self.wanted.discard(name)
        pid = self.pids.get(name)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + (60 if sig == signal.SIGTERM else 15)
        while pid_alive(pid) and time.monotonic() < deadline:
            self._reap(pid)
            time.sleep(0.05)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self._reap(pid)
        with open(self.log(name), "ab") as f:
            f.write(
                f"\n=== {signal.Signals(sig).name} {name} at +{time.monotonic() - self.t0:.1f} s"
                " ===\n".encode()
            )

    def stop_all(self) -> None:
        for name in list(reversed(list(self.pids))):
            self.kill(name, signal.SIGTERM)

    async def supervise(self, period_s: float = 1.0) -> None:
        """Restart any wanted service that exited on its own (recorded in :attr:`exits`)."""
        while True:
            await asyncio.sleep(period_s)
            for name in sorted(self.wanted):
                pid = self.pids.get(name)
                if pid is None or pid_alive(pid):
                    continue
                status = self._reap(pid)
                self.exits.append(
                    UnexpectedExit(
                        name, time.monotonic() - self.t0, status, tail(self.log(name), 40)
                    )
                )
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self.start(name)

    # ------------------------------------------------------------------ readiness
    def ingest_ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.env['KNEELOAD_HTTP_PORT']}/healthz"
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def receivers_ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.webhook_port}/healthz"
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log_has(self, name: str, text: str, since: int = 0) -> bool:
        p = self.log(name)
        if not p.exists():
            return False
        with open(p, "rb") as f:
            f.seek(since)
            return text.encode() in f.read()

    def log_size(self, name: str) -> int:
        p = self.log(name)
        return p.stat().st_size if p.exists() else 0

    def inbox_messages(self) -> list[dict[str, Any]]:
        from kneeload.demo.receivers import read_inbox

        return read_inbox(self.inbox / "webhook.jsonl")
