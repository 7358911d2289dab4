"""The topic catalogue (no broker needed) and the unreachable-broker error."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from kneeload.cli import root
from kneeload.contracts import schema_names
from kneeload.settings import get_settings, reload_settings
from kneeload.topics import (
    REGISTRY_ASSIGNMENTS,
    REGISTRY_ATHLETES,
    TREADMILL_TELEMETRY,
    WATCH_SAMPLES,
    BrokerUnavailableError,
    CleanupPolicy,
    admin_client,
    catalogue,
    get_topic,
    logical_names,
    topic_name,
)

EXPECTED = [
    "watch.samples", "treadmill.telemetry", "treadmill.setpoints", "pain.reports",
    "registry.athletes", "registry.devices", "registry.assignments", "load.samples",
    "load.minute", "sessions", "daily.load", "pain.responses", "correlations", "alerts",
    "unit.status", "deadletter",
]  # fmt: skip
REGISTRIES = {"registry.athletes", "registry.devices", "registry.assignments"}


def test_catalogue_lists_every_topic_once() -> None:
    assert list(logical_names()) == EXPECTED
    names = [t.full_name for t in catalogue()]
    assert len(set(names)) == len(names)


def test_full_names_use_the_prefix() -> None:
    s = get_settings()
    assert topic_name(WATCH_SAMPLES) == s.topic_prefix + "watch.samples"
    other = s.model_copy(update={"topic_prefix": "t-1."})
    assert topic_name(WATCH_SAMPLES, other) == "t-1.watch.samples"
    for t in catalogue(other):
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,249}", t.full_name)


def test_every_topic_names_an_existing_schema() -> None:
    for t in catalogue():
        assert t.schema in schema_names(), t


def test_registries_are_compacted_and_streams_deleted() -> None:
    for t in catalogue():
        if t.logical_name in REGISTRIES:
            assert t.cleanup_policy is CleanupPolicy.COMPACT
            assert t.retention_ms == -1
        else:
            assert t.cleanup_policy is CleanupPolicy.DELETE
            assert t.retention_ms >= 24 * 3_600_000
        assert t.configs() == {
            "cleanup.policy": str(t.cleanup_policy),
            "retention.ms": str(t.retention_ms),
        }


def test_partitions_follow_the_settings() -> None:
    s = get_settings().model_copy(update={"topic_partitions": 12, "topic_replication": 3})
    topics = {t.logical_name: t for t in catalogue(s)}
    assert topics[WATCH_SAMPLES].partitions == 12
    assert topics["deadletter"].partitions == 1
    assert all(1 <= t.partitions <= 12 and t.replication == 3 for t in topics.values())
    # Registries joined by stream workers are co-partitioned with their streams.
    assert topics[REGISTRY_ATHLETES].partitions == topics[WATCH_SAMPLES].partitions
    assert topics[REGISTRY_ASSIGNMENTS].partitions == topics[TREADMILL_TELEMETRY].partitions
    small = get_settings().model_copy(update={"topic_partitions": 2})
    assert all(t.partitions <= 2 for t in catalogue(small))


def test_unknown_topic() -> None:
    with pytest.raises(KeyError, match=r"known: watch\.samples"):
        get_topic("watch.sample")


def test_unreachable_broker_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    s = get_settings().model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    with (
        pytest.raises(BrokerUnavailableError, match="KNEELOAD_KAFKA_BOOTSTRAP"),
        admin_client(s, timeout_ms=1500),
    ):
        pass
    monkeypatch.setenv("KNEELOAD_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    try:
        reload_settings()
        result = CliRunner().invoke(root, ["topics", "--timeout", "1.5"])
    finally:
        monkeypatch.delenv("KNEELOAD_KAFKA_BOOTSTRAP")
        reload_settings()
    assert result.exit_code == 1
    assert "KNEELOAD_KAFKA_BOOTSTRAP" in result.output
    assert "127.0.0.1:1" in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, BrokerUnavailableError)  # handled, not raised
