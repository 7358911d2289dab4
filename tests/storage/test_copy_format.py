"""The per-sample COPY formatter (orjson rows → CSV): NULLs, booleans, and a string holding the
``],[`` separator (the writer then serialises row by row)."""

from __future__ import annotations

from typing import Any

from kneeload.storage.writer import format_load, format_watch


def _sample(rid: str, **kw: Any) -> dict[str, Any]:
    return {"time": "2026-01-01T00:00:00Z", "record_id": rid, "cadence_spm": 170,
            "speed_mps": 3.25, **kw}  # fmt: skip


def test_watch_rows_null_and_separator() -> None:
    docs: list[dict[str, Any]] = [
        {
            "athlete_id": "a",
            "device_id": "d",
            "session_id": None,
            "batch_id": "b",
            "samples": [_sample("r1", distance_m=12.5), _sample("r],[2")],
        }
    ]
    data, n = format_watch(docs, safe=True)
    assert n == 2
    assert data.split(b"\n") == [
        b'"2026-01-01T00:00:00Z","r1","a","d",null,"b",170,3.25,'
        b"null,null,null,null,null,null,null,12.5,null",
        b'"2026-01-01T00:00:00Z","r],[2","a","d",null,"b",170,3.25,'
        b"null,null,null,null,null,null,null,null,null",
        b"",
    ]
    fast, _ = format_watch([{**docs[0], "samples": docs[0]["samples"][:1]}])
    assert fast == data.split(b"\n")[0] + b"\n"


def test_load_rows_booleans() -> None:
    s = {**_sample("r"), "ground_contact_ms": 240, "ground_contact_estimated": True,
         "grade_pct": 0, "bws_pct": None, "peak_pfj_stress_mpa": 9.5,
         "pfj_impulse_mpa_s": 4.0, "late": False}  # fmt: skip
    data, n = format_load([{"athlete_id": "a", "session_id": "s", "samples": [s]}])
    assert n == 1
    assert data == (
        b'"2026-01-01T00:00:00Z","r","a","s",3.25,170,240,true,0,null,null,9.5,4.0,false\n'
    )
