"""Building registry records (validated against their schemas before they are published)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kneeload import contracts

__all__ = [
    "ASSIGNMENT",
    "ATHLETE",
    "DEVICE",
    "DEVICE_KINDS",
    "athlete_record",
    "device_record",
    "now_rfc3339",
    "unit_assignment",
]

ATHLETE, DEVICE, ASSIGNMENT = "athlete_record", "device_record", "unit_assignment"
DEVICE_KINDS = ("watch", "lever_unit", "app")


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _checked(schema: str, record: dict[str, Any]) -> dict[str, Any]:
    contracts.validate(schema, record)
    return record


def athlete_record(
    athlete_id: str,
    *,
    body_mass_kg: float,
    team_id: str | None = None,
    time_zone: str = "UTC",
    display_name: str | None = None,
    active: bool = True,
    calibration: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A valid ``athlete_record``; :class:`kneeload.contracts.ContractError` otherwise
    (the IANA time zone is also checked against the tz database)."""
    record = {
        "athlete_id": athlete_id,
        "team_id": team_id,
        "body_mass_kg": body_mass_kg,
        "time_zone": time_zone,
        "display_name": display_name or athlete_id,
        "active": active,
        "updated_at": now_rfc3339(),
        "calibration": calibration,
    }
    _checked(ATHLETE, record)
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise contracts.ContractError(
            ATHLETE,
            [
                contracts.FieldError(
                    "/time_zone", "unknown_time_zone", f"{time_zone!r} is not in the tz database"
                )
            ],
        ) from exc
    return record


def device_record(
    device_id: str,
    *,
    kind: str,
    api_key_sha256: str,
    clinic_id: str | None = None,
    athlete_id: str | None = None,
    revoked: bool = False,
    max_bws_pct: float | None = None,
    timeout_s: int | None = None,
) -> dict[str, Any]:
    """A valid ``device_record`` (only the key's digest, never the key)."""
    return _checked(
        DEVICE,
        {
            "device_id": device_id,
            "kind": kind,
            "clinic_id": clinic_id,
            "athlete_id": athlete_id,
            "api_key_sha256": api_key_sha256,
            "revoked": revoked,
            "max_bws_pct": max_bws_pct,
            "timeout_s": timeout_s,
            "updated_at": now_rfc3339(),
        },
    )


def unit_assignment(
    unit_id: str, *, clinic_id: str, athlete_id: str | None, since: str | None = None
) -> dict[str, Any]:
    """A valid ``unit_assignment`` (``athlete_id=None``: nobody on the unit)."""
    now = now_rfc3339()
    return _checked(
        ASSIGNMENT,
        {
            "unit_id": unit_id,
            "clinic_id": clinic_id,
            "athlete_id": athlete_id,
            "since": since or now,
            "updated_at": now,
        },
    )
