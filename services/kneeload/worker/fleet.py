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
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kneeload.core import alerts as core_alerts
from kneeload.topics import UNIT_STATUS
from kneeload.topics.catalogue import WORKER_BWS_BY_ATHLETE, WORKER_DEVICES_BY_UNIT
from kneeload.worker.athlete import Output, alert_out
from kneeload.worker.timeutil import iso, parse_ms, to_dt

#: logical name of the internal re-keying topic (treadmill entries keyed by athlete)
BWS_BY_ATHLETE = WORKER_BWS_BY_ATHLETE
#: logical name of the internal re-keying topic (LEVER device records keyed by unit)
DEVICES_BY_UNIT = WORKER_DEVICES_BY_UNIT

_GAP_CAP_MS = 60_000


def new_unit(unit_id: str) -> dict[str, Any]:
    return {
        "unit_id": unit_id,
        "clinic_id": None,
        "last_seen": None,
        "last_proc": 0,
        "online": False,
        "athlete_id": None,
        "assigned": None,
        "bws_pct": None,
        "minutes": {},
        "last_use_t": None,
        "timeout_s": None,
        "last_pub": 0,
        "last_fwd": None,
    }


class UnitProcessor:
    def __init__(self, unit_timeout_s: float, status_interval_s: float, bws_stale_s: float) -> None:
        self.unit_timeout_s = unit_timeout_s
        self.status_interval_s = status_interval_s
        self.bws_stale_s = bws_stale_s

    def on_assignment(self, u: dict[str, Any], rec: dict[str, Any] | None) -> list[Output]:
        if rec is not None:
            u["assigned"] = rec.get("athlete_id")
            u["clinic_id"] = rec.get("clinic_id") or u["clinic_id"]
        return []

    def on_device(self, u: dict[str, Any], rec: dict[str, Any]) -> None:
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
        u["timeout_s"] = float(t) if t else None
        if rec.get("clinic_id"):
            u["clinic_id"] = rec["clinic_id"]

    def on_telemetry(self, u: dict[str, Any], rec: dict[str, Any], now_ms: int) -> list[Output]:
        """Telemetry, heartbeat or setpoint change of one unit."""
        t = parse_ms(rec["time"])
        u["clinic_id"] = rec.get("clinic_id") or u["clinic_id"]
        out: list[Output] = []
        was_online = u["online"]
        prev_athlete = u["athlete_id"]
        u["last_proc"] = now_ms
        if u["last_seen"] is None or t >= u["last_seen"]:
            u["last_seen"] = t
        u["online"] = True
        kind = rec.get("kind", "setpoint")
        changed = not was_online
        if kind != "heartbeat":
            athlete = rec.get("athlete_id") if "athlete_id" in rec else u["assigned"]
            support = rec.get("measured_support_pct")
            bws = float(support) if support is not None else rec.get("bws_pct")
            if bws is not None:
                bws = float(bws)
            if athlete != prev_athlete or bws != u["bws_pct"]:
                changed = True
            if prev_athlete is not None and athlete != prev_athlete:
                out.append(self._fwd(prev_athlete, t, None, 0.0))
            in_use = athlete is not None
            if (
                in_use
                and u["last_use_t"] is not None
                and prev_athlete == athlete
                and t > u["last_use_t"]
            ):
                gap = min(t - u["last_use_t"], _GAP_CAP_MS)
                d = to_dt(t).date().isoformat()
                u["minutes"][d] = u["minutes"].get(d, 0.0) + gap / 60000.0
            u["last_use_t"] = t if in_use else None
            u["athlete_id"] = athlete
            u["bws_pct"] = bws
            if athlete is not None:
                last = u["last_fwd"]
                if (
                    changed
                    or last is None
                    or t < last[0]  # earlier than the last entry sent: the athlete lacks it
                    or t - last[0] >= self.bws_stale_s * 500
                    or last[1] != bws
                ):
                    out.append(self._fwd(athlete, t, u["unit_id"], bws or 0.0))
                    if last is None or t >= last[0]:
                        u["last_fwd"] = [t, bws]
            else:
                u["last_fwd"] = None
        if changed or now_ms - u["last_pub"] >= self.status_interval_s * 1000:
            out.append(self._status(u, t, now_ms))
        return out

    @staticmethod
    def _fwd(athlete: str, t: int, unit: str | None, bws: float) -> Output:
        return (
            BWS_BY_ATHLETE,
            athlete,
            {"t": t, "unit_id": unit, "bws_pct": bws, "athlete_id": athlete},
        )

    def _status(self, u: dict[str, Any], t: int, now_ms: int) -> Output:
        u["last_pub"] = now_ms
        d = to_dt(t).date().isoformat()
        return (
            UNIT_STATUS,
            u["unit_id"],
            {
                "id": f"{u['unit_id']}:{iso(t)}",
                "unit_id": u["unit_id"],
                "clinic_id": u["clinic_id"],
                "time": iso(t),
                "online": u["online"],
                "in_use": u["online"] and u["athlete_id"] is not None,
                "athlete_id": u["athlete_id"] if u["online"] else None,
                "bws_pct": u["bws_pct"],
                "date": d,
                "minutes_used_today": min(1440.0, u["minutes"].get(d, 0.0)),
                "last_seen": iso(u["last_seen"]) if u["last_seen"] is not None else None,
            },
        )

    def on_tick(self, u: dict[str, Any], now_ms: int) -> list[Output]:
        """Processing-time check: silent longer than the timeout → offline + alert."""
        if not u["online"] or u["last_seen"] is None:
            return []
        timeout = u["timeout_s"] or self.unit_timeout_s
        silent_ms = now_ms - u["last_proc"]
        if silent_ms <= timeout * 1000:
            return []
        u["online"] = False
        out: list[Output] = []
        if u["athlete_id"] is not None:
            out.append(self._fwd(u["athlete_id"], u["last_seen"] + 1, None, 0.0))
            u["athlete_id"] = None
            u["last_use_t"] = None
        t_event = u["last_seen"] + silent_ms
        out.append(self._status(u, t_event, now_ms))
        a = core_alerts.check_unit_silent(
            u["unit_id"],
            u["clinic_id"],
            to_dt(u["last_seen"]),
            to_dt(t_event),
            dt.timedelta(seconds=timeout),
        )
        if a is not None:
            out.append(alert_out(a))
        return out


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
