"""Treadmill telemetry/setpoints over HTTP and pain reports: registry facts attached (never
trusted from the payload), an athlete reports only for themself, rejections are 4xx."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .conftest import Gateway, TopicReader, device_headers


def now_iso(delta_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_s)).isoformat().replace("+00:00", "Z")


def rid() -> str:
    return "r-" + uuid.uuid4().hex[:16]


def find(topics: TopicReader, logical: str, field: str, value: str) -> list[dict[str, Any]]:
    msgs = topics.read(logical, until=lambda ms: any(m["value"].get(field) == value for m in ms))
    return [m for m in msgs if m["value"].get(field) == value]


def test_telemetry_gets_clinic_and_athlete_from_registry(
    gateway: Gateway, fleet: dict[str, Any], topics: TopicReader
) -> None:
    tele = {
        "record_id": rid(),
        "time": now_iso(-5),
        "kind": "telemetry",
        "belt_speed_mps": 2.8,
        "incline_pct": 1.0,
        "bws_pct": 30,
        "measured_support_pct": 104.2,
    }
    beat = {"record_id": rid(), "time": now_iso(-4), "kind": "heartbeat"}
    r = httpx.post(
        gateway.url + "/v1/treadmill/telemetry",
        json=[tele, beat],
        headers=device_headers(fleet, "unit"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2
    msg = find(topics, "treadmill.telemetry", "record_id", tele["record_id"])[0]
    assert msg["key"] == fleet["unit"]
    ev = msg["value"]
    assert (
        ev["unit_id"] == fleet["unit"]
        and ev["clinic_id"] == fleet["clinic"]
        and ev["athlete_id"] == fleet["ath"]
    )
    assert ev["measured_support_pct"] == 100.0  # load cell clamped to 0..100
    hb = find(topics, "treadmill.telemetry", "record_id", beat["record_id"])[0]["value"]
    assert hb["kind"] == "heartbeat" and hb["belt_speed_mps"] is None


def test_telemetry_rejections(gateway: Gateway, fleet: dict[str, Any]) -> None:
    h = device_headers(fleet, "unit")
    url = gateway.url + "/v1/treadmill/telemetry"
    cases = [
        (
            {
                "record_id": rid(),
                "time": now_iso(),
                "kind": "telemetry",
                "belt_speed_mps": 2,
                "incline_pct": 0,
                "bws_pct": 100,
            },
            "/bws_pct",
        ),
        (
            {
                "record_id": rid(),
                "time": now_iso(),
                "kind": "telemetry",
                "incline_pct": 0,
                "bws_pct": 20,
            },
            "/belt_speed_mps",
        ),
        (
            {
                "record_id": rid(),
                "time": now_iso(),
                "kind": "telemetry",
                "belt_speed_mps": 2,
                "incline_pct": 0,
                "bws_pct": 20,
                "clinic_id": "other-clinic",
            },
            "/clinic_id",
        ),
        ({"record_id": rid(), "time": now_iso(3600), "kind": "heartbeat"}, "/time"),
    ]
    for payload, path in cases:
        r = httpx.post(url, json=payload, headers=h)
        assert r.status_code == 422, (payload, r.text)
        assert r.json()["results"][0]["errors"][0]["path"] == path
    # a watch may not post unit telemetry
    r = httpx.post(url, json=cases[0][0], headers=device_headers(fleet, "watch"))
    assert r.status_code == 403


def test_setpoint(gateway: Gateway, fleet: dict[str, Any], topics: TopicReader) -> None:
    sp = {
        "record_id": rid(),
        "time": now_iso(-1),
        "bws_pct": 25,
        "previous_bws_pct": 30,
        "set_by": "panel",
    }
    r = httpx.post(
        gateway.url + "/v1/treadmill/setpoints", json=sp, headers=device_headers(fleet, "unit")
    )
    assert r.status_code == 200, r.text
    ev = find(topics, "treadmill.setpoints", "record_id", sp["record_id"])[0]["value"]
    assert (
        ev["clinic_id"] == fleet["clinic"]
        and ev["athlete_id"] == fleet["ath"]
        and ev["bws_pct"] == 25
    )


def test_pain_report_own_athlete_only(
    gateway: Gateway, fleet: dict[str, Any], topics: TopicReader
) -> None:
    url = gateway.url + "/v1/pain"
    rep = {
        "report_id": rid(),
        "time": now_iso(-60),
        "pain_nrs": 3,
        "context": "after",
        "swelling": False,
    }
    r = httpx.post(url, json=rep, headers=device_headers(fleet, "app"))
    assert r.status_code == 200, r.text
    msg = find(topics, "pain.reports", "report_id", rep["report_id"])[0]
    assert msg["key"] == fleet["ath"]
    assert msg["value"]["team_id"] == fleet["team"] and msg["value"]["session_id"] is None
    # for another athlete: refused
    other = {**rep, "report_id": rid(), "athlete_id": fleet["ath2"]}
    r = httpx.post(url, json=other, headers=device_headers(fleet, "app"))
    assert r.status_code == 403 and r.json()["results"][0]["reason"] == "athlete_mismatch"
    # team from the payload is not trusted
    r = httpx.post(
        url,
        json={**rep, "report_id": rid(), "team_id": "evil"},
        headers=device_headers(fleet, "app"),
    )
    assert r.status_code == 422
    # pain 11, fractional pain, unknown context
    for bad in ({"pain_nrs": 11}, {"pain_nrs": 2.5}, {"context": "yesterday"}):
        r = httpx.post(
            url, json={**rep, "report_id": rid(), **bad}, headers=device_headers(fleet, "app")
        )
        assert r.status_code == 422, r.text
        assert r.json()["results"][0]["reason"] == "schema_invalid"
    # a retry is a harmless duplicate
    r = httpx.post(url, json=rep, headers=device_headers(fleet, "app"))
    assert r.status_code == 200 and r.json()["duplicates"] == 1
    assert len(find(topics, "pain.reports", "report_id", rep["report_id"])) == 1


def test_openapi_served_equals_committed(gateway: Gateway) -> None:
    import json
    from pathlib import Path

    from kneeload.ingest.openapi import build_openapi

    committed = json.loads(
        (Path(__import__("kneeload.ingest").ingest.__file__).parent / "openapi.json").read_text()
    )
    served = httpx.get(gateway.url + "/openapi.json").json()
    assert served == committed, (
        "regenerate: kneeload ingest --openapi > services/kneeload/ingest/openapi.json"
    )
    assert served == json.loads(json.dumps(build_openapi()))
    # the request schemas are derived from the event schemas, not written twice
    sample = served["components"]["schemas"]["watch_sample_batch.sample"]
    assert served["components"]["schemas"]["WatchSamplesRequest"]["properties"]["samples"]["items"][
        "$ref"
    ].endswith("watch_sample_batch.sample")
    assert sample["properties"]["cadence_spm"]["exclusiveMinimum"] == 0
