"""Benchmark: batch ACWR (10,000 athletes × 365 days) and the scalar PFJ sample function.

Run: .venv/bin/python loadtests/bench_acwr.py [--athletes N] [--days D] [--runs R]

Prints the median of several runs of the `kneeload acwr` code path (CSV in → CSV out,
all three methods, and EWMA only) beside a baseline measured in the same run: a bare
polars read + write of the same files. Then the command itself as a user runs it (a new
process: interpreter start, imports, CSV in, all methods, CSV out) beside a new process
that only imports polars and reads and writes the same CSV. Then the scalar PFJ estimate
per sample beside a trivial function call. The last line is one JSON object with all results.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import polars as pl

from kneeload.batch.acwr_io import read_daily_loads, run_acwr
from kneeload.core.pfj import estimate_pfj_sample


def median_s(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--athletes", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    n, d = args.athletes, args.days
    rng = np.random.default_rng(0)
    df = pl.DataFrame(
        {
            "athlete_id": np.repeat([f"ath{i:05d}" for i in range(n)], d),
            "date": (np.tile(np.arange(d), n) + 19_723).astype("datetime64[D]"),
            "load": np.round(rng.gamma(2.0, 300.0, n * d) * (rng.random(n * d) < 0.7), 3),
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    results: dict[str, float | int] = {"athletes": n, "days": d, "rows": n * d, "runs": args.runs}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "daily.csv"
        df.write_csv(src)
        out = Path(tmp) / "out.csv"

        def baseline() -> None:
            pl.read_csv(src, try_parse_dates=True).write_csv(out)

        def acwr(method: str) -> Callable[[], None]:
            return lambda: run_acwr(read_daily_loads(src), method).write_csv(out)

        results["baseline_read_write_csv_s"] = median_s(baseline, args.runs)
        results["acwr_all_methods_csv_s"] = median_s(acwr("all"), args.runs)
        results["acwr_ewma_csv_s"] = median_s(acwr("ewma"), args.runs)
        kneeload = str(Path(sys.executable).with_name("kneeload"))
        cli = [kneeload, "acwr", "--input", str(src), "--method", "all", "--output", str(out)]
        bare = [
            sys.executable,
            "-c",
            f"import polars as pl; pl.read_csv({str(src)!r}, try_parse_dates=True)"
            f".write_csv({str(out)!r})",
        ]
        results["cli_all_methods_csv_s"] = median_s(
            lambda: subprocess.run(cli, check=True), args.runs
        )
        results["baseline_process_read_write_csv_s"] = median_s(
            lambda: subprocess.run(bare, check=True), args.runs
        )
    print(
        f"ACWR {n:,} athletes × {d} days ({n * d:,} rows), median of {args.runs}: "
        f"all methods {results['acwr_all_methods_csv_s']:.2f} s, "
        f"ewma {results['acwr_ewma_csv_s']:.2f} s; "
        f"baseline polars read+write {results['baseline_read_write_csv_s']:.2f} s"
    )
    print(
        f"`kneeload acwr --method all` as a new process: {results['cli_all_methods_csv_s']:.2f} s; "
        f"baseline process (import polars, read+write) "
        f"{results['baseline_process_read_write_csv_s']:.2f} s"
    )

    number = 200_000

    def trivial(speed_mps: float, cadence_spm: float, body_mass_kg: float) -> float:
        return speed_mps * cadence_spm / body_mass_kg

    pfj_us = [
        timeit.timeit(
            lambda: estimate_pfj_sample(3.4, 170.0, 75.0, 250.0, 1.0, 20.0), number=number
        )
        / number
        * 1e6
        for _ in range(args.runs)
    ]
    pfj_est_us = [
        timeit.timeit(lambda: estimate_pfj_sample(3.4, 170.0, 75.0), number=number) / number * 1e6
        for _ in range(args.runs)
    ]
    base_us = [
        timeit.timeit(lambda: trivial(3.4, 170.0, 75.0), number=number) / number * 1e6
        for _ in range(args.runs)
    ]
    results["pfj_sample_us"] = statistics.median(pfj_us)
    results["pfj_sample_estimated_contact_us"] = statistics.median(pfj_est_us)
    results["baseline_trivial_call_us"] = statistics.median(base_us)
    results["pfj_samples_per_s"] = 1e6 / results["pfj_sample_us"]
    print(
        f"PFJ scalar sample: {results['pfj_sample_us']:.2f} µs (contact estimated "
        f"{results['pfj_sample_estimated_contact_us']:.2f} µs) "
        f"≈ {results['pfj_samples_per_s']:,.0f}/s; "
        f"baseline trivial call {results['baseline_trivial_call_us']:.2f} µs"
    )
    print(orjson.dumps(results).decode())


if __name__ == "__main__":
    main()
