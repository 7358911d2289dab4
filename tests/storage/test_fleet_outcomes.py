"""Outcomes by unit and clinic on the real database: sessions, next-morning pain responses
and pain alert episodes written through the sink's writer, read back from the public views
with polars through ADBC (kneeload.fleet.frames), figures by kneeload.core.outcomes.

Clinic fo-c1: unit fo-u1 with five athletes, fo-u2 with two; clinic fo-c2: fo-u3 with one.
Each fo-u1 athlete runs on days 0, 7, 14, 21, 28 (08:00 UTC from 2 March 2026): athletes
0–2 step BWS 25 → 5 % (reached on day 28), 3–4 hold 25 → 15 % (still above: censored at
28 days); estimated PFJ load per km 100·(k+1) MPa·s/km; next-morning pain 4/10 on day 1
and 2/10 on day 29 (change −2); athlete 0 has one pain_high episode with two changes
(opened, escalated) on day 10: one flare. With min n = 5: fo-u1's figures are shown and
ranked; fo-u2 (n = 2) is withheld and never ranked; clinic fo-c1 has 7 athletes
(PFJ per km 100, 100, 200, 200, 300, 400, 500: median 200)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from kneeload.core.outcomes import OutcomeConfig
from kneeload.fleet.frames import read_fleet
from kneeload.fleet.outcomes_io import outcome_frame, outcomes_by_group

from . import events as ev

T0 = dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC)
C1, C2 = "fo-c1", "fo-c2"


def day(n: float, h: float = 0.0) -> dt.datetime:
    return T0 + dt.timedelta(days=n, hours=h)


def _events() -> Iterable[tuple[str, Any]]:
    for unit, clinic in (("fo-u1", C1), ("fo-u2", C1), ("fo-u3", C2)):
        yield "registry.assignments", ev.assignment(unit, clinic, None, day(-5))
    athletes = [(f"fo-a{k}", "fo-u1", k) for k in range(5)]
    athletes += [("fo-b0", "fo-u2", 0), ("fo-b1", "fo-u2", 1), ("fo-c0", "fo-u3", 0)]
    for aid, unit, k in athletes:
        for i in range(5):
            bws = 25.0 - 5 * i if k < 3 else 25.0 - 2.5 * i
            yield "sessions", ev.session(f"{aid}-s{i}", aid, day(7 * i), load=600.0 * (k + 1),
                                         unit=unit, bws=bws)  # fmt: skip
        for n, (d, nrs) in enumerate(((1, 4), (29, 2))):
            r = ev.pain_response(f"{aid}-p{n}", aid, day(d, -7), nrs=nrs, unit=None)
            yield "pain.responses", r | {"context": "next_morning"}
    # an open session and another athlete's pain are not read
    yield "sessions", ev.session("fo-a0-open", "fo-a0", day(35), load=1.0, unit="fo-u1",
                                 bws=0.0, status="open")  # fmt: skip
    yield "pain.responses", ev.pain_response("fo-x-p", "fo-x", day(3), nrs=9, unit=None)
    for n, sev in enumerate(("warning", "critical")):
        a = ev.alert(f"fo-flare-{n}", "fo-a0", day(10, n), kind="pain_high")
        a["severity"] = sev
        a["dedup_key"] = "fo-flare"
        a["values"] = {"episode_id": "fo-flare-ep",
                       "episode_transition": "opened" if n == 0 else "escalated"}  # fmt: skip
        yield "alerts", a


def test_outcomes_by_unit_and_clinic(
    write: Callable[[Iterable[tuple[str, Any]]], Any], db: str
) -> None:
    write(list(_events()))
    f = read_fleet(db, [C1, C2], dt.date(2026, 3, 1), dt.date(2026, 4, 30))
    assert f.rows["sessions"] == 40 and f.rows["pain"] == 16 and f.rows["flares"] == 1, f.rows
    period = (dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
    units, clinics, per_athlete = outcomes_by_group(
        f.sessions, f.pain, f.flares, period, OutcomeConfig(min_n=5)
    )
    u = {g.group_id: g for g in units}
    u1 = u["fo-u1"]
    assert (u1.athletes, u1.sessions, u1.pain_n, u1.pain_change_nrs) == (5, 25, 5, -2.0)
    assert (u1.bws_n, u1.bws_reached, u1.bws_median_days, u1.bws_reached_share) == (
        5, 3, 28.0, 0.6)  # fmt: skip
    assert (u1.pfj_load_per_km_median, u1.flares, u1.flares_per_athlete) == (300.0, 1, 0.2)
    u2 = u["fo-u2"]
    assert (u2.athletes, u2.pain_change_nrs, u2.pfj_load_per_km_median, u2.flares) == (
        2, None, None, None)  # fmt: skip
    assert u2.withheld() == ("pain", "bws", "pfj", "flares")
    c = {g.group_id: g for g in clinics}
    assert (c[C1].athletes, c[C1].pfj_load_per_km_median, c[C2].athletes) == (7, 200.0, 1)
    table = outcome_frame("unit", units)
    ranks = dict(zip(table["group_id"], table["rank_pfj_load_per_km"], strict=True))
    assert ranks == {"fo-u1": 1, "fo-u2": None, "fo-u3": None}
    assert len(per_athlete) == 8
