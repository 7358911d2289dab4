"""Rendering and sending one message (a single alert or a digest) to one channel.

Every message carries an idempotency key: ``X-Kneeload-Alert-Id`` on webhooks (the
alert id, or ``digest-<hash>`` for a digest, whose member ids are listed in
``X-Kneeload-Alert-Ids``) and a deterministic ``Message-ID`` on email, so a receiver
can drop the one resend a crash can cause.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import httpx
import orjson

from kneeload.notify.routing import Channel

__all__ = [
    "DeliveryError",
    "Message",
    "digest_id",
    "render_email",
    "render_slack",
    "render_webhook",
    "send",
]

IDEMPOTENCY_HEADER = "X-Kneeload-Alert-Id"
MEMBERS_HEADER = "X-Kneeload-Alert-Ids"
_SEVERITY_ICON = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}


class DeliveryError(Exception):
    """A delivery attempt failed; ``permanent`` means retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


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


async def _post(
    client: httpx.AsyncClient, channel: Channel, body: dict[str, Any], msg: Message
) -> None:
    assert channel.url is not None
    headers = {**channel.headers, **headers_for(msg)}
    try:
        resp = await client.post(channel.url, content=orjson.dumps(body), headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    if 200 <= resp.status_code < 300:
        return
    permanent = 400 <= resp.status_code < 500 and resp.status_code not in (408, 409, 425, 429)
    raise DeliveryError(f"HTTP {resp.status_code}: {resp.text[:300]}", permanent=permanent)


def _smtp_send(host: str, port: int, timeout: float, em: EmailMessage) -> None:
    with smtplib.SMTP(host, port, timeout=timeout) as smtp:
        smtp.send_message(em)


async def send(
    channel: Channel,
    msg: Message,
    *,
    http: httpx.AsyncClient,
    smtp_host: str,
    smtp_port: int,
    smtp_from: str,
    timeout_s: float,
) -> None:
    """Deliver ``msg`` to ``channel`` once; raise :class:`DeliveryError` on failure."""
    if channel.type == "webhook":
        await _post(http, channel, render_webhook(msg), msg)
    elif channel.type == "slack":
        await _post(http, channel, render_slack(msg), msg)
    else:
        em = render_email(msg, channel, smtp_from)
        try:
            await asyncio.to_thread(_smtp_send, smtp_host, smtp_port, timeout_s, em)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipients refused: {exc}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
