"""Rendering and sending one message (a single alert or a digest) to one channel.

Every message carries an idempotency key: ``X-Kneeload-Alert-Id`` on webhooks (the
alert id, or ``digest-<hash>`` for a digest, whose member ids are listed in
``X-Kneeload-Alert-Ids``) and a deterministic ``Message-ID`` on email, so a receiver
can drop the one resend a crash can cause.

Transport: webhooks and Slack over httpx; a 429 or 503 answer's ``Retry-After`` (seconds or
an HTTP date, RFC 9110 §10.2.3) travels on the :class:`DeliveryError` so the retry waits at
least that long. Email over SMTP with implicit TLS (``ssl``, port 465), ``starttls`` (587)
or plain (``none``, for a local relay), and LOGIN/PLAIN authentication when a username is
set — never over an unencrypted connection to another host. Error texts never carry a
channel's URL (a Slack webhook URL is its credential).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson

from kneeload.notify.routing import Channel
from kneeload.settings import Settings

__all__ = [
    "DeliveryError",
    "Message",
    "SmtpConfig",
    "digest_id",
    "render_email",
    "render_slack",
    "render_webhook",
    "retry_after_s",
    "send",
]

IDEMPOTENCY_HEADER = "X-Kneeload-Alert-Id"
MEMBERS_HEADER = "X-Kneeload-Alert-Ids"
_SEVERITY_ICON = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}


class DeliveryError(Exception):
    """A delivery attempt failed; ``permanent`` means retrying cannot help; ``retry_after_s``
    is the receiver's own wait (``Retry-After``), which the next attempt must not precede."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after_s = retry_after_s


SmtpSecurity = Literal["none", "starttls", "ssl"]


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """How email leaves: server, TLS mode, login, sender. The password stays a secret."""

    host: str
    port: int
    sender: str
    security: SmtpSecurity = "none"
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> SmtpConfig:
        return cls(
            host=s.notify_smtp_host,
            port=s.notify_smtp_port,
            sender=s.notify_smtp_from,
            security=s.notify_smtp_security,
            username=s.notify_smtp_username,
            password=(
                s.notify_smtp_password.get_secret_value() if s.notify_smtp_password else None
            ),
            ca_file=s.notify_smtp_ca_file,
        )

    def __repr__(self) -> str:  # never the password
        return (
            f"SmtpConfig({self.host}:{self.port}, {self.security}, user={self.username!r}, "
            f"password={'***' if self.password else None})"
        )


@dataclass(frozen=True, slots=True)
class Message:
    """What goes out in one request/email: one alert, or a digest of several."""

    message_id: str
    alerts: Sequence[dict[str, Any]]

    @property
    def is_digest(self) -> bool:
        return self.message_id.startswith("digest-")


def digest_id(alert_ids: Sequence[str]) -> str:
    """Deterministic id of a digest from its members (order-independent)."""
    h = hashlib.sha256("\n".join(sorted(alert_ids)).encode()).hexdigest()[:24]
    return f"digest-{h}"


def _subject_of(alert: dict[str, Any]) -> str:
    if alert.get("athlete_id"):
        return f"athlete {alert['athlete_id']}"
    if alert.get("unit_id"):
        return f"unit {alert['unit_id']}"
    return "kneeload"


def _line(alert: dict[str, Any]) -> str:
    return (
        f"[{alert.get('severity', 'info').upper()}] {alert.get('kind')} — {_subject_of(alert)}"
        f" at {alert.get('event_time')}: {alert.get('message')}"
    )


def title(msg: Message) -> str:
    if msg.is_digest:
        worst = max(
            (a.get("severity", "info") for a in msg.alerts),
            key=lambda s: {"info": 0, "warning": 1, "critical": 2}.get(s, 0),
        )
        return f"kneeload digest: {len(msg.alerts)} alerts (worst: {worst})"
    a = msg.alerts[0]
    return f"kneeload {a.get('severity', 'info')}: {a.get('kind')} — {_subject_of(a)}"


def render_webhook(msg: Message) -> dict[str, Any]:
    """Generic JSON body: ``{"type": "alert", "alert": {...}}`` or ``{"type": "digest", ...}``."""
    if msg.is_digest:
        return {
            "type": "digest",
            "digest_id": msg.message_id,
            "count": len(msg.alerts),
            "alerts": list(msg.alerts),
        }
    return {"type": "alert", "alert_id": msg.message_id, "alert": msg.alerts[0]}


def render_slack(msg: Message) -> dict[str, Any]:
    """Slack incoming-webhook body: ``{"text": fallback, "blocks": [...]}``."""
    head = title(msg)[:150]  # header blocks take at most 150 characters
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head, "emoji": True}}
    ]
    shown = list(msg.alerts)[:20]
    for a in shown:
        icon = _SEVERITY_ICON.get(a.get("severity", "info"), "")
        values = ", ".join(f"{k}={v}" for k, v in (a.get("values") or {}).items())
        text = f"{icon} *{a.get('kind')}* — {_subject_of(a)}\n{a.get('message')}"
        if values:
            text += f"\n`{values}`"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"{a.get('event_time')} · team {a.get('team_id') or '-'}"
                        f" · clinic {a.get('clinic_id') or '-'} · id `{a.get('alert_id')}`",
                    }
                ],
            }
        )
    if len(msg.alerts) > len(shown):
        more = len(msg.alerts) - len(shown)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"… and {more} more"}})
    text = head if msg.is_digest else _line(msg.alerts[0])
    return {"text": text, "blocks": blocks}


def render_email(msg: Message, channel: Channel, sender: str) -> EmailMessage:
    em = EmailMessage()
    em["Subject"] = title(msg)
    em["From"] = sender
    em["To"] = ", ".join(channel.to)
    em["Date"] = formatdate(usegmt=True)
    # Deterministic, so a resend after a crash is the same email to the receiving MTA/client
    # (ids may hold ':' which RFC 5322 msg-ids cannot, hence the digest).
    mid = hashlib.sha256(f"{msg.message_id}\n{channel.name}".encode()).hexdigest()[:32]
    em["Message-ID"] = f"<{mid}@kneeload.alerts>"
    em[IDEMPOTENCY_HEADER] = msg.message_id
    if msg.is_digest:
        # ", " lets the header fold between ids (a long unbroken value would be RFC 2047-encoded)
        em[MEMBERS_HEADER] = ", ".join(a["alert_id"] for a in msg.alerts)
    lines = [_line(a) for a in msg.alerts]
    lines += ["", "PFJ figures are model estimates, not measurements.", ""]
    lines += [f"alert id: {a['alert_id']}" for a in msg.alerts]
    em.set_content("\n".join(lines))
    return em


def headers_for(msg: Message) -> dict[str, str]:
    h = {IDEMPOTENCY_HEADER: msg.message_id, "Content-Type": "application/json"}
    if msg.is_digest:
        h[MEMBERS_HEADER] = ",".join(a["alert_id"] for a in msg.alerts)
    return h


def retry_after_s(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait: delay-seconds or an HTTP date; None
    when absent or unreadable (a date in the past means 0)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def _without(text: str, secret: str | None) -> str:
    return text.replace(secret, "<channel url>") if secret else text


async def _post(
    client: httpx.AsyncClient, channel: Channel, body: dict[str, Any], msg: Message
) -> None:
    assert channel.url is not None
    headers = {**channel.headers, **headers_for(msg)}
    try:
        resp = await client.post(channel.url, content=orjson.dumps(body), headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(_without(f"{type(exc).__name__}: {exc}", channel.url)) from exc
    if 200 <= resp.status_code < 300:
        return
    permanent = 400 <= resp.status_code < 500 and resp.status_code not in (408, 409, 425, 429)
    wait = None
    if resp.status_code in (429, 503):
        wait = retry_after_s(resp.headers.get("retry-after"))
    raise DeliveryError(
        _without(f"HTTP {resp.status_code}: {resp.text[:300]}", channel.url)
        + (f" (Retry-After {wait:g} s)" if wait is not None else ""),
        permanent=permanent,
        retry_after_s=wait,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _smtp_send(cfg: SmtpConfig, timeout: float, em: EmailMessage) -> None:
    if cfg.username and cfg.security == "none" and not _is_loopback(cfg.host):
        raise DeliveryError(
            f"refusing to log in to {cfg.host} over unencrypted SMTP: set "
            "KNEELOAD_NOTIFY_SMTP_SECURITY=starttls (port 587) or ssl (port 465)",
            permanent=True,
        )
    context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    smtp: smtplib.SMTP
    if cfg.security == "ssl":
        smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=timeout)
    with smtp:
        if cfg.security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise DeliveryError(
                    f"{cfg.host}:{cfg.port} does not offer STARTTLS (security=starttls)",
                    permanent=True,
                )
            smtp.starttls(context=context)
            smtp.ehlo()
        if cfg.username:
            smtp.login(cfg.username, cfg.password or "")
        smtp.send_message(em)


async def send(
    channel: Channel,
    msg: Message,
    *,
    http: httpx.AsyncClient,
    smtp: SmtpConfig,
    timeout_s: float,
) -> None:
    """Deliver ``msg`` to ``channel`` once; raise :class:`DeliveryError` on failure."""
    if channel.type == "webhook":
        await _post(http, channel, render_webhook(msg), msg)
    elif channel.type == "slack":
        await _post(http, channel, render_slack(msg), msg)
    else:
        em = render_email(msg, channel, smtp.sender)
        try:
            await asyncio.to_thread(_smtp_send, smtp, timeout_s, em)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipients refused: {exc}", permanent=True) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"SMTP login as {smtp.username!r} refused: {exc.smtp_code}", permanent=True
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"TLS certificate of {smtp.host} not trusted ({exc.verify_message}); "
                "KNEELOAD_NOTIFY_SMTP_CA_FILE names a private CA",
                permanent=True,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
