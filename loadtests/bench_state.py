"""Benchmark: the worker's per-athlete state — bytes stored, and a restart restoring it.

Run: .venv/bin/python loadtests/bench_state.py [--athletes N] [--days D] [--runs R]

1. One athlete trains D days (a 45-minute run at 1 Hz a day on a LEVER unit, a next-morning
   pain report) through :class:`kneeload.worker.athlete.AthleteProcessor`; its state and
   chunk store are what the worker keeps after pruning (the lateness horizon's sessions).
   Printed: the state's bytes as one MessagePack record (:mod:`kneeload.worker.state`)
   beside the same state as JSON (the older workers' format) and as the split records
   (:mod:`kneeload.worker.statestore`; its hot root alone too), and the chunk bytes.
2. Restart: N copies of that athlete are written into a fresh worker's changelogs with
   ``kneeload rebuild-state``'s writer (:func:`kneeload.worker.rebuild.write`), a
   ``kneeload worker`` starts, and one probe batch extends athlete N−1's last session; the
   time from the process start to that session's summary counting the probe (proof that
   the state was restored) is measured beside the same start over empty changelogs. The
   restore time is the difference of the medians (target < 10 s for 1,000 athletes);
   measured with the chunk store (the raw samples of the sessions within the lateness
   horizon, kept to recompute a session; zlib-compressed; a closed session's chunks packed
   into one record), with the same chunks one record per input batch (the layout before
   the packing: the baseline), with the athletes' states alone, and with each state one
   whole record (the layout before the hot/cold split of
   :mod:`kneeload.worker.statestore`: its baseline) — all in the same run.
3. Changelog bytes while streaming: the same athlete runs once more in 10- and 100-sample
   batches at 1 Hz, one take per batch; printed per sample: the bytes written to the
   ``athletes`` changelog split hot/cold (the records that changed) beside the whole state
   once per take (the layout before), and to ``chunks`` — keys and record overhead
   counted.

The last line is one JSON object, also written to ``loadtests/results/state.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import orjson

from kneeload.contracts import wire

REPO = Path(__file__).resolve().parents[1]
T0 = dt.datetime(2024, 6, 1, 6, 0, tzinfo=dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _batch(aid: str, sid: str, start: dt.datetime, first: int, n: int, tag: str) -> dict[str, Any]:
    rows = []
    for i in range(first, first + n):
        t = start + dt.timedelta(seconds=i)
        v, f = 3.0 + (i % 9) * 0.05, 168.0 + (i % 7)
        rows.append({"record_id": f"r{tag}{i}", "time": _iso(t), "speed_mps": v,
                     "cadence_spm": f, "ground_contact_ms": 245.0, "grade_pct": 0.0})  # fmt: skip
    return {"batch_id": f"{sid}-{tag}-{first}", "athlete_id": aid, "device_id": f"w-{aid}",
            "team_id": "t1", "session_id": sid, "source": "simulator", "sub_sport": None,
            "received_at": rows[-1]["time"], "samples": rows}  # fmt: skip


def profile_athlete(days: int, minutes: int) -> tuple[Any, dict[str, bytes], dict[str, Any]]:
    """The state and chunks of one athlete after ``days`` of training, and its last session."""
    from kneeload.worker.athlete import AthleteProcessor, WorkerConfig, new_state

    cfg = WorkerConfig()
    chunks: dict[str, bytes] = {}
    proc = AthleteProcessor(cfg, chunks)
    st = new_state("a", cfg)
    proc.on_registry(st, {"team_id": "t1", "time_zone": "Europe/Copenhagen", "body_mass_kg": 68.0})
    now = 0
    for d in range(days):
        start = T0 + dt.timedelta(days=d)
        t_ms = int(start.timestamp() * 1000)
        proc.on_bws(st, {"t": t_ms - 60_000, "unit_id": "u1", "bws_pct": 20.0 - d % 10}, now)
        for k in range(0, minutes * 60, 100):
            now += 100
            proc.on_batch(st, _batch("a", f"d{d}", start, k, min(100, minutes * 60 - k), "p"), now)
        when = _iso(start + dt.timedelta(hours=23))
        rep = {"report_id": f"p{d}", "athlete_id": "a", "team_id": "t1", "time": when,
               "context": "next_morning", "pain_nrs": d % 4, "session_id": None}  # fmt: skip
        proc.on_pain(st, rep, now)
    proc.on_tick(st, now + 10**9)  # idle: the last session closes, the days are final
    last = f"d{days - 1}"
    acc = st.sessions[last].acc
    assert acc is not None
    start = T0 + dt.timedelta(days=days - 1)
    return st, chunks, {"sid": last, "start": start, "samples": acc.sums.samples}


#: bytes a record costs in a Kafka record batch besides its key and value (length,
#: attributes, timestamp and offset deltas, key and value lengths, header count: varints)
RECORD_OVERHEAD_B = 8


class _LogTable(dict[bytes, bytes]):
    """The ``athletes`` table as a dict that counts what its changelog receives."""

    def __init__(self) -> None:
        super().__init__()
        self.records = 0
        self.bytes = 0

    def __setitem__(self, k: bytes, v: bytes) -> None:
        self.records += 1
        self.bytes += len(k) + len(v) + RECORD_OVERHEAD_B
        super().__setitem__(k, v)

    def __delitem__(self, k: bytes) -> None:
        self.records += 1
        self.bytes += len(k) + RECORD_OVERHEAD_B
        super().__delitem__(k)


def changelog_bytes(st: Any, chunks: dict[str, bytes], batch: int, day: int) -> dict[str, float]:
    """Bytes the worker writes to its changelogs per sample while this athlete streams one
    more 45-minute run in ``batch``-sample batches at 1 Hz, one take per batch (live watches
    send a batch every few seconds, so a take rarely holds two of one athlete's; the
    processing time advances with the samples, so the day is published every batch as
    the publish interval says): the ``athletes`` changelog split hot/cold
    (:class:`kneeload.worker.statestore.PartedStates`: the records that changed) beside
    the whole state once per take (the layout before: the baseline), each batch's chunk,
    and the session's pack when it closes. Keys and a record's overhead
    (:data:`RECORD_OVERHEAD_B`) are counted. The probe runs on a copy: the caller's state
    and chunks are unchanged."""
    from kneeload.worker.athlete import AthleteProcessor, WorkerConfig
    from kneeload.worker.state import decode_state, encode_state
    from kneeload.worker.statestore import PartedStates

    st = decode_state(encode_state(st))
    store = dict(chunks)
    proc = AthleteProcessor(WorkerConfig(), store)
    table = _LogTable()
    parted = PartedStates(table)
    parted.store(st.athlete_id, st)  # what the changelog held before the run
    table.records = table.bytes = 0
    start = T0 + dt.timedelta(days=day)
    t0 = int(start.timestamp() * 1000)
    n = 2700
    whole_b = chunk_b = 0
    key_b = len(st.athlete_id) + RECORD_OVERHEAD_B
    split_s: list[float] = []
    whole_s: list[float] = []

    def take(now: int, fn: Any) -> None:
        nonlocal whole_b, chunk_b
        before = dict(store)
        fn(now)
        t = time.perf_counter()
        parted.store(st.athlete_id, st)
        t1 = time.perf_counter()
        whole_b += len(encode_state(st)) + key_b
        whole_s.append(time.perf_counter() - t1)
        split_s.append(t1 - t)
        chunk_b += sum(len(key) + len(v) + RECORD_OVERHEAD_B
                       for key, v in store.items() if before.get(key) is not v)  # fmt: skip

    for k in range(0, n, batch):
        b = _batch("a", f"stream{batch}", start, k, batch, "s")
        take(t0 + (k + batch) * 1000, lambda now, b=b: proc.on_batch(st, b, now))
    take(t0 + n * 1000 + 10**7, lambda now: proc.on_tick(st, now))  # idle: closes, packs
    return {
        f"streaming_state_changelog_bytes_per_sample_batch{batch}": round(table.bytes / n, 1),
        f"streaming_state_changelog_records_per_take_batch{batch}": round(
            table.records / (n // batch + 1), 2
        ),
        f"streaming_whole_state_changelog_bytes_per_sample_batch{batch}": round(whole_b / n, 1),
        f"streaming_chunk_changelog_bytes_per_sample_batch{batch}": round(chunk_b / n, 1),
        # CPU of writing the state once per take: split (encode the parts, compare, write
        # what changed) beside encoding the whole state (the layout before), medians
        f"state_write_us_per_take_batch{batch}": round(statistics.median(split_s) * 1e6, 1),
        f"whole_state_encode_us_per_take_batch{batch}": round(statistics.median(whole_s) * 1e6, 1),
    }


def per_batch(chunks: dict[str, bytes]) -> dict[str, bytes]:
    """The same chunks one record per input batch (``athlete|session|batch``), as workers
    before the packing of closed sessions stored them (the restore baseline)."""
    from kneeload.worker.state import decode_pack, encode_chunk

    out: dict[str, bytes] = {}
    for k, raw in chunks.items():
        aid, sid, last = k.split("|", 2)
        if not last.startswith("#"):
            out[k] = raw
            continue
        for c in decode_pack(raw).chunks:
            out[f"{aid}|{sid}|{c.batch_id}"] = encode_chunk(c)
    return out


def sizes(st: Any, chunks: dict[str, bytes]) -> dict[str, float]:
    from kneeload.worker.state import decode_chunk, encode_state

    as_json = orjson.dumps(msgspec.to_builtins(st))
    chunk_json = 0
    for raw in per_batch(chunks).values():
        c = decode_chunk(raw)
        chunk_json += len(orjson.dumps({"b": c.batch_id, "rows": msgspec.to_builtins(c.rows)}))
    from kneeload.worker.statestore import split_state, state_records

    state_b = len(encode_state(st))
    chunk_b = sum(len(v) for v in chunks.values())
    recs = state_records(st.athlete_id, st)
    hot, _ = split_state(st)
    return {
        "state_bytes_per_athlete": state_b,
        "state_split_bytes_per_athlete": sum(len(k) + len(v) for k, v in recs),
        "state_split_records_per_athlete": len(recs),
        "state_hot_root_bytes_per_athlete": len(hot),
        "state_json_bytes_per_athlete": len(as_json),
        "state_bytes_ratio_to_json": round(state_b / len(as_json), 3),
        "chunk_bytes_per_athlete": chunk_b,
        "chunk_json_bytes_per_athlete": chunk_json,
        "chunk_bytes_ratio_to_json": round(chunk_b / chunk_json, 3),
        "sessions_kept": len(st.sessions),
        "chunk_records_per_athlete": len(chunks),
        "chunk_records_per_athlete_per_batch": len(per_batch(chunks)),
    }


def clones(st: Any, chunks: dict[str, bytes], n: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    from kneeload.worker.state import decode_state, encode_state

    raw = encode_state(st)
    athletes, out_chunks = {}, {}
    for i in range(n):
        aid = f"bench{i}"
        c = decode_state(raw)
        c.athlete_id = aid
        athletes[aid] = c
        for k, v in chunks.items():
            out_chunks[f"{aid}|{k.split('|', 1)[1]}"] = v
    return athletes, out_chunks


def restart_s(settings: Any, env: dict[str, str], last: dict[str, Any], n: int, full: bool,
              athletes: dict[str, Any], chunks: dict[str, bytes], run: str,
              whole: bool = False) -> float:  # fmt: skip
    """Seconds from a worker's start to the probe's session summary (restored state).
    ``whole``: each athlete's state as one record (the layout before the hot/cold split,
    which the worker still reads) instead of ``rebuild-state``'s split records."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from kneeload.worker.app import changelog_partition, changelog_topic
    from kneeload.worker.rebuild import Rebuilt, write
    from kneeload.worker.state import encode_state

    app = f"state-{run}"
    s = settings.model_copy(update={"worker_app_id": app})
    pre = settings.topic_prefix
    cons = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, consumer_timeout_ms=200)
    parts = range(settings.topic_partitions)
    watch = [TopicPartition(pre + "watch.samples", p) for p in parts]
    # the new worker starts after the earlier runs' probes; reads only this run's summaries
    offsets = {(tp.topic, tp.partition): o for tp, o in cons.end_offsets(watch).items()}
    cons.assign([TopicPartition(pre + "sessions", p) for p in parts])
    cons.seek_to_end()
    state = Rebuilt(athletes={} if whole else athletes, chunks=chunks) if full else Rebuilt()
    state.offsets = offsets
    write(s, state, timeout_s=900)  # a GB of uncompressed chunks takes minutes here
    if whole:
        log, parts = changelog_topic(s, "athletes"), settings.topic_partitions
        p = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20)
        for aid, st in athletes.items():
            p.send(log, key=aid.encode(), value=encode_state(st),
                   partition=changelog_partition(aid, parts))  # fmt: skip
        p.flush()
        p.close()
    aid = f"bench{n - 1}"
    probe = _batch(aid, last["sid"], last["start"], 10_000, 10, f"probe{run}")
    want = last["samples"] + 10 if full else 10
    prod = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(REPO / ".venv/bin/kneeload"), "worker", "-l", "error"],
                            env={**env, "KNEELOAD_WORKER_APP_ID": app},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        prod.send(pre + "watch.samples", key=aid.encode(), value=orjson.dumps(probe))
        prod.flush()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            for m in cons:
                ev = wire.decode(m.value)
                if ev["athlete_id"] == aid and ev["session_id"] == last["sid"]:
                    if ev["samples"] != want:
                        raise RuntimeError(f"state not restored: {ev['samples']} != {want}")
                    return time.perf_counter() - t0
        raise RuntimeError("no session summary for the probe within 300 s")
    finally:
        proc.terminate()
        proc.wait(60)
        prod.close()
        cons.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--athletes", type=int, default=1000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--minutes", type=int, default=45)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "loadtests" / "results")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "services"))
    from kneeload.settings import get_settings
    from kneeload.topics.admin import delete_topics
    from kneeload.worker.app import ensure_topics

    base = get_settings()
    isolated = bool(os.environ.get("KNEELOAD_BENCH_ISOLATED"))
    prefix = base.topic_prefix if isolated else f"bench-{uuid.uuid4().hex[:6]}."
    s = base.model_copy(update={"topic_prefix": prefix, "topic_partitions": args.partitions})
    env = {
        **os.environ,
        "KNEELOAD_TOPIC_PREFIX": prefix,
        "KNEELOAD_TOPIC_PARTITIONS": str(args.partitions),
        "KNEELOAD_KAFKA_BOOTSTRAP": base.kafka_bootstrap,
        "KNEELOAD_WORKER_IDLE_CLOSE_S": "3600",
    }
    ensure_topics(s)
    t = time.perf_counter()
    st, chunks, last = profile_athlete(args.days, args.minutes)
    out: dict[str, Any] = {
        "athletes": args.athletes,
        "days": args.days,
        "minutes_per_day": args.minutes,
        "simulate_one_athlete_s": round(time.perf_counter() - t, 2),
        **sizes(st, chunks),
        **changelog_bytes(st, chunks, 10, args.days),
        **changelog_bytes(st, chunks, 100, args.days),
    }
    print(orjson.dumps(out).decode(), flush=True)
    athletes, all_chunks = clones(st, chunks, args.athletes)
    batched = per_batch(all_chunks)
    empty: list[float] = []
    full: list[float] = []
    full_batched: list[float] = []
    state_only: list[float] = []
    whole: list[float] = []
    try:
        for r in range(args.runs):
            tag = uuid.uuid4().hex[:6]
            empty.append(restart_s(s, env, last, args.athletes, False, {}, {}, f"e{tag}"))
            full.append(
                restart_s(s, env, last, args.athletes, True, athletes, all_chunks, f"f{tag}")
            )
            state_only.append(restart_s(s, env, last, args.athletes, True, athletes, {}, f"s{tag}"))
            full_batched.append(
                restart_s(s, env, last, args.athletes, True, athletes, batched, f"p{tag}")
            )
            whole.append(
                restart_s(
                    s, env, last, args.athletes, True, athletes, all_chunks, f"w{tag}", whole=True
                )
            )
            print(f"run {r}: start over empty changelogs {empty[-1]:.2f} s, with "
                  f"{args.athletes} athletes {full[-1]:.2f} s (their states without the "
                  f"chunk store {state_only[-1]:.2f} s, chunks one record per batch "
                  f"{full_batched[-1]:.2f} s, each state one whole record "
                  f"{whole[-1]:.2f} s)", flush=True)  # fmt: skip
    finally:
        from kafka import KafkaAdminClient

        adm = KafkaAdminClient(bootstrap_servers=base.kafka_bootstrap)
        delete_topics([x for x in adm.list_topics() if x.startswith(prefix)], s)
        adm.close()
    out["runs"] = args.runs
    out["baseline_worker_start_empty_s"] = round(statistics.median(empty), 2)
    out["worker_start_with_state_s"] = round(statistics.median(full), 2)
    out["worker_start_with_states_only_s"] = round(statistics.median(state_only), 2)
    out["worker_start_with_chunks_per_batch_s"] = round(statistics.median(full_batched), 2)
    out["worker_start_with_whole_states_s"] = round(statistics.median(whole), 2)
    out["chunk_records_total"] = len(all_chunks)
    out["chunk_records_total_per_batch"] = len(batched)
    base_s = out["baseline_worker_start_empty_s"]
    out["restore_s"] = round(out["worker_start_with_state_s"] - base_s, 2)
    out["restore_states_only_s"] = round(out["worker_start_with_states_only_s"] - base_s, 2)
    out["restore_chunks_per_batch_s"] = round(
        out["worker_start_with_chunks_per_batch_s"] - base_s, 2
    )
    out["restore_whole_states_s"] = round(out["worker_start_with_whole_states_s"] - base_s, 2)
    out["machine_load_average"] = round(os.getloadavg()[0], 2)
    out["restarts_s"] = {"empty": empty, "full": full, "states_only": state_only,
                         "chunks_per_batch": full_batched, "whole_states": whole}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "state.json").write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
    out["chunk_store_bytes_total"] = len(all_chunks) and sum(len(v) for v in all_chunks.values())
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
