"""A simulated session as the FIT file its watch would sync (planted situation e)."""

from __future__ import annotations

import datetime as dt

from kneeload.demo.fitwriter import FitRecord, encode_activity
from kneeload.demo.sim import SessionPlan

__all__ = ["session_fit"]


def session_fit(plan: SessionPlan) -> bytes:
    """The session's samples encoded as a FIT activity (timestamps rounded to the second)."""
    smp = plan.samples()
    recs = [
        FitRecord(
            time=dt.datetime.fromtimestamp(round(t), dt.UTC),
            cadence_spm=c,
            speed_mps=v,
            ground_contact_ms=gc,
            vertical_oscillation_mm=vo,
            vertical_ratio_pct=vr,
            step_length_mm=sl,
            heart_rate_bpm=int(hr),
            grade_pct=g,
            distance_m=d,
        )
        for t, c, v, gc, vo, vr, sl, hr, g, d in zip(
            smp.t.tolist(),
            smp.cadence_spm.tolist(),
            smp.speed_mps.tolist(),
            smp.ground_contact_ms.tolist(),
            smp.vertical_oscillation_mm.tolist(),
            smp.vertical_ratio_pct.tolist(),
            smp.step_length_mm.tolist(),
            smp.heart_rate_bpm.tolist(),
            smp.grade_pct.tolist(),
            smp.distance_m.tolist(),
            strict=True,
        )
    ]
    serial = int(plan.device_id.rsplit("-", 1)[-1]) if plan.device_id[-1].isdigit() else 1
    return encode_activity(
        recs, sub_sport=plan.sub_sport, serial_number=serial, created=recs[-1].time
    )
