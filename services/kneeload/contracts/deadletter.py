"""Building ``dead_letter`` events (the shape every rejecting component publishes)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kneeload.contracts.validation import FieldError

__all__ = ["DEAD_LETTER_MAX_ERRORS", "DEAD_LETTER_PAYLOAD_MAX", "dead_letter"]

#: Bound of ``payload`` in characters (the schema's maxLength).
DEAD_LETTER_PAYLOAD_MAX = 16384
#: Bound of ``errors`` (the schema's maxItems).
DEAD_LETTER_MAX_ERRORS = 100


def _encode_payload(payload: bytes | str | None) -> tuple[str | None, bool, str]:
    if payload is None:
        return None, False, "utf-8"
    if isinstance(payload, str):
        text, encoding = payload, "utf-8"
    else:
        try:
            text, encoding = payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            # base64 of n bytes is 4*ceil(n/3) chars: cut the bytes so the text fits.
            limit = DEAD_LETTER_PAYLOAD_MAX // 4 * 3
            text = base64.b64encode(payload[:limit]).decode("ascii")
            return text, len(payload) > limit, "base64"
    if len(text) > DEAD_LETTER_PAYLOAD_MAX:
        return text[:DEAD_LETTER_PAYLOAD_MAX], True, encoding
    return text, False, encoding


def dead_letter(
    source: str,
    reason_code: str,
    detail: str,
    payload: bytes | str | None,
    *,
    topic: str | None = None,
    key: str | None = None,
    errors: Iterable[FieldError | Mapping[str, str]] = (),
    received_at: datetime | None = None,
) -> dict[str, Any]:
    """A valid ``dead_letter`` event.

    ``payload`` is the rejected input as received: UTF-8 text is kept as text, other
    bytes are base64-encoded; both are truncated to :data:`DEAD_LETTER_PAYLOAD_MAX`
    characters. The id is a digest of source, topic, key and the full payload, so the
    same bad input replayed yields the same id.
    """
    raw = payload.encode("utf-8") if isinstance(payload, str) else (payload or b"")
    digest = hashlib.sha256()
    for part in (source, topic or "", key or ""):
        digest.update(part.encode("utf-8") + b"\x00")
    digest.update(raw)
    text, truncated, encoding = _encode_payload(payload)
    errs = [e.as_dict() if isinstance(e, FieldError) else dict(e) for e in errors]
    when = received_at or datetime.now(UTC)
    return {
        "id": "dlq-" + digest.hexdigest()[:32],
        "source": source,
        "reason_code": reason_code,
        "detail": detail[:2000],
        "received_at": when.isoformat().replace("+00:00", "Z"),
        "topic": topic,
        "key": key[:256] if key is not None else None,
        "errors": [
            {"path": e["path"][:512], "code": e["code"], "message": e["message"][:1000]}
            for e in errs[:DEAD_LETTER_MAX_ERRORS]
        ],
        "payload": text,
        "payload_truncated": truncated,
        "payload_encoding": encoding,
    }
