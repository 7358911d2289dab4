"""Secrets stay secret: held as SecretStr, masked by `kneeload settings`, redacted in logs."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import orjson
import pytest

from kneeload import logs
from kneeload.settings import SecretStr, Settings, reveal

SLACK = "https://hooks.slack.com/services/T0KNEE/B0LOAD/xoxb-slack-secret-9f8e7d"
SECRETS = {
    "KNEELOAD_ADMIN_TOKEN": "admin-token-7c1b2a9d",
    "KNEELOAD_NOTIFY_ACK_TOKEN": "ack-token-55e4f3",
    "KNEELOAD_NOTIFY_SMTP_PASSWORD": "smtp-pass-0a9b8c",
    "KNEELOAD_MQTT_URL": "mqtt://kneeload-bridge:mqtt-pass-3d4e5f@127.0.0.1:11883",
    "KNEELOAD_DATABASE_URL": "postgresql://kneeload:db-pass-1a2b3c@127.0.0.1:55432/kneeload",
    "KNEELOAD_NOTIFY_ROUTES": orjson.dumps(
        {
            "channels": {
                "s": {"type": "slack", "url": SLACK},
                "h": {
                    "type": "webhook",
                    "url": "https://hooks.example.org/in",
                    "headers": {"Authorization": "Bearer hook-bearer-88aa77"},
                },
            },
            "routes": [{"team_id": "*", "channels": ["s", "h"]}],
        }
    ).decode(),
}
PLAIN = [
    "admin-token-7c1b2a9d",
    "ack-token-55e4f3",
    "smtp-pass-0a9b8c",
    "mqtt-pass-3d4e5f",
    "db-pass-1a2b3c",
    "xoxb-slack-secret-9f8e7d",
    "hook-bearer-88aa77",
]


def _settings() -> Settings:
    env = {k.removeprefix("KNEELOAD_").lower(): v for k, v in SECRETS.items()}
    return Settings(**env)


def test_secrets_are_secret_types_and_mqtt_credentials_leave_the_url() -> None:
    s = _settings()
    for name in ("admin_token", "notify_ack_token", "notify_smtp_password", "notify_routes"):
        assert isinstance(getattr(s, name), SecretStr), name
    assert s.mqtt_url == "mqtt://127.0.0.1:11883"
    assert s.mqtt_username == "kneeload-bridge"
    assert reveal(s.mqtt_password) == "mqtt-pass-3d4e5f"
    shown = repr(s) + str(s) + s.model_dump_json()
    leaked = [p for p in PLAIN if p in shown and p != "db-pass-1a2b3c"]
    assert not leaked, leaked  # the database URL is not a secret type: see the next test


def test_kneeload_settings_masks_every_secret() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEELOAD_")} | SECRETS
    out = subprocess.run(
        [sys.executable, "-m", "kneeload", "settings"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    leaked = [p for p in PLAIN if p in out.stdout or p in out.stderr]
    assert not leaked, leaked
    table = orjson.loads(out.stdout)
    for key in ("KNEELOAD_ADMIN_TOKEN", "KNEELOAD_NOTIFY_ROUTES", "KNEELOAD_MQTT_PASSWORD"):
        assert table[key]["secret"] and table[key]["value"] == "**********", key
    assert table["KNEELOAD_DATABASE_URL"]["value"].startswith("postgresql://kneeload:***@")
    assert table["KNEELOAD_MQTT_URL"]["value"] == "mqtt://127.0.0.1:11883"
    assert table["KNEELOAD_MQTT_PASSWORD"]["source"] == "KNEELOAD_MQTT_URL"
    assert table["KNEELOAD_ADMIN_TOKEN"]["source"] == "environment"


def test_redact_known_secrets_and_credential_shapes() -> None:
    known = logs.known_secrets(_settings())
    text = (
        f"POST {SLACK} -> 429; db postgresql://kneeload:db-pass-1a2b3c@h/x; "
        "Authorization: Bearer hook-bearer-88aa77; token admin-token-7c1b2a9d; "
        "device key kl_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcdefg; "
        "other amqp://u:p4ssw0rd@broker; Bearer someone-elses-token"
    )
    out = logs.redact(text, known)
    assert not [p for p in [*PLAIN, "p4ssw0rd", "someone-elses-token", "kl_AbCd"] if p in out]
    assert "https://hooks.slack.com/***" in out and "<admin_token>" in out
    assert "amqp://u:***@broker" in out and "kl_***" in out


def test_installed_redaction_covers_every_logger_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = _settings()
    logs._installed = None  # a fresh install bound to these settings
    before = logging.getLogRecordFactory()
    try:
        logs.install(lambda: s)
        with caplog.at_level(logging.INFO):
            logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 200 OK"', SLACK)
            try:
                raise RuntimeError(f"cannot reach {SECRETS['KNEELOAD_MQTT_URL']}")
            except RuntimeError:
                logging.getLogger("kneeload.bridge").exception("bridge failed")
        text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
        assert "hooks.slack.com/***" in text and "RuntimeError" in text
        assert not [p for p in PLAIN if p in text]
    finally:
        logging.setLogRecordFactory(before)
        logs._installed = None


def test_redacted_records_format_under_fausts_formatter() -> None:
    """A redacted record keeps ``args`` a tuple: Faust's log formatter (mode's
    ExtensionFormatter) wraps any non-tuple ``args`` in a tuple, so ``None`` became
    ``(None,)`` and every Faust log line of the worker was a "--- Logging error ---"
    traceback instead of the message (18 MB of them in a ``make chaos`` run)."""
    from mode.utils.logging import ExtensionFormatter

    s = _settings()
    logs._installed = None
    before = logging.getLogRecordFactory()
    try:
        logs.install(lambda: s)
        record = logging.getLogger("faust").makeRecord(
            "faust",
            logging.WARNING,
            __file__,
            1,
            "Timer %s is overlapping (%s)",
            ("commit", SLACK),
            None,
        )
        text = ExtensionFormatter(stream=io.StringIO()).format(record)
        assert text.endswith("Timer commit is overlapping (https://hooks.slack.com/***)"), text
        plain = logging.getLogger("faust").makeRecord(
            "faust", logging.WARNING, __file__, 1, "100% done", (), None
        )
        assert ExtensionFormatter(stream=io.StringIO()).format(plain).endswith("100% done")
    finally:
        logging.setLogRecordFactory(before)
        logs._installed = None
