"""Per-unit fleet logic, plain Python: LEVER heartbeats → online/offline, in use and by whom,
minutes used per day; and the BWS timeline entries re-keyed by athlete for enrichment.

Online/offline is a processing-time matter (a silent unit sends no events to advance any
event-time clock): the worker's timer calls :meth:`UnitProcessor.on_tick`, which marks a
unit offline when nothing arrived for its timeout (registry ``timeout_s``, else the
setting) and raises core's ``unit_offline`` alert (:func:`check_unit_silent`) with a
dedup key bucketed by the last event time: one silence, one alert id.

The registry's device records reach a unit's state through :func:`device_to_unit`:
``registry.devices`` is keyed by device id (a LEVER unit's device id *is* its unit id)
but has a single partition, so it is not co-partitioned with the unit-keyed streams.
The worker re-keys each ``lever_unit`` record (and each tombstone) into the internal
``worker.devices-by-unit`` topic, partitioned like the unit's telemetry, and the unit
agent applies it with :meth:`UnitProcessor.on_device`.
Minutes used are credited per UTC day between consecutive in-use telemetry records
(gaps capped at one minute).

Calibration: every telemetry record that runs with an athlete and carries both the
commanded and the measured support adds to the unit's per-day calibration sums
(:func:`kneeload.core.fleet.calibration_summary`'s n, Σe, Σ|e|, published in each
``unit_status`` as the day's bias and MAE) and advances the unit's drift episode
(:func:`kneeload.core.fleet.advance_drift`); core's ``unit_calibration_drift`` alert
(:func:`kneeload.core.alerts.check_unit_calibration_drift`) fires once per episode and
severity. Setpoint changes carry no measured support and leave both untouched.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from kneeload.core import alerts as core_alerts
from kneeload.core import fleet as core_fleet
from kneeload.topics import UNIT_STATUS
from kneeload.topics.catalogue import WORKER_BWS_BY_ATHLETE, WORKER_DEVICES_BY_UNIT
from kneeload.worker import episodes as worker_episodes
from kneeload.worker.athlete import Output, alert_out
from kneeload.worker.state import UnitCal, UnitCalLast, UnitDrift, UnitFwd, UnitState
from kneeload.worker.timeutil import iso, parse_ms, to_dt

if TYPE_CHECKING:
    from kneeload.settings import Settings

#: logical name of the internal re-keying topic (treadmill entries keyed by athlete)
BWS_BY_ATHLETE = WORKER_BWS_BY_ATHLETE
#: logical name of the internal re-keying topic (LEVER device records keyed by unit)
DEVICES_BY_UNIT = WORKER_DEVICES_BY_UNIT

_GAP_CAP_MS = 60_000
#: No running telemetry for this long: the belt has stopped (a running unit streams telemetry;
#: between sessions it only sends heartbeats). Same cap as the minutes counted between samples.
_RUN_STALE_MS = _GAP_CAP_MS
#: UTC days of calibration sums kept per unit (late telemetry for an older day starts afresh)
_CAL_DAYS_KEPT = 8


def new_unit(unit_id: str) -> UnitState:
    """Empty state of one unit."""
    return UnitState(unit_id)


class UnitProcessor:
    def __init__(
        self,
        unit_timeout_s: float,
        status_interval_s: float,
        bws_stale_s: float,
        thresholds: core_fleet.FleetThresholds = core_fleet.DEFAULT_FLEET_THRESHOLDS,
    ) -> None:
        self.unit_timeout_s = unit_timeout_s
        self.status_interval_s = status_interval_s
        self.bws_stale_s = bws_stale_s
        self.thresholds = thresholds

    def on_assignment(self, u: UnitState, rec: dict[str, Any] | None) -> list[Output]:
        if rec is not None:
            u.assigned = rec.get("athlete_id")
            u.clinic_id = rec.get("clinic_id") or u.clinic_id
        return []

    def on_device(self, u: UnitState, rec: dict[str, Any]) -> None:
        """Apply a unit's device record (as :func:`device_to_unit` re-keys it).

        Parameters
        ----------
        u : dict
            The unit's state (:func:`new_unit`), changed in place.
        rec : dict
            ``{"unit_id", "timeout_s", "clinic_id"}``; ``timeout_s`` None (or 0, or a
            deleted device) means the worker's default
            (``KNEELOAD_WORKER_UNIT_TIMEOUT_S``) applies again.
        """
        t = rec.get("timeout_s")
        u.timeout_s = float(t) if t else None
        if rec.get("clinic_id"):
            u.clinic_id = rec["clinic_id"]

    def on_telemetry(self, u: UnitState, rec: dict[str, Any], now_ms: int) -> list[Output]:
        """Telemetry, heartbeat or setpoint change of one unit."""
        t = parse_ms(rec["time"])
        u.clinic_id = rec.get("clinic_id") or u.clinic_id
        out: list[Output] = []
        was_online = u.online
        prev_athlete = u.athlete_id
        u.last_proc = now_ms
        if u.last_seen is None or t >= u.last_seen:
            u.last_seen = t
        u.online = True
        kind = rec.get("kind", "setpoint")
        changed = not was_online
        if not was_online:
            out += self._heard_again(u, t)
        out += self._belt_stopped(u, t, now_ms)
        if kind != "heartbeat":
            athlete = rec.get("athlete_id") if "athlete_id" in rec else u.assigned
            support = rec.get("measured_support_pct")
            bws = float(support) if support is not None else rec.get("bws_pct")
            if bws is not None:
                bws = float(bws)
            if kind == "telemetry":
                out += self._calibration(u, t, rec, athlete, now_ms)
            running = self._running(u, rec, athlete)
            if athlete != prev_athlete or bws != u.bws_pct or running != u.running:
                changed = True
            if prev_athlete is not None and athlete != prev_athlete:
                out.append(self._fwd(prev_athlete, t, None, 0.0))
            u.running = running
            if running and t >= (u.run_t or 0):
                u.run_t = t
            in_use = running
            if in_use and u.last_use_t is not None and prev_athlete == athlete and t > u.last_use_t:
                gap = min(t - u.last_use_t, _GAP_CAP_MS)
                d = to_dt(t).date().isoformat()
                u.minutes[d] = u.minutes.get(d, 0.0) + gap / 60000.0
            u.last_use_t = t if in_use else None
            u.athlete_id = athlete
            u.bws_pct = bws
            if athlete is not None:
                last = u.last_fwd
                if (
                    changed
                    or last is None
                    or t < last.t_ms  # earlier than the last entry sent: the athlete lacks it
                    or t - last.t_ms >= self.bws_stale_s * 500
                    or last.bws_pct != bws
                ):
                    out.append(self._fwd(athlete, t, u.unit_id, bws or 0.0))
                    if last is None or t >= last.t_ms:
                        u.last_fwd = UnitFwd(t, bws)
            else:
                u.last_fwd = None
        if changed or now_ms - u.last_pub >= self.status_interval_s * 1000:
            out.append(self._status(u, t, now_ms))
        return out

    def _belt_stopped(self, u: UnitState, t: int, now_ms: int) -> list[Output]:
        """A record arriving more than a minute after the last running telemetry (a
        heartbeat between sessions, the next session's first record): the belt stopped after
        that telemetry, so the unit is published idle from one second after it — the status
        history is a step function, and in use must not stretch to the next record."""
        run_t = u.run_t
        if not u.running or run_t is None or t - run_t <= _RUN_STALE_MS:
            return []
        u.running = False
        return [self._status(u, run_t + 1000, now_ms)]

    def _running(self, u: UnitState, rec: dict[str, Any], athlete: str | None) -> bool:
        """In use = the belt runs with an athlete on it (core.fleet.is_running), from the
        record's belt speed; a record without one (a setpoint change) keeps the last known
        state unless nobody is on the unit any more. An assigned athlete standing beside a
        stopped belt is not use: the demo's units read 95–100 % "in use" while any athlete
        was assigned."""
        if athlete is None:
            return False
        if "belt_speed_mps" not in rec:
            return u.running
        th = self.thresholds
        return core_fleet.is_running(rec.get("belt_speed_mps"), athlete, th.running_min_speed_mps)

    def _calibration(
        self, u: UnitState, t: int, rec: dict[str, Any], athlete: str | None, now_ms: int
    ) -> list[Output]:
        """Per-day calibration sums and the drift episode (core's functions).

        The first running sample of a new UTC day publishes the previous day's final
        status (at that day's last sample), so every day's sums reach the database even
        when status publishes are rarer than days (a replay, the demo's compressed weeks).
        """
        th = self.thresholds
        sample = core_fleet.SupportSample(
            rec.get("belt_speed_mps"), athlete, rec.get("bws_pct"), rec.get("measured_support_pct")
        )
        if sample.bws_pct is None or sample.measured_support_pct is None:
            return []
        closing: list[Output] = []
        if core_fleet.is_running(sample.belt_speed_mps, athlete, th.running_min_speed_mps):
            e = core_fleet.support_bias_pp(sample.bws_pct, sample.measured_support_pct)
            cal = u.cal
            d = to_dt(t).date().isoformat()
            sums = cal.get(d)
            if sums is None:
                sums = cal[d] = UnitCal()
            sums.n += 1.0
            sums.sum_bias_pp += e
            sums.sum_abs_bias_pp += abs(e)
            for old in sorted(cal)[:-_CAL_DAYS_KEPT]:
                del cal[old]
            last = u.cal_last
            if last is None or t >= last.t_ms:
                if last is not None and last.date != d:
                    closing.append(self._status(u, last.t_ms, now_ms))
                u.cal_last = UnitCalLast(d, t)
        dr = u.drift
        ep = (
            core_fleet.DriftEpisode(
                dr.since_ms, dr.above_s, dr.bias_sum_pp_s, dr.last_ms, dr.alerted
            )
            if dr is not None
            else core_fleet.DriftEpisode()
        )
        ep = core_fleet.advance_drift(ep, t, sample, th)
        a = core_alerts.check_unit_calibration_drift(u.unit_id, u.clinic_id, to_dt(t), ep, th)
        if a is not None:
            ep = core_fleet.DriftEpisode(
                ep.since_ms, ep.above_s, ep.bias_sum_pp_s, ep.last_ms, a.severity.value
            )
        u.drift = UnitDrift(ep.since_ms, ep.above_s, ep.bias_sum_pp_s, ep.last_ms, ep.alerted)
        return closing + ([alert_out(a)] if a is not None else [])

    @staticmethod
    def _fwd(athlete: str, t: int, unit: str | None, bws: float) -> Output:
        return (
            BWS_BY_ATHLETE,
            athlete,
            {"t": t, "unit_id": unit, "bws_pct": bws, "athlete_id": athlete},
        )

    def _status(self, u: UnitState, t: int, now_ms: int) -> Output:
        u.last_pub = now_ms
        d = to_dt(t).date().isoformat()
        c = u.cal.get(d) or UnitCal()
        n, se, sa = c.n, c.sum_bias_pp, c.sum_abs_bias_pp
        drift = u.drift
        return (
            UNIT_STATUS,
            u.unit_id,
            {
                "id": f"{u.unit_id}:{iso(t)}",
                "unit_id": u.unit_id,
                "clinic_id": u.clinic_id,
                "time": iso(t),
                "online": u.online,
                "in_use": u.online and u.athlete_id is not None and u.running,
                "athlete_id": u.athlete_id if u.online else None,
                "bws_pct": u.bws_pct,
                "date": d,
                "minutes_used_today": min(1440.0, u.minutes.get(d, 0.0)),
                "last_seen": iso(u.last_seen) if u.last_seen is not None else None,
                "calibration_samples": int(n),
                "support_bias_pp": round(se / n, 4) if n else None,
                "support_mae_pp": round(sa / n, 4) if n else None,
                "drift_running_s": round(drift.above_s, 1)
                if drift is not None and drift.since_ms is not None
                else 0.0,
            },
        )

    def on_tick(self, u: UnitState, now_ms: int) -> list[Output]:
        """Processing-time check: silent longer than the timeout → offline + alert."""
        if not u.online or u.last_seen is None:
            return []
        timeout = u.timeout_s or self.unit_timeout_s
        silent_ms = now_ms - u.last_proc
        if silent_ms <= timeout * 1000:
            return []
        u.online = False
        out: list[Output] = []
        if u.athlete_id is not None:
            out.append(self._fwd(u.athlete_id, u.last_seen + 1, None, 0.0))
            u.athlete_id = None
            u.last_use_t = None
        t_event = u.last_seen + silent_ms
        out.append(self._status(u, t_event, now_ms))
        a = core_alerts.check_unit_silent(
            u.unit_id,
            u.clinic_id,
            to_dt(u.last_seen),
            to_dt(t_event),
            dt.timedelta(seconds=timeout),
        )
        out += self._episodes(u, [a])
        return out

    def _episodes(self, u: UnitState, verdicts: list[worker_episodes.Verdict]) -> list[Output]:
        """unit_offline as episodes: opened on silence, resolved when the unit is heard again."""
        ids: dict[str, str | None] = {
            "athlete_id": None,
            "unit_id": u.unit_id,
            "team_id": None,
            "clinic_id": u.clinic_id,
        }
        box = {"episodes": u.episodes}  # the episodes' edge works on a mapping
        out = worker_episodes.publish(box, verdicts, f"unit:{u.unit_id}", ids)
        u.episodes = box["episodes"]
        return out

    def _heard_again(self, u: UnitState, t: int) -> list[Output]:
        """The resolving event of an open offline episode: the first message after it.

        Silence is judged in processing time, so the offline change can carry an event time
        later than this message; the resolution is stamped just after it (never before).
        """
        kind = core_alerts.AlertKind.UNIT_OFFLINE
        cond = f"{kind.value}:unit:{u.unit_id}"
        st = u.episodes.get(cond)
        if not st or st.get("episode_id") is None:
            return []
        t_ms = max(t, int(st["last_ms"]) + 1)
        when = to_dt(t_ms)
        return self._episodes(u, [worker_episodes.clear(kind, when, f"heard:{iso(t_ms)}")])


def fleet_thresholds(settings: Settings) -> core_fleet.FleetThresholds:
    """Core's :class:`~kneeload.core.fleet.FleetThresholds` from ``KNEELOAD_FLEET_*``."""
    return core_fleet.FleetThresholds(
        running_min_speed_mps=settings.fleet_running_min_speed_mps,
        drift_bias_pp=settings.fleet_drift_bias_pp,
        drift_critical_pp=settings.fleet_drift_critical_pp,
        drift_running_s=settings.fleet_drift_running_s,
    )


def device_to_unit(key: str | None, rec: dict[str, Any] | None) -> Output | None:
    """A ``registry.devices`` record as an entry for the unit agent, or None.

    Parameters
    ----------
    key : str or None
        The record's Kafka key (the device id; used only for tombstones, which carry
        no record).
    rec : dict or None
        The ``device_record``; None for a tombstone (device deleted).

    Returns
    -------
    Output or None
        ``(worker.devices-by-unit, unit_id, {"unit_id", "timeout_s", "clinic_id"})``
        for a LEVER unit; for a tombstone the same with ``"deleted": True`` (a unit
        falls back to the default timeout; an id that is no unit is ignored); None for
        watches and apps, and for a record without an id.
    """
    if rec is None:
        if not key:
            return None
        ev = {"unit_id": key, "timeout_s": None, "clinic_id": None, "deleted": True}
        return (DEVICES_BY_UNIT, key, ev)
    if rec.get("kind") != "lever_unit":
        return None
    uid = rec.get("device_id") or key
    if not uid:
        return None
    ev = {"unit_id": uid, "timeout_s": rec.get("timeout_s"), "clinic_id": rec.get("clinic_id")}
    return (DEVICES_BY_UNIT, uid, ev)
