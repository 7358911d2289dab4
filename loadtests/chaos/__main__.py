"""``make chaos`` — run: .venv/bin/python -m loadtests.chaos [--seed N] [--help]

Starts a private stack (Kafka, PostgreSQL, Mosquitto under ``var/chaos/`` on free loopback
ports), runs the seeded workload once undisturbed and once under faults, compares the two
databases table by table and the notifications both runs delivered, writes
``loadtests/results/chaos.json`` and ``chaos.md``, stops everything it started and prints
as its last line

    faults=N lost=L duplicated=D different=X max_recovery_s=S

Exit status 0 when every fault was survived and L = D = X = 0 (and no notification was
sent twice or never), 1 otherwise. Run it under ``flock /work/bench.lock`` on a shared
machine (``make chaos`` does); it takes 10–15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kneeload.demo.sim import build_scenario, default_end
from kneeload.settings import get_settings

from .compare import compare_databases, compare_notifications
from .faults import plan_faults
from .report import Report, write_report
from .stack import ChaosStack, default_var_dir
from .workload import WorkloadSize, run_workload

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _log(t0: float) -> Callable[[str], None]:
    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.0f} s] {msg}", flush=True)

    return log


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="make chaos",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--seed", type=int, default=16, help="seed of the workload and the fault schedule"
    )
    p.add_argument("--athletes", type=int, default=6)
    p.add_argument("--units", type=int, default=2)
    p.add_argument("--weeks", type=int, default=3)
    p.add_argument("--duration-scale", type=float, default=0.3, help="scale of each run's length")
    p.add_argument(
        "--kills-per-service", type=int, default=3, help="SIGKILLs of each of the 5 services"
    )
    p.add_argument("--rebalances", type=int, default=2, help="worker add/remove pairs")
    p.add_argument(
        "--var-dir", type=Path, default=default_var_dir(), help="the private stack's data"
    )
    p.add_argument(
        "--kafka-libs",
        type=Path,
        default=None,
        help="Apache Kafka jars (default: var/kafka/libs, `make kafka-jars`)",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="where chaos.json and chaos.md go")
    p.add_argument(
        "--keep", action="store_true", help="leave the private stack's data for inspection"
    )
    p.add_argument(
        "--no-faults",
        action="store_true",
        help="run the second run undisturbed too (checks that the workload itself is "
        "deterministic: the comparison must then find nothing)",
    )
    a = p.parse_args(argv)
    # SIGTERM (timeout, a CI runner) unwinds like Ctrl-C: services and the private stack
    # are stopped in the finally blocks
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    t0 = time.monotonic()
    log = _log(t0)
    size = WorkloadSize(a.athletes, a.units, a.weeks, a.duration_scale, a.seed)
    sc = build_scenario(size.sim_config(default_end()))
    n_steps = 3 * len(sc.days())
    faults = [] if a.no_faults else plan_faults(a.seed, n_steps, a.kills_per_service, a.rebalances)
    log(
        f"workload: {len(sc.athletes)} runners, {len(sc.units)} LEVER units, {a.weeks} weeks, "
        f"{sc.sample_count():,} samples, {sc.unit_message_count():,} MQTT messages, "
        f"{len(sc.pain)} pain reports; {len(faults)} faults over {n_steps} steps (seed {a.seed})"
    )
    shared = get_settings()
    stack = ChaosStack.create(a.var_dir, shared, kafka_libs=a.kafka_libs)
    started = dt.datetime.now(dt.UTC)
    try:
        log(
            f"private stack under {a.var_dir}: {stack.settings.kafka_bootstrap}, "
            f"{stack.settings.database_url}, {stack.settings.mqtt_url}"
        )
        stack.start()
        calm = asyncio.run(run_workload("undisturbed", stack, sc, log=log))
        storm = asyncio.run(run_workload("faults", stack, sc, faults=faults, log=log))
        tables, skipped = compare_databases(calm.database_url, storm.database_url)
        notes = compare_notifications(calm.inbox, storm.inbox)
    finally:
        stack.stop()
        if not a.keep:
            import shutil

            shutil.rmtree(a.var_dir / "kafka" / "data", ignore_errors=True)
            shutil.rmtree(a.var_dir / "pg" / "data", ignore_errors=True)
    report = Report(
        seed=a.seed,
        size=size,
        started_at=started,
        seconds=time.monotonic() - t0,
        calm=calm,
        storm=storm,
        tables=tables,
        skipped=skipped,
        notifications=notes,
    )
    write_report(report, a.out)
    for line in report.summary_lines():
        print(line)
    print(report.last_line())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
