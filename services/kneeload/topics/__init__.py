"""Kafka topics of kneeload: the typed catalogue and its reconciliation.

    >>> from kneeload.topics import topic_name, WATCH_SAMPLES
    >>> topic_name(WATCH_SAMPLES)          # with the default prefix
    'kneeload.watch.samples'

The admin half (:func:`reconcile`, :func:`describe`) imports kafka-python lazily, so
importing the catalogue stays cheap for services that only need names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kneeload.topics.catalogue import (
    ALERTS,
    CORRELATIONS,
    DAILY_LOAD,
    DEADLETTER,
    LOAD_MINUTE,
    LOAD_SAMPLES,
    PAIN_REPORTS,
    PAIN_RESPONSES,
    REGISTRY_ASSIGNMENTS,
    REGISTRY_ATHLETES,
    REGISTRY_DEVICES,
    SESSIONS,
    TREADMILL_SETPOINTS,
    TREADMILL_TELEMETRY,
    UNIT_STATUS,
    WATCH_SAMPLES,
    CleanupPolicy,
    Topic,
    catalogue,
    get_topic,
    logical_names,
    topic_name,
)

if TYPE_CHECKING:
    from kneeload.topics.admin import (
        BrokerUnavailableError,
        TopicAdminError,
        TopicReport,
        TopicState,
        admin_client,
        describe,
        reconcile,
    )

_ADMIN = {
    "BrokerUnavailableError",
    "TopicAdminError",
    "TopicReport",
    "TopicState",
    "admin_client",
    "describe",
    "reconcile",
}

__all__ = [
    "ALERTS",
    "CORRELATIONS",
    "DAILY_LOAD",
    "DEADLETTER",
    "LOAD_MINUTE",
    "LOAD_SAMPLES",
    "PAIN_REPORTS",
    "PAIN_RESPONSES",
    "REGISTRY_ASSIGNMENTS",
    "REGISTRY_ATHLETES",
    "REGISTRY_DEVICES",
    "SESSIONS",
    "TREADMILL_SETPOINTS",
    "TREADMILL_TELEMETRY",
    "UNIT_STATUS",
    "WATCH_SAMPLES",
    "BrokerUnavailableError",
    "CleanupPolicy",
    "Topic",
    "TopicAdminError",
    "TopicReport",
    "TopicState",
    "admin_client",
    "catalogue",
    "describe",
    "get_topic",
    "logical_names",
    "reconcile",
    "topic_name",
]


def __getattr__(name: str) -> Any:
    if name in _ADMIN:
        from kneeload.topics import admin

        return getattr(admin, name)
    raise AttributeError(f"module 'kneeload.topics' has no attribute {name!r}")
