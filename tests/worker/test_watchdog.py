"""The stall watchdog (kneeload.worker.watchdog): a worker behind on its input that moves
no more exits with status 75 for its supervisor to restart it, and the restart loses
nothing. Found by ``make chaos``: after a second worker left the group, the remaining one
held every partition and processed nothing again (2 of 5 runs; Faust's known stall)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kneeload.settings import Settings
from kneeload.worker.watchdog import EXIT_STALLED, FAULT_PAUSE_ENV, Progress, StallDetector

from .helpers import UTC, Collector, Kafka, Worker, athlete_record, batches, ensure_topics, samples


def test_stalled_only_when_behind_and_not_moving_for_the_timeout() -> None:
    d = StallDetector(stall_s=30)
    assert d.observe(0, Progress(behind=5, moved=100)) is None  # clock starts
    assert d.observe(20, Progress(behind=9, moved=100)) is None  # 20 s: not yet
    assert d.observe(31, Progress(behind=12, moved=100)) == 31  # 31 s behind, nothing moved
    d = StallDetector(stall_s=30)
    d.observe(0, Progress(5, 100))
    d.observe(29, Progress(5, 101))  # it moved: clock restarts at 29
    assert d.observe(58, Progress(5, 101)) is None
    assert d.observe(59, Progress(5, 101)) == 30
    d = StallDetector(stall_s=30)
    d.observe(0, Progress(5, 100))
    d.observe(10, Progress(0, 100))  # caught up: nothing to judge
    assert d.observe(35, Progress(1, 100)) is None  # behind again from 35
    d.reset()  # the broker went away
    assert d.observe(100, Progress(1, 100)) is None


@given(st.lists(st.integers(0, 3), min_size=1, max_size=60))
def test_a_worker_that_moves_at_every_look_is_never_stalled(behind: list[int]) -> None:
    d = StallDetector(stall_s=5)
    for i, b in enumerate(behind):
        assert d.observe(i * 10.0, Progress(b, moved=i)) is None


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    prefix = f"{settings.topic_prefix}wd{uuid.uuid4().hex[:6]}."
    e = {"KNEELOAD_TOPIC_PREFIX": prefix, "KNEELOAD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    ensure_topics(e)
    return e


def test_a_stalled_worker_exits_and_its_restart_loses_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    """On the real broker: a worker whose consumer stops (every partition paused after its
    first event, the fault switch) while input keeps coming exits with status 75 after the
    stall timeout, saying why; a fresh worker then processes every batch, none lost."""
    bootstrap, prefix = env["KNEELOAD_KAFKA_BOOTSTRAP"], env["KNEELOAD_TOPIC_PREFIX"]
    k = Kafka(bootstrap, prefix)
    k.send("registry.athletes", "wd1", athlete_record("wd1", "t-wd"))
    k.flush()
    fast = {"KNEELOAD_WORKER_STALL_TIMEOUT_S": "8", "KNEELOAD_WORKER_WATCHDOG_INTERVAL_S": "1"}
    log = tmp_path / "w1.log"
    w = Worker({**env, **fast, FAULT_PAUSE_ENV: "1"}, log)
    bs = batches("wd1", "t-wd", samples(dt.datetime(2024, 6, 10, 7, tzinfo=UTC), 600), 100, "s")
    c = Collector(bootstrap, prefix)
    for b in bs:  # the stalled worker's backlog (some may be processed before the fault)
        k.send("watch.samples", "wd1", b)
    k.flush()
    try:
        w.proc.wait(timeout=120)  # the registry record is its first event, then it pauses
    except Exception:
        w.kill()
        raise
    else:
        w.log.close()
    text = log.read_text(errors="replace")
    assert w.proc.returncode == EXIT_STALLED, text[-3000:]
    assert "worker stalled:" in text and "no offset committed" in text
    w2 = Worker({**env, **fast}, tmp_path / "w2.log")
    try:
        c.wait(lambda c: all(b["batch_id"] in c.latest["load.samples"] for b in bs))
        assert w2.proc.poll() is None  # the healthy worker is not stopped by its watchdog
    finally:
        w2.stop()
        c.close()
        k.close()
