"""``kneeload ingest``: the HTTP gateway (Starlette on uvicorn).

Why Starlette: the gateway is a thin, hot path — read bytes, validate against the
compiled JSON Schemas, publish, answer. Starlette adds routing and nothing else; the
request and event shapes live once, in ``schemas/``, and the OpenAPI document is generated
from them (:mod:`kneeload.ingest.openapi`) instead of from a second model layer (which is
what FastAPI/pydantic would need, with its own validation semantics and cost per field).
uvicorn with uvloop and httptools is the fastest pure-Python-ecosystem ASGI server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kneeload import contracts
from kneeload.contracts import ContractError, FieldError
from kneeload.ingest import activity as act
from kneeload.ingest.openapi import build_openapi
from kneeload.ingest.pipeline import PAIN, SETPOINT, TELEMETRY, Ingestor, Outcome
from kneeload.registry import AuthError, RegistryView, RegistryWriter
from kneeload.registry import ops as regops
from kneeload.registry.kafkaio import make_producer
from kneeload.settings import Settings, get_settings, reveal

__all__ = ["HTTPError", "create_app"]

log = logging.getLogger("kneeload.ingest")

MAX_JSON_SAMPLES = 10_000
MAX_RECORDS = 1000
_FIT_TYPES = {"application/vnd.ant.fit", "application/fit", "application/octet-stream"}
_TCX_TYPES = {
    "application/vnd.garmin.tcx+xml",
    "application/xml",
    "text/xml",
    "application/tcx+xml",
}
_GPX_TYPES = {"application/gpx+xml", "application/gpx"}
_WATCH_KINDS = ("watch", "app")


class HTTPError(Exception):
    """A rejection: HTTP status, machine-readable code, message, field errors."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[FieldError] | None = None,
        dead_letter: bool = True,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors = errors or []
        self.dead_letter = dead_letter


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(obj), status_code=status, media_type="application/json", headers=headers
    )


def _error(
    status: int,
    code: str,
    message: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return _json(
        {
            "error": {
                "code": code,
                "message": message,
                "errors": [e.as_dict() for e in errors or []],
            }
        },
        status,
        headers,
    )


def _json_content_type(request: Request) -> None:
    """415 ``unsupported_media_type`` unless the body is declared JSON (``application/json``
    or ``application/<x>+json``); a request that declares no type is read as JSON."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    ctype = declared.split(";")[0].strip().lower()
    if ctype == "application/json" or (
        ctype.startswith("application/") and ctype.endswith("+json")
    ):
        return
    raise HTTPError(
        415,
        "unsupported_media_type",
        f"expected application/json, got {ctype[:80]!r}",
        dead_letter=False,
    )


def _watch_samples_of(payload: dict[str, Any]) -> list[Any]:
    """The samples of a watch POST's body, which must hold nothing but ``session_id``,
    ``sub_sport`` and a non-empty ``samples`` array of at most :data:`MAX_JSON_SAMPLES`
    (422 ``invalid_request`` otherwise; each sample is validated by the ingestor)."""
    extra = [k for k in payload if k not in ("session_id", "sub_sport", "samples")]
    if extra:
        raise HTTPError(
            422,
            "invalid_request",
            "unexpected properties",
            [
                FieldError(f"/{k}", "additional_properties", f"unexpected property {k[:64]!r}")
                for k in extra[:20]
            ],
        )
    samples = payload.get("samples")
    if not isinstance(samples, list) or not samples:
        raise HTTPError(
            422,
            "invalid_request",
            "'samples' must be a non-empty array",
            [
                FieldError(
                    "/samples",
                    "required" if samples is None else "type",
                    "a non-empty array of samples",
                )
            ],
        )
    if len(samples) > MAX_JSON_SAMPLES:
        raise HTTPError(
            422,
            "invalid_request",
            f"at most {MAX_JSON_SAMPLES} samples per request",
            [FieldError("/samples", "max_items", f"{len(samples)} samples")],
        )
    return samples


class Gateway:
    """State of one gateway process: registry view, producer, ingestor."""

    def __init__(self, settings: Settings, *, ensure_topics: bool = True) -> None:
        self.settings = settings
        self.ensure_topics = ensure_topics
        self.view = RegistryView(settings, client_id="kneeload-ingest-registry")
        self.openapi = orjson.dumps(build_openapi())
        # Kafka clients need the running event loop: created in lifespan()
        self.producer: AIOKafkaProducer
        self.ingestor: Ingestor
        self.writer: RegistryWriter

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        if self.ensure_topics:
            from kneeload.topics import reconcile

            await asyncio.to_thread(reconcile, self.settings)
        self.producer = make_producer(
            self.settings, produce_timeout_s=self.settings.ingest_produce_timeout_s
        )
        self.ingestor = Ingestor(self.settings, self.view, self.producer)
        self.writer = RegistryWriter(self.settings, producer=self.producer, view=self.view)
        await self.producer.start()
        try:
            await self.view.start()
            yield
        finally:
            await self.view.stop()
            await self.producer.stop()

    # ------------------------------------------------------------------ plumbing
    async def body(self, request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPError(
                413,
                "body_too_large",
                f"body of {declared} bytes exceeds the limit of {limit}",
                dead_letter=False,
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPError(
                    413,
                    "body_too_large",
                    f"body exceeds the limit of {limit} bytes",
                    dead_letter=False,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def authenticate(self, request: Request, kinds: tuple[str, ...]) -> dict[str, Any]:
        """The device record, or a 401/403 that is not dead-lettered: a request nobody
        authenticated must not be able to write into Kafka (and through the sink into the
        database), so its body is dropped with the answer."""
        try:
            return self.view.authenticate(
                request.headers.get("x-device-id"), request.headers.get("x-api-key"), kinds=kinds
            )
        except AuthError as exc:
            raise HTTPError(exc.status, exc.code, exc.message, dead_letter=False) from exc

    def authenticate_athlete_device(self, request: Request) -> dict[str, Any]:
        """A watch or app key that belongs to an athlete (samples, uploads, pain)."""
        device = self.authenticate(request, _WATCH_KINDS)
        if not device.get("athlete_id"):
            raise HTTPError(403, "device_without_athlete", "the device is not linked to an athlete")
        return device

    @staticmethod
    def parse_object(body: bytes, what: str) -> dict[str, Any]:
        """The body as a JSON object, else a 422 saying what was expected."""
        payload = Gateway.parse(body)
        if not isinstance(payload, dict):
            raise HTTPError(
                422, "invalid_request", what, [FieldError("", "type", "expected an object")]
            )
        return payload

    @staticmethod
    def parse(body: bytes) -> Any:
        try:
            return contracts.loads(body)
        except contracts.NonFiniteNumberError as exc:
            raise HTTPError(
                400,
                "non_finite_number",
                str(exc),
                [FieldError(exc.path, "non_finite_number", str(exc))],
            ) from exc
        except contracts.JSONError as exc:
            raise HTTPError(400, "invalid_json", str(exc)[:300]) from exc

    def unavailable(self) -> Response:
        """503 ``kafka_unavailable`` with ``Retry-After``: the producer's bounded wait ran out."""
        return _error(
            503,
            "kafka_unavailable",
            "Kafka did not acknowledge in time; retry after Retry-After seconds (records "
            "carry idempotency keys: a retry is never counted twice)",
            headers={"Retry-After": str(self.settings.ingest_retry_after_s)},
        )

    def handler(
        self,
        source: str | Callable[[Request], str],
        limit_attr: str,
        fn: Callable[[Request, bytes], Awaitable[Response]],
        *,
        json_body: bool = True,
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap an endpoint: content type (JSON endpoints), body limit, rejections as 4xx +
        dead letter, Kafka trouble as 503 within ``ingest_produce_timeout_s``."""

        async def endpoint(request: Request) -> Response:
            body = b""
            src = source(request) if callable(source) else source
            try:
                if json_body:
                    _json_content_type(request)
                body = await self.body(request, getattr(self.settings, limit_attr))
                return await fn(request, body)
            except HTTPError as exc:
                if exc.dead_letter:
                    with contextlib.suppress(KafkaError, asyncio.TimeoutError):
                        await self.ingestor.dead_letter(
                            src,
                            exc.code,
                            exc.message,
                            body or None,
                            key=(request.headers.get("x-device-id") or None),
                            errors=exc.errors,
                        )
                return _error(exc.status, exc.code, exc.message, exc.errors)
            except ContractError as exc:
                with contextlib.suppress(KafkaError, asyncio.TimeoutError):
                    await self.ingestor.dead_letter(
                        src,
                        "schema_invalid",
                        str(exc),
                        body or None,
                        key=request.headers.get("x-device-id") or None,
                        errors=exc.errors,
                    )
                return _error(422, "invalid_request", str(exc), exc.errors)
            except (TimeoutError, KafkaError) as exc:
                log.warning("Kafka did not acknowledge: %r", exc)
                return self.unavailable()

        return endpoint

    @staticmethod
    def reply(out: Outcome, *, details: bool = True) -> Response:
        return _json(out.as_dict(details=details), out.status)

    # ------------------------------------------------------------------ watch
    async def watch_samples(self, request: Request, body: bytes, source: str = "http") -> Response:
        """POST of a watch's samples: the device authenticated, the body checked
        (:func:`_watch_payload`), the samples published (:meth:`Ingestor.watch_samples`)."""
        device = self.authenticate_athlete_device(request)
        payload = self.parse_object(body, "the body must be a JSON object with 'samples'")
        out = await self.ingestor.watch_samples(
            device,
            _watch_samples_of(payload),
            source=source,
            session_id=payload.get("session_id"),
            sub_sport=payload.get("sub_sport"),
            dlq_source="http",
        )
        return self.reply(out)

    async def webhook_samples(self, request: Request, body: bytes) -> Response:
        return await self.watch_samples(request, body, source="webhook")

    # ------------------------------------------------------------------ activities
    async def activity(self, request: Request, body: bytes) -> Response:
        device = self.authenticate_athlete_device(request)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        fmt = act.sniff_format(body)
        if fmt is None:
            if ctype in _FIT_TYPES:
                raise HTTPError(
                    422, "corrupt_fit", "not a FIT file: no '.FIT' signature in the header"
                )
            if ctype in _TCX_TYPES:
                raise HTTPError(422, "corrupt_tcx", "not a TCX document")
            if ctype in _GPX_TYPES:
                raise HTTPError(422, "corrupt_gpx", "not a GPX document")
            raise HTTPError(
                415, "unsupported_media_type", "upload a FIT file, a TCX or a GPX document"
            )
        q = request.query_params
        start_time = None
        if q.get("start_time"):
            try:
                start_time = datetime.fromisoformat(q["start_time"].upper())
                if start_time.tzinfo is None:
                    raise ValueError("no timezone")
            except ValueError as exc:
                raise HTTPError(
                    422,
                    "invalid_request",
                    "start_time must be RFC 3339 with a timezone",
                    [FieldError("/start_time", "invalid_time", str(exc))],
                ) from exc
        cadence_unit = q.get("cadence_unit", "auto")
        if cadence_unit not in ("auto", "spm", "strides"):
            raise HTTPError(422, "invalid_request", "cadence_unit is auto, spm or strides")
        try:
            activity = await asyncio.to_thread(act.decode, body, fmt, cadence_unit=cadence_unit)
            norm = act.normalise(activity, device_id=device["device_id"], start_time=start_time)
        except act.ActivityError as exc:
            raise HTTPError(422, exc.code, exc.message) from exc
        return await self.publish_activity(device, norm, fmt, body, session_id=q.get("session_id"))

    async def publish_activity(
        self,
        device: dict[str, Any],
        norm: act.NormalisedActivity,
        fmt: str,
        body: bytes,
        *,
        session_id: str | None = None,
    ) -> Response:
        res = await self.ingestor.activity(device, norm, fmt, body, session_id=session_id)
        if res.outcome is None:
            return _json(
                {
                    "error": {
                        "code": res.error,
                        "message": "the file yields no running samples with cadence",
                        "errors": [],
                    },
                    "summary": res.summary,
                },
                422,
            )
        res.outcome.extra["summary"] = res.summary
        return self.reply(res.outcome, details=False)

    # ------------------------------------------------------------------ unit & pain
    def _records(self, payload: Any) -> list[Any]:
        if isinstance(payload, list):
            if not payload or len(payload) > MAX_RECORDS:
                raise HTTPError(
                    422,
                    "invalid_request",
                    f"send 1 to {MAX_RECORDS} records",
                    [
                        FieldError(
                            "", "max_items" if payload else "min_items", f"{len(payload)} records"
                        )
                    ],
                )
            return payload
        return [payload]

    async def telemetry(self, request: Request, body: bytes) -> Response:
        device = self.authenticate(request, ("lever_unit",))
        out = await self.ingestor.records(
            TELEMETRY, self._records(self.parse(body)), device=device, source="http"
        )
        return self.reply(out)

    async def setpoints(self, request: Request, body: bytes) -> Response:
        device = self.authenticate(request, ("lever_unit",))
        out = await self.ingestor.records(
            SETPOINT, self._records(self.parse(body)), device=device, source="http"
        )
        return self.reply(out)

    async def pain(self, request: Request, body: bytes) -> Response:
        device = self.authenticate_athlete_device(request)
        payload = self.parse_object(body, "a pain report is a JSON object")
        out = await self.ingestor.records(PAIN, [payload], device=device, source="http")
        return self.reply(out)

    # ------------------------------------------------------------------ admin
    def admin(self, request: Request) -> None:
        token = reveal(self.settings.admin_token)
        if not token:
            raise HTTPError(
                403,
                "admin_disabled",
                "admin paths are disabled: set KNEELOAD_ADMIN_TOKEN",
                dead_letter=False,
            )
        given = request.headers.get("authorization", "")
        if not given.startswith("Bearer ") or not hmac.compare_digest(
            given[7:].encode(), token.encode()
        ):
            raise HTTPError(
                401, "invalid_admin_token", "missing or wrong admin token", dead_letter=False
            )

    def admin_handler(
        self, fn: Callable[[Request, Any], Awaitable[Any]], status: int = 200
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                self.admin(request)
                if request.method in ("POST", "PUT"):
                    _json_content_type(request)
                body = await self.body(request, self.settings.ingest_max_body_bytes)
                payload = self.parse(body) if body else {}
                if not isinstance(payload, dict):
                    raise HTTPError(
                        422, "invalid_request", "expected a JSON object", dead_letter=False
                    )
                return _json(await fn(request, payload), status)
            except HTTPError as exc:
                return _error(exc.status, exc.code, exc.message, exc.errors)
            except regops.RegistryOpError as exc:
                return _error(exc.status, exc.code, exc.message)
            except ContractError as exc:
                return _error(422, "invalid_record", str(exc), exc.errors)
            except TypeError as exc:  # unexpected/missing keyword from the body
                return _error(422, "invalid_request", str(exc)[:300])
            except (TimeoutError, KafkaError):
                return self.unavailable()

        return endpoint

    @staticmethod
    def _fields(
        payload: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        extra = [k for k in payload if k not in allowed]
        missing = [k for k in required if k not in payload]
        if extra or missing:
            raise HTTPError(
                422,
                "invalid_request",
                "unexpected or missing properties",
                [
                    FieldError(f"/{k}", "additional_properties", f"unexpected property {k[:64]!r}")
                    for k in extra[:20]
                ]
                + [FieldError(f"/{k}", "required", f"{k!r} is required") for k in missing],
                dead_letter=False,
            )
        return payload

    async def put_athlete(self, request: Request, payload: dict[str, Any]) -> Any:
        fields = self._fields(
            payload,
            ("team_id", "body_mass_kg", "time_zone", "display_name", "active", "calibration"),
            ("body_mass_kg",),
        )
        return await regops.put_athlete(
            self.writer, athlete_id=request.path_params["athlete_id"], **fields
        )

    async def add_device(self, _request: Request, payload: dict[str, Any]) -> Any:
        fields = self._fields(
            payload,
            ("device_id", "kind", "athlete_id", "clinic_id", "max_bws_pct", "timeout_s"),
            ("device_id", "kind"),
        )
        device_id = fields.pop("device_id")
        if not isinstance(device_id, str):
            raise HTTPError(422, "invalid_request", "device_id must be a string", dead_letter=False)
        rec, key = await regops.register_device(self.writer, self.view, device_id, **fields)
        return {"device": rec, "api_key": key}

    async def rotate(self, request: Request, _payload: dict[str, Any]) -> Any:
        rec, key = await regops.rotate_key(self.writer, self.view, request.path_params["device_id"])
        return {"device": rec, "api_key": key}

    async def revoke(self, request: Request, _payload: dict[str, Any]) -> Any:
        return {
            "device": await regops.revoke_device(
                self.writer, self.view, request.path_params["device_id"]
            )
        }

    async def assign(self, request: Request, payload: dict[str, Any]) -> Any:
        fields = self._fields(payload, ("athlete_id",), ("athlete_id",))
        return await regops.assign_unit(
            self.writer, self.view, request.path_params["unit_id"], fields["athlete_id"]
        )

    async def registry(self, _request: Request, _payload: dict[str, Any]) -> Any:
        v = self.view
        return {
            "athletes": dict(v.athletes),
            "devices": dict(v.devices),
            "assignments": dict(v.assignments),
        }

    # ------------------------------------------------------------------ ops
    async def healthz(self, _request: Request) -> Response:
        v = self.view
        body = {
            "status": "ok" if v.ready else "starting",
            "athletes": len(v.athletes),
            "devices": len(v.devices),
            "assignments": len(v.assignments),
        }
        return _json(body, 200 if v.ready else 503)

    async def readyz(self, _request: Request) -> Response:
        """Readiness: 200 when the broker answers and the registry is loaded, else 503.

        ``/healthz`` stays liveness (the process serves). The database is reported for
        operators but does not decide: the gateway writes only to Kafka, which keeps what it
        accepts while PostgreSQL is away."""
        broker, database = await asyncio.gather(self._broker_ok(), self._database_ok())
        ready = broker and self.view.ready
        body = {
            "status": "ready" if ready else "not_ready",
            "broker": broker,
            "registry": self.view.ready,
            "database": database,
        }
        return _json(body, 200 if ready else 503)

    async def _broker_ok(self) -> bool:
        try:
            await asyncio.wait_for(
                self.producer.client.fetch_all_metadata(), self.settings.ingest_produce_timeout_s
            )
        except (TimeoutError, KafkaError, OSError):
            return False
        return True

    async def _database_ok(self) -> bool:
        import psycopg

        try:
            async with await psycopg.AsyncConnection.connect(
                self.settings.database_url, connect_timeout=2
            ) as conn:
                await conn.execute("SELECT 1")
        except (psycopg.Error, OSError):
            return False
        return True

    async def openapi_doc(self, _request: Request) -> Response:
        return Response(self.openapi, media_type="application/json")

    def routes(self) -> list[Route]:
        h, a = self.handler, self.admin_handler

        def activity_source(request: Request) -> str:
            return "tcx" if "xml" in request.headers.get("content-type", "") else "fit"

        return [
            Route(
                "/v1/watch/samples",
                h("http", "ingest_max_body_bytes", self.watch_samples),
                methods=["POST"],
            ),
            Route(
                "/v1/webhooks/samples",
                h("http", "ingest_max_body_bytes", self.webhook_samples),
                methods=["POST"],
            ),
            Route(
                "/v1/activities",
                h(activity_source, "ingest_max_upload_bytes", self.activity, json_body=False),
                methods=["POST"],
            ),
            Route(
                "/v1/treadmill/telemetry",
                h("http", "ingest_max_body_bytes", self.telemetry),
                methods=["POST"],
            ),
            Route(
                "/v1/treadmill/setpoints",
                h("http", "ingest_max_body_bytes", self.setpoints),
                methods=["POST"],
            ),
            Route("/v1/pain", h("http", "ingest_max_body_bytes", self.pain), methods=["POST"]),
            Route("/admin/athletes/{athlete_id}", a(self.put_athlete), methods=["PUT"]),
            Route("/admin/devices", a(self.add_device, 201), methods=["POST"]),
            Route("/admin/devices/{device_id}/rotate-key", a(self.rotate), methods=["POST"]),
            Route("/admin/devices/{device_id}/revoke", a(self.revoke), methods=["POST"]),
            Route("/admin/units/{unit_id}/assignment", a(self.assign), methods=["PUT"]),
            Route("/admin/registry", a(self.registry), methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/openapi.json", self.openapi_doc, methods=["GET"]),
        ]


async def _internal_error(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return _error(500, "internal_error", "internal error (logged)")


def create_app(settings: Settings | None = None, *, ensure_topics: bool = True) -> Starlette:
    """The ASGI app (uvicorn ``--factory kneeload.ingest.app:create_app``)."""
    gw = Gateway(settings or get_settings(), ensure_topics=ensure_topics)
    app = Starlette(
        routes=gw.routes(), lifespan=gw.lifespan, exception_handlers={Exception: _internal_error}
    )
    app.state.gateway = gw
    return app
