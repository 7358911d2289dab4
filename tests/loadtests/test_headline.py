"""The bench's last line (loadtests/run_all.py): issue #20's figures, each taken from the
component that measured it, checked on hand-made component results."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _run_all() -> ModuleType:
    sys.path.insert(0, str(ROOT / "loadtests"))
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "loadtests" / "run_all.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = mod
    spec.loader.exec_module(mod)
    return mod


def _components(mod: ModuleType, results: dict[str, dict[str, Any] | None]) -> list[Any]:
    out = []
    for name, result in results.items():
        c = mod.Component(name, f"bench_{name}.py", name, ())
        c.result, c.status = result, "ok" if result is not None else "FAILED"
        out.append(c)
    return out


E2E: dict[str, Any] = {
    "end_to_end_samples_per_s": 30_000.4,
    "ratio_to_raw": 0.15,
    "kafka_bytes_per_sample_total": 185.0,
    "steady_sample_to_derived_row_p99_ms": 212.6,
    "steady_http_accepted_samples_per_s": 9_990.0,
    "p99_alert_latency_ms": 183.2,
    # older JSON without platform_cpu_us_per_sample: the sum without the bench client
    "throughput": {"cpu_us_per_sample": {"worker": 16.6, "ingest": 9.5, "sink": 9.0,
                                         "kafka": 4.0, "postgres": 8.7, "bench_client": 4.3}},
}  # fmt: skip


def test_last_line_takes_each_figure_from_its_component() -> None:
    mod = _run_all()
    comps = _components(
        mod,
        {
            "e2e": E2E,
            "storage": {"plain_bytes_per_sample": 243.3},
            "sample_load": {"bytes_per_sample_after": 40.7},
            "state": {"state_bytes_per_athlete": 14_344, "restore_s": 1.16},
        },
    )
    line = mod.last_line(comps)
    assert line == (
        "end_to_end_samples_per_s=30000 ratio_to_raw=0.150 platform_cpu_us_per_sample=47.8 "
        "kafka_bytes_per_sample=185.0 stored_bytes_per_sample_plain=284.0 "
        "steady_10k_derived_p99_ms=213 steady_10k_accepted_samples_per_s=9990 "
        "p99_alert_latency_ms=183 state_bytes_per_athlete=14344 restore_1000_athletes_s=1.16"
    )


def test_missing_components_read_none_and_the_e2e_platform_figure_wins() -> None:
    mod = _run_all()
    e2e = dict(E2E, throughput={"platform_cpu_us_per_sample": 20.0})
    comps = _components(mod, {"e2e": e2e, "storage": {"plain_bytes_per_sample": 100.0},
                              "state": None})  # fmt: skip
    figs = mod.headline_figures(comps)
    assert figs["platform_cpu_us_per_sample"] == 20.0
    assert figs["stored_bytes_per_sample_plain"] is None  # sample_load did not run
    assert figs["state_bytes_per_athlete"] is None and figs["restore_1000_athletes_s"] is None
    assert "restore_1000_athletes_s=none" in mod.last_line(comps)
    assert mod.last_line(_components(mod, {"e2e": None})) is None
