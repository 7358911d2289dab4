"""Watch samples over HTTP: one Kafka message per request, per-record results, dedupe,
registry facts attached, every bad input a 4xx with a reason and a dead letter."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from .conftest import Gateway, TopicReader, device_headers


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sample(i: int, **over: Any) -> dict[str, Any]:
    base = datetime.now(UTC) - timedelta(hours=2)
    s = {
        "record_id": f"r-{uuid.uuid4().hex[:12]}-{i}",
        "time": iso(base + timedelta(seconds=i)),
        "cadence_spm": 172 + i % 5,
        "speed_mps": 3.4,
        "ground_contact_ms": 245,
        "heart_rate_bpm": 150,
    }
    s.update(over)
    return s


@pytest.fixture()
def client(gateway: Gateway, fleet: dict[str, Any]) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers=device_headers(fleet, "watch"), timeout=30)


def batches_with(topics: TopicReader, record_ids: set[str]) -> list[dict[str, Any]]:
    def found(msgs: list[dict[str, Any]]) -> bool:
        got = {s["record_id"] for m in msgs for s in m["value"]["samples"]}
        return record_ids <= got

    msgs = topics.read("watch.samples", until=found)
    return [m for m in msgs if {s["record_id"] for s in m["value"]["samples"]} & record_ids]


def dead_letters(topics: TopicReader, needle: str, n: int = 1) -> list[dict[str, Any]]:
    def found(msgs: list[dict[str, Any]]) -> bool:
        return (
            sum(
                1
                for m in msgs
                if needle in (m["value"]["payload"] or "") or needle == m["value"]["key"]
            )
            >= n
        )

    return [
        m["value"]
        for m in topics.read("deadletter", until=found)
        if needle in (m["value"]["payload"] or "") or needle == m["value"]["key"]
    ]


def test_valid_batch_is_one_message_with_team_attached(
    client: httpx.Client, fleet: dict[str, Any], topics: TopicReader
) -> None:
    samples = [sample(i) for i in range(100)]
    r = client.post("/v1/watch/samples", json={"session_id": "s-1", "samples": samples})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 100 and body["rejected"] == 0 and len(body["results"]) == 100
    assert {x["result"] for x in body["results"]} == {"accepted"}
    msgs = batches_with(topics, {s["record_id"] for s in samples})
    assert len(msgs) == 1
    event = msgs[0]["value"]
    assert msgs[0]["key"] == fleet["ath"]
    assert event["team_id"] == fleet["team"] and event["athlete_id"] == fleet["ath"]
    assert (
        event["device_id"] == fleet["watch"]
        and event["source"] == "http"
        and event["session_id"] == "s-1"
    )
    assert event["batch_id"] in body["batch_ids"]
    assert [s["record_id"] for s in event["samples"]] == [s["record_id"] for s in samples]


def test_mixed_batch_accepts_valid_and_dead_letters_each_invalid(
    client: httpx.Client, topics: TopicReader
) -> None:
    future = iso(datetime.now(UTC) + timedelta(days=2))
    bad = {
        1: sample(1, cadence_spm=0),
        2: sample(2, cadence_spm=400),
        3: sample(3, speed_mps=-1),
        4: sample(4, time="1999-12-31T23:59:59Z"),
        5: sample(5, time=future),
        6: sample(6, cadence_spm="fast"),
        7: {k: v for k, v in sample(7).items() if k != "speed_mps"},
        8: sample(8, heart_rate_bpm=150.5),
    }
    samples = [bad.get(i, sample(i)) for i in range(12)]
    r = client.post("/v1/watch/samples", json={"samples": samples})
    assert r.status_code == 207, r.text
    body = r.json()
    assert body["accepted"] == 4 and body["rejected"] == 8
    res = {x["index"]: x for x in body["results"]}
    assert res[5]["reason"] == "time_in_future"
    assert (
        res[1]["errors"][0]["path"] == "/cadence_spm"
        and res[1]["errors"][0]["code"] == "exclusive_minimum"
    )
    assert res[2]["errors"][0]["code"] == "maximum"
    assert res[3]["errors"][0]["path"] == "/speed_mps"
    assert res[4]["errors"][0]["path"] == "/time"
    assert res[6]["errors"][0]["code"] == "type"
    assert res[7]["errors"][0] == {
        "path": "/speed_mps",
        "code": "required",
        "message": "'speed_mps' is a required property",
    }
    for i in bad:
        assert res[i]["result"] == "rejected" and res[i]["reason"]
    good = {samples[i]["record_id"] for i in range(12) if i not in bad}
    msgs = batches_with(topics, good)
    assert len(msgs) == 1 and {s["record_id"] for s in msgs[0]["value"]["samples"]} == good
    dl = dead_letters(topics, samples[1]["record_id"])
    assert dl[0]["source"] == "http" and dl[0]["errors"][0]["path"] == "/cadence_spm"
    assert dead_letters(topics, samples[5]["record_id"])[0]["reason_code"] == "time_in_future"


def test_retry_is_harmless(client: httpx.Client, topics: TopicReader) -> None:
    samples = [sample(i) for i in range(5)]
    first = client.post("/v1/watch/samples", json={"samples": samples})
    assert first.status_code == 200
    again = client.post("/v1/watch/samples", json={"samples": [*samples, samples[0]]})
    assert again.status_code == 200, again.text
    assert again.json()["duplicates"] == 6 and again.json()["accepted"] == 0
    msgs = batches_with(topics, {s["record_id"] for s in samples})
    assert len(msgs) == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"samples": [', 400, "invalid_json"),
        (
            b'{"samples": [{"record_id": "a", "time": "2024-01-01T00:00:00Z", "cadence_spm": NaN, "speed_mps": 3}]}',  # noqa: E501
            400,
            "non_finite_number",
        ),
        (
            b'{"samples": [{"record_id": "a", "time": "2024-01-01T00:00:00Z", "cadence_spm": Infinity, "speed_mps": 3}]}',  # noqa: E501
            400,
            "non_finite_number",
        ),
        (
            b'{"samples": [{"record_id": "a", "time": "2024-01-01T00:00:00Z", "cadence_spm": 1e999, "speed_mps": 3}]}',  # noqa: E501
            400,
            "non_finite_number",
        ),
        (b"[1, 2]", 422, "invalid_request"),
        (b'{"samples": []}', 422, "invalid_request"),
        (b'{"samples": "no"}', 422, "invalid_request"),
        (b"{}", 422, "invalid_request"),
        (b'{"samples": [{}], "team_id": "evil"}', 422, "invalid_request"),
        (b'{"samples": [{}], "session_id": "has space"}', 422, "invalid_request"),
    ],
)
def test_bad_requests_are_4xx_with_reason(
    client: httpx.Client, body: bytes, status: int, code: str
) -> None:
    r = client.post("/v1/watch/samples", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_bad_request_is_dead_lettered(client: httpx.Client, topics: TopicReader) -> None:
    marker = uuid.uuid4().hex
    r = client.post("/v1/watch/samples", content=f'{{"samples": [ "{marker}" '.encode())
    assert r.status_code == 400
    dl = dead_letters(topics, marker)
    assert dl and dl[0]["reason_code"] == "invalid_json" and dl[0]["source"] == "http"


def test_oversized_body_is_413(client: httpx.Client, ingest_settings: Any) -> None:
    big = b'{"samples": [' + b" " * (ingest_settings.ingest_max_body_bytes + 10) + b"]}"
    r = client.post("/v1/watch/samples", content=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(ingest_settings.ingest_max_body_bytes // 65536 + 2):
            yield b" " * 65536

    r = client.post("/v1/watch/samples", content=chunks())
    assert r.status_code == 413


def test_auth(gateway: Gateway, fleet: dict[str, Any], admin: httpx.Client) -> None:
    body = {"samples": [sample(0)]}
    url = gateway.url + "/v1/watch/samples"
    assert httpx.post(url, json=body).json()["error"]["code"] == "missing_credentials"
    r = httpx.post(url, json=body, headers={"X-Device-Id": "nobody", "X-Api-Key": "kl_x"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unknown_device"
    r = httpx.post(
        url, json=body, headers={"X-Device-Id": fleet["watch"], "X-Api-Key": fleet["keys"]["app"]}
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.post(url, json=body, headers=device_headers(fleet, "unit"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_device_kind"
    # a revoked device is refused; a new key brings it back
    dev = f"watch-rev-{uuid.uuid4().hex[:6]}"
    key = admin.post(
        "/admin/devices", json={"device_id": dev, "kind": "watch", "athlete_id": fleet["ath"]}
    ).json()["api_key"]
    ok = httpx.post(url, json=body, headers={"X-Device-Id": dev, "X-Api-Key": key})
    assert ok.status_code == 200
    assert admin.post(f"/admin/devices/{dev}/revoke").status_code == 200
    r = httpx.post(
        url, json={"samples": [sample(1)]}, headers={"X-Device-Id": dev, "X-Api-Key": key}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "device_revoked"
    new = admin.post(f"/admin/devices/{dev}/rotate-key").json()["api_key"]
    assert (
        httpx.post(
            url, json={"samples": [sample(2)]}, headers={"X-Device-Id": dev, "X-Api-Key": key}
        ).status_code
        == 401
    )
    assert (
        httpx.post(
            url, json={"samples": [sample(3)]}, headers={"X-Device-Id": dev, "X-Api-Key": new}
        ).status_code
        == 200
    )


def test_admin_requires_token(gateway: Gateway) -> None:
    r = httpx.put(gateway.url + "/admin/athletes/x", json={"body_mass_kg": 70})
    assert r.status_code == 401
    r = httpx.put(
        gateway.url + "/admin/athletes/x",
        json={"body_mass_kg": 70},
        headers={"Authorization": "Bearer nope"},
    )
    assert r.status_code == 401


def test_admin_validates_records(admin: httpx.Client) -> None:
    r = admin.put("/admin/athletes/a-bad", json={"body_mass_kg": 20})
    assert r.status_code == 422 and r.json()["error"]["errors"][0]["path"] == "/body_mass_kg"
    r = admin.put("/admin/athletes/a-bad", json={"body_mass_kg": 70, "time_zone": "Mars/Olympus"})
    assert r.status_code == 422 and r.json()["error"]["errors"][0]["code"] == "unknown_time_zone"
    r = admin.post(
        "/admin/devices", json={"device_id": "w-x", "kind": "watch", "athlete_id": "ghost"}
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_athlete"
    r = admin.post("/admin/devices", json={"device_id": "u-x", "kind": "lever_unit"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "clinic_required"


def test_keys_are_stored_hashed(
    admin: httpx.Client, fleet: dict[str, Any], topics: TopicReader
) -> None:
    import hashlib

    key = fleet["keys"]["watch"]
    recs = [m["value"] for m in topics.read("registry.devices") if m["key"] == fleet["watch"]]
    assert recs and key not in str(recs)
    assert recs[-1]["api_key_sha256"] == hashlib.sha256(key.encode()).hexdigest()
    snapshot = admin.get("/admin/registry").json()
    assert key not in str(snapshot)


def test_large_batch_split_at_1000(client: httpx.Client, topics: TopicReader) -> None:
    samples = [sample(i) for i in range(2500)]
    t0 = time.monotonic()
    r = client.post("/v1/watch/samples", json={"samples": samples})
    assert r.status_code == 200, r.text[:500]
    assert time.monotonic() - t0 < 10
    assert len(r.json()["batch_ids"]) == 3
    msgs = batches_with(topics, {s["record_id"] for s in samples})
    assert sorted(len(m["value"]["samples"]) for m in msgs) == [500, 1000, 1000]
