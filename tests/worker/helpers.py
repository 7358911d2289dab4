"""Scenario data, expected numbers straight from kneeload.core, and a worker harness."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import orjson

from kneeload.contracts import wire
from kneeload.core.pfj import estimate_pfj_sample, pfj_sample_load_mpa_s

REPO = Path(__file__).resolve().parents[2]
KNEELOAD = str(REPO / ".venv" / "bin" / "kneeload")
UTC = dt.UTC

#: fast timers for tests (the demo/production defaults are minutes)
WORKER_ENV = {
    "KNEELOAD_WORKER_SESSION_GAP_S": "600",
    "KNEELOAD_WORKER_DAY_GRACE_S": "600",
    "KNEELOAD_WORKER_IDLE_CLOSE_S": "4",
    "KNEELOAD_WORKER_PUBLISH_INTERVAL_S": "1",
    "KNEELOAD_WORKER_TICK_S": "0.5",
    "KNEELOAD_WORKER_UNIT_TIMEOUT_S": "3",
    "KNEELOAD_TOPIC_PARTITIONS": "2",
}


#: upper bound of every wait for the worker's outputs (s); waits end as soon as they hold
WAIT_S = 240.0


def iso(t: dt.datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def samples(
    start: dt.datetime, n: int, speed: float = 3.2, cadence: float = 170.0, tag: str = ""
) -> list[dict]:
    out = []
    for i in range(n):
        t = start + dt.timedelta(seconds=i)
        out.append(
            {
                "record_id": f"r{tag}{int(t.timestamp())}",
                "time": iso(t),
                "cadence_spm": cadence + (i % 7),
                "speed_mps": speed + (i % 5) * 0.05,
                "ground_contact_ms": 240.0 + (i % 3) * 5,
                "grade_pct": 0.0,
            }
        )
    return out


def batches(
    athlete: str,
    team: str,
    rows: list[dict],
    size: int = 100,
    session_id: str | None = None,
    prefix: str = "b",
) -> list[dict]:
    out = []
    for k in range(0, len(rows), size):
        chunk = rows[k : k + size]
        out.append(
            {
                "batch_id": f"{prefix}-{athlete}-{chunk[0]['record_id']}",
                "athlete_id": athlete,
                "device_id": f"w-{athlete}",
                "team_id": team,
                "session_id": session_id,
                "source": "simulator",
                "sub_sport": None,
                "received_at": chunk[-1]["time"],
                "samples": chunk,
            }
        )
    return out


def athlete_record(aid: str, team: str, tz: str = "UTC", mass: float = 70.0) -> dict:
    return {
        "athlete_id": aid,
        "team_id": team,
        "body_mass_kg": mass,
        "time_zone": tz,
        "display_name": aid,
        "active": True,
        "updated_at": "2024-01-01T00:00:00Z",
        "calibration": None,
    }


def expected_session_load(
    rows: Iterable[dict],
    bws_at: Callable[[dt.datetime], float] = lambda t: 0.0,
    first_dt: float = 1.0,
    max_dt: float = 5.0,
) -> float:
    """Session PFJ load from core, samples in time order, one per time."""
    by_t: dict[dt.datetime, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: (r["time"], r["record_id"])):
        by_t.setdefault(dt.datetime.fromisoformat(r["time"]), r)
    total = 0.0
    last = None
    for t in sorted(by_t):
        r = by_t[t]
        d = first_dt if last is None else min((t - last).total_seconds(), max_dt)
        last = t
        s = estimate_pfj_sample(
            r["speed_mps"], r["cadence_spm"], 70.0, r["ground_contact_ms"], 0.0, bws_at(t)
        )
        total += pfj_sample_load_mpa_s(s.pfj_impulse_per_step_mpa_s, r["cadence_spm"], d)
    return total


class Kafka:
    def __init__(self, bootstrap: str, prefix: str) -> None:
        from kafka import KafkaProducer

        self.bootstrap = bootstrap
        self.prefix = prefix
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)

    def send(self, logical: str, key: str, value: Any) -> None:
        self.producer.send(self.prefix + logical, key=key.encode(), value=orjson.dumps(value))

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()


class Collector:
    """Reads derived topics from the beginning; keeps the latest event per id."""

    KEYS: ClassVar[dict[str, str]] = {
        "sessions": "session_id",
        "daily.load": "id",
        "load.samples": "batch_id",
        "alerts": "alert_id",
        "pain.responses": "id",
        "unit.status": "id",
        "correlations": "id",
        "load.minute": "id",
        "deadletter": "id",
    }

    def __init__(self, bootstrap: str, prefix: str) -> None:
        from kafka import KafkaConsumer

        self.prefix = prefix
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=200,
            metadata_max_age_ms=1000,
        )
        self.consumer.subscribe([prefix + t for t in self.KEYS])
        self.latest: dict[str, dict[str, dict]] = {t: {} for t in self.KEYS}
        self.all: dict[str, list[dict]] = {t: [] for t in self.KEYS}

    def poll(self) -> None:
        for _ in range(20):
            got = self.consumer.poll(timeout_ms=200, max_records=5000)
            if not got:
                return
            for tp, msgs in got.items():
                t = tp.topic[len(self.prefix) :]
                for m in msgs:
                    ev = wire.decode(m.value)
                    self.all[t].append(ev)
                    self.latest[t][ev[self.KEYS[t]]] = ev

    def wait(
        self,
        pred: Callable[[Collector], bool],
        timeout: float = WAIT_S,
        describe: Callable[[Collector], str] | None = None,
    ) -> None:
        """Poll until ``pred`` holds (returns at once then); fail after ``timeout`` s.

        Generous bound on purpose: on a loaded 2-core box a worker start, a rebalance
        and a changelog recovery each take tens of seconds; on a quiet one the wait
        returns in a few."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.poll()
            if pred(self):
                return
            time.sleep(0.3)
        extra = f": {describe(self)}" if describe is not None else ""
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for the worker{extra}")

    def close(self) -> None:
        self.consumer.close()


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        full = {**os.environ, **WORKER_ENV, **env}
        self.log = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [KNEELOAD, "worker", "-l", "warn"],
            env=full,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


def ensure_topics(env: dict[str, str]) -> None:
    full = {**os.environ, **WORKER_ENV, **env}
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from kneeload.settings import get_settings;"
            "from kneeload.worker.app import ensure_topics; ensure_topics(get_settings())",
        ],
        env=full,
        check=True,
    )
