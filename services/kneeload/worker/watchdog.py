"""A worker that is behind and not moving exits, so its supervisor restarts it.

Why: Faust (faust-streaming 0.11) can stop consuming after a rebalance — the group is
stable, this worker holds the partitions, fetches are issued and nothing is processed or
committed again (faust-streaming/faust#175, #523; robinhood/faust#681). ``make chaos``
met it after a second worker left the group (the remaining one stopped committing; 2 of
5 runs). Nothing is lost — the offsets of unprocessed messages are not committed — but a
stalled worker stays stalled, and the alerts of its athletes with it.

What: every ``interval_s`` the worker compares the broker's end offsets of the partitions
it consumes (asked with a ListOffsets request, independent of the stuck fetcher) with its
committed offsets, and counts progress as committed offsets + events processed + table
recovery offsets (a long changelog recovery is progress, not a stall). Behind and no
progress for ``stall_s`` → one error line saying so, and the process exits with status 75
(EX_TEMPFAIL: "try again"). A restart resumes from the committed offsets (at-least-once,
idempotent writes: what ``make chaos`` proves for SIGKILL), as ``restart: unless-stopped``
does in infra/compose.yaml and the chaos supervisor does.

:class:`StallDetector` is the decision, a plain object the tests drive directly;
:func:`install` is the thin edge that feeds it from the Faust app.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

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


async def _progress(app: Any) -> Progress | None:
    """Behind/moved from the Faust app; None while nothing is assigned or the broker is away."""
    consumer = app.consumer
    tps = [tp for tp in consumer.assignment() if not tp.topic.endswith("-changelog")]
    if not tps:
        return None
    try:
        ends = await consumer.highwaters(*tps)
    except Exception:  # broker away: a broker outage is not this worker's stall
        return None
    behind = parts = 0
    committed_sum = 0
    for tp in tps:
        done = consumer._committed_offset.get(tp) or 0
        committed_sum += done
        lag = max(0, int(ends.get(tp, 0) or 0) - done)
        behind += lag
        parts += lag > 0
    recovery = app.tables.recovery
    recovered = sum(recovery.active_offsets.values()) + sum(recovery.standby_offsets.values())
    return Progress(behind, committed_sum + app.monitor.events_total + recovered, parts)


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


def install(app: Any, stall_s: float, interval_s: float) -> None:
    """Check every ``interval_s``; exit with :data:`EXIT_STALLED` after ``stall_s`` stalled
    (``stall_s`` ≤ 0: off)."""
    if os.environ.get(FAULT_PAUSE_ENV) == "1":
        _inject_pause(app)
    if stall_s <= 0:
        return
    detector = StallDetector(stall_s)

    @app.timer(interval=interval_s)
    async def watchdog() -> None:
        import time

        p = await _progress(app)
        if p is None:
            detector.reset()
            return
        stalled = detector.observe(time.monotonic(), p)
        if stalled is None:
            return
        log.error(
            "worker stalled: %d messages behind on %d partition(s), no event processed, "
            "committed or recovered for %.0f s (KNEELOAD_WORKER_STALL_TIMEOUT_S=%.0f); exiting "
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
