"""MQTT secure by default, on real Mosquitto brokers of this test (started by the stack's own
code, each on its own port and directory — the shared broker is left alone):

* the broker `make up` starts has per-unit accounts and an ACL: a unit publishes only to its own
  topics (MQTT 5 answers "not authorized" otherwise), anonymous clients only to the health topic,
  the bridge has its own account;
* `KNEELOAD_MQTT_ANONYMOUS=true` is the explicit opt-out;
* switching a running anonymous deployment to accounts (`kneeload registry mqtt-auth enable`)
  while a unit publishes and the bridge forwards loses no message.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from kneeload.bridge.mqttauth import MqttAuth, connected_bridges
from kneeload.settings import Settings
from kneeload.stack import mosquitto

from .conftest import RUN, TopicReader, free_port

NOT_AUTHORIZED = ReasonCode(PacketTypes.PUBACK, "Not authorized")


def _broker_settings(settings: Settings, name: str, **kw: Any) -> Settings:
    return settings.model_copy(
        update={
            "var_dir": settings.var_dir / f"mqtt-{name}-{RUN}",
            "mqtt_url": f"mqtt://127.0.0.1:{free_port()}",
            "mqtt_username": None,
            "mqtt_password": None,
            "mqtt_auth_dir": None,
            **kw,
        }
    )


@pytest.fixture
def start_broker(settings: Settings) -> Iterator[Any]:
    started: list[Settings] = []

    def start(name: str, **kw: Any) -> Settings:
        s = _broker_settings(settings, name, **kw)
        mosquitto.start(s)
        started.append(s)
        return s

    yield start
    for s in started:
        mosquitto.stop(s)
        shutil.rmtree(s.var_dir, ignore_errors=True)


def _port(s: Settings) -> int:
    return int(s.mqtt_url.rsplit(":", 1)[1])


class V5:
    """An MQTT 5 client: a refused QoS 1 publish comes back as a PUBACK reason code."""

    def __init__(self, s: Settings, user: str | None = None, password: str | None = None):
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"v5-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        if user:
            self.client.username_pw_set(user, password)
        self.codes: dict[int, ReasonCode] = {}
        self.received: list[tuple[str, bytes]] = []
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self.codes.__setitem__(mid, rc)
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        self.connack: ReasonCode | None = None
        self.client.on_connect = lambda _c, _u, _f, rc, _p: setattr(self, "connack", rc)
        self.client.connect("127.0.0.1", _port(s), keepalive=10)
        self.client.loop_start()
        deadline = time.monotonic() + 10
        while self.connack is None and time.monotonic() < deadline:
            time.sleep(0.02)

    def publish(self, topic: str, payload: bytes = b"{}") -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        deadline = time.monotonic() + 10
        while info.mid not in self.codes and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.codes[info.mid]

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(cond: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def secure(start_broker: Any) -> dict[str, Any]:
    """The default broker with two registered units (accounts as the registry creates them)."""
    s = start_broker("secure")
    auth = MqttAuth(s)
    keys = {f"lever-{n}-{RUN}": f"kl_test_{uuid.uuid4().hex}" for n in ("a", "b")}
    for unit, key in keys.items():
        auth.set_unit(unit, key)
    assert auth.reload()
    unit = next(iter(keys))
    _wait(lambda: V5(s, unit, keys[unit]).connack == 0, 10, "the broker to load the accounts")
    return {"settings": s, "auth": auth, "keys": keys}


def test_make_up_broker_has_accounts_acl_and_a_bridge_account(secure: dict[str, Any]) -> None:
    s, auth = secure["settings"], secure["auth"]
    assert auth.enabled and not (auth.dir / "00-anonymous.conf").exists()
    account = auth.account()
    assert account is not None
    assert stat.S_IMODE(auth.account_file.stat().st_mode) == 0o600
    bridge = V5(s, *account)
    anonymous = V5(s)
    try:
        assert bridge.connack == 0 and anonymous.connack == 0
        bridge.subscribe(f"{s.mqtt_topic_root}/+/telemetry")
        unit = next(iter(secure["keys"]))
        # anonymous: the health round trip only
        assert mosquitto.round_trip(s)
        assert anonymous.publish(f"{s.mqtt_topic_root}/{unit}/telemetry") == NOT_AUTHORIZED
        # a wrong key does not log in
        assert V5(s, unit, "kl_wrong").connack != 0
        time.sleep(0.5)
        assert bridge.received == []
    finally:
        bridge.close()
        anonymous.close()


def test_unit_cannot_publish_to_another_units_topic(secure: dict[str, Any]) -> None:
    """#16 item 3 (MQTT part): the broker refuses it — the bridge never sees the message."""
    s = secure["settings"]
    (a, key_a), (b, _) = secure["keys"].items()
    bridge = V5(s, *secure["auth"].account())
    unit = V5(s, a, key_a)
    try:
        bridge.subscribe(f"{s.mqtt_topic_root}/+/+")
        root = s.mqtt_topic_root
        assert unit.publish(f"{root}/{a}/telemetry", b"own") == 0
        for kind in ("telemetry", "heartbeat", "setpoint"):
            assert unit.publish(f"{root}/{b}/{kind}", b"spoof") == NOT_AUTHORIZED, kind
        assert unit.publish(f"{root}/{a}/anything-else", b"x") == NOT_AUTHORIZED
        assert unit.publish("kneeload/health/x", b"x") == NOT_AUTHORIZED
        _wait(lambda: bridge.received, 10, "the unit's own message")
        time.sleep(0.5)
        assert bridge.received == [(f"{root}/{a}/telemetry", b"own")]
    finally:
        bridge.close()
        unit.close()


def test_anonymous_is_an_explicit_opt_out(start_broker: Any) -> None:
    s = start_broker("open", mqtt_anonymous=True)
    auth = MqttAuth(s)
    assert not auth.enabled and auth.account() is None
    assert "allow_anonymous true" in (auth.dir / "00-anonymous.conf").read_text()
    listener, anyone = V5(s), V5(s)
    try:
        listener.subscribe("lever/+/telemetry")
        assert anyone.publish("lever/whoever/telemetry", b"x") == 0
        _wait(lambda: listener.received, 10, "the anonymous message")
    finally:
        listener.close()
        anyone.close()


# ------------------------------------------------------------------ the lossless switch


def _env(s: Settings, ingest_settings: Settings, client_id: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("KNEELOAD_")}
    return keep | {
        "KNEELOAD_VAR_DIR": str(s.var_dir),
        "KNEELOAD_MQTT_URL": s.mqtt_url,
        "KNEELOAD_KAFKA_BOOTSTRAP": ingest_settings.kafka_bootstrap,
        "KNEELOAD_TOPIC_PREFIX": ingest_settings.topic_prefix,
        "KNEELOAD_MQTT_BRIDGE_CLIENT_ID": client_id,
        "KNEELOAD_INGEST_LINGER_MS": "2",
    }


def _kneeload(env: dict[str, str], *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "kneeload", *args],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, f"kneeload {' '.join(args)}: {out.stdout}\n{out.stderr}"
    return dict(orjson.loads(out.stdout))


class Publisher(threading.Thread):
    """A LEVER unit sending telemetry with its id and key, QoS 1, ~25 messages/s."""

    def __init__(self, s: Settings, unit: str, key: str) -> None:
        super().__init__(daemon=True)
        self.unit = unit
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{unit}-pub")
        self.client.username_pw_set(unit, key)
        self.client.connect("127.0.0.1", _port(s), keepalive=10)
        self.client.loop_start()
        self.root = s.mqtt_topic_root
        self.sent: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            rid = f"switch-{RUN}-{i:05d}"
            payload = {
                "record_id": rid,
                "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "belt_speed_mps": 2.5,
                "incline_pct": 1.0,
                "bws_pct": 20.0,
            }
            info = self.client.publish(
                f"{self.root}/{self.unit}/telemetry", orjson.dumps(payload), qos=1
            )
            info.wait_for_publish(10)
            self.sent.append(rid)
            i += 1
            time.sleep(0.04)

    def stop(self) -> None:
        self.halt.set()
        self.join(15)
        self.client.disconnect()
        self.client.loop_stop()


def test_switching_a_running_deployment_to_accounts_loses_no_message(
    start_broker: Any, ingest_settings: Settings, topics: TopicReader
) -> None:
    """Anonymous broker (the opt-out), a bridge without credentials forwarding a unit's
    telemetry, then `kneeload registry mqtt-auth enable` mid-stream: every message the unit
    published before, during and after the switch reaches Kafka; afterwards the broker refuses
    anonymous publishes and the bridge is logged in with its account."""
    s = start_broker("switch", mqtt_anonymous=True)
    client_id = f"kneeload-bridge-switch-{RUN}"
    env = _env(s, ingest_settings, client_id)
    unit = f"lever-switch-{RUN}"
    device = _kneeload(env, "registry", "add-device", unit, "--kind", "lever_unit",
                       "--clinic", f"clinic-{RUN}")  # fmt: skip
    bridge = subprocess.Popen(
        [sys.executable, "-m", "kneeload", "mqtt-bridge"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    publisher = Publisher(s, unit, device["api_key"])
    try:
        _wait(
            lambda: connected_bridges(s).get(client_id, {}).get("client_id") == client_id,
            60,
            "the bridge's announcement",
        )
        assert connected_bridges(s)[client_id]["username"] is None  # anonymous so far
        publisher.start()
        _wait(lambda: len(publisher.sent) >= 50, 30, "the unit publishing")
        switched = _kneeload(env, "registry", "mqtt-auth", "enable", "--wait-s", "60")
        assert switched["enabled"] and switched["broker_reloaded"], switched
        assert switched["bridges"] == {client_id: "kneeload-bridge"}, switched
        n_at_switch = len(publisher.sent)
        _wait(lambda: len(publisher.sent) >= n_at_switch + 75, 30, "publishing after the switch")
    finally:
        publisher.stop()
    try:
        sent = set(publisher.sent)
        got = topics.read(
            "treadmill.telemetry",
            until=lambda ms: sent <= {m["value"].get("record_id") for m in ms},
            timeout_s=60,
        )
        arrived = {m["value"].get("record_id") for m in got} & sent
        lost = sorted(sent - arrived)
        assert not lost, f"{len(lost)} of {len(sent)} lost, first {lost[:5]}"
        # the switch happened: accounts and ACL in force, the bridge logged in with its own
        anonymous = V5(s)
        try:
            assert anonymous.publish(f"{s.mqtt_topic_root}/{unit}/telemetry") == NOT_AUTHORIZED
        finally:
            anonymous.close()
        account = MqttAuth(s).account()
        assert account is not None
        assert (
            connected_bridges(s, username=account[0], password=account[1])[client_id]["username"]
            == account[0]
        )
    finally:
        bridge.terminate()
        try:
            bridge.wait(20)
        except subprocess.TimeoutExpired:
            bridge.kill()
