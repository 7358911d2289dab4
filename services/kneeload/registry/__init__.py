"""Device and athlete registry: records on compacted topics, an in-memory view, API keys.

Reuse from any service (the gateway, the MQTT bridge, the worker, the notifier)::

    from kneeload.registry import RegistryView
    async with RegistryView(settings) as view:     # replays registry.*, then follows
        view.athlete("ath-1")["body_mass_kg"]
        view.team_of("ath-1"); view.athlete_on("lever-7"); view.clinic_of("lever-7")

Writes go through :class:`RegistryWriter` (validated, ``acks=all``); the ``kneeload
registry`` command and the gateway's ``/admin`` paths use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kneeload._lazy import lazy_exports

if TYPE_CHECKING:
    from kneeload.registry.keys import generate_key, hash_key, key_matches
    from kneeload.registry.records import (
        ASSIGNMENT,
        ATHLETE,
        DEVICE,
        DEVICE_KINDS,
        athlete_record,
        device_record,
        unit_assignment,
    )
    from kneeload.registry.view import AuthError, RegistryUnavailableError, RegistryView
    from kneeload.registry.writer import RegistryWriter

__getattr__ = lazy_exports(
    __name__,
    {
        "keys": ["generate_key", "hash_key", "key_matches"],
        "records": [
            "ASSIGNMENT",
            "ATHLETE",
            "DEVICE",
            "DEVICE_KINDS",
            "athlete_record",
            "device_record",
            "unit_assignment",
        ],
        "view": ["AuthError", "RegistryUnavailableError", "RegistryView"],
        "writer": ["RegistryWriter"],
    },
    globals(),
)

__all__ = [
    "ASSIGNMENT",
    "ATHLETE",
    "DEVICE",
    "DEVICE_KINDS",
    "AuthError",
    "RegistryUnavailableError",
    "RegistryView",
    "RegistryWriter",
    "athlete_record",
    "device_record",
    "generate_key",
    "hash_key",
    "key_matches",
    "unit_assignment",
]
