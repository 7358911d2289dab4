"""Benchmark: how long a ``kneeload`` command takes to start (issue #20, target ≤ 0.3 s over a
bare interpreter start of the same run).

Run: .venv/bin/python loadtests/bench_startup.py [--runs R]

Each command runs as a new process, R times, interleaved with a bare ``python -c pass`` so both
see the same machine; medians are reported and the overhead is their difference. The last line
is one JSON object with all results.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

KNEELOAD = str(Path(sys.executable).with_name("kneeload"))
COMMANDS: dict[str, list[str]] = {
    "help": [KNEELOAD, "--help"],
    "stack_help": [KNEELOAD, "stack", "--help"],
    "pfj": [KNEELOAD, "pfj", "--body-mass-kg", "70", "--speed-mps", "3.4", "--cadence-spm", "170"],
}
BARE = [sys.executable, "-c", "pass"]


def wall_s(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    times: dict[str, list[float]] = {name: [] for name in [*COMMANDS, "bare"]}
    for _ in range(args.runs):
        for name, cmd in COMMANDS.items():
            times[name].append(wall_s(cmd))
            times["bare"].append(wall_s(BARE))
    med = {name: statistics.median(t) for name, t in times.items()}
    out: dict[str, float | int] = {"runs": args.runs, "baseline_bare_python_s": med["bare"]}
    for name in COMMANDS:
        out[f"{name}_s"] = med[name]
        out[f"{name}_overhead_s"] = med[name] - med["bare"]
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
