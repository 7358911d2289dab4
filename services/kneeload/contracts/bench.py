"""Rough validation benchmark (``kneeload contracts bench``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kneeload.contracts.validation import get_contract, sample_contract


def make_batch(samples: int) -> dict[str, Any]:
    """A valid watch_sample_batch with ``samples`` fully populated samples."""
    base = 1_718_000_000
    return {
        "batch_id": "bench-1",
        "athlete_id": "ath-001",
        "device_id": "w-1001",
        "team_id": "team-a",
        "session_id": None,
        "source": "simulator",
        "sub_sport": None,
        "received_at": "2024-06-10T06:13:25Z",
        "samples": [
            {
                "record_id": f"w-1001:{base + i}",
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + i)),
                "cadence_spm": 170 + i % 10,
                "speed_mps": 3.2 + (i % 7) / 10,
                "ground_contact_ms": 240 + i % 20,
                "vertical_oscillation_mm": 80.5,
                "vertical_ratio_pct": 7.5,
                "step_length_mm": 1150,
                "power_w": 260,
                "heart_rate_bpm": 150,
                "grade_pct": 0.5,
                "distance_m": 3.3 * i,
                "vertical_load_bw": None,
            }
            for i in range(samples)
        ],
    }


def _time(fn: Callable[[], Any], rounds: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return time.perf_counter() - start


def measure(samples: int = 100, rounds: int = 200) -> dict[str, float]:
    """µs per sample for each validation path."""
    batch = make_batch(samples)
    contract = get_contract("watch_sample_batch")
    per_sample = sample_contract()
    n = samples * rounds
    ref_rounds = max(1, rounds // 10)
    return {
        "fast_batch_us": _time(lambda: contract.is_valid(batch), rounds) / n * 1e6,
        "fast_per_sample_us": _time(
            lambda: [per_sample.is_valid(s) for s in batch["samples"]], rounds
        ) / n * 1e6,
        "reference_batch_us": _time(lambda: contract.reference_is_valid(batch), ref_rounds)
        / (samples * ref_rounds) * 1e6,
    }  # fmt: skip


def run(samples: int = 100, rounds: int = 200) -> list[str]:
    m = measure(samples, rounds)
    speedup = m["reference_batch_us"] / m["fast_batch_us"]
    return [
        f"watch_sample_batch, {samples} samples per batch:",
        f"  fast (fastjsonschema), whole batch   {m['fast_batch_us']:8.2f} µs/sample",
        f"  fast, sample by sample ($defs)       {m['fast_per_sample_us']:8.2f} µs/sample",
        f"  reference (jsonschema 2020-12)       {m['reference_batch_us']:8.2f} µs/sample",
        f"  speed-up fast vs reference           {speedup:8.1f}x",
    ]
