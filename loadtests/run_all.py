"""``make bench``: run every kneeload benchmark, each isolated, and write one table.

Run: .venv/bin/python loadtests/run_all.py [--quick] [--only NAME ...] [--skip NAME ...]

Each component benchmark runs as its own subprocess with a fresh database
(``kneeload_bench_<run>_<name>``, created before and dropped after by this runner) and a
unique topic prefix (``bench-<run>-<name>.``, topics and consumer groups deleted after),
exported as KNEELOAD_DATABASE_URL / KNEELOAD_TOPIC_PREFIX with KNEELOAD_BENCH_ISOLATED=1, so a
bench never touches the demo's data or another bench's. Each bench prints a final JSON
line; the runner keeps it whole in ``loadtests/results/latest.json`` and writes
``loadtests/results/latest.md``: every headline figure beside the baseline its bench
measured in the same run, the ratio, the target and pass/miss. A bench that fails (non-zero
exit, no JSON line, an ``error`` key, a timeout, a missing file) is a FAILED row with its
error — never dropped. The very last line printed is issue #20's figures, each from its component
(:func:`headline_figures`), when the end-to-end bench ran:

    end_to_end_samples_per_s=N ratio_to_raw=R platform_cpu_us_per_sample=C
    kafka_bytes_per_sample=K stored_bytes_per_sample_plain=S steady_10k_derived_p99_ms=P
    steady_10k_accepted_samples_per_s=A p99_alert_latency_ms=L state_bytes_per_athlete=B
    restore_1000_athletes_s=T

(one line; a figure whose component did not run, or whose phase was skipped, is ``none``).
Exit status: 0 when every bench ran (targets missed are reported, not failures), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import baseline_raw as br  # noqa: E402

RESULTS = HERE / "results"


# --------------------------------------------------------------------------- what to report


def get(d: Any, path: str) -> Any:
    """``a.b.c`` lookup in nested dicts; None when absent."""
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def first(d: Any, paths: tuple[str, ...]) -> tuple[str | None, Any]:
    for p in paths:
        v = get(d, p)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return p, v
    return None, None


@dataclass(frozen=True)
class Figure:
    """One row of the table: a measured value, its same-run baseline and the target.

    ``value``/``baseline`` list candidate JSON keys (dotted paths), the first present wins —
    the component benches are written by different people."""

    label: str
    value: tuple[str, ...]
    baseline: tuple[str, ...] = ()
    baseline_label: str = ""
    unit: str = ""
    target: float | None = None
    higher_is_better: bool = True
    ratio_target: float | None = None  # a target on value/baseline instead of the value


@dataclass
class Component:
    name: str
    script: str
    what: str
    figures: tuple[Figure, ...]
    quick_args: tuple[str, ...] = ("--quick",)
    timeout_s: float = 1800
    result: dict[str, Any] | None = None
    status: str = "not run"
    error: str | None = None
    seconds: float = 0.0
    extra_args: list[str] = field(default_factory=list)


SAMPLES_S = "samples/s"
COMPONENTS: tuple[Component, ...] = (
    Component(
        "ingest",
        "bench_ingest.py",
        "HTTP gateway, 100-sample batches → Kafka (acks=all)",
        (
            Figure(
                "ingest samples/s",
                (
                    "samples_per_s",
                    "gateway_samples_per_s",
                    "ingest_samples_per_s",
                    "http.samples_per_s",
                    "gateway.samples_per_s",
                ),
                (
                    "baseline_samples_per_s",
                    "bare_producer_samples_per_s",
                    "baseline_producer_samples_per_s",
                    "baseline.samples_per_s",
                    "bare_producer.samples_per_s",
                    "raw_producer_samples_per_s",
                ),
                "bare aiokafka producer, same records",
                SAMPLES_S,
                20_000,
            ),
            Figure(
                "request latency p50",
                ("p50_ms", "latency_p50_ms", "request_p50_ms", "http.p50_ms"),
                unit="ms",
                higher_is_better=False,
            ),
            Figure(
                "request latency p99",
                ("p99_ms", "latency_p99_ms", "request_p99_ms", "http.p99_ms"),
                unit="ms",
                higher_is_better=False,
            ),
        ),
    ),
    Component(
        "worker",
        "bench_worker.py",
        "one Faust worker: watch.samples → derived topics",
        (
            Figure(
                "worker samples/s",
                ("samples_per_s", "worker_samples_per_s", "worker.samples_per_s"),
                (
                    "baseline_samples_per_s",
                    "bare_samples_per_s",
                    "baseline.samples_per_s",
                    "bare_loop_samples_per_s",
                    "bare.samples_per_s",
                ),
                "bare aiokafka consume–decode–produce loop",
                SAMPLES_S,
                20_000,
            ),
            Figure(
                "worker CPU µs/sample",
                ("cpu_us_per_sample", "worker_cpu_us_per_sample", "worker.cpu_us_per_sample"),
                (
                    "baseline_cpu_us_per_sample",
                    "bare_cpu_us_per_sample",
                    "baseline.cpu_us_per_sample",
                    "bare.cpu_us_per_sample",
                ),
                "bare loop",
                "µs",
                higher_is_better=False,
            ),
        ),
        quick_args=("--samples", "30000", "--runs", "1"),
    ),
    Component(
        "sink",
        "bench_sink.py",
        "`kneeload sink`: raw samples Kafka → PostgreSQL (COPY), plain then TimescaleDB",
        (
            Figure(
                "sink samples/s",
                (
                    "samples_per_s",
                    "sink_samples_per_s",
                    "sink_rows_per_s",
                    "rows_per_s",
                    "sink.samples_per_s",
                    "sink.rows_per_s",
                ),
                (
                    "baseline_samples_per_s",
                    "bare_copy_samples_per_s",
                    "bare_copy_rows_per_s",
                    "baseline_rows_per_s",
                    "baseline.rows_per_s",
                    "bare_copy.rows_per_s",
                ),
                "bare COPY of the same rows",
                SAMPLES_S,
                100_000,
            ),
            Figure(
                "sink writer alone (no Kafka) samples/s",
                ("writer_samples_per_s",),
                ("bare_copy_samples_per_s",),
                "bare COPY of the same rows",
                SAMPLES_S,
            ),
            Figure(
                "sink samples/s on TimescaleDB (own cluster, same Kafka)",
                ("timescale_sink_samples_per_s",),
                ("timescale_bare_copy_samples_per_s",),
                "bare COPY of the same rows into the hypertable",
                SAMPLES_S,
                100_000,
            ),
        ),
        extra_args=["--flavour", "both"],
    ),
    Component(
        "views",
        "bench_views.py",
        "dashboard views on 1,000 athletes × 90 days, plain PostgreSQL then TimescaleDB (own "
        "cluster; raw chunks > 7 days compressed) in one run",
        (
            Figure(
                "worst view p95 on plain PostgreSQL",
                ("worst_p95_ms", "max_p95_ms", "p95_ms_max", "views_max_p95_ms"),
                ("baseline_p95_ms", "baseline_worst_p95_ms", "bare_p95_ms"),
                "baseline query",
                "ms",
                200,
                higher_is_better=False,
            ),
            Figure(
                "worst view p95 on TimescaleDB",
                ("timescale_worst_p95_ms",),
                ("timescale_baseline_p95_ms",),
                "baseline query on the same server",
                "ms",
                200,
                higher_is_better=False,
            ),
        ),
        quick_args=("--athletes", "100", "--days", "30", "--runs", "3"),
        extra_args=["--flavour", "both"],
    ),
    Component(
        "storage",
        "bench_storage.py",
        "the same simulated samples on plain PostgreSQL and on TimescaleDB (own cluster)",
        (
            Figure(
                "TimescaleDB bytes per sample, compressed",
                ("timescale_bytes_per_sample_compressed",),
                ("plain_bytes_per_sample",),
                "plain partitions, same samples",
                "B",
                40,  # issue #19
                higher_is_better=False,
            ),
            Figure(
                "writer samples/s on TimescaleDB",
                ("timescale_writer_samples_per_s",),
                ("plain_writer_samples_per_s",),
                "the same writer on plain partitions",
                SAMPLES_S,
            ),
            Figure(
                "TimescaleDB bytes per sample, uncompressed",
                ("timescale_bytes_per_sample_uncompressed",),
                ("plain_bytes_per_sample",),
                "plain partitions, same samples",
                "B",
                higher_is_better=False,
            ),
            Figure(
                "pain reports bulk insert rows/s on TimescaleDB (triggers on)",
                ("timescale_pain_bulk_rows_per_s",),
                ("timescale_pain_bulk_baseline_rows_per_s",),
                "the same insert with triggers off",
                "rows/s",
            ),
            Figure(
                "pain reports bulk insert rows/s on plain (triggers on)",
                ("plain_pain_bulk_rows_per_s",),
                ("plain_pain_bulk_baseline_rows_per_s",),
                "the same insert with triggers off",
                "rows/s",
            ),
            Figure(
                "continuous aggregate refresh of a 1,000-athlete team-day (unit telemetry)",
                ("cagg_refresh_day_s",),
                ("baseline_group_by_day_s",),
                "the same GROUP BY over the same rows",
                "s",
                higher_is_better=False,
            ),
        ),
        timeout_s=1800,
    ),
    Component(
        "sample_load",
        "bench_sample_load.py",
        "per-sample estimates: one row per batch (0023) vs one row per sample (before)",
        (
            Figure(
                "derived bytes per sample (table + indexes + TOAST)",
                ("bytes_per_sample_after",),
                ("bytes_per_sample_before",),
                "one row per sample, same samples",
                "B",
                higher_is_better=False,
            ),
            Figure(
                "derived samples/s written",
                ("samples_per_s_after",),
                ("samples_per_s_before",),
                "one row per sample (COPY CSV)",
                SAMPLES_S,
            ),
            Figure(
                "live team table, latest sample per athlete",
                ("live_team_after_ms",),
                ("live_team_before_ms",),
                "one row per sample",
                "ms",
                higher_is_better=False,
            ),
            Figure(
                "one athlete's per-sample series by minute",
                ("series_after_ms",),
                ("series_before_ms",),
                "one row per sample",
                "ms",
                higher_is_better=False,
            ),
        ),
        quick_args=("--athletes", "8", "--days", "2", "--repeats", "1"),
        timeout_s=900,
    ),
    Component(
        "acwr",
        "bench_acwr.py",
        "batch ACWR 10,000 athletes × 365 days; scalar PFJ",
        (
            Figure(
                "ACWR all methods (CSV in/out)",
                ("acwr_all_methods_csv_s",),
                ("baseline_read_write_csv_s",),
                "polars read+write of the same CSV",
                "s",
                higher_is_better=False,
            ),
            Figure(
                "`kneeload acwr --method all` command (new process)",
                ("cli_all_methods_csv_s",),
                ("baseline_process_read_write_csv_s",),
                "new process: import polars, read+write the same CSV",
                "s",
                5,  # issue #3: 10,000 athletes x 365 days "in a few seconds"
                higher_is_better=False,
            ),
            Figure(
                "PFJ per sample",
                ("pfj_sample_us",),
                ("baseline_trivial_call_us",),
                "trivial call",
                "µs",
                higher_is_better=False,
            ),
        ),
        quick_args=("--athletes", "1000", "--runs", "3"),
    ),
    Component(
        "startup",
        "bench_startup.py",
        "a `kneeload` command started as a new process (lazy imports)",
        (
            Figure(
                "`kneeload --help` start",
                ("help_s",),
                ("baseline_bare_python_s",),
                "bare `python -c pass`",
                "s",
                higher_is_better=False,
            ),
            Figure(
                "`kneeload --help` over a bare interpreter",
                ("help_overhead_s",),
                unit="s",
                target=0.3,  # issue #20
                higher_is_better=False,
            ),
            *(
                Figure(
                    f"`kneeload {what}` over a bare interpreter",
                    (f"{key}_overhead_s",),
                    unit="s",
                    target=0.3,  # issue #20
                    higher_is_better=False,
                )
                for key, what in (
                    ("stack_help", "stack --help"),
                    ("ceiling_help", "ceiling --help"),
                    ("fleet_help", "fleet --help"),
                    ("pfj", "pfj"),
                    ("settings", "settings"),
                    ("stack_status", "stack status"),
                )
            ),
        ),
        quick_args=("--runs", "5"),
        timeout_s=600,
    ),
    Component(
        "fleet_report",
        "bench_fleet_report.py",
        "`kneeload fleet report` on 100 LEVER units × 90 days (read, figures, charts, exports)",
        (
            Figure(
                "fleet report (100 units × 90 days; --quick 20 × 30)",
                ("fleet_report_s",),
                ("plain_polars_read_s",),
                "plain pl.read_database (psycopg) of the same rows",
                "s",
                higher_is_better=False,
            ),
            Figure(
                "the report's ADBC read alone",
                ("adbc_read_s",),
                ("plain_polars_read_s",),
                "plain pl.read_database (psycopg) of the same rows",
                "s",
                higher_is_better=False,
            ),
        ),
        timeout_s=1800,
    ),
    Component(
        "state",
        "bench_state.py",
        "the worker's per-athlete state: bytes stored, and a restart restoring 1,000 athletes",
        (
            Figure(
                "per-athlete worker state (30 days, 45 min/day; hot/cold records)",
                ("state_split_bytes_per_athlete", "state_bytes_per_athlete"),
                ("state_json_bytes_per_athlete",),
                "the same state as JSON (older workers' format)",
                "B",
                higher_is_better=False,
            ),
            Figure(
                "per-athlete chunk store (raw samples of the sessions kept)",
                ("chunk_bytes_per_athlete",),
                ("chunk_json_bytes_per_athlete",),
                "the same rows as JSON (older workers' format)",
                "B",
                higher_is_better=False,
            ),
            Figure(
                "worker restart with the athletes' states and chunks",
                ("worker_start_with_state_s",),
                ("baseline_worker_start_empty_s",),
                "worker start over empty changelogs",
                "s",
                higher_is_better=False,
            ),
            Figure(
                "restore time (states and chunks)",
                ("restore_s",),
                unit="s",
                target=10.0,  # issue #20, for 1,000 athletes
                higher_is_better=False,
            ),
            Figure(  # the layout before the packing: a same-run reference, not a target
                "restore time (chunks one record per batch: before the packing)",
                ("restore_chunks_per_batch_s",),
                unit="s",
                higher_is_better=False,
            ),
            Figure(
                "athletes changelog bytes per sample, an athlete with 30 days of history "
                "streaming 10-sample batches (hot/cold split: the changed records per take)",
                ("streaming_state_changelog_bytes_per_sample_batch10",),
                ("streaming_whole_state_changelog_bytes_per_sample_batch10",),
                "the whole state once per take (the layout before), same run",
                unit="B",
                target=200.0,  # issue #20's Kafka bytes per sample (all topics)
                higher_is_better=False,
            ),
            Figure(
                "restore time (states alone)",
                ("restore_states_only_s",),
                unit="s",
                target=10.0,
                higher_is_better=False,
            ),
        ),
        quick_args=("--athletes", "100", "--runs", "1"),
        timeout_s=3600,
    ),
    Component(
        "import",
        "bench_import.py",
        "`kneeload import` of 1,000 FIT files (300 records each) → Kafka",
        (
            Figure(
                "import 1,000 FIT files",
                ("import_s",),
                ("baseline_fitdecode_read_s",),
                "plain fitdecode read of the same files, one process",
                "s",
                higher_is_better=False,
            ),
            Figure("import samples/s", ("import_samples_per_s",), unit=SAMPLES_S),
        ),
        quick_args=("--files", "100"),
        timeout_s=3600,
    ),
    Component(
        "e2e",
        "bench_e2e.py",
        "HTTP → Kafka → worker → sink → PostgreSQL (real services)",
        (
            Figure(
                "end-to-end samples/s (raw + derived rows)",
                ("end_to_end_samples_per_s",),
                ("raw_samples_per_s",),
                "raw pipeline: bare produce → consume → COPY",
                SAMPLES_S,
                60_000,  # issue #20
                ratio_target=0.4,
            ),
            Figure(
                "platform CPU µs/sample (ingest + worker + sink + Kafka + PostgreSQL)",
                ("throughput.platform_cpu_us_per_sample",),
                ("raw_cpu_us_per_sample",),
                "raw pipeline's two client processes (broker and database not included)",
                "µs",
                25,  # issue #20
                higher_is_better=False,
            ),
            Figure(
                "Kafka bytes / sample, all platform topics",
                ("kafka_bytes_per_sample_total",),
                ("message_bytes_per_sample",),
                "the raw pipeline's JSON watch message alone",
                "B",
                200,
                higher_is_better=False,
            ),
            Figure(
                "sample → derived row p50 (saturated)",
                ("throughput.sample_to_derived_row.p50_ms",),
                unit="ms",
                higher_is_better=False,
            ),
            Figure(
                "sample → derived row p99 (saturated)",
                ("throughput.sample_to_derived_row.p99_ms",),
                unit="ms",
                higher_is_better=False,
            ),
            Figure(
                "sample → derived row p50 (steady 10,000/s)",
                ("steady_sample_to_derived_row_p50_ms",),
                ("bare_hop_p50_ms",),
                "bare 2-hop Kafka relay",
                "ms",
                higher_is_better=False,
            ),
            Figure(
                "sample → derived row p99 (steady 10,000/s)",
                ("steady_sample_to_derived_row_p99_ms",),
                ("bare_hop_p99_ms",),
                "bare 2-hop Kafka relay",
                "ms",
                500,  # issue #20
                higher_is_better=False,
            ),
            Figure(
                "sample → load.samples event p99 (steady 10,000/s; the worker's part of the above)",
                ("steady_sample_to_derived_event_p99_ms",),
                ("bare_hop_p99_ms",),
                "bare 2-hop Kafka relay",
                "ms",
                higher_is_better=False,
            ),
            Figure(
                "gateway accepted during the steady 10,000/s phase",
                ("steady_http_accepted_samples_per_s",),
                unit=SAMPLES_S,
                target=9_500,  # the phase's rate held (95 %): else quote the achieved rate
            ),
            Figure(
                "sample → derived row p99 (steady 2,000/s)",
                ("alerts.sample_to_derived_row_steady.p99_ms",),
                ("bare_hop_p99_ms",),
                "bare 2-hop Kafka relay",
                "ms",
                higher_is_better=False,
            ),
            Figure(
                "pain report → alert event p50",
                ("alerts.report_to_alert_event.p50_ms",),
                ("bare_hop_p50_ms",),
                "bare 2-hop Kafka relay",
                "ms",
                higher_is_better=False,
            ),
            Figure(
                "pain report → alert p99 (event / row, worst)",
                ("p99_alert_latency_ms",),
                ("bare_hop_p99_ms",),
                "bare 2-hop Kafka relay",
                "ms",
                1000,
                higher_is_better=False,
            ),
            Figure(
                "pain report → alert row p99",
                ("p99_alert_latency_row_ms",),
                unit="ms",
                higher_is_better=False,
            ),
        ),
        timeout_s=2400,
    ),
    Component(
        "live_spike",
        "bench_live_spike.py",
        "live session-spike warning: the batch carrying the crossing sample → alert "
        "(worker, sink, notify, real webhook), 60 athletes streaming 10-sample batches",
        (
            Figure(
                "crossing sample → notification p99",
                ("crossing_to_notification.p99_ms",),
                ("bare_hop_p99_ms",),
                "bare 2-hop Kafka relay",
                "ms",
                1000,  # issue #14
                higher_is_better=False,
            ),
            Figure(
                "crossing sample → alert row p99",
                ("crossing_to_alert_row.p99_ms",),
                ("bare_hop_p99_ms",),
                "bare 2-hop Kafka relay",
                "ms",
                1000,  # issue #14
                higher_is_better=False,
            ),
            Figure(
                "crossing sample → alert event p50",
                ("crossing_to_alert_event.p50_ms",),
                ("bare_hop_p50_ms",),
                "bare 2-hop Kafka relay",
                "ms",
                higher_is_better=False,
            ),
        ),
        timeout_s=900,
    ),
)


# --------------------------------------------------------------------------- running


def supports(script: Path, flag: str) -> bool:
    try:
        r = subprocess.run(
            [sys.executable, str(script), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return False
    return flag in r.stdout


def run_component(c: Component, run_id: str, quick: bool, echo: Callable[[str], None]) -> None:
    from kneeload.settings import get_settings

    script = HERE / c.script
    if not script.exists():
        c.status, c.error = "FAILED", f"loadtests/{c.script} does not exist (not written yet)"
        return
    base = get_settings()
    db_name = f"kneeload_bench_{run_id}_{c.name}"
    prefix = f"bench-{run_id}-{c.name}."
    args = [sys.executable, "-u", str(script), *c.extra_args]
    if quick:
        if c.quick_args == ("--quick",):
            if supports(script, "--quick"):
                args.append("--quick")
        else:
            args.extend(c.quick_args)
    t0 = time.time()
    try:
        url = br.create_database(base.database_url, db_name)
    except Exception as exc:
        c.status, c.error = "FAILED", f"could not create database {db_name}: {exc}"
        return
    env = dict(
        os.environ,
        KNEELOAD_DATABASE_URL=url,
        KNEELOAD_TOPIC_PREFIX=prefix,
        KNEELOAD_BENCH_ISOLATED="1",
        PYTHONUNBUFFERED="1",
    )
    stdout_lines: list[str] = []
    stderr_tail: list[str] = []
    try:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
        )

        def pump(stream: Any, sink: list[str], keep_all: bool) -> None:
            for line in stream:
                line = line.rstrip("\n")
                sink.append(line)
                if not keep_all and len(sink) > 60:
                    del sink[:-60]
                if not (keep_all and line.startswith("{")):
                    echo(f"  [{c.name}] {line}")

        threads = [
            threading.Thread(target=pump, args=(proc.stdout, stdout_lines, True), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, stderr_tail, False), daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            proc.wait(c.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            c.status, c.error = "FAILED", f"timed out after {c.timeout_s:.0f} s"
        for t in threads:
            t.join(10)
        c.seconds = time.time() - t0
        js = None
        for line in reversed(stdout_lines):
            if line.startswith("{"):
                try:
                    js = orjson.loads(line)
                    break
                except orjson.JSONDecodeError:
                    continue
        if c.status == "FAILED":
            pass
        elif proc.returncode != 0 or js is None or (isinstance(js, dict) and js.get("error")):
            c.status = "FAILED"
            why = (js or {}).get("error") if isinstance(js, dict) else None
            tail = "\n".join(stderr_tail[-12:])
            c.error = (why or f"exit {proc.returncode}, no JSON line") + (
                f"\nstderr tail:\n{tail}" if not why and tail else ""
            )
            c.result = js if isinstance(js, dict) else None
        else:
            c.status, c.result = "ok", js
    finally:
        try:
            br.delete_topics(base.kafka_bootstrap, prefix)
        except Exception as exc:
            echo(f"  [{c.name}] topic clean-up failed: {exc}")
        try:
            br.drop_database(base.database_url, db_name)
        except Exception as exc:
            echo(f"  [{c.name}] dropping {db_name} failed: {exc}")


# --------------------------------------------------------------------------- reporting


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    if unit == SAMPLES_S or abs(v) >= 1000:
        s = f"{v:,.0f}"
    elif abs(v) >= 10:
        s = f"{v:,.1f}"
    else:
        s = f"{v:.3g}"
    return f"{s} {unit}".strip()


def figure_rows(c: Component) -> list[dict[str, Any]]:
    rows = []
    for f in c.figures:
        vkey, v = first(c.result, f.value) if c.result else (None, None)
        bkey, b = first(c.result, f.baseline) if c.result and f.baseline else (None, None)
        ratio = (v / b if f.higher_is_better else b / v) if v and b else None
        verdict = "—"
        checks = []
        if f.target is not None and v is not None:
            checks.append(v >= f.target if f.higher_is_better else v < f.target)
        if f.ratio_target is not None and ratio is not None:
            checks.append(ratio >= f.ratio_target)
        if checks:
            verdict = "pass" if all(checks) else "MISS"
        target = []
        if f.target is not None:
            target.append(("≥ " if f.higher_is_better else "< ") + fmt(f.target, f.unit))
        if f.ratio_target is not None:
            target.append(f"ratio ≥ {f.ratio_target:g}")
        rows.append(
            {
                "component": c.name,
                "figure": f.label,
                "key": vkey,
                "value": v,
                "unit": f.unit,
                "baseline": b,
                "baseline_key": bkey,
                "baseline_what": f.baseline_label,
                "ratio": ratio,
                "target": " and ".join(target) or None,
                "verdict": verdict,
            }
        )
    return rows


def extra_numbers(c: Component, used: set[str]) -> dict[str, Any]:
    """Top-level numbers the table does not show (so nothing a bench measured is lost)."""
    if not c.result:
        return {}
    return {
        k: v
        for k, v in c.result.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k not in used
    }


def markdown(components: list[Component], meta: dict[str, Any]) -> str:
    out = [
        "# kneeload benchmark results",
        "",
        f"Run {meta['run_id']} at {meta['started_at']} on {meta['host']} — commit {meta['commit']}"
        + (" — QUICK sizes (not for quoting)" if meta["quick"] else ""),
        "",
        "Every figure sits beside the baseline its benchmark measured in the same run. Ratio = "
        "figure ÷ baseline for rates, baseline ÷ figure for times and latencies (1.0 = as fast as "
        "the bare baseline). The machine is shared and noisy: figures are medians where the bench "
        "repeats, single runs otherwise.",
        "",
        "| component | figure | value | same-run baseline | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in components:
        if c.status != "ok":
            err = (c.error or "").splitlines()[0][:300].replace("|", "\\|")
            out.append(f"| {c.name} | **FAILED** | — | — | — | — | **FAILED**: {err} |")
            continue
        rows = figure_rows(c)
        shown = [r for r in rows if r["value"] is not None]
        if not shown:
            out.append(
                f"| {c.name} | (no headline keys recognised; see details) | — | — | — | — | ran |"
            )
        for r in shown:
            base = (
                f"{fmt(r['baseline'], r['unit'])} ({r['baseline_what']})"
                if r["baseline"] is not None
                else "—"
            )
            ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "—"
            out.append(
                f"| {c.name} | {r['figure']} | {fmt(r['value'], r['unit'])} | {base} | {ratio} "
                f"| {r['target'] or '—'} | {r['verdict']} |"
            )
    out += ["", "## Components", ""]
    for c in components:
        out.append(
            f"- **{c.name}** (`loadtests/{c.script}`, {c.seconds:.0f} s): {c.what} — {c.status}"
        )
        if c.status != "ok" and c.error:
            out.append("  ```")
            out += ["  " + x for x in c.error.splitlines()[:25]]
            out.append("  ```")
        used = {r["key"] for r in figure_rows(c)} | {r["baseline_key"] for r in figure_rows(c)}
        extra = extra_numbers(c, used)
        if extra:
            out.append(
                "  - other numbers: " + ", ".join(f"`{k}`={fmt(v)}" for k, v in extra.items())
            )
    e2e = next((c for c in components if c.name == "e2e" and c.result), None)
    if e2e and e2e.result and "throughput" in e2e.result:
        t = e2e.result["throughput"]
        out += [
            "",
            "## End to end: where the CPU goes (throughput phase)",
            "",
            "| service | CPU s | µs CPU / sample | cores busy |",
            "|---|---|---|---|",
        ]
        for k, v in t.get("cpu_s", {}).items():
            out.append(f"| {k} | {v} | {t['cpu_us_per_sample'][k]} | {t['cpu_cores_busy'][k]} |")
        out.append("")
        out.append(
            f"HTTP accepted {fmt(t.get('http_samples_per_s'), SAMPLES_S)}; raw rows complete at "
            f"{fmt(t.get('raw_rows_samples_per_s'), SAMPLES_S)}, derived rows at "
            f"{fmt(t.get('derived_rows_samples_per_s'), SAMPLES_S)} (first request → last row)."
        )
        if e2e.result.get("table_sizes"):
            out += [
                "",
                "Table sizes after the run (pg_total_relation_size incl. partitions and indexes):",
                "",
            ]
            for k, v in e2e.result["table_sizes"].items():
                out.append(f"- {k}: {v}")
    return "\n".join(out) + "\n"


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def headline_figures(components: list[Component]) -> dict[str, float | None]:
    """Issue #20's figures, each from the component that measured it (None when that
    component did not run or failed):

    * e2e: samples/s end to end and its ratio to the raw pipeline; the platform's CPU µs per
      sample (its services + the Kafka broker + PostgreSQL, throughput phase); Kafka bytes per
      sample over every platform topic; sample → derived row p99 at the steady 10,000/s phase
      (and the rate the gateway accepted there); pain report → alert p99 (the worse of event
      and row);
    * storage + sample_load: bytes stored per sample on plain PostgreSQL, indexes included —
      ``watch_samples`` (storage's ``plain_bytes_per_sample``) plus ``sample_load_batches``
      (sample_load's ``bytes_per_sample_after``), unless storage prints the total itself
      (``plain_stored_bytes_per_sample``);
    * state: bytes of one athlete's worker state, seconds to restore 1,000 athletes.
    """
    res = {c.name: c.result for c in components if c.status == "ok" and c.result}
    e2e, storage = res.get("e2e") or {}, res.get("storage") or {}
    sample_load, state = res.get("sample_load") or {}, res.get("state") or {}
    thr = e2e.get("throughput") or {}
    platform = _num(thr.get("platform_cpu_us_per_sample"))
    if platform is None and isinstance(thr.get("cpu_us_per_sample"), dict):  # older e2e JSON
        cpu = [_num(v) for k, v in thr["cpu_us_per_sample"].items() if k != "bench_client"]
        platform = round(sum(v for v in cpu if v is not None), 1) if cpu else None
    stored = _num(storage.get("plain_stored_bytes_per_sample"))
    if stored is None:
        raw, derived = (
            _num(storage.get("plain_bytes_per_sample")),
            _num(sample_load.get("bytes_per_sample_after")),
        )
        stored = round(raw + derived, 1) if raw is not None and derived is not None else None
    return {
        "end_to_end_samples_per_s": _num(e2e.get("end_to_end_samples_per_s")),
        "ratio_to_raw": _num(e2e.get("ratio_to_raw")),
        "platform_cpu_us_per_sample": platform,
        "kafka_bytes_per_sample": _num(e2e.get("kafka_bytes_per_sample_total")),
        "stored_bytes_per_sample_plain": stored,
        "steady_10k_derived_p99_ms": _num(e2e.get("steady_sample_to_derived_row_p99_ms")),
        "steady_10k_accepted_samples_per_s": _num(e2e.get("steady_http_accepted_samples_per_s")),
        "p99_alert_latency_ms": _num(e2e.get("p99_alert_latency_ms")),
        # the stored state as the worker keeps it (hot/cold records), else the whole state
        "state_bytes_per_athlete": _num(
            state.get("state_split_bytes_per_athlete", state.get("state_bytes_per_athlete"))
        ),
        "restore_1000_athletes_s": _num(state.get("restore_s")),
    }


#: decimals of each headline figure (None: an integer)
_HEADLINE_DIGITS: dict[str, int | None] = {
    "end_to_end_samples_per_s": None,
    "ratio_to_raw": 3,
    "platform_cpu_us_per_sample": 1,
    "kafka_bytes_per_sample": 1,
    "stored_bytes_per_sample_plain": 1,
    "steady_10k_derived_p99_ms": None,
    "steady_10k_accepted_samples_per_s": None,
    "p99_alert_latency_ms": None,
    "state_bytes_per_athlete": None,
    "restore_1000_athletes_s": 2,
}


def last_line(components: list[Component]) -> str | None:
    """``key=value`` for every headline figure (``none`` when not measured in this run);
    None when the end-to-end bench did not run."""
    e2e = next((c for c in components if c.name == "e2e"), None)
    if e2e is None or e2e.status != "ok" or not e2e.result:
        return None
    out = []
    for k, v in headline_figures(components).items():
        d = _HEADLINE_DIGITS[k]
        text = "none" if v is None else (str(round(v)) if d is None else f"{v:.{d}f}")
        out.append(f"{k}={text}")
    return " ".join(out)


def git_commit() -> str:
    r = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return r.stdout.strip() or "unknown"


def render(out: Path) -> None:
    """Re-write latest.md (and the figures in latest.json) from latest.json's raw results."""
    report = orjson.loads((out / "latest.json").read_bytes())
    by_name = {c.name: c for c in COMPONENTS}
    chosen = []
    for name, r in report["components"].items():
        c = by_name[name]
        c.status, c.error, c.seconds, c.result = r["status"], r["error"], r["seconds"], r["result"]
        r["figures"] = figure_rows(c) if c.status == "ok" else []
        chosen.append(c)
    (out / "latest.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    md = markdown(chosen, report)
    (out / "latest.md").write_text(md)
    print(md)
    line = last_line(chosen)
    if line:
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="small sizes (smoke test; not for quoting)"
    )
    ap.add_argument("--only", nargs="*", default=None, help="run only these components")
    ap.add_argument("--skip", nargs="*", default=[], help="skip these components")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    ap.add_argument("--e2e-args", default="", help="extra arguments for bench_e2e.py (quoted)")
    ap.add_argument(
        "--render", action="store_true", help="only re-write latest.md from latest.json (no run)"
    )
    args = ap.parse_args()
    if args.render:
        render(args.out)
        return
    names = [c.name for c in COMPONENTS]
    for n in (args.only or []) + args.skip:
        if n not in names:
            ap.error(f"unknown component {n!r}; known: {', '.join(names)}")
    chosen = [
        c
        for c in COMPONENTS
        if (args.only is None or c.name in args.only) and c.name not in args.skip
    ]
    for c in chosen:
        if c.name == "e2e" and args.e2e_args:
            c.extra_args = args.e2e_args.split()
    run_id = uuid.uuid4().hex[:8]
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    meta = {
        "run_id": run_id,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": f"{platform.node()} ({os.cpu_count()} cores, {mem_gib:.0f} GiB)",
        "commit": git_commit(),
        "quick": args.quick,
        "python": platform.python_version(),
    }

    def echo(line: str) -> None:
        print(line, flush=True)

    for c in chosen:
        echo(f"== {c.name}: {c.what} (loadtests/{c.script})")
        run_component(c, run_id, args.quick, echo)
        echo(
            f"== {c.name}: {c.status} in {c.seconds:.0f} s"
            + (f" — {c.error.splitlines()[0]}" if c.error else "")
        )
    report = {
        **meta,
        "components": {
            c.name: {
                "script": f"loadtests/{c.script}",
                "status": c.status,
                "error": c.error,
                "seconds": round(c.seconds, 1),
                "figures": figure_rows(c) if c.status == "ok" else [],
                "result": c.result,
            }
            for c in chosen
        },
    }
    line = last_line(chosen)
    if line:
        report["headline"] = line
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    md = markdown(chosen, meta)
    (args.out / "latest.md").write_text(md)
    echo("")
    echo(md)
    echo(f"results: {args.out / 'latest.json'}, {args.out / 'latest.md'}")
    failed = [c.name for c in chosen if c.status != "ok"]
    if failed:
        echo(f"FAILED: {', '.join(failed)}")
    if line:
        echo(line)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
