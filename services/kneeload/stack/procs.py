"""Small process and port helpers shared by the component managers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A component could not be started or checked; the message says what to do."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @classmethod
    def parse(cls, hostport: str, default_port: int) -> Endpoint:
        hostport = hostport.split(",")[0].strip()
        if "://" in hostport:
            hostport = hostport.split("://", 1)[1]
        if "@" in hostport:
            hostport = hostport.rsplit("@", 1)[1]
        hostport = hostport.split("/", 1)[0]
        if ":" in hostport:
            host, port = hostport.rsplit(":", 1)
            return cls(host or "127.0.0.1", int(port))
        return cls(hostport or "127.0.0.1", default_port)


def port_open(host: str, port: int, timeout_s: float = 0.3) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def wait_until(
    check: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    log: Path | None = None,
    poll_s: float = 0.25,
) -> None:
    """Poll ``check`` until it is true; fail early if the process died, with the log's tail."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return
        if alive is not None and not alive():
            raise StackError(f"{what}: the process exited during start-up.{tail(log)}")
        if time.monotonic() > deadline:
            raise StackError(f"{what}: not healthy after {timeout_s:.0f} s.{tail(log)}")
        time.sleep(poll_s)


def tail(log: Path | None, lines: int = 25) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\nLast lines of {log}:\n" + "\n".join("  " + t for t in text)


def spawn(
    cmd: list[str],
    *,
    log: Path,
    pidfile: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a detached background process writing to ``log``; record its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
    pidfile.write_text(str(proc.pid))
    return proc.pid


def terminate(pidfile: Path, *, what: str, timeout_s: float = 30.0) -> bool:
    """SIGTERM the recorded process, wait for it, SIGKILL if it will not go. True if it ran."""
    pid = read_pid(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_conflict(host: str, port: int, *, component: str, setting: str) -> StackError:
    return StackError(
        f"{component}: port {port} on {host} is already in use by another program. "
        f"Stop that program, or choose another port with {setting} "
        f"(for example export {setting}=...:{port + 1000})."
    )
