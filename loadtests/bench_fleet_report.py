"""Benchmark: ``kneeload fleet report`` on 100 LEVER units × 90 days, beside a plain polars read
of the same rows in the same run.

Run: .venv/bin/python loadtests/bench_fleet_report.py [--units N] [--days D] [--runs R] [--quick]

Seeds the tables the report reads straight with SQL (loadtests/seed_fleet.sql: unit status
every 5 minutes, six sessions a unit-day with per-minute load, next-morning pain, pain
flares, calibration with one drifting unit), then, R times each (medians reported):

* ``plain_polars_read_s`` — the baseline: the report's queries, each in one piece, read
  with ``pl.read_database`` on a psycopg connection (what polars does without ADBC);
* ``adbc_read_s`` — the report's own read (:func:`kneeload.fleet.frames.read_fleet`: ADBC,
  week-long slices for the progress bar), nothing computed;
* ``fleet_report_s`` — the whole report: read, minutes per state and outcomes from the
  core, six charts, HTML and the CSV/Parquet exports.

The raw 1 Hz treadmill telemetry is not among the rows: the report reads what the worker
derived from it (unit status with the day's calibration, sessions, per-minute load). Last
line: JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import psycopg

from kneeload.core.outcomes import OutcomeConfig
from kneeload.fleet import frames
from kneeload.fleet.report import load, write
from kneeload.fleet.utilisation_io import clinic_hours
from kneeload.settings import get_settings
from kneeload.storage import migrate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_raw as br

SEED = (Path(__file__).with_name("seed_fleet.sql")).read_text()
END = dt.date(2026, 9, 1)  # the seeded period ends the day before


def plain_queries(first: dt.date, last: dt.date) -> list[str]:
    """The report's queries over the whole period, each in one piece."""
    t0 = dt.datetime.combine(first, dt.time(), dt.UTC) - dt.timedelta(hours=14)
    t1 = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC) + dt.timedelta(
        hours=12
    )
    out = []
    for s in frames.sources(None, t0, t1, t1 + dt.timedelta(hours=36)):
        bound = frames._bound(s, t0, t1, True) if s.time_column else frames.sql.SQL("true")
        out.append(s.query(bound).as_string(None))
    return out


def plain_read(url: str, queries: list[str]) -> int:
    rows = 0
    with psycopg.connect(url) as conn:
        for q in queries:
            rows += pl.read_database(q, conn).height
    return rows


def timed(fn: Any, runs: int) -> tuple[float, Any]:
    ts = []
    out = None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--status-min", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="20 units × 30 days, one run")
    args = ap.parse_args()
    if args.quick:
        args.units, args.days, args.runs = 20, 30, 1
    s = get_settings()
    first, last = END - dt.timedelta(days=args.days), END - dt.timedelta(days=1)
    hours = clinic_hours(s.fleet_opening_hours, s.fleet_timezone, s.fleet_clinic_opening_hours)
    cfg = OutcomeConfig(min_n=s.fleet_outcome_min_n)
    end = dt.datetime.combine(END, dt.time(), dt.UTC)
    params = {"units": args.units, "days": args.days, "end": end, "status_min": args.status_min}
    with br.bench_database(s.database_url, "fleet") as url:
        migrate(url, s)
        t = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as c:
            for stmt in (x.strip() for x in SEED.split(";\n")):
                if stmt:
                    c.execute(stmt, params)
            counts = {
                tbl: c.execute(f"SELECT count(*) FROM kneeload.{tbl}").fetchone()[0]  # type: ignore[index]
                for tbl in ("unit_status", "sessions", "minute_load", "pain_responses", "alerts")
            }
        seed_s = time.perf_counter() - t
        print(f"seeded in {seed_s:.1f}s: {counts}", flush=True)
        queries = plain_queries(first, last)
        plain_read(url, queries)  # warm-up: the same cache state for all three
        plain_s, plain_rows = timed(lambda: plain_read(url, queries), args.runs)
        print(f"plain polars read: {plain_s:.2f} s, {plain_rows} rows", flush=True)
        read_s, f = timed(lambda: frames.read_fleet(url, None, first, last), args.runs)
        adbc_rows = sum(f.rows.values())
        print(f"ADBC read (report's): {read_s:.2f} s, {adbc_rows} rows", flush=True)
        with tempfile.TemporaryDirectory(prefix="kneeload-fleet-bench-") as out:

            def report() -> Any:
                r = load(url, None, first, last, hours, cfg, now=dt.datetime.now(dt.UTC))
                write(r, Path(out))
                return r

            report_s, r = timed(report, args.runs)
            size = (Path(out) / "fleet-report.html").stat().st_size
        print(f"fleet report: {report_s:.2f} s ({r.units.height} units)", flush=True)
    print(
        orjson.dumps(
            {
                "bench": "fleet_report",
                "units": args.units,
                "days": args.days,
                "runs": args.runs,
                "status_every_min": args.status_min,
                "seed_s": round(seed_s, 1),
                "rows": counts,
                "rows_read": adbc_rows,
                "plain_rows_read": plain_rows,
                "fleet_report_s": round(report_s, 2),
                "adbc_read_s": round(read_s, 2),
                "plain_polars_read_s": round(plain_s, 2),
                "report_to_plain_read": round(report_s / plain_s, 2),
                "adbc_read_to_plain_read": round(read_s / plain_s, 2),
                "report_html_bytes": size,
                "unit_days": r.utilisation.height,
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
