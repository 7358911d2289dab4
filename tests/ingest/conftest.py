"""Fixtures of the ingest tests: a real gateway (uvicorn, in a thread) on the real broker,
with the session's isolated topics, and helpers to read what it published."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from kafka import KafkaConsumer, TopicPartition

from kneeload.contracts import wire
from kneeload.settings import Settings
from kneeload.topics import reconcile, topic_name

ADMIN_TOKEN = "test-admin-" + uuid.uuid4().hex
RUN = uuid.uuid4().hex[:8]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def broker(settings: Settings) -> Iterator[dict[str, Any]]:
    """A Mosquitto of this session, started exactly as the stack starts its own (same binary,
    same generated mosquitto.conf and conf.d): secure by default, so kneeload's device
    authentication is on and the bridge's account exists from the start.

    Why not the shared broker: authentication and ACLs are global broker state; switching them
    under colleagues' running tests is unsafe. Everything here is the real broker nonetheless.
    """
    import shutil

    from kneeload.bridge.mqttauth import MqttAuth
    from kneeload.stack import mosquitto

    var = settings.var_dir / f"mqtt-test-{RUN}"
    port = free_port()
    s = settings.model_copy(
        update={
            "var_dir": var,
            "mqtt_url": f"mqtt://127.0.0.1:{port}",
            "mqtt_bridge_client_id": f"kneeload-bridge-test-{RUN}",
        }
    )
    mosquitto.start(s)
    try:
        auth = MqttAuth(s)
        assert auth.enabled, "the stack's Mosquitto must start with accounts and ACL"
        account = auth.account()
        assert account is not None, "the stack's Mosquitto must start with the bridge's account"
        user, password = account
        bridge_url = f"mqtt://{user}:{password}@127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while not _can_connect(port, user, password):
            assert time.monotonic() < deadline, "mosquitto did not load the password file"
            time.sleep(0.2)
        yield {"settings": s, "port": port, "bridge_url": bridge_url, "auth": auth}
    finally:
        mosquitto.stop(s)
        shutil.rmtree(var, ignore_errors=True)


def _can_connect(port: int, user: str | None, password: str | None) -> bool:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
    if user:
        c.username_pw_set(user, password)
    try:
        return c.connect("127.0.0.1", port, keepalive=5) == 0 and _connack(c)
    except OSError:
        return False
    finally:
        c.disconnect()


def _connack(c: Any) -> bool:
    ok: list[bool] = []
    c.on_connect = lambda _c, _u, _f, rc, _p=None: ok.append(not rc.is_failure)
    deadline = time.monotonic() + 5
    while not ok and time.monotonic() < deadline:
        c.loop(timeout=0.1)
    return bool(ok and ok[0])


@pytest.fixture(scope="session")
def ingest_settings(broker: dict[str, Any]) -> Settings:
    """The session's isolated settings (own topics; the session's Mosquitto, whose device
    accounts the admin paths maintain) plus an admin token; topics created once."""
    s = broker["settings"].model_copy(update={"admin_token": ADMIN_TOKEN, "ingest_linger_ms": 2})
    reconcile(s)
    return s


class Gateway:
    def __init__(self, settings: Settings) -> None:
        from kneeload.ingest.app import create_app

        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings, ensure_topics=False)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            loop="uvloop",
            http="httptools",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.started:
                try:
                    if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            if not self.thread.is_alive():
                raise RuntimeError("gateway thread died")
            time.sleep(0.1)
        raise RuntimeError("gateway did not become ready")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="session")
def gateway(ingest_settings: Settings) -> Iterator[Gateway]:
    gw = Gateway(ingest_settings)
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as c:
        yield c


@pytest.fixture(scope="session")
def fleet(admin: httpx.Client) -> dict[str, Any]:
    """Registered athletes, devices (with keys) and a unit assignment, through the admin API."""
    ids = {
        "team": f"team-{RUN}",
        "ath": f"ath-{RUN}",
        "ath2": f"ath2-{RUN}",
        "clinic": f"clinic-{RUN}",
        "watch": f"watch-{RUN}",
        "app": f"app-{RUN}",
        "app2": f"app2-{RUN}",
        "unit": f"lever-{RUN}",
    }
    for a in ("ath", "ath2"):
        r = admin.put(
            f"/admin/athletes/{ids[a]}",
            json={"body_mass_kg": 62.5, "team_id": ids["team"], "time_zone": "Europe/Berlin"},
        )
        assert r.status_code == 200, r.text
    keys = {}
    for dev, kind, extra in (
        ("watch", "watch", {"athlete_id": ids["ath"]}),
        ("app", "app", {"athlete_id": ids["ath"]}),
        ("app2", "app", {"athlete_id": ids["ath2"]}),
        ("unit", "lever_unit", {"clinic_id": ids["clinic"], "max_bws_pct": 80}),
    ):
        r = admin.post("/admin/devices", json={"device_id": ids[dev], "kind": kind, **extra})
        assert r.status_code == 201, r.text
        keys[dev] = r.json()["api_key"]
    r = admin.put(f"/admin/units/{ids['unit']}/assignment", json={"athlete_id": ids["ath"]})
    assert r.status_code == 200, r.text
    return {**ids, "keys": keys}


def device_headers(fleet: dict[str, Any], dev: str) -> dict[str, str]:
    return {"X-Device-Id": fleet[dev], "X-Api-Key": fleet["keys"][dev]}


class TopicReader:
    """Reads a topic of the session from the beginning (kafka-python, no consumer group)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def read(
        self,
        logical: str,
        *,
        until: Callable[[list[dict[str, Any]]], bool] | None = None,
        timeout_s: float = 15.0,
    ) -> list[dict[str, Any]]:
        name = topic_name(logical, self.settings)
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            consumer_timeout_ms=500,
        )
        try:
            tps = [
                TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or [])
            ]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            out: list[dict[str, Any]] = []
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                for msg in consumer:
                    out.append(
                        {
                            "key": msg.key.decode() if msg.key else None,
                            "value": wire.decode(msg.value) if msg.value is not None else None,
                        }
                    )
                if until is None or until(out):
                    break
            return out
        finally:
            consumer.close()


@pytest.fixture(scope="session")
def topics(ingest_settings: Settings) -> TopicReader:
    return TopicReader(ingest_settings)
