"""The weekly pain trend on the worker's daily_load rows (no Kafka): the numbers and label of
core.pain, the same the pain_trend_worsening alert used, refreshed by reports and, at the
day's rollover, aged out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kneeload.contracts import validate
from kneeload.worker.athlete import AthleteProcessor, WorkerConfig, new_state
from kneeload.worker.state import AthleteState

from .helpers import UTC, athlete_record, batches, iso, samples

CFG = WorkerConfig(day_grace_s=60, publish_interval_s=0)
FAR = 10**13  # a processing time far after the data: idle, and no rollover of 2024's days


def _days(out: list[Any]) -> dict[str, dict[str, Any]]:
    """The last daily_load row published per date (each checked against the schema)."""
    rows: dict[str, dict[str, Any]] = {}
    for topic, _, ev in out:
        if topic == "daily.load":
            validate("daily_load", ev)
            rows[ev["date"]] = ev
    return rows


def _trend(row: dict[str, Any]) -> tuple[Any, Any, Any]:
    return row["pain_mean_7d_nrs"], row["pain_mean_prev_7d_nrs"], row["pain_trend"]


def _trained(tz: str = "UTC") -> tuple[AthleteProcessor, AthleteState]:
    """Runs on 3 and 14 June 2024: rows for the days between (the rest days carry load 0)."""
    p = AthleteProcessor(CFG, {})
    st = new_state("a1", CFG)
    p.on_registry(st, athlete_record("a1", "t1", tz=tz))
    for day, sid in ((3, "s1"), (14, "s2")):
        start = dt.datetime(2024, 6, day, 17, 0, tzinfo=UTC)
        for b in batches("a1", "t1", samples(start, 600, tag=sid), session_id=sid):
            p.on_batch(st, b, 0)
    p.on_tick(st, FAR)
    return p, st


def _pain(
    p: AthleteProcessor, st: AthleteState, rid: str, t: dt.datetime, nrs: int, ctx: str
) -> list[Any]:
    rep = {"report_id": rid, "athlete_id": "a1", "time": iso(t), "pain_nrs": nrs, "context": ctx}
    return p.on_pain(st, rep, FAR)


def test_rows_carry_cores_trend_and_agree_with_the_alert() -> None:
    p, st = _trained()
    assert set(st.days) >= {f"2024-06-{d}" for d in range(10, 15)}  # older ones are pruned
    out = _pain(p, st, "r1", dt.datetime(2024, 6, 4, 7, 0, tzinfo=UTC), 2, "next_morning")
    out += _pain(p, st, "r2", dt.datetime(2024, 6, 12, 17, 20, tzinfo=UTC), 5, "during")
    out += _pain(p, st, "r3", dt.datetime(2024, 6, 12, 19, 0, tzinfo=UTC), 9, "after")  # no count
    out += _pain(p, st, "r4", dt.datetime(2024, 6, 13, 7, 0, tzinfo=UTC), 4, "next_morning")
    trend = [e for _, _, e in out if e.get("kind") == "pain_trend_worsening"]
    rows = _days(p.on_tick(st, FAR))
    # hand-computed: 13 June → this week 7–13 June {5, 4} = 4.5, last week 31 May–6 June {2}
    r13 = rows["2024-06-13"]
    assert _trend(r13) == (4.5, 2.0, "worsening")
    # the alert opened on 12 June's report ({5} against {2}): the numbers of 12 June's row
    r12 = rows["2024-06-12"]
    assert [a["values"]["episode_transition"] for a in trend] == ["opened"]
    assert trend[0]["values"]["this_week_mean_nrs"] == r12["pain_mean_7d_nrs"] == 5.0
    assert trend[0]["values"]["last_week_mean_nrs"] == r12["pain_mean_prev_7d_nrs"] == 2.0
    assert r12["pain_trend"] == "worsening"
    # 10 June: the 4 June report is 6 days back (this week); on 11 June 7 days (last week)
    r10, r11 = rows["2024-06-10"], rows["2024-06-11"]
    assert _trend(r10) == (2.0, None, None)
    assert _trend(r11) == (None, 2.0, None)
    # 14 June (8–14 June against 1–7 June) as 13 June
    assert rows["2024-06-14"]["pain_trend"] == "worsening"
    assert r13["corrected"] is True  # the day was final: the trend is a correction of it


def test_a_quiet_week_ages_out_at_the_rollover() -> None:
    p, st = _trained()
    _pain(p, st, "r1", dt.datetime(2024, 6, 13, 7, 0, tzinfo=UTC), 3, "next_morning")
    p.on_tick(st, FAR)
    # the next report-free days pass in processing time: today's row appears (load 0) …
    now = dt.datetime(2024, 6, 20, 9, 0, tzinfo=UTC)
    rows = _days(p.on_tick(st, int(now.timestamp() * 1000)))
    today = rows["2024-06-20"]
    assert today["load"] == 0.0 and today["status"] == "provisional"
    assert _trend(today) == (None, 3.0, None)
    assert set(rows) == {f"2024-06-{d}" for d in range(15, 21)}  # the rest days between
    # … once, and not past the two weeks the report counts in
    assert p.on_tick(st, int(now.timestamp() * 1000) + 60_000) == []
    later = dt.datetime(2024, 6, 27, 9, 0, tzinfo=UTC)
    assert "2024-06-27" not in _days(p.on_tick(st, int(later.timestamp() * 1000)))
    assert "2024-06-27" not in st.days


@pytest.mark.parametrize("tz", ["Pacific/Auckland", "America/Los_Angeles"])
def test_days_are_the_athletes_local_days(tz: str) -> None:
    p, st = _trained(tz)
    # 20:00 UTC on 10 June is already 11 June in Auckland, still 10 June in Los Angeles
    _pain(p, st, "r1", dt.datetime(2024, 6, 10, 20, 0, tzinfo=UTC), 6, "during")
    rows = _days(p.on_tick(st, FAR))
    first = "2024-06-11" if tz == "Pacific/Auckland" else "2024-06-10"
    assert min(d for d, r in rows.items() if r["pain_mean_7d_nrs"] == 6.0) == first


def test_an_athlete_who_only_reports_pain_gets_the_trend_on_todays_row() -> None:
    """An athlete whose first data are pain reports (onboarded while injured, not running yet)
    had no daily row, so the coach's overview showed no trend for exactly the athlete it
    matters most for. Today's row (load 0) now carries it from the first rollover."""
    p = AthleteProcessor(CFG, {})
    st = new_state("a1", CFG)
    p.on_registry(st, athlete_record("a1", "t1"))
    now = dt.datetime(2024, 6, 20, 9, 0, tzinfo=UTC)
    _pain(p, st, "r1", dt.datetime(2024, 6, 18, 7, 0, tzinfo=UTC), 6, "next_morning")
    _pain(p, st, "r2", dt.datetime(2024, 6, 20, 7, 0, tzinfo=UTC), 4, "next_morning")
    rows = _days(p.on_tick(st, int(now.timestamp() * 1000)))
    assert set(rows) == {"2024-06-20"}
    today = rows["2024-06-20"]
    assert today["load"] == 0.0 and _trend(today) == (5.0, None, None)
    assert p.on_tick(st, int(now.timestamp() * 1000) + 60_000) == []  # once a day
