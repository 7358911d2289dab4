"""The MQTT bridge on a real Mosquitto with broker-side device authentication: units publish
with their own credentials to their own topics only; the bridge forwards to Kafka keyed by unit,
acknowledges MQTT after Kafka, and a bridge killed mid-stream loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest

from kneeload.stack import mosquitto

from .conftest import Gateway, TopicReader, _can_connect


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Unit:
    """A LEVER unit publishing with its device id and API key (QoS 1)."""

    def __init__(self, port: int, unit_id: str, key: str) -> None:
        self.unit_id = unit_id
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"{unit_id}-{uuid.uuid4().hex[:4]}"
        )
        self.client.username_pw_set(unit_id, key)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def publish(self, kind: str, payload: dict[str, Any], unit: str | None = None) -> None:
        info = self.client.publish(
            f"lever/{unit or self.unit_id}/{kind}", orjson.dumps(payload), qos=1
        )
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def telemetry(i: int) -> dict[str, Any]:
    return {
        "record_id": f"t-{uuid.uuid4().hex[:10]}-{i}",
        "time": now_iso(),
        "belt_speed_mps": 2.5 + i / 100,
        "incline_pct": 1.0,
        "bws_pct": 30.0,
    }


class Bridge:
    def __init__(self, broker: dict[str, Any], ingest_settings: Any) -> None:
        self.env = {
            **os.environ,
            "KNEELOAD_MQTT_URL": broker["bridge_url"],
            "KNEELOAD_MQTT_BRIDGE_CLIENT_ID": ingest_settings.mqtt_bridge_client_id,
            "KNEELOAD_TOPIC_PREFIX": ingest_settings.topic_prefix,
            "KNEELOAD_KAFKA_BOOTSTRAP": ingest_settings.kafka_bootstrap,
            "KNEELOAD_INGEST_LINGER_MS": "2",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kneeload", "mqtt-bridge"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def units(admin: httpx.Client, fleet: dict[str, Any], broker: dict[str, Any]) -> dict[str, str]:
    """Two more LEVER units (registering a unit also creates its MQTT account)."""
    keys = {}
    for n in ("a", "b"):
        uid = f"lever-{n}-{uuid.uuid4().hex[:6]}"
        r = admin.post(
            "/admin/devices",
            json={"device_id": uid, "kind": "lever_unit", "clinic_id": fleet["clinic"]},
        )
        assert r.status_code == 201, r.text
        keys[uid] = r.json()["api_key"]
    r = admin.put(f"/admin/units/{next(iter(keys))}/assignment", json={"athlete_id": fleet["ath2"]})
    assert r.status_code == 200
    deadline = time.monotonic() + 10  # the broker reloads its password file on SIGHUP
    while not all(_can_connect(broker["port"], u, k) for u, k in keys.items()):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return keys


@pytest.fixture(scope="module")
def bridge(broker: dict[str, Any], ingest_settings: Any, gateway: Gateway) -> Iterator[Bridge]:
    b = Bridge(broker, ingest_settings)
    b.start()
    yield b
    b.stop()
    # forget the persistent session on the broker
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=ingest_settings.mqtt_bridge_client_id,
        clean_session=True,
    )
    parsed = broker["bridge_url"].split("//")[1].split("@")[0].split(":")
    c.username_pw_set(parsed[0], parsed[1])
    c.connect("127.0.0.1", broker["port"])
    c.disconnect()


def ids_in(
    topics: TopicReader, logical: str, wanted: set[str], timeout_s: float = 30
) -> dict[str, dict[str, Any]]:
    def enough(ms: list[dict[str, Any]]) -> bool:
        return wanted <= {m["value"].get("record_id") for m in ms}

    return {
        m["value"]["record_id"]: m
        for m in topics.read(logical, until=enough, timeout_s=timeout_s)
        if m["value"].get("record_id") in wanted
    }


def test_broker_auth_and_health_check(broker: dict[str, Any], units: dict[str, str]) -> None:
    port = broker["port"]
    unit, key = next(iter(units.items()))
    assert _can_connect(port, unit, key)
    assert not _can_connect(port, unit, "kl_wrong")
    assert not _can_connect(port, "nobody", key)
    # the stack's anonymous health check still passes (ACL: kneeload/health/# only)
    assert mosquitto.round_trip(broker["settings"])
    text = broker["auth"].passwd_file.read_text()
    assert key not in text and f"{unit}:$7$101$" in text


def test_bridge_forwards_dead_letters_and_enforces_topics(
    bridge: Bridge,
    broker: dict[str, Any],
    units: dict[str, str],
    fleet: dict[str, Any],
    topics: TopicReader,
) -> None:
    (ua, ka), (ub, _kb) = list(units.items())
    a = Unit(broker["port"], ua, ka)
    try:
        first = telemetry(0)
        deadline = time.monotonic() + 30
        while not ids_in(topics, "treadmill.telemetry", {first["record_id"]}, timeout_s=1):
            assert time.monotonic() < deadline, "bridge never forwarded"
            a.publish("telemetry", first)  # until the bridge is up (duplicates are dropped)
        msgs = [telemetry(i) for i in range(1, 21)]
        for m in msgs:
            a.publish("telemetry", m)
        beat = {"record_id": f"hb-{uuid.uuid4().hex[:8]}", "time": now_iso()}
        a.publish("heartbeat", beat)
        sp = {
            "record_id": f"sp-{uuid.uuid4().hex[:8]}",
            "time": now_iso(),
            "bws_pct": 20,
            "previous_bws_pct": 30,
        }
        a.publish("setpoint", sp)
        bad = {**telemetry(99), "bws_pct": 150}
        a.publish("telemetry", bad)
        spoof = telemetry(100)
        a.publish("telemetry", spoof, unit=ub)  # the ACL drops a unit publishing as another
        got = ids_in(
            topics, "treadmill.telemetry", {m["record_id"] for m in msgs} | {beat["record_id"]}
        )
        for m in msgs:
            ev = got[m["record_id"]]
            assert ev["key"] == ua
            assert (
                ev["value"]["clinic_id"] == fleet["clinic"]
                and ev["value"]["athlete_id"] == fleet["ath2"]
            )
        assert got[beat["record_id"]]["value"]["kind"] == "heartbeat"
        assert (
            ids_in(topics, "treadmill.setpoints", {sp["record_id"]})[sp["record_id"]]["value"][
                "bws_pct"
            ]
            == 20
        )
        dl = topics.read(
            "deadletter",
            until=lambda ms: any(bad["record_id"] in (m["value"]["payload"] or "") for m in ms),
        )
        hit = [m["value"] for m in dl if bad["record_id"] in (m["value"]["payload"] or "")]
        assert hit and hit[0]["source"] == "mqtt" and hit[0]["errors"][0]["path"] == "/bws_pct"
        everything = {m["value"].get("record_id") for m in topics.read("treadmill.telemetry")}
        assert spoof["record_id"] not in everything
    finally:
        a.close()


def test_bridge_restart_loses_nothing(
    bridge: Bridge, broker: dict[str, Any], units: dict[str, str], topics: TopicReader
) -> None:
    ua, ka = next(iter(units.items()))
    a = Unit(broker["port"], ua, ka)
    try:
        before = telemetry(0)
        a.publish("telemetry", before)
        assert ids_in(topics, "treadmill.telemetry", {before["record_id"]})
        bridge.kill()  # crash: no clean disconnect
        while_down = [telemetry(i) for i in range(50)]
        for m in while_down:
            a.publish("telemetry", m)  # the broker queues them for the bridge's persistent session
        bridge.start()
        got = ids_in(
            topics, "treadmill.telemetry", {m["record_id"] for m in while_down}, timeout_s=45
        )
        assert len(got) == 50
        # in unit order, once each
        seq = [
            m["value"]["record_id"]
            for m in topics.read("treadmill.telemetry")
            if m["value"]["record_id"] in got
        ]
        assert seq == [m["record_id"] for m in while_down]
    finally:
        a.close()


def test_revoked_unit_cannot_connect(
    admin: httpx.Client, broker: dict[str, Any], units: dict[str, str]
) -> None:
    ub, kb = list(units.items())[1]
    assert admin.post(f"/admin/devices/{ub}/revoke").status_code == 200
    deadline = time.monotonic() + 10
    while _can_connect(broker["port"], ub, kb):
        assert time.monotonic() < deadline, "revoked unit still accepted by the broker"
        time.sleep(0.2)
