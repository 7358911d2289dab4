"""HTTP ingest benchmark: 100-sample watch batches through the gateway into Kafka (acks=all),
beside a bare aiokafka producer sending the same records in the same run.

Run: .venv/bin/python loadtests/bench_ingest.py [--seconds S] [--runs R] [--concurrency C]
                                                [--workers W] [--quick]

Per run: a fresh ``kneeload ingest`` process (uvloop + httptools, its own topics) and a
load-generating client process (raw HTTP/1.1 keep-alive connections over asyncio streams —
httpx would spend more CPU than the gateway) post pre-built 100-sample batches from 12
athletes' watches for S seconds, C requests in flight; then, in the same run, a bare
aiokafka producer (the gateway's options: idempotent, acks=all, same linger) sends the SAME
batch events (already validated, enriched and encoded) for S seconds. Reported: samples/s
(accepted and acknowledged), request latency p50/p99, and the bare producer's samples/s;
medians over the runs. The target is >= 20,000 samples/s on this 2-core machine with Kafka
on the same machine. The last line printed is one JSON object.

With KNEELOAD_BENCH_ISOLATED=1 (``loadtests/run_all.py``) the given KNEELOAD_TOPIC_PREFIX is
used; otherwise a unique ``bench-ingest-<id>.`` prefix, whose topics are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

ATHLETES = 12
SAMPLES = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_samples(device: str, start: int, n: int, t0: datetime) -> list[dict[str, Any]]:
    return [
        {"record_id": f"{device}:{start + i}", "time": (t0 + timedelta(seconds=start + i)).strftime("%Y-%m-%dT%H:%M:%SZ"),  # noqa: E501
         "cadence_spm": 170 + i % 9, "speed_mps": 3.1 + (i % 7) / 10, "ground_contact_ms": 240 + i % 20,  # noqa: E501
         "vertical_oscillation_mm": 82.0, "vertical_ratio_pct": 7.4, "step_length_mm": 1120, "power_w": 255,  # noqa: E501
         "heart_rate_bpm": 150 + i % 10, "grade_pct": 0.5, "distance_m": 3.3 * (start + i), "vertical_load_bw": None}  # noqa: E501
        for i in range(n)
    ]  # fmt: skip


# --------------------------------------------------------------------------- client process


async def _client(port: int, bodies: list[tuple[bytes, bytes]], seconds: float, concurrency: int,
                  out: Any) -> None:  # fmt: skip
    """Raw HTTP/1.1 keep-alive POSTs; each body is used once (unique record ids)."""
    latencies: list[float] = []
    accepted = 0
    errors = 0
    idx = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal idx, accepted, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline and idx < len(bodies):
            head, body = bodies[idx]
            idx += 1
            t = time.perf_counter()
            writer.write(head + body)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            reply = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t)
            if status_line.split(b" ", 2)[1] == b"200":
                accepted += orjson.loads(reply)["accepted"]
            else:
                errors += 1
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    out.put({"accepted": accepted, "errors": errors, "elapsed": elapsed, "latencies": latencies,
             "requests": len(latencies)})  # fmt: skip


def client_process(
    port: int, bodies: list[tuple[bytes, bytes]], seconds: float, concurrency: int, out: Any
) -> None:
    import uvloop

    uvloop.run(_client(port, bodies, seconds, concurrency, out))


# --------------------------------------------------------------------------- bare producer


async def bare_producer(
    settings: Any, events: list[tuple[bytes, bytes]], seconds: float
) -> dict[str, Any]:
    from kneeload.registry.kafkaio import make_producer
    from kneeload.topics import topic_name

    topic = topic_name("watch.samples", settings)
    producer = make_producer(settings, client_id="bench-bare")
    await producer.start()
    try:
        sent = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        i = 0
        window: list[asyncio.Future[Any]] = []
        while time.perf_counter() < deadline and i < len(events):
            key, value = events[i]
            i += 1
            window.append(await producer.send(topic, value, key=key))
            if len(window) >= 64:
                await asyncio.gather(*window)
                sent += len(window)
                window = []
        await asyncio.gather(*window)
        sent += len(window)
        elapsed = time.perf_counter() - t0
    finally:
        await producer.stop()
    return {"samples_per_s": sent * SAMPLES / elapsed, "messages": sent}


# --------------------------------------------------------------------------- one run


def one_run(args: argparse.Namespace, prefix: str, run: int) -> dict[str, Any]:
    from kneeload.settings import Settings

    port = free_port()
    token = uuid.uuid4().hex
    env = {**os.environ, "KNEELOAD_TOPIC_PREFIX": prefix, "KNEELOAD_ADMIN_TOKEN": token,
           "KNEELOAD_HTTP_PORT": str(port), "KNEELOAD_INGEST_WORKERS": str(args.workers),
           "KNEELOAD_LOG_LEVEL": "WARNING"}  # fmt: skip
    settings = Settings(**{k.removeprefix("KNEELOAD_").lower(): v for k, v in env.items()
                           if k.startswith("KNEELOAD_") and k != "KNEELOAD_BENCH_ISOLATED"
                           and k.removeprefix("KNEELOAD_").lower() in Settings.model_fields})  # fmt: skip  # noqa: E501
    gw = subprocess.Popen([sys.executable, "-m", "kneeload", "ingest"], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if gw.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.3)
        admin = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        devices = []
        for a in range(ATHLETES):
            ath, dev = f"bench-ath-{run}-{a}", f"bench-w-{run}-{a}"
            admin.put(
                f"/admin/athletes/{ath}", json={"body_mass_kg": 60 + a, "team_id": "bench-team"}
            ).raise_for_status()
            r = admin.post(
                "/admin/devices", json={"device_id": dev, "kind": "watch", "athlete_id": ath}
            )
            r.raise_for_status()
            devices.append((dev, ath, r.json()["api_key"]))
        # pre-built requests (enough for the whole run at up to 60k samples/s) and the same batches as events  # noqa: E501
        n_req = int(args.seconds * 60_000 / SAMPLES) + 100
        t0 = datetime.now(UTC) - timedelta(days=1)
        bodies: list[tuple[bytes, bytes]] = []
        events: list[tuple[bytes, bytes]] = []
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for i in range(n_req):
            dev, ath, key = devices[i % ATHLETES]
            samples = make_samples(dev, (i // ATHLETES) * SAMPLES, SAMPLES, t0)
            body = orjson.dumps({"samples": samples})
            head = (f"POST /v1/watch/samples HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"  # noqa: E501
                    f"X-Device-Id: {dev}\r\nX-Api-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip  # noqa: E501
            bodies.append((head, body))
            events.append((ath.encode(), orjson.dumps({
                "batch_id": f"bare-{run}-{i}", "athlete_id": ath, "device_id": dev, "team_id": "bench-team",  # noqa: E501
                "session_id": None, "source": "simulator", "sub_sport": None, "received_at": now, "samples": samples})))  # fmt: skip  # noqa: E501
        # warm-up (connections, metadata, JIT-free but caches)
        warm = mp.get_context("spawn")
        q: Any = warm.Queue()
        p = warm.Process(target=client_process, args=(port, bodies[-50:], 2.0, 4, q))
        p.start()
        q.get(timeout=60)
        p.join()
        cpu0 = _cpu(gw.pid)
        p = warm.Process(
            target=client_process, args=(port, bodies[:-50], args.seconds, args.concurrency, q)
        )
        p.start()
        res = q.get(timeout=args.seconds + 120)
        p.join()
        gw_cpu = (_cpu(gw.pid) - cpu0) / res["elapsed"]
        lat = sorted(res["latencies"])
        http = {
            "samples_per_s": res["accepted"] / res["elapsed"],
            "requests": res["requests"],
            "errors": res["errors"],
            "p50_ms": 1000 * lat[len(lat) // 2],
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "gateway_cpu_cores": gw_cpu,
        }
        bare = asyncio.run(bare_producer(settings, events, args.seconds))
        return {"http": http, "bare": bare}
    finally:
        gw.terminate()
        try:
            gw.wait(20)
        except subprocess.TimeoutExpired:
            gw.kill()


def _cpu(pid: int) -> float:
    """CPU seconds of a process and its children (uvicorn workers)."""
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [
            int(x)
            for x in subprocess.run(
                ["pgrep", "-P", str(pid)], capture_output=True, text=True
            ).stdout.split()
        ]
    tick = os.sysconf("SC_CLK_TCK")
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1, help="gateway processes (uvicorn workers)")
    ap.add_argument(
        "--quick", action="store_true", help="one short run (smoke test, not for quoting)"
    )
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.runs = 3.0, 1
    isolated = os.environ.get("KNEELOAD_BENCH_ISOLATED") == "1"
    prefix = (
        os.environ["KNEELOAD_TOPIC_PREFIX"] if isolated else f"bench-ingest-{uuid.uuid4().hex[:8]}."
    )
    runs = []
    try:
        for r in range(args.runs):
            res = one_run(args, prefix, r)
            runs.append(res)
            print(f"run {r + 1}/{args.runs}: gateway {res['http']['samples_per_s']:,.0f} samples/s "
                  f"(p50 {res['http']['p50_ms']:.1f} ms, p99 {res['http']['p99_ms']:.1f} ms, "
                  f"{res['http']['requests']} requests, {res['http']['errors']} errors, "
                  f"gateway CPU {res['http']['gateway_cpu_cores']:.2f} cores) | bare producer "
                  f"{res['bare']['samples_per_s']:,.0f} samples/s", flush=True)  # fmt: skip
    finally:
        if not isolated:
            from kafka import KafkaAdminClient

            from kneeload.settings import get_settings

            admin = KafkaAdminClient(bootstrap_servers=get_settings().kafka_bootstrap)
            try:
                mine = [t for t in admin.list_topics() if t.startswith(prefix)]
                if mine:
                    admin.delete_topics(mine)
            finally:
                admin.close()

    def med(path: tuple[str, str]) -> float:
        return statistics.median(r[path[0]][path[1]] for r in runs)

    result = {
        "bench": "ingest",
        "samples_per_batch": SAMPLES,
        "seconds_per_run": args.seconds,
        "runs": args.runs,
        "concurrency": args.concurrency,
        "gateway_workers": args.workers,
        "samples_per_s": round(med(("http", "samples_per_s"))),
        "p50_ms": round(med(("http", "p50_ms")), 2),
        "p99_ms": round(med(("http", "p99_ms")), 2),
        "gateway_cpu_cores": round(med(("http", "gateway_cpu_cores")), 2),
        "baseline_samples_per_s": round(med(("bare", "samples_per_s"))),
        "target_samples_per_s": 20_000,
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "per_run": runs,
    }
    result["ratio_to_baseline"] = round(
        result["samples_per_s"] / result["baseline_samples_per_s"], 3
    )
    result["target_met"] = result["samples_per_s"] >= 20_000
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
