"""The gateway's OpenAPI 3.1 document, generated from ``schemas/`` (one source of truth).

OpenAPI 3.1 uses JSON Schema 2020-12, so every event schema is embedded as a component
unchanged (only its ``$defs`` are hoisted to components and ``$id``/``$schema`` dropped, so
references resolve inside the document). Request bodies are *derived* from the event
schemas: the event's properties minus those the gateway attaches from the registry.
Only the gateway's own reply shapes are written here. ``openapi.json`` next to this file is
the committed copy (``kneeload ingest --openapi > services/kneeload/ingest/openapi.json``);
a test checks it equals what the gateway serves.
"""

from __future__ import annotations

import copy
from typing import Any

import kneeload
from kneeload.contracts import load_schema, schema_names
from kneeload.ingest.pipeline import ATTACHED, PAIN, SETPOINT, TELEMETRY

__all__ = ["build_openapi"]

_REF = "#/components/schemas/"


def _rewrite(node: Any, name: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/"):
                out[k] = f"{_REF}{name}.{v.removeprefix('#/$defs/')}"
            else:
                out[k] = _rewrite(v, name)
        return out
    if isinstance(node, list):
        return [_rewrite(v, name) for v in node]
    return node


def _components() -> dict[str, Any]:
    comps: dict[str, Any] = {}
    for name in schema_names():
        schema = load_schema(name)
        schema.pop("$schema", None)
        schema.pop("$id", None)
        defs = schema.pop("$defs", {})
        comps[name] = _rewrite(schema, name)
        for d, sub in defs.items():
            comps[f"{name}.{d}"] = _rewrite(sub, name)
    return comps


def _request(
    event: dict[str, Any], schema: str, optional: tuple[str, ...], title: str
) -> dict[str, Any]:
    drop = set(ATTACHED[schema])
    req = copy.deepcopy(event)
    req["title"] = title
    req["description"] = (
        f"A {event['title']} as a device sends it: the event's fields minus "
        f"{', '.join(sorted(drop))}, which kneeload attaches from the registry."
    )
    req["properties"] = {k: v for k, v in req["properties"].items() if k not in drop}
    req["required"] = [r for r in req["required"] if r not in drop and r not in optional]
    return req


def _error_body() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "errors"],
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "Machine-readable reason (snake_case).",
                    },
                    "message": {"type": "string"},
                    "errors": {"type": "array", "items": {"$ref": f"{_REF}dead_letter.error"}},
                },
            }
        },
    }


def _ingest_reply() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["accepted", "duplicates", "rejected", "results"],
        "properties": {
            "accepted": {"type": "integer"},
            "duplicates": {
                "type": "integer",
                "description": "Records already accepted before (same record id): harmless retries.",  # noqa: E501
            },
            "rejected": {"type": "integer"},
            "batch_ids": {"type": "array", "items": {"type": "string"}},
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "record_id", "result"],
                    "properties": {
                        "index": {"type": "integer"},
                        "record_id": {"type": ["string", "null"]},
                        "result": {"enum": ["accepted", "duplicate", "rejected"]},
                        "reason": {"type": "string"},
                        "errors": {"type": "array", "items": {"$ref": f"{_REF}dead_letter.error"}},
                    },
                },
            },
            "summary": {
                "type": "object",
                "description": "Activity uploads: what the file contained.",
            },
        },
    }


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF + ref}}}


def _replies(ok: str = "IngestReply", *extra: int) -> dict[str, Any]:
    err = {"content": _json("Error")}
    r: dict[str, Any] = {
        "200": {
            "description": "Every record accepted (or a harmless duplicate); Kafka acknowledged.",
            "content": _json(ok),
        },
        "207": {
            "description": "Some records accepted, some rejected (see results).",
            "content": _json(ok),
        },
        "400": {"description": "Malformed JSON or NaN/Infinity.", **err},
        "401": {"description": "Missing, unknown or wrong device credentials.", **err},
        "403": {
            "description": "Device revoked, of the wrong kind, or not allowed for this athlete.",
            **err,
        },
        "413": {"description": "Body larger than the configured limit.", **err},
        "415": {"description": "Unsupported content type.", **err},
        "422": {
            "description": "Nothing accepted: every record invalid (see results), or the request is.",  # noqa: E501
            "content": _json(ok),
        },
        "503": {
            "description": "Kafka did not acknowledge within KNEELOAD_INGEST_PRODUCE_TIMEOUT_S; "
            "retry after Retry-After seconds (records carry idempotency keys).",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            **err,
        },
    }
    return r


def _op(
    summary: str,
    body: dict[str, Any] | None,
    tag: str,
    *,
    device: bool = True,
    replies: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": replies or _replies()}
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if device:
        op["security"] = [{"deviceId": [], "apiKey": []}]
    if params:
        op["parameters"] = params
    return op


def _admin(summary: str, body: dict[str, Any] | None, ok: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": ["admin"],
        "security": [{"adminToken": []}],
        "responses": {
            ok: {
                "description": "Done (published to the registry topic, acks=all).",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "401": {"description": "Missing or wrong admin token.", "content": _json("Error")},
            "403": {
                "description": "Admin paths disabled (no KNEELOAD_ADMIN_TOKEN).",
                "content": _json("Error"),
            },
            "404": {"description": "Unknown athlete or device.", "content": _json("Error")},
            "422": {"description": "Invalid record.", "content": _json("Error")},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"},
    }


def build_openapi() -> dict[str, Any]:
    comps = _components()
    batch = comps["watch_sample_batch"]
    comps["WatchSamplesRequest"] = {
        "title": "Watch samples request",
        "description": "Samples from one athlete's watch or app. The athlete, team and batch id are "  # noqa: E501
        "attached by the gateway; each sample is validated on its own.",
        "type": "object",
        "additionalProperties": False,
        "required": ["samples"],
        "properties": {
            "session_id": batch["properties"]["session_id"],
            "sub_sport": batch["properties"]["sub_sport"],
            "samples": {
                **batch["properties"]["samples"],
                "minItems": 1,
                "maxItems": 10000,
                "description": "1 to 10000 samples (published in messages of at most 1000).",
            },
        },
    }
    tele = _request(
        comps[TELEMETRY],
        TELEMETRY,
        ("measured_support_pct", "belt_speed_mps", "incline_pct", "bws_pct"),
        "Treadmill telemetry request",
    )
    tele["then"] = {**tele["then"], "required": ["belt_speed_mps", "incline_pct", "bws_pct"]}
    comps["TreadmillTelemetryRequest"] = tele
    comps["BwsSetpointRequest"] = _request(
        comps[SETPOINT], SETPOINT, ("previous_bws_pct", "set_by"), "BWS setpoint change request"
    )
    pain = _request(comps[PAIN], PAIN, ("athlete_id", "session_id"), "Pain report request")
    pain["properties"]["athlete_id"] = {
        **pain["properties"]["athlete_id"],
        "description": "Optional; must be the device's own athlete.",
    }
    comps["PainReportRequest"] = pain
    comps["IngestReply"] = _ingest_reply()
    comps["Error"] = _error_body()

    def one_or_many(ref: str) -> dict[str, Any]:
        return {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": _REF + ref},
                        {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 1000,
                            "items": {"$ref": _REF + ref},
                        },
                    ]
                }
            }
        }

    athlete = comps["athlete_record"]
    paths: dict[str, Any] = {
        "/v1/watch/samples": {
            "post": _op(
                "Batched running samples from a watch or companion app",
                _json("WatchSamplesRequest"),
                "watch",
            )
        },
        "/v1/webhooks/samples": {
            "post": _op(
                "Batched running samples pushed by a vendor cloud (webhook)",
                _json("WatchSamplesRequest"),
                "watch",
            )
        },
        "/v1/activities": {
            "post": _op(
                "Upload a whole activity file (FIT, TCX or GPX); its running records become samples with their original times",  # noqa: E501
                {
                    "application/vnd.ant.fit": {"schema": {"type": "string", "format": "binary"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "application/vnd.garmin.tcx+xml": {"schema": {"type": "string"}},
                    "application/xml": {"schema": {"type": "string"}},
                    "application/gpx+xml": {"schema": {"type": "string"}},
                },
                "watch",
                params=[
                    {
                        "name": "session_id",
                        "in": "query",
                        "required": False,
                        "schema": batch["properties"]["session_id"],
                    },
                    {
                        "name": "start_time",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "format": "date-time"},
                        "description": "Absolute time of the first record, for FIT files whose clock was never set (relative timestamps).",  # noqa: E501
                    },
                    {
                        "name": "cadence_unit",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": ["auto", "spm", "strides"]},
                        "description": "TCX only: cadence unit of <Cadence> (auto: detected from the data).",  # noqa: E501
                    },
                ],
            )
        },
        "/v1/treadmill/telemetry": {
            "post": _op(
                "LEVER unit telemetry or heartbeat (units posting over HTTP)",
                one_or_many("TreadmillTelemetryRequest"),
                "treadmill",
            )
        },
        "/v1/treadmill/setpoints": {
            "post": _op(
                "LEVER unit BWS setpoint changes (units posting over HTTP)",
                one_or_many("BwsSetpointRequest"),
                "treadmill",
            )
        },
        "/v1/pain": {
            "post": _op(
                "A pain report from the athlete's own app or watch",
                _json("PainReportRequest"),
                "pain",
            )
        },
        "/admin/athletes/{athlete_id}": {
            "put": {
                **_admin(
                    "Create or update an athlete",
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["body_mass_kg"],
                        "properties": {
                            k: athlete["properties"][k]
                            for k in (
                                "team_id",
                                "body_mass_kg",
                                "time_zone",
                                "display_name",
                                "active",
                                "calibration",
                            )
                        },
                    },
                ),
                "parameters": [_path_param("athlete_id")],
            }
        },
        "/admin/devices": {
            "post": _admin(
                "Register a device; the reply holds its API key (shown once)",
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["device_id", "kind"],
                    "properties": {
                        k: comps["device_record"]["properties"][k]
                        for k in (
                            "device_id",
                            "kind",
                            "athlete_id",
                            "clinic_id",
                            "max_bws_pct",
                            "timeout_s",
                        )
                    },
                },
                "201",
            )
        },
        "/admin/devices/{device_id}/rotate-key": {
            "post": {
                **_admin("New API key for a device", None),
                "parameters": [_path_param("device_id")],
            }
        },
        "/admin/devices/{device_id}/revoke": {
            "post": {**_admin("Revoke a device", None), "parameters": [_path_param("device_id")]}
        },
        "/admin/units/{unit_id}/assignment": {
            "put": {
                **_admin(
                    "Which athlete is on a LEVER unit now",
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["athlete_id"],
                        "properties": {
                            "athlete_id": comps["unit_assignment"]["properties"]["athlete_id"]
                        },
                    },
                ),
                "parameters": [_path_param("unit_id")],
            }
        },
        "/admin/registry": {
            "get": _admin("The registry as the gateway sees it (keys only as digests)", None)
        },
        "/healthz": {
            "get": {
                "summary": "Liveness and registry readiness",
                "tags": ["ops"],
                "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the broker answers and the registry is loaded "
                "(the database is reported, not required)",
                "tags": ["ops"],
                "responses": {
                    "200": {"description": "Ready: {status, broker, registry, database}"},
                    "503": {"description": "Not ready (the broker or the registry is not)"},
                },
            }
        },
    }
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "kneeload ingest gateway",
            "version": kneeload.__version__,
            "description": "Devices never talk to Kafka: this gateway validates against the event schemas, "  # noqa: E501
            "attaches registry facts and replies only after Kafka acknowledged (acks=all). "
            "Rejections carry machine-readable reasons and go to the dead-letter topic.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": comps,
            "securitySchemes": {
                "deviceId": {"type": "apiKey", "in": "header", "name": "X-Device-Id"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "adminToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }
    return doc
