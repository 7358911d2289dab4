"""The demo's simulator: a running team and a LEVER clinic over weeks of event time.

Pure and deterministic: the same :class:`SimConfig` (seed, end time, sizes) gives
the same scenario, byte for byte. Nothing here does I/O; the orchestration
(:mod:`kneeload.demo.run`) sends what it produces through the real ingest paths.

What is simulated
-----------------
* A team of runners (default 12), each with their own body mass, time zone, habitual
  easy speed, cadence at that speed and its coupling to speed (spm per m/s), ground
  contact time and its fall with speed, vertical oscillation, heart-rate range and
  weekly schedule (4–5 runs: easy, intervals, hills with grade, a long run). The long
  run follows a coach's plan (:func:`long_run_factor`): it progresses by ≤ 10 % on the
  longest of the previous 30 days; the one planned spike is situation (a).
* Running dynamics per sample: warm-up and cool-down ramps, interval reps, hill
  repeats with grade (slower uphill, slightly higher cadence), AR(1) pace noise,
  cadence–speed coupling, contact time ∝ speed^−k (k per athlete), step length,
  vertical oscillation and ratio, heart rate lagging intensity with cardiac drift,
  cumulative distance; pauses (traffic lights) leave gaps in outdoor runs.
* Recording rate is irregular, as in reality (docs/science.md §6): older weeks use
  "smart recording" (1–5 s apart, ~2.2 s mean), recent weeks 1 Hz.
* A clinic of LEVER body-weight-support treadmills (default 6): the rehab athletes run
  on their unit 2–3 times a week; each session has BWS setpoints of 10–20 % that change
  mid-session (progressing over the weeks), telemetry every 5 s (belt speed, incline,
  setpoint, load-cell support where the unit has one) every 20 s (the worker keeps a
  setpoint for 30 s) and heartbeats every 2 h.
* Pain reports (0–10 NRS): rest (baseline) mornings, during a run, after it, next
  morning.

Planted situations (``Scenario.planted``), each caught by the platform's rules:
(a) ``load_spike``: one athlete's load jumps in week 6: after a quiet week 5 (a cold,
    only the long run) a training camp with a longer, faster run every day;
(b) ``pain``: a LEVER athlete whose pain during runs exceeds 4/10 and does not settle
    by next morning over the last ten days (pain alerts and a BWS step-up suggestion);
(c) ``silent_unit``: a LEVER unit stops sending anything ~20 h before the end;
(d) ``malformed``: one upload batch mixing valid samples with invalid records;
(e) ``late_fit``: one run withheld from streaming and uploaded later as a FIT file,
    changing that day's (and every later day's) ACWR;
(f) ``drifting_unit``: the clinic has a second site (every other unit), and one unit with a
    load cell at it drifts out of calibration — its measured support rises above the
    commanded one by up to ``drift_pp`` (6 pp) over ``drift_days`` (two weeks), then stays
    (``unit_calibration_drift``, the fleet report's drift chart).

Figures such as speeds and contact times are plausible values for recreational
runners (docs/science.md §6: contact 160–300 ms, vertical oscillation 6–12 cm, vertical
ratio 6–10 %), not data from any real person.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
from scipy.signal import lfilter

__all__ = [
    "Athlete",
    "MalformedBatch",
    "PainEntry",
    "Planted",
    "Samples",
    "Scenario",
    "SessionPlan",
    "SimConfig",
    "Unit",
    "UnitMessage",
    "build_scenario",
    "default_end",
    "long_run_factor",
]

SessionKind = Literal["easy", "intervals", "hills", "long", "lever"]
UTC = dt.UTC

_TEAM_ZONES = (
    "Europe/London",
    "America/New_York",
    "Europe/Berlin",
    "America/Denver",
    "Australia/Sydney",
    "Asia/Tokyo",
    "America/Los_Angeles",
    "Europe/Madrid",
    "America/Sao_Paulo",
    "Africa/Nairobi",
    "Asia/Kolkata",
    "Pacific/Auckland",
)
_FIRST_NAMES = (
    "Ada",
    "Bram",
    "Chloe",
    "Dev",
    "Elif",
    "Femi",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kaia",
    "Luca",
    "Maya",
    "Nils",
    "Oona",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sami",
    "Tove",
)


def default_end(now: dt.datetime | None = None) -> dt.datetime:
    """The simulation's end: now, floored to the minute, minus 2 minutes (UTC).

    The final days are then "today" for the dashboards and no event lies in the future.
    """
    t = (now or dt.datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    return t - dt.timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Sizes and knobs of a scenario. ``end`` must be timezone-aware (UTC)."""

    end: dt.datetime
    seed: int = 7
    athletes: int = 12
    units: int = 6
    weeks: int = 8
    #: Scale of every run's duration (0.5 halves the samples; the e2e test uses less).
    duration_scale: float = 1.0
    #: Weeks before the last ``full_rate_weeks`` are recorded in "smart" mode (~0.45 Hz).
    full_rate_weeks: int = 3
    #: LEVER telemetry period in seconds and heartbeat period in minutes.
    telemetry_period_s: int = 20
    heartbeat_period_min: int = 120
    #: Unit heartbeat timeout registered for every unit (seconds). The worker judges silence
    #: in processing time, and the demo replays weeks in minutes: keep it short there.
    unit_timeout_s: int = 3600
    team_id: str = "team-harriers"
    clinic_id: str = "clinic-riverside"
    clinic_time_zone: str = "Europe/London"
    #: the clinic's second site: every other unit
    second_clinic_id: str = "clinic-harbourside"
    #: the drifting unit: measured − commanded support grows to drift_pp over drift_days,
    #: reached drift_plateau_days before the end
    drift_pp: float = 6.0
    drift_days: float = 14.0
    drift_plateau_days: float = 8.0

    def __post_init__(self) -> None:
        if self.end.tzinfo is None:
            raise ValueError("SimConfig.end must be timezone-aware")
        if self.athletes < 3 or self.units < 2 or self.weeks < 2:
            raise ValueError("need at least 3 athletes, 2 units and 2 weeks")

    @property
    def start(self) -> dt.datetime:
        return self.end - dt.timedelta(days=7 * self.weeks)


@dataclass(frozen=True, slots=True)
class Athlete:
    """One runner and the habits that shape their data."""

    athlete_id: str
    display_name: str
    device_id: str
    team_id: str
    body_mass_kg: float
    time_zone: str
    easy_speed_mps: float
    cadence_spm: float  # at easy speed
    cadence_per_mps: float  # cadence–speed coupling
    contact_ms: float  # at easy speed
    contact_speed_exp: float  # contact ∝ speed^-k
    vertical_osc_mm: float
    hr_rest: int
    hr_max: int
    run_minutes: float
    run_hour: float  # local hour of day the runs usually start
    schedule: tuple[tuple[int, SessionKind], ...]  # (weekday, kind)
    unit_id: str | None  # LEVER unit of a rehab athlete
    baseline_pain: int
    role: str = "steady"


@dataclass(frozen=True, slots=True)
class Unit:
    """A LEVER body-weight-support treadmill."""

    unit_id: str
    clinic_id: str
    has_load_cell: bool
    max_bws_pct: float
    silent_from: dt.datetime | None = None
    drift_from: dt.datetime | None = None  # support drift starts (measured − commanded grows)
    drift_pp: float = 0.0  # ... to this, over drift_days
    drift_days: float = 14.0

    def drift_at_pp(self, t: dt.datetime) -> float:
        """The unit's support error from calibration drift at ``t`` (pp; 0 before it starts)."""
        if self.drift_from is None or t <= self.drift_from:
            return 0.0
        return self.drift_pp * min(1.0, (t - self.drift_from) / dt.timedelta(days=self.drift_days))


@dataclass(frozen=True, slots=True)
class UnitMessage:
    """What a unit publishes: telemetry, heartbeat or a setpoint change (natural units)."""

    unit_id: str
    time: dt.datetime
    kind: Literal["telemetry", "heartbeat", "setpoint"]
    belt_speed_mps: float | None = None
    incline_pct: float | None = None
    bws_pct: float | None = None
    previous_bws_pct: float | None = None
    measured_support_pct: float | None = None
    athlete_id: str | None = None
    set_by: str | None = None

    @property
    def record_id(self) -> str:
        code = {"telemetry": "t", "heartbeat": "h", "setpoint": "s"}[self.kind]
        return f"{self.unit_id}:{int(self.time.timestamp() * 1000)}:{code}"


@dataclass(frozen=True, slots=True)
class PainEntry:
    """A pain report (0–10 NRS)."""

    report_id: str
    athlete_id: str
    time: dt.datetime
    pain_nrs: int
    context: Literal["during", "after", "next_morning", "rest"]
    session_id: str | None = None
    session_rpe: float | None = None
    swelling: bool | None = None


@dataclass(slots=True)
class Samples:
    """A session's samples as columns (numpy arrays); ``t`` is epoch seconds (float)."""

    t: np.ndarray
    cadence_spm: np.ndarray
    speed_mps: np.ndarray
    ground_contact_ms: np.ndarray
    vertical_oscillation_mm: np.ndarray
    vertical_ratio_pct: np.ndarray
    step_length_mm: np.ndarray
    heart_rate_bpm: np.ndarray
    grade_pct: np.ndarray
    distance_m: np.ndarray
    bws_pct: np.ndarray  # the unit's setpoint at each sample (0 overground); not sent by watches

    def __len__(self) -> int:
        return len(self.t)

    def records(
        self, device_id: str, start: int = 0, stop: int | None = None
    ) -> list[dict[str, Any]]:
        """Samples ``start:stop`` as the JSON dicts a watch or app posts (record ids included)."""
        sl = slice(start, stop)
        t = self.t[sl]
        cols = (
            self.cadence_spm[sl].round(1).tolist(),
            self.speed_mps[sl].round(3).tolist(),
            self.ground_contact_ms[sl].round(1).tolist(),
            self.vertical_oscillation_mm[sl].round(1).tolist(),
            self.vertical_ratio_pct[sl].round(2).tolist(),
            self.step_length_mm[sl].round(0).tolist(),
            self.heart_rate_bpm[sl].astype(int).tolist(),
            self.grade_pct[sl].round(1).tolist(),
            self.distance_m[sl].round(1).tolist(),
        )
        out = []
        for i, ts in enumerate(t.tolist()):
            ms = round(ts * 1000)
            out.append(
                {
                    "record_id": f"{device_id}:{ms}",
                    "time": _iso_ms(ms),
                    "cadence_spm": cols[0][i],
                    "speed_mps": cols[1][i],
                    "ground_contact_ms": cols[2][i],
                    "vertical_oscillation_mm": cols[3][i],
                    "vertical_ratio_pct": cols[4][i],
                    "step_length_mm": cols[5][i],
                    "heart_rate_bpm": cols[6][i],
                    "grade_pct": cols[7][i],
                    "distance_m": cols[8][i],
                }
            )
        return out


def _iso_ms(ms: int) -> str:
    return (
        dt.datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """One run: what, when, how it is delivered. Samples are generated on demand."""

    session_id: str
    athlete: Athlete
    kind: SessionKind
    start: dt.datetime
    minutes: float
    week: int  # 0-based week of the scenario
    intensity: float  # speed multiplier for the session
    smart_recording: bool
    seed: tuple[int, ...]
    unit: Unit | None = None
    bws_plan: tuple[tuple[float, float], ...] = ()  # (seconds from start, setpoint %)
    telemetry_period_s: int = 20
    delivery: Literal["http", "fit_late"] = "http"

    @property
    def sub_sport(self) -> str | None:
        return "treadmill" if self.kind == "lever" else ("trail" if self.kind == "hills" else None)

    @property
    def device_id(self) -> str:
        return self.athlete.device_id

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(minutes=self.minutes)

    def local_date(self) -> dt.date:
        return self.start.astimezone(ZoneInfo(self.athlete.time_zone)).date()

    def samples(self) -> Samples:
        """The session's samples (deterministic; a few ms per session)."""
        return _generate_samples(self)

    def unit_messages(self) -> list[UnitMessage]:
        """Telemetry and setpoint changes of a LEVER session (empty overground)."""
        if self.unit is None:
            return []
        return _unit_session_messages(self)


@dataclass(frozen=True, slots=True)
class MalformedBatch:
    """An upload mixing valid samples with invalid records (planted situation d)."""

    athlete_id: str
    device_id: str
    session_id: str
    records: tuple[dict[str, Any], ...]  # in upload order, valid and invalid mixed
    invalid: tuple[tuple[str, str], ...]  # (record_id, what is wrong)

    @property
    def n_valid(self) -> int:
        return len(self.records) - len(self.invalid)


@dataclass(frozen=True, slots=True)
class Planted:
    """Where the planted situations are, for the summary and the tests."""

    load_spike_athlete: str
    load_spike_week: int
    pain_athlete: str
    pain_unit: str
    pain_from: dt.datetime
    silent_unit: str
    silent_from: dt.datetime
    malformed_athlete: str
    late_fit_athlete: str
    late_fit_session: str
    late_fit_date: dt.date
    drift_unit: str = ""
    drift_from: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "load_spike": {"athlete_id": self.load_spike_athlete, "week": self.load_spike_week + 1},
            "pain": {
                "athlete_id": self.pain_athlete,
                "unit_id": self.pain_unit,
                "from": self.pain_from.isoformat(),
            },
            "silent_unit": {"unit_id": self.silent_unit, "from": self.silent_from.isoformat()},
            "malformed": {"athlete_id": self.malformed_athlete},
            "late_fit": {
                "athlete_id": self.late_fit_athlete,
                "session_id": self.late_fit_session,
                "date": self.late_fit_date.isoformat(),
            },
            "drifting_unit": {
                "unit_id": self.drift_unit,
                "from": self.drift_from.isoformat() if self.drift_from else None,
            },
        }


@dataclass
class Scenario:
    """Everything the demo sends, in event time."""

    config: SimConfig
    athletes: list[Athlete]
    units: list[Unit]
    sessions: list[SessionPlan]  # sorted by start; includes the late FIT session
    pain: list[PainEntry]  # sorted by time
    heartbeats: list[UnitMessage]  # sorted by time
    malformed: MalformedBatch
    planted: Planted
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def streamed_sessions(self) -> list[SessionPlan]:
        return [s for s in self.sessions if s.delivery == "http"]

    @property
    def late_session(self) -> SessionPlan:
        return next(s for s in self.sessions if s.delivery == "fit_late")

    def days(self) -> list[dt.date]:
        """UTC calendar days the scenario spans (the driver's pacing unit)."""
        d0, d1 = self.config.start.date(), self.config.end.date()
        return [d0 + dt.timedelta(days=i) for i in range((d1 - d0).days + 1)]

    def sample_count(self) -> int:
        """Total samples over every session (generates them; ~1 s for the default)."""
        if "n" not in self._cache:
            self._cache["n"] = sum(len(s.samples()) for s in self.sessions)
        return int(self._cache["n"])

    def unit_message_count(self) -> int:
        return len(self.heartbeats) + sum(len(s.unit_messages()) for s in self.sessions if s.unit)

    def fingerprint(self) -> str:
        """SHA-256 over every event the scenario produces (determinism check)."""
        h = hashlib.sha256()
        for s in self.sessions:
            smp = s.samples()
            h.update(f"{s.session_id}|{s.start.isoformat()}|{s.delivery}|".encode())
            for col in (
                smp.t,
                smp.cadence_spm,
                smp.speed_mps,
                smp.ground_contact_ms,
                smp.grade_pct,
                smp.heart_rate_bpm,
                smp.bws_pct,
            ):
                h.update(np.ascontiguousarray(col).tobytes())
            for m in s.unit_messages():
                h.update(repr(m).encode())
        for p in self.pain:
            h.update(repr(p).encode())
        for m in self.heartbeats:
            h.update(repr(m).encode())
        h.update(repr(self.malformed).encode())
        return h.hexdigest()

    @cached_property
    def by_athlete(self) -> dict[str, Athlete]:
        return {a.athlete_id: a for a in self.athletes}


# ---------------------------------------------------------------------------------- team


def _team(cfg: SimConfig, rng: np.random.Generator) -> list[Athlete]:
    out = []
    n_lever = min(cfg.units, max(1, cfg.athletes // 2))
    for i in range(cfg.athletes):
        aid = f"ath-{i + 1:02d}"
        lever = i >= cfg.athletes - n_lever  # the last ones are the clinic's rehab athletes
        easy = float(rng.uniform(2.5, 3.5)) * (0.9 if lever else 1.0)
        cadence = float(np.clip(rng.normal(168, 6), 156, 182))
        if lever:
            kinds: list[SessionKind] = ["lever", "easy", "lever", "lever"]
            days = sorted(rng.choice([0, 1, 2, 3, 4, 5], size=4, replace=False).tolist())
        else:
            n = 4 if i % 3 else 5
            outdoor: tuple[SessionKind, ...] = ("easy", "intervals", "easy", "hills")
            kinds = [*outdoor[: n - 1], "long"]
            days = sorted(rng.choice(7, size=n, replace=False).tolist())
        tz = cfg.clinic_time_zone if lever else _TEAM_ZONES[i % len(_TEAM_ZONES)]
        out.append(
            Athlete(
                athlete_id=aid,
                display_name=f"{_FIRST_NAMES[i % len(_FIRST_NAMES)]} {chr(65 + i % 26)}.",
                device_id=f"watch-{aid}",
                team_id=cfg.team_id,
                body_mass_kg=round(float(rng.uniform(52, 92)), 1),
                time_zone=tz,
                easy_speed_mps=round(easy, 3),
                cadence_spm=round(cadence, 1),
                cadence_per_mps=round(float(rng.uniform(6, 12)), 2),
                contact_ms=round(float(rng.uniform(225, 285)), 1),
                contact_speed_exp=round(float(rng.uniform(0.5, 0.8)), 2),
                vertical_osc_mm=round(float(rng.uniform(72, 105)), 1),
                hr_rest=int(rng.integers(46, 62)),
                hr_max=int(rng.integers(178, 198)),
                run_minutes=round(float(rng.uniform(30, 42)), 1),
                run_hour=float(rng.choice([6.5, 7.0, 12.25, 17.5, 18.5])),
                schedule=tuple(zip(days, kinds, strict=True)),
                unit_id=f"lever-{(i - (cfg.athletes - n_lever)) + 1:02d}" if lever else None,
                baseline_pain=int(rng.integers(0, 3)),
            )
        )
    return out


def _units(cfg: SimConfig, rng: np.random.Generator) -> list[Unit]:
    return [
        Unit(
            f"lever-{j + 1:02d}",
            cfg.clinic_id if j % 2 == 0 else cfg.second_clinic_id,
            has_load_cell=bool(j % 3 != 2),
            max_bws_pct=float(rng.choice([40.0, 50.0, 60.0])),
        )
        for j in range(cfg.units)
    ]


# ------------------------------------------------------------------------------ sessions


def _bws_plan(
    week: int, minutes: float, rng: np.random.Generator, pain_boost: bool
) -> tuple[tuple[float, float], ...]:
    """Setpoints over a LEVER session: start high, step down mid-session; progress weekly."""
    start = float(np.clip(20 - 1.5 * week, 12, 20))
    main = max(10.0, start - float(rng.choice([3, 4, 5])))
    if pain_boost:  # the clinician leaves the pain athlete on the usual progression
        main = max(10.0, main)
    t1 = 60 * float(rng.uniform(0.3, 0.45)) * minutes
    plan = [(0.0, round(start, 1)), (round(t1), round(main, 1))]
    if minutes > 25 and rng.random() < 0.5:  # a last block back up for the cool-down
        plan.append((round(60 * minutes * 0.85), round(main + 2.5, 1)))
    return tuple(plan)


#: A coached long-run block: +4 % a week for three weeks, then a lighter week; each block
#: starts 4 % above the last. No long run exceeds the longest of the previous 30 days by
#: more than 10 % (the session-spike rule's first category, Frandsen et al. 2025).
_LONG_BLOCK = (1.0, 1.04, 1.08, 0.92)


def long_run_factor(week: int) -> float:
    """Long-run duration relative to the athlete's usual run in ``week`` (0-based)."""
    return 1.45 * _LONG_BLOCK[week % 4] * (1.0 + 0.04 * (week // 4))


def _sessions(
    cfg: SimConfig,
    team: list[Athlete],
    units: list[Unit],
    rng: np.random.Generator,
    planted: dict[str, Any],
) -> list[SessionPlan]:
    unit_by_id = {u.unit_id: u for u in units}
    out: list[SessionPlan] = []
    start, end = cfg.start, cfg.end
    clinic_tz = ZoneInfo(cfg.clinic_time_zone)
    full_rate_from = end - dt.timedelta(days=7 * cfg.full_rate_weeks)
    for ai, a in enumerate(team):
        tz = ZoneInfo(a.time_zone)
        d0 = start.astimezone(tz).date()
        d1 = end.astimezone(tz).date()
        days = (d1 - d0).days + 1
        sched = dict(a.schedule)
        n_in_day: dict[dt.date, int] = {}
        for di in range(days):
            day = d0 + dt.timedelta(days=di)
            week = min(cfg.weeks - 1, di // 7)
            kinds: list[SessionKind] = []
            spiker = a.athlete_id == planted["load_spike"]
            if day.weekday() in sched:
                kinds.append(sched[day.weekday()])
            if spiker and week == planted["load_spike_week"] - 1 and kinds and kinds[0] != "long":
                kinds = []  # a week off with a cold (only the long run) ...
            if spiker and week == planted["load_spike_week"] and not kinds:
                kinds.append("easy")  # ... then a training camp: a run every day
            for kind in kinds:
                # planned by a coach: little day-to-day noise (σ 2.8 %, long runs 1.4 %)
                mult = 1.0 + (float(rng.normal(1.0, 0.07)) - 1.0) * 0.4
                intensity = float(rng.normal(1.0, 0.025))
                if kind == "long":
                    mult = (1.0 + (mult - 1.0) * 0.5) * long_run_factor(week)
                if spiker and week == planted["load_spike_week"]:
                    mult *= 2.1  # longer and faster camp runs: the planned spike
                    intensity *= 1.1
                minutes = max(12.0, a.run_minutes * mult * cfg.duration_scale)
                if kind == "lever":
                    hour = float(rng.choice([9.0, 10.5, 13.0, 14.5, 16.0]))
                    local = dt.datetime.combine(day, dt.time(0), tzinfo=clinic_tz)
                    minutes = max(12.0, 30 * mult * cfg.duration_scale)
                else:
                    hour = a.run_hour + float(rng.normal(0, 0.35))
                    local = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
                t0 = (local + dt.timedelta(hours=hour)).astimezone(UTC).replace(microsecond=0)
                if t0 < start or t0 + dt.timedelta(minutes=minutes) > end:
                    continue
                unit = unit_by_id[a.unit_id] if kind == "lever" and a.unit_id else None
                if (
                    unit is not None
                    and t0 + dt.timedelta(minutes=minutes) >= planted["silent_from"]
                    and unit.unit_id == planted["silent_unit"]
                ):
                    continue  # the silent unit is out of service; no session on it
                k = n_in_day.get(day, 0)
                n_in_day[day] = k + 1
                sid = f"{a.athlete_id}-{day.strftime('%Y%m%d')}-{k + 1}"
                pain_boost = a.athlete_id == planted["pain"] and t0 >= planted["pain_from"]
                out.append(
                    SessionPlan(
                        session_id=sid,
                        athlete=a,
                        kind=kind,
                        start=t0,
                        minutes=round(minutes, 2),
                        week=week,
                        intensity=intensity,
                        smart_recording=t0 < full_rate_from,
                        seed=(cfg.seed, ai, di, k),
                        unit=unit,
                        bws_plan=_bws_plan(week, minutes, rng, pain_boost) if unit else (),
                        telemetry_period_s=cfg.telemetry_period_s,
                    )
                )
    out.sort(key=lambda s: (s.start, s.session_id))
    return out


def _speed_profile(
    plan: SessionPlan, t: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Target speed (m/s) and grade (%) at offsets ``t`` (s) for the session kind."""
    a = plan.athlete
    v0 = a.easy_speed_mps * plan.intensity
    dur = plan.minutes * 60.0
    grade = np.zeros_like(t)
    warm = np.clip(t / 360.0, 0, 1)
    cool = np.clip((dur - t) / 180.0, 0, 1)
    ramp = 0.78 + 0.22 * np.minimum(warm, cool)
    if plan.kind == "easy":
        v = v0 * ramp * (1 + 0.02 * np.sin(2 * np.pi * t / float(rng.uniform(600, 1200))))
        grade = 1.5 * np.sin(
            2 * np.pi * t / float(rng.uniform(400, 900)) + float(rng.uniform(0, 6))
        )
    elif plan.kind == "intervals":
        v = v0 * ramp
        reps = int(rng.integers(5, 8))
        work, rest = float(rng.choice([120, 180, 240])), 90.0
        t_start = 600.0
        for r in range(reps):
            s = t_start + r * (work + rest)
            if s + work > dur - 240:
                break
            on = (t >= s) & (t < s + work)
            # speed builds over the first 10 s of each rep
            v = np.where(on, v0 * (1.22 + 0.1 * np.clip((t - s) / 10.0, 0, 1)), v)
            off = (t >= s + work) & (t < s + work + rest)
            v = np.where(off, v0 * 0.75, v)
    elif plan.kind == "hills":
        v = v0 * ramp
        period = float(rng.choice([150, 180, 240]))
        hill_amp = float(rng.uniform(5, 8))
        phase = (t - 600.0) % period
        in_set = (t > 600) & (t < dur - 300)
        grade = np.where(
            in_set & (phase < period / 2), hill_amp, np.where(in_set, -hill_amp * 0.9, 0.0)
        )
        grade = lfilter([0.1], [1, -0.9], grade)  # a road is not a square wave
    elif plan.kind == "long":
        v = v0 * 0.93 * ramp
        grade = 2.5 * np.sin(2 * np.pi * t / float(rng.uniform(900, 1500)))
    else:  # lever: belt speed steps, small incline
        v = np.full_like(t, 2.3)
        steps = (v0 * np.array([0.85, 0.95, 1.02])).round(1)
        v = np.where(t > 240, steps[0], v)
        v = np.where(t > dur * 0.4, steps[1], v)
        v = np.where(t > dur * 0.7, steps[2], v)
        v = np.where(t > dur - 120, 2.2, v)
        grade = np.where(t > 240, float(rng.choice([0.0, 1.0, 1.5])), 0.0)
    return v, grade


def _sample_times(plan: SessionPlan, rng: np.random.Generator) -> np.ndarray:
    dur = plan.minutes * 60.0
    if plan.smart_recording:
        gaps = rng.choice([1, 2, 3, 4, 5], size=int(dur), p=[0.3, 0.3, 0.2, 0.12, 0.08])
        t = np.concatenate([[0], np.cumsum(gaps)]).astype(float)
        t = t[t <= dur]
    else:
        t = np.arange(0.0, dur + 1e-9, 1.0)
    if plan.kind not in ("lever",) and dur > 900:
        for _ in range(int(rng.integers(0, 3))):  # traffic lights: the watch auto-pauses
            p0 = float(rng.uniform(300, dur - 300))
            t = t[(t < p0) | (t > p0 + float(rng.uniform(15, 70)))]
    return t


def _generate_samples(plan: SessionPlan) -> Samples:
    rng = np.random.default_rng(list(plan.seed))
    a = plan.athlete
    t = _sample_times(plan, rng)
    n = len(t)
    v_target, grade = _speed_profile(plan, t, rng)
    treadmill = plan.kind == "lever"
    # uphill slower, downhill a little faster (outdoors; the belt sets the speed on a treadmill)
    if not treadmill:
        v_target = v_target * (
            1 - 0.03 * np.clip(grade, 0, None) + 0.012 * np.clip(-grade, 0, None)
        )
        noise = lfilter([0.06], [1, -0.94], rng.normal(0, 1, n))
        grade = grade + rng.normal(0, 0.25, n)
    else:
        noise = rng.normal(0, 0.01, n)
    v = np.clip(v_target + noise, 1.2, 7.5)
    bws = np.zeros(n)
    for off, pct in plan.bws_plan:
        bws = np.where(t >= off, pct, bws)
    v_ref = a.easy_speed_mps
    cadence = (
        a.cadence_spm
        + a.cadence_per_mps * (v - v_ref)
        + 0.5 * np.clip(grade, 0, None)
        - 0.25 * bws
        + rng.normal(0, 1.4, n)
    )
    cadence = np.clip(cadence, 130, 215)
    contact = a.contact_ms * (v / v_ref) ** (-a.contact_speed_exp) * (1 - 0.002 * bws) + rng.normal(
        0, 4, n
    )
    contact = np.minimum(np.clip(contact, 160, 340), 0.8 * 60000 / cadence)
    step_len = v / (cadence / 60.0) * 1000.0
    vo = a.vertical_osc_mm * (a.cadence_spm / cadence) ** 0.8 * (1 - 0.004 * bws) + rng.normal(
        0, 2.5, n
    )
    vo = np.clip(vo, 45, 140)
    vr = vo / step_len * 100
    # heart rate: first-order lag (tau ~ 25 s per second of data) towards intensity, with drift
    intensity = np.clip(v / (v_ref * 1.45), 0.3, 1.1) + 0.012 * grade
    hr_target = a.hr_rest + (a.hr_max - a.hr_rest) * (0.3 + 0.62 * intensity) + 0.04 * (t / 60.0)
    dt_s = np.diff(t, prepend=t[0] - 1)
    alpha = 1 - np.exp(-dt_s / 25.0)
    hr = np.empty(n)
    h = a.hr_rest + 25.0
    for i in range(n):  # plain loop: a few thousand steps per session
        h += alpha[i] * (hr_target[i] - h)
        hr[i] = h
    hr = np.clip(np.rint(hr + rng.normal(0, 1.2, n)), 40, 215)
    dist = np.cumsum(v * np.minimum(dt_s, 5.0))
    t_abs = plan.start.timestamp() + t
    return Samples(t_abs, cadence, v, contact, vo, vr, step_len, hr, grade, dist, bws)


def _unit_session_messages(plan: SessionPlan) -> list[UnitMessage]:
    assert plan.unit is not None
    rng = np.random.default_rng([*plan.seed, 99])
    unit = plan.unit
    dur = plan.minutes * 60.0
    t = np.arange(0.0, dur, float(plan.telemetry_period_s))
    # belt speed and incline match what the watch saw: read them off the session's own samples
    smp = plan.samples()
    rel = smp.t - plan.start.timestamp()
    idx = np.clip(np.searchsorted(rel, t), 0, len(rel) - 1)
    belt = np.round(smp.speed_mps[idx], 1)
    incline = np.round(np.clip(smp.grade_pct[idx], -10, 30), 1)
    out: list[UnitMessage] = []
    prev: float | None = None
    for off, pct in plan.bws_plan:
        out.append(
            UnitMessage(
                unit.unit_id,
                plan.start + dt.timedelta(seconds=off),
                "setpoint",
                bws_pct=pct,
                previous_bws_pct=prev,
                athlete_id=plan.athlete.athlete_id,
                set_by="clinician" if off else "panel",
            )
        )
        prev = pct
    setpoints = np.zeros(len(t))
    for off, pct in plan.bws_plan:
        setpoints = np.where(t >= off, pct, setpoints)
    drift = np.array([unit.drift_at_pp(plan.start + dt.timedelta(seconds=float(x))) for x in t])
    measured = setpoints + drift + rng.normal(0, 0.8, len(t))
    for i in range(len(t)):
        out.append(
            UnitMessage(
                unit.unit_id,
                plan.start + dt.timedelta(seconds=float(t[i]) + 0.5),
                "telemetry",
                belt_speed_mps=float(belt[i]),
                incline_pct=float(incline[i]),
                bws_pct=float(setpoints[i]),
                measured_support_pct=round(float(np.clip(measured[i], 0, 100)), 1)
                if unit.has_load_cell
                else None,
                athlete_id=plan.athlete.athlete_id,
            )
        )
    out.sort(key=lambda m: (m.time, m.kind))
    return out


# ---------------------------------------------------------------------------------- pain


def _pain(
    cfg: SimConfig,
    team: list[Athlete],
    sessions: list[SessionPlan],
    rng: np.random.Generator,
    planted: dict[str, Any],
) -> list[PainEntry]:
    out: list[PainEntry] = []
    counter = 0

    def rid(aid: str) -> str:
        nonlocal counter
        counter += 1
        return f"pain-{aid}-{counter:05d}"

    for a in team:
        tz = ZoneInfo(a.time_zone)
        d0, d1 = cfg.start.astimezone(tz).date(), cfg.end.astimezone(tz).date()
        for di in range((d1 - d0).days + 1):
            day = d0 + dt.timedelta(days=di)
            if day.weekday() in (0, 3, 5):  # rest reports: the baseline
                t = dt.datetime.combine(day, dt.time(7, 10), tzinfo=tz).astimezone(UTC)
                if cfg.start <= t <= cfg.end:
                    # a settled knee: some mornings better than usual, none worse (a +1
                    # rest morning after a run day is "not back to baseline" in the pain
                    # model, kneeload.core.pain, and would be a false alert)
                    nrs = max(0, a.baseline_pain - int(rng.random() < 0.15))
                    if a.athlete_id == planted["pain"] and t >= planted["pain_from"]:
                        continue  # in the flare the athlete reports mornings after runs only
                    out.append(PainEntry(rid(a.athlete_id), a.athlete_id, t, nrs, "rest"))
    for s in sessions:
        a = s.athlete
        bad = a.athlete_id == planted["pain"] and s.start >= planted["pain_from"]
        base = a.baseline_pain
        heavy = 1 if s.kind in ("intervals", "hills", "long") else 0
        if bad:
            during, after, morning = (
                int(rng.integers(5, 8)),
                int(rng.integers(5, 7)),
                base + int(rng.integers(3, 5)),
            )
        else:
            during = min(3, base + heavy + int(rng.random() < 0.3))
            after = min(3, base + int(rng.random() < 0.4))
            morning = base
        if bad or rng.random() < 0.75:
            mid = s.start + dt.timedelta(minutes=s.minutes * float(rng.uniform(0.5, 0.9)))
            out.append(
                PainEntry(
                    rid(a.athlete_id),
                    a.athlete_id,
                    mid.replace(microsecond=0),
                    during,
                    "during",
                    s.session_id,
                )
            )
        rpe = round(float(np.clip(rng.normal(4 + 2 * heavy, 1), 1, 10)), 1)
        t_after = (s.end + dt.timedelta(minutes=float(rng.uniform(10, 45)))).replace(microsecond=0)
        if t_after <= cfg.end:  # a run that ended minutes before 'now' has no report yet
            out.append(
                PainEntry(
                    rid(a.athlete_id),
                    a.athlete_id,
                    t_after,
                    after,
                    "after",
                    s.session_id,
                    session_rpe=rpe,
                    swelling=bool(bad and after >= 6),
                )
            )
        tz = ZoneInfo(a.time_zone)
        next_day = s.end.astimezone(tz).date() + dt.timedelta(days=1)
        t_morning = dt.datetime.combine(next_day, dt.time(7, 30), tzinfo=tz).astimezone(UTC)
        if t_morning <= cfg.end and (bad or rng.random() < 0.8):
            out.append(
                PainEntry(
                    rid(a.athlete_id),
                    a.athlete_id,
                    t_morning,
                    morning,
                    "next_morning",
                    s.session_id,
                )
            )
    out.sort(key=lambda p: (p.time, p.report_id))
    return out


# ---------------------------------------------------------------------------- heartbeats


def _heartbeats(cfg: SimConfig, units: list[Unit]) -> list[UnitMessage]:
    out = []
    step = dt.timedelta(minutes=cfg.heartbeat_period_min)
    for j, u in enumerate(units):
        t = cfg.start + dt.timedelta(minutes=(7 * j) % cfg.heartbeat_period_min)
        while t <= cfg.end:
            if u.silent_from is not None and t >= u.silent_from:
                break
            out.append(UnitMessage(u.unit_id, t, "heartbeat"))
            t += step
    out.sort(key=lambda m: (m.time, m.unit_id))
    return out


# ----------------------------------------------------------------------------- malformed


def _malformed(cfg: SimConfig, session: SessionPlan) -> MalformedBatch:
    smp = session.samples()
    n = min(len(smp), 60)
    valid = smp.records(session.device_id, 0, n)
    base = dict(valid[-1])
    ms = round(float(smp.t[n - 1]) * 1000)

    def bad(i: int, **changes: Any) -> dict[str, Any]:
        r = dict(base)
        r["record_id"] = f"{session.device_id}:{ms + 100 + i}"
        r["time"] = _iso_ms(ms + 100 + i)
        for k, v in changes.items():
            if v is _DROP:
                r.pop(k, None)
            else:
                r[k] = v
        return r

    future = (cfg.end + dt.timedelta(days=3)).isoformat().replace("+00:00", "Z")
    invalid = [
        (bad(1, cadence_spm=0), "cadence 0 spm"),
        (bad(2, cadence_spm=400), "cadence 400 spm"),
        (bad(3, speed_mps=-1.5), "negative speed"),
        (bad(4, speed_mps=_DROP), "missing speed_mps"),
        (bad(5, cadence_spm="fast"), "cadence is a string"),
        (bad(6, time="1999-12-31T23:59:59Z"), "time before 2000"),
        (bad(7, time=future), "time 3 days in the future"),
        (bad(8, heart_rate_bpm=72.5), "fractional heart rate"),
    ]
    records = list(valid)
    for k, (r, _) in enumerate(invalid):  # spread them through the batch
        records.insert(min(len(records), 5 + 7 * k), r)
    return MalformedBatch(
        athlete_id=session.athlete.athlete_id,
        device_id=session.device_id,
        session_id=session.session_id,
        records=tuple(records),
        invalid=tuple((r["record_id"], why) for r, why in invalid),
    )


class _Drop:
    def __repr__(self) -> str:
        return "<drop>"


_DROP = _Drop()


# -------------------------------------------------------------------------------- build


def build_scenario(cfg: SimConfig) -> Scenario:
    """The whole scenario for ``cfg`` (pure; ~0.1 s, samples are generated lazily)."""
    rng = np.random.default_rng(cfg.seed)
    team = _team(cfg, rng)
    units = _units(cfg, rng)
    steady = [a for a in team if a.unit_id is None]
    lever = [a for a in team if a.unit_id is not None]
    # with a small team (the end-to-end test) one athlete carries two roles
    malformed_ath = steady[0]
    spike = steady[1 % len(steady)]
    late = steady[2] if len(steady) > 2 else steady[0]
    pain_ath = lever[1] if len(lever) > 1 else lever[0]
    silent_unit = units[-1] if units[-1].unit_id != pain_ath.unit_id else units[0]
    silent_from = cfg.end - dt.timedelta(hours=20)
    units = [
        replace(u, silent_from=silent_from) if u.unit_id == silent_unit.unit_id else u
        for u in units
    ]
    # (f) a unit at the second site with a load cell and an athlete drifts out of calibration
    # (none in a scenario too small to have such a unit: nothing is planted then)
    used = {a.unit_id for a in lever}
    drift_unit = next(
        (u for u in units if u.has_load_cell and u.clinic_id == cfg.second_clinic_id
         and u.unit_id in used and u.unit_id not in (silent_unit.unit_id, pain_ath.unit_id)),
        None,
    )  # fmt: skip
    drift_from = cfg.end - dt.timedelta(days=cfg.drift_days + cfg.drift_plateau_days)
    units = [
        replace(u, drift_from=drift_from, drift_pp=cfg.drift_pp, drift_days=cfg.drift_days)
        if drift_unit is not None and u.unit_id == drift_unit.unit_id
        else u
        for u in units
    ]
    spike_week = min(5, cfg.weeks - 1)  # week 6; the last week of a short scenario
    pain_from = cfg.end - dt.timedelta(days=min(10, 7 * cfg.weeks // 3))
    planted_cfg = {
        "load_spike": spike.athlete_id,
        "load_spike_week": spike_week,
        "pain": pain_ath.athlete_id,
        "pain_from": pain_from,
        "silent_unit": silent_unit.unit_id,
        "silent_from": silent_from,
    }
    sessions = _sessions(cfg, team, units, np.random.default_rng([cfg.seed, 1]), planted_cfg)
    # (e) a run synced late as a FIT file: the latest run of a steady athlete that ended
    # 20-60 h before the end (a watch synced the next day or two later), inside the
    # worker's default lateness horizon (3 days) so that it still counts
    window = (cfg.end - dt.timedelta(hours=60), cfg.end - dt.timedelta(hours=20))
    prefer = [x for x in steady if x is not spike and x is not malformed_ath] + [malformed_ath]
    late_s = None
    for cand in [late, *prefer]:
        runs = [
            s
            for s in sessions
            if s.athlete.athlete_id == cand.athlete_id and window[0] <= s.end <= window[1]
        ]
        if runs:
            late, late_s = cand, runs[-1]
            break
    if late_s is None:  # a tiny scenario: fall back to the late athlete's second-to-last run
        late_s = [s for s in sessions if s.athlete.athlete_id == late.athlete_id][-2]
    roles = {spike.athlete_id: "load_spike", pain_ath.athlete_id: "pain"}
    roles.setdefault(late.athlete_id, "late_fit")
    roles.setdefault(malformed_ath.athlete_id, "malformed")
    team = [replace(a, role=roles[a.athlete_id]) if a.athlete_id in roles else a for a in team]
    by_id = {a.athlete_id: a for a in team}
    sessions = [
        replace(s, athlete=by_id[s.athlete.athlete_id], delivery="fit_late")
        if s.session_id == late_s.session_id
        else replace(s, athlete=by_id[s.athlete.athlete_id])
        for s in sessions
    ]
    # (d) malformed records ride along with one of the first week's uploads
    mal_s = next(
        s
        for s in sessions
        if s.athlete.athlete_id == malformed_ath.athlete_id
        and s.start > cfg.start + dt.timedelta(days=9)
    )
    pain = _pain(cfg, team, sessions, np.random.default_rng([cfg.seed, 2]), planted_cfg)
    heartbeats = _heartbeats(cfg, units)
    planted = Planted(
        load_spike_athlete=spike.athlete_id,
        load_spike_week=spike_week,
        pain_athlete=pain_ath.athlete_id,
        pain_unit=str(pain_ath.unit_id),
        pain_from=pain_from,
        silent_unit=silent_unit.unit_id,
        silent_from=silent_from,
        malformed_athlete=malformed_ath.athlete_id,
        late_fit_athlete=late.athlete_id,
        late_fit_session=late_s.session_id,
        late_fit_date=late_s.local_date(),
        drift_unit=drift_unit.unit_id if drift_unit is not None else "",
        drift_from=drift_from if drift_unit is not None else None,
    )
    return Scenario(cfg, team, units, sessions, pain, heartbeats, _malformed(cfg, mal_s), planted)


def iter_days(sc: Scenario) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """(from, to) UTC day windows covering the scenario, in order (driver pacing)."""
    t = dt.datetime.combine(sc.config.start.date(), dt.time(0), tzinfo=UTC)
    while t <= sc.config.end:
        yield t, t + dt.timedelta(days=1)
        t += dt.timedelta(days=1)
