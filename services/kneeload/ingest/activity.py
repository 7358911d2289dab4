"""Activity files (FIT, TCX) decoded into kneeload watch samples.

Decoding (:func:`decode_fit`, :func:`decode_tcx`) yields an :class:`Activity`: every data
record with its fields already scaled to SI-ish units (fitdecode applies the FIT
profile's scale and offset, expands compressed timestamps and compressed speed/distance,
and resolves developer fields by name), plus the sessions, sport changes and timer
events needed to interpret them. :func:`normalise` then turns records into samples of
``watch_sample_batch`` and says, per record, why one was not used.

Rules (README "Ingest" repeats them for users):

* **Cadence.** FIT running cadence is strides/min: ``cadence_spm = 2 × (cadence +
  fractional_cadence)``. TCX ``<RunCadence>`` (Garmin extension) is strides/min too; a
  plain TCX ``<Cadence>`` is ambiguous, so the unit is detected per file from the data
  (median cadence of moving trackpoints below 120 → strides/min, doubled; else already
  steps/min) unless the uploader says ``cadence_unit``. A record without cadence, or
  with cadence 0 (standing), cannot be a running sample: it is rejected as ``no_cadence``
  (kneeload does not invent a cadence; the load model needs a measured one).
* **Sport.** Only running parts become samples: each record takes the sport of the
  session covering its time (else the last ``sport`` message before it). Swim, bike,
  transition and walking records are skipped as ``not_running``. ``sub_sport`` (e.g.
  ``treadmill``) is kept on the batch.
* **Pauses.** Records between a timer stop and the next timer start are skipped
  (``paused``).
* **Clock.** Event times are the device's own. A record not later than the previous
  accepted one (a backwards clock jump, or a duplicate) is rejected as
  ``time_not_increasing``; forward jumps over an hour are kept and counted. FIT times
  below 0x10000000 are relative to device power-on (old watches without a set clock):
  such a file needs ``start_time`` (the absolute time of its first record) or is
  refused as ``relative_timestamps``.
* **One source per measure and session.** Sensors measure differently (a pod's stance
  time and a foot pod's "Ground Time" differ by ~20 % on the same steps), so a session never
  mixes them. For contact time, vertical oscillation, cadence, speed and power the importer
  picks, per session, the native FIT field when it covers at least half of the session's
  records, otherwise the developer field (Stryd, RunScribe: "Ground Time", "Power", ...)
  covering most, and uses that source for every sample of the session (a record without a
  value from it has none). The choice is on every sample (``sources``) and in the summary
  with each candidate's coverage; only developer fields that were not used are listed as
  ignored (docs/science.md §6).
* **Walking inside a run is kept.** Walking breaks of a run (cadence ~96 spm, foot-pod
  ground times above a second) are samples like any other: the worker labels them walking
  and does not estimate them with the running model, and the FIT file of a run gives the
  same distance and duration as its TCX export.
* **Out-of-range optional fields are dropped, never the sample**: a value outside the
  sample schema's range (e.g. a 5,000 ms ground time) becomes null and is counted in the
  summary (``fields_dropped``).
* Zero running dynamics (Stryd writes 0 for "not measured") become null.
"""

from __future__ import annotations

import hashlib
import io
import math
import statistics
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import fitdecode

from kneeload.contracts import load_schema

__all__ = [
    "Activity",
    "ActivityError",
    "NormalisedActivity",
    "Record",
    "decode",
    "decode_fit",
    "decode_gpx",
    "decode_tcx",
    "normalise",
    "sniff_format",
]

FIT_EPOCH = datetime(1989, 12, 31, tzinfo=UTC)
RELATIVE_LIMIT = 0x10000000  # FIT date_time values below this are seconds since power-on
RUNNING = "running"
_STOP_EVENTS = {"stop", "stop_all", "stop_disable", "stop_disable_all"}
_FORWARD_JUMP_S = 3600
#: a native field is the session's source when it covers at least this share of the session's
#: records (kneeload's choice, docs/science.md §6)
NATIVE_MIN_COVERAGE = 0.5


def _scale(factors: dict[str, float], default: float) -> Callable[[float, str], float]:
    def conv(value: float, units: str) -> float:
        return value * factors.get(units.strip().lower(), default)

    return conv


@dataclass(frozen=True, slots=True)
class Measure:
    """A sample field that may come from a native FIT field or a developer field."""

    native: tuple[str, ...]  # FIT record fields, in preference order
    developer: frozenset[str]  # developer field names (lower case) that measure it
    dev_value: Callable[[float, str], float]  # (developer value, its units) → sample unit


#: the measures whose source is chosen once per session (sample field → where it can come from)
MEASURES: dict[str, Measure] = {
    "ground_contact_ms": Measure(
        ("stance_time",),
        frozenset({"contact time", "ground time", "ground contact time", "stance time"}),
        _scale({"s": 1000.0}, 1.0),
    ),
    "vertical_oscillation_mm": Measure(
        ("vertical_oscillation",),
        frozenset({"vertical oscillation"}),
        _scale({"cm": 10.0, "m": 1000.0}, 1.0),
    ),
    "cadence_spm": Measure(  # developer cadence in steps/min only when its units say so
        ("cadence",),
        frozenset({"cadence"}),
        _scale({"spm": 1.0, "steps/min": 1.0, "steps": 1.0}, 2.0),
    ),
    "speed_mps": Measure(
        ("enhanced_speed", "speed"),
        frozenset({"speed"}),
        _scale({"km/h": 1 / 3.6, "kph": 1 / 3.6}, 1.0),
    ),
    "power_w": Measure(
        ("power",),
        frozenset({"power", "stryd power", "running power"}),
        _scale({}, 1.0),
    ),
}
#: measures where 0 means "not measured" (Stryd writes 0), not a value
_ZERO_IS_MISSING = {"ground_contact_ms", "vertical_oscillation_mm", "cadence_spm", "power_w"}
_FIELDS = (
    "cadence",
    "fractional_cadence",
    "speed",
    "enhanced_speed",
    "distance",
    "heart_rate",
    "stance_time",
    "vertical_oscillation",
    "vertical_ratio",
    "step_length",
    "power",
    "grade",
    "activity_type",
)


class ActivityError(ValueError):
    """The file cannot be used at all; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Record:
    """One data record of the file, fields scaled (units: m/s, m, ms, mm, %, W, bpm)."""

    index: int
    time: datetime | int | None  # int: FIT relative (system) time, seconds since power-on
    fields: dict[str, Any]
    paused: bool = False
    sport: str | None = None
    sub_sport: str | None = None
    session: int = 0
    dev_fields: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Activity:
    format: str  # fit | tcx
    digest: str  # sha256 of the file
    records: list[Record]
    cadence_unit: str = "strides_per_min"  # or steps_per_min
    cadence_note: str = "FIT running cadence is strides/min"
    headers: int = 1
    sports: list[str] = field(default_factory=list)
    product: str | None = None
    serial_number: int | None = None  # FIT file_id.serial_number (maps a device to an athlete)
    dev_units: dict[str, str] = field(default_factory=dict)  # developer field → its units


@dataclass(slots=True)
class NormalisedActivity:
    samples: list[dict[str, Any]]  # valid-shaped samples (still validated by the gateway)
    sessions: list[dict[str, Any]]  # per sample: {"session_id", "sub_sport"}
    rejected: list[dict[str, Any]]  # {"index", "reason", "detail", "record"}
    skipped: dict[str, int]  # not_running / paused counts
    summary: dict[str, Any]


def sniff_format(data: bytes) -> str | None:
    if len(data) >= 12 and data[8:12] == b".FIT":
        return "fit"
    head = data[:2048]
    if b"<TrainingCenterDatabase" in head:
        return "tcx"
    if b"<gpx" in head:
        return "gpx"
    if head.lstrip().startswith(b"<?xml"):
        return "tcx"
    return None


def decode(data: bytes, fmt: str | None = None, *, cadence_unit: str = "auto") -> Activity:
    fmt = fmt or sniff_format(data)
    if fmt == "fit":
        return decode_fit(data)
    if fmt == "tcx":
        return decode_tcx(data, cadence_unit=cadence_unit)
    if fmt == "gpx":
        return decode_gpx(data, cadence_unit=cadence_unit)
    raise ActivityError(
        "unknown_format", "not a FIT file (no '.FIT' header), a TCX or a GPX document"
    )


# --------------------------------------------------------------------------- FIT


def _fit_time(value: Any) -> datetime | int | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int):
        if value >= RELATIVE_LIMIT:
            return FIT_EPOCH + timedelta(seconds=value)
        return value
    return None


def decode_fit(data: bytes) -> Activity:
    """Decode a FIT file (chained files with several headers included). CRCs are checked:
    a corrupt or truncated file raises :class:`ActivityError` ``corrupt_fit``."""
    records: list[Record] = []
    sessions: list[tuple[Any, Any, str | None, str | None]] = []  # (start, end, sport, sub)
    sport_marks: list[tuple[int, str | None, str | None]] = []  # (record position, sport, sub)
    paused = False
    headers = 0
    product = None
    serial: int | None = None
    dev_units: dict[str, str] = {}
    try:
        with fitdecode.FitReader(
            io.BytesIO(data),
            check_crc=fitdecode.CrcCheck.RAISE,
            error_handling=fitdecode.ErrorHandling.RAISE,
        ) as reader:
            for frame in reader:
                if isinstance(frame, fitdecode.FitHeader):
                    headers += 1
                    continue
                if not isinstance(frame, fitdecode.FitDataMessage):
                    continue
                name = frame.name
                if name == "record":
                    values: dict[str, Any] = {}
                    dev: dict[str, Any] = {}
                    ts: Any = None
                    for f in frame.fields:
                        if isinstance(f.field_def, fitdecode.types.DevFieldDefinition):
                            dev[str(f.name)] = f.value
                            dev_units.setdefault(str(f.name), str(f.units or ""))
                        elif f.name == "timestamp":
                            ts = f.value
                        elif f.name in _FIELDS:
                            values[f.name] = f.value
                    records.append(
                        Record(len(records), _fit_time(ts), values, paused, dev_fields=dev)
                    )
                elif name == "event":
                    if frame.has_field("event") and frame.get_value("event") == "timer":
                        et = (
                            frame.get_value("event_type") if frame.has_field("event_type") else None
                        )
                        if et == "start":
                            paused = False
                        elif et in _STOP_EVENTS:
                            paused = True
                elif name == "sport":
                    sport_marks.append(
                        (len(records), _opt(frame, "sport"), _opt(frame, "sub_sport"))
                    )
                elif name == "session":
                    start = _fit_time(_opt(frame, "start_time"))
                    end = _fit_time(_opt(frame, "timestamp"))
                    sessions.append((start, end, _opt(frame, "sport"), _opt(frame, "sub_sport")))
                elif name == "file_id" and product is None:
                    product = _opt(frame, "garmin_product") or _opt(frame, "manufacturer")
                    sn = _opt(frame, "serial_number")
                    serial = sn if isinstance(sn, int) else None
    except fitdecode.FitError as exc:
        raise ActivityError("corrupt_fit", f"corrupt or truncated FIT file: {exc}") from exc
    except Exception as exc:  # fitdecode can raise plain errors on garbage input
        raise ActivityError(
            "corrupt_fit", f"FIT file cannot be decoded: {type(exc).__name__}: {exc}"
        ) from exc
    if headers == 0:
        raise ActivityError("corrupt_fit", "no FIT header found")
    _assign_sports(records, sessions, sport_marks)
    return Activity(
        "fit",
        hashlib.sha256(data).hexdigest(),
        records,
        headers=headers,
        sports=[s[2] or "unknown" for s in sessions],
        product=str(product) if product else None,
        serial_number=serial,
        dev_units=dev_units,
    )


def _opt(frame: fitdecode.FitDataMessage, name: str) -> Any:
    return frame.get_value(name) if frame.has_field(name) else None


def _comparable(t: datetime | int | None) -> float | None:
    if t is None:
        return None
    return t.timestamp() if isinstance(t, datetime) else float(t)


def _assign_sports(
    records: list[Record],
    sessions: list[tuple[Any, Any, str | None, str | None]],
    marks: list[tuple[int, str | None, str | None]],
) -> None:
    spans = [(_comparable(s), _comparable(e), sp, sub) for s, e, sp, sub in sessions]
    for r in records:
        t = _comparable(r.time)
        chosen = None
        if t is not None:
            for i, (s, e, sp, sub) in enumerate(spans):
                if s is not None and e is not None and s <= t <= e:
                    chosen = (i, sp, sub)
                    break
        if chosen is None:
            prior = [m for m in marks if m[0] <= r.index]
            if prior:
                chosen = (len(prior) - 1, prior[-1][1], prior[-1][2])
            elif len(spans) == 1:
                chosen = (0, spans[0][2], spans[0][3])
        if chosen is not None:
            r.session, r.sport, r.sub_sport = chosen


# --------------------------------------------------------------------------- TCX

_TCX = "{http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2}"
_TPX = "{http://www.garmin.com/xmlschemas/ActivityExtension/v2}"


def _float(el: ET.Element | None) -> float | None:
    if el is None or el.text is None:
        return None
    try:
        return float(el.text)
    except ValueError:
        return None


def _xml_time(text: str | None) -> datetime | None:
    """An XML (TCX/GPX) timestamp; UTC when it has no offset; None when absent or invalid."""
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def decode_tcx(data: bytes, *, cadence_unit: str = "auto") -> Activity:
    """Decode a TCX document. ``cadence_unit``: ``auto`` (detect from the data), ``spm``
    (already steps/min) or ``strides`` (strides/min, doubled)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ActivityError("corrupt_tcx", f"TCX is not well-formed XML: {exc}") from exc
    if not root.tag.endswith("TrainingCenterDatabase"):
        raise ActivityError("corrupt_tcx", "not a TrainingCenterDatabase document")
    records: list[Record] = []
    sports: list[str] = []
    run_cadence_seen = False
    for a_index, activity in enumerate(root.iter(f"{_TCX}Activity")):
        sport = (activity.get("Sport") or "").lower() or None
        sports.append(sport or "unknown")
        for tp in activity.iter(f"{_TCX}Trackpoint"):
            time_el = tp.find(f"{_TCX}Time")
            t = _xml_time(time_el.text if time_el is not None else None)
            hr = tp.find(f"{_TCX}HeartRateBpm/{_TCX}Value")
            values: dict[str, Any] = {
                "distance": _float(tp.find(f"{_TCX}DistanceMeters")),
                "heart_rate": int(v) if (v := _float(hr)) is not None else None,
                "cadence": _float(tp.find(f"{_TCX}Cadence")),
            }
            tpx = tp.find(f"{_TCX}Extensions/{_TPX}TPX")
            if tpx is not None:
                values["speed"] = _float(tpx.find(f"{_TPX}Speed"))
                values["power"] = _float(tpx.find(f"{_TPX}Watts"))
                run_cad = _float(tpx.find(f"{_TPX}RunCadence"))
                if run_cad is not None:
                    values["run_cadence"] = run_cad
                    run_cadence_seen = True
            records.append(Record(len(records), t, values, sport=sport, session=a_index))
    if not records:
        raise ActivityError("empty_activity", "the TCX document has no trackpoints")
    _tcx_speeds(records)
    unit, note = _tcx_cadence_unit(records, cadence_unit, run_cadence_seen)
    for r in records:
        raw = r.fields.pop("run_cadence", None)
        if raw is None:
            raw = r.fields.get("cadence")
        r.fields["cadence"] = raw
        r.fields["cadence_is_spm"] = unit == "steps_per_min" and "run_cadence" not in r.fields
    return Activity(
        "tcx",
        hashlib.sha256(data).hexdigest(),
        records,
        cadence_unit=unit,
        cadence_note=note,
        sports=sports,
    )


def _tcx_speeds(records: list[Record], window_s: float = 5.0) -> None:
    """Speed from the distance track (TCX rarely carries speed): a centred ~5 s difference."""
    pts = [
        (r.time.timestamp(), r.fields["distance"])
        if isinstance(r.time, datetime) and r.fields.get("distance") is not None
        else None
        for r in records
    ]
    n = len(records)
    for i, r in enumerate(records):
        if r.fields.get("speed") is not None or pts[i] is None:
            continue
        lo, hi = i, i
        while lo > 0 and pts[lo - 1] is not None and pts[i][0] - pts[lo - 1][0] <= window_s / 2:  # type: ignore[index]
            lo -= 1
        while hi < n - 1 and pts[hi + 1] is not None and pts[hi + 1][0] - pts[i][0] <= window_s / 2:  # type: ignore[index]
            hi += 1
        a, b = pts[lo], pts[hi]
        if a is not None and b is not None and b[0] > a[0]:
            r.fields["speed"] = max(0.0, (b[1] - a[1]) / (b[0] - a[0]))


def _tcx_cadence_unit(records: list[Record], requested: str, run_cadence: bool) -> tuple[str, str]:
    if requested == "spm":
        return "steps_per_min", "declared by the uploader: steps/min"
    if requested == "strides":
        return "strides_per_min", "declared by the uploader: strides/min"
    if run_cadence:
        return "strides_per_min", "Garmin <RunCadence> extension: strides/min"
    moving = [
        r.fields["cadence"]
        for r in records
        if r.fields.get("cadence") and (r.fields.get("speed") or 0) >= 1.5
    ]
    if not moving:
        return "strides_per_min", "no moving trackpoints with cadence; assumed strides/min"
    med = statistics.median(moving)
    speeds = [
        r.fields["speed"]
        for r in records
        if r.fields.get("cadence") and (r.fields.get("speed") or 0) >= 1.5
    ]
    step_if_spm = statistics.median(speeds) / (med / 60.0)
    if med >= 120:
        return "steps_per_min", f"median moving cadence {med:g}/min: already steps/min"
    return "strides_per_min", (
        f"median moving cadence {med:g}/min: strides/min (as steps/min it would mean "
        f"{step_if_spm:.1f} m steps), doubled"
    )


# --------------------------------------------------------------------------- GPX

_EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)
#: extension element names (local, any namespace) that carry cadence / speed / power:
#: Garmin TrackPointExtension v1/v2 ``cad``/``speed``, Cluetrust gpxdata ``cadence``,
#: ``power`` (several vendors)
_GPX_CAD = {"cad", "cadence", "runcadence"}
_GPX_SPEED = {"speed"}
_GPX_POWER = {"power", "powerinwatts", "watts"}
_GPX_HR = {"hr", "heartrate"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) on a sphere of radius 6,371,008.8 m."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def decode_gpx(data: bytes, *, cadence_unit: str = "auto") -> Activity:
    """Decode a GPX 1.0/1.1 document: every ``<trkpt>`` of every track is a record.

    Core GPX carries position, elevation and time only. Cadence, speed, power and heart
    rate come from extensions, matched by local name in any namespace (Garmin
    TrackPointExtension ``<gpxtpx:cad>``, ``<gpxtpx:hr>``, v2 ``<gpxtpx:speed>``; Cluetrust
    ``<gpxdata:cadence>``; ``<power>``). A GPX without cadence extensions yields no samples:
    each point is rejected ``no_cadence``, as for any file (kneeload does not invent a
    cadence). Distance is the cumulative haversine distance between points; speed, where no
    extension gives it, comes from that distance track as for TCX. GPX cadence is per
    minute without a stated unit (Garmin and Strava write strides/min for running): the
    unit is detected from the data like a plain TCX ``<Cadence>`` unless ``cadence_unit``
    says. The track's ``<type>`` (``running``, ``run``, ``walking`` ...) sets the sport;
    without one the track is taken as running.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ActivityError("corrupt_gpx", f"GPX is not well-formed XML: {exc}") from exc
    if _local(root.tag) != "gpx":
        raise ActivityError("corrupt_gpx", "not a GPX document")
    records: list[Record] = []
    sports: list[str] = []
    for t_index, trk in enumerate(el for el in root if _local(el.tag) == "trk"):
        kind = next((c.text for c in trk if _local(c.tag) == "type" and c.text), None)
        sport = _gpx_sport(kind)
        sports.append(sport)
        dist = 0.0
        prev: tuple[float, float] | None = None
        for pt in trk.iter():
            if _local(pt.tag) != "trkpt":
                continue
            try:
                lat, lon = float(pt.get("lat", "")), float(pt.get("lon", ""))
            except ValueError:
                lat = lon = float("nan")
            pos = (lat, lon) if lat == lat and lon == lon else None
            if pos is not None and prev is not None:
                dist += _haversine_m(prev[0], prev[1], pos[0], pos[1])
            if pos is not None:
                prev = pos
            t: datetime | None = None
            values: dict[str, Any] = {"distance": dist if pos is not None else None}
            for child in pt.iter():
                name = _local(child.tag)
                if name == "time" and child.text:
                    t = _xml_time(child.text)
                elif name in _GPX_CAD:
                    values["cadence"] = _float(child)
                elif name in _GPX_SPEED:
                    values["speed"] = _float(child)
                elif name in _GPX_POWER:
                    values["power"] = _float(child)
                elif name in _GPX_HR:
                    hr = _float(child)
                    values["heart_rate"] = int(hr) if hr is not None else None
            records.append(Record(len(records), t, values, sport=sport, session=t_index))
    if not records:
        raise ActivityError("empty_activity", "the GPX document has no track points")
    _tcx_speeds(records)
    unit, note = _tcx_cadence_unit(records, cadence_unit, False)
    if not any(r.fields.get("cadence") for r in records):
        note = "no cadence in the GPX (core GPX has none; no cadence extension found)"
    for r in records:
        r.fields["cadence_is_spm"] = unit == "steps_per_min"
    return Activity(
        "gpx",
        hashlib.sha256(data).hexdigest(),
        records,
        cadence_unit=unit,
        cadence_note=note,
        sports=sports,
    )


def _gpx_sport(kind: str | None) -> str:
    """The FIT-style sport of a GPX ``<trk><type>`` (free text; Strava writes numbers)."""
    if kind is None:
        return RUNNING
    k = kind.strip().lower()
    if k in {"9", "running", "run", "trail_running", "treadmill_running", "track_running"}:
        return RUNNING
    if "run" in k:
        return RUNNING
    return k or RUNNING


# --------------------------------------------------------------------------- normalise


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _positive(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and v > 0 else None


def _record_json(r: Record) -> dict[str, Any]:
    t = r.time.isoformat() if isinstance(r.time, datetime) else r.time
    return {
        "index": r.index,
        "time": t,
        "sport": r.sport,
        **{k: v for k, v in r.fields.items() if isinstance(v, int | float | str | None)},
    }


@cache
def _optional_bounds() -> dict[str, tuple[float | None, float | None]]:
    """(minimum, maximum) of every optional numeric sample field, from the sample schema."""
    props = load_schema("watch_sample_batch")["$defs"]["sample"]["properties"]
    out: dict[str, tuple[float | None, float | None]] = {}
    for name, spec in props.items():
        if name in ("cadence_spm", "speed_mps") or "null" not in spec.get("type", ()):
            continue
        if "minimum" in spec or "maximum" in spec:
            out[name] = (spec.get("minimum"), spec.get("maximum"))
    return out


def _valid(r: Record) -> bool:
    """A record that can become a sample as far as sport, pause and time go."""
    return (r.sport is None or r.sport == RUNNING) and not r.paused and r.time is not None


def _native_value(r: Record, measure: str) -> float | None:
    f = r.fields
    if measure == "cadence_spm":
        cad = f.get("cadence")
        if not isinstance(cad, int | float) or cad <= 0:
            return None
        if f.get("cadence_is_spm"):
            return float(cad)
        return 2.0 * (float(cad) + float(f.get("fractional_cadence") or 0.0))
    for name in MEASURES[measure].native:
        v = f.get(name)
        if isinstance(v, int | float):
            return None if v <= 0 and measure in _ZERO_IS_MISSING else float(v)
    return None


def _dev_value(r: Record, name: str, measure: str, units: str) -> float | None:
    v = r.dev_fields.get(name)
    if not isinstance(v, int | float) or (v <= 0 and measure in _ZERO_IS_MISSING):
        return None
    return MEASURES[measure].dev_value(float(v), units)


@dataclass(frozen=True, slots=True)
class SourceChoice:
    """The source of one measure for one session: ``native``, ``dev:<field>`` or None (no
    source has a value), its coverage and every candidate's coverage (share of records)."""

    source: str | None
    coverage: float
    candidates: dict[str, float]
    dev_name: str | None = None

    def as_summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "coverage_pct": round(100.0 * self.coverage, 1),
            "candidates": {k: round(100.0 * v, 1) for k, v in self.candidates.items()},
        }


def choose_sources(
    records: list[Record], dev_units: dict[str, str] | None = None
) -> dict[str, SourceChoice]:
    """One source per measure for these records (one session), see the module docstring."""
    units = dev_units or {}
    n = len(records)
    out: dict[str, SourceChoice] = {}
    dev_names = sorted({k for r in records for k in r.dev_fields})
    for measure, spec in MEASURES.items():
        native = sum(_native_value(r, measure) is not None for r in records) / n if n else 0.0
        cands: dict[str, float] = {"native": native}
        devs = [d for d in dev_names if d.lower() in spec.developer]
        for d in devs:
            cands[f"dev:{d}"] = (
                sum(_dev_value(r, d, measure, units.get(d, "")) is not None for r in records) / n
                if n
                else 0.0
            )
        best_dev = max(devs, key=lambda d: cands[f"dev:{d}"], default=None)
        if native >= NATIVE_MIN_COVERAGE or best_dev is None:
            choice = SourceChoice("native" if native > 0 else None, native, cands)
        elif cands[f"dev:{best_dev}"] > native:
            choice = SourceChoice(f"dev:{best_dev}", cands[f"dev:{best_dev}"], cands, best_dev)
        else:
            choice = SourceChoice("native" if native > 0 else None, native, cands)
        out[measure] = choice
    return out


def _value(r: Record, measure: str, c: SourceChoice, units: dict[str, str]) -> float | None:
    if c.dev_name is not None:
        return _dev_value(r, c.dev_name, measure, units.get(c.dev_name, ""))
    return _native_value(r, measure) if c.source == "native" else None


def normalise(
    activity: Activity, *, device_id: str, start_time: datetime | None = None
) -> NormalisedActivity:
    """Samples of the running parts, one per usable record; reasons for the others.

    Steps: :func:`_time_anchor` (relative FIT times), :func:`_session_sources` (one source
    per measure and session), :func:`_walk_records` (each record skipped, rejected or made
    a sample), :func:`_summary`.
    """
    anchor = _time_anchor(activity.records, start_time)
    choices = _session_sources(activity.records, activity.dev_units)
    walk = _walk_records(activity, choices, anchor, device_id)
    summary = _summary(activity, choices, walk, relative=anchor is not None)
    return NormalisedActivity(walk.samples, walk.sessions, walk.rejected, walk.skipped, summary)


def _time_anchor(records: list[Record], start_time: datetime | None) -> float | None:
    """Epoch seconds of relative time 0 when the file's times are relative to device
    power-on (``start_time`` is the absolute time of the first record); None when they
    are absolute. :class:`ActivityError` ``relative_timestamps`` without ``start_time``."""
    relative = [r.time for r in records if isinstance(r.time, int)]
    if not relative:
        return None
    if start_time is None:
        raise ActivityError(
            "relative_timestamps",
            "the file's times are relative to device power-on (the watch clock was never set); "
            "give start_time, the absolute time of the first record",
        )
    return start_time.timestamp() - min(relative)


def _session_sources(
    records: list[Record], dev_units: dict[str, str]
) -> dict[int, dict[str, SourceChoice]]:
    """Per session, the source of each measure (:func:`choose_sources` over the records
    that can become samples)."""
    by_session: dict[int, list[Record]] = {}
    for r in records:
        if _valid(r):
            by_session.setdefault(r.session, []).append(r)
    return {k: choose_sources(v, dev_units) for k, v in by_session.items()}


@dataclass(slots=True)
class _Walk:
    """What :func:`_walk_records` made of an activity's records (see
    :class:`NormalisedActivity`), plus the counts the summary reports."""

    samples: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=lambda: {"not_running": 0, "paused": 0})
    dropped: dict[str, int] = field(default_factory=dict)  # out-of-range field → count
    forward_jumps: int = 0
    sports: set[str] = field(default_factory=set)


def _walk_records(
    activity: Activity,
    choices: dict[int, dict[str, SourceChoice]],
    anchor: float | None,
    device_id: str,
) -> _Walk:
    """Each record in file order: skipped (not running, paused), rejected (no time, no
    cadence, time not increasing) or made a sample (:func:`_sample`) with its session."""
    units = activity.dev_units
    source_text = {k: _sources_text(ch) for k, ch in choices.items()}
    session_ids = {k: f"{activity.format}-{activity.digest[:16]}-s{k}" for k in choices}
    bounds = _optional_bounds()
    w = _Walk()
    samples, sessions, rejected, skipped, dropped = (
        w.samples,
        w.sessions,
        w.rejected,
        w.skipped,
        w.dropped,
    )
    last_t: float | None = None
    for r in activity.records:
        if r.sport:
            w.sports.add(r.sport)
        if r.sport is not None and r.sport != RUNNING:
            skipped["not_running"] += 1
            continue
        if r.paused:
            skipped["paused"] += 1
            continue
        if r.time is None:
            rejected.append(_rejection(r, "no_time", "record has no timestamp"))
            continue
        when = (
            datetime.fromtimestamp(anchor + r.time, UTC)
            if isinstance(r.time, int) and anchor is not None
            else r.time
        )
        assert isinstance(when, datetime)
        ch = choices[r.session]
        spm = _value(r, "cadence_spm", ch["cadence_spm"], units)
        if spm is None:
            rejected.append(_rejection(r, "no_cadence", _NO_CADENCE))
            continue
        ts = when.timestamp()
        if last_t is not None and ts <= last_t:
            detail = f"time {_iso(when)} is not after the previous record's"
            rejected.append(_rejection(r, "time_not_increasing", detail))
            continue
        if last_t is not None and ts - last_t > _FORWARD_JUMP_S:
            w.forward_jumps += 1
        last_t = ts
        sample = _sample(r, when, ts, spm, ch, units, device_id, source_text[r.session])
        _drop_out_of_range(sample, bounds, dropped)
        samples.append(sample)
        sessions.append({"session_id": session_ids[r.session], "sub_sport": r.sub_sport})
    return w


def _sources_text(choices: dict[str, SourceChoice]) -> str | None:
    """A session's sources as each of its samples carries them (``measure=source;...``)."""
    return ";".join(f"{m}={c.source}" for m, c in choices.items() if c.source is not None) or None


_NO_CADENCE = "no cadence (or 0: standing); a running sample needs a measured cadence"


def _rejection(r: Record, reason: str, detail: str) -> dict[str, Any]:
    """A rejected record as the import reports it."""
    return {"index": r.index, "reason": reason, "detail": detail, "record": _record_json(r)}


def _sample(
    r: Record,
    when: datetime,
    ts: float,
    spm: float,
    ch: dict[str, SourceChoice],
    units: dict[str, str],
    device_id: str,
    sources: str | None,
) -> dict[str, Any]:
    """The ``watch_sample_batch`` sample of one usable record at ``when`` (``ts``, epoch
    seconds): each chosen measure from its session's source."""
    f = r.fields
    hr = f.get("heart_rate")
    ms = round(ts * 1000)
    rid = f"{device_id}:{ms}"
    if len(rid) > 128:  # a device id too long for the 128 characters of a record id
        rid = f"{hashlib.sha256(device_id.encode()).hexdigest()[:24]}:{ms}"
    return {
        "record_id": rid,
        "time": _iso(when),
        "cadence_spm": round(spm, 2),
        "speed_mps": _value(r, "speed_mps", ch["speed_mps"], units),
        "ground_contact_ms": _value(r, "ground_contact_ms", ch["ground_contact_ms"], units),
        "vertical_oscillation_mm": _value(
            r, "vertical_oscillation_mm", ch["vertical_oscillation_mm"], units
        ),
        "vertical_ratio_pct": _positive(f.get("vertical_ratio")),
        "step_length_mm": _positive(f.get("step_length")),
        "power_w": _value(r, "power_w", ch["power_w"], units),
        "heart_rate_bpm": int(hr) if isinstance(hr, int | float) and 20 <= hr <= 250 else None,
        "grade_pct": f.get("grade"),
        "distance_m": f.get("distance"),
        "vertical_load_bw": None,
        "sources": sources,
    }


def _drop_out_of_range(
    sample: dict[str, Any],
    bounds: dict[str, tuple[float | None, float | None]],
    dropped: dict[str, int],
) -> None:
    """Null each optional field outside the sample schema's range (the field, not the
    sample), counted in ``dropped``."""
    for name, (lo, hi) in bounds.items():
        v = sample.get(name)
        if isinstance(v, int | float) and (
            (lo is not None and v < lo) or (hi is not None and v > hi)
        ):
            sample[name] = None
            dropped[name] = dropped.get(name, 0) + 1


def _summary(
    activity: Activity,
    choices: dict[int, dict[str, SourceChoice]],
    walk: _Walk,
    *,
    relative: bool,
) -> dict[str, Any]:
    """The import summary: counts, sports, cadence unit, clock, each session's sources with
    every candidate's coverage, developer fields used and ignored, fields dropped."""
    records = activity.records
    digest = activity.digest[:16]
    used_dev = {c.dev_name for ch in choices.values() for c in ch.values() if c.dev_name}
    all_dev = {k for r in records for k in r.dev_fields}
    return {
        "format": activity.format,
        "file_sha256": activity.digest,
        "product": activity.product,
        "headers": activity.headers,
        "records": len(records),
        "samples": len(walk.samples),
        "rejected": len(walk.rejected),
        "skipped": walk.skipped,
        "sports": sorted(walk.sports),
        "cadence_unit": activity.cadence_unit,
        "cadence_note": activity.cadence_note,
        "relative_timestamps": relative,
        "forward_clock_jumps": walk.forward_jumps,
        "sources": {
            f"{activity.format}-{digest}-s{k}": {m: c.as_summary() for m, c in ch.items()}
            for k, ch in sorted(choices.items())
        },
        "developer_fields_used": sorted(used_dev),
        "developer_fields_ignored": sorted(all_dev - used_dev),
        "fields_dropped": dict(sorted(walk.dropped.items())),
    }
