"""Throughput of one `kneeload worker` process: raw watch.samples → derived topics.

Produces N samples (100-sample batches, several athletes, 1 Hz, in order) to a fresh
topic prefix, then measures, in the same run and over the same records:

* baseline — a bare aiokafka loop: consume watch.samples, decode, re-encode (the internal
  wire format, :mod:`kneeload.contracts.wire`, as the gateway publishes),
  produce one message per batch (no logic, no state);
* worker   — a `kneeload worker` subprocess with a fresh app id (so it reads from the
  earliest offset), timed from its first to its last ``load.samples`` message (Faust
  start-up and rebalance excluded), CPU from /proc of the worker process over the
  same interval.

Each is repeated ``--runs`` times; medians are reported; the last line is one JSON object.

    .venv/bin/python loadtests/bench_worker.py --samples 300000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from kneeload.contracts import wire

REPO = Path(__file__).resolve().parents[1]
CLK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def produce(bootstrap: str, topic: str, n_samples: int, athletes: int) -> int:
    from kafka import KafkaProducer

    p = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20, max_request_size=4 << 20
    )
    t0 = dt.datetime(2024, 6, 10, 6, 0, tzinfo=dt.UTC)
    per = n_samples // athletes
    n_batches = 0
    for k in range(0, per, 100):
        for a in range(athletes):
            aid = f"bench{a}"
            rows = []
            for i in range(k, min(k + 100, per)):
                t = (t0 + dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
                rows.append(
                    {
                        "record_id": f"r{a}-{i}",
                        "time": t,
                        "cadence_spm": 168.0 + i % 9,
                        "speed_mps": 3.0 + (i % 11) * 0.05,
                        "ground_contact_ms": 235.0 + i % 13,
                        "grade_pct": 0.0,
                        "heart_rate_bpm": 150,
                    }
                )
            b = {
                "batch_id": f"bb-{aid}-{k}",
                "athlete_id": aid,
                "device_id": "w",
                "team_id": "t",
                "session_id": None,
                "source": "simulator",
                "sub_sport": None,
                "received_at": rows[-1]["time"],
                "samples": rows,
            }
            p.send(topic, key=aid.encode(), value=wire.encode(b))
            n_batches += 1
    p.flush()
    p.close()
    return n_batches


async def baseline(bootstrap: str, src: str, dst: str, n_batches: int) -> tuple[float, float]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    c = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
    )
    pr = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20, max_request_size=4 << 20
    )
    await c.start()
    await pr.start()
    seen = 0
    t0 = c0 = None
    try:
        while seen < n_batches:
            got = await c.getmany(timeout_ms=1000, max_records=500)
            for msgs in got.values():
                for m in msgs:
                    if t0 is None:
                        t0, c0 = time.perf_counter(), time.process_time()
                    doc = wire.decode(m.value)
                    await pr.send(dst, key=m.key, value=wire.encode(doc))
                    seen += 1
        await pr.flush()
        assert t0 is not None and c0 is not None
        return time.perf_counter() - t0, time.process_time() - c0
    finally:
        await c.stop()
        await pr.stop()


def end_offsets(consumer: object, topic: str) -> int:
    from kafka import TopicPartition

    parts = consumer.partitions_for_topic(topic) or set()  # type: ignore[attr-defined]
    tps = [TopicPartition(topic, p) for p in parts]
    return sum(consumer.end_offsets(tps).values()) if tps else 0  # type: ignore[attr-defined]


def run_worker(
    env: dict[str, str],
    out_topic: str,
    n_batches: int,
    bootstrap: str,
    profile: str | None = None,
) -> tuple[float, float]:
    from kafka import KafkaConsumer

    cons = KafkaConsumer(bootstrap_servers=bootstrap)
    base = end_offsets(cons, out_topic)
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/kneeload"), "worker", "-l", "error"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    spy: subprocess.Popen[bytes] | None = None
    try:
        t_first = c_first = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = end_offsets(cons, out_topic) - base
            if t_first is None and done > 0:
                t_first, c_first, d_first = time.perf_counter(), _cpu_s(proc.pid), done
                if profile:  # sample the worker over the measured interval only
                    spy = subprocess.Popen(
                        [str(REPO / ".venv/bin/py-spy"), "record", "--pid", str(proc.pid),
                         "--rate", "250", "--nonblocking", "--format", "raw", "-o", profile],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
            if done >= n_batches:
                assert t_first is not None and c_first is not None
                wall = time.perf_counter() - t_first
                cpu = _cpu_s(proc.pid) - c_first
                frac = (n_batches - d_first) / n_batches  # share of the work inside the interval
                return wall / frac, cpu / frac
            time.sleep(0.05)
        raise RuntimeError("worker did not finish")
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        proc.terminate()
        proc.wait(30)
        cons.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--samples", type=int, default=300_000)
    ap.add_argument("--athletes", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument(
        "--profile",
        metavar="PATH",
        help="py-spy the worker over its measured interval (raw collapsed stacks, run N → PATH.N)",
    )
    args = ap.parse_args()

    sys.path.insert(0, str(REPO / "services"))
    from kneeload.settings import get_settings
    from kneeload.worker.app import ensure_topics

    base = get_settings()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    env = {
        **os.environ,
        "KNEELOAD_TOPIC_PREFIX": prefix,
        "KNEELOAD_TOPIC_PARTITIONS": str(args.partitions),
        "KNEELOAD_KAFKA_BOOTSTRAP": base.kafka_bootstrap,
    }
    s = base.model_copy(update={"topic_prefix": prefix, "topic_partitions": args.partitions})
    ensure_topics(s)
    bootstrap = base.kafka_bootstrap
    n_batches = produce(bootstrap, prefix + "watch.samples", args.samples, args.athletes)
    n = n_batches * 100 if args.samples % (100 * args.athletes) == 0 else args.samples
    results: dict[str, list[tuple[float, float]]] = {"baseline": [], "worker": []}
    for r in range(args.runs):
        results["baseline"].append(
            asyncio.run(
                baseline(bootstrap, prefix + "watch.samples", prefix + "bench.baseline", n_batches)
            )
        )
        wenv = {**env, "KNEELOAD_WORKER_APP_ID": f"bench{r}", "KNEELOAD_WORKER_IDLE_CLOSE_S": "600"}
        prof = f"{args.profile}.{r}" if args.profile else None
        results["worker"].append(
            run_worker(wenv, prefix + "load.samples", n_batches, bootstrap, prof)
        )
        print(f"run {r} machine load average: {os.getloadavg()[0]:.2f}")
        for k, v in results.items():
            print(
                f"run {r} {k}: {n / v[-1][0]:,.0f} samples/s, "
                f"{v[-1][1] / n * 1e6:.2f} CPU µs/sample"
            )
    out: dict[str, object] = {
        "samples": n,
        "batches": n_batches,
        "runs": args.runs,
        "partitions": args.partitions,
        "athletes": args.athletes,
    }
    for k, v in results.items():
        wall = statistics.median(x[0] for x in v)
        cpu = statistics.median(x[1] for x in v)
        out[f"{k}_samples_per_s"] = round(n / wall)
        out[f"{k}_cpu_us_per_sample"] = round(cpu / n * 1e6, 3)
        # < 1: the process waited (for the CPU on a shared box, or for I/O), so
        # 1e6 / cpu_us_per_sample is what it would do with a core to itself
        out[f"{k}_cpu_share"] = round(statistics.median(x[1] / x[0] for x in v), 3)
        out[f"{k}_cpu_bound_samples_per_s"] = round(n / cpu)
    out["worker_vs_baseline_throughput"] = round(
        float(out["worker_samples_per_s"]) / float(out["baseline_samples_per_s"]),
        3,  # type: ignore[arg-type]
    )
    from kneeload.topics.admin import delete_topics

    try:
        from kafka import KafkaAdminClient

        adm = KafkaAdminClient(bootstrap_servers=bootstrap)
        delete_topics(
            [
                t
                for t in adm.list_topics()
                if t.startswith(prefix) or t.startswith(f"{prefix}bench")
            ],
            s,
        )
        adm.close()
    except Exception:
        pass
    print(json.dumps(out))


if __name__ == "__main__":
    main()
