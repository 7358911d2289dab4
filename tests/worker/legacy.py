"""A fixed athlete scenario, and the state an older worker (JSON dicts) saved halfway through it.

``data/legacy_athlete_state.json`` holds the athlete's state and chunk store as the worker of
commit 46fcaea (before typed state, issue #20) left them after the first :data:`CUT` events
of :func:`events`: written by that code with

    git worktree add --detach /tmp/legacy 46fcaea
    PYTHONPATH=/tmp/legacy/services .venv/bin/python -m tests.worker.legacy

(run from the repository root). tests/worker/test_state.py loads it with today's worker.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson

from .helpers import UTC, athlete_record, batches, iso, samples

FIXTURE = Path(__file__).parent / "data" / "legacy_athlete_state.json"
D0 = dt.datetime(2024, 6, 10, 7, 0, tzinfo=UTC)
#: events before the legacy worker saved its state
CUT = 40


def events() -> list[tuple[str, dict[str, Any], int]]:
    """(kind, event, processing time ms) in arrival order: five daily runs on a LEVER unit
    (support set before each), a walking stretch, a run 70 % longer, pain reports during,
    after and the next morning, one late batch."""
    out: list[tuple[str, dict[str, Any], int]] = []
    now = 0
    for k, n in enumerate((300, 300, 300, 300, 510, 300)):
        start = D0 + dt.timedelta(days=k)
        t_ms = int(start.timestamp() * 1000)
        now += 1000
        out.append(("bws", {"t": t_ms - 60_000, "unit_id": "u1", "bws_pct": 10.0 + k}, now))
        rows = samples(start, n, tag=f"s{k}")
        if k == 2:  # a walking stretch: cadence and speed of walking
            for r in rows[100:160]:
                r["speed_mps"], r["cadence_spm"] = 1.3, 110.0
        for b in batches("a1", "t1", rows, 60, f"s{k}", f"b{k}"):
            now += 1000
            out.append(("batch", b, now))
        end = start + dt.timedelta(seconds=n)
        for rid, when, nrs, ctx in (
            (f"p{k}d", start + dt.timedelta(minutes=5), 2 + k % 3, "during"),
            (f"p{k}a", end + dt.timedelta(hours=1), 3, "after"),
            (f"p{k}m", start + dt.timedelta(hours=24, minutes=-30), 1 + k % 2, "next_morning"),
        ):
            now += 1000
            rep = {"report_id": rid, "athlete_id": "a1", "team_id": "t1", "time": iso(when),
                   "pain_nrs": nrs, "context": ctx, "session_id": None}  # fmt: skip
            out.append(("pain", rep, now))
        now += 1000
        out.append(("tick", {}, now))
    late = batches("a1", "t1", samples(D0 + dt.timedelta(days=1, hours=3), 90, tag="late"), 90)
    out.insert(CUT + 5, ("batch", late[0], out[CUT + 4][2]))
    return out


def feed(proc: Any, st: Any, evs: list[tuple[str, dict[str, Any], int]]) -> list[Any]:
    """Run events through an AthleteProcessor (any version); returns its outputs."""
    out: list[Any] = []
    for kind, ev, now in evs:
        if kind == "batch":
            out += proc.on_batch(st, ev, now)
        elif kind == "bws":
            out += proc.on_bws(st, ev, now)
        elif kind == "pain":
            out += proc.on_pain(st, ev, now)
        else:
            out += proc.on_tick(st, now)
    return out


def config() -> Any:
    from kneeload.worker.athlete import WorkerConfig

    return WorkerConfig(day_grace_s=60, publish_interval_s=5, idle_close_s=0)


def write() -> None:
    """Save the state and chunks of the first CUT events (run with the old worker)."""
    from kneeload.worker.athlete import AthleteProcessor, new_state

    cfg = config()
    chunks: dict[str, bytes] = {}
    proc = AthleteProcessor(cfg, chunks)
    st = new_state("a1", cfg)
    proc.on_registry(st, athlete_record("a1", "t1"))
    feed(proc, st, events()[:CUT])
    assert isinstance(st, dict), "run this with the old worker (see the module doc)"
    doc = {"state": st, "chunks": {k: v.decode() for k, v in chunks.items()}}
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_bytes(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))


if __name__ == "__main__":
    write()
