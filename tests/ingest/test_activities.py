"""Activity files: every real file in /work/shared/data decoded, checked against the expected
values shipped with it, normalised per the rules, and uploaded through the gateway."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from kneeload.ingest import activity as act

from .conftest import Gateway, TopicReader, device_headers

DATA = Path("/work/shared/data")
FIT = DATA / "fit"
ALL_FILES = sorted([*FIT.glob("*.fit"), *DATA.glob("tcx/*.tcx")])
START = datetime(2024, 3, 1, 7, 0, tzinfo=UTC)


def test_every_shared_file_is_covered() -> None:
    names = {p.name for p in ALL_FILES}
    assert names == {
        "2013-02-06-12-11-14.fit",
        "activity-small-fenix2-run.fit",
        "compressed-speed-distance.fit",
        "developer-types-sample.fit",
        "garmin-fenix-5-run.fit",
        "garmin-fenix-5-walk.fit",
        "sample_mulitple_header.fit",
        "polar-m400-run.tcx",
    }


def _pdt(text: str) -> datetime:
    return datetime.strptime(text.replace(" PDT", ""), "%a %b %d %H:%M:%S %Y").replace(
        tzinfo=UTC
    ) + timedelta(hours=7)


@pytest.mark.parametrize("name", ["garmin-fenix-5-run", "garmin-fenix-5-walk"])
def test_fenix5_matches_expected_csv(name: str) -> None:
    activity = act.decode_fit((FIT / f"{name}.fit").read_bytes())
    rows = list(csv.DictReader((FIT / f"{name}-records.csv").open()))
    assert len(rows) == len(activity.records)
    for row, rec in zip(rows, activity.records, strict=True):
        assert rec.time == _pdt(row["timestamp"])
        assert rec.fields["heart_rate"] == int(row["heart_rate"])
        assert rec.fields["cadence"] == int(row["cadence"])  # strides/min, as the file stores it
        assert rec.fields["speed"] == pytest.approx(float(row["speed"]))
        assert rec.fields["distance"] == pytest.approx(float(row["distance"]))
    if name.endswith("run"):
        norm = act.normalise(activity, device_id="w")
        by_time = {s["time"]: s for s in norm.samples}
        for rec in activity.records:
            s = by_time.get(rec.time.isoformat(timespec="milliseconds").replace("+00:00", "Z"))  # type: ignore[union-attr]
            if rec.fields["cadence"]:
                assert s is not None
                assert s["cadence_spm"] == pytest.approx(
                    2 * (rec.fields["cadence"] + rec.fields["fractional_cadence"])
                )
            else:
                assert s is None  # standing: cadence 0
        assert {r["reason"] for r in norm.rejected} == {"no_cadence"}
        assert all(
            s["step_length_mm"] is None or 500 < s["step_length_mm"] < 1500 for s in norm.samples
        )
    else:  # a walk is not a run: nothing published, said clearly
        norm = act.normalise(activity, device_id="w")
        assert norm.samples == [] and norm.skipped["not_running"] == len(activity.records)


def test_compressed_timestamps_match_expected_csv() -> None:
    activity = act.decode_fit((FIT / "compressed-speed-distance.fit").read_bytes())
    rows = {
        int(r["Timestamp"]): r
        for r in csv.DictReader(
            (FIT / "compressed-speed-distance-records.csv").open(), skipinitialspace=True
        )
    }
    recs = {r.time: r for r in activity.records if "speed" in r.fields}
    assert set(rows) == set(recs)
    for ts, row in rows.items():
        f = recs[ts].fields
        assert f["heart_rate"] == int(row["Heart Rate [bpm]"])
        assert f["speed"] == pytest.approx(float(row["Speed [m/s]"]))
        assert f["distance"] == pytest.approx(float(row["Distance [m]"]))
        assert f["cadence"] == (
            None if row["Cadence [rpm]"] == "null" else int(row["Cadence [rpm]"])
        )
    # relative (power-on) times need an anchor
    with pytest.raises(act.ActivityError) as err:
        act.normalise(activity, device_id="w")
    assert err.value.code == "relative_timestamps"
    norm = act.normalise(activity, device_id="w", start_time=START)
    first = min(r.time for r in activity.records)  # type: ignore[type-var]
    row = rows[17217874]
    s = next(
        s
        for s in norm.samples
        if s["time"]
        == (START + timedelta(seconds=17217874 - first)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    )
    assert s["cadence_spm"] == 2 * int(row["Cadence [rpm]"]) and s["speed_mps"] == pytest.approx(
        3.55
    )


def test_developer_fields_stryd() -> None:
    norm = act.normalise(
        act.decode_fit((FIT / "developer-types-sample.fit").read_bytes()), device_id="w"
    )
    assert len(norm.samples) == 3424
    assert {"Form Power", "Leg Spring Stiffness"} <= set(norm.summary["developer_fields_ignored"])
    assert all(s["power_w"] is not None for s in norm.samples)
    assert norm.samples[0]["ground_contact_ms"] is None  # Stryd's 0 = not measured


def test_multisport_only_running_part() -> None:
    activity = act.decode_fit((FIT / "sample_mulitple_header.fit").read_bytes())
    assert activity.headers == 4
    norm = act.normalise(activity, device_id="w")
    assert norm.summary["sports"] == ["cycling", "running", "swimming", "transition"]
    assert norm.skipped["not_running"] > 1000 and len(norm.samples) > 500
    run_start = datetime(2018, 5, 27, 9, 23, 41, tzinfo=UTC).isoformat().replace("+00:00", "")
    assert all(s["time"] >= run_start for s in norm.samples)
    assert {x["session_id"] for x in norm.sessions} == {f"fit-{activity.digest[:16]}-s4"}


def test_old_watch_without_cadence_is_rejected_with_reason() -> None:
    norm = act.normalise(
        act.decode_fit((FIT / "2013-02-06-12-11-14.fit").read_bytes()), device_id="w"
    )
    assert norm.samples == [] and {r["reason"] for r in norm.rejected} == {"no_cadence"}
    assert len(norm.rejected) == 590


def test_fenix2_long_run() -> None:
    norm = act.normalise(
        act.decode_fit((FIT / "activity-small-fenix2-run.fit").read_bytes()), device_id="w"
    )
    assert len(norm.samples) == 2795
    cad = sorted(s["cadence_spm"] for s in norm.samples)
    assert 150 <= cad[len(cad) // 2] <= 190  # steps/min after doubling


def test_polar_tcx_cadence_unit_detected() -> None:
    data = (DATA / "tcx/polar-m400-run.tcx").read_bytes()
    activity = act.decode_tcx(data)
    # moving at 2-4 m/s with a <Cadence> of ~66: that is strides/min (66 steps/min would be 2-3 m steps)  # noqa: E501
    assert activity.cadence_unit == "strides_per_min"
    norm = act.normalise(activity, device_id="w")
    cad = sorted(s["cadence_spm"] for s in norm.samples if s["speed_mps"] >= 2)
    assert 120 <= cad[len(cad) // 2] <= 180
    # the uploader can say otherwise, and a steps/min TCX is recognised as such
    assert act.decode_tcx(data, cadence_unit="spm").cadence_unit == "steps_per_min"
    doubled = data.replace(b"<Cadence>6", b"<Cadence>16").replace(b"<Cadence>7", b"<Cadence>17")
    assert act.decode_tcx(doubled).cadence_unit == "steps_per_min"


def test_clock_jump_backwards_is_rejected() -> None:
    activity = act.decode_fit((FIT / "garmin-fenix-5-run.fit").read_bytes())
    rec = activity.records[10]
    rec.time = activity.records[5].time  # the clock jumped back
    norm = act.normalise(activity, device_id="w")
    assert any(r["index"] == 10 and r["reason"] == "time_not_increasing" for r in norm.rejected)


@pytest.mark.parametrize("cut", ["truncated", "corrupt", "garbage"])
def test_corrupt_fit_is_refused(cut: str, gateway: Gateway, fleet: dict[str, Any]) -> None:
    data = (FIT / "garmin-fenix-5-run.fit").read_bytes()
    if cut == "truncated":
        data = data[: len(data) // 2]
    elif cut == "corrupt":
        mid = len(data) // 2
        data = data[:mid] + bytes(b ^ 0x5A for b in data[mid : mid + 64]) + data[mid + 64 :]
    else:
        data = data[:14] + b"\x00\xff" * 500
    r = httpx.post(
        gateway.url + "/v1/activities",
        content=data,
        timeout=30,
        headers={**device_headers(fleet, "watch"), "Content-Type": "application/vnd.ant.fit"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "corrupt_fit"


def _upload(gateway: Gateway, fleet: dict[str, Any], path: Path, **params: str) -> httpx.Response:
    ctype = "application/vnd.garmin.tcx+xml" if path.suffix == ".tcx" else "application/vnd.ant.fit"
    return httpx.post(
        gateway.url + "/v1/activities",
        content=path.read_bytes(),
        params=params,
        timeout=60,
        headers={**device_headers(fleet, "watch"), "Content-Type": ctype},
    )


EXPECT = {  # file -> (status, accepted)
    "2013-02-06-12-11-14.fit": (422, 0),
    "activity-small-fenix2-run.fit": (200, 2795),
    "compressed-speed-distance.fit": (200, 710),
    "developer-types-sample.fit": (200, 3424),
    "garmin-fenix-5-run.fit": (200, 18),
    "garmin-fenix-5-walk.fit": (422, 0),
    "sample_mulitple_header.fit": (200, 516),
    "polar-m400-run.tcx": (200, 2582),
}


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_upload_every_file(path: Path, gateway: Gateway, fleet: dict[str, Any]) -> None:
    params = {"start_time": "2024-03-01T07:00:00Z"} if path.name.startswith("compressed") else {}
    r = _upload(gateway, fleet, path, **params)
    status, accepted = EXPECT[path.name]
    assert r.status_code == status, r.text[:1000]
    body = r.json()
    if status == 200:
        assert body["accepted"] == accepted and body["summary"]["format"] == path.suffix[1:]
        if accepted < 1000:  # a re-sync of the same file is harmless
            again = _upload(gateway, fleet, path, **params)
            assert again.status_code == 200 and again.json()["accepted"] == 0
            assert again.json()["duplicates"] == accepted
    else:
        assert body["error"]["code"] in ("no_usable_samples", "no_running_samples")


def test_relative_fit_without_anchor_is_refused(gateway: Gateway, fleet: dict[str, Any]) -> None:
    r = _upload(gateway, fleet, FIT / "compressed-speed-distance.fit")
    assert r.status_code == 422 and r.json()["error"]["code"] == "relative_timestamps"


def test_import_fit_jsonl_equals_published(
    gateway: Gateway, fleet: dict[str, Any], topics: TopicReader, ingest_settings: Any
) -> None:
    path = FIT / "garmin-fenix-5-run.fit"
    assert _upload(gateway, fleet, path).status_code == 200  # (again: harmless)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kneeload",
            "import-fit",
            str(path),
            "--athlete-id",
            fleet["ath"],
            "--device-id",
            fleet["watch"],
            "--jsonl",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    printed = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(printed) == 18
    assert json.loads(out.stderr.strip().splitlines()[-1])["rejected_by_reason"] == {
        "no_cadence": 3
    }
    ids = {s["record_id"] for s in printed}

    def have(ms: list[dict[str, Any]]) -> bool:
        return ids <= {s["record_id"] for m in ms for s in m["value"]["samples"]}

    published = [
        s
        for m in topics.read("watch.samples", until=have)
        if m["value"]["source"] == "fit"
        for s in m["value"]["samples"]
        if s["record_id"] in ids
    ]
    assert sorted(published, key=lambda s: s["time"]) == printed


def test_import_fit_uploads(gateway: Gateway, fleet: dict[str, Any]) -> None:
    path = FIT / "garmin-fenix-5-run.fit"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kneeload",
            "import-fit",
            str(path),
            "--athlete-id",
            fleet["ath"],
            "--url",
            gateway.url,
            "--device-id",
            fleet["watch"],
            "--api-key",
            fleet["keys"]["watch"],
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    body = json.loads(out.stdout)  # `kneeload import` summary: uploaded through the gateway
    assert body["mode"] == "upload" and body["files"]["imported"] == 1
    assert body["samples_accepted"] + body["samples_duplicate"] == 18
