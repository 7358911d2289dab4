"""kneeload.core.session: session and minute aggregates, checked against numbers by hand."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kneeload.core.session import (
    LoadSample,
    LoadSums,
    MinuteSums,
    add_samples,
    add_to_minutes,
    coverage_pct,
    mean_per_sample,
    minute_figures,
    minute_start_ms,
    session_figures,
    session_load_per_km,
)

T0 = 1_717_999_200_000  # 2024-06-10T06:00:00Z, a minute boundary


def three_samples() -> list[LoadSample]:
    # 3 s at 3 m/s, 4 m/s, 2 m/s; the second has no estimate (load 0, no peak)
    return [
        LoadSample(T0, 3.0, 170.0, 10.0, 1.0, 2.0, 8.0, "u1"),
        LoadSample(T0 + 1000, 4.0, 180.0, 20.0, 1.0, 0.0, None, None),
        LoadSample(T0 + 3000, 2.0, 160.0, 0.0, 2.0, 3.0, 9.5, None),
    ]


def test_sums_by_hand() -> None:
    s = LoadSums()
    add_samples(s, three_samples())
    assert s.samples == 3
    assert s.duration_s == 4.0  # 1 + 1 + 2
    assert s.distance_m == 3.0 + 4.0 + 4.0  # Σ v·Δt = 3·1 + 4·1 + 2·2
    assert (s.speed_sum_mps, s.cadence_sum_spm, s.bws_sum_pct) == (9.0, 510.0, 30.0)
    assert s.peak_pfj_stress_mpa == 9.5
    assert s.pfj_load_mpa_s == 5.0


def test_session_figures_by_hand() -> None:
    s = LoadSums()
    add_samples(s, three_samples())
    # span: (T0+3000 − T0)/1000 + 1 s credited to the first sample = 4 s; Σ Δt = 4 s
    f = session_figures(s, T0, T0 + 3000, 1.0)
    assert f.mean_speed_mps == 3.0  # 9 / 3, per sample (not distance / duration = 2.75)
    assert f.mean_cadence_spm == 170.0
    assert f.mean_bws_pct == 10.0
    assert f.pfj_load_per_km == pytest.approx(5.0 / 0.011)  # 5 MPa·s over 11 m
    assert f.coverage_pct == 100.0
    # a 6 s pause inside a 10 s span that the samples credit 4 s of: 40 %
    assert session_figures(s, T0, T0 + 9000, 1.0).coverage_pct == pytest.approx(40.0)


def test_edge_values() -> None:
    assert mean_per_sample(10.0, 0) is None
    assert session_load_per_km(12.0, 0.0) is None
    assert session_load_per_km(12.0, 2000.0) == 6.0
    assert coverage_pct(10.0, T0, T0, 0.0) == 0.0  # no span
    assert coverage_pct(30.0, T0, T0 + 9000, 1.0) == 100.0  # clamped


def test_minutes_by_hand() -> None:
    minutes: dict[str, MinuteSums] = {}
    samples = [
        LoadSample(T0 + 58_000, 3.0, 170.0, 0.0, 1.0, 1.0, 7.0, "u1"),
        LoadSample(T0 + 59_000, 3.0, 170.0, 0.0, 1.0, 1.0, 7.5, None),
        LoadSample(T0 + 60_000, 5.0, 180.0, 40.0, 1.0, 2.0, None, "u2"),
    ]
    touched = add_to_minutes(minutes, samples)
    assert touched == {str(T0), str(T0 + 60_000)}
    first, second = minutes[str(T0)], minutes[str(T0 + 60_000)]
    assert (first.samples, first.distance_m, first.pfj_load_mpa_s) == (2, 6.0, 2.0)
    assert (first.peak_pfj_stress_mpa, first.unit_id) == (7.5, "u1")  # latest non-null unit
    f = minute_figures(second)
    assert (f.samples, f.mean_speed_mps, f.mean_bws_pct, f.pfj_load_mpa_s) == (1, 5.0, 40.0, 2.0)
    assert f.peak_pfj_stress_mpa == 0.0  # a minute without an estimate reports 0 MPa
    assert second.unit_id == "u2"
    # capped at one minute's worth
    big = MinuteSums(61, 65.0, 1100.0, 183.0, 10370.0, 0.0, 9.0, 40.0)
    assert (minute_figures(big).duration_s, minute_figures(big).distance_m) == (60.0, 1000.0)
    assert minute_start_ms(T0 + 59_999) == T0


def test_minute_sums_decode_the_legacy_positional_rows() -> None:
    """The worker's state stored a minute as ``[n, dur, dist, Σv, Σf, Σbws, peak, load,
    unit]``: the struct's array layout is that list, so old state decodes unchanged."""
    old = [2, 2.0, 6.0, 6.0, 340.0, 0.0, 7.5, 2.0, "u1"]
    m = msgspec.json.decode(msgspec.json.encode(old), type=MinuteSums)
    assert m == MinuteSums(2, 2.0, 6.0, 6.0, 340.0, 0.0, 7.5, 2.0, "u1")
    assert msgspec.to_builtins(m) == old


@given(st.lists(st.floats(0.0, 7.0), min_size=1, max_size=50), st.integers(1, 49))
def test_incremental_equals_one_go(speeds: list[float], cut: int) -> None:
    samples = [
        LoadSample(T0 + 1000 * i, v, 170.0, 0.0, 1.0, v * 0.5, v) for i, v in enumerate(speeds)
    ]
    whole, parts = LoadSums(), LoadSums()
    add_samples(whole, samples)
    add_samples(parts, samples[:cut])
    add_samples(parts, samples[cut:])
    assert whole == parts  # the same additions in the same order: identical floats
