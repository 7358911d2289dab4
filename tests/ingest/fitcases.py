"""FIT files built for the cases the shared device files do not show, written with the official
Garmin FIT SDK's ``Encoder`` (PyPI ``garmin-fit-sdk``), which writes developer fields.

:func:`run_walk_with_two_contact_sources` — a 20-minute run with two walking breaks, recorded
by a watch whose native ``stance_time`` covers only part of the records (the chest strap drops
out) while a foot pod's developer field "Ground Time" (Stryd-style, typically ~20 % shorter on
the same steps, and above a second while walking) and "Power" cover every record. It is what
issue #18 describes: the old importer took native stance time where present and the developer
field elsewhere (contact jumped by ~20 % from record to record), listed "Ground Time" as
ignored although it used it, and rejected the walking records whole.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from garmin_fit_sdk import Encoder, Profile

__all__ = ["RunWalkFile", "run_walk_with_two_contact_sources"]

_MESG = Profile["mesg_num"]
FIT_EPOCH = dt.datetime(1989, 12, 31, tzinfo=dt.UTC)
START = dt.datetime(2024, 5, 4, 7, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class RunWalkFile:
    """The file and what it holds (for the test's expectations)."""

    data: bytes
    records: int
    walking: int  # records of the walking breaks
    native_stance: int  # records that carry the native stance_time
    start: dt.datetime


def _ts(t: dt.datetime) -> int:
    return int((t - FIT_EPOCH).total_seconds())


def run_walk_with_two_contact_sources(
    minutes: int = 20,
    walk_breaks: tuple[tuple[int, int], ...] = ((300, 60), (840, 90)),
    native_share: float = 0.3,
) -> RunWalkFile:
    """A 1 Hz run (3.2 m/s, 170 spm, stance 250 ms / pod ground time 200 ms) with walking
    breaks (1.3 m/s, 96 spm, pod ground time 1,150 ms, no native stance) given as
    (start second, duration s); the native stance time is on the first ``native_share`` of the
    records only."""
    n = minutes * 60
    walk = {i for s0, d in walk_breaks for i in range(s0, s0 + d)}
    dev_id = {"mesg_num": _MESG["DEVELOPER_DATA_ID"], "developer_data_index": 0,
              "application_id": list(range(16)), "application_version": 1}  # fmt: skip

    def desc(num: int, name: str, units: str, base: int) -> dict[str, object]:
        return {"mesg_num": _MESG["FIELD_DESCRIPTION"], "developer_data_index": 0,
                "field_definition_number": num, "fit_base_type_id": base,
                "field_name": name, "units": units}  # fmt: skip

    ground = desc(0, "Ground Time", "ms", 0x84)  # uint16
    power = desc(1, "Power", "Watts", 0x84)
    enc = Encoder()
    enc.add_developer_field("ground", dev_id, ground)
    enc.add_developer_field("power", dev_id, power)
    t0 = START
    enc.write_mesg({"mesg_num": _MESG["FILE_ID"], "type": "activity", "manufacturer": "development",
                    "product": 1, "serial_number": 18, "time_created": t0})  # fmt: skip
    enc.write_mesg(dev_id)
    enc.write_mesg(ground)
    enc.write_mesg(power)
    enc.write_mesg({"mesg_num": _MESG["EVENT"], "timestamp": t0, "event": "timer",
                    "event_type": "start"})  # fmt: skip
    dist = 0.0
    native = 0
    for i in range(n):
        t = t0 + dt.timedelta(seconds=i)
        walking = i in walk
        v, spm = (1.3, 96.0) if walking else (3.2, 170.0)
        dist += v
        rec: dict[str, object] = {
            "mesg_num": _MESG["RECORD"], "timestamp": t, "distance": dist,
            "speed": v, "enhanced_speed": v, "cadence": int(spm // 2),
            "fractional_cadence": (spm / 2) % 1, "heart_rate": 120 if walking else 150,
            "developer_fields": {"ground": 1150 if walking else 200,
                                 "power": 90 if walking else 260},
        }  # fmt: skip
        if not walking and i < native_share * n:
            rec["stance_time"] = 250.0  # the pod/strap's stance time, ~25 % longer
            native += 1
        enc.write_mesg(rec)
    t_end = t0 + dt.timedelta(seconds=n - 1)
    enc.write_mesg({"mesg_num": _MESG["EVENT"], "timestamp": t_end, "event": "timer",
                    "event_type": "stop_all"})  # fmt: skip
    enc.write_mesg({"mesg_num": _MESG["LAP"], "timestamp": t_end, "start_time": t0,
                    "total_elapsed_time": float(n), "total_timer_time": float(n),
                    "total_distance": dist, "sport": "running"})  # fmt: skip
    enc.write_mesg({"mesg_num": _MESG["SESSION"], "timestamp": t_end, "start_time": t0,
                    "total_elapsed_time": float(n), "total_timer_time": float(n),
                    "total_distance": dist, "sport": "running", "sub_sport": "generic",
                    "num_laps": 1, "first_lap_index": 0})  # fmt: skip
    enc.write_mesg({"mesg_num": _MESG["ACTIVITY"], "timestamp": t_end, "num_sessions": 1,
                    "type": "manual", "event": "activity", "event_type": "stop"})  # fmt: skip
    return RunWalkFile(enc.close(), n, len(walk), native, t0)
