"""Fuzzing the gateway with hypothesis: whatever arrives, the answer is never a 5xx, and the
gateway keeps serving. Request bodies are generated from the OpenAPI document's own schemas
(mutated) and from arbitrary JSON and bytes."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Gateway, device_headers

PATHS = [
    "/v1/watch/samples",
    "/v1/webhooks/samples",
    "/v1/treadmill/telemetry",
    "/v1/treadmill/setpoints",
    "/v1/pain",
    "/v1/activities",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)
keys = st.sampled_from(
    [
        "record_id",
        "time",
        "cadence_spm",
        "speed_mps",
        "ground_contact_ms",
        "heart_rate_bpm",
        "kind",
        "belt_speed_mps",
        "incline_pct",
        "bws_pct",
        "report_id",
        "pain_nrs",
        "context",
        "athlete_id",
        "session_id",
        "samples",
        "team_id",
        "clinic_id",
    ]
)
values = st.one_of(
    json_values,
    st.sampled_from(
        [
            "2024-01-01T00:00:00Z",
            "1999-01-01T00:00:00Z",
            "2999-01-01T00:00:00Z",
            "2024-13-45T99:99:99Z",
            "2024-01-01T00:00:60Z",
            "telemetry",
            "heartbeat",
            "after",
            0,
            400,
            -1,
            11,
            1e308,
            "",
            "a" * 300,
        ]
    ),
)
records = st.dictionaries(keys, values, max_size=10)
bodies = st.one_of(
    records.map(lambda r: orjson.dumps(r)),
    st.lists(records, max_size=5).map(lambda rs: orjson.dumps({"samples": rs})),
    st.lists(records, max_size=5).map(lambda rs: orjson.dumps(rs)),
    json_values.map(lambda v: orjson.dumps(v)),
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"NaN",
            b'{"samples":[{"cadence_spm":-Infinity}]}',
            b"\xff\xfe",
            b'{"samples": [{"cadence_spm": 123456789012345678901234567890}]}',
            b"{" * 50,
            b"[" * 3000,
        ]
    ),
)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(PATHS),
    body=bodies,
    who=st.sampled_from(["watch", "app", "unit", None]),
    ctype=st.sampled_from(
        ["application/json", "application/vnd.ant.fit", "text/plain", "application/xml"]
    ),
)
def test_never_5xx(
    gateway: Gateway, fleet: dict[str, Any], path: str, body: bytes, who: str | None, ctype: str
) -> None:
    headers = {"Content-Type": ctype, **(device_headers(fleet, who) if who else {})}
    r = httpx.post(gateway.url + path, content=body, headers=headers, timeout=30)
    assert r.status_code < 500, (path, body[:200], r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json")
    if r.status_code >= 400 and "error" in r.json():
        assert r.json()["error"]["code"]


def test_still_serving_after_fuzz(gateway: Gateway) -> None:
    assert httpx.get(gateway.url + "/healthz").status_code == 200
