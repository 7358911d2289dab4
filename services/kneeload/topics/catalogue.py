"""The topic catalogue: every Kafka topic kneeload uses, in code.

Full names are ``settings.topic_prefix + logical name`` (``kneeload.watch.samples``).
Keyed streams get ``settings.topic_partitions`` partitions (the unit of scale-out).
Topics a stream worker joins against a stream keyed the same way keep the same
partition count (co-partitioning: ``registry.athletes`` with athlete-keyed streams,
``registry.assignments`` with unit-keyed ones). Low-volume outputs get fewer.
Registries are compacted (latest record per key, tombstones delete); streams are
``delete`` with a retention. Kafka is not the system of record: PostgreSQL is, so
stream retention only needs to cover replays and outages.

The stream worker's **internal** topics (re-keying and timer topics between its own
agents) are listed separately by :func:`internal_catalogue`: they carry no public
contract (no schema in ``schemas/``; only the worker reads them), so they stay out of
:func:`catalogue` and the worker reconciles them itself (``kneeload worker`` and
``kneeload rebuild-state`` do it before they start).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # pydantic is imported when a topic is resolved, not by `kneeload --help`
    from kneeload.settings import Settings

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
    "WORKER_BWS_BY_ATHLETE",
    "WORKER_DEVICES_BY_UNIT",
    "WORKER_PAIRS_BY_TEAM",
    "WORKER_TICK_ATHLETES",
    "WORKER_TICK_UNITS",
    "CleanupPolicy",
    "Topic",
    "catalogue",
    "get_topic",
    "internal_catalogue",
    "internal_logical_names",
    "logical_names",
    "topic_name",
]

WATCH_SAMPLES = "watch.samples"
TREADMILL_TELEMETRY = "treadmill.telemetry"
TREADMILL_SETPOINTS = "treadmill.setpoints"
PAIN_REPORTS = "pain.reports"
REGISTRY_ATHLETES = "registry.athletes"
REGISTRY_DEVICES = "registry.devices"
REGISTRY_ASSIGNMENTS = "registry.assignments"
LOAD_SAMPLES = "load.samples"
LOAD_MINUTE = "load.minute"
SESSIONS = "sessions"
DAILY_LOAD = "daily.load"
PAIN_RESPONSES = "pain.responses"
CORRELATIONS = "correlations"
ALERTS = "alerts"
UNIT_STATUS = "unit.status"
DEADLETTER = "deadletter"
# worker-internal (see internal_catalogue)
WORKER_BWS_BY_ATHLETE = "worker.bws-by-athlete"
WORKER_TICK_ATHLETES = "worker.tick-athletes"
WORKER_TICK_UNITS = "worker.tick-units"
WORKER_PAIRS_BY_TEAM = "worker.pairs-by-team"
WORKER_DEVICES_BY_UNIT = "worker.devices-by-unit"

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


class CleanupPolicy(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True, slots=True)
class Topic:
    """One catalogue entry, resolved against the settings."""

    logical_name: str
    full_name: str
    key: str
    schema: str
    partitions: int
    replication: int
    cleanup_policy: CleanupPolicy
    retention_ms: int
    description: str

    def configs(self) -> dict[str, str]:
        """The topic configs kneeload manages (and reconciles)."""
        return {"cleanup.policy": str(self.cleanup_policy), "retention.ms": str(self.retention_ms)}


@dataclass(frozen=True, slots=True)
class _Def:
    name: str
    key: str
    schema: str
    partitions: int | Literal["keyed"]
    cleanup: CleanupPolicy
    retention_ms: int
    description: str


_C, _D = CleanupPolicy.COMPACT, CleanupPolicy.DELETE
_DEFS: tuple[_Def, ...] = (
    # --- ingest -------------------------------------------------------------------
    _Def(WATCH_SAMPLES, "athlete_id", "watch_sample_batch", "keyed", _D, 7 * _DAY_MS,
         "Sample batches from watches and apps (HTTP, webhook, FIT/TCX uploads)."),
    _Def(TREADMILL_TELEMETRY, "unit_id", "treadmill_telemetry", "keyed", _D, 7 * _DAY_MS,
         "LEVER unit telemetry and heartbeats from the MQTT bridge."),
    _Def(TREADMILL_SETPOINTS, "unit_id", "bws_setpoint_change", "keyed", _D, 30 * _DAY_MS,
         "BWS setpoint changes of LEVER units."),
    _Def(PAIN_REPORTS, "athlete_id", "pain_report", "keyed", _D, 30 * _DAY_MS,
         "Pain reports from athletes."),
    # --- registries (compacted; co-partitioned with the streams that join them) -----
    _Def(REGISTRY_ATHLETES, "athlete_id", "athlete_record", "keyed", _C, -1,
         "Athlete registry (body mass, time zone, calibration); latest per athlete."),
    _Def(REGISTRY_DEVICES, "device_id", "device_record", 1, _C, -1,
         "Device registry (hashed API keys); small, read whole by the gateways."),
    _Def(REGISTRY_ASSIGNMENTS, "unit_id", "unit_assignment", "keyed", _C, -1,
         "Who is on which LEVER unit; latest per unit."),
    # --- derived ------------------------------------------------------------------
    _Def(LOAD_SAMPLES, "athlete_id", "sample_load", "keyed", _D, 3 * _DAY_MS,
         "Per-sample estimated PFJ load (highest volume; short retention)."),
    _Def(LOAD_MINUTE, "athlete_id", "minute_load", "keyed", _D, 14 * _DAY_MS,
         "Estimated PFJ load per athlete-minute."),
    _Def(SESSIONS, "athlete_id", "session_summary", "keyed", _D, 30 * _DAY_MS,
         "Session summaries (open and closed revisions)."),
    _Def(DAILY_LOAD, "athlete_id", "daily_load", "keyed", _D, 30 * _DAY_MS,
         "Daily load and ACWR per athlete and metric."),
    _Def(PAIN_RESPONSES, "athlete_id", "pain_response", "keyed", _D, 30 * _DAY_MS,
         "Pain-monitoring classification of pain reports, with BWS suggestions."),
    _Def(CORRELATIONS, "athlete_id (team_id for team scope)", "correlation", 1, _D, 30 * _DAY_MS,
         "Pain-load correlations (a few per athlete per day)."),
    _Def(ALERTS, "athlete_id (unit_id for unit alerts)", "alert", 3, _D, 30 * _DAY_MS,
         "Alerts for the notifier and dashboards."),
    _Def(UNIT_STATUS, "unit_id", "unit_status", 3, _D, 3 * _DAY_MS,
         "LEVER unit online/in-use status."),
    _Def(DEADLETTER, "source", "dead_letter", 1, _D, 14 * _DAY_MS,
         "Rejected inputs and failed messages with machine-readable reasons."),
)  # fmt: skip
_BY_NAME = {d.name: d for d in _DEFS}

#: the stream worker's internal topics: keyed like the worker's streams (co-partitioned
#: with them), one day of retention (the worker's tables hold the state, not these)
_INTERNAL_DEFS: tuple[_Def, ...] = (
    _Def(WORKER_BWS_BY_ATHLETE, "athlete_id", "internal", "keyed", _D, _DAY_MS,
         "Worker: LEVER telemetry and setpoints re-keyed by athlete (BWS enrichment)."),
    _Def(WORKER_TICK_ATHLETES, "tick", "internal", "keyed", _D, _DAY_MS,
         "Worker: processing-time ticks, one per assigned athlete partition."),
    _Def(WORKER_TICK_UNITS, "tick", "internal", "keyed", _D, _DAY_MS,
         "Worker: processing-time ticks, one per assigned unit partition."),
    _Def(WORKER_PAIRS_BY_TEAM, "team_id", "internal", "keyed", _D, _DAY_MS,
         "Worker: each athlete's pain-load pairs (bounded) re-keyed by team, for rmcorr."),
    _Def(WORKER_DEVICES_BY_UNIT, "unit_id", "internal", "keyed", _D, _DAY_MS,
         "Worker: LEVER device records (timeout_s, clinic) re-keyed by unit."),
)  # fmt: skip


def logical_names() -> tuple[str, ...]:
    """Logical names of every topic, in catalogue order."""
    return tuple(d.name for d in _DEFS)


def _resolve(d: _Def, s: Settings) -> Topic:
    partitions = (
        s.topic_partitions if d.partitions == "keyed" else min(d.partitions, s.topic_partitions)
    )
    return Topic(
        logical_name=d.name,
        full_name=s.topic_prefix + d.name,
        key=d.key,
        schema=d.schema,
        partitions=max(1, partitions),
        replication=s.topic_replication,
        cleanup_policy=d.cleanup,
        retention_ms=d.retention_ms,
        description=d.description,
    )


def catalogue(settings: Settings | None = None) -> tuple[Topic, ...]:
    """Every topic, resolved against ``settings`` (default: the process settings)."""
    s = settings or _process_settings()
    return tuple(_resolve(d, s) for d in _DEFS)


def internal_logical_names() -> tuple[str, ...]:
    """Logical names of the stream worker's internal topics."""
    return tuple(d.name for d in _INTERNAL_DEFS)


def internal_catalogue(settings: Settings | None = None) -> tuple[Topic, ...]:
    """The stream worker's internal topics, resolved against ``settings``.

    Parameters
    ----------
    settings : Settings, optional
        Prefix, partitions and replication (default: the process settings).

    Returns
    -------
    tuple of Topic
        One entry per internal topic; ``schema`` is ``"internal"`` (no public contract).
    """
    s = settings or _process_settings()
    return tuple(_resolve(d, s) for d in _INTERNAL_DEFS)


def get_topic(logical_name: str, settings: Settings | None = None) -> Topic:
    """One topic by logical name (``"watch.samples"``); KeyError if unknown."""
    try:
        d = _BY_NAME[logical_name]
    except KeyError:
        raise KeyError(f"unknown topic {logical_name!r}; known: {', '.join(_BY_NAME)}") from None
    return _resolve(d, settings or _process_settings())


def topic_name(logical_name: str, settings: Settings | None = None) -> str:
    """Full topic name: ``settings.topic_prefix + logical_name``."""
    return get_topic(logical_name, settings).full_name


def _process_settings() -> Settings:
    from kneeload.settings import get_settings

    return get_settings()
