"""Mosquitto MQTT broker (Debian's package) on its own port, configured under ``var/mosquitto``.

Secure by default: the broker starts with kneeload's per-device accounts and ACL
(:mod:`kneeload.bridge.mqttauth`) — a LEVER unit logs in with its device id and API key and
may publish only below ``<root>/<its id>/``; the bridge has its own account (generated here,
kept in ``conf.d/kneeload-bridge.account.json``); anonymous clients may only use
``kneeload/health/#`` (the health check below). Units get accounts when the registry creates
or rotates their keys. ``KNEELOAD_MQTT_ANONYMOUS=true`` is the explicit opt-out for local
experiments: anonymous clients may then publish anywhere (switch back on a running broker with
``kneeload registry mqtt-auth enable``, which loses no message).

Health is a real round trip: subscribe to a private topic, publish to it, receive the message.
Further configuration goes in ``var/mosquitto/conf.d/*.conf``, which the main configuration
includes.
"""

from __future__ import annotations

import os
import pwd
import shutil
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from kneeload.settings import Settings, reveal
from kneeload.stack.procs import (
    StackError,
    port_conflict,
    port_open,
    read_pid,
    spawn,
    terminate,
    wait_until,
)

NAME = "mosquitto"
SETTING = "KNEELOAD_MQTT_URL"


def _paths(s: Settings) -> dict[str, Path]:
    root = s.var_dir / "mosquitto"
    return {
        "root": root,
        "conf": root / "mosquitto.conf",
        "confd": root / "conf.d",
        "pid": root / "mosquitto.pid",
        "log": root / "mosquitto.log",
        "data": root / "data",
    }


def _endpoint(s: Settings) -> tuple[str, int, str | None, str | None]:
    u = urlsplit(s.mqtt_url)
    return u.hostname or "127.0.0.1", u.port or 1883, s.mqtt_username, reveal(s.mqtt_password)


def round_trip(s: Settings, timeout_s: float = 3.0) -> bool:
    """Publish a message to a private topic and receive it back (QoS 1)."""
    host, port, user, password = _endpoint(s)
    if not port_open(host, port):
        return False
    import paho.mqtt.client as mqtt

    topic = f"kneeload/health/{uuid.uuid4().hex}"
    got = threading.Event()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"kneeload-health-{uuid.uuid4().hex[:8]}"
    )
    if user:
        client.username_pw_set(user, password)

    def on_connect(c: mqtt.Client, _u: object, _f: object, rc: object, _p: object = None) -> None:
        c.subscribe(topic, qos=1)

    def on_subscribe(c: mqtt.Client, *_a: object) -> None:
        c.publish(topic, b"ping", qos=1)

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.payload == b"ping":
            got.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=10)
    except OSError:
        return False
    client.loop_start()
    try:
        return got.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()


def can_log_in(host: str, port: int, user: str, password: str, timeout_s: float = 5.0) -> bool:
    """Does the broker accept this account (CONNACK without error)? After a password file
    changed, Mosquitto applies it on SIGHUP, a moment later: callers poll this."""
    import paho.mqtt.client as mqtt

    ok: list[bool] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
    c.username_pw_set(user, password)
    c.on_connect = lambda _c, _u, _f, rc, _p=None: ok.append(not rc.is_failure)
    try:
        c.connect(host, port, keepalive=5)
    except OSError:
        return False
    deadline = time.monotonic() + timeout_s
    while not ok and time.monotonic() < deadline:
        c.loop(timeout=0.1)
    c.disconnect()
    return bool(ok and ok[0])


def status(s: Settings) -> dict[str, object]:
    p = _paths(s)
    host, port, _, _ = _endpoint(s)
    return {
        "component": NAME,
        "pid": read_pid(p["pid"]),
        "endpoint": f"{host}:{port}",
        "healthy": round_trip(s),
        "log": str(p["log"]),
    }


def start(s: Settings) -> bool:
    p = _paths(s)
    host, port, _, _ = _endpoint(s)
    if read_pid(p["pid"]) is not None:
        wait_until(lambda: round_trip(s), timeout_s=30, what="mosquitto", log=p["log"])
        return False
    if port_open(host, port):
        raise port_conflict(host, port, component="mosquitto", setting=SETTING)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise StackError("mosquitto: not installed; install Debian's mosquitto (`make debs`).")
    for key in ("root", "confd", "data"):
        p[key].mkdir(parents=True, exist_ok=True)
    user = "mosquitto"
    try:
        pw = pwd.getpwnam(user)
        if os.geteuid() == 0:
            for key in ("root", "confd", "data"):
                os.chown(p[key], pw.pw_uid, pw.pw_gid)
    except KeyError:
        user = pwd.getpwuid(os.geteuid()).pw_name
    from kneeload.bridge.mqttauth import MqttAuth

    auth_dir = MqttAuth(s).dir  # KNEELOAD_MQTT_AUTH_DIR may put the account files elsewhere
    auth_dir.mkdir(parents=True, exist_ok=True)
    p["conf"].write_text(
        "# Written by kneeload.stack.mosquitto; device authentication goes in conf.d/\n"
        f"user {user}\n"
        "per_listener_settings false\n"
        f"persistence true\npersistence_location {p['data']}/\n"
        "log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n"
        f"listener {port} {host}\n"
        f"include_dir {p['confd']}\n"
        + (f"include_dir {auth_dir}\n" if auth_dir != p["confd"] else "")
    )
    _security(s, p["confd"])
    pid = spawn([binary, "-c", str(p["conf"])], log=p["log"], pidfile=p["pid"])
    wait_until(
        lambda: round_trip(s),
        timeout_s=30,
        what="mosquitto",
        alive=lambda: read_pid(p["pid"]) == pid,
        log=p["log"],
    )
    return True


def _security(s: Settings, confd: Path) -> None:
    """Accounts and ACL (the default), or the explicit anonymous opt-out."""
    from kneeload.bridge.mqttauth import MqttAuth

    auth = MqttAuth(s)
    anonymous = confd / "00-anonymous.conf"
    if s.mqtt_anonymous:
        anonymous.write_text(
            "# KNEELOAD_MQTT_ANONYMOUS=true: any client may publish anywhere (local experiments\n"
            "# only). `kneeload registry mqtt-auth enable` switches to per-device accounts.\n"
            "allow_anonymous true\n"
        )
        auth.disable()
        return
    anonymous.unlink(missing_ok=True)
    auth.ensure_bridge_account()
    auth.enable()


def stop(s: Settings) -> bool:
    return terminate(_paths(s)["pid"], what=NAME, timeout_s=20)
