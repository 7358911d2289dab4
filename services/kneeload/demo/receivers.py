"""Local alert receivers for the demo: a JSON webhook endpoint and an SMTP server.

Run as their own background process (``python -m kneeload.demo.receivers``) so that
notifications stay deliverable after ``kneeload demo`` returns and the services are
left running for exploration. Everything received is appended, one JSON object per
line, to ``<inbox>/webhook.jsonl`` and ``<inbox>/mail.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["main", "read_inbox"]


def _append(path: Path, obj: dict[str, Any]) -> None:
    with open(path, "ab") as f:
        f.write(orjson.dumps(obj) + b"\n")


def read_inbox(path: Path) -> list[dict[str, Any]]:
    """Everything a receiver wrote to ``path`` (a missing file is an empty inbox)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return out


class _SmtpHandler:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain", "html"))
        _append(
            self.path,
            {
                "received_at": dt.datetime.now(dt.UTC).isoformat(),
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(msg.get("Subject", "")),
                "body": body.get_content()[:4000] if body is not None else "",
            },
        )
        return "250 Message accepted for delivery"


def _webhook_app(path: Path) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hook(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            payload: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = raw.decode(errors="replace")[:4000]
        _append(
            path,
            {
                "received_at": dt.datetime.now(dt.UTC).isoformat(),
                "path": request.url.path,
                "payload": payload,
            },
        )
        return JSONResponse({"ok": True})

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/healthz", health, methods=["GET"]),
            Route("/{name:path}", hook, methods=["POST"]),
        ]
    )


async def _serve(host: str, webhook_port: int, smtp_port: int, inbox: Path) -> None:
    import uvicorn
    from aiosmtpd.controller import Controller

    inbox.mkdir(parents=True, exist_ok=True)
    smtp = Controller(_SmtpHandler(inbox / "mail.jsonl"), hostname=host, port=smtp_port)
    smtp.start()
    config = uvicorn.Config(
        _webhook_app(inbox / "webhook.jsonl"),
        host=host,
        port=webhook_port,
        log_level="warning",
        lifespan="off",
    )

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # our loop handles SIGTERM/SIGINT
            yield

    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    try:
        await server.serve()
    finally:
        smtp.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--webhook-port", type=int, required=True)
    p.add_argument("--smtp-port", type=int, required=True)
    p.add_argument("--inbox", type=Path, required=True)
    a = p.parse_args(argv)
    asyncio.run(_serve(a.host, a.webhook_port, a.smtp_port, a.inbox))


if __name__ == "__main__":
    main()
