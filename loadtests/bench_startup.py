"""Benchmark: how long a ``kneeload`` command takes to start (issue #20, target ≤ 0.3 s over a
bare interpreter start of the same run).

Run: .venv/bin/python loadtests/bench_startup.py [--runs R] [--out DIR]

Each command runs as a new process, R times, interleaved with a bare ``python -c pass`` so both
see the same machine; medians are reported and the overhead is their difference. ``stack
status`` does real work (a Kafka metadata request, a PostgreSQL connection, an MQTT round trip),
so it needs the stack up (``make bench`` starts it). Once per command, ``python -X importtime``
says which top-level imports the start spends its time on (the profile behind a miss).

Writes ``DIR/startup.json`` and ``DIR/startup.md`` (default loadtests/results/); the last line
printed is one JSON object with all results (what ``run_all.py`` reads).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
KNEELOAD = str(Path(sys.executable).with_name("kneeload"))
TARGET_OVERHEAD_S = 0.3  # issue #20
#: name → arguments of ``kneeload``
COMMANDS: dict[str, list[str]] = {
    "help": ["--help"],
    "stack_help": ["stack", "--help"],
    "ceiling_help": ["ceiling", "--help"],
    "fleet_help": ["fleet", "--help"],
    "pfj": ["pfj", "--body-mass-kg", "70", "--speed-mps", "3.4", "--cadence-spm", "170"],
    "settings": ["settings"],
    "stack_status": ["stack", "status"],
}
BARE = [sys.executable, "-c", "pass"]
#: a top-level import shown in the profile when it costs at least this much
PROFILE_MIN_MS = 10.0


def wall_s(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def import_profile_ms(args: list[str]) -> dict[str, float]:
    """Top-level imports of one run of ``kneeload ARGS`` and their cumulative cost (ms),
    costliest first (``python -X importtime``; nested imports are inside their parent)."""
    r = subprocess.run(
        [sys.executable, "-X", "importtime", KNEELOAD, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    top: dict[str, float] = {}
    for line in r.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative_us, name = line.split("|", 2)
        if not name.startswith(" ") or name.startswith("  "):
            continue  # nested: counted in its top-level parent
        top[name.strip()] = top.get(name.strip(), 0.0) + int(cumulative_us) / 1000
    costly = {k: round(v, 1) for k, v in top.items() if v >= PROFILE_MIN_MS}
    return dict(sorted(costly.items(), key=lambda kv: -kv[1]))


def measure(runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in [*COMMANDS, "bare"]}
    for _ in range(runs):
        for name, args in COMMANDS.items():
            times[name].append(wall_s([KNEELOAD, *args]))
            times["bare"].append(wall_s(BARE))
    return times


def markdown(out: dict[str, object], profiles: dict[str, dict[str, float]]) -> str:
    lines = [
        "# `kneeload` start-up (loadtests/bench_startup.py)",
        "",
        f"Run at {out['started_at']}, {out['runs']} runs of each command interleaved with a bare "
        f"`python -c pass` (median {out['baseline_bare_python_s']:.3f} s). Overhead = median of "
        f"the command − median of the bare interpreter; target ≤ {TARGET_OVERHEAD_S} s.",
        "",
        "The import column is one `python -X importtime` run per command (the tracing inflates "
        "it; read it as shares, not as times).",
        "",
        "| command | median | over bare python | verdict | top-level imports ≥ 10 ms (ms) |",
        "|---|---|---|---|---|",
    ]
    for name, args in COMMANDS.items():
        over = float(out[f"{name}_overhead_s"])  # type: ignore[arg-type]
        verdict = "pass" if over <= TARGET_OVERHEAD_S else "MISS"
        prof = ", ".join(f"{k} {v:g}" for k, v in profiles[name].items()) or "—"
        lines.append(
            f"| `kneeload {' '.join(args)}` | {out[f'{name}_s']:.3f} s | {over:.3f} s "
            f"| {verdict} | {prof} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    times = measure(args.runs)
    med = {name: statistics.median(t) for name, t in times.items()}
    out: dict[str, object] = {
        "started_at": started,
        "runs": args.runs,
        "baseline_bare_python_s": round(med["bare"], 4),
    }
    for name in COMMANDS:
        out[f"{name}_s"] = round(med[name], 4)
        out[f"{name}_overhead_s"] = round(med[name] - med["bare"], 4)
    profiles = {name: import_profile_ms(cmd) for name, cmd in COMMANDS.items()}
    out["import_profile_ms"] = profiles
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.json").write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
    (args.out / "startup.md").write_text(markdown(out, profiles))
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
