"""A database migrated with `kneeload migrate` and filled through the sink's writer with
events in the schemas' shapes (the same path `kneeload sink` takes from Kafka)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from kneeload.contracts import dumps, examples_dir
from kneeload.settings import Settings
from kneeload.storage import migrate
from kneeload.topics import (
    ALERTS,
    CORRELATIONS,
    DAILY_LOAD,
    LOAD_MINUTE,
    LOAD_SAMPLES,
    PAIN_REPORTS,
    PAIN_RESPONSES,
    REGISTRY_ASSIGNMENTS,
    REGISTRY_ATHLETES,
    SESSIONS,
    UNIT_STATUS,
)

TEAM, CLINIC, ATHLETE, UNIT = "team-dash", "clinic-dash", "ath-dash-1", "lever-dash-1"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def example(name: str, file: str) -> dict[str, Any]:
    return dict(json.loads((examples_dir(name) / file).read_text()))


def events(now: datetime) -> list[tuple[str, Any]]:
    today = now.date()
    out: list[tuple[str, Any]] = []
    for i, aid in enumerate([ATHLETE, "ath-dash-2"]):
        out.append(
            (
                REGISTRY_ATHLETES,
                {
                    "athlete_id": aid,
                    "team_id": TEAM,
                    "body_mass_kg": 62.0,
                    "time_zone": "UTC",
                    "display_name": f"Runner {i + 1}",
                    "active": True,
                    "updated_at": iso(now - timedelta(days=60)),
                    "calibration": None,
                },
            )
        )
    out.append(
        (
            REGISTRY_ASSIGNMENTS,
            {
                "unit_id": UNIT,
                "clinic_id": CLINIC,
                "athlete_id": ATHLETE,
                "since": iso(now - timedelta(days=30)),
                "updated_at": iso(now - timedelta(days=30)),
            },
        )
    )
    for k in range(14):  # two weeks of daily load, sessions on the LEVER unit, pain reports
        d: date = today - timedelta(days=13 - k)
        start = datetime(d.year, d.month, d.day, 7, 0, tzinfo=UTC)
        load, acwr = 3000.0 + 150 * k, 0.7 + 0.07 * k
        m = {"acute": load, "chronic": load / acwr, "acwr": acwr, "reason": None}
        out.append(
            (
                DAILY_LOAD,
                {
                    "id": f"{ATHLETE}:{d}:pfj_load_mpa_s",
                    "athlete_id": ATHLETE,
                    "team_id": TEAM,
                    "date": d.isoformat(),
                    "metric": "pfj_load_mpa_s",
                    "load": load,
                    "status": "final",
                    "revision": 1,
                    "corrected": False,
                    "methods": {"ewma": m, "rac": m, "rau": m},
                    "week_over_week_pct": None,
                    "monotony": None,
                    "strain": None,
                    "atl": None,
                    "ctl": None,
                    "tsb": None,
                },
            )
        )
        sid = f"s-{ATHLETE}-{d}"
        out.append(
            (
                SESSIONS,
                {
                    "session_id": sid,
                    "athlete_id": ATHLETE,
                    "team_id": TEAM,
                    "unit_id": UNIT,
                    "start_time": iso(start),
                    "end_time": iso(start + timedelta(minutes=30)),
                    "duration_s": 1800.0,
                    "distance_m": 6000.0,
                    "mean_cadence_spm": 172.0,
                    "mean_speed_mps": 3.3,
                    "mean_bws_pct": 10.0 + k,
                    "peak_pfj_stress_mpa": 9.5,
                    "pfj_load_mpa_s": load,
                    "pfj_load_per_km": load / 6,
                    "samples": 1800,
                    "coverage_pct": 99.0,
                    "status": "closed",
                    "revision": 1,
                    "estimate": True,
                },
            )
        )
        minute = example("minute_load", "valid-minute.json") | {
            "id": f"{ATHLETE}:{int(start.timestamp())}",
            "athlete_id": ATHLETE,
            "team_id": TEAM,
            "session_id": sid,
            "unit_id": UNIT,
            "minute": iso(start),
            "mean_bws_pct": 10.0 + k,
        }
        out.append((LOAD_MINUTE, minute))
        out.append(
            (
                PAIN_REPORTS,
                {
                    "report_id": f"p-{d}-after",
                    "athlete_id": ATHLETE,
                    "team_id": TEAM,
                    "time": iso(start + timedelta(minutes=40)),
                    "pain_nrs": 2 + k % 4,
                    "context": "after",
                    "session_id": sid,
                },
            )
        )
        out.append(
            (
                PAIN_REPORTS,
                {
                    "report_id": f"p-{d}-morning",
                    "athlete_id": ATHLETE,
                    "team_id": TEAM,
                    "time": iso(start + timedelta(days=1, hours=-1)),
                    "pain_nrs": 1 + k % 3,
                    "context": "next_morning",
                    "session_id": None,
                },
            )
        )
    out.append(
        (
            PAIN_RESPONSES,
            {
                "id": "p-resp-1:lever",
                "report_id": f"p-{today}-after",
                "athlete_id": ATHLETE,
                "team_id": TEAM,
                "session_id": None,
                "time": iso(now - timedelta(hours=2)),
                "pain_nrs": 6,
                "context": "after",
                "baseline_nrs": 2.0,
                "classification": "stop",
                "reason": "above_limit",
                "preset": "lever",
                "bws_suggestion": {
                    "unit_id": UNIT,
                    "action": "step_up",
                    "current_bws_pct": 15,
                    "suggested_bws_pct": 25,
                    "reason": "pain_above_limit",
                },
            },
        )
    )
    for lag in (0, 1):
        c = example("correlation", "valid-athlete.json") | {
            "id": f"corr-{ATHLETE}-{lag}",
            "athlete_id": ATHLETE,
            "team_id": TEAM,
            "lag_days": lag,
            "time": iso(now - timedelta(hours=1)),
        }
        out.append((CORRELATIONS, c))
    for j, t in enumerate([now - timedelta(minutes=30), now - timedelta(seconds=20)]):
        out.append(
            (
                UNIT_STATUS,
                {
                    "id": f"{UNIT}:{iso(t)}",
                    "unit_id": UNIT,
                    "clinic_id": CLINIC,
                    "time": iso(t),
                    "online": True,
                    "in_use": j == 1,
                    "athlete_id": ATHLETE,
                    "bws_pct": 20.0,
                    "date": t.date().isoformat(),
                    "minutes_used_today": 95.0,
                    "last_seen": iso(t),
                },
            )
        )
    live = now - timedelta(seconds=60)
    out.append(
        (
            LOAD_SAMPLES,
            {
                "batch_id": "live-1",
                "athlete_id": ATHLETE,
                "team_id": TEAM,
                "session_id": "s-live",
                "estimate": True,
                "samples": [
                    {
                        "record_id": f"live-1:{i}",
                        "time": iso(live + timedelta(seconds=i)),
                        "speed_mps": 3.0,
                        "cadence_spm": 168.0 + i % 4,
                        "ground_contact_ms": 250.0,
                        "ground_contact_estimated": False,
                        "grade_pct": 0.0,
                        "bws_pct": 20.0,
                        "unit_id": UNIT,
                        "peak_pfj_stress_mpa": 7.5 + i % 3 * 0.1,
                        "pfj_impulse_mpa_s": 4.0,
                        "late": False,
                    }
                    for i in range(50)
                ],
            },
        )
    )
    for n, kind in enumerate(["acwr_high", "pain_high", "unit_offline"]):
        out.append(
            (
                ALERTS,
                {
                    "alert_id": f"dash-{kind}",
                    "dedup_key": f"dash-{kind}",
                    "kind": kind,
                    "severity": "critical" if kind == "pain_high" else "warning",
                    "athlete_id": None if kind == "unit_offline" else ATHLETE,
                    "unit_id": UNIT if kind == "unit_offline" else None,
                    "team_id": None if kind == "unit_offline" else TEAM,
                    "clinic_id": CLINIC if kind == "unit_offline" else None,
                    "event_time": iso(now - timedelta(hours=3 - n)),
                    "message": f"{kind} (test)",
                    "values": {"n": n},
                },
            )
        )
    return out  # fmt: skip


async def _write(url: str, evs: Iterable[tuple[str, Any]]) -> Any:
    from kneeload.storage.writer import Message, Writer, decode

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        w = Writer(c, "test-dashboards")
        await w.setup()
        msgs, dead = [], []
        for i, (topic, doc) in enumerate(evs):
            m = Message(topic, 0, i, None, dumps(doc), "dashboards." + topic)
            bad = decode(m, "all")
            (dead if bad is not None else msgs).append(bad if bad is not None else m)
        assert not dead, dead
        return await w.write(msgs, dead)


@pytest.fixture(scope="session")
def filled_db(settings: Settings) -> str:
    migrate(settings.database_url, settings)
    asyncio.run(_write(settings.database_url, events(datetime.now(UTC))))
    return settings.database_url
