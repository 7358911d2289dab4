"""`kneeload pfj` and `kneeload acwr` through click's CliRunner."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import orjson
import polars as pl
from click.testing import CliRunner

from kneeload.cli import root


def test_pfj_prints_one_json_object() -> None:
    r = CliRunner().invoke(
        root,
        [
            "pfj",
            "--body-mass-kg",
            "75",
            "--speed-mps",
            "3.4",
            "--cadence-spm",
            "170",
            "--ground-contact-ms",
            "250",
            "--bws-pct",
            "20",
        ],
    )
    assert r.exit_code == 0, r.output
    out = orjson.loads(r.output)
    for k in (
        "peak_pfj_stress_mpa",
        "pfj_impulse_per_step_mpa_s",
        "pfj_load_per_km",
        "effective_body_weight_n",
        "peak_vgrf_bw",
        "assumptions",
    ):
        assert k in out
    assert out["estimate"] is True and out["peak_pfj_stress_mpa"] == 8.0
    assert out["ground_contact_estimated"] is False


def test_pfj_bad_input_names_field() -> None:
    r = CliRunner().invoke(
        root,
        [
            "pfj",
            "--body-mass-kg",
            "75",
            "--speed-mps",
            "3.4",
            "--cadence-spm",
            "170",
            "--bws-pct",
            "100",
        ],
    )
    assert r.exit_code != 0 and "--bws-pct" in r.output
    r = CliRunner().invoke(
        root,
        [
            "pfj",
            "--body-mass-kg",
            "75",
            "--speed-mps",
            "3.4",
            "--cadence-spm",
            "170",
            "--ground-contact-ms",
            "400",
        ],
    )
    assert r.exit_code != 0 and "--ground-contact-ms" in r.output


def _daily(tmp_path: Path) -> Path:
    p = tmp_path / "daily.csv"
    rows = ["athlete_id,date,load"]
    d0 = dt.date(2024, 1, 1)
    for i in range(40):
        if i % 3:
            rows.append(f"ath-1,{d0 + dt.timedelta(days=i)},{100 + i}")
    rows.append(f"ath-2,{d0},50")
    p.write_text("\n".join(rows) + "\n")
    return p


def test_acwr_csv_single_method(tmp_path: Path) -> None:
    r = CliRunner().invoke(root, ["acwr", "--input", str(_daily(tmp_path))])
    assert r.exit_code == 0, r.output
    df = pl.read_csv(io.StringIO(r.output))
    assert df.columns[:6] == ["athlete_id", "date", "load", "acute", "chronic", "acwr"]
    assert df.height == 38 + 1  # zero-filled span of ath-1 (days 1..38) + ath-2
    assert df.filter(pl.col("athlete_id") == "ath-1")["acwr"].null_count() == 27  # coverage rule


def test_acwr_all_methods_parquet_roundtrip(tmp_path: Path) -> None:
    src = pl.read_csv(_daily(tmp_path), try_parse_dates=True)
    pq_in = tmp_path / "in.parquet"
    src.write_parquet(pq_in)
    pq_out = tmp_path / "out.parquet"
    r = CliRunner().invoke(
        root,
        [
            "acwr",
            "--input",
            str(pq_in),
            "--method",
            "all",
            "--min-chronic-days",
            "0",
            "--output",
            str(pq_out),
        ],
    )
    assert r.exit_code == 0, r.output
    out = pl.read_parquet(pq_out)
    for m in ("ewma", "rac", "rau"):
        assert {f"acute_{m}", f"chronic_{m}", f"acwr_{m}"} <= set(out.columns)
    assert out["acwr_ewma"].null_count() == 0


def test_acwr_bad_input(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("athlete_id,day,load\na,2024-01-01,1\n")
    r = CliRunner().invoke(root, ["acwr", "--input", str(p)])
    assert r.exit_code != 0 and "date" in r.output
    p.write_text("athlete_id,date,load\na,2024-01-01,-1\n")
    r = CliRunner().invoke(root, ["acwr", "--input", str(p)])
    assert r.exit_code != 0 and "load" in r.output
    r = CliRunner().invoke(root, ["acwr", "--help"])
    assert "--min-chronic-days" in r.output and "uncoupled" in r.output


def _pfj(*args: str) -> object:
    return CliRunner().invoke(root, ["pfj", "--body-mass-kg", "75", *args])


def test_pfj_refuses_implausible_inputs_with_reason_and_bound() -> None:
    r = _pfj("--speed-mps", "12", "--cadence-spm", "140")
    assert r.exit_code == 2  # type: ignore[attr-defined]
    out = r.output  # type: ignore[attr-defined]
    assert "step_length_implausible: step length 5.14 m implausible (> 2.5 m)" in out
    assert "--speed-mps / --cadence-spm" in out
    r = _pfj("--speed-mps", "3.4", "--cadence-spm", "30")
    assert r.exit_code == 2 and "cadence_implausible" in r.output  # type: ignore[attr-defined]
    r = _pfj("--speed-mps", "1.3", "--cadence-spm", "96")
    assert r.exit_code == 2 and "walking" in r.output  # type: ignore[attr-defined]
    r = _pfj("--speed-mps", "3.4", "--cadence-spm", "170", "--ground-contact-ms", "50")
    assert "--ground-contact-ms" in r.output and "(100–450 ms)" in r.output  # type: ignore[attr-defined]


def test_pfj_json_flags_every_estimated_value() -> None:
    r = _pfj("--speed-mps", "3.4", "--cadence-spm", "85")  # strides/min, no contact
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    out = orjson.loads(r.output)  # type: ignore[attr-defined]
    assert out["cadence_corrected"] is True and out["cadence_spm"] == 170.0
    assert out["ground_contact_estimated"] is True and out["ground_contact_ms"] == 250.0
    assert out["ground_contact_uncertainty_ms"] == 25.0
    assert out["peak_pfj_stress_uncertainty_mpa"] == 1.0
    assert out["step_length_estimated"] is True and out["peak_vgrf_bw_estimated"] is True
    assert out["estimated"] == {
        "peak_pfj_stress_mpa": True, "pfj_impulse_per_step_mpa_s": True, "pfj_load_per_km": True,
        "peak_vgrf_bw": True, "step_length_m": True, "ground_contact_ms": True,
        "cadence_spm": True,
    }  # fmt: skip
    assert any("doubled to 170" in a for a in out["assumptions"])


def test_pfj_bounds_lists_every_bound_with_its_source() -> None:
    r = CliRunner().invoke(root, ["pfj", "--bounds"])
    assert r.exit_code == 0, r.output
    out = orjson.loads(r.output)
    assert len(out["bounds"]) == 10 and all(b["source"] for b in out["bounds"])
    assert {"name": "running step length", "low": 0.4, "high": 2.5, "unit": "m"}.items() <= (
        out["bounds"][4].items()
    )
