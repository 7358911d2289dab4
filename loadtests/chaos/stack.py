"""The chaos run's own stack: Kafka, PostgreSQL and Mosquitto on free loopback ports.

The chaos run stops PostgreSQL and kills the Kafka broker, so it must never touch the shared
development stack (``make up``: ports 19092/55432/11883, ``var/``). It starts the same
components with the same code (:mod:`kneeload.stack`) from settings that point at a var
directory of its own (default ``var/chaos/``) and at ports the OS reports free; Kafka's
jars are the checkout's (``var/kafka/libs``, linked). :func:`guard` refuses settings that
share anything with the development stack.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kneeload.bridge.mqttauth import MqttAuth
from kneeload.settings import REPO_ROOT, Settings
from kneeload.stack import kafka, mosquitto, postgres
from kneeload.stack.procs import Endpoint, pid_alive, read_pid

__all__ = ["ChaosStack", "StackGuardError", "free_ports", "guard"]


class StackGuardError(RuntimeError):
    """The chaos stack's settings would touch the shared development stack."""


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports nothing listens on right now (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _ports(s: Settings) -> set[int]:
    from urllib.parse import urlsplit

    return {
        Endpoint.parse(s.kafka_bootstrap, 9092).port,
        s.kafka_controller_port,
        urlsplit(s.database_url).port or 5432,
        urlsplit(s.mqtt_url).port or 1883,
    }


def guard(chaos: Settings, shared: Settings) -> None:
    """Refuse chaos settings that share a port or the var directory with ``shared``."""
    common = _ports(chaos) & _ports(shared)
    if common:
        raise StackGuardError(
            f"the chaos stack would use the shared stack's ports {sorted(common)}"
        )
    if chaos.var_dir.resolve() == shared.var_dir.resolve():
        b = shared.var_dir.resolve()
        raise StackGuardError(f"the chaos stack would use the shared var directory {b}")


@dataclass
class ChaosStack:
    """Kafka + PostgreSQL + Mosquitto of the chaos run (see the module docstring)."""

    settings: Settings

    @classmethod
    def create(
        cls,
        var_dir: Path,
        shared: Settings,
        kafka_heap: str = "512m",
        kafka_libs: Path | None = None,
    ) -> ChaosStack:
        """Fresh settings under ``var_dir`` (wiped) on free ports; Kafka's jars (default: the
        checkout's ``var/kafka/libs``, fetched by ``make kafka-jars``) linked."""
        if var_dir.exists():
            shutil.rmtree(var_dir)
        (var_dir / "kafka").mkdir(parents=True)
        libs = (kafka_libs or shared.var_dir / "kafka" / "libs").resolve()
        if not any(libs.glob("*.jar")):
            raise RuntimeError(f"no Kafka jars in {libs}: run `make kafka-jars` first")
        (var_dir / "kafka" / "libs").symlink_to(libs, target_is_directory=True)
        k, ctl, pg, mq = free_ports(4)
        s = Settings(
            var_dir=var_dir,
            kafka_bootstrap=f"127.0.0.1:{k}",
            kafka_controller_port=ctl,
            database_url=f"postgresql://kneeload@127.0.0.1:{pg}/kneeload",
            mqtt_url=f"mqtt://127.0.0.1:{mq}",
            kafka_heap=kafka_heap,
            topic_partitions=shared.topic_partitions,
        )
        guard(s, shared)
        return cls(s)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        kafka.start(self.settings)
        postgres.start(self.settings)
        mosquitto.start(self.settings)

    def stop(self) -> None:
        steps: list[Callable[[], object]] = [
            lambda: mosquitto.stop(self.settings),
            self.kill_kafka,
            self.stop_postgres,
        ]
        for fn in steps:
            try:
                fn()
            except Exception as exc:  # stop what can be stopped
                print(f"chaos stack: stopping failed: {exc}")

    @property
    def database_url(self) -> str:
        """The superuser URL with the generated password's file (libpq passfile)."""
        pgpass = self.settings.var_dir / "pg" / "pgpass"
        return f"{self.settings.database_url}?passfile={pgpass}"

    def mqtt_auth(self, topic_root: str) -> MqttAuth:
        """The broker's device accounts, ACL rendered for ``topic_root``."""
        return MqttAuth(self.settings.model_copy(update={"mqtt_topic_root": topic_root}))

    # ----------------------------------------------------------------- faults
    def kill_kafka(self) -> bool:
        """SIGKILL the broker (a crash: the next start recovers its logs)."""
        pidfile = self.settings.var_dir / "kafka" / "kafka.pid"
        pid = read_pid(pidfile)
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        pidfile.unlink(missing_ok=True)
        return True

    def start_kafka(self) -> None:
        kafka.start(self.settings)

    def stop_postgres(self, mode: str = "immediate") -> bool:
        return postgres.stop(self.settings, mode=mode)

    def start_postgres(self) -> None:
        postgres.start(self.settings)


def default_var_dir() -> Path:
    return REPO_ROOT / "var" / "chaos"
