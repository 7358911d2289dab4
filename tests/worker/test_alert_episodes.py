"""The athlete worker publishes alert episodes (no Kafka): opened, escalated, resolved —
never a repeat, and a redelivered report changes nothing."""

from __future__ import annotations

import datetime as dt

from kneeload.contracts import validate
from kneeload.worker.athlete import AthleteProcessor, WorkerConfig, new_state
from kneeload.worker.state import AthleteState

from .helpers import UTC, athlete_record, iso

CFG = WorkerConfig(day_grace_s=60, publish_interval_s=0)
T0 = dt.datetime(2024, 6, 10, 17, 0, tzinfo=UTC)


def _alerts(p: AthleteProcessor, st: AthleteState, rid: str, hours: float, nrs: int) -> list[dict]:
    t = T0 + dt.timedelta(hours=hours)
    rep = {
        "report_id": rid,
        "athlete_id": "a1",
        "time": iso(t),
        "pain_nrs": nrs,
        "context": "after",
    }
    out = [e for topic, _, e in p.on_pain(st, rep, 10**13) if topic == "alerts"]
    for e in out:
        validate("alert", e)
    return out


def test_pain_episode_opened_escalated_resolved_once() -> None:
    p = AthleteProcessor(CFG, {})
    st = new_state("a1", CFG)
    p.on_registry(st, athlete_record("a1", "t1"))
    seen = []
    for rid, h, nrs in [
        ("r1", 0, 5),  # > 4/10: opened (warning)
        ("r2", 1, 5),  # same: nothing
        ("r3", 2, 7),  # > 6/10: escalated (critical)
        ("r4", 30, 5),  # a day later, still above: nothing (the cooldown re-sent this)
        ("r5", 31, 2),  # below: resolved by r5
        ("r6", 32, 1),  # still clear: nothing
    ]:
        seen += [
            (rid, a["values"]["episode_transition"], a["severity"])
            for a in _alerts(p, st, rid, h, nrs)
        ]
    assert seen == [
        ("r1", "opened", "warning"),
        ("r3", "escalated", "critical"),
        ("r5", "resolved", "info"),
    ]
    assert _alerts(p, st, "r3", 2, 7) == []  # redelivered: nothing


def test_episode_ids_are_deterministic_on_replay() -> None:
    runs = []
    for _ in range(2):
        p = AthleteProcessor(CFG, {})
        st = new_state("a1", CFG)
        p.on_registry(st, athlete_record("a1", "t1"))
        runs.append(
            [a["alert_id"] for a in _alerts(p, st, "r1", 0, 5) + _alerts(p, st, "r2", 5, 0)]
        )
    assert runs[0] == runs[1]
    ep = "pain_high:athlete:a1:20240610T170000Z"
    assert runs[0] == [f"{ep}:0", f"{ep}:resolved"]


def test_unit_offline_episode_resolves_when_heard_again() -> None:
    from kneeload.worker.fleet import UnitProcessor, new_unit

    f = UnitProcessor(unit_timeout_s=60, status_interval_s=30, bws_stale_s=30)
    u = new_unit("u7")

    def beat(minute: int, now_ms: int) -> list[dict]:
        t = iso(T0 + dt.timedelta(minutes=minute))
        rec = {"unit_id": "u7", "clinic_id": "c1", "time": t, "kind": "heartbeat"}
        return [e for topic, _, e in f.on_telemetry(u, rec, now_ms) if topic == "alerts"]

    def tick(now_ms: int) -> list[dict]:
        return [e for topic, _, e in f.on_tick(u, now_ms) if topic == "alerts"]

    def tr(evs: list[dict]) -> list[str]:
        for e in evs:
            validate("alert", e)
        return [e["values"]["episode_transition"] for e in evs]

    assert beat(0, 1_000) == []
    assert tr(tick(62_000)) == ["opened"]
    assert tick(200_000) == []  # still silent: nothing more
    back = beat(5, 300_000)
    assert tr(back) == ["resolved"] and back[0]["unit_id"] == "u7"
    assert back[0]["clinic_id"] == "c1" and back[0]["severity"] == "info"
    assert beat(6, 310_000) == []
    assert tr(tick(400_000)) == ["opened"]  # a new silence: a new episode


def test_rebuild_restores_episodes_from_stored_changes() -> None:
    """kneeload rebuild-state: an open episode stays open (a repeat raises nothing), a
    resolved one is closed (the next firing opens a new episode)."""
    from kneeload.worker.rebuild import _stored_episodes

    p = AthleteProcessor(CFG, {})
    st = new_state("a1", CFG)
    p.on_registry(st, athlete_record("a1", "t1"))
    stored = _alerts(p, st, "r1", 0, 5) + _alerts(p, st, "r2", 1, 7)  # opened, escalated
    rows = [
        ("a1", a["kind"], a["dedup_key"], a["values"]["episode_transition"],
         dt.datetime.fromisoformat(a["event_time"]), a["severity"])
        for a in stored
    ]  # fmt: skip

    class _Q:
        def fetchall(self) -> list[tuple]:
            return rows

    eps = _stored_episodes(lambda _sql: _Q())
    fresh = new_state("a1", CFG)
    p.on_registry(fresh, athlete_record("a1", "t1"))
    fresh.episodes = eps["a1"]
    cond = "pain_high:athlete:a1"
    live = {k: v for k, v in st.episodes[cond].items() if k != "last_event_id"}
    assert {k: v for k, v in eps["a1"][cond].items() if k != "last_event_id"} == live
    assert _alerts(p, fresh, "r3", 2, 7) == []  # still open at critical: nothing
    assert [a["values"]["episode_transition"] for a in _alerts(p, fresh, "r4", 3, 1)] == [
        "resolved"
    ]
