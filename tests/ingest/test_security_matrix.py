"""Security suite — the gateway's authentication matrix, on the real gateway and broker.

Every ingest endpoint × every way a request can be unauthorised (no credentials, an
unknown device, a wrong key, a revoked device, the wrong kind of device, another athlete's
id in the body) gets its documented status and machine-readable code, and **nothing is
published**: no data topic and no registry topic carries anything of these requests, and a
request that was not authenticated leaves no dead letter either (anonymous bytes must not
be able to fill Kafka and the dead-letter table). Every admin path without a token or
with a wrong one is refused and changes nothing in the registry.

Each request carries a marker unique to this module (record ids, report ids, device ids),
and the topics are read back in full at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from .conftest import ADMIN_TOKEN, Gateway, TopicReader, device_headers

MARK = "sec" + uuid.uuid4().hex[:10]
FIT = Path("/work/shared/data/fit/garmin-fenix-5-run.fit")
DATA_TOPICS = (
    "watch.samples",
    "treadmill.telemetry",
    "treadmill.setpoints",
    "pain.reports",
    "registry.athletes",
    "registry.devices",
    "registry.assignments",
)


def _iso(delta_s: float = -60) -> str:
    t = datetime.now(UTC) + timedelta(seconds=delta_s)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rid(what: str) -> str:
    return f"{MARK}-{what}-{uuid.uuid4().hex[:8]}"


def _samples() -> bytes:
    s = [
        {
            "record_id": _rid("s"),
            "time": _iso(-120 + i),
            "cadence_spm": 170,
            "speed_mps": 3.2,
        }
        for i in range(3)
    ]
    return orjson.dumps({"session_id": _rid("sess"), "samples": s})


def _telemetry() -> bytes:
    return orjson.dumps(
        {
            "record_id": _rid("t"),
            "time": _iso(),
            "kind": "telemetry",
            "belt_speed_mps": 2.5,
            "incline_pct": 0,
            "bws_pct": 20,
        }
    )


def _setpoint() -> bytes:
    return orjson.dumps({"record_id": _rid("sp"), "time": _iso(), "bws_pct": 20})


def _pain() -> bytes:
    return orjson.dumps({"report_id": _rid("p"), "time": _iso(), "pain_nrs": 3, "context": "after"})


def _with(body: bytes, **extra: Any) -> bytes:
    return orjson.dumps({**orjson.loads(body), **extra})


#: endpoint -> (path, content type, body factory, device allowed there, device refused there)
ENDPOINTS: dict[str, tuple[str, str, Callable[[], bytes], str, str]] = {
    "watch_samples": ("/v1/watch/samples", "application/json", _samples, "watch", "unit"),
    "webhook_samples": ("/v1/webhooks/samples", "application/json", _samples, "app", "unit"),
    "activities": ("/v1/activities", "application/vnd.ant.fit", FIT.read_bytes, "watch", "unit"),
    "telemetry": ("/v1/treadmill/telemetry", "application/json", _telemetry, "unit", "watch"),
    "setpoints": ("/v1/treadmill/setpoints", "application/json", _setpoint, "unit", "app"),
    "pain": ("/v1/pain", "application/json", _pain, "app", "unit"),
}

#: case -> (status, error code)
CASES: dict[str, tuple[int, str]] = {
    "no_credentials": (401, "missing_credentials"),
    "key_without_device": (401, "missing_credentials"),
    "unknown_device": (401, "unknown_device"),
    "wrong_key": (401, "invalid_api_key"),
    "another_devices_key": (401, "invalid_api_key"),
    "revoked_device": (403, "device_revoked"),
    "wrong_device_kind": (403, "wrong_device_kind"),
}


@pytest.fixture(scope="module")
def devices(admin: httpx.Client, fleet: dict[str, Any]) -> dict[str, Any]:
    """The session's fleet plus, for this module, a watch and a unit that are revoked and a
    watch whose uploads carry the marker in their device id (FIT record ids)."""
    out: dict[str, Any] = {"keys": dict(fleet["keys"]), **fleet}
    for name, kind, extra in (
        ("revoked_watch", "watch", {"athlete_id": fleet["ath"]}),
        ("revoked_app", "app", {"athlete_id": fleet["ath"]}),
        ("revoked_unit", "lever_unit", {"clinic_id": fleet["clinic"]}),
        ("marked_watch", "watch", {"athlete_id": fleet["ath"]}),
    ):
        dev_id = f"{MARK}-{name}"
        r = admin.post("/admin/devices", json={"device_id": dev_id, "kind": kind, **extra})
        assert r.status_code == 201, r.text
        out[name] = dev_id
        out["keys"][name] = r.json()["api_key"]
        if name.startswith("revoked"):
            assert admin.post(f"/admin/devices/{dev_id}/revoke").status_code == 200
    return out


def _headers(devices: dict[str, Any], case: str, allowed: str, refused: str) -> dict[str, str]:
    if case == "no_credentials":
        return {}
    if case == "key_without_device":
        return {"X-Api-Key": devices["keys"][allowed]}
    if case == "unknown_device":
        return {"X-Device-Id": f"{MARK}-nobody", "X-Api-Key": "kl_" + "0" * 43}
    if case == "wrong_key":
        return {"X-Device-Id": devices[allowed], "X-Api-Key": "kl_" + uuid.uuid4().hex * 2}
    if case == "another_devices_key":
        return {"X-Device-Id": devices[allowed], "X-Api-Key": devices["keys"][refused]}
    if case == "revoked_device":
        revoked = {"watch": "revoked_watch", "app": "revoked_app", "unit": "revoked_unit"}
        return device_headers(devices, revoked[allowed])
    if case == "wrong_device_kind":
        return device_headers(devices, refused)
    raise AssertionError(case)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_unauthorised_requests_are_refused(
    gateway: Gateway, devices: dict[str, Any], endpoint: str, case: str
) -> None:
    path, ctype, body, allowed, refused = ENDPOINTS[endpoint]
    headers = {"Content-Type": ctype, **_headers(devices, case, allowed, refused)}
    r = httpx.post(gateway.url + path, content=body(), headers=headers, timeout=30)
    status, code = CASES[case]
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert r.json()["error"]["message"]


#: another athlete's id in the body: refused (the athlete comes from the registry, never
#: from the payload) — endpoint -> (status, where the refusal is reported)
ATHLETE_IN_BODY: dict[str, tuple[int, str]] = {
    "watch_samples": (422, "invalid_request"),
    "webhook_samples": (422, "invalid_request"),
    "telemetry": (422, "schema_invalid"),
    "setpoints": (422, "schema_invalid"),
    "pain": (403, "athlete_mismatch"),
}


@pytest.mark.parametrize("endpoint", list(ATHLETE_IN_BODY))
def test_another_athletes_id_in_the_body_is_refused(
    gateway: Gateway, devices: dict[str, Any], endpoint: str
) -> None:
    path, ctype, body, allowed, _ = ENDPOINTS[endpoint]
    headers = {"Content-Type": ctype, **device_headers(devices, allowed)}
    r = httpx.post(
        gateway.url + path, content=_with(body(), athlete_id=devices["ath2"]), headers=headers
    )
    status, code = ATHLETE_IN_BODY[endpoint]
    assert r.status_code == status, r.text
    got = r.json()
    reason = got["error"]["code"] if "error" in got else got["results"][0]["reason"]
    assert reason == code, got


def test_an_upload_belongs_to_the_devices_athlete_whatever_the_query_says(
    gateway: Gateway, devices: dict[str, Any], topics: TopicReader
) -> None:
    """An activity upload has no JSON body to carry an athlete id; a query parameter
    naming another athlete is never honoured: refused, or the samples are the device's
    own athlete's."""
    r = httpx.post(
        gateway.url + "/v1/activities",
        params={"athlete_id": devices["ath2"]},
        content=FIT.read_bytes(),
        headers={
            "Content-Type": "application/vnd.ant.fit",
            **device_headers(devices, "marked_watch"),
        },
        timeout=60,
    )
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        n = r.json()["accepted"]
        msgs = [
            m["value"]
            for m in topics.read(
                "watch.samples",
                until=lambda ms: (
                    sum(
                        len(m["value"]["samples"])
                        for m in ms
                        if m["value"]["device_id"] == devices["marked_watch"]
                    )
                    >= n
                ),
            )
            if m["value"]["device_id"] == devices["marked_watch"]
        ]
        assert {m["athlete_id"] for m in msgs} == {devices["ath"]}
        assert sum(len(m["samples"]) for m in msgs) == n


ADMIN_PATHS: list[tuple[str, str, dict[str, Any]]] = [
    ("PUT", f"/admin/athletes/{MARK}-athlete", {"body_mass_kg": 60, "team_id": f"{MARK}-team"}),
    ("POST", "/admin/devices", {"device_id": f"{MARK}-dev", "kind": "watch"}),
    ("POST", f"/admin/devices/{MARK}-revoked_watch/rotate-key", {}),
    ("POST", f"/admin/devices/{MARK}-marked_watch/revoke", {}),
    ("PUT", f"/admin/units/{MARK}-revoked_unit/assignment", {"athlete_id": f"{MARK}-athlete"}),
    ("GET", "/admin/registry", {}),
]


@pytest.mark.parametrize(
    "token", [None, "", "Bearer", f"Bearer {ADMIN_TOKEN}x", f"Basic {ADMIN_TOKEN}", ADMIN_TOKEN]
)
@pytest.mark.parametrize(("method", "path", "body"), ADMIN_PATHS)
def test_admin_paths_need_the_token(
    gateway: Gateway,
    devices: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, Any],
    token: str | None,
) -> None:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = token
    r = httpx.request(
        method,
        gateway.url + path,
        content=orjson.dumps(body) if method != "GET" else None,
        headers=headers,
    )
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_admin_token"
    assert "athletes" not in r.json()  # GET /admin/registry must not answer


def test_nothing_was_published(
    gateway: Gateway, devices: dict[str, Any], topics: TopicReader
) -> None:
    """Runs after the matrix (file order): no data or registry topic holds the marker, the
    marked watch still works (it was not revoked by a refused admin call), and no dead
    letter holds a body sent without valid credentials."""
    # the refused revoke/rotate did nothing: the marked watch is still accepted
    r = httpx.post(
        gateway.url + "/v1/pain",
        content=_pain(),
        headers={"Content-Type": "application/json", **device_headers(devices, "marked_watch")},
    )
    assert r.status_code == 200, r.text
    accepted_report = orjson.loads(r.request.content)["report_id"]
    for logical in DATA_TOPICS:
        for m in topics.read(logical, timeout_s=5):
            text = orjson.dumps(m).decode()
            if MARK not in text:
                continue
            # allowed: the module's own registrations, the one accepted report, and the
            # marked watch's upload (checked above: its own athlete's)
            v = m["value"] or {}
            own = logical == "registry.devices" and str(m["key"]).startswith(MARK)
            upload = (
                v.get("device_id") == devices["marked_watch"]
                and v["athlete_id"] == (devices["ath"])
            )
            assert own or upload or accepted_report in text, (logical, text[:500])
    leaked = [
        m["value"]
        for m in topics.read("deadletter", timeout_s=5)
        if MARK in (m["value"].get("payload") or "")
        and m["value"]["reason_code"]
        in {code for _, code in CASES.values()} | {"invalid_admin_token"}
    ]
    assert leaked == [], [(d["reason_code"], d["payload"][:120]) for d in leaked]
