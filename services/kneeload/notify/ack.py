"""Acknowledging an alert: ``POST /alerts/{alert_id}/ack`` and ``kneeload alerts ack``.

Both write to the storage layer's alerts table — through storage's own function when it
provides one (``kneeload.storage.acknowledge_alert``), else with one UPDATE on the
table storage defines — so the open-alerts view (and the dashboards on it) show who
acknowledged and when. Acknowledging twice keeps the first acknowledgement.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kneeload.settings import Settings, reveal

__all__ = ["AckResult", "AlertNotFoundError", "ack_app", "acknowledge"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_COACH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")


class AlertNotFoundError(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class AckResult:
    alert_id: str
    acknowledged_by: str
    acknowledged_at: datetime
    already: bool  # True when it had been acknowledged before (the first ack is kept)

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": self.acknowledged_at.isoformat(),
            "already_acknowledged": self.already,
        }


def _storage_fn() -> Any:
    import importlib

    try:
        storage = importlib.import_module("kneeload.storage")
    except ImportError:
        return None
    return getattr(storage, "acknowledge_alert", None)


def acknowledge(conninfo: str, alert_id: str, by: str) -> AckResult:
    """Record that coach ``by`` acknowledged ``alert_id``; AlertNotFoundError if unknown."""
    if not _ID.match(alert_id):
        raise AlertNotFoundError(alert_id)
    if not _COACH.match(by):
        raise ValueError("coach identity: 1-128 of [A-Za-z0-9._:@+-]")
    fn = _storage_fn()
    with psycopg.connect(conninfo) as conn:
        if fn is not None:
            fn(conn, alert_id, by)
        else:
            conn.execute(
                """UPDATE kneeload.alerts SET acknowledged_by = %s, acknowledged_at = now()
                   WHERE alert_id = %s AND acknowledged_at IS NULL""",
                (by, alert_id),
            )
        row = conn.execute(
            "SELECT acknowledged_by, acknowledged_at FROM kneeload.alerts WHERE alert_id = %s",
            (alert_id,),
        ).fetchone()
        conn.commit()
    if row is None:
        raise AlertNotFoundError(alert_id)
    return AckResult(alert_id, row[0], row[1], already=row[0] != by)


def ack_app(settings: Settings) -> Starlette:
    """The acknowledgement endpoint (Bearer token = notify_ack_token or admin_token)."""
    token = reveal(settings.notify_ack_token) or reveal(settings.admin_token)

    async def ack(request: Request) -> JSONResponse:
        import asyncio

        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else ""
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        alert_id = request.path_params["alert_id"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        by = body.get("by") if isinstance(body, dict) else None
        if not isinstance(by, str) or not _COACH.match(by):
            return JSONResponse({"error": 'body must be {"by": "<coach id>"}'}, status_code=422)
        try:
            result = await asyncio.to_thread(acknowledge, settings.database_url, alert_id, by)
        except AlertNotFoundError:
            return JSONResponse({"error": "unknown alert", "alert_id": alert_id}, status_code=404)
        return JSONResponse(result.as_dict(), status_code=200)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/alerts/{alert_id}/ack", ack, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )
