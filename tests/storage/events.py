"""Valid events for the storage tests (shapes from schemas/)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def watch_batch(
    athlete: str,
    start: datetime,
    n: int = 10,
    *,
    batch_id: str,
    device: str = "w-1",
    team: str | None = "team-a",
    session: str | None = None,
) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "athlete_id": athlete,
        "device_id": device,
        "team_id": team,
        "session_id": session,
        "source": "simulator",
        "sub_sport": None,
        "received_at": iso(start),
        "samples": [
            {
                "record_id": f"{device}:{int((start + timedelta(seconds=i)).timestamp() * 1000)}",
                "time": iso(start + timedelta(seconds=i)),
                "cadence_spm": 170 + i % 5,
                "speed_mps": 3.3,
                "ground_contact_ms": 240,
                "heart_rate_bpm": None,
            }
            for i in range(n)
        ],
    }


def load_batch(
    athlete: str,
    start: datetime,
    n: int = 5,
    *,
    batch_id: str,
    team: str | None = "team-a",
    session: str | None = None,
    unit: str | None = None,
    bws: float = 0.0,
) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "athlete_id": athlete,
        "team_id": team,
        "session_id": session,
        "estimate": True,
        "samples": [
            {
                "record_id": f"{batch_id}:{i}",
                "time": iso(start + timedelta(seconds=i)),
                "speed_mps": 3.4,
                "cadence_spm": 172.0,
                "ground_contact_ms": 245.0,
                "ground_contact_estimated": False,
                "grade_pct": 0.0,
                "bws_pct": bws,
                "unit_id": unit,
                "peak_pfj_stress_mpa": 8.0 + i,
                "pfj_impulse_mpa_s": 5.0,
                "late": False,
                "estimated": True,
                "gait": "running",
                "no_estimate_reason": None,
                "no_estimate_detail": None,
                "cadence_used_spm": 172.0,
                "cadence_corrected": False,
                "ground_contact_uncertainty_ms": None,
                "ground_contact_source": "device",
                "step_length_m": 1.186,
                "step_length_estimated": True,
                "vertical_load_bw": 2.4,
                "vertical_load_estimated": True,
            }
            for i in range(n)
        ],
    }


def athlete(
    athlete_id: str, team: str, name: str, updated: datetime, tz: str = "UTC"
) -> dict[str, Any]:
    return {
        "athlete_id": athlete_id,
        "team_id": team,
        "body_mass_kg": 62.0,
        "time_zone": tz,
        "display_name": name,
        "active": True,
        "updated_at": iso(updated),
        "calibration": None,
    }


def assignment(unit: str, clinic: str, athlete_id: str | None, t: datetime) -> dict[str, Any]:
    return {
        "unit_id": unit,
        "clinic_id": clinic,
        "athlete_id": athlete_id,
        "since": iso(t),
        "updated_at": iso(t),
    }


def pain(
    report_id: str,
    athlete_id: str,
    t: datetime,
    nrs: int,
    context: str = "after",
    session: str | None = None,
    team: str | None = "team-a",
) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "athlete_id": athlete_id,
        "team_id": team,
        "time": iso(t),
        "pain_nrs": nrs,
        "context": context,
        "session_id": session,
    }


def session(
    session_id: str,
    athlete_id: str,
    start: datetime,
    *,
    load: float,
    revision: int = 1,
    status: str = "closed",
    unit: str | None = None,
    bws: float | None = None,
    team: str | None = "team-a",
) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "athlete_id": athlete_id,
        "team_id": team,
        "unit_id": unit,
        "start_time": iso(start),
        "end_time": iso(start + timedelta(minutes=30)),
        "duration_s": 1800.0,
        "distance_m": 6000.0,
        "mean_cadence_spm": 172.0,
        "mean_speed_mps": 3.3,
        "mean_bws_pct": bws,
        "peak_pfj_stress_mpa": 9.5,
        "pfj_load_mpa_s": load,
        "pfj_load_per_km": load / 6,
        "samples": 1800,
        "coverage_pct": 99.0,
        "status": status,
        "revision": revision,
        "estimate": True,
        "samples_estimated": 1790,
        "samples_without_estimate": 10,
        "samples_walking": 10,
        "samples_cadence_corrected": 0,
        "samples_contact_estimated": 0,
        "no_estimate_reasons": {"walking": 10},
        "no_estimate_summary": "10 samples without estimate: 10 × walking (96 spm at 1.3 m/s, "
        "0.812 m steps): not estimated with the running model",
        "sources": {"ground_contact_ms": "native"},
    }


def daily(
    athlete_id: str,
    d: date,
    *,
    load: float,
    acwr: float | None,
    revision: int = 1,
    status: str = "final",
    corrected: bool = False,
    metric: str = "pfj_load_mpa_s",
    team: str | None = "team-a",
    pain: tuple[float | None, float | None, str | None] | None = None,
) -> dict[str, Any]:
    """A daily_load event; ``pain`` = the worker's (mean 7 d, mean previous 7 d, trend)."""
    m = {"acute": load, "chronic": load / acwr if acwr else None, "acwr": acwr, "reason": None}
    names = ("pain_mean_7d_nrs", "pain_mean_prev_7d_nrs", "pain_trend")
    trend = {} if pain is None else dict(zip(names, pain, strict=True))
    return trend | {
        "id": f"{athlete_id}:{d}:{metric}",
        "athlete_id": athlete_id,
        "team_id": team,
        "date": d.isoformat(),
        "metric": metric,
        "load": load,
        "status": status,
        "revision": revision,
        "corrected": corrected,
        "methods": {"ewma": m, "rac": m, "rau": m},
        "week_over_week_pct": None,
        "monotony": None,
        "strain": None,
        "atl": None,
        "ctl": None,
        "tsb": None,
    }


def alert(
    alert_id: str,
    athlete_id: str | None,
    t: datetime,
    *,
    unit: str | None = None,
    team: str | None = "team-a",
    clinic: str | None = None,
    kind: str = "acwr_high",
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "dedup_key": alert_id,
        "kind": kind,
        "severity": "warning",
        "athlete_id": athlete_id,
        "unit_id": unit,
        "team_id": team,
        "clinic_id": clinic,
        "event_time": iso(t),
        "message": "test alert",
        "values": {"acwr": 1.6},
    }


def unit_status(
    unit: str,
    clinic: str,
    t: datetime,
    *,
    athlete_id: str | None,
    in_use: bool,
    bws: float | None,
    minutes: float,
    calibration: tuple[int, float, float] | None = None,
) -> dict[str, Any]:
    """A unit_status; ``calibration`` = (samples, bias_pp, mae_pp) of the day when given."""
    cal: dict[str, Any] = {}
    if calibration is not None:
        n, bias, mae = calibration
        cal = {"calibration_samples": n, "support_bias_pp": bias, "support_mae_pp": mae}
    return cal | {
        "id": f"{unit}:{iso(t)}",
        "unit_id": unit,
        "clinic_id": clinic,
        "time": iso(t),
        "online": True,
        "in_use": in_use,
        "athlete_id": athlete_id,
        "bws_pct": bws,
        "date": t.date().isoformat(),
        "minutes_used_today": minutes,
        "last_seen": iso(t),
    }


def pain_response(
    report_id: str,
    athlete_id: str,
    t: datetime,
    *,
    nrs: int,
    unit: str | None,
    team: str | None = "team-a",
) -> dict[str, Any]:
    return {
        "id": f"{report_id}:lever",
        "report_id": report_id,
        "athlete_id": athlete_id,
        "team_id": team,
        "session_id": None,
        "time": iso(t),
        "pain_nrs": nrs,
        "context": "after",
        "baseline_nrs": 2.0,
        "classification": "stop",
        "reason": "above_limit",
        "preset": "lever",
        "preset_source": "LEVER product guidance (attributed to Crossley et al. 2016; source "
        "unconfirmed)",
        "summary": f"STOP: pain during run {nrs}/10 > 6 [LEVER preset]",
        "during_max_nrs": float(nrs),
        "after_max_nrs": None,
        "next_day_nrs": None,
        "next_day_status": "pending",
        "next_day_expected_at": iso(t + timedelta(hours=14)),
        "next_day_due_by": iso(t + timedelta(hours=36)),
        "load_suggestion": {"action": "reduce", "reason": "reduce_after_stop"},
        "bws_suggestion": None
        if unit is None
        else {
            "unit_id": unit,
            "action": "step_up",
            "current_bws_pct": 15,
            "suggested_bws_pct": 25,
            "reason": "pain_above_limit",
        },
    }
