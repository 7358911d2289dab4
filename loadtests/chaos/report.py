"""The chaos run's results: ``loadtests/results/chaos.json`` and ``chaos.md``, and the
one-line verdict ``faults=N lost=L duplicated=D different=X max_recovery_s=S``."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .compare import TableDiff
from .workload import RunResult, WorkloadSize

__all__ = ["Report", "write_report"]


def _commit() -> str:
    """The checkout's commit (``KNEELOAD_CHAOS_COMMIT`` names it for a copy without .git)."""
    if os.environ.get("KNEELOAD_CHAOS_COMMIT"):
        return os.environ["KNEELOAD_CHAOS_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


@dataclass
class Report:
    seed: int
    size: WorkloadSize
    started_at: dt.datetime
    seconds: float
    calm: RunResult
    storm: RunResult
    tables: list[TableDiff]
    skipped: dict[str, str]
    notifications: dict[str, Any]
    commit: str = field(default_factory=_commit)

    @property
    def lost(self) -> int:
        return sum(t.lost for t in self.tables)

    @property
    def duplicated(self) -> int:
        return sum(t.duplicated for t in self.tables)

    @property
    def different(self) -> int:
        return sum(t.different for t in self.tables)

    @property
    def faults_injected(self) -> int:
        return sum(1 for f in self.storm.faults if f.injected_at_s is not None)

    @property
    def survived(self) -> int:
        return sum(1 for f in self.storm.faults if f.survived)

    @property
    def max_recovery_s(self) -> float | None:
        r = [f.recovery_s for f in self.storm.faults if f.recovery_s is not None]
        return max(r) if r else None

    @property
    def passed(self) -> bool:
        return (
            self.calm.error is None
            and self.storm.error is None
            and self.calm.drained
            and self.storm.drained
            and self.faults_injected == len(self.storm.faults)
            and self.survived == len(self.storm.faults)
            and self.lost == self.duplicated == self.different == 0
            and self.notifications["sent_twice"] == 0
            and self.notifications["never_sent"] == 0
            and self.notifications["unexpected"] == 0
        )

    def last_line(self) -> str:
        mr = self.max_recovery_s
        return (
            f"faults={self.faults_injected} lost={self.lost} duplicated={self.duplicated} "
            f"different={self.different} max_recovery_s={'none' if mr is None else f'{mr:.1f}'}"
        )

    def summary_lines(self) -> list[str]:
        n = self.notifications
        lines = [
            f"undisturbed run: {self.calm.seconds:.0f} s"
            + (f", FAILED: {self.calm.error}" if self.calm.error else ""),
            f"faulted run: {self.storm.seconds:.0f} s, {self.survived}/{len(self.storm.faults)} "
            f"faults survived, {len(self.storm.unexpected_exits)} unexpected service exits"
            + (f", FAILED: {self.storm.error}" if self.storm.error else ""),
            f"notifications: {n['distinct_undisturbed']} undisturbed, {n['distinct_faults']} "
            f"faulted; sent twice {n['sent_twice']}, never {n['never_sent']}, "
            f"unexpected {n['unexpected']}",
        ]
        for t in self.tables:
            if t.lost or t.duplicated or t.different:
                lines.append(
                    f"  {t.table}: lost {t.lost}, duplicated {t.duplicated}, different "
                    f"{t.different} ({t.rows_a} vs {t.rows_b} rows)"
                )
                lines += [f"    {e[:300]}" for e in t.examples[:4]]
        return lines

    def as_dict(self) -> dict[str, Any]:
        def run(r: RunResult) -> dict[str, Any]:
            return {
                "seconds": round(r.seconds, 1),
                "error": r.error,
                "drained": r.drained,
                "final_state": r.final_state,
                "counters": r.counters,
                "unexpected_exits": [asdict(e) for e in r.unexpected_exits],
                "commit_stalls": r.commit_stalls,
                "notifications_received": len(r.inbox),
            }

        return {
            "verdict": self.last_line(),
            "passed": self.passed,
            "seed": self.seed,
            "workload": asdict(self.size),
            "started_at": self.started_at.isoformat(),
            "seconds": round(self.seconds, 1),
            "commit": self.commit,
            "machine": {
                "host": platform.node(),
                "cpus": os.cpu_count(),
                "load_average_1m": os.getloadavg()[0],
            },
            "faults": [f.as_dict() for f in self.storm.faults],
            "undisturbed": run(self.calm),
            "faulted": run(self.storm),
            "tables": [t.as_dict() for t in self.tables],
            "skipped_tables": self.skipped,
            "notifications": self.notifications,
        }

    def markdown(self) -> str:
        d = self.as_dict()
        mr = self.max_recovery_s
        c = self.calm.counters
        out = [
            "# kneeload chaos run",
            "",
            f"Run at {d['started_at']} on {d['machine']['host']} ({d['machine']['cpus']} cores, "
            f"load {d['machine']['load_average_1m']:.1f} at the end) — commit {self.commit}, "
            f"seed {self.seed}, {self.seconds / 60:.1f} min in all.",
            "",
            f"**`{self.last_line()}`** — "
            + ("every fault survived, the two databases are equal." if self.passed else "FAILED."),
            "",
            f"Workload ({self.size.athletes} runners, {self.size.units} LEVER units, "
            f"{self.size.weeks} weeks of event time): {c.get('watch_accepted', 0):,} watch "
            f"samples over HTTP, {c.get('mqtt_published', 0):,} LEVER messages over MQTT, "
            f"{c.get('pain_accepted', 0)} pain reports, a FIT upload of "
            f"{c.get('fit_accepted', 0):,} samples, a batch with malformed records. Undisturbed "
            f"run {self.calm.seconds:.0f} s, faulted run {self.storm.seconds:.0f} s. Device "
            f"retries in the faulted run: {self.storm.counters.get('retries', {})}.",
            "",
            "## Faults",
            "",
            "| # | fault | at workload step | outage s | recovery s | survived |",
            "|---|---|---|---|---|---|",
        ]
        for i, f in enumerate(self.storm.faults, 1):
            out.append(
                f"| {i} | {f.kind} | {f.step_label or f.step} | "
                f"{'—' if f.outage_s is None else f'{f.outage_s:.1f}'} | "
                f"{'—' if f.recovery_s is None else f'{f.recovery_s:.1f}'} | "
                f"{'yes' if f.survived else 'NO ' + f.note} |"
            )
        rec = sorted(f.recovery_s for f in self.storm.faults if f.recovery_s is not None)
        if rec:
            out += [
                "",
                f"Recovery (end of the fault → every service up, every consumer group caught up, "
                f"MQTT forwarded, no notification pending): median {rec[len(rec) // 2]:.1f} s, "
                f"longest {mr:.1f} s.",
            ]
        ex = self.storm.unexpected_exits
        out += ["", f"Unexpected service exits (restarted by the supervisor): {len(ex)}."]
        for e in ex[:10]:
            why = " — the stall watchdog (kneeload.worker.watchdog)" if e.status == 75 else ""
            out.append(f"- {e.service} at +{e.at_s:.0f} s (status {e.status}{why})")
        for run in (self.calm, self.storm):
            if run.commit_stalls:
                out.append(
                    f"\nCommitted offsets behind the end after the {run.name} run drained "
                    f"(group → topic:partition (committed, end)): {run.commit_stalls}"
                )
        out += [
            "",
            "## Tables (undisturbed vs faulted)",
            "",
            "| table | rows | lost | duplicated | different |",
            "|---|---|---|---|---|",
        ]
        for t in self.tables:
            out.append(
                f"| {t.table} | {t.rows_a:,} / {t.rows_b:,} | {t.lost} | {t.duplicated} | "
                f"{t.different} |"
            )
        bad = [t for t in self.tables if t.examples]
        if bad:
            out += ["", "Examples:", ""]
            for t in bad:
                out += [f"- `{t.table}`: {e[:400]}" for e in t.examples[:5]]
        n = self.notifications
        out += [
            "",
            "## Notifications (webhook receiver, per channel and alert id)",
            "",
            f"Undisturbed {n['distinct_undisturbed']} distinct "
            f"({n['received_undisturbed']} received), faulted {n['distinct_faults']} distinct "
            f"({n['received_faults']} received): sent twice {n['sent_twice']}, never sent "
            f"{n['never_sent']}, unexpected {n['unexpected']}.",
            "",
            "## Not compared",
            "",
        ]
        out += [f"- `{t}`: {why}" for t, why in self.skipped.items()]
        out.append(
            "- columns saying when or how often (received_at, updated_at, revision, attempts, "
            "…): `loadtests/chaos/compare.py` IGNORED_COLUMNS"
        )
        return "\n".join(out) + "\n"


def write_report(r: Report, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "chaos.json").write_bytes(orjson.dumps(r.as_dict(), option=orjson.OPT_INDENT_2))
    (out_dir / "chaos.md").write_text(r.markdown())
