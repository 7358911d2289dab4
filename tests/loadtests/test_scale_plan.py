"""The capacity plan's arithmetic (loadtests/scale_plan.py), checked by hand on round numbers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "scale_plan", ROOT / "loadtests" / "scale_plan.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["scale_plan"] = mod
    spec.loader.exec_module(mod)
    return mod


def _results(tmp_path: Path) -> Path:
    cpu = {"ingest": 10.0, "worker": 20.0, "sink": 5.0, "kafka": 2.5, "postgres": 2.5,
           "bench_client": 99.0}  # fmt: skip
    doc = {
        "run_id": "r1", "commit": "c1",
        "components": {
            "ingest": {"result": {"cpus": 2}},
            "storage": {"result": {"timescale_bytes_per_sample_compressed": 40.0}},
            "e2e": {"result": {
                "end_to_end_samples_per_s": 30_000.0, "raw_samples_per_s": 200_000.0,
                "throughput": {"samples": 1_000, "cpu_us_per_sample": cpu},
                "kafka_bytes_per_sample": {"baseline.raw.0.x": 999.0, "watch.samples": 100.0,
                                           "worker-athletes-changelog": 50.0},
                "table_sizes": {"kneeload.watch_samples": {"rows": 1_000, "bytes": 100_000},
                                "kneeload.sample_load_batches": {"rows": 10, "bytes": 20_000}},
            }},
        },
    }  # fmt: skip
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(doc))
    return path


def test_plan_for_two_thousand_runners_by_hand(tmp_path: Path) -> None:
    sp = _module()
    x = sp.load_inputs(_results(tmp_path))
    assert "baseline.raw.0.x" not in x.kafka_bytes_per_sample  # bench-only topics excluded
    assert x.pg_bytes_per_sample == {"kneeload.watch_samples": 100.0,
                                     "kneeload.sample_load_batches": 20.0}  # fmt: skip
    kafka_days = {"watch.samples": 7.0}
    pg_days = {"kneeload.watch_samples": 180.0, "kneeload.sample_load_batches": 30.0}
    p = sp.plan_for(2_000, x, kafka_days, pg_days)
    assert p.peak_samples_per_s == pytest.approx(300.0)  # 15 % of 2,000
    assert p.design_samples_per_s == pytest.approx(900.0)  # 3 × peak
    assert p.samples_per_day == pytest.approx(7.2e6)  # 1 h at 1 Hz each
    assert p.cores["worker"] == pytest.approx(900 * 20e-6 / 0.5)  # 0.036, at ≤ 50 % busy
    assert "bench_client" not in p.cores
    # Kafka: (100 B × 7 d + 50 B × 1 d changelog) × 7.2 M/day × RF 3 × 1.3 headroom
    assert p.kafka_disk_gb == pytest.approx(750 * 7.2e6 * 3 * 1.3 / 1e9)
    assert p.kafka_mb_per_s == pytest.approx(900 * 150 / 1e6)
    # PostgreSQL: 120 B/sample/day; 100 B × 180 d + 20 B × 30 d at full retention
    assert p.pg_gb_per_day == pytest.approx(120 * 7.2e6 / 1e9)
    assert p.pg_full_retention_gb == pytest.approx((18_000 + 600) * 7.2e6 / 1e9)
    # raw samples compressed to 40 B on TimescaleDB: 40 × 180 + 20 × 30
    assert p.pg_full_retention_tsdb_gb == pytest.approx((7_200 + 600) * 7.2e6 / 1e9)


def test_write_replaces_only_the_generated_section(tmp_path: Path) -> None:
    sp = _module()
    doc = f"# plan\n\nprose before\n\n{sp.BEGIN}\nold\n{sp.END}\n\nprose after\n"
    out = sp.splice(doc, f"{sp.BEGIN}\nnew\n{sp.END}")
    assert out == f"# plan\n\nprose before\n\n{sp.BEGIN}\nnew\n{sp.END}\n\nprose after\n"
    assert sp.splice("# plan\n", "GEN").endswith("\n\nGEN\n")


def test_unreadable_results_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sp = _module()
    bad = tmp_path / "latest.json"
    bad.write_text("{}")
    assert sp.main(["--results", str(bad)]) == 2
    assert "cannot read the bench figures" in capsys.readouterr().err


def test_raw_samples_stored_by_batch_count_per_sample(tmp_path: Path) -> None:
    """On plain since 0029 watch_samples is a view (0 bytes); the batch table holds the bytes."""
    sp = _module()
    path = _results(tmp_path)
    doc = json.loads(path.read_text())
    doc["components"]["e2e"]["result"]["table_sizes"] = {
        "kneeload.watch_samples": {"rows": 1_000, "bytes": 0},
        "kneeload.watch_sample_batches": {"rows": 1_000, "bytes": 40_000},
        "kneeload.minute_load": {"error": "relation does not exist"},
    }
    path.write_text(json.dumps(doc))
    x = sp.load_inputs(path)
    assert x.pg_bytes_per_sample == {"kneeload.watch_sample_batches": 40.0}
    p = sp.plan_for(1_000, x, {}, {"kneeload.watch_sample_batches": 180.0})
    assert p.pg_full_retention_gb == pytest.approx(40 * 180 * 3.6e6 / 1e9)
    assert p.pg_full_retention_tsdb_gb == pytest.approx(40 * 180 * 3.6e6 / 1e9)  # 40 B either way


def test_plain_per_sample_tables_come_from_the_plain_benches(tmp_path: Path) -> None:
    """e2e's database may be TimescaleDB: raw and derived bytes come from storage/sample_load."""
    sp = _module()
    path = _results(tmp_path)
    doc = json.loads(path.read_text())
    doc["components"]["storage"]["result"]["plain_bytes_per_sample"] = 36.0
    doc["components"]["sample_load"] = {"result": {"bytes_per_sample_after": 41.0}}
    path.write_text(json.dumps(doc))
    x = sp.load_inputs(path)
    assert x.pg_bytes_per_sample == {"kneeload.watch_sample_batches": 36.0,
                                     "kneeload.sample_load_batches": 41.0}  # fmt: skip
