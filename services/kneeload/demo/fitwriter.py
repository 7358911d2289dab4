"""A small, correct FIT encoder for running activities (the demo's "late watch sync").

fitdecode (and the Garmin SDKs most tools use) only *decode*; the demo needs to
produce a FIT file the way a watch would, so this module writes one:

* a 14-byte file header (protocol 2.0, profile 21.32) with its own CRC;
* definition + data messages for ``file_id`` (0), ``event`` (21, timer start/stop),
  ``record`` (20), ``lap`` (19), ``session`` (18) and ``activity`` (34);
* the trailing file CRC over header and data.

Field numbers, base types and scales follow the FIT SDK profile (DOMAIN.md §4):

=====================  ====  =======  ======  =========================
record field            #     type     scale   stored unit
=====================  ====  =======  ======  =========================
timestamp               253   uint32   1       s since 1989-12-31T00:00Z
heart_rate              3     uint8    1       bpm
cadence                 4     uint8    1       strides/min (running)
distance                5     uint32   100     m
speed                   6     uint16   1000    m/s
grade                   9     sint16   100     %
vertical_oscillation    39    uint16   10      mm
stance_time             41    uint16   10      ms (ground contact time)
fractional_cadence      53    uint8    128     strides/min
enhanced_speed          73    uint32   1000    m/s
vertical_ratio          83    uint16   100     %
step_length             85    uint16   10      mm
=====================  ====  =======  ======  =========================

Running cadence is written as strides/min: a sample at 171 steps/min becomes
cadence 85 + fractional_cadence 0.5 (64/128). Missing values are written as the base
type's "invalid" value, which decoders report as None.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["FIT_EPOCH", "FitRecord", "crc16", "encode_activity", "fit_timestamp"]

#: FIT time zero, 1989-12-31T00:00:00Z.
FIT_EPOCH = dt.datetime(1989, 12, 31, tzinfo=dt.UTC)

_CRC_TABLE = (
    0x0000,
    0xCC01,
    0xD801,
    0x1400,
    0xF001,
    0x3C00,
    0x2800,
    0xE401,
    0xA001,
    0x6C00,
    0x7800,
    0xB401,
    0x5000,
    0x9C01,
    0x8801,
    0x4400,
)

# base types: (id byte, struct code, invalid value)
_ENUM = (0x00, "B", 0xFF)
_UINT8 = (0x02, "B", 0xFF)
_SINT16 = (0x83, "h", 0x7FFF)
_UINT16 = (0x84, "H", 0xFFFF)
_UINT32 = (0x86, "I", 0xFFFFFFFF)
_UINT32Z = (0x8C, "I", 0x00000000)

_PROTOCOL_VERSION = 0x20  # 2.0
_PROFILE_VERSION = 2132  # 21.32

# global message numbers
_FILE_ID, _SESSION, _LAP, _RECORD, _EVENT, _ACTIVITY = 0, 18, 19, 20, 21, 34

# enums
_FILE_ACTIVITY = 4
_MANUFACTURER_DEVELOPMENT = 255
_SPORT_RUNNING = 1
_SUB_SPORT = {None: 0, "generic": 0, "treadmill": 1, "street": 2, "trail": 3, "track": 4}
_EVENT_TIMER, _EVENT_LAP, _EVENT_SESSION, _EVENT_ACTIVITY = 0, 9, 8, 26
_EVENT_TYPE_START, _EVENT_TYPE_STOP, _EVENT_TYPE_STOP_ALL = 0, 1, 4


def crc16(data: bytes, crc: int = 0) -> int:
    """The FIT CRC-16 (nibble table of the FIT SDK) of ``data``, continuing from ``crc``."""
    for byte in data:
        tmp = _CRC_TABLE[crc & 0xF]
        crc = (crc >> 4) & 0x0FFF
        crc = crc ^ tmp ^ _CRC_TABLE[byte & 0xF]
        tmp = _CRC_TABLE[crc & 0xF]
        crc = (crc >> 4) & 0x0FFF
        crc = crc ^ tmp ^ _CRC_TABLE[(byte >> 4) & 0xF]
    return crc


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


def _scaled(value: float | None, scale: float, base: tuple[int, str, int], lo: int, hi: int) -> int:
    """``round(value × scale)`` clamped to the type's valid range, or the invalid value."""
    if value is None or not math.isfinite(value):
        return base[2]
    return max(lo, min(hi, round(value * scale)))


class _Writer:
    """Accumulates records; one local message type per global message."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._defined: dict[int, tuple[tuple[int, tuple[int, str, int]], ...]] = {}
        self._local: dict[int, int] = {}

    def message(
        self, global_num: int, fields: Sequence[tuple[int, tuple[int, str, int], int]]
    ) -> None:
        layout = tuple((num, base) for num, base, _ in fields)
        local = self._local.setdefault(global_num, len(self._local))
        if local > 15:
            raise ValueError("more than 16 local message types")
        if self._defined.get(local) != layout:
            # definition message: header, reserved, architecture (0 = little endian),
            # global message number, field count, then (number, size, base type) per field
            self._buf += struct.pack("<BBBHB", 0x40 | local, 0, 0, global_num, len(layout))
            for num, base in layout:
                self._buf += struct.pack("<BBB", num, struct.calcsize(base[1]), base[0])
            self._defined[local] = layout
        self._buf.append(local)
        self._buf += struct.pack(
            "<" + "".join(b[1] for _, b, _ in fields), *(v for _, _, v in fields)
        )

    def finish(self) -> bytes:
        data = bytes(self._buf)
        header = struct.pack("<BBHI4s", 14, _PROTOCOL_VERSION, _PROFILE_VERSION, len(data), b".FIT")
        header += struct.pack("<H", crc16(header))
        body = header + data
        return body + struct.pack("<H", crc16(body))


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
    if sub_sport not in _SUB_SPORT:
        raise ValueError(
            f"unsupported sub_sport {sub_sport!r}; one of {sorted(map(str, _SUB_SPORT))}"
        )
    start = fit_timestamp(recs[0].time)
    end = fit_timestamp(recs[-1].time)
    w = _Writer()
    w.message(
        _FILE_ID,
        (
            (0, _ENUM, _FILE_ACTIVITY),
            (1, _UINT16, _MANUFACTURER_DEVELOPMENT),
            (2, _UINT16, product),
            (3, _UINT32Z, serial_number),
            (4, _UINT32, fit_timestamp(created) if created else start),
        ),
    )
    w.message(
        _EVENT, ((253, _UINT32, start), (0, _ENUM, _EVENT_TIMER), (1, _ENUM, _EVENT_TYPE_START))
    )
    distance = 0.0
    cad_sum = hr_sum = 0.0
    cad_n = hr_n = 0
    for r in recs:
        # strides/min in 1/128 units, split into cadence + fractional_cadence
        q = None if r.cadence_spm is None else round(r.cadence_spm / 2.0 * 128)
        whole = None if q is None else q // 128
        frac = None if q is None else (q % 128) / 128.0
        if r.distance_m is not None:
            distance = r.distance_m
        if r.cadence_spm is not None:
            cad_sum += r.cadence_spm
            cad_n += 1
        if r.heart_rate_bpm is not None:
            hr_sum += r.heart_rate_bpm
            hr_n += 1
        w.message(
            _RECORD,
            (
                (253, _UINT32, fit_timestamp(r.time)),
                (3, _UINT8, _scaled(r.heart_rate_bpm, 1, _UINT8, 0, 254)),
                (4, _UINT8, _scaled(whole, 1, _UINT8, 0, 254)),
                (5, _UINT32, _scaled(r.distance_m, 100, _UINT32, 0, 0xFFFFFFFE)),
                (6, _UINT16, _scaled(r.speed_mps, 1000, _UINT16, 0, 0xFFFE)),
                (9, _SINT16, _scaled(r.grade_pct, 100, _SINT16, -0x7FFF, 0x7FFE)),
                (39, _UINT16, _scaled(r.vertical_oscillation_mm, 10, _UINT16, 0, 0xFFFE)),
                (41, _UINT16, _scaled(r.ground_contact_ms, 10, _UINT16, 0, 0xFFFE)),
                (53, _UINT8, _scaled(frac, 128, _UINT8, 0, 127)),
                (73, _UINT32, _scaled(r.speed_mps, 1000, _UINT32, 0, 0xFFFFFFFE)),
                (83, _UINT16, _scaled(r.vertical_ratio_pct, 100, _UINT16, 0, 0xFFFE)),
                (85, _UINT16, _scaled(r.step_length_mm, 10, _UINT16, 0, 0xFFFE)),
            ),
        )
    w.message(
        _EVENT, ((253, _UINT32, end), (0, _ENUM, _EVENT_TIMER), (1, _ENUM, _EVENT_TYPE_STOP_ALL))
    )
    elapsed_ms = (end - start) * 1000
    avg_speed = distance / (end - start) if end > start else None
    common = (
        (253, _UINT32, end),
        (2, _UINT32, start),
        (7, _UINT32, elapsed_ms),
        (8, _UINT32, elapsed_ms),
        (9, _UINT32, _scaled(distance, 100, _UINT32, 0, 0xFFFFFFFE)),
    )
    w.message(_LAP, ((0, _ENUM, _EVENT_LAP), (1, _ENUM, _EVENT_TYPE_STOP), *common))
    w.message(
        _SESSION,
        (
            (0, _ENUM, _EVENT_SESSION),
            (1, _ENUM, _EVENT_TYPE_STOP),
            *common,
            (5, _ENUM, _SPORT_RUNNING),
            (6, _ENUM, _SUB_SPORT[sub_sport]),
            (14, _UINT16, _scaled(avg_speed, 1000, _UINT16, 0, 0xFFFE)),
            (16, _UINT8, _scaled(hr_sum / hr_n if hr_n else None, 1, _UINT8, 0, 254)),
            (18, _UINT8, _scaled(cad_sum / cad_n / 2.0 if cad_n else None, 1, _UINT8, 0, 254)),
            (25, _UINT16, 0),
            (26, _UINT16, 1),
        ),
    )
    w.message(
        _ACTIVITY,
        (
            (253, _UINT32, end),
            (0, _UINT32, elapsed_ms),
            (1, _UINT16, 1),
            (2, _ENUM, 0),
            (3, _ENUM, _EVENT_ACTIVITY),
            (4, _ENUM, _EVENT_TYPE_STOP),
        ),
    )
    return w.finish()
