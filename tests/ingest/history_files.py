"""History files for the import tests, built from the REAL device files in shared/data with
real encoders: FIT by Garmin's FIT SDK Encoder (kneeload.demo.fitwriter), GPX by gpxpy.

The fenix 2 run (47 min, 1 Hz, cadence, running dynamics, positions) is cut into short
sessions moved to chosen days, so a test has weeks of history in a few thousand samples.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import xml.etree.ElementTree as ET
import zipfile
from functools import cache
from pathlib import Path

import fitdecode
import gpxpy
import gpxpy.gpx

from kneeload.demo.fitwriter import FitRecord, encode_activity

DATA = Path("/work/shared/data")  # as tests/ingest/test_activities.py
FENIX2 = DATA / "fit" / "activity-small-fenix2-run.fit"
TPX = "http://www.garmin.com/xmlschemas/TrackPointExtension/v1"
_SEMI = 180.0 / 2**31


@cache
def fenix2() -> list[dict]:
    """The real run's records: time, position (degrees), cadence (steps/min), speed, ..."""
    out = []
    with fitdecode.FitReader(str(FENIX2)) as reader:
        for frame in reader:
            if not (isinstance(frame, fitdecode.FitDataMessage) and frame.name == "record"):
                continue
            v = {f.name: f.value for f in frame.fields}
            if not v.get("cadence") or v.get("position_lat") is None:
                continue
            out.append(
                {
                    "time": v["timestamp"],
                    "lat": v["position_lat"] * _SEMI,
                    "lon": v["position_long"] * _SEMI,
                    "cadence_spm": 2.0 * (v["cadence"] + (v.get("fractional_cadence") or 0.0)),
                    "speed_mps": v.get("enhanced_speed") or v.get("speed"),
                    "distance_m": v.get("distance"),
                    "ground_contact_ms": v.get("stance_time"),
                    "vertical_oscillation_mm": v.get("vertical_oscillation"),
                    "heart_rate_bpm": v.get("heart_rate"),
                }
            )
    return out


def _slice(start: dt.datetime, n: int, offset: int) -> list[dict]:
    recs = fenix2()
    part = recs[offset % (len(recs) - n) :][:n]
    t0 = part[0]["time"]
    return [{**r, "time": start + (r["time"] - t0)} for r in part]


def fit_session(start: dt.datetime, n: int = 120, *, serial: int = 1, offset: int = 0) -> bytes:
    """A FIT activity of ``n`` real fenix 2 records starting at ``start`` (SDK Encoder)."""
    recs = [
        FitRecord(
            time=r["time"],
            cadence_spm=r["cadence_spm"],
            speed_mps=r["speed_mps"],
            ground_contact_ms=r["ground_contact_ms"],
            vertical_oscillation_mm=r["vertical_oscillation_mm"],
            heart_rate_bpm=r["heart_rate_bpm"],
            distance_m=r["distance_m"],
        )
        for r in _slice(start, n, offset)
    ]
    return encode_activity(recs, serial_number=serial, created=recs[0].time)


def gpx_session(
    start: dt.datetime, n: int = 120, *, cadence: bool = True, offset: int = 0
) -> bytes:
    """A GPX 1.1 track of ``n`` real fenix 2 points (gpxpy), cadence as Garmin's
    TrackPointExtension ``<gpxtpx:cad>`` (strides/min, as Garmin writes it) when asked."""
    g = gpxpy.gpx.GPX()
    g.nsmap["gpxtpx"] = TPX
    trk = gpxpy.gpx.GPXTrack()
    trk.type = "running"
    g.tracks.append(trk)
    seg = gpxpy.gpx.GPXTrackSegment()
    trk.segments.append(seg)
    for r in _slice(start, n, offset):
        p = gpxpy.gpx.GPXTrackPoint(r["lat"], r["lon"], time=r["time"])
        if cadence:
            ext = ET.Element(f"{{{TPX}}}TrackPointExtension")
            ET.SubElement(ext, f"{{{TPX}}}cad").text = str(round(r["cadence_spm"] / 2))
            if r["heart_rate_bpm"]:
                ET.SubElement(ext, f"{{{TPX}}}hr").text = str(r["heart_rate_bpm"])
            p.extensions.append(ext)
        seg.points.append(p)
    return g.to_xml(version="1.1").encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
