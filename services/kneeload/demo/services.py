"""The demo's background processes: start, check, stop — with logs and pid files.

Everything lives under ``<var>/demo/``:

* ``logs/<name>.log`` and ``pids/<name>.pid`` per service;
* ``demo.env`` — the KNEELOAD_* variables of the last run (source it to point the CLI,
  psql or Grafana at the demo's topics and database);
* ``state.json`` — run id, ports and the services started;
* ``inbox/`` — what the local webhook and SMTP receivers got.

Each service is the real ``kneeload <command>`` (or, for the receivers,
``python -m kneeload.demo.receivers``) started detached with the demo's environment.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from kneeload.stack.procs import pid_alive, read_pid, spawn, tail, terminate

__all__ = [
    "REQUIRED_COMMANDS",
    "SERVICES",
    "DemoError",
    "DemoPaths",
    "Service",
    "free_port",
    "missing_commands",
    "service_status",
    "start_service",
    "stop_services",
]


class DemoError(RuntimeError):
    """The demo cannot go on; the message says what is missing or broken."""


#: kneeload commands the demo needs, with the issue that delivers each.
REQUIRED_COMMANDS: dict[str, str] = {
    "topics": "topic catalogue (foundation)",
    "migrate": "storage migrations (issue 6)",
    "ingest": "HTTP ingest gateway (issue 4)",
    "mqtt-bridge": "MQTT bridge for LEVER units (issue 4)",
    "worker": "Faust stream worker (issue 5)",
    "sink": "PostgreSQL sink (issue 6)",
    "notify": "alert notifier (issue 7)",
}


@dataclass(frozen=True)
class Service:
    name: str
    args: tuple[str, ...]  # kneeload sub-command and options (empty: custom argv)


#: Start order: the gateway first (registration goes through it), receivers before notify.
SERVICES: tuple[Service, ...] = (
    Service("ingest", ("ingest",)),
    Service("receivers", ()),
    Service("mqtt-bridge", ("mqtt-bridge",)),
    Service("worker", ("worker",)),
    Service("sink", ("sink",)),
    Service("notify", ("notify",)),
    Service("live-units", ()),
)


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @classmethod
    def at(cls, var_dir: Path, name: str = "demo") -> DemoPaths:
        p = cls(var_dir / name)
        for d in (p.logs, p.pids, p.inbox):
            d.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def env_file(self) -> Path:
        return self.root / "demo.env"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid(self, name: str) -> Path:
        return self.pids / f"{name}.pid"


def kneeload_argv() -> list[str]:
    """How to run the ``kneeload`` CLI of this installation."""
    exe = Path(sys.executable).with_name("kneeload")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("kneeload")
    return [found] if found else [sys.executable, "-m", "kneeload"]


def missing_commands() -> list[str]:
    """Required kneeload commands that this checkout does not have (yet)."""
    from kneeload.cli import root

    return [c for c in REQUIRED_COMMANDS if c not in root.commands]


def free_port(host: str = "127.0.0.1", preferred: int | None = None) -> int:
    """``preferred`` when nothing listens there, else a free port chosen by the OS."""
    if preferred:
        with socket.socket() as s:
            try:
                s.bind((host, preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_service(
    paths: DemoPaths, svc: Service, env: dict[str, str], argv: list[str] | None = None
) -> int:
    """Start ``svc`` detached (stopping an earlier instance of it first); returns the pid."""
    terminate(paths.pid(svc.name), what=svc.name, timeout_s=15)
    log = paths.log(svc.name)
    log.write_bytes(b"")
    cmd = argv if argv is not None else [*kneeload_argv(), *svc.args]
    return spawn(cmd, log=log, pidfile=paths.pid(svc.name), env=env)


def service_status(paths: DemoPaths) -> dict[str, dict[str, object]]:
    """{name: {pid, running, log}} for every demo service that has a pid file."""
    out: dict[str, dict[str, object]] = {}
    for svc in SERVICES:
        pf = paths.pid(svc.name)
        if not pf.exists():
            continue
        try:
            pid = int(pf.read_text().strip())
        except ValueError:
            pid = None
        out[svc.name] = {
            "pid": pid,
            "running": bool(pid and pid_alive(pid)),
            "log": str(paths.log(svc.name)),
        }
    return out


def stop_services(paths: DemoPaths) -> list[str]:
    """Stop every demo service (reverse start order); returns the names that were running."""
    stopped = []
    for svc in reversed(SERVICES):
        if terminate(paths.pid(svc.name), what=svc.name, timeout_s=20):
            stopped.append(svc.name)
    return stopped


def ensure_running(paths: DemoPaths, name: str) -> None:
    """Raise :class:`DemoError` with the log's tail when service ``name`` has died."""
    if read_pid(paths.pid(name)) is None:
        raise DemoError(f"the {name} service exited.{tail(paths.log(name), 30)}")


def wait_for(
    check: object,
    *,
    timeout_s: float,
    what: str,
    services: tuple[str, ...] = (),
    paths: DemoPaths | None = None,
    poll_s: float = 0.25,
) -> None:
    """Poll ``check()`` until true; fail early when one of ``services`` died."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:  # the service may not be up yet; keep polling
            pass
        if paths is not None:
            for name in services:
                ensure_running(paths, name)
        if time.monotonic() > deadline:
            logs = "".join(tail(paths.log(n), 20) for n in services) if paths else ""
            raise DemoError(f"{what}: not ready after {timeout_s:.0f} s.{logs}")
        time.sleep(poll_s)


def write_env(paths: DemoPaths, env: dict[str, str]) -> None:
    """Write the demo's KNEELOAD_* variables (mode 600: it holds the admin token)."""
    lines = [f"{k}={v}" for k, v in sorted(env.items()) if k.startswith("KNEELOAD_")]
    paths.env_file.write_text(
        "# kneeload demo: `set -a; . var/demo/demo.env; set +a`\n" + "\n".join(lines) + "\n"
    )
    os.chmod(paths.env_file, 0o600)


def write_state(paths: DemoPaths, state: dict[str, object]) -> None:
    paths.state_file.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))


def read_state(paths: DemoPaths) -> dict[str, object]:
    try:
        return dict(orjson.loads(paths.state_file.read_bytes()))
    except (OSError, orjson.JSONDecodeError):
        return {}
