"""Estimates a clinician can trust, in the worker (no Kafka): samples outside the PFJ model's
bounds and walking samples are kept, flagged and counted per session; a strides/min cadence is
doubled and says so; every estimated value is flagged down to sample_load; the session records
the one sensor source per measure the importer chose."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ingest.fitcases import run_walk_with_two_contact_sources  # tests/ is on sys.path
from kneeload.contracts import validate
from kneeload.core.pfj import assess_pfj_sample, pfj_sample_load_mpa_s
from kneeload.ingest import activity as act
from kneeload.worker.athlete import AthleteProcessor, WorkerConfig, new_state

from .helpers import UTC, athlete_record, batches, iso

CFG = WorkerConfig(day_grace_s=60, publish_interval_s=0)
T0 = dt.datetime(2024, 6, 10, 7, 0, tzinfo=UTC)


def _rows(n: int, start: dt.datetime, speed: float, cadence: float, tag: str,
          contact: float | None = 240.0) -> list[dict[str, Any]]:  # fmt: skip
    return [
        {"record_id": f"{tag}{i}", "time": iso(start + dt.timedelta(seconds=i)),
         "cadence_spm": cadence, "speed_mps": speed, "ground_contact_ms": contact,
         "grade_pct": 0.0}
        for i in range(n)
    ]  # fmt: skip


def _run(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    p = AthleteProcessor(CFG, {})
    st = new_state("a1", CFG)
    p.on_registry(st, athlete_record("a1", "t1"))
    out: list[Any] = []
    for b in batches("a1", "t1", rows, session_id="s1"):
        out += p.on_batch(st, b, 0)
    out += p.on_tick(st, 10**13)
    [summary] = [e for t, _, e in out if t == "sessions"][-1:]
    loads = [s for t, _, e in out if t == "load.samples" for s in e["samples"]]
    for t, _, e in out:
        if t == "sessions":
            validate("session_summary", e)
        elif t == "load.samples":
            validate("sample_load", e)
    return summary, loads


def test_implausible_samples_are_kept_flagged_and_counted() -> None:
    good = _rows(100, T0, 3.4, 170.0, "g")
    bad = _rows(12, T0 + dt.timedelta(seconds=100), 12.0, 140.0, "x")  # 5.14 m steps
    s, loads = _run(good + bad)
    assert s["samples"] == 112 and s["samples_estimated"] == 100
    assert s["samples_without_estimate"] == 12 and s["samples_walking"] == 0
    assert s["no_estimate_reasons"] == {"step_length_implausible": 12}
    assert s["no_estimate_summary"] == (
        "12 samples without estimate: 12 × step length 5.14 m implausible (> 2.5 m)"
    )
    flagged = [x for x in loads if not x["estimated"]]
    assert len(flagged) == 12 and len(loads) == 112  # kept, not dropped
    assert all(x["peak_pfj_stress_mpa"] is None and x["pfj_impulse_mpa_s"] is None
               and x["no_estimate_reason"] == "step_length_implausible"
               for x in flagged)  # fmt: skip
    # the session's load is the 100 estimated samples' (1 s each), nothing from the 12
    _, e = assess_pfj_sample(3.4, 170.0, 70.0, 240.0)
    assert e is not None
    assert s["pfj_load_mpa_s"] == pytest.approx(100 * pfj_sample_load_mpa_s(
        e.pfj_impulse_per_step_mpa_s, 170.0, 1.0))  # fmt: skip
    assert s["peak_pfj_stress_mpa"] == pytest.approx(e.peak_pfj_stress_mpa)


def test_half_cadence_is_doubled_on_the_sample_and_in_the_load() -> None:
    s_half, loads = _run(_rows(60, T0, 3.4, 85.0, "h"))
    s_full, _ = _run(_rows(60, T0, 3.4, 170.0, "f"))
    assert s_half["samples_cadence_corrected"] == 60 and s_half["samples_estimated"] == 60
    assert s_half["pfj_load_mpa_s"] == pytest.approx(s_full["pfj_load_mpa_s"])
    assert s_half["mean_cadence_spm"] == pytest.approx(170.0)
    assert all(x["cadence_corrected"] and x["cadence_spm"] == 85.0
               and x["cadence_used_spm"] == 170.0 for x in loads)  # fmt: skip


def test_estimated_values_are_flagged_with_their_uncertainty() -> None:
    s, loads = _run(_rows(30, T0, 3.4, 170.0, "e", contact=None))
    assert s["samples_contact_estimated"] == 30
    x = loads[0]
    assert x["ground_contact_estimated"] and x["ground_contact_source"] == "estimated"
    assert x["ground_contact_ms"] == pytest.approx(250.0)
    assert x["ground_contact_uncertainty_ms"] == pytest.approx(25.0)
    assert x["step_length_m"] == pytest.approx(1.2) and x["step_length_estimated"]
    assert x["vertical_load_bw"] == pytest.approx(2.22, abs=0.01) and x["vertical_load_estimated"]
    _, loads = _run(_rows(30, T0, 3.4, 170.0, "m", contact=240.0))
    assert (
        not loads[0]["ground_contact_estimated"] and loads[0]["ground_contact_source"] == "device"
    )
    assert loads[0]["ground_contact_uncertainty_ms"] is None


def test_run_walk_fit_file_walking_labelled_and_one_contact_source() -> None:
    f = run_walk_with_two_contact_sources()
    norm = act.normalise(act.decode_fit(f.data), device_id="w")
    s, loads = _run(norm.samples)
    assert s["samples"] == 1200 and s["samples_walking"] == 150
    assert s["samples_without_estimate"] == 150 and s["no_estimate_reasons"] == {"walking": 150}
    assert s["no_estimate_summary"].startswith(
        "150 samples without estimate: 150 × walking (96 spm"
    )
    assert s["sources"] == {"ground_contact_ms": "dev:Ground Time", "cadence_spm": "native",
                            "speed_mps": "native", "power_w": "dev:Power"}  # fmt: skip
    assert s["distance_m"] == pytest.approx(1050 * 3.2 + 150 * 1.3 - 3.2 + 3.2, rel=1e-3)
    walk = [x for x in loads if x["gait"] == "walking"]
    assert len(walk) == 150 and all(not x["estimated"] and x["no_estimate_reason"] == "walking"
                                    for x in walk)  # fmt: skip
    assert {x["ground_contact_source"] for x in loads if x["estimated"]} == {"dev:Ground Time"}
