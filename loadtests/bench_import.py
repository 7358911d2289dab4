"""Benchmark: `kneeload import` of 1,000 FIT files beside a plain fitdecode read of the same
files, in the same run.

Run: .venv/bin/python loadtests/bench_import.py [--files N] [--records R] [--athletes A]

The files are cut from the real fenix 2 run in shared/data (1 Hz, cadence, running dynamics)
and written by Garmin's FIT SDK Encoder (kneeload.demo.fitwriter), R records each, one a day
per athlete going back in time; they are built once per (N, R, A) under
var/bench/import-fit-N-R-A/ (building is slow: the SDK encodes ~1,200 records/s) and reused.

Measured:
* baseline: one process reads every file with fitdecode (every frame; each record message's
  field values into a dict) — the least any FIT importer must do;
* `kneeload import DIR --map MAP --no-ledger --json` as a user runs it (a new process:
  registry, decoding in one process per CPU, ordering, publishing through the gateway core
  to Kafka with acks=all), wall time and its phases from the summary.

Needs the stack (Kafka, PostgreSQL) and an isolated topic prefix/database (run_all.py gives
both). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import fitdecode
import orjson

ROOT = Path(__file__).resolve().parents[1]
KNEELOAD = str(ROOT / ".venv" / "bin" / "kneeload")
sys.path.insert(0, str(ROOT / "tests"))


def _build_one(args: tuple[Path, int, int, int]) -> None:
    # the tests' builder of FIT files from the real ones (tests/ingest/history_files.py)
    fit_session = importlib.import_module("ingest.history_files").fit_session
    path, day, records, offset = args
    start = dt.datetime(2026, 9, 1, 6, 0, tzinfo=dt.UTC) - dt.timedelta(days=day)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(fit_session(start, records, serial=1000 + int(path.parent.name[1:]),
                                offset=offset))  # fmt: skip
    os.replace(tmp, path)


def build(root: Path, files: int, records: int, athletes: int) -> list[Path]:
    """``files`` FIT files, round-robin over ``athletes`` folders (a0, a1, ...), one a day."""
    todo, paths = [], []
    for i in range(files):
        a, day = i % athletes, i // athletes
        p = root / f"a{a}" / f"run-{day:04d}.fit"
        paths.append(p)
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            todo.append((p, day, records, 37 * i))
    if todo:
        print(f"building {len(todo)} FIT files with the FIT SDK encoder ...", file=sys.stderr)
        with cf.ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(_build_one, todo, chunksize=8))
    return paths


def plain_read(paths: list[Path]) -> tuple[float, int]:
    """Seconds for one process to read every file with fitdecode; records read."""
    n = 0
    t0 = time.perf_counter()
    for p in paths:
        with fitdecode.FitReader(str(p)) as reader:
            for frame in reader:
                if isinstance(frame, fitdecode.FitDataMessage) and frame.name == "record":
                    values = {f.name: f.value for f in frame.fields}
                    n += 1 if values else 0
    return time.perf_counter() - t0, n


def run(cmd: list[str], env: dict[str, str], timeout: float = 600) -> str:
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if res.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd[:3])} exited {res.returncode}: {res.stderr[-2000:]}")
    return res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--records", type=int, default=300)
    ap.add_argument("--athletes", type=int, default=10)
    args = ap.parse_args()
    from kneeload.settings import get_settings

    s = get_settings()
    root = s.var_dir / "bench" / f"import-fit-{args.files}-{args.records}-{args.athletes}"
    t0 = time.perf_counter()
    paths = build(root, args.files, args.records, args.athletes)
    built_s = time.perf_counter() - t0
    env = dict(os.environ)
    run([KNEELOAD, "init"], env)
    lines = ["athlete,serial,pattern,device"]
    for a in range(args.athletes):
        run([KNEELOAD, "registry", "add-athlete", f"bench-a{a}", "--team", "bench-team",
             "--body-mass-kg", "62"], env)  # fmt: skip
        run([KNEELOAD, "registry", "add-device", f"bench-w{a}", "--kind", "watch", "--athlete",
             f"bench-a{a}"], env)  # fmt: skip
        lines.append(f"bench-a{a},,a{a}/*,bench-w{a}")
    mapping = root.parent / f"{root.name}-map.csv"
    mapping.write_text("\n".join(lines) + "\n")

    plain_s, records = plain_read(paths)
    t1 = time.perf_counter()
    out = run([KNEELOAD, "import", str(root), "--map", str(mapping), "--no-ledger", "--json"],
              env, timeout=3600)  # fmt: skip
    import_s = time.perf_counter() - t1
    summary = orjson.loads(out)
    files = summary["files"]
    result = {
        "files": args.files,
        "records_per_file": args.records,
        "athletes": args.athletes,
        "cpus": os.cpu_count(),
        "records_read_plain": records,
        "import_s": round(import_s, 2),
        "baseline_fitdecode_read_s": round(plain_s, 2),
        "ratio_import_to_plain_read": round(import_s / plain_s, 2),
        "import_files_per_s": round(args.files / import_s, 1),
        "import_samples_per_s": round(summary["samples"] / import_s),
        "plain_read_records_per_s": round(records / plain_s),
        "imported_files": files["imported"],
        "samples": summary["samples"],
        "samples_accepted": summary["samples_accepted"],
        "phases_s": summary["timings_s"],
        "build_files_s": round(built_s, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if files["imported"] != args.files:
        result["error"] = (
            f"imported {files['imported']} of {args.files} files: {summary['skipped']}"
        )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
