"""Delivery transport against real local servers: SMTP with STARTTLS, implicit TLS and login
(aiosmtpd with a certificate made by openssl for this run), and webhooks/Slack answering 429
with ``Retry-After`` (a real HTTP server). Nothing is mocked."""

from __future__ import annotations

import datetime as dt
import email.utils
import itertools
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kneeload.notify.channels import DeliveryError, Message, SmtpConfig, retry_after_s, send
from kneeload.notify.routing import Channel
from kneeload.settings import SecretStr, Settings

from .conftest import make_alert, produce, serving, unique, wait_for
from .test_delivery import running, tuned

USER, PASSWORD = "alerts@clinic.example", "s3cret-Pa55"


# --------------------------------------------------------------------------- SMTP peers


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (the client trusts it as its CA)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl (Debian's openssl package) is needed to make the test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@dataclass
class Received:
    message: EmailMessage
    tls: bool
    login: str | None


@dataclass
class Inbox:
    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, accepted)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = session.auth_data if session.authenticated else None
        login = data.login.decode() if isinstance(data, LoginPassword) else None
        with self.lock:
            self.received.append(
                Received(
                    message_from_bytes(envelope.original_content, policy=policy.default),
                    tls=server.transport.get_extra_info("ssl_object") is not None,
                    login=login,
                )
            )
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == USER
            and data.password.decode() == PASSWORD
        )
        with self.lock:
            self.logins.append((data.login.decode() if data else "", ok))
        return AuthResult(success=ok, handled=False, auth_data=data)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


@dataclass
class SmtpPeer:
    port: int
    inbox: Inbox


def _smtp_peer(mode: str, cert: Path, key: Path) -> Iterator[SmtpPeer]:
    """``starttls``: STARTTLS required before AUTH and mail; ``ssl``: implicit TLS with AUTH;
    ``plain``: no TLS offered, no AUTH."""
    inbox, port = Inbox(), _free_port()
    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": port}
    if mode == "starttls":
        kwargs |= {
            "tls_context": _server_context(cert, key),
            "require_starttls": True,
            "auth_required": True,
            "auth_require_tls": True,
            "authenticator": inbox.authenticate,
        }
    elif mode == "ssl":
        kwargs |= {
            "ssl_context": _server_context(cert, key),
            "server_hostname": "localhost",
            "auth_required": True,
            # the whole connection is TLS; aiosmtpd only counts STARTTLS as TLS for AUTH
            "auth_require_tls": False,
            "authenticator": inbox.authenticate,
        }
    controller = Controller(inbox, **kwargs)
    controller.start()
    try:
        yield SmtpPeer(port, inbox)
    finally:
        controller.stop()


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[SmtpPeer]:
    yield from _smtp_peer("starttls", *certificate)


@pytest.fixture
def ssl_server(certificate: tuple[Path, Path]) -> Iterator[SmtpPeer]:
    yield from _smtp_peer("ssl", *certificate)


@pytest.fixture
def plain_server(certificate: tuple[Path, Path]) -> Iterator[SmtpPeer]:
    yield from _smtp_peer("plain", *certificate)


def _mail_channel() -> Channel:
    return Channel(name=unique("mail"), type="email", to=("physio@clinic.example",))


def _cfg(port: int, security: str, *, password: str = PASSWORD, ca: Path | None) -> SmtpConfig:
    return SmtpConfig(
        host="127.0.0.1", port=port, sender="kneeload@clinic.example",
        security=security, username=USER, password=password, ca_file=ca,  # type: ignore[arg-type]
    )  # fmt: skip


async def _send_mail(cfg: SmtpConfig) -> None:
    msg = Message("pain_high:ath-1:2024-06-10T06:00:00Z", [make_alert("team-x", 0)])
    async with httpx.AsyncClient() as http:
        await send(_mail_channel(), msg, http=http, smtp=cfg, timeout_s=10)


# --------------------------------------------------------------------------- SMTP tests

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_notifier_delivers_email_over_starttls_with_login(
    settings: Settings, starttls_server: SmtpPeer, certificate: tuple[Path, Path]
) -> None:
    """The whole notifier (Kafka → ledger → SMTP): STARTTLS, then AUTH, then the mail."""
    team = unique("team")
    alert = make_alert(team, 0)
    await produce(settings, [alert])
    s = tuned(
        settings,
        notify_smtp_port=starttls_server.port,
        notify_smtp_security="starttls",
        notify_smtp_username=USER,
        notify_smtp_password=SecretStr(PASSWORD),
        notify_smtp_ca_file=certificate[0],
    )
    doc = {
        "channels": {f"{team}-mail": {"type": "email", "to": [f"coach@{team}.example"]}},
        "routes": [{"team_id": team, "channels": [f"{team}-mail"]}],
    }
    async with running(s, doc):
        await wait_for(lambda: len(starttls_server.inbox.received) == 1, 30, "the email")
    (got,) = starttls_server.inbox.received
    assert got.tls and got.login == USER
    assert got.message["X-Kneeload-Alert-Id"] == alert["alert_id"]
    assert got.message["To"] == f"coach@{team}.example"
    assert starttls_server.inbox.logins == [(USER, True)]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_implicit_tls_with_login(
    ssl_server: SmtpPeer, certificate: tuple[Path, Path]
) -> None:
    await _send_mail(_cfg(ssl_server.port, "ssl", ca=certificate[0]))
    (got,) = ssl_server.inbox.received
    assert got.tls and got.login == USER


async def test_wrong_password_is_a_permanent_failure_and_not_echoed(
    starttls_server: SmtpPeer, certificate: tuple[Path, Path]
) -> None:
    with pytest.raises(DeliveryError) as err:
        await _send_mail(_cfg(starttls_server.port, "starttls", password="nope", ca=certificate[0]))
    assert err.value.permanent and "login" in str(err.value) and "nope" not in str(err.value)
    assert starttls_server.inbox.received == []


async def test_untrusted_certificate_is_refused(starttls_server: SmtpPeer) -> None:
    """Without the CA file the self-signed certificate does not verify: nothing is sent, and
    in particular not the password."""
    with pytest.raises(DeliveryError) as err:
        await _send_mail(_cfg(starttls_server.port, "starttls", ca=None))
    assert err.value.permanent and "not trusted" in str(err.value)
    assert starttls_server.inbox.logins == [] and starttls_server.inbox.received == []


async def test_starttls_required_but_not_offered(plain_server: SmtpPeer) -> None:
    with pytest.raises(DeliveryError) as err:
        await _send_mail(_cfg(plain_server.port, "starttls", ca=None))
    assert err.value.permanent and "STARTTLS" in str(err.value)
    assert plain_server.inbox.received == []


async def test_no_login_over_plain_smtp_to_another_host() -> None:
    cfg = SmtpConfig(host="192.0.2.10", port=25, sender="k@x.example", username=USER,
                     password=PASSWORD)  # fmt: skip
    with pytest.raises(DeliveryError) as err:
        await _send_mail(cfg)
    assert err.value.permanent and "unencrypted" in str(err.value)
    assert PASSWORD not in repr(cfg)


# --------------------------------------------------------------------- Retry-After


async def test_retry_after_forms() -> None:
    now = dt.datetime(2025, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert retry_after_s("7", now) == 7.0
    assert retry_after_s(" 0 ", now) == 0.0
    later = email.utils.format_datetime(now + dt.timedelta(seconds=90), usegmt=True)
    assert retry_after_s(later, now) == pytest.approx(90.0)
    earlier = email.utils.format_datetime(now - dt.timedelta(seconds=5), usegmt=True)
    assert retry_after_s(earlier, now) == 0.0
    assert retry_after_s(None, now) is None and retry_after_s("soon", now) is None


@dataclass
class Throttling:
    """An HTTP receiver that answers 429 + Retry-After to the first request of each path:
    ``retry_after`` as given (delay-seconds), ``retry_at_s`` as an HTTP date that many
    seconds after the answer (made when answering, as a throttling server would)."""

    port: int = 0
    retry_after: dict[str, str] = field(default_factory=dict)
    retry_at_s: dict[str, float] = field(default_factory=dict)
    hits: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def app(self) -> Starlette:
        async def hook(request: Request) -> JSONResponse:
            path = request.url.path
            await request.body()
            with self.lock:
                seen = self.hits.setdefault(path, [])
                throttled = path in self.retry_after or path in self.retry_at_s
                status = 429 if not seen and throttled else 200
                seen.append((time.monotonic(), status))
            headers = {}
            if status == 429 and path in self.retry_at_s:
                at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.retry_at_s[path])
                headers["Retry-After"] = email.utils.format_datetime(at, usegmt=True)
            elif status == 429:
                headers["Retry-After"] = self.retry_after[path]
            return JSONResponse({"ok": status == 200}, status_code=status, headers=headers)

        return Starlette(routes=[Route("/{name:path}", hook, methods=["POST"])])


@pytest.fixture
def throttling() -> Iterator[Throttling]:
    rec = Throttling()
    with serving(rec.app()) as rec.port:
        yield rec


async def test_webhook_and_slack_wait_for_retry_after(
    settings: Settings, throttling: Throttling
) -> None:
    """429 with Retry-After 3 s (webhook: delay-seconds; Slack: an HTTP date): the channel
    sends nothing for that long — neither the retry nor the channel's other alerts — while
    the plain backoff (0.2 s) would have retried at once."""
    team = unique("team")
    hook, slack = f"/{team}/hook", f"/{team}/slack"
    throttling.retry_after[hook] = "3"
    throttling.retry_at_s[slack] = 3.0
    alerts = [make_alert(team, i) for i in range(3)]
    await produce(settings, alerts)
    doc = {
        "channels": {
            f"{team}-hook": {"type": "webhook", "url": throttling.url(hook)},
            f"{team}-slack": {"type": "slack", "url": throttling.url(slack)},
        },
        "routes": [{"team_id": team, "channels": [f"{team}-hook", f"{team}-slack"]}],
    }
    s = tuned(settings, notify_backoff_base_s=0.2)
    async with running(s, doc) as notifier:
        await wait_for(
            lambda: all(
                sum(1 for _, st in throttling.hits.get(p, []) if st == 200) == 3
                for p in (hook, slack)
            ),
            45,
            "every alert on both channels",
        )
    assert notifier.stats.dead == 0
    for path, least_s in ((hook, 3.0), (slack, 2.0)):  # an HTTP date has 1 s resolution
        hits = throttling.hits[path]
        (t429, first), rest = hits[0], hits[1:]
        assert first == 429 and [st for _, st in rest] == [200, 200, 200], hits
        assert min(t for t, _ in rest) - t429 >= least_s, (path, [t - t429 for t, _ in rest])
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(throttling.hits[hook])]
    assert gaps[0] >= 3.0 > 0.2 * 4  # far beyond what the backoff alone would wait


async def test_retry_after_reported_in_the_error_without_the_url(throttling: Throttling) -> None:
    path = f"/{unique('p')}/T000/B000/secret-token"
    throttling.retry_after[path] = "12"
    channel = Channel(name="slack-x", type="slack", url=throttling.url(path))
    async with httpx.AsyncClient() as http:
        with pytest.raises(DeliveryError) as err:
            await send(channel, Message("a1", [make_alert("t", 0)]), http=http,
                       smtp=SmtpConfig("127.0.0.1", 25, "x@y"), timeout_s=5)  # fmt: skip
    assert err.value.retry_after_s == 12.0 and not err.value.permanent
    assert "secret-token" not in str(err.value)


# ----------------------------------------------------------------------- logs of a service


async def test_running_notifier_logs_no_channel_secret(
    settings: Settings, throttling: Throttling
) -> None:
    """`kneeload notify` at INFO: httpx logs every request with its URL — the channel's URL is
    its credential (a Slack webhook), so the log shows scheme and host only; the 429's
    Retry-After warning and the Authorization header value stay out too."""
    team = unique("team")
    secret_path = f"/{team}/services/T0/B0/s3cr3t-webhook-token"
    throttling.retry_after[secret_path] = "1"
    doc = {
        "channels": {
            f"{team}-slack": {
                "type": "slack",
                "url": throttling.url(secret_path),
                "headers": {"Authorization": "Bearer header-secret-123456"},
            }
        },
        "routes": [{"team_id": team, "channels": [f"{team}-slack"]}],
    }
    env = os.environ | {
        "KNEELOAD_NOTIFY_ROUTES": orjson.dumps(doc).decode(),
        "KNEELOAD_NOTIFY_GROUP_ID": unique("notify-logs"),
        "KNEELOAD_NOTIFY_POLL_S": "0.05",
        "KNEELOAD_NOTIFY_BACKOFF_BASE_S": "0.2",
        "KNEELOAD_LOG_LEVEL": "INFO",
    }
    await produce(settings, [make_alert(team, 0)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "kneeload", "notify", "--no-ack-server"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        await wait_for(
            lambda: (
                [st for _, st in throttling.hits.get(secret_path, [])] == [429, 200]
                or proc.poll() is not None
            ),
            60,
            "the throttled delivery and its retry",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert [st for _, st in throttling.hits[secret_path]] == [429, 200], out[-2000:]
    assert f"HTTP Request: POST http://127.0.0.1:{throttling.port}/***" in out, out[-2000:]
    assert "s3cr3t-webhook-token" not in out and "header-secret-123456" not in out
