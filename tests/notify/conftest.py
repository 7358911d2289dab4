"""Real peers for the notifier: an HTTP receiver (starlette on uvicorn, ephemeral port)
and an SMTP server (aiosmtpd), both running in this process on their own threads."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message
from typing import Any

import orjson
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kneeload.contracts import wire
from kneeload.settings import Settings
from kneeload.topics import ALERTS, get_topic


@dataclass
class Receipt:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    status: int


@dataclass
class Receiver:
    """Records every request; ``fail[path] = n`` answers 500 to the next n requests."""

    host: str = "127.0.0.1"
    port: int = 0
    receipts: list[Receipt] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    always_fail: set[str] = field(default_factory=set)
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def at(self, path: str, status: int | None = 200) -> list[Receipt]:
        with self.lock:
            return [
                r
                for r in self.receipts
                if r.path == path and (status is None or r.status == status)
            ]

    def keys(self, path: str) -> list[str]:
        """Idempotency keys of the accepted requests on ``path`` (duplicates kept)."""
        return [r.headers["x-kneeload-alert-id"] for r in self.at(path)]

    def alert_ids(self, path: str) -> list[str]:
        """Alert ids delivered on ``path``, deduplicated by idempotency key as a receiver would."""
        seen: dict[str, Receipt] = {}
        for r in self.at(path):
            seen.setdefault(r.headers["x-kneeload-alert-id"], r)
        out: list[str] = []
        for r in seen.values():
            ids = r.headers.get("x-kneeload-alert-ids")
            out += ids.split(",") if ids else [r.headers["x-kneeload-alert-id"]]
        return out

    def app(self) -> Starlette:
        async def hook(request: Request) -> JSONResponse:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            path = request.url.path
            body = orjson.loads(await request.body())
            with self.lock:
                status = 200
                if path in self.always_fail:
                    status = 500
                elif self.fail.get(path, 0) > 0:
                    self.fail[path] -= 1
                    status = 500
                self.receipts.append(
                    Receipt(path, dict(request.headers), body, time.monotonic(), status)
                )
            return JSONResponse({"ok": status == 200}, status_code=status)

        return Starlette(routes=[Route("/{name:path}", hook, methods=["POST"])])


@contextlib.contextmanager
def serving(app: Starlette, host: str = "127.0.0.1") -> Iterator[int]:
    """Serve ``app`` with uvicorn on a thread, on an ephemeral port of ``host``; yield the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "HTTP receiver did not start"
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    with serving(rec.app(), rec.host) as rec.port:
        yield rec


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(
                message_from_bytes(envelope.original_content, policy=policy.default)
            )
        return "250 OK"

    def by_key(self) -> list[str]:
        with self.lock:
            return [m["X-Kneeload-Alert-Id"] for m in self.messages]

    def alert_ids(self) -> list[str]:
        seen: dict[str, Message] = {}
        with self.lock:
            for m in self.messages:
                seen.setdefault(str(m["X-Kneeload-Alert-Id"]), m)
        out: list[str] = []
        for m in seen.values():
            members = m["X-Kneeload-Alert-Ids"]
            ids = [i.strip() for i in str(members).split(",")] if members else None
            out += ids or [str(m["X-Kneeload-Alert-Id"])]
        return out


@dataclass
class SMTPServer:
    port: int
    inbox: _Inbox


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield SMTPServer(port, inbox)
    controller.stop()


_T0 = datetime(2024, 6, 10, 6, 0, tzinfo=UTC)


def make_alert(team: str, i: int, *, kind: str = "pain_high", severity: str = "warning") -> dict:
    athlete = f"ath-{team}-{i % 4:02d}"
    t = (_T0 + timedelta(minutes=i)).isoformat().replace("+00:00", "Z")
    return {
        "alert_id": f"{kind}:{athlete}:{t}",
        "dedup_key": f"{kind}:{athlete}:2024-06-10",
        "kind": kind,
        "severity": severity,
        "athlete_id": athlete,
        "unit_id": None,
        "team_id": team,
        "clinic_id": None,
        "event_time": t,
        "message": f"Pain 6/10 reported by {athlete} (alert {i}).",
        "values": {"pain_nrs": 6, "threshold": 5},
    }


async def produce(
    settings: Settings,
    alerts: list[dict],
    raw: list[bytes] = (),  # type: ignore[assignment]
    encode: Callable[[Any], bytes] = wire.encode,
) -> None:
    """Publish ``alerts`` as the worker does (internal wire frames unless ``encode`` says
    otherwise: ``orjson.dumps`` is what a worker from before the binary format wrote)."""
    from kneeload.topics import reconcile

    await asyncio.to_thread(reconcile, settings, topics=[get_topic(ALERTS, settings)])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        topic = get_topic(ALERTS, settings).full_name
        for a in alerts:
            await producer.send(topic, encode(a), key=a["athlete_id"].encode())
        for r in raw:
            await producer.send(topic, r, key=b"junk")
        await producer.flush()
    finally:
        await producer.stop()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
