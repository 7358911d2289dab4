"""Topic reconciliation against the REAL Kafka broker (settings.kafka_bootstrap; `make up`).

Each test session works under a unique topic prefix and deletes its topics at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest
from click.testing import CliRunner

from kneeload.cli import root
from kneeload.settings import Settings, get_settings, reload_settings
from kneeload.topics import catalogue, describe, reconcile
from kneeload.topics.admin import TopicReport, admin_client


def _drop_prefix(settings: Settings) -> None:
    with admin_client(settings) as admin:
        mine = [t for t in admin.list_topics() if t.startswith(settings.topic_prefix)]
        if mine:
            admin.delete_topics(mine)


@pytest.fixture(scope="session")
def kafka_settings() -> Iterator[Settings]:
    """Settings with a unique ``test-<uuid>.`` prefix; its topics are deleted afterwards."""
    s = get_settings().model_copy(update={"topic_prefix": f"test-{uuid.uuid4().hex[:12]}."})
    try:
        yield s
    finally:
        _drop_prefix(s)


@pytest.fixture
def fresh_settings() -> Iterator[Settings]:
    """A prefix of its own for tests that need an empty namespace."""
    s = get_settings().model_copy(update={"topic_prefix": f"test-{uuid.uuid4().hex[:12]}."})
    try:
        yield s
    finally:
        _drop_prefix(s)


@pytest.fixture(scope="session")
def reconciled(kafka_settings: Settings) -> list[TopicReport]:
    return reconcile(kafka_settings)


def test_first_run_creates_every_topic(
    reconciled: list[TopicReport], kafka_settings: Settings
) -> None:
    assert [r.topic.full_name for r in reconciled] == [
        t.full_name for t in catalogue(kafka_settings)
    ]
    assert all(r.actions == ["create"] and r.status == "created" for r in reconciled)
    assert not any(r.warnings for r in reconciled)


def test_admin_api_shows_catalogue_partitions_and_cleanup_policy(
    reconciled: list[TopicReport],
    kafka_settings: Settings,
) -> None:
    states = {s.name: s for s in describe(kafka_settings)}
    for t in catalogue(kafka_settings):
        st = states[t.full_name]
        assert st.exists, t.full_name
        assert st.partitions == t.partitions, t.full_name
        assert st.cleanup_policy == str(t.cleanup_policy), t.full_name
        assert st.retention_ms == t.retention_ms, t.full_name
        assert st.replication == t.replication


def test_second_run_changes_nothing(
    reconciled: list[TopicReport], kafka_settings: Settings
) -> None:
    again = reconcile(kafka_settings)
    assert [(r.status, r.actions, r.warnings) for r in again] == [("unchanged", [], [])] * len(
        again
    )
    assert all(r.before.exists for r in again)
    dry = reconcile(kafka_settings, dry_run=True)
    assert not any(r.changed for r in dry)


def test_dry_run_changes_nothing_on_the_broker(fresh_settings: Settings) -> None:
    plan = reconcile(fresh_settings, dry_run=True)
    assert all(r.status == "would be created" for r in plan)
    assert not any(s.exists for s in describe(fresh_settings))


def test_drifted_topics_are_reconciled_but_never_shrunk(fresh_settings: Settings) -> None:
    topics = {t.logical_name: t for t in catalogue(fresh_settings)}
    samples, athletes, dlq = (
        topics["watch.samples"],
        topics["registry.athletes"],
        topics["deadletter"],
    )
    with admin_client(fresh_settings) as admin:
        admin.create_topics(
            {
                # too few partitions, wrong policy and retention
                samples.full_name: {
                    "num_partitions": 2,
                    "replication_factor": 1,
                    "configs": {"cleanup.policy": "compact"},
                },
                # a registry someone created as a plain stream
                athletes.full_name: {
                    "num_partitions": athletes.partitions,
                    "replication_factor": 1,
                },
                # more partitions than the catalogue: must be kept
                dlq.full_name: {
                    "num_partitions": 3,
                    "replication_factor": 1,
                    "configs": {"cleanup.policy": "delete", "retention.ms": str(dlq.retention_ms)},
                },
            },
            wait_for_metadata=True,
        )
    by_name = {r.topic.logical_name: r for r in reconcile(fresh_settings)}
    assert by_name["watch.samples"].actions == ["add_partitions", "alter_configs"]
    assert f"partitions 2 -> {samples.partitions}" in by_name["watch.samples"].changes
    assert by_name["registry.athletes"].actions == ["alter_configs"]
    assert by_name["deadletter"].actions == []
    assert any("never decreased" in w for w in by_name["deadletter"].warnings)
    assert by_name["alerts"].actions == ["create"]

    states = {s.name: s for s in describe(fresh_settings)}
    assert states[samples.full_name].partitions == samples.partitions
    assert states[samples.full_name].cleanup_policy == "delete"
    assert states[samples.full_name].retention_ms == samples.retention_ms
    assert states[athletes.full_name].cleanup_policy == "compact"
    assert states[dlq.full_name].partitions == 3

    again = reconcile(fresh_settings)
    assert not any(r.changed for r in again)
    assert [r.topic.logical_name for r in again if r.warnings] == ["deadletter"]


def test_cli_reconciles_and_describes(
    reconciled: list[TopicReport],
    kafka_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KNEELOAD_TOPIC_PREFIX", kafka_settings.topic_prefix)
    monkeypatch.setenv("KNEELOAD_KAFKA_BOOTSTRAP", kafka_settings.kafka_bootstrap)
    try:
        reload_settings()
        runner = CliRunner()
        run = runner.invoke(root, ["topics", "--json"])
        assert run.exit_code == 0, run.output
        assert {r["status"] for r in orjson.loads(run.stdout)} == {"unchanged"}
        table = runner.invoke(root, ["topics"])
        assert table.exit_code == 0, table.output
        assert "16 topics, 0 changed, 16 unchanged" in table.stdout
        desc = runner.invoke(root, ["topics", "--describe", "--json"])
        assert desc.exit_code == 0, desc.output
        rows = {r["topic"]: r for r in orjson.loads(desc.stdout)}
        reg = rows[kafka_settings.topic_prefix + "registry.devices"]
        assert (reg["cleanup_policy"], reg["partitions"]) == ("compact", 1)
        human = runner.invoke(root, ["topics", "--describe"])
        assert (
            human.exit_code == 0 and "differs" not in human.stdout and "missing" not in human.stdout
        )
    finally:
        monkeypatch.delenv("KNEELOAD_TOPIC_PREFIX")
        monkeypatch.delenv("KNEELOAD_KAFKA_BOOTSTRAP")
        reload_settings()
