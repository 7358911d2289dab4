"""What the platform should find in a scenario, computed straight from the simulator.

The simulator knows every sample it will send, so the demo (and its tests) can work
out, with the same ``kneeload.core`` functions the worker uses, each athlete's daily
estimated PFJ load and EWMA ACWR. This is the reference the summary compares the
pipeline's numbers with; it never replaces them.

The per-sample duration is the gap to the previous sample, capped at ``max_gap_s``
(a pause is not running) — the worker's own rule may differ slightly, so comparisons
allow a tolerance.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from kneeload.core.acwr import DailyAcwr, acwr_series
from kneeload.core.pfj import estimate_pfj_sample, pfj_sample_load_mpa_s
from kneeload.demo.sim import Scenario, SessionPlan

__all__ = ["ExpectedAthlete", "expected", "session_pfj_load"]


def session_pfj_load(
    plan: SessionPlan, max_gap_s: float = 5.0, body_mass_kg: float | None = None
) -> float:
    """Estimated PFJ load of a session (MPa·s), summed sample by sample with kneeload.core."""
    smp = plan.samples()
    mass = body_mass_kg if body_mass_kg is not None else plan.athlete.body_mass_kg
    dts = np.minimum(np.diff(smp.t, prepend=smp.t[0] - 1.0), max_gap_s)
    total = 0.0
    for v, c, gc, g, bws, d in zip(
        smp.speed_mps.tolist(),
        smp.cadence_spm.tolist(),
        smp.ground_contact_ms.tolist(),
        smp.grade_pct.tolist(),
        smp.bws_pct.tolist(),
        dts.tolist(),
        strict=True,
    ):
        s = estimate_pfj_sample(v, c, mass, gc, g, bws)
        total += pfj_sample_load_mpa_s(s.pfj_impulse_per_step_mpa_s, c, d)
    return total


@dataclass(frozen=True)
class ExpectedAthlete:
    """Daily loads and ACWR series of one athlete over the scenario's local days."""

    athlete_id: str
    days: list[dt.date]
    loads: list[float]
    series: list[DailyAcwr]

    def acwr(self, day: dt.date) -> float | None:
        return self.series[self.days.index(day)].acwr_ewma

    @property
    def final_acwr(self) -> float | None:
        return self.series[-1].acwr_ewma


def expected(
    sc: Scenario, include_late: bool = True, athletes: set[str] | None = None
) -> dict[str, ExpectedAthlete]:
    """Expected daily PFJ load and ACWR per athlete (``include_late``: with the FIT upload)."""
    per_day: dict[str, dict[dt.date, float]] = defaultdict(lambda: defaultdict(float))
    for s in sc.sessions:
        aid = s.athlete.athlete_id
        if athletes is not None and aid not in athletes:
            continue
        if s.delivery == "fit_late" and not include_late:
            continue
        per_day[aid][s.local_date()] += session_pfj_load(s)
    out = {}
    for a in sc.athletes:
        if athletes is not None and a.athlete_id not in athletes:
            continue
        tz = ZoneInfo(a.time_zone)
        first = sc.config.start.astimezone(tz).date()
        last = sc.config.end.astimezone(tz).date()
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        loads = [per_day[a.athlete_id].get(d, 0.0) for d in days]
        # the platform's series starts at the athlete's first day with data
        k = next((i for i, x in enumerate(loads) if x > 0), 0)
        days, loads = days[k:], loads[k:]
        out[a.athlete_id] = ExpectedAthlete(
            a.athlete_id, days, loads, acwr_series(loads, start=days[0])
        )
    return out
