"""FIT activity files for running sessions (the demo's "late watch sync", test files), written
by the official Garmin FIT SDK's ``Encoder`` (PyPI ``garmin-fit-sdk``).

The SDK owns the format: file header and CRCs, definition messages, base types, scales and
offsets from its profile, profile type names ('activity', 'running', 'treadmill'). This module
only maps a session's samples, in natural units, onto the profile's messages:

``file_id``, ``event`` (timer start), ``record`` per sample, ``event`` (timer stop_all),
``lap``, ``session`` and ``activity`` — the message sequence of a watch's activity file.

=====================  =======================  ============================================
record field           FIT profile unit          from
=====================  =======================  ============================================
timestamp              s since 1989-12-31Z       ``time`` (timezone-aware)
heart_rate             bpm                       ``heart_rate_bpm``
cadence + fractional   strides/min (running)     ``cadence_spm`` / 2, fraction in 1/128
distance               m                         ``distance_m``
speed, enhanced_speed  m/s                       ``speed_mps``
grade                  %                         ``grade_pct``
vertical_oscillation   mm                        ``vertical_oscillation_mm``
stance_time            ms (ground contact)       ``ground_contact_ms``
vertical_ratio         %                         ``vertical_ratio_pct``
step_length            mm                        ``step_length_mm``
=====================  =======================  ============================================

A missing (None or non-finite) value is left out of the message, so decoders report it as
absent. Values are clamped to what the field's stored type can hold.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from garmin_fit_sdk import Encoder, Profile

__all__ = ["FIT_EPOCH", "SUB_SPORTS", "FitRecord", "encode_activity", "fit_timestamp"]

#: FIT time zero, 1989-12-31T00:00:00Z.
FIT_EPOCH = dt.datetime(1989, 12, 31, tzinfo=dt.UTC)

#: Running sub-sports a session may carry (profile names; None = generic).
SUB_SPORTS = (None, "generic", "treadmill", "street", "trail", "track")

_MESG = Profile["mesg_num"]


def fit_timestamp(t: dt.datetime) -> int:
    """Seconds since the FIT epoch (UTC); ``t`` must be timezone-aware."""
    if t.tzinfo is None:
        raise ValueError("FIT timestamps need a timezone-aware datetime")
    return int((t - FIT_EPOCH).total_seconds())


@dataclass(frozen=True, slots=True)
class FitRecord:
    """One running sample in natural units (steps/min, m/s, ms, mm, %, m, bpm)."""

    time: dt.datetime
    cadence_spm: float | None
    speed_mps: float | None
    ground_contact_ms: float | None = None
    vertical_oscillation_mm: float | None = None
    vertical_ratio_pct: float | None = None
    step_length_mm: float | None = None
    heart_rate_bpm: int | None = None
    grade_pct: float | None = None
    distance_m: float | None = None


def _clamp(value: float | None, lo: float, hi: float) -> float | None:
    """``value`` within [lo, hi] (the stored type's range in natural units), None if missing."""
    if value is None or not math.isfinite(value):
        return None
    return max(lo, min(hi, value))


def _record(r: FitRecord) -> dict[str, Any]:
    # running cadence is strides/min: whole strides in `cadence`, the rest in 1/128 units
    q = None if r.cadence_spm is None else round(r.cadence_spm / 2.0 * 128)
    return {
        "mesg_num": _MESG["RECORD"],
        "timestamp": r.time,
        "heart_rate": _clamp(r.heart_rate_bpm, 0, 254),
        "cadence": None if q is None else min(254, q // 128),
        "fractional_cadence": None if q is None else (q % 128) / 128.0,
        "distance": _clamp(r.distance_m, 0, 42_949_672.0),
        "speed": _clamp(r.speed_mps, 0, 65.534),
        "enhanced_speed": _clamp(r.speed_mps, 0, 4_294_967.0),
        "grade": _clamp(r.grade_pct, -327.67, 327.66),
        "vertical_oscillation": _clamp(r.vertical_oscillation_mm, 0, 6553.4),
        "stance_time": _clamp(r.ground_contact_ms, 0, 6553.4),
        "vertical_ratio": _clamp(r.vertical_ratio_pct, 0, 655.34),
        "step_length": _clamp(r.step_length_mm, 0, 6553.4),
    }


def encode_activity(
    records: Iterable[FitRecord],
    *,
    sub_sport: str | None = None,
    serial_number: int = 1,
    product: int = 1,
    created: dt.datetime | None = None,
) -> bytes:
    """A complete FIT activity file of one running session with these samples.

    Records must be in time order. ``sub_sport`` 'treadmill', 'trail', 'track',
    'street' or None (generic) is written to the session message.
    """
    recs = list(records)
    if not recs:
        raise ValueError("a FIT activity needs at least one record")
    if sub_sport not in SUB_SPORTS:
        raise ValueError(
            f"unsupported sub_sport {sub_sport!r}; one of {sorted(map(str, SUB_SPORTS))}"
        )
    for r in recs:
        fit_timestamp(r.time)  # refuses naive datetimes with a clear message
    start, end = recs[0].time, recs[-1].time
    enc = Encoder()
    enc.write_mesg(
        {
            "mesg_num": _MESG["FILE_ID"],
            "type": "activity",
            "manufacturer": "development",
            "product": product,
            "serial_number": serial_number,
            "time_created": created or start,
        }
    )
    timer = {"mesg_num": _MESG["EVENT"], "event": "timer"}
    enc.write_mesg({**timer, "timestamp": start, "event_type": "start"})
    for r in recs:
        enc.write_mesg(_record(r))
    enc.write_mesg({**timer, "timestamp": end, "event_type": "stop_all"})

    distance = next((r.distance_m for r in reversed(recs) if r.distance_m is not None), 0.0)
    elapsed_s = (end - start).total_seconds()
    cadences = [r.cadence_spm for r in recs if r.cadence_spm is not None]
    rates = [r.heart_rate_bpm for r in recs if r.heart_rate_bpm is not None]
    totals = {
        "timestamp": end,
        "start_time": start,
        "total_elapsed_time": elapsed_s,
        "total_timer_time": elapsed_s,
        "total_distance": distance,
    }
    enc.write_mesg({"mesg_num": _MESG["LAP"], "event": "lap", "event_type": "stop", **totals})
    enc.write_mesg(
        {
            "mesg_num": _MESG["SESSION"],
            "event": "session",
            "event_type": "stop",
            **totals,
            "sport": "running",
            "sub_sport": sub_sport or "generic",
            "avg_speed": _clamp(distance / elapsed_s if elapsed_s > 0 else None, 0, 65.534),
            "avg_heart_rate": round(sum(rates) / len(rates)) if rates else None,
            "avg_cadence": round(sum(cadences) / len(cadences) / 2.0) if cadences else None,
            "first_lap_index": 0,
            "num_laps": 1,
        }
    )
    enc.write_mesg(
        {
            "mesg_num": _MESG["ACTIVITY"],
            "timestamp": end,
            "total_timer_time": elapsed_s,
            "num_sessions": 1,
            "type": "manual",
            "event": "activity",
            "event_type": "stop",
        }
    )
    return bytes(enc.close())
