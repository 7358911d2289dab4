"""Security suite — hostile uploads, built from the real device files in /work/shared/data.

Every FIT and TCX file truncated at many points and with bits flipped (seeded), XML entity
expansion ("billion laughs", quadratic blow-up), external entities (a local file, a URL on
a listener this test watches), an XInclude, deeply nested XML and JSON, bodies over the
limits (declared and streamed without a length): the gateway always answers a 4xx with a
machine-readable reason — or, for a mutation that leaves a decodable file, a 2xx — and
never a 5xx, never hangs (each request has a deadline), never fetches anything, and its
memory stays bounded (peak RSS of the process that runs it).
"""

from __future__ import annotations

import random
import resource
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Gateway, device_headers

DATA = Path("/work/shared/data")
FITS = sorted((DATA / "fit").glob("*.fit"))
TCXS = sorted((DATA / "tcx").glob("*.tcx"))
FIT_TYPE, TCX_TYPE = "application/vnd.ant.fit", "application/vnd.garmin.tcx+xml"
DEADLINE_S = 60.0
#: growth of the test process's peak RSS the whole module may cause (the gateway runs in it)
RSS_BUDGET_MB = 400


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module", autouse=True)
def bounded_memory() -> Iterator[None]:
    before = _peak_rss_mb()
    yield
    grown = _peak_rss_mb() - before
    assert grown < RSS_BUDGET_MB, f"peak RSS grew by {grown:.0f} MB"


def _post(
    gateway: Gateway, fleet: dict[str, Any], body: bytes, ctype: str, **kw: Any
) -> httpx.Response:
    headers = {"Content-Type": ctype, **device_headers(fleet, "watch"), **kw.pop("headers", {})}
    return httpx.post(
        gateway.url + kw.pop("path", "/v1/activities"),
        content=body,
        headers=headers,
        timeout=DEADLINE_S,
        params={"start_time": "2024-05-01T08:00:00Z"},
        **kw,
    )


def _assert_answered(r: httpx.Response, *, allow_ok: bool = True) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400 or not allow_ok:
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
        err = r.json()["error"]
        assert err["code"] and err["message"], r.text[:300]


#: files larger than this get fewer mutations (decoding a 150 kB FIT file takes ~1 s here)
LARGE = 50_000


def _truncations(data: bytes) -> list[bytes]:
    n = len(data)
    cuts = {0, 1, 12, 13, 14, n // 2, n - 2, n - 1}
    if n < LARGE:
        cuts |= {11, 15, n // 3, n - 3}
    return [data[:c] for c in sorted(c for c in cuts if 0 <= c < n)]


def _bit_flips(data: bytes, seed: int) -> list[bytes]:
    count = 6 if len(data) >= LARGE else 12
    rng = random.Random(seed)
    out = []
    for i in range(count):
        b = bytearray(data)
        # header, data records and the CRC at the end each get some of the flips
        where = (
            rng.randrange(0, min(14, len(b)))
            if i % 3 == 0
            else (len(b) - 1 - rng.randrange(0, 2) if i % 3 == 1 else rng.randrange(len(b)))
        )
        b[where] ^= 1 << rng.randrange(8)
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("path", FITS + TCXS, ids=lambda p: p.name)
def test_truncated_and_bit_flipped_files(
    gateway: Gateway, fleet: dict[str, Any], path: Path
) -> None:
    data = path.read_bytes()
    ctype = FIT_TYPE if path.suffix == ".fit" else TCX_TYPE
    for i, body in enumerate(_truncations(data)):
        r = _post(gateway, fleet, body, ctype)
        _assert_answered(r, allow_ok=False)  # a cut file never decodes (CRC, well-formedness)
        assert r.json()["error"]["code"] in (
            "corrupt_fit",
            "corrupt_tcx",
            "invalid_request",
            "unsupported_media_type",
        ), (i, r.text[:300])
    for body in _bit_flips(data, seed=len(data)):
        _assert_answered(_post(gateway, fleet, body, ctype))


LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE TrainingCenterDatabase [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2">
<Activities><Activity Sport="Running"><Id>&lol9;</Id></Activity></Activities>
</TrainingCenterDatabase>
"""


def _quadratic() -> bytes:
    big = b"x" * 200_000
    refs = b"&big;" * 2_000
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE TrainingCenterDatabase [<!ENTITY big "'
        + big
        + b'">]>\n<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/'
        b'TrainingCenterDatabase/v2"><Activities><Activity Sport="Running"><Id>'
        + refs
        + b"</Id></Activity></Activities></TrainingCenterDatabase>\n"
    )


def _external(uri: str) -> bytes:
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE TrainingCenterDatabase [<!ENTITY ext SYSTEM "'
        + uri.encode()
        + b'">]>\n<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/'
        b'TrainingCenterDatabase/v2"><Activities><Activity Sport="Running"><Id>&ext;</Id>'
        b"</Activity></Activities></TrainingCenterDatabase>\n"
    )


def _parameter_entity(uri: str) -> bytes:
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE TrainingCenterDatabase [<!ENTITY % remote SYSTEM "'
        + uri.encode()
        + b'"> %remote;]>\n<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/'
        b'TrainingCenterDatabase/v2"/>\n'
    )


def _xinclude(uri: str) -> bytes:
    return (
        b'<?xml version="1.0"?>\n<TrainingCenterDatabase xmlns="http://www.garmin.com/'
        b'xmlschemas/TrainingCenterDatabase/v2" xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<Activities><Activity Sport="Running"><xi:include href="'
        + uri.encode()
        + b'" parse="text"/></Activity></Activities></TrainingCenterDatabase>\n'
    )


@pytest.fixture()
def listener() -> Iterator[tuple[str, list[bytes]]]:
    """A TCP listener that records any connection (an entity fetch would make one)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    got: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    got.append(conn.recv(4096) or b"<connected>")
                except OSError:
                    got.append(b"<connected>")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/secret.dtd", got
    stop.set()
    t.join(5)
    srv.close()


def test_entity_expansion_is_refused(gateway: Gateway, fleet: dict[str, Any]) -> None:
    for body in (LAUGHS, _quadratic()):
        r = _post(gateway, fleet, body, TCX_TYPE)
        _assert_answered(r, allow_ok=False)
        assert r.json()["error"]["code"] == "corrupt_tcx", r.text[:300]


def test_external_entities_are_never_fetched(
    gateway: Gateway, fleet: dict[str, Any], listener: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    url, got = listener
    secret = tmp_path / "secret.txt"
    secret.write_text("kneeload-secret-7f3a")
    for body in (
        _external(secret.as_uri()),
        _external("file:///etc/passwd"),
        _external(url),
        _parameter_entity(url),
        _xinclude(url),
        _xinclude(secret.as_uri()),
    ):
        r = _post(gateway, fleet, body, TCX_TYPE)
        _assert_answered(r, allow_ok=False)
        assert "kneeload-secret-7f3a" not in r.text and "root:" not in r.text
    assert got == [], f"the gateway fetched an external resource: {got[:2]}"


def test_deeply_nested_bodies(gateway: Gateway, fleet: dict[str, Any]) -> None:
    depth = 200_000
    xml = (
        b'<?xml version="1.0"?><TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/'
        b'TrainingCenterDatabase/v2">' + b"<a>" * depth + b"</a>" * depth
        + b"</TrainingCenterDatabase>"
    )  # fmt: skip
    _assert_answered(_post(gateway, fleet, xml, TCX_TYPE), allow_ok=False)
    for path in ("/v1/watch/samples", "/v1/pain", "/v1/treadmill/telemetry"):
        for body in (b"[" * depth + b"]" * depth, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
            headers = device_headers(fleet, "unit" if "treadmill" in path else "watch")
            r = httpx.post(
                gateway.url + path,
                content=body,
                headers={"Content-Type": "application/json", **headers},
                timeout=DEADLINE_S,
            )
            _assert_answered(r, allow_ok=False)


def test_oversized_bodies(gateway: Gateway, fleet: dict[str, Any]) -> None:
    s = gateway.settings
    big_upload = b"\0" * (s.ingest_max_upload_bytes + 1)
    big_json = b" " * (s.ingest_max_body_bytes + 1)

    def chunks(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
        for i in range(0, len(data), size):
            yield data[i : i + size]

    cases: list[tuple[str, str, Any]] = [
        ("/v1/activities", FIT_TYPE, big_upload),  # declared length over the limit
        ("/v1/activities", FIT_TYPE, chunks(big_upload)),  # streamed, no length
        ("/v1/watch/samples", "application/json", big_json),
        ("/v1/watch/samples", "application/json", chunks(big_json, 64 << 10)),
    ]
    for path, ctype, body in cases:
        r = httpx.post(
            gateway.url + path,
            content=body,
            headers={"Content-Type": ctype, **device_headers(fleet, "watch")},
            timeout=DEADLINE_S,
        )
        _assert_answered(r, allow_ok=False)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", r.text


def test_still_serving(gateway: Gateway) -> None:
    assert httpx.get(gateway.url + "/healthz", timeout=10).status_code == 200
