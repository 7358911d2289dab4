"""Broker-side device authentication for Mosquitto: password file + ACL, written by kneeload.

Why the broker and not the bridge: a unit's credentials are presented when it CONNECTs to
Mosquitto; the bridge only sees the messages, never who published them. So Mosquitto
checks username (= device id) and password (= the device's API key), and an ACL lets each
unit publish only below ``<root>/<its own id>/``.

The registry keeps only SHA-256 digests of keys, from which no Mosquitto hash can be
derived. The Mosquitto entry (PBKDF2-SHA512, Mosquitto's ``$7$`` format, the same as
``mosquitto_passwd`` writes) is therefore added when the key is created or rotated
(``kneeload registry add-device`` / ``rotate-key``, or the admin HTTP path), and removed
when the device is revoked; ``kneeload registry mqtt-auth sync`` removes every unit the
registry no longer allows. After each change Mosquitto gets SIGHUP and reloads.

Files, all in ``settings.mqtt_auth_dir`` (default ``var/mosquitto/conf.d``):

* ``kneeload-mqtt-users.json`` — the source (username, role, hash), updated under a lock;
* ``kneeload.passwd`` and ``kneeload.acl`` — rendered from it;
* ``50-kneeload-auth.conf`` — points Mosquitto at both (written by :meth:`MqttAuth.enable`);
* ``kneeload-bridge.account.json`` (mode 600) — the bridge's own account when kneeload
  generated its password (the local stack): a bridge given no credentials uses it, and
  notices when it appears or changes.

Anonymous clients stay allowed but the ACL confines them to ``kneeload/health/#``: the
stack's health check (an anonymous round trip) keeps working, nothing else does. Bridges
announce themselves, retained, on ``kneeload/bridges/<client id>`` (who they are logged in
as); ``kneeload registry mqtt-auth enable`` reads that to switch a running broker from
anonymous to accounts only once every connected bridge is logged in with its account.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kneeload.settings import Settings, get_settings

__all__ = [
    "BRIDGES_TOPIC",
    "BRIDGE_ROLE",
    "DEFAULT_BRIDGE_USER",
    "HEALTH_TOPIC",
    "UNIT_ROLE",
    "BrokerUnreachableError",
    "MqttAuth",
    "bridge_credentials",
    "connected_bridges",
    "mosquitto_hash",
    "verify_hash",
]

UNIT_ROLE, BRIDGE_ROLE = "unit", "bridge"
HEALTH_TOPIC = "kneeload/health/#"
BRIDGES_TOPIC = "kneeload/bridges"  # + /<client id>: retained status of each connected bridge
DEFAULT_BRIDGE_USER = "kneeload-bridge"
KINDS = ("telemetry", "heartbeat", "setpoint")
_ITERATIONS = 101  # mosquitto_passwd's default for $7$


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = _ITERATIONS
) -> str:
    """``$7$<iterations>$<salt>$<hash>``: PBKDF2-HMAC-SHA512, as ``mosquitto_passwd`` writes."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_hash(password: str, encoded: str) -> bool:
    _, alg, iterations, salt, _digest = encoded.split("$")
    if alg != "7":
        raise ValueError("only $7$ hashes are supported")
    return secrets.compare_digest(
        mosquitto_hash(password, salt=base64.b64decode(salt), iterations=int(iterations)), encoded
    )


class MqttAuth:
    """The Mosquitto password/ACL files kneeload manages, and reloading the broker."""

    def __init__(self, settings: Settings | None = None, directory: Path | None = None) -> None:
        self.settings = settings or get_settings()
        self.dir = (
            directory
            or self.settings.mqtt_auth_dir
            or self.settings.var_dir / "mosquitto" / "conf.d"
        )
        self.users_file = self.dir / "kneeload-mqtt-users.json"
        self.passwd_file = self.dir / "kneeload.passwd"
        self.acl_file = self.dir / "kneeload.acl"
        self.conf_file = self.dir / "50-kneeload-auth.conf"
        self.account_file = self.dir / "kneeload-bridge.account.json"
        self.root = self.settings.mqtt_topic_root

    # ------------------------------------------------------------------ users
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".kneeload-mqtt.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            users: dict[str, dict[str, Any]] = (
                json.loads(self.users_file.read_text()) if self.users_file.exists() else {}
            )
            yield users
            self._write(self.users_file, json.dumps(users, indent=1, sort_keys=True) + "\n")
            self._render(users)

    def users(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.users_file.read_text()) if self.users_file.exists() else {}

    def set_unit(self, unit_id: str, api_key: str) -> None:
        """Allow LEVER unit ``unit_id`` to connect with its API key (publish under its own topics)."""  # noqa: E501
        with self._locked() as users:
            users[unit_id] = {"role": UNIT_ROLE, "hash": mosquitto_hash(api_key)}

    def set_bridge(self, username: str, password: str) -> None:
        """The bridge's service account (reads every unit's topics)."""
        with self._locked() as users:
            users[username] = {"role": BRIDGE_ROLE, "hash": mosquitto_hash(password)}

    def ensure_bridge_account(
        self, username: str | None = None, password: str | None = None
    ) -> tuple[str, str]:
        """The bridge's account, created when missing. A password given is used (and not
        stored in clear: the bridge gets it from its own settings); without one the stored
        account is kept, or a new password is generated and stored in ``account_file``."""
        stored = self.account()
        user = username or (stored[0] if stored else DEFAULT_BRIDGE_USER)
        if password is None and stored is not None and stored[0] == user:
            password = stored[1]
            entry = self.users().get(user)
            if entry and entry["role"] == BRIDGE_ROLE and verify_hash(password, entry["hash"]):
                return user, password  # nothing to change: keep the broker's file as it is
        generated = password is None
        password = password or secrets.token_urlsafe(24)
        self.set_bridge(user, password)
        if generated or (stored is not None and stored[0] == user):
            account = json.dumps({"username": user, "password": password}) + "\n"
            self._write(self.account_file, account, owner_only=True)
        return user, password

    def account(self) -> tuple[str, str] | None:
        """``(username, password)`` of the stored bridge account, if kneeload generated one."""
        try:
            doc = json.loads(self.account_file.read_text())
            return str(doc["username"]), str(doc["password"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remove(self, *usernames: str) -> list[str]:
        with self._locked() as users:
            return [u for u in usernames if users.pop(u, None) is not None]

    def units(self) -> list[str]:
        return sorted(u for u, v in self.users().items() if v["role"] == UNIT_ROLE)

    # ------------------------------------------------------------------ files
    def _write(
        self, path: Path, text: str, private: bool = True, *, owner_only: bool = False
    ) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o600 if private else 0o644)
        if os.geteuid() == 0 and not owner_only:  # the broker re-reads these on SIGHUP
            with contextlib.suppress(KeyError):
                pw = pwd.getpwnam("mosquitto")
                os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.replace(tmp, path)

    def _render(self, users: dict[str, dict[str, Any]]) -> None:
        self._write(
            self.passwd_file, "".join(f"{u}:{v['hash']}\n" for u, v in sorted(users.items()))
        )
        lines = [
            "# Written by kneeload (kneeload.bridge.mqttauth) from the device registry; do not edit.",  # noqa: E501
            "# Anonymous clients (the stack's health check) may only use the health topic.",
            f"topic readwrite {HEALTH_TOPIC}",
            "",
        ]
        for user, v in sorted(users.items()):
            lines.append(f"user {user}")
            if v["role"] == BRIDGE_ROLE:
                lines.append(f"topic readwrite {HEALTH_TOPIC}")
                lines.append(f"topic readwrite {BRIDGES_TOPIC}/#")
                lines.extend(f"topic read {self.root}/+/{k}" for k in KINDS)
            else:
                lines.extend(f"topic write {self.root}/{user}/{k}" for k in KINDS)
            lines.append("")
        self._write(self.acl_file, "\n".join(lines))

    def enable(self) -> bool:
        """Point Mosquitto at the files (idempotent); True when the configuration changed."""
        with self._locked():
            pass  # make sure passwd/acl exist before the broker is told about them
        text = (
            "# Written by kneeload (kneeload.bridge.mqttauth): per-device MQTT authentication.\n"
            "# Anonymous clients stay allowed, confined by the ACL to the health-check topic.\n"
            "allow_anonymous true\n"
            f"password_file {self.passwd_file}\n"
            f"acl_file {self.acl_file}\n"
        )
        if self.conf_file.exists() and self.conf_file.read_text() == text:
            return False
        self._write(self.conf_file, text, private=False)
        return True

    def disable(self) -> bool:
        if self.conf_file.exists():
            self.conf_file.unlink()
            return True
        return False

    @property
    def enabled(self) -> bool:
        return self.conf_file.exists()

    def reload(self) -> bool:
        """SIGHUP the local stack's Mosquitto (pid file under var/) so it re-reads the files."""
        pidfile = self.settings.var_dir / "mosquitto" / "mosquitto.pid"
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError):
            return False
        return True


def bridge_credentials(settings: Settings) -> tuple[str | None, str | None, Path | None]:
    """``(username, password, account file)`` the bridge logs in with: its settings'
    ``mqtt_username``/``mqtt_password`` when set (account file None: nothing to watch), else
    the stored account of the local stack (the file to watch, also while it does not exist)."""
    from kneeload.settings import reveal

    if settings.mqtt_username:
        return settings.mqtt_username, reveal(settings.mqtt_password), None
    auth = MqttAuth(settings)
    account = auth.account()
    if account is None:
        return None, None, auth.account_file
    return account[0], account[1], auth.account_file


class BrokerUnreachableError(OSError):
    """The broker did not accept a connection (down, or refusing this login)."""


def connected_bridges(
    settings: Settings,
    *,
    username: str | None = None,
    password: str | None = None,
    listen_s: float = 1.5,
    max_age_s: float = 3 * 30.0,
) -> dict[str, dict[str, Any]]:
    """The bridges connected now, by client id, from their retained announcements on
    ``kneeload/bridges/+`` (older than ``max_age_s``: a bridge that vanished without its will
    being delivered; ignored). Raises :class:`BrokerUnreachableError`."""
    import datetime as dt
    import threading
    import uuid
    from urllib.parse import urlsplit

    import paho.mqtt.client as mqtt

    u = urlsplit(settings.mqtt_url)
    found: dict[str, dict[str, Any]] = {}
    ready, refused = threading.Event(), threading.Event()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"kneeload-auth-{uuid.uuid4().hex[:8]}"
    )
    if username:
        client.username_pw_set(username, password)

    def on_connect(c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object = None) -> None:
        if rc.is_failure:
            refused.set()
            return
        c.subscribe(f"{BRIDGES_TOPIC}/+", qos=1)

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if not msg.payload:
            return
        try:
            status = json.loads(msg.payload)
            seen = dt.datetime.fromisoformat(status["seen_at"])
        except (ValueError, KeyError, TypeError):
            return
        age = (dt.datetime.now(dt.UTC) - seen).total_seconds()
        if age <= max_age_s:
            found[msg.topic.rsplit("/", 1)[-1]] = status

    client.on_connect = on_connect
    client.on_subscribe = lambda *_a: ready.set()
    client.on_message = on_message
    try:
        client.connect(u.hostname or "127.0.0.1", u.port or 1883, keepalive=10)
    except OSError as exc:
        raise BrokerUnreachableError(f"MQTT broker {u.hostname}:{u.port}: {exc}") from exc
    client.loop_start()
    try:
        deadline = time.monotonic() + 10
        while not ready.is_set() and not refused.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not ready.is_set():
            raise BrokerUnreachableError(f"MQTT broker {u.hostname}:{u.port} refused {username!r}")
        time.sleep(listen_s)  # retained messages arrive right after the subscription
        return dict(found)
    finally:
        client.disconnect()
        client.loop_stop()
