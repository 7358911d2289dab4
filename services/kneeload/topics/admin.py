"""Create and reconcile the catalogue's topics through Kafka's admin API.

:func:`reconcile` is idempotent: it creates missing topics, raises partition counts
that are below the catalogue's, and sets ``cleanup.policy``/``retention.ms`` where
they differ (incremental alter, other topic configs are left alone). It never
decreases partitions (Kafka cannot, and re-keying would break ordering); a topic
with more partitions than the catalogue says is reported with a warning.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from kneeload.settings import Settings, get_settings
from kneeload.topics.catalogue import Topic, catalogue

__all__ = [
    "MANAGED_CONFIGS",
    "BrokerUnavailableError",
    "TopicAdminError",
    "TopicReport",
    "TopicState",
    "admin_client",
    "delete_topics",
    "describe",
    "reconcile",
]

MANAGED_CONFIGS = ("cleanup.policy", "retention.ms")


class BrokerUnavailableError(RuntimeError):
    """The Kafka broker did not answer."""


class TopicAdminError(RuntimeError):
    """The broker refused an admin request."""


@dataclass(slots=True)
class TopicState:
    """A topic as the admin API reports it."""

    name: str
    exists: bool
    partitions: int | None = None
    replication: int | None = None
    configs: dict[str, str | None] = field(default_factory=dict)

    @property
    def cleanup_policy(self) -> str | None:
        return self.configs.get("cleanup.policy")

    @property
    def retention_ms(self) -> int | None:
        value = self.configs.get("retention.ms")
        return int(value) if value is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.name,
            "exists": self.exists,
            "partitions": self.partitions,
            "replication": self.replication,
            "cleanup_policy": self.cleanup_policy,
            "retention_ms": self.retention_ms,
        }


@dataclass(slots=True)
class TopicReport:
    """What :func:`reconcile` found and did (or would do, on a dry run) for one topic."""

    topic: Topic
    before: TopicState
    actions: list[str] = field(default_factory=list)  # create | add_partitions | alter_configs
    changes: list[str] = field(default_factory=list)  # human-readable, one per change
    warnings: list[str] = field(default_factory=list)
    applied: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    @property
    def status(self) -> str:
        if not self.actions:
            return "unchanged"
        verb = "created" if "create" in self.actions else "updated"
        return verb if self.applied else f"would be {verb}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic.full_name,
            "status": self.status,
            "actions": self.actions,
            "changes": self.changes,
            "warnings": self.warnings,
            "partitions_before": self.before.partitions,
            "partitions": max(self.topic.partitions, self.before.partitions or 0),
            "cleanup_policy": str(self.topic.cleanup_policy),
            "retention_ms": self.topic.retention_ms,
        }


def _bootstrap(settings: Settings) -> list[str]:
    return [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()]


@contextmanager
def admin_client(
    settings: Settings | None = None, *, timeout_ms: int = 10_000
) -> Iterator[KafkaAdminClient]:
    """A connected admin client; :class:`BrokerUnavailableError` naming
    KNEELOAD_KAFKA_BOOTSTRAP when the broker does not answer within ``timeout_ms``."""
    s = settings or get_settings()
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=_bootstrap(s),
            client_id="kneeload-topics",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=max(timeout_ms, 15_000),
        )
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailableError(
            f"Kafka broker not reachable at {s.kafka_bootstrap!r} ({exc}). "
            "Start the local stack with `make up`, or point KNEELOAD_KAFKA_BOOTSTRAP "
            "at a running broker."
        ) from exc
    try:
        yield admin
    finally:
        admin.close()


def _states(admin: KafkaAdminClient, names: Sequence[str]) -> dict[str, TopicState]:
    existing = set(admin.list_topics())
    states = {n: TopicState(n, n in existing) for n in names}
    present = [n for n in names if n in existing]
    if not present:
        return states
    for desc in admin.describe_topics(present):
        st = states.get(desc["name"])
        if st is None or desc["error_code"] != 0:
            continue
        parts = desc["partitions"]
        st.partitions = len(parts)
        st.replication = len(parts[0]["replica_nodes"]) if parts else None
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, n, configs=dict.fromkeys(MANAGED_CONFIGS))
        for n in present
    ]
    result = admin.describe_configs(resources, config_filter="all")
    for name, configs in result.get("topic", {}).items():
        if name in states and isinstance(configs, dict):
            states[name].configs = {
                k: (v.get("value") if isinstance(v, dict) else v)
                for k, v in configs.items()
                if k in MANAGED_CONFIGS
            }
    return states


def describe(
    settings: Settings | None = None, *, admin: KafkaAdminClient | None = None
) -> list[TopicState]:
    """Each catalogue topic as the broker reports it (partitions, replication, managed configs)."""
    topics = catalogue(settings)
    if admin is None:
        with admin_client(settings) as client:
            return describe(settings, admin=client)
    states = _states(admin, [t.full_name for t in topics])
    return [states[t.full_name] for t in topics]


def _plan(topic: Topic, state: TopicState) -> TopicReport:
    report = TopicReport(topic, state)
    if not state.exists:
        report.actions.append("create")
        report.changes.append(
            f"create: {topic.partitions} partitions, cleanup.policy={topic.cleanup_policy}, "
            f"retention.ms={topic.retention_ms}"
        )
        return report
    have = state.partitions or 0
    if have < topic.partitions:
        report.actions.append("add_partitions")
        report.changes.append(f"partitions {have} -> {topic.partitions}")
    elif have > topic.partitions:
        report.warnings.append(
            f"has {have} partitions, the catalogue says {topic.partitions}: "
            "partitions are never decreased (kept as they are)"
        )
    if state.replication is not None and state.replication != topic.replication:
        report.warnings.append(
            f"replication factor is {state.replication}, the catalogue says {topic.replication} "
            "(not changed; reassign partitions to change it)"
        )
    diffs = {k: v for k, v in topic.configs().items() if state.configs.get(k) != v}
    if diffs:
        report.actions.append("alter_configs")
        report.changes.extend(f"{k} {state.configs.get(k)} -> {v}" for k, v in diffs.items())
    return report


def _check(result: Any, what: str) -> None:
    for name, outcome in (result or {}).get("topic", {}).items():
        if outcome != "OK" and not (isinstance(outcome, str) and outcome.upper() == "OK"):
            raise TopicAdminError(f"{what} {name}: {outcome}")


def reconcile(
    settings: Settings | None = None,
    *,
    dry_run: bool = False,
    admin: KafkaAdminClient | None = None,
    topics: Sequence[Topic] | None = None,
) -> list[TopicReport]:
    """Bring the broker's topics in line with the catalogue; one report per topic.

    Safe to repeat: a second run finds nothing to do. ``dry_run`` only plans.
    """
    if admin is None:
        with admin_client(settings) as client:
            return reconcile(settings, dry_run=dry_run, admin=client, topics=topics)
    wanted = list(topics) if topics is not None else list(catalogue(settings))
    states = _states(admin, [t.full_name for t in wanted])
    reports = [_plan(t, states[t.full_name]) for t in wanted]
    if dry_run:
        return reports

    to_create = [r.topic for r in reports if "create" in r.actions]
    to_grow = [r.topic for r in reports if "add_partitions" in r.actions]
    to_alter = [r for r in reports if "alter_configs" in r.actions]
    try:
        if to_create:
            try:
                admin.create_topics(
                    {
                        t.full_name: {
                            "num_partitions": t.partitions,
                            "replication_factor": t.replication,
                            "configs": t.configs(),
                        }
                        for t in to_create
                    },
                    wait_for_metadata=True,
                )
            except TopicAlreadyExistsError:
                # Raced with another reconciler; converge on the next run's view.
                return reconcile(settings, dry_run=dry_run, admin=admin, topics=topics)
        if to_grow:
            admin.create_partitions({t.full_name: t.partitions for t in to_grow})
        if to_alter:
            resources = [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    r.topic.full_name,
                    configs={
                        k: v for k, v in r.topic.configs().items() if r.before.configs.get(k) != v
                    },
                )
                for r in to_alter
            ]
            _check(admin.alter_configs(resources), "alter configs of")
        _await_converged(admin, [r for r in reports if r.changed])
    except KafkaError as exc:
        raise TopicAdminError(f"topic reconciliation failed: {exc}") from exc
    for r in reports:
        r.applied = r.changed
    return reports


def _converged(topic: Topic, state: TopicState) -> bool:
    return (
        state.exists
        and (state.partitions or 0) >= topic.partitions
        and all(state.configs.get(k) == v for k, v in topic.configs().items())
    )


def _await_converged(
    admin: KafkaAdminClient, changed: Sequence[TopicReport], timeout_s: float = 30.0
) -> None:
    """Block until the broker's metadata shows every change (KRaft propagates
    asynchronously), so that describe() and a second run right after see the result."""
    pending = {r.topic.full_name: r.topic for r in changed}
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while pending:
        states = _states(admin, list(pending))
        pending = {n: t for n, t in pending.items() if not _converged(t, states[n])}
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TopicAdminError(
                f"changes not visible after {timeout_s:.0f}s for: {', '.join(sorted(pending))}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def delete_topics(names: Sequence[str], settings: Settings | None = None) -> None:
    """Delete the named topics that exist (tests and tooling)."""
    with admin_client(settings) as admin:
        present = [n for n in names if n in set(admin.list_topics())]
        if present:
            admin.delete_topics(present)
