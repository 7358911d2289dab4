"""Where a service's threads spend wall time: on a CPU, or runnable and waiting for one.

Run (as root, beside a bench):
    python loadtests/sched_sampler.py "bin/kneeload worker,bin/kneeload sink" out.txt 120

Every 0.25 s, for each process whose command line contains one of the patterns and whose
environment has ``KNEELOAD_TOPIC_PREFIX=bench-e2e`` (the end-to-end bench's services, not
other people's), the share of the interval its threads were on a CPU (``cpu``) and waiting
on the run queue (``rq``), from ``/proc/<pid>/task/<tid>/schedstat``; ``worker+`` sums the
non-main threads. cpu + rq ≈ 1 means the thread never slept: it waited for a core, not for
I/O. The machine's busy cores (``/proc/stat``) lead each line.
"""

from __future__ import annotations

import os
import sys
import time


def _services(patterns: list[str], names: dict[int, str]) -> list[int]:
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode()
            if not any(x in cmd for x in patterns) or "sched_sampler" in cmd:
                continue
            with open(f"/proc/{p}/environ", "rb") as f:
                if b"KNEELOAD_TOPIC_PREFIX=bench-e2e" not in f.read():
                    continue
        except OSError:
            continue
        names[int(p)] = cmd.split("kneeload ")[-1].split()[0]
        found.append(int(p))
    return found


def _schedstat(pid: int) -> dict[int, tuple[int, int]]:
    out = {}
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                v = f.read().split()
            out[int(t)] = (int(v[0]), int(v[1]))
    except OSError:
        pass
    return out


def _machine() -> tuple[int, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def main() -> None:
    patterns, path, duration = sys.argv[1].split(","), sys.argv[2], float(sys.argv[3])
    names: dict[int, str] = {}
    prev: dict[tuple[int, int], tuple[int, int]] = {}
    t0, t_prev, m_prev = time.time(), time.monotonic(), _machine()
    with open(path, "w") as out:
        while time.time() - t0 < duration:
            time.sleep(0.25)
            cur = {(p, t): v for p in _services(patterns, names) for t, v in _schedstat(p).items()}
            now = time.monotonic()
            wall_ns, t_prev = (now - t_prev) * 1e9, now
            m = _machine()
            busy = (m[0] - m_prev[0]) / max(1, m[1] - m_prev[1]) * (os.cpu_count() or 1)
            m_prev = m
            agg: dict[str, list[float]] = {}
            for k, v in cur.items():
                if k not in prev:
                    continue
                cpu = (v[0] - prev[k][0]) / wall_ns
                rq = (v[1] - prev[k][1]) / wall_ns
                if cpu + rq > 0.02:
                    a = agg.setdefault(names[k[0]] + ("" if k[0] == k[1] else "+"), [0.0, 0.0])
                    a[0] += cpu
                    a[1] += rq
            prev = cur
            cols = " ".join(f"{n}:cpu={a[0]:.2f},rq={a[1]:.2f}" for n, a in sorted(agg.items()))
            out.write(f"{time.time() - t0:6.2f} machine={busy:.2f} {cols}\n")
            out.flush()


if __name__ == "__main__":
    main()
