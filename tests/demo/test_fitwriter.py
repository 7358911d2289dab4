"""FIT files written through the Garmin FIT SDK's encoder read back sample for sample with two
independent decoders (fitdecode, which the gateway uses, and the SDK's own Decoder)."""

from __future__ import annotations

import datetime as dt
import importlib
import io

import fitdecode
import pytest
from garmin_fit_sdk import CrcCalculator, Decoder, Stream

from kneeload.demo.fitwriter import FitRecord, encode_activity, fit_timestamp
from kneeload.demo.sim import SimConfig, build_scenario

T0 = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC)


def _records(n: int = 120) -> list[FitRecord]:
    return [
        FitRecord(
            time=T0 + dt.timedelta(seconds=i + (i // 30)),  # irregular: a 2 s gap every 30
            cadence_spm=164.0 + (i % 9) * 0.75,
            speed_mps=2.8 + (i % 17) * 0.05,
            ground_contact_ms=240.0 + (i % 5),
            vertical_oscillation_mm=85.3,
            vertical_ratio_pct=7.85,
            step_length_mm=1034.0,
            heart_rate_bpm=140 + i % 20,
            grade_pct=-3.25 + (i % 7),
            distance_m=3.1 * i,
        )
        for i in range(n)
    ]


def _decode(data: bytes) -> tuple[list[dict], dict[str, list[dict]]]:
    records: list[dict] = []
    other: dict[str, list[dict]] = {}
    with fitdecode.FitReader(io.BytesIO(data), check_crc=fitdecode.CrcCheck.ENABLED) as fr:
        for frame in fr:
            if isinstance(frame, fitdecode.FitDataMessage):
                values = {f.name: f.value for f in frame.fields}
                if frame.name == "record":
                    records.append(values)
                else:
                    other.setdefault(frame.name, []).append(values)
    return records, other


def crc16(data: bytes) -> int:
    return int(CrcCalculator.calculate_crc(data, 0, len(data)))


def test_the_sdk_decoder_accepts_the_file_with_its_integrity_checks() -> None:
    data = encode_activity(_records(), sub_sport="trail")
    checker = Decoder(Stream.from_byte_array(bytearray(data)))
    assert checker.is_fit() and checker.check_integrity()
    messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
    assert not errors
    assert len(messages["record_mesgs"]) == 120
    assert messages["session_mesgs"][0]["sub_sport"] == "trail"


def test_round_trip_with_fitdecode() -> None:
    recs = _records()
    data = encode_activity(recs, sub_sport="treadmill")
    decoded, other = _decode(data)
    assert len(decoded) == len(recs)
    for r, d in zip(recs, decoded, strict=True):
        assert d["timestamp"] == r.time
        steps = 2 * (d["cadence"] + d["fractional_cadence"])
        assert steps == pytest.approx(r.cadence_spm, abs=2 / 128)
        assert d["enhanced_speed"] == pytest.approx(r.speed_mps, abs=1e-3)
        assert d["speed"] == pytest.approx(r.speed_mps, abs=1e-3)
        assert d["stance_time"] == pytest.approx(r.ground_contact_ms, abs=0.1)
        assert d["vertical_oscillation"] == pytest.approx(r.vertical_oscillation_mm, abs=0.1)
        assert d["vertical_ratio"] == pytest.approx(r.vertical_ratio_pct, abs=0.01)
        assert d["step_length"] == pytest.approx(r.step_length_mm, abs=0.1)
        assert d["heart_rate"] == r.heart_rate_bpm
        assert d["grade"] == pytest.approx(r.grade_pct, abs=0.01)
        assert d["distance"] == pytest.approx(r.distance_m, abs=0.01)
    assert other["file_id"][0]["type"] == "activity"
    (session,) = other["session"]
    assert session["sport"] == "running" and session["sub_sport"] == "treadmill"
    assert session["start_time"] == recs[0].time
    assert other["activity"][0]["num_sessions"] == 1


def test_missing_values_decode_as_none_and_corruption_is_detected() -> None:
    r = FitRecord(T0, cadence_spm=170.0, speed_mps=3.0)
    data = encode_activity([r, FitRecord(T0 + dt.timedelta(seconds=1), 171.0, 3.1)])
    decoded, _ = _decode(data)
    assert decoded[0].get("stance_time") is None and decoded[0].get("heart_rate") is None
    broken = bytearray(data)
    broken[40] ^= 0xFF
    with pytest.raises(fitdecode.FitCRCError):
        _decode(bytes(broken))


def test_header_layout() -> None:
    data = encode_activity(_records(3))
    assert data[0] == 14 and data[8:12] == b".FIT"
    assert int.from_bytes(data[4:8], "little") == len(data) - 14 - 2
    assert int.from_bytes(data[12:14], "little") == crc16(data[:12])
    assert int.from_bytes(data[-2:], "little") == crc16(data[:-2])
    assert fit_timestamp(dt.datetime(1989, 12, 31, tzinfo=dt.UTC)) == 0


def test_simulated_late_session_round_trips_through_the_ingest_decoder() -> None:
    """The late upload of the demo decodes, with the gateway's own decoder, to its samples."""
    from kneeload.demo.fitfile import session_fit

    sc = build_scenario(
        SimConfig(end=dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC), duration_scale=0.3)
    )
    plan = sc.late_session
    data = session_fit(plan)
    smp = plan.samples()
    decoded, _ = _decode(data)
    assert len(decoded) == len(smp)
    try:
        activity = importlib.import_module("kneeload.ingest.activity")
    except ModuleNotFoundError:
        pytest.skip("the ingest FIT decoder (kneeload.ingest.activity) is not there yet")
    ingest_samples = _ingest_decode(activity, data)
    assert len(ingest_samples) == len(smp)
    for s, t, cad, v, gc in zip(
        ingest_samples,
        smp.t.tolist(),
        smp.cadence_spm.tolist(),
        smp.speed_mps.tolist(),
        smp.ground_contact_ms.tolist(),
        strict=True,
    ):
        assert _epoch(s["time"]) == pytest.approx(round(t), abs=0.001)
        assert s["cadence_spm"] == pytest.approx(cad, abs=1 / 64 + 1e-9)
        assert s["speed_mps"] == pytest.approx(v, abs=1e-3)
        assert s["ground_contact_ms"] == pytest.approx(gc, abs=0.1)


def _epoch(t: object) -> float:
    if isinstance(t, dt.datetime):
        return t.timestamp()
    return dt.datetime.fromisoformat(str(t).replace("Z", "+00:00")).timestamp()


def _ingest_decode(activity: object, data: bytes) -> list[dict]:
    """Samples as the ingest gateway's decoder yields them (decode_fit + normalise)."""
    decoded = activity.decode_fit(data)  # type: ignore[attr-defined]
    out = activity.normalise(decoded, device_id="watch-test")  # type: ignore[attr-defined]
    assert not out.rejected, out.rejected[:3]
    return list(out.samples)
