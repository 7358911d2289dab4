"""A worker that is behind and not moving exits, so its supervisor restarts it.

Why: Faust (faust-streaming 0.11) can stop consuming after a rebalance — the group is
stable, this worker holds the partitions, fetches are issued and nothing is processed or
committed again (faust-streaming/faust#175, #523; robinhood/faust#681). ``make chaos``
met it after a second worker left the group (the remaining one stopped committing; 2 of
5 runs). Nothing is lost — the offsets of unprocessed messages are not committed — but a
stalled worker stays stalled, and the alerts of its athletes with it.

What: a thread of the worker process, with its own Kafka clients, compares every
``interval_s`` the broker's end offsets of the partitions this worker holds with the
offsets its group committed there (both asked from the broker, independent of the stuck
Faust consumer), and counts progress as those committed offsets + table recovery offsets
(a long changelog recovery is progress, not a stall). Behind and no
progress for ``stall_s`` → one error line saying so, and the process exits with status 75
(EX_TEMPFAIL: "try again"). A restart resumes from the committed offsets (at-least-once,
idempotent writes: what ``make chaos`` proves for SIGKILL), as ``restart: unless-stopped``
does in infra/compose.yaml and the chaos supervisor does.

:class:`StallDetector` is the decision, a plain object the tests drive directly;
:func:`install` is the thin edge that feeds it from the broker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kneeload.settings import Settings

__all__ = ["EXIT_STALLED", "FAULT_PAUSE_ENV", "Progress", "StallDetector", "install"]

log = logging.getLogger(__name__)

EXIT_STALLED = 75  # EX_TEMPFAIL


@dataclass(frozen=True, slots=True)
class Progress:
    """One look at the worker: messages it is behind and a counter that moves when it works."""

    behind: int
    moved: int
    partitions_behind: int = 0


@dataclass(slots=True)
class StallDetector:
    """Stalled when behind > 0 and ``moved`` has not changed for ``stall_s``.

    ``observe`` returns the seconds the worker has been stalled once that reaches
    ``stall_s``, else None. Being caught up (behind == 0) or any change of ``moved`` resets
    the clock."""

    stall_s: float
    _since: float | None = field(default=None, init=False)
    _moved: int | None = field(default=None, init=False)

    def reset(self) -> None:
        """Forget the clock (nothing to judge: the broker is away, nothing is assigned)."""
        self._since = self._moved = None

    def observe(self, now_s: float, p: Progress) -> float | None:
        if p.behind <= 0 or p.moved != self._moved:
            self._since = now_s if p.behind > 0 else None
            self._moved = p.moved
            return None
        if self._since is None:
            self._since = now_s
            return None
        stalled = now_s - self._since
        return stalled if stalled >= self.stall_s else None


def _own_partitions(app: Any) -> list[Any]:
    """The input partitions this worker holds (kafka-python TopicPartitions; changelogs,
    read only in recovery, excluded). A plain attribute read from the watchdog's thread."""
    from kafka import TopicPartition

    try:
        assigned = list(app.consumer.assignment())
    except Exception:  # not started yet
        return []
    return [
        TopicPartition(tp.topic, tp.partition)
        for tp in assigned
        if not tp.topic.endswith("-changelog")
    ]


def _recovered(app: Any) -> int:
    try:
        r = app.tables.recovery
        return int(sum(r.active_offsets.values()) + sum(r.standby_offsets.values()))
    except Exception:
        return 0


def _progress(app: Any, group: str, admin: Any, ends_client: Any) -> Progress | None:
    """Behind/moved from the BROKER: end offsets (ListOffsets) and the group's committed
    offsets (OffsetFetch) of the partitions this worker holds, through the watchdog's own
    clients — a stuck Faust consumer (whose thread answers nothing) cannot hide a stall.
    None while nothing is assigned or the broker does not answer."""
    tps = _own_partitions(app)
    if not tps:
        return None
    try:
        ends = ends_client.end_offsets(tps)
        committed = admin.list_group_offsets({group: tps}).get(group) or {}
    except Exception as exc:  # broker away: a broker outage is not this worker's stall
        log.debug("watchdog: broker did not answer: %r", exc)
        return None
    behind = parts = done_sum = 0
    for tp in tps:
        meta = committed.get(tp)
        done = max(0, int(meta.offset)) if meta is not None else 0
        done_sum += done
        lag = max(0, int(ends.get(tp) or 0) - done)
        behind += lag
        parts += lag > 0
    return Progress(behind, done_sum + _recovered(app), parts)


#: Fault injection for tests/worker/test_watchdog.py, never set in production: once the
#: worker has processed an event it pauses every assigned partition — what the Faust bug
#: looks like from outside (assigned, not consuming). Not a setting on purpose.
FAULT_PAUSE_ENV = "KNEELOAD_WORKER_FAULT_PAUSE"


def _inject_pause(app: Any) -> None:
    paused = False

    @app.timer(interval=0.5)
    async def pause_once() -> None:
        nonlocal paused
        if not paused and app.monitor.events_total > 0:
            paused = True
            log.warning("%s: pausing every assigned partition (a test's fault)", FAULT_PAUSE_ENV)
            app.consumer.pause_partitions(app.consumer.assignment())


def install(app: Any, settings: Settings, stall_s: float, interval_s: float) -> None:
    """Start the watchdog thread: every ``interval_s``, exit with :data:`EXIT_STALLED` after
    ``stall_s`` stalled (``stall_s`` ≤ 0: off). A thread with its own Kafka clients, not a
    Faust timer: in the stall met by ``make chaos`` the worker's timers and its consumer
    thread waited too (a first timer-based version never fired)."""
    if os.environ.get(FAULT_PAUSE_ENV) == "1":
        _inject_pause(app)
    if stall_s <= 0:
        return
    group = app.conf.id
    bootstrap = [h.strip() for h in settings.kafka_bootstrap.split(",")]

    @app.task
    async def start_watchdog() -> None:
        t = threading.Thread(
            target=_watch,
            args=(app, group, bootstrap, stall_s, interval_s),
            name="kneeload-watchdog",
            daemon=True,
        )
        t.start()


def _watch(app: Any, group: str, bootstrap: list[str], stall_s: float, interval_s: float) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer

    detector = StallDetector(stall_s)
    admin = ends = None
    while True:
        time.sleep(interval_s)
        try:
            if admin is None or ends is None:
                admin = KafkaAdminClient(
                    bootstrap_servers=bootstrap,
                    client_id="kneeload-watchdog",
                    request_timeout_ms=10_000,
                )
                ends = KafkaConsumer(
                    bootstrap_servers=bootstrap,
                    client_id="kneeload-watchdog",
                    enable_auto_commit=False,
                    request_timeout_ms=10_000,
                )
        except Exception:  # broker away: try again next time
            admin = ends = None
            detector.reset()
            continue
        p = _progress(app, group, admin, ends)
        log.debug("watchdog: %s", p)
        if p is None:
            detector.reset()
            continue
        stalled = detector.observe(time.monotonic(), p)
        if stalled is None:
            continue
        log.error(
            "worker stalled: %d messages behind on %d partition(s), no offset committed or "
            "changelog recovered for %.0f s (KNEELOAD_WORKER_STALL_TIMEOUT_S=%.0f); exiting "
            "with status %d so the supervisor restarts it (nothing is lost: the offsets of "
            "unprocessed messages are not committed)",
            p.behind,
            p.partitions_behind,
            stalled,
            stall_s,
            EXIT_STALLED,
        )
        for h in logging.getLogger().handlers:
            h.flush()
        os._exit(EXIT_STALLED)  # a stuck consumer can hang a graceful stop
