"""The worker's pain responses (no Kafka): next-day value, pending with its expected time,
"after" reports never standing in for the next day, preset and source on every response."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kneeload.contracts import validate
from kneeload.worker.athlete import AthleteProcessor, WorkerConfig, new_state
from kneeload.worker.state import AthleteState

from .helpers import UTC, athlete_record, batches, iso, samples

CFG = WorkerConfig(day_grace_s=60, publish_interval_s=0)


def _run(
    start: dt.datetime, minutes: int, tz: str = "UTC"
) -> tuple[AthleteProcessor, AthleteState]:
    p = AthleteProcessor(CFG, {})
    st = new_state("a1", CFG)
    p.on_registry(st, athlete_record("a1", "t1", tz=tz))
    for b in batches("a1", "t1", samples(start, minutes * 60), session_id="s1"):
        p.on_batch(st, b, 0)
    p.on_tick(st, 10**13)  # idle: the session closes
    return p, st


def _pain(
    p: AthleteProcessor, st: AthleteState, rid: str, t: dt.datetime, nrs: int, ctx: str
) -> dict[str, Any]:
    rep = {"report_id": rid, "athlete_id": "a1", "time": iso(t), "pain_nrs": nrs, "context": ctx}
    out = p.on_pain(st, rep, 10**13)
    resp = [e for topic, _, e in out if topic == "pain.responses"]
    for r in resp:
        validate("pain_response", r)  # the contract holds for every response
    # the report's own response, then its session's other reports re-classified
    assert resp[0]["report_id"] == rid and all(r["report_id"] != rid for r in resp[1:])
    return resp[0]


def test_after_report_of_5_then_1_next_morning_is_never_stop() -> None:
    start = dt.datetime(2024, 6, 10, 17, 0, tzinfo=UTC)
    p, st = _run(start, 30)
    end = start + dt.timedelta(minutes=30) - dt.timedelta(seconds=1)
    r = _pain(p, st, "p-during", start + dt.timedelta(minutes=20), 3, "during")
    assert r["classification"] == "acceptable" and r["next_day_status"] == "pending"
    r = _pain(p, st, "p-after", end + dt.timedelta(hours=1), 5, "after")
    assert r["classification"] != "stop", r["summary"]
    assert r["after_max_nrs"] == 5 and r["next_day_nrs"] is None
    assert r["next_day_status"] == "pending"
    assert r["next_day_expected_at"] == "2024-06-11T08:00:00Z"  # next local morning
    assert r["next_day_due_by"] == iso(end + dt.timedelta(hours=36))
    assert r["load_suggestion"]["action"] == "hold"  # wait for the next-day value
    r = _pain(p, st, "p-morning", dt.datetime(2024, 6, 11, 7, 30, tzinfo=UTC), 1, "next_morning")
    assert r["classification"] == "acceptable" and r["reason"] == "within_limits"
    assert r["next_day_nrs"] == 1 and r["next_day_status"] == "received"
    assert r["load_suggestion"]["action"] == "progress"
    assert r["preset"] == "lever" and "LEVER product guidance" in r["preset_source"]
    assert "[LEVER preset: LEVER product guidance" in r["summary"]


def test_morning_run_with_next_morning_report_at_24_5_h() -> None:
    start = dt.datetime(2024, 6, 10, 6, 0, tzinfo=UTC)
    p, st = _run(start, 60)
    end = start + dt.timedelta(minutes=60) - dt.timedelta(seconds=1)
    r = _pain(p, st, "p-morning", end + dt.timedelta(hours=24.5), 4, "next_morning")
    assert r["session_id"] == "s1"  # found within the 36 h window (24 h missed it)
    assert r["next_day_nrs"] == 4 and r["next_day_status"] == "received"
    assert r["classification"] == "caution" and r["reason"] == "not_back_to_baseline"


def test_pain_above_the_limit_reduces_load_off_unit() -> None:
    start = dt.datetime(2024, 6, 10, 17, 0, tzinfo=UTC)
    p, st = _run(start, 30)
    r = _pain(p, st, "p-during", start + dt.timedelta(minutes=20), 6, "during")
    assert r["classification"] == "caution" and r["reason"] == "pain_during_above_limit"
    assert r["load_suggestion"] == {"action": "reduce", "reason": "reduce_after_caution"}
    assert r["bws_suggestion"] is None  # not on a unit


def test_rest_report_without_session_has_no_next_day_status() -> None:
    p, st = _run(dt.datetime(2024, 6, 10, 17, 0, tzinfo=UTC), 5)
    r = _pain(p, st, "p-rest", dt.datetime(2024, 6, 20, 7, 0, tzinfo=UTC), 1, "rest")
    assert r["session_id"] is None and r["next_day_status"] is None
    assert r["load_suggestion"] is None and r["preset_source"]


def test_last_responses_do_not_depend_on_arrival_order() -> None:
    """The next-morning report before or after the session closes, the "after" report
    before or after the session's samples: each report's last response is the same (it
    stayed ``pending`` when the next-morning report came after the session had closed —
    found by make chaos)."""
    start = dt.datetime(2024, 6, 10, 17, 0, tzinfo=UTC)
    end = start + dt.timedelta(minutes=30) - dt.timedelta(seconds=1)
    reps = [
        {"report_id": "r-after", "athlete_id": "a1", "time": iso(end + dt.timedelta(hours=1)),
         "pain_nrs": 4, "context": "after"},
        {"report_id": "r-morning", "athlete_id": "a1", "pain_nrs": 3, "context": "next_morning",
         "time": iso(dt.datetime(2024, 6, 11, 7, 30, tzinfo=UTC))},
    ]  # fmt: skip

    def last_responses(order: list[str]) -> dict[str, dict[str, Any]]:
        p = AthleteProcessor(CFG, {})
        st = new_state("a1", CFG)
        p.on_registry(st, athlete_record("a1", "t1"))
        out: list[Any] = []
        for step in order:
            if step == "samples":
                for b in batches("a1", "t1", samples(start, 30 * 60), session_id="s1"):
                    out += p.on_batch(st, b, 0)
            elif step == "close":
                out += p.on_tick(st, 10**13)
            else:
                out += p.on_pain(st, next(r for r in reps if r["report_id"] == step), 10**13)
        return {e["report_id"]: e for t, _, e in out if t == "pain.responses"}

    orders = [
        ["samples", "close", "r-after", "r-morning"],
        ["samples", "r-after", "close", "r-morning"],
        ["samples", "r-after", "r-morning", "close"],
        ["r-after", "samples", "r-morning", "close"],
        ["r-after", "r-morning", "samples", "close"],
    ]
    results = [last_responses(o) for o in orders]
    assert all(r == results[0] for r in results[1:])
    after = results[0]["r-after"]
    assert after["next_day_status"] == "received" and after["next_day_nrs"] == 3
    assert after["session_id"] == "s1"
