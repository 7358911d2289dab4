"""The per-sample COPY formatter (orjson rows → CSV): NULLs, booleans, and a string holding the
``],[`` separator (the writer then serialises row by row)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kneeload.contracts import wire
from kneeload.storage.writer import (
    _LOAD_COLS,
    LoadBatchDoc,
    Message,
    WatchBatchDoc,
    decode,
    format_load,
    format_watch,
)
from kneeload.topics.catalogue import LOAD_SAMPLES, WATCH_SAMPLES


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
        b'"2026-01-01T00:00:00Z","r1",170,3.25,'
        b'null,null,null,null,null,null,null,12.5,null,null,"a","b"',
        b'"2026-01-01T00:00:00Z","r],[2",170,3.25,'
        b'null,null,null,null,null,null,null,null,null,null,"a","b"',
        b"",
    ]
    fast, _ = format_watch([{**docs[0], "samples": docs[0]["samples"][:1]}])
    assert fast == data.split(b"\n")[0] + b"\n"


def test_load_batch_row_folds_constant_columns() -> None:
    """One sample_load batch is one row (migration 0023): a value array is None when every
    value is null, one element when every sample has the same value, else one per sample;
    evenly spaced times are a step, ids a prefix and an arithmetic run."""
    s = {**_sample("r"), "ground_contact_ms": 240, "ground_contact_estimated": True,
         "grade_pct": 0, "bws_pct": None, "peak_pfj_stress_mpa": 9.5,
         "pfj_impulse_mpa_s": 4.0, "late": False}  # fmt: skip
    t = {**s, "record_id": "r2", "time": "2026-01-01T00:00:01Z", "peak_pfj_stress_mpa": None}
    rows, n = format_load([{"batch_id": "b", "athlete_id": "a", "session_id": "s",
                            "samples": [{**s, "record_id": "r1"}, t]}])  # fmt: skip
    assert n == 2
    (row,) = rows
    got = dict(zip(_LOAD_COLS, row, strict=True))
    assert got["n"] == 2 and got["step_us"] == 1_000_000 and got["offsets_us"] is None
    assert (got["record_prefix"], got["record_from"], got["record_step"]) == ("r", 1, 1)
    assert got["record_suffixes"] is None
    assert got["speed_mps"] == [3.25] and got["bws_pct"] is None and got["late"] == [False]
    assert got["peak_pfj_stress_mpa"] == [9.5, None] and got["estimated"] == [True]
    assert got["last_time"] > got["first_time"]
    odd = {**t, "record_id": "x-17", "time": "2026-01-01T00:00:03.5Z"}
    (row,), _ = format_load([{"batch_id": "b", "athlete_id": "a", "session_id": None,
                              "samples": [{**s, "record_id": "r1"}, t, odd]}])  # fmt: skip
    got = dict(zip(_LOAD_COLS, row, strict=True))
    assert got["step_us"] is None and got["offsets_us"] == [0, 1_000_000, 3_500_000]
    assert got["record_prefix"] == "" and got["record_suffixes"] == ["r1", "r2", "x-17"]


@pytest.mark.parametrize("safe", [False, True])
def test_typed_fast_path_formats_the_same_rows(safe: bool) -> None:
    """The msgspec-decoded batch (the sink's fast path) gives the same CSV as the dict path."""
    watch = {
        "batch_id": "b", "athlete_id": "a", "device_id": "d", "team_id": None,
        "session_id": "s1", "source": "watch", "sub_sport": None,
        "received_at": "2026-01-01T00:00:05Z",
        "samples": [_sample("r1", distance_m=12.5, heart_rate_bpm=151), _sample("r2")],
    }  # fmt: skip
    raw = orjson.dumps(watch)
    m = Message(WATCH_SAMPLES, 0, 0, None, raw)
    assert decode(m) is None and isinstance(m.doc, WatchBatchDoc)
    assert format_watch([m.doc], safe) == format_watch([watch], safe)
    s = {**_sample("r"), "ground_contact_ms": 240.5, "ground_contact_estimated": True,
         "grade_pct": -2, "bws_pct": None, "unit_id": "u1", "peak_pfj_stress_mpa": 9.5,
         "pfj_impulse_mpa_s": 4.0, "late": False}  # fmt: skip
    load = {"batch_id": "b", "athlete_id": "a", "team_id": "t", "session_id": None,
            "estimate": True, "samples": [s, {**s, "record_id": "r9", "late": True}]}  # fmt: skip
    m = Message(LOAD_SAMPLES, 0, 0, None, orjson.dumps(load))
    assert decode(m) is None and isinstance(m.doc, LoadBatchDoc)
    assert format_load([m.doc], safe) == format_load([load], safe)
    # the internal binary frames take the same typed path to the same rows
    for topic, event, fmt, typ in (
        (WATCH_SAMPLES, watch, format_watch, WatchBatchDoc),
        (LOAD_SAMPLES, load, format_load, LoadBatchDoc),
    ):
        m = Message(topic, 0, 0, None, wire.encode(event))
        assert decode(m) is None and isinstance(m.doc, typ)
        assert fmt([m.doc], safe) == fmt([event], safe)
        # a string JSON would escape sends a frame the slow, fully checked way too
        odd = {**event, "samples": [{**x, "record_id": 'r"q'} for x in event["samples"]]}
        m = Message(topic, 0, 0, None, wire.encode(odd))
        dead = decode(m)
        assert dead is not None and dead["reason_code"] == "schema_invalid"


def test_typed_decoder_refusal_falls_back_to_the_schema() -> None:
    """A batch the typed decoder refuses is checked against its JSON Schema in full: a dead
    letter naming the schema, not a crash."""
    bad = {"batch_id": "b", "athlete_id": "a", "device_id": "d",
           "samples": [{"time": "2026-01-01T00:00:00Z", "record_id": "r", "cadence_spm": "fast",
                        "speed_mps": 3.0}]}  # fmt: skip
    m = Message(WATCH_SAMPLES, 0, 0, None, orjson.dumps(bad))
    dead = decode(m)
    assert dead is not None and dead["reason_code"] == "schema_invalid"
    assert isinstance(m.doc, dict)
