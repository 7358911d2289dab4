"""Registry operations shared by ``kneeload registry`` and the gateway's admin paths.

Each checks references against the view (a watch or app must belong to a registered
athlete, a LEVER unit to a clinic), publishes through the writer and, for LEVER units,
keeps the broker's MQTT credentials in step (see :mod:`kneeload.bridge.mqttauth`).
"""

from __future__ import annotations

from typing import Any

from kneeload.registry.keys import generate_key, hash_key
from kneeload.registry.records import (
    ASSIGNMENT,
    ATHLETE,
    DEVICE,
    athlete_record,
    device_record,
    unit_assignment,
)
from kneeload.registry.view import RegistryView
from kneeload.registry.writer import RegistryWriter

__all__ = [
    "RegistryOpError",
    "assign_unit",
    "put_athlete",
    "register_device",
    "revoke_device",
    "rotate_key",
]


class RegistryOpError(ValueError):
    """A registry change refused; ``code`` is machine-readable, ``status`` an HTTP status."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _mqtt_set(writer: RegistryWriter, unit_id: str, key: str | None) -> bool:
    from kneeload.bridge.mqttauth import MqttAuth

    auth = MqttAuth(writer.settings)
    if key is None:
        if not auth.remove(unit_id):
            return False
    else:
        auth.set_unit(unit_id, key)
    if auth.enabled:
        auth.reload()
    return True


async def put_athlete(writer: RegistryWriter, **fields: Any) -> dict[str, Any]:
    return await writer.put(ATHLETE, athlete_record(**fields))


async def register_device(
    writer: RegistryWriter,
    view: RegistryView,
    device_id: str,
    *,
    kind: str,
    athlete_id: str | None = None,
    clinic_id: str | None = None,
    max_bws_pct: float | None = None,
    timeout_s: int | None = None,
    mqtt: bool = True,
) -> tuple[dict[str, Any], str]:
    """Create (or replace, with a new key) a device; returns ``(record, api_key)``.
    The key is shown once and stored only hashed."""
    if kind in ("watch", "app"):
        if not athlete_id:
            raise RegistryOpError(
                "athlete_required", f"a {kind} must belong to an athlete (athlete_id)"
            )
        if view.athlete(athlete_id) is None:
            raise RegistryOpError(
                "unknown_athlete", f"athlete {athlete_id!r} is not registered", 404
            )
    if kind == "lever_unit" and not clinic_id:
        raise RegistryOpError("clinic_required", "a LEVER unit must belong to a clinic (clinic_id)")
    key = generate_key()
    record = device_record(
        device_id,
        kind=kind,
        api_key_sha256=hash_key(key),
        clinic_id=clinic_id,
        athlete_id=athlete_id,
        max_bws_pct=max_bws_pct,
        timeout_s=timeout_s,
    )
    await writer.put(DEVICE, record)
    if kind == "lever_unit" and mqtt:
        _mqtt_set(writer, device_id, key)
    return record, key


def _existing(view: RegistryView, device_id: str) -> dict[str, Any]:
    d = view.device(device_id)
    if d is None:
        raise RegistryOpError("unknown_device", f"device {device_id!r} is not registered", 404)
    return d


async def rotate_key(
    writer: RegistryWriter, view: RegistryView, device_id: str, *, mqtt: bool = True
) -> tuple[dict[str, Any], str]:
    """A new key for an existing device (the old one stops working); un-revokes it."""
    d = dict(_existing(view, device_id))
    key = generate_key()
    fields = {k: d[k] for k in ("kind", "clinic_id", "athlete_id", "max_bws_pct", "timeout_s")}
    record = device_record(device_id, api_key_sha256=hash_key(key), **fields)
    await writer.put(DEVICE, record)
    if d["kind"] == "lever_unit" and mqtt:
        _mqtt_set(writer, device_id, key)
    return record, key


async def revoke_device(
    writer: RegistryWriter, view: RegistryView, device_id: str, *, mqtt: bool = True
) -> dict[str, Any]:
    d = dict(_existing(view, device_id))
    fields = {
        k: d[k]
        for k in ("kind", "clinic_id", "athlete_id", "max_bws_pct", "timeout_s", "api_key_sha256")
    }
    record = device_record(device_id, revoked=True, **fields)
    await writer.put(DEVICE, record)
    if d["kind"] == "lever_unit" and mqtt:
        _mqtt_set(writer, device_id, None)
    return record


async def assign_unit(
    writer: RegistryWriter, view: RegistryView, unit_id: str, athlete_id: str | None
) -> dict[str, Any]:
    """Put ``athlete_id`` on LEVER unit ``unit_id`` (None: nobody)."""
    d = _existing(view, unit_id)
    if d["kind"] != "lever_unit":
        raise RegistryOpError(
            "not_a_unit", f"device {unit_id!r} is a {d['kind']}, not a lever_unit"
        )
    if athlete_id is not None and view.athlete(athlete_id) is None:
        raise RegistryOpError("unknown_athlete", f"athlete {athlete_id!r} is not registered", 404)
    clinic = view.clinic_of(unit_id)
    if clinic is None:
        raise RegistryOpError("clinic_required", f"unit {unit_id!r} has no clinic")
    return await writer.put(
        ASSIGNMENT, unit_assignment(unit_id, clinic_id=clinic, athlete_id=athlete_id)
    )
