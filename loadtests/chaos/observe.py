"""What the chaos run watches: consumer-group progress in Kafka and the run's database.

Every call survives the component being down (Kafka killed, PostgreSQL stopped): the
clients are rebuilt and the answer is "not known yet" (None), never an exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import psycopg

from kneeload.settings import Settings
from kneeload.storage.sink import SINK_TOPICS
from kneeload.topics import catalogue
from kneeload.topics.catalogue import internal_catalogue
from kneeload.worker.app import app_id

__all__ = ["Offsets", "Progress", "groups_of"]

Offsets = dict[tuple[str, int], int]


#: consumed, but not waited for: Faust 0.15.3 can stop committing a partition of the team
#: agent's input after a worker is killed (it keeps processing it; a restart replays from the
#: stalled offset, which the team processor's idempotence makes harmless). Waiting for its
#: commits would stall the run; the stalls are reported instead (:meth:`Progress.stalled`).
NOT_AWAITED = ("worker.pairs-by-team",)


def groups_of(s: Settings, *, awaited_only: bool = True) -> dict[str, tuple[str, ...]]:
    """Consumer group → full names of the topics it consumes, for one run's settings
    (without :data:`NOT_AWAITED` unless ``awaited_only`` is false)."""
    prefix = s.topic_prefix
    worker_inputs = [
        t.full_name
        for t in catalogue(s)
        if t.logical_name
        in (
            "watch.samples",
            "registry.athletes",
            "pain.reports",
            "treadmill.telemetry",
            "treadmill.setpoints",
            "registry.assignments",
            "registry.devices",
        )
    ]
    worker_inputs += [
        t.full_name
        for t in internal_catalogue(s)
        if not (awaited_only and t.logical_name in NOT_AWAITED)
    ]
    return {
        app_id(s): tuple(worker_inputs),
        s.storage_sink_group: tuple(prefix + t for t in SINK_TOPICS),
        s.notify_group_id: (prefix + "alerts",),
    }


class Progress:
    """Kafka end offsets and committed offsets of the run's groups (kafka-python)."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self.s = settings
        self.database_url = database_url
        self.groups = groups_of(settings)
        self._admin: Any = None
        self._consumer: Any = None

    def close(self) -> None:
        for c in (self._consumer, self._admin):
            with contextlib.suppress(Exception):
                if c is not None:
                    c.close()
        self._admin = self._consumer = None

    def _clients(self) -> tuple[Any, Any]:
        if self._admin is None:
            from kafka import KafkaAdminClient, KafkaConsumer

            self._admin = KafkaAdminClient(
                bootstrap_servers=self.s.kafka_bootstrap,
                request_timeout_ms=5000,
                client_id="chaos-observer",
            )
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.s.kafka_bootstrap,
                enable_auto_commit=False,
                request_timeout_ms=6000,
                client_id="chaos-offsets",
            )
        return self._admin, self._consumer

    def _call(self, fn: Any) -> Any:
        try:
            return fn(*self._clients())
        except Exception:
            self.close()
            return None

    def end_offsets(self, topics: Iterable[str]) -> Offsets | None:
        def go(_admin: Any, consumer: Any) -> Offsets:
            from kafka import TopicPartition

            tps = [
                TopicPartition(t, p)
                for t in topics
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
            ends = consumer.end_offsets(tps) if tps else {}
            return {(tp.topic, tp.partition): int(o) for tp, o in ends.items()}

        out: Offsets | None = self._call(go)
        return out

    def committed(self, group: str) -> Offsets | None:
        def go(admin: Any, _consumer: Any) -> Offsets:
            got = admin.list_group_offsets({group: None}).get(group) or {}
            return {
                (tp.topic, tp.partition): int(m.offset) for tp, m in got.items() if m.offset >= 0
            }

        out: Offsets | None = self._call(go)
        return out

    def snapshot(self) -> dict[str, Offsets] | None:
        """End offsets now of every topic each group consumes (what it must reach)."""
        snap: dict[str, Offsets] = {}
        for g, topics in self.groups.items():
            ends = self.end_offsets(topics)
            if ends is None:
                return None
            snap[g] = ends
        return snap

    def caught_up(self, snap: dict[str, Offsets]) -> bool | None:
        """Has every group committed at least the snapshot's offsets? None: Kafka down."""
        for g, ends in snap.items():
            done = self.committed(g)
            if done is None:
                return None
            if any(done.get(tp, 0) < end for tp, end in ends.items() if end > 0):
                return False
        return True

    def stalled(self) -> dict[str, dict[str, tuple[int, int]]] | None:
        """Partitions whose committed offset is behind the end, every consumed topic
        included: ``{group: {"topic:partition": (committed, end)}}`` (after a drain: the
        commit stalls the run did not wait for)."""
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for g, topics in groups_of(self.s, awaited_only=False).items():
            ends = self.end_offsets(topics)
            done = self.committed(g)
            if ends is None or done is None:
                return None
            behind = {
                f"{t.removeprefix(self.s.topic_prefix)}:{p}": (done.get((t, p), 0), e)
                for (t, p), e in ends.items()
                if done.get((t, p), 0) < e
            }
            if behind:
                out[g] = behind
        return out

    def lag(self) -> int | None:
        """Messages not yet committed by the run's groups, over everything they consume."""
        snap = self.snapshot()
        if snap is None:
            return None
        total = 0
        for g, ends in snap.items():
            done = self.committed(g)
            if done is None:
                return None
            total += sum(max(0, end - done.get(tp, 0)) for tp, end in ends.items())
        return total

    def worker_input_lag(self) -> int | None:
        """The worker's lag on every input the athlete and fleet agents read (raw topics and
        the re-keyed BWS timeline): 0 once it has consumed everything sent so far."""
        p = self.s.topic_prefix
        topics = [
            p + t
            for t in (
                "watch.samples",
                "pain.reports",
                "treadmill.telemetry",
                "treadmill.setpoints",
                "registry.athletes",
                "registry.assignments",
                "worker.bws-by-athlete",
                "worker.devices-by-unit",
            )
        ]
        ends = self.end_offsets(topics)
        done = self.committed(app_id(self.s))
        if ends is None or done is None:
            return None
        return sum(max(0, e - done.get(tp, 0)) for tp, e in ends.items())

    def worker_telemetry_lag(self) -> int | None:
        """The worker's lag on LEVER telemetry and its re-keyed BWS timeline (the driver
        paces watch samples on it, as the demo does)."""
        p = self.s.topic_prefix
        topics = [p + "treadmill.telemetry", p + "treadmill.setpoints", p + "worker.bws-by-athlete"]
        ends = self.end_offsets(topics)
        done = self.committed(app_id(self.s))
        if ends is None or done is None:
            return None
        return sum(max(0, e - done.get(tp, 0)) for tp, e in ends.items())

    def group_state(self, group: str) -> str | None:
        got = self.group(group)
        return None if got is None else got[0]

    def group(self, group: str) -> tuple[str, int] | None:
        """(state, number of members) of a consumer group; None while Kafka is down."""

        def go(admin: Any, _consumer: Any) -> tuple[str, int]:
            desc = admin.describe_groups([group]).get(group) or {}
            return str(desc.get("group_state") or "Unknown"), len(desc.get("members") or ())

        out: tuple[str, int] | None = self._call(go)
        return out

    def mqtt_in_kafka(self) -> int | None:
        ends = self.end_offsets(
            (
                self.s.topic_prefix + "treadmill.telemetry",
                self.s.topic_prefix + "treadmill.setpoints",
            )
        )
        return None if ends is None else sum(ends.values())

    # ------------------------------------------------------------------ database
    def db(self, sql: str) -> list[tuple[Any, ...]] | None:
        try:
            with psycopg.connect(self.database_url, connect_timeout=3) as conn:
                return list(conn.execute(sql).fetchall())
        except psycopg.Error:
            return None

    def pipeline_state(self) -> dict[str, int] | None:
        """Counts that still change while the pipeline works (drain detection)."""
        rows = self.db(
            """SELECT (SELECT count(*) FROM kneeload.sessions),
                      (SELECT count(*) FROM kneeload.sessions WHERE status = 'open'),
                      (SELECT count(*) FROM kneeload.daily_load WHERE status = 'provisional'),
                      (SELECT count(*) FROM kneeload.daily_load_revisions),
                      (SELECT count(*) FROM kneeload.alerts),
                      (SELECT count(*) FROM kneeload.pain_responses),
                      (SELECT count(*) FROM kneeload.correlations),
                      (SELECT count(*) FROM kneeload.watch_samples),
                      (SELECT count(*) FROM notify.deliveries),
                      (SELECT count(*) FROM notify.deliveries WHERE status = 'pending')"""
        )
        if not rows:
            return None
        keys = (
            "sessions",
            "open_sessions",
            "provisional_days",
            "daily_revisions",
            "alerts",
            "pain_responses",
            "correlations",
            "watch_samples",
            "deliveries",
            "pending_deliveries",
        )
        return dict(zip(keys, (int(v) for v in rows[0]), strict=True))
