"""Secrets never reach a log line or the printed settings.

Two layers, both applied to the final text:

* the **known secrets** of the running configuration — every :class:`~kneeload.settings.SecretStr`
  setting, a password embedded in ``database_url``/``mqtt_url``, and from the notification
  routing document each channel's URL (a Slack or webhook URL is its own credential) and
  header values — are replaced by a label (``<admin_token>``) or, for a channel URL, by its
  scheme and host (``https://hooks.slack.com/***``);
* **shapes** of credentials wherever they come from: the password in ``scheme://user:pass@``,
  ``Bearer <token>``, and kneeload device API keys (``kl_`` + 43 characters).

:func:`install` puts this under every logger of the process (a :mod:`logging` record factory,
so third-party loggers such as httpx's "HTTP Request: POST <url>" and Faust's are covered,
exception text included). The ``kneeload`` command installs it before any subcommand runs.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # the settings load on the first log record, not at start-up
    from kneeload.settings import Settings

__all__ = ["install", "known_secrets", "mask_url", "redact"]

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@", re.IGNORECASE)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE)
_API_KEY = re.compile(r"\bkl_[A-Za-z0-9_-]{20,}")
_MIN_SECRET_LEN = 4  # shorter values would garble ordinary text


def mask_url(url: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/xyz`` -> ``https://hooks.slack.com/***``."""
    u = urlsplit(url)
    host = u.hostname or ""
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{host}{port}/***" if u.scheme else "***"


def _routing_secrets(s: Settings) -> Iterable[tuple[str, str]]:
    import orjson

    raw: bytes | None = None
    if s.notify_routes is not None:
        raw = s.notify_routes.get_secret_value().encode()
    elif s.notify_routes_file is not None:
        try:
            raw = s.notify_routes_file.read_bytes()
        except OSError:
            return
    if not raw:
        return
    try:
        doc = orjson.loads(raw)
        channels = doc.get("channels", {}) if isinstance(doc, dict) else {}
        for ch in channels.values() if isinstance(channels, dict) else []:
            if not isinstance(ch, dict):
                continue
            if isinstance(ch.get("url"), str):
                yield ch["url"], mask_url(ch["url"])
            for value in (ch.get("headers") or {}).values():
                if isinstance(value, str):
                    yield value, "***"
    except (orjson.JSONDecodeError, AttributeError):
        return


def known_secrets(s: Settings) -> dict[str, str]:
    """Secret text of ``s`` -> what to show instead (longest first, so a URL beats its parts)."""
    from kneeload.settings import SecretStr

    found: dict[str, str] = {}
    for name in type(s).model_fields:
        value = getattr(s, name)
        if isinstance(value, SecretStr) and name != "notify_routes":
            found[value.get_secret_value()] = f"<{name}>"
    for name in ("database_url", "mqtt_url"):
        password = urlsplit(getattr(s, name)).password
        if password:
            found[password] = "***"
    found.update(_routing_secrets(s))
    kept = {k: v for k, v in found.items() if len(k) >= _MIN_SECRET_LEN}
    return dict(sorted(kept.items(), key=lambda kv: -len(kv[0])))


def redact(text: str, secrets: dict[str, str] | None = None) -> str:
    """``text`` with the known secrets and every credential-shaped string masked."""
    for secret, shown in (secrets or {}).items():
        if secret in text:
            text = text.replace(secret, shown)
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    text = _BEARER.sub(r"\g<head>***", text)
    return _API_KEY.sub("kl_***", text)


class _Secrets:
    """The known secrets of the current settings object (recomputed when it is replaced)."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._for: int | None = None
        self._map: dict[str, str] = {}

    def get(self) -> dict[str, str]:
        try:
            s = self._settings()
        except Exception:  # settings that do not load must not silence logging
            return self._map
        if id(s) != self._for:
            self._map, self._for = known_secrets(s), id(s)
        return self._map


_installed: _Secrets | None = None


def _process_settings() -> Settings:
    from kneeload.settings import get_settings

    return get_settings()


def install(settings: Callable[[], Settings] | None = None) -> None:
    """Redact every log record of this process from now on (idempotent); ``settings`` (default:
    the process settings) is read on the first record, not here."""
    global _installed
    if _installed is not None:
        return
    secrets = _installed = _Secrets(settings or _process_settings)
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        known = secrets.get()
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let the handler report it as usual
            return record
        # args stay a tuple: Faust's formatter wraps anything else (None -> (None,))
        record.msg, record.args = redact(message, known), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)), known)
            record.exc_text = record.exc_text.rstrip("\n")
        if record.stack_info:
            record.stack_info = redact(record.stack_info, known)
        return record

    logging.setLogRecordFactory(factory)
