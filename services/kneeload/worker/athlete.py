"""Per-athlete stream logic, plain Python (no Kafka): what the athlete agent runs.

State per athlete is one JSON-able dict (:func:`new_state`); raw sample chunks live in
a separate mapping (``chunks``: one entry per input batch, key
``athlete|session|batch_id``) so a session can be recomputed exactly from its inputs.
Both are Faust tables in the worker and plain dicts in the tests.

Event time
----------
* The athlete's **watermark** is the largest sample time seen.
* A sample older than ``watermark − lateness horizon`` is *late*: it is stored (its
  chunk) and published in ``sample_load`` with ``late = true``, but not counted.
* Sessions: the batch's explicit ``session_id``, else an inactivity gap. A session
  closes once the watermark passes its last sample + gap (or on the idle timer).
* Days are the athlete's local days (time zone from the registry). A day is final
  once the watermark passes the next local midnight + grace (or on the idle timer).
  A change to a day recomputes that day and every later one through
  :class:`kneeload.core.acwr.AcwrTracker`; already-final days are re-published with
  ``revision + 1`` and ``corrected = true``.

Idempotence
-----------
A batch the athlete's state already counted (its id is in the session's chunk list)
is not counted again (its ``sample_load`` is re-emitted with the same id). Samples with
the same time within a session count once (the one with the smallest record_id). Sums
run in time order whether they are built incrementally (in-order data, the fast path)
or recomputed from the chunks (out-of-order data, a late setpoint), so both give the
same floating-point numbers.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from kneeload.core import alerts as core_alerts
from kneeload.core import pain as core_pain
from kneeload.core import session as core_session
from kneeload.core.acwr import AcwrConfig, AcwrTracker, DailyAcwr, LateDayTooOldError
from kneeload.core.correlation import PairedObservations
from kneeload.core.pfj import (
    DEFAULT_PFJ_PARAMS,
    PfjCalibration,
    PfjParams,
    assess_pfj_sample,
    pfj_sample_load_mpa_s,
    sample_interval_s,
)
from kneeload.core.spike import PastSession, SpikeConfig, session_spike
from kneeload.topics import (
    ALERTS,
    CORRELATIONS,
    DAILY_LOAD,
    LOAD_MINUTE,
    LOAD_SAMPLES,
    PAIN_RESPONSES,
    SESSIONS,
    WATCH_SAMPLES,
)
from kneeload.topics.catalogue import WORKER_PAIRS_BY_TEAM
from kneeload.worker import episodes as worker_episodes
from kneeload.worker.episodes import Verdict, or_clear
from kneeload.worker.timeutil import DayCalendar, iso, parse_ms, to_dt

Output = tuple[str, str, dict[str, Any]]  # (logical topic, key, event)

METRIC = "pfj_load_mpa_s"

#: measures whose sensor source a session records (``sources`` of watch samples)
SOURCE_MEASURES = (
    "ground_contact_ms",
    "vertical_oscillation_mm",
    "cadence_spm",
    "speed_mps",
    "power_w",
)


class Est(NamedTuple):
    """What the PFJ core said about one sample (see :func:`kneeload.core.pfj.assess_pfj_sample`).

    ``peak``/``impulse`` are None when the sample got no estimate (``reason`` says why);
    ``cadence`` is the cadence used (doubled when ``corrected``)."""

    peak: float | None
    impulse: float | None
    contact_ms: float | None
    contact_estimated: bool
    contact_unc_ms: float | None
    cadence: float
    corrected: bool
    gait: str
    reason: str | None
    detail: str | None
    step_m: float | None
    vgrf_bw: float | None


def parse_sources(text: str | None) -> dict[str, str]:
    """``"ground_contact_ms=dev:Ground Time;power_w=native"`` → ``{measure: source}``."""
    out: dict[str, str] = {}
    for part in (text or "").split(";"):
        k, sep, v = part.partition("=")
        if sep and k and v:
            out[k.strip()] = v.strip()
    return out


def no_estimate_summary(reasons: dict[str, list[Any]], total: int) -> str | None:
    """``"12 samples without estimate: 9 × step length 5.14 m implausible (> 2.5 m); 3 ×
    walking (…)"`` — one example sentence per reason, most frequent first."""
    if not total:
        return None
    parts = [f"{c} × {d}" for _, (c, d) in sorted(reasons.items(), key=lambda kv: -kv[1][0])]
    text = f"{total} sample{'s' if total != 1 else ''} without estimate: " + "; ".join(parts)
    return text[:1000]


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The worker's knobs (from :class:`kneeload.settings.Settings`, ``worker_*``)."""

    session_gap_s: float = 600.0
    lateness_horizon_s: float = 3 * 86400.0
    day_grace_s: float = 3600.0
    max_sample_interval_s: float = 5.0
    first_sample_interval_s: float = 1.0
    bws_stale_s: float = 30.0
    idle_close_s: float = 60.0
    publish_interval_s: float = 5.0
    alert_cooldown_s: float = 12 * 3600.0
    acwr_history_days: int = 60
    pain_preset: str = "lever"
    default_body_mass_kg: float = 70.0
    spike_window_days: float = 30.0
    spike_min_sessions: int = 3
    trend_alerts: bool = False  # acwr_high and load_spike_wow alerts

    @property
    def spike(self) -> SpikeConfig:
        return SpikeConfig(window_days=self.spike_window_days, min_sessions=self.spike_min_sessions)

    @classmethod
    def from_settings(cls, s: Any) -> WorkerConfig:
        return cls(
            session_gap_s=s.worker_session_gap_s,
            lateness_horizon_s=s.worker_lateness_horizon_s,
            day_grace_s=s.worker_day_grace_s,
            max_sample_interval_s=s.worker_max_sample_interval_s,
            first_sample_interval_s=s.worker_first_sample_interval_s,
            bws_stale_s=s.worker_bws_stale_s,
            idle_close_s=s.worker_idle_close_s,
            publish_interval_s=s.worker_publish_interval_s,
            alert_cooldown_s=s.worker_alert_cooldown_s,
            acwr_history_days=s.worker_acwr_history_days,
            pain_preset=s.worker_pain_preset,
            default_body_mass_kg=s.worker_default_body_mass_kg,
            spike_window_days=s.alert_spike_window_days,
            spike_min_sessions=s.alert_spike_min_sessions,
            trend_alerts=s.alert_trend_alerts,
        )

    @property
    def preset(self) -> core_pain.PainPreset:
        return core_pain.preset_by_code(self.pain_preset)


def new_state(athlete_id: str, cfg: WorkerConfig) -> dict[str, Any]:
    """Empty state of one athlete."""
    return {
        "athlete_id": athlete_id,
        "team_id": None,
        "tz": "UTC",
        "body_mass_kg": None,
        "calibration": None,
        "wm": None,  # watermark, epoch ms
        "sessions": {},
        "dayload": {},  # date -> {session_id: load}
        "days": {},  # date -> {rev, final, corrected_pending, dirty, out}
        "acwr": AcwrTracker(AcwrConfig(), cfg.acwr_history_days).to_dict(),
        "bws": [],  # [[t_ms, unit_id | None, bws_pct]]
        "pain": [],  # [[t_ms, nrs, context, session_id, report_id]]
        "corr": {},  # "lag<k>" -> PairedObservations.to_dict()
        "corr_t": {},  # "lag<k>" -> latest event time (ms) of a change to those pairs
        "corr_team": None,  # the team the pairs were last shared with
        "cooldown": {},
        "last_proc": 0,
        "last_pub": 0,
    }


def _chunk_key(aid: str, sid: str, batch_id: str) -> str:
    return f"{aid}|{sid}|{batch_id}"


def _sample_row(s: dict[str, Any]) -> list[Any]:
    """A watch sample as the worker's row: [time ms, record id, time text, speed, cadence,
    contact, grade, late flag, vertical load, contact source]. Raises for a sample it cannot
    read (a time datetime refuses, a missing or non-numeric speed or cadence)."""
    src = s.get("sources")
    return [
        parse_ms(s["time"]),
        s["record_id"],
        s["time"],
        float(s["speed_mps"]),
        float(s["cadence_spm"]),
        s.get("ground_contact_ms"),
        _num(s.get("grade_pct")),
        0,
        s.get("vertical_load_bw"),  # device-measured (e.g. an insole), else None
        parse_sources(src).get("ground_contact_ms") if src else None,
    ]


def _sample_dead_letter(batch: dict[str, Any], s: Any, exc: Exception) -> Output:
    from kneeload.contracts import dead_letter

    rid = s.get("record_id") if isinstance(s, dict) else None
    ev = dead_letter(
        "worker",
        "sample_unreadable",
        f"sample {rid!r} of batch {batch.get('batch_id')!r}: {exc!r}"[:2000],
        orjson.dumps({**batch, "samples": [s]}),
        topic=WATCH_SAMPLES,
        key=batch.get("athlete_id"),
    )
    return ("deadletter", "worker", ev)


def _sums(acc: dict[str, Any]) -> core_session.LoadSums:
    """A session accumulator's sums as core's :class:`~kneeload.core.session.LoadSums`."""
    return core_session.LoadSums(
        acc["n"], acc["dur"], acc["dist"], acc["s_speed"], acc["s_cad"], acc["s_bws"],
        acc["peak"], acc["load"],
    )  # fmt: skip


def _num(x: Any, default: float = 0.0) -> float:
    return default if x is None else float(x)


class AthleteProcessor:
    """Runs the per-athlete logic over a state dict and a chunk store."""

    def __init__(self, cfg: WorkerConfig, chunks: MutableMapping[str, bytes]) -> None:
        self.cfg = cfg
        self.chunks = chunks
        self._cal: dict[str, DayCalendar] = {}
        self._memo: dict[tuple[int, str], tuple[str | None, float, Any]] = {}
        self._params: dict[str, PfjParams] = {}

    # ------------------------------------------------------------------ rebuild
    def seed_days(self, st: dict[str, Any], days: list[tuple[str, float]]) -> None:
        """``kneeload rebuild-state``: final daily loads from the database (days before the
        replay window), pushed through the ACWR tracker in date order like live days."""
        if not days:
            return
        for d, load in days:
            st["dayload"][d] = {"": load}
        self._set_days(st, sorted({d for d, _ in days} | set(st.get("dirty_dates") or [])))
        for d, _ in days:
            st["days"][d]["final"] = True

    def settle(self, st: dict[str, Any], now_ms: int) -> list[Output]:
        """``kneeload rebuild-state``: apply pending days and mark everything published
        (the caller then marks dirty what the database does not hold yet); returns what
        that publishing would have sent."""
        self._set_days(st, st.get("dirty_dates") or [])
        return self._flush(st, now_ms)

    # ------------------------------------------------------------------ helpers
    def cal(self, st: dict[str, Any]) -> DayCalendar:
        tz = st.get("tz") or "UTC"
        c = self._cal.get(tz)
        if c is None:
            c = self._cal[tz] = DayCalendar(tz)
        return c

    def params(self, st: dict[str, Any]) -> PfjParams:
        key = orjson.dumps(st.get("calibration")).decode()
        p = self._params.get(key)
        if p is None:
            p = DEFAULT_PFJ_PARAMS
            c = st.get("calibration")
            if isinstance(c, dict):
                try:
                    fields = {k: c[k] for k in PfjCalibration.__dataclass_fields__ if k in c}
                    p = DEFAULT_PFJ_PARAMS.calibrated(PfjCalibration(**fields))
                except (TypeError, ValueError):
                    p = DEFAULT_PFJ_PARAMS
            self._params[key] = p
        return p

    def _bws_lookup(self, st: dict[str, Any]) -> tuple[list[int], list[list[Any]]]:
        tl = st["bws"]
        return [e[0] for e in tl], tl

    def _join(self, times: list[int], tl: list[list[Any]], t: int) -> tuple[str | None, float]:
        """(unit_id, bws_pct) valid at event time ``t``: the latest entry at or before it."""
        i = bisect.bisect_right(times, t) - 1
        if i < 0:
            return None, 0.0
        e = tl[i]
        if e[1] is None or t - e[0] > self.cfg.bws_stale_s * 1000:
            return None, 0.0
        return e[1], float(e[2])

    def _estimate(self, st: dict[str, Any], p: PfjParams, row: list[Any], bws: float) -> Est:
        """The core's verdict on one row: an estimate, or none with the reason (walking, an
        input outside its plausibility bounds). The sample is kept and counted either way."""
        v, f, gc, grade = row[3], row[4], row[5], row[6]
        mass = st["body_mass_kg"] or self.cfg.default_body_mass_kg
        chk, s = assess_pfj_sample(v, f, mass, gc, grade, bws, p)
        if s is None:
            return Est(None, None, gc, False, None, chk.cadence_spm, chk.cadence_corrected,
                       chk.gait.value, chk.reason, chk.detail, chk.step_length_m, None)  # fmt: skip
        return Est(
            s.peak_pfj_stress_mpa,
            s.pfj_impulse_per_step_mpa_s,
            s.ground_contact_ms,
            s.contact_estimated,
            s.contact_uncertainty_ms if s.contact_estimated else None,
            s.cadence_spm,
            s.cadence_corrected,
            chk.gait.value,
            None,
            None,
            s.step_length_m,
            s.peak_vgrf_bw,
        )

    # ------------------------------------------------------------------ registry
    def on_registry(self, st: dict[str, Any], rec: dict[str, Any] | None) -> list[Output]:
        """An ``athlete_record``; a changed team moves the athlete's correlation pairs
        from the old team's repeated-measures correlation to the new one's."""
        if rec is None:
            return []
        st["team_id"] = rec.get("team_id", st.get("team_id"))
        st["tz"] = rec.get("time_zone") or "UTC"
        st["body_mass_kg"] = rec.get("body_mass_kg")
        st["calibration"] = rec.get("calibration")
        if st["corr"] and st.get("corr_team") != st["team_id"]:
            return self.share_pairs(st, st["team_id"])
        return []

    # ------------------------------------------------------------------ samples
    def on_batch(self, st: dict[str, Any], batch: dict[str, Any], now_ms: int) -> list[Output]:
        """One ``watch_sample_batch``: returns the events to publish."""
        st["last_proc"] = now_ms
        if batch.get("team_id") is not None:
            st["team_id"] = batch["team_id"]
        rows: list[list[Any]] = []
        sources: dict[str, str] = {}
        refused: list[Output] = []
        for s in batch["samples"]:
            try:
                row = _sample_row(s)
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                # one sample the worker cannot read is dead-lettered alone, never its batch
                refused.append(_sample_dead_letter(batch, s, exc))
                continue
            src = s.get("sources")
            if src and not sources:  # one source per measure and session: the importer chose
                sources = parse_sources(src)
            rows.append(row)
        if not rows:
            return refused
        return refused + self._on_rows(st, batch, rows, sources, now_ms)

    def _on_rows(
        self,
        st: dict[str, Any],
        batch: dict[str, Any],
        rows: list[list[Any]],
        sources: dict[str, str],
        now_ms: int,
    ) -> list[Output]:
        """The batch's readable samples (rows of :func:`_sample_row`) into the state."""
        cfg = self.cfg
        aid = st["athlete_id"]
        rows.sort(key=lambda r: (r[0], r[1]))
        explicit = batch.get("session_id")
        sid = explicit or self._gap_session(st, rows[0][0], rows[-1][0])
        ckey = _chunk_key(aid, sid, batch["batch_id"])
        known = st["sessions"].get(sid)
        if known is not None and batch["batch_id"] in known["chunks"]:
            # a replay of a batch the STATE has counted: re-emit, count nothing. The state
            # decides, not the chunk store: the two changelogs are written separately (the
            # state once per take), so after a crash a chunk may exist for a batch the
            # recovered state never counted, and then it must be counted now.
            raw = self.chunks.get(ckey)
            old = orjson.loads(raw)["rows"] if raw is not None else rows
            return [self._sample_load_out(st, sid, batch["batch_id"], old)]
        wm = st["wm"]
        horizon_ms = cfg.lateness_horizon_s * 1000
        if wm is not None:
            for r in rows:
                if r[0] < wm - horizon_ms:
                    r[7] = 1
        self.chunks[ckey] = orjson.dumps({"b": batch["batch_id"], "rows": rows})
        self._memo = {}
        out = [self._sample_load_out(st, sid, batch["batch_id"], rows, memo=True)]
        live = [r for r in rows if not r[7]]
        if live:
            sess = st["sessions"].get(sid)
            if sess is None:
                sess = st["sessions"][sid] = self._new_session(sid, explicit is not None)
            sess["chunks"].append(batch["batch_id"])
            if sources:
                have = sess.setdefault("sources", {})
                for k, v in sources.items():
                    if k in have and v not in have[k].split(", "):
                        have[k] = f"{have[k]}, {v}"  # a device mixed sources: say so
                    else:
                        have.setdefault(k, v)
            if sess["status"] == "closed":
                sess["reopened"] = True
            acc = sess["acc"]
            if (acc is None and len(sess["chunks"]) == 1) or (
                acc is not None and live[0][0] > acc["last_t"]
            ):
                self._accumulate(st, sess, self._dedup(live))
            else:
                self._recompute(st, sess)
            sess["dirty"] = True
            top = live[-1][0]
            st["wm"] = top if wm is None else max(wm, top)
            self._apply_session_days(st, sess)
            if sess["status"] == "open":
                out += self._alerts(st, [self._spike_so_far(st, sess)])
        out += self._advance(st, now_ms, idle=False)
        return out

    def _gap_session(self, st: dict[str, Any], t0: int, t1: int) -> str:
        gap = self.cfg.session_gap_s * 1000
        best: dict[str, Any] | None = None
        for s in st["sessions"].values():
            if s["explicit"] or s["acc"] is None:
                continue
            a = s["acc"]
            if (
                a["start"] - gap <= t1
                and t0 <= a["end"] + gap
                and (best is None or a["end"] > best["acc"]["end"])
            ):
                best = s
        if best is not None:
            return str(best["sid"])
        return f"{st['athlete_id']}:{t0}"

    @staticmethod
    def _new_session(sid: str, explicit: bool) -> dict[str, Any]:
        return {
            "sid": sid,
            "explicit": explicit,
            "chunks": [],
            "acc": None,
            "status": "open",
            "rev": -1,
            "dirty": False,
            "minutes_dirty": [],
            "minute_rev": {},
            "applied": {},
            "reopened": False,
        }

    @staticmethod
    def _dedup(rows: list[list[Any]]) -> list[list[Any]]:
        """Sorted rows, one per time (the smallest record_id wins)."""
        out: list[list[Any]] = []
        last = None
        for r in rows:
            if r[0] != last:
                out.append(r)
                last = r[0]
        return out

    def _accumulate(self, st: dict[str, Any], sess: dict[str, Any], rows: list[list[Any]]) -> None:
        """Add time-ordered, de-duplicated rows (all later than the session's last) to its sums."""
        cfg = self.cfg
        acc = sess["acc"]
        if acc is None:
            acc = sess["acc"] = {
                "n": 0,
                "dur": 0.0,
                "dist": 0.0,
                "s_speed": 0.0,
                "s_cad": 0.0,
                "s_bws": 0.0,
                "peak": None,
                "load": 0.0,
                "start": rows[0][0],
                "end": rows[0][0],
                "last_t": None,
                "by_date": {},
                "minutes": {},
                "unit": None,
                "n_est": 0,
                "n_walk": 0,
                "n_corr": 0,
                "n_cest": 0,
                "reasons": {},
            }
        cal = self.cal(st)
        p = self.params(st)
        times, tl = self._bws_lookup(st)
        first_dt, max_dt = cfg.first_sample_interval_s, cfg.max_sample_interval_s
        by_date = acc["by_date"]
        minutes = acc["minutes"]
        mdirty = set(sess["minutes_dirty"])
        last_t = acc["last_t"]
        memo = self._memo
        join, estimate, date_iso = self._join, self._estimate, cal.date_iso
        # the sums in locals (same additions in the same order as on the dict: identical
        # floating-point results), written back once per call
        n, dur, dist, s_speed, s_cad, s_bws = (
            acc["n"], acc["dur"], acc["dist"], acc["s_speed"], acc["s_cad"], acc["s_bws"],
        )  # fmt: skip
        peak, total, unit_last = acc["peak"], acc["load"], acc["unit"]
        n_est, n_walk = acc.get("n_est", 0), acc.get("n_walk", 0)
        n_corr, n_cest = acc.get("n_corr", 0), acc.get("n_cest", 0)
        reasons = acc.setdefault("reasons", {})
        d: str | None = None
        d_lo = d_hi = m_lo = m_hi = 0
        d_sum = 0.0
        m: list[Any] = []
        for r in rows:
            t = r[0]
            dt_s = sample_interval_s(t, last_t, first_dt, max_dt)
            last_t = t
            hit = memo.pop((t, r[1]), None) if memo else None
            if hit is not None:
                unit, bws, est = hit
            else:
                unit, bws = join(times, tl, t)
                est = estimate(st, p, r, bws)
            v, f = r[3], est.cadence  # the cadence used: doubled when it was strides/min
            if est.impulse is not None:
                load = pfj_sample_load_mpa_s(est.impulse, f, dt_s)
                n_est += 1
                n_cest += est.contact_estimated
            else:
                load = 0.0
                n_walk += est.reason == "walking"
                why = reasons.get(est.reason or "")
                if why is None:
                    reasons[est.reason or "unknown"] = [1, est.detail or est.reason]
                else:
                    why[0] += 1
            n_corr += est.corrected
            n += 1
            dur += dt_s
            dist += v * dt_s
            s_speed += v
            s_cad += f
            s_bws += bws
            total += load
            if est.peak is not None and (peak is None or est.peak > peak):
                peak = est.peak
            if unit is not None:
                unit_last = unit
            if not d_lo <= t < d_hi:  # another local day (rare): switch the running sum
                if d is not None:
                    by_date[d] = d_sum
                d = date_iso(t)
                d_lo, d_hi = cal.span()
                d_sum = by_date.get(d, 0.0)
            d_sum += load
            if not m_lo <= t < m_hi:  # another minute: switch the aggregate
                m_lo = t - t % 60000
                m_hi = m_lo + 60000
                mk = str(m_lo)
                m = minutes.get(mk)
                if m is None:
                    m = minutes[mk] = [0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, None]
                mdirty.add(mk)
            m[0] += 1
            m[1] += dt_s
            m[2] += v * dt_s
            m[3] += v
            m[4] += f
            m[5] += bws
            if est.peak is not None and est.peak > m[6]:
                m[6] = est.peak
            m[7] += load
            if unit is not None:
                m[8] = unit
        if d is not None:
            by_date[d] = d_sum
        acc["n"], acc["dur"], acc["dist"] = n, dur, dist
        acc["s_speed"], acc["s_cad"], acc["s_bws"] = s_speed, s_cad, s_bws
        acc["peak"], acc["load"], acc["unit"] = peak, total, unit_last
        acc["n_est"], acc["n_walk"], acc["n_corr"], acc["n_cest"] = n_est, n_walk, n_corr, n_cest
        acc["start"] = min(acc["start"], rows[0][0])
        acc["end"] = max(acc["end"], last_t)
        acc["last_t"] = last_t
        sess["minutes_dirty"] = sorted(mdirty)
        self._memo = {}

    def _session_rows(self, st: dict[str, Any], sess: dict[str, Any]) -> list[list[Any]]:
        aid = st["athlete_id"]
        rows: list[list[Any]] = []
        for b in sess["chunks"]:
            raw = self.chunks.get(_chunk_key(aid, sess["sid"], b))
            if raw is not None:
                rows.extend(r for r in orjson.loads(raw)["rows"] if not r[7])
        rows.sort(key=lambda r: (r[0], r[1]))
        return self._dedup(rows)

    def _recompute(self, st: dict[str, Any], sess: dict[str, Any]) -> None:
        """Rebuild a session's sums from its stored chunks (out-of-order data, late setpoints)."""
        old = set(sess["acc"]["minutes"]) if sess["acc"] else set()
        sess["acc"] = None
        rows = self._session_rows(st, sess)
        if rows:
            self._accumulate(st, sess, rows)
        new = set(sess["acc"]["minutes"]) if sess["acc"] else set()
        sess["minutes_dirty"] = sorted(old | new)

    def _apply_session_days(self, st: dict[str, Any], sess: dict[str, Any]) -> None:
        """Push the session's per-day load into the day totals and the ACWR tracker."""
        acc = sess["acc"]
        by_date = acc["by_date"] if acc else {}
        sid = sess["sid"]
        changed = []
        for d in sorted(set(by_date) | set(sess["applied"])):
            new = by_date.get(d, 0.0)
            if sess["applied"].get(d) != new:
                st["dayload"].setdefault(d, {})[sid] = new
                sess["applied"][d] = new
                changed.append(d)
        if changed:
            st.setdefault("dirty_dates", [])
            st["dirty_dates"] = sorted(set(st["dirty_dates"]) | set(changed))

    def _set_days(self, st: dict[str, Any], dates: list[str]) -> None:
        st["dirty_dates"] = []
        if not dates:
            return
        tr = AcwrTracker.from_dict(st["acwr"])
        for d in sorted(dates):
            loads = st["dayload"].get(d, {})
            total = 0.0
            for k in sorted(loads):
                total += loads[k]
            try:
                results = tr.set_day(dt.date.fromisoformat(d), total)
            except LateDayTooOldError:
                continue
            for r in results:
                self._day_result(st, r)
        st["acwr"] = tr.to_dict()

    def _day_result(self, st: dict[str, Any], r: DailyAcwr) -> None:
        assert r.date is not None
        d = r.date.isoformat()
        day = st["days"].get(d)
        if day is None:
            day = st["days"][d] = {
                "rev": -1,
                "final": False,
                "corrected": False,
                "dirty": True,
                "out": None,
            }
        out = {
            "load": r.load,
            "methods": {
                m: dict(zip(("acute", "chronic", "acwr", "reason"), r.method(m), strict=True))
                for m in ("ewma", "rac", "rau")
            },
            "week_over_week_pct": r.wow_change_pct,
            "monotony": r.monotony,
            "strain": r.strain,
            "atl": r.atl,
            "ctl": r.ctl,
            "tsb": r.tsb,
        }
        if out != day["out"]:
            day["out"] = out
            day["dirty"] = True
            if day["final"]:
                day["corrected"] = True

    # ------------------------------------------------------------------ time passing
    def _advance(self, st: dict[str, Any], now_ms: int, idle: bool) -> list[Output]:
        """Close sessions and finalise days the watermark (or the idle timer) has passed."""
        cfg = self.cfg
        wm = st["wm"]
        force = False
        closed_now: list[dict[str, Any]] = []
        corr_out: list[Output] = []
        if wm is not None:
            gap = cfg.session_gap_s * 1000
            for s in st["sessions"].values():
                if s["acc"] is None:
                    continue
                if s["status"] == "open" and (idle or wm > s["acc"]["end"] + gap):
                    s["status"] = "closed"
                    s["dirty"] = True
                    force = True
                    closed_now.append(s)
                elif s["reopened"]:
                    force = True
                s["reopened"] = False
            cal = self.cal(st)
            grace = cfg.day_grace_s * 1000
            wm_day = cal.date_iso(wm)
            dirty = st.get("dirty_dates") or []
            due = idle or now_ms - st["last_pub"] >= cfg.publish_interval_s * 1000
            if dirty and (force or due or any(d not in st["days"] for d in dirty)):
                self._set_days(st, dirty)
                corr_out = self._refresh_corr(st)
            for d, day in st["days"].items():
                if day["final"]:
                    if day["dirty"]:
                        force = True
                    continue
                if wm >= cal.end_of_day_ms(d) + grace or (idle and d <= wm_day):
                    day["final"] = True
                    day["dirty"] = True
                    force = True
        out: list[Output] = []
        if force or idle or now_ms - st["last_pub"] >= cfg.publish_interval_s * 1000:
            out = self._flush(st, now_ms)
        out += corr_out
        for s in closed_now:  # reports that arrived before the session was complete
            for p in self._session_reports(st, s):
                out += self.on_pain(st, self._report(st, p), now_ms, rerun=True)
        self._prune(st)
        return out

    def on_tick(self, st: dict[str, Any], now_ms: int) -> list[Output]:
        """Processing-time timer: an athlete idle for ``idle_close_s`` gets everything closed."""
        cfg = self.cfg
        idle = cfg.idle_close_s > 0 and now_ms - st["last_proc"] >= cfg.idle_close_s * 1000
        pending = (
            bool(st.get("dirty_dates"))
            or any(s["status"] == "open" or s["dirty"] for s in st["sessions"].values())
            or any((not d["final"]) or d["dirty"] for d in st["days"].values())
        )
        if not pending:
            return []
        if idle:
            return self._advance(st, now_ms, idle=True)
        if now_ms - st["last_pub"] >= cfg.publish_interval_s * 1000:
            return self._advance(st, now_ms, idle=False)
        return []

    # ------------------------------------------------------------------ publishing
    def _flush(self, st: dict[str, Any], now_ms: int) -> list[Output]:
        aid = st["athlete_id"]
        team = st["team_id"]
        out: list[Output] = []
        alerts: list[Verdict] = []
        subject = f"athlete:{aid}"
        for s in st["sessions"].values():
            if not s["dirty"] or s["acc"] is None:
                continue
            s["dirty"] = False
            s["rev"] += 1
            summary = self._summary(st, s)
            out.append((SESSIONS, aid, summary))
            for mk in s["minutes_dirty"]:
                m = s["acc"]["minutes"].get(mk)
                if m is None:
                    continue
                rev = s["minute_rev"].get(mk, -1) + 1
                s["minute_rev"][mk] = rev
                out.append((LOAD_MINUTE, aid, self._minute_out(st, s["sid"], mk, m, rev)))
            s["minutes_dirty"] = []
            if s["status"] == "closed" and s["rev"] >= 0:
                alerts.append(self._session_spike(st, s, subject))
        cal = self.cal(st)
        for d in sorted(st["days"]):
            day = st["days"][d]
            if not day["dirty"] or day["out"] is None:
                continue
            day["dirty"] = False
            day["rev"] += 1
            o = day["out"]
            out.append(
                (
                    DAILY_LOAD,
                    aid,
                    {
                        "id": f"{aid}:{d}:{METRIC}",
                        "athlete_id": aid,
                        "team_id": team,
                        "date": d,
                        "metric": METRIC,
                        "load": o["load"],
                        "status": "final" if day["final"] else "provisional",
                        "revision": day["rev"],
                        "corrected": day["corrected"],
                        "methods": o["methods"],
                        "week_over_week_pct": o["week_over_week_pct"],
                        "monotony": o["monotony"],
                        "strain": o["strain"],
                        "atl": o["atl"],
                        "ctl": o["ctl"],
                        "tsb": o["tsb"],
                    },
                )
            )
            if day["final"] and self.cfg.trend_alerts:
                # off by default: ACWR and week-on-week did not predict injury in the largest
                # cohort (Frandsen et al. 2025); still computed and shown
                when = to_dt(cal.end_of_day_ms(d) - 1000)
                ew = o["methods"]["ewma"]
                alerts.append(
                    or_clear(
                        core_alerts.check_acwr(
                            aid,
                            team,
                            when,
                            ew["acwr"],
                            ew["acute"],
                            ew["chronic"],
                            "ewma",
                            self._thresholds(),
                        ),
                        core_alerts.AlertKind.ACWR_HIGH,
                        subject,
                        when,
                        d,
                        evaluable=ew["acwr"] is not None,
                    )
                )
                wow = o["week_over_week_pct"]
                alerts.append(
                    or_clear(
                        core_alerts.check_week_over_week(
                            aid, team, when, wow, None, self._thresholds()
                        ),
                        core_alerts.AlertKind.LOAD_SPIKE_WOW,
                        subject,
                        when,
                        d,
                        evaluable=wow is not None,
                    )
                )
        out += self._alerts(st, alerts)
        st["last_pub"] = now_ms
        return out

    @staticmethod
    def _minute_out(
        st: dict[str, Any], sid: str, mk: str, m: list[Any], rev: int
    ) -> dict[str, Any]:
        """A ``load_minute`` event: the minute's figures from core."""
        aid = st["athlete_id"]
        f = core_session.minute_figures(core_session.MinuteSums(*m))
        return {
            "id": f"{aid}:{iso(int(mk))}",
            "athlete_id": aid,
            "team_id": st["team_id"],
            "session_id": sid,
            "unit_id": m[8],
            "minute": iso(int(mk)),
            "samples": f.samples,
            "duration_s": f.duration_s,
            "distance_m": f.distance_m,
            "mean_speed_mps": f.mean_speed_mps,
            "mean_cadence_spm": f.mean_cadence_spm,
            "mean_bws_pct": f.mean_bws_pct,
            "peak_pfj_stress_mpa": f.peak_pfj_stress_mpa,
            "pfj_load_mpa_s": f.pfj_load_mpa_s,
            "revision": rev,
            "estimate": True,
        }

    def _chronic_mean(self, st: dict[str, Any], sess: dict[str, Any]) -> float | None:
        d = self.cal(st).date_iso(sess["acc"]["start"])
        day = st["days"].get(d)
        if day is None or day["out"] is None:
            return None
        c = day["out"]["methods"]["rac"]["chronic"]
        return float(c) if c is not None else None

    def _past_sessions(self, st: dict[str, Any], s: dict[str, Any]) -> list[PastSession]:
        """The sessions the ceiling of ``s`` is taken from: the ceiling history (closed
        sessions) and any other session of the state that started before ``s`` (one not
        closed yet, when the next one's first samples arrive before the watermark closes
        it), so the ceiling does not depend on when a session was closed."""
        hist: dict[str, list[float]] = st.get("spike_hist", {})
        past = {k: PastSession(int(v[0]), v[1], v[2]) for k, v in hist.items()}
        start = s["acc"]["start"]
        for o in st["sessions"].values():
            a = o["acc"]
            if a is not None and o["sid"] != s["sid"] and a["start"] < start:
                past[o["sid"]] = PastSession(a["start"], a["dist"], a["load"])
        past.pop(s["sid"], None)
        return list(past.values())

    def _spike_so_far(self, st: dict[str, Any], s: dict[str, Any]) -> Verdict:
        """A session still open after this batch that has already passed 110 % of its 30-day
        ceiling (distance or estimated PFJ load so far): the session_spike alert while the
        athlete still runs, so a coach or clinician can stop the run or raise the support.
        Nothing (not a clear) while it is below: the verdict of a session is given when it
        closes.

        Judged on every batch, not on the worker's publish timer: the observation is the
        session's data up to this batch's last sample (event time), so a replay or a
        restarted worker raises the same warnings at the same points; whether the coach
        hears it while the athlete still runs depends only on how fast the data arrives."""
        a = s["acc"]
        verdict = session_spike(
            a["dist"], a["load"], a["start"], self._past_sessions(st, s), self.cfg.spike
        )
        if verdict.spike is None:
            return None
        return core_alerts.check_session_spike(
            st["athlete_id"], st["team_id"], to_dt(a["end"]), verdict, s["sid"], in_progress=True
        )

    def _session_spike(self, st: dict[str, Any], s: dict[str, Any], subject: str) -> Verdict:
        """The closed session against the athlete's 30-day ceiling (core.spike); the session
        joins the athlete's ceiling history (kept for twice the window)."""
        a = s["acc"]
        hist: dict[str, list[float]] = st.setdefault("spike_hist", {})
        past = self._past_sessions(st, s)
        verdict = session_spike(a["dist"], a["load"], a["start"], past, self.cfg.spike)
        hist[s["sid"]] = [a["start"], a["dist"], a["load"]]
        keep = a["start"] - 2 * self.cfg.spike_window_days * 86_400_000
        for k in [k for k, v in hist.items() if v[0] < keep]:
            del hist[k]
        end = to_dt(a["end"])
        return or_clear(
            core_alerts.check_session_spike(
                st["athlete_id"], st["team_id"], end, verdict, s["sid"]
            ),
            core_alerts.AlertKind.SESSION_SPIKE,
            subject,
            end,
            s["sid"],
            evaluable=verdict.withheld is None,
        )

    def _thresholds(self) -> core_alerts.AlertThresholds:
        return core_alerts.AlertThresholds(
            cooldown=dt.timedelta(seconds=self.cfg.alert_cooldown_s),
            pain_safe_max_nrs=self.cfg.preset.safe_max_nrs,
        )

    def _alerts(self, st: dict[str, Any], found: list[Verdict]) -> list[Output]:
        """Episode changes only (kneeload.core.episodes): opened, escalated, resolved."""
        aid = st["athlete_id"]
        ids: dict[str, str | None] = {
            "athlete_id": aid,
            "unit_id": None,
            "team_id": st["team_id"],
            "clinic_id": None,
        }
        return worker_episodes.publish(st, found, f"athlete:{aid}", ids)

    def _summary(self, st: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
        a = s["acc"]
        n = a["n"]
        f = core_session.session_figures(
            _sums(a), a["start"], a["end"], self.cfg.first_sample_interval_s
        )
        return {
            "session_id": s["sid"],
            "athlete_id": st["athlete_id"],
            "team_id": st["team_id"],
            "unit_id": a["unit"],
            "start_time": iso(a["start"]),
            "end_time": iso(a["end"]),
            "duration_s": f.duration_s,
            "distance_m": f.distance_m,
            "mean_cadence_spm": f.mean_cadence_spm,
            "mean_speed_mps": f.mean_speed_mps,
            "mean_bws_pct": f.mean_bws_pct,
            "peak_pfj_stress_mpa": f.peak_pfj_stress_mpa,
            "pfj_load_mpa_s": f.pfj_load_mpa_s,
            "pfj_load_per_km": f.pfj_load_per_km,
            "samples": f.samples,
            "coverage_pct": f.coverage_pct,
            "status": s["status"],
            "revision": s["rev"],
            "estimate": True,
            "samples_estimated": a.get("n_est", n),
            "samples_without_estimate": n - a.get("n_est", n),
            "samples_walking": a.get("n_walk", 0),
            "samples_cadence_corrected": a.get("n_corr", 0),
            "samples_contact_estimated": a.get("n_cest", 0),
            "no_estimate_reasons": {k: v[0] for k, v in sorted(a.get("reasons", {}).items())},
            "no_estimate_summary": no_estimate_summary(a.get("reasons", {}), n - a.get("n_est", n)),
            "sources": dict(s.get("sources") or {}) or None,
        }

    def _sample_load_out(
        self, st: dict[str, Any], sid: str, batch_id: str, rows: list[list[Any]], memo: bool = False
    ) -> Output:
        p = self.params(st)
        times, tl = self._bws_lookup(st)
        samples = []
        for r in rows:
            unit, bws = self._join(times, tl, r[0])
            est = self._estimate(st, p, r, bws)
            if memo:
                self._memo[(r[0], r[1])] = (unit, bws, est)
            samples.append(self._sample_out(r, unit, bws, est))
        return (
            LOAD_SAMPLES,
            st["athlete_id"],
            {
                "batch_id": batch_id,
                "athlete_id": st["athlete_id"],
                "team_id": st["team_id"],
                "session_id": sid,
                "estimate": True,
                "samples": samples,
            },
        )

    @staticmethod
    def _sample_out(r: list[Any], unit: str | None, bws: float, est: Est) -> dict[str, Any]:
        """One ``load_sample``: the estimate, or none with its reason; every value estimated
        rather than measured is flagged (contact time with its uncertainty, step length,
        vertical load)."""
        device_vl = r[8] if len(r) > 8 else None
        measured_src = r[9] if len(r) > 9 and r[9] else "device"
        contact = est.contact_ms
        return {
            "record_id": r[1],
            "time": r[2],
            "speed_mps": r[3],
            "cadence_spm": r[4],
            "ground_contact_ms": contact,
            "ground_contact_estimated": est.contact_estimated,
            "grade_pct": r[6],
            "bws_pct": bws,
            "unit_id": unit,
            "peak_pfj_stress_mpa": est.peak,
            "pfj_impulse_mpa_s": est.impulse,
            "late": bool(r[7]),
            "estimated": est.peak is not None,
            "gait": est.gait,
            "no_estimate_reason": est.reason,
            "no_estimate_detail": est.detail,
            "cadence_used_spm": est.cadence,
            "cadence_corrected": est.corrected,
            "ground_contact_uncertainty_ms": est.contact_unc_ms,
            "ground_contact_source": None
            if contact is None
            else ("estimated" if est.contact_estimated else measured_src),
            "step_length_m": est.step_m,
            "step_length_estimated": est.step_m is not None,
            "vertical_load_bw": device_vl if device_vl is not None else est.vgrf_bw,
            "vertical_load_estimated": device_vl is None and est.vgrf_bw is not None,
        }

    def _prune(self, st: dict[str, Any]) -> None:
        """Forget what no future event can change (beyond the lateness horizon)."""
        wm = st["wm"]
        if wm is None:
            return
        limit = wm - (self.cfg.lateness_horizon_s + self.cfg.session_gap_s) * 1000 - 86_400_000
        for sid in [
            k
            for k, s in st["sessions"].items()
            if s["status"] == "closed" and not s["dirty"] and s["acc"] and s["acc"]["end"] < limit
        ]:
            s = st["sessions"].pop(sid)
            for b in s["chunks"]:
                self.chunks.pop(_chunk_key(st["athlete_id"], sid, b), None)
        cutoff = self.cal(st).date_iso(limit)
        for d in [
            d for d, day in st["days"].items() if d < cutoff and day["final"] and not day["dirty"]
        ]:
            st["days"].pop(d)
            st["dayload"].pop(d, None)
        if len(st["bws"]) > 2:
            keep = [e for e in st["bws"] if e[0] >= limit]
            older = [e for e in st["bws"] if e[0] < limit]
            st["bws"] = older[-1:] + keep
        st["pain"] = (
            [p for p in st["pain"] if p[0] >= wm - 30 * 86_400_000] if st["pain"] else st["pain"]
        )

    # ------------------------------------------------------------------ BWS timeline
    def on_bws(self, st: dict[str, Any], ev: dict[str, Any], now_ms: int) -> list[Output]:
        """A treadmill entry re-keyed by athlete: ``{t, unit_id | None, bws_pct}``.

        Samples already joined at or after ``t`` are re-joined: their sessions are
        recomputed and their ``sample_load`` batches re-published (same ids).
        """
        t = int(ev["t"])
        entry = [t, ev.get("unit_id"), float(ev.get("bws_pct") or 0.0)]
        tl = st["bws"]
        times = [e[0] for e in tl]
        i = bisect.bisect_left(times, t)
        if i < len(tl) and tl[i][0] == t:
            if tl[i] == entry:
                return []
            tl[i] = entry
        else:
            tl.insert(i, entry)
        out: list[Output] = []
        aid = st["athlete_id"]
        horizon = st["wm"] - self.cfg.lateness_horizon_s * 1000 if st["wm"] is not None else None
        for s in st["sessions"].values():
            a = s["acc"]
            if a is None or a["end"] < t or (horizon is not None and a["end"] < horizon):
                continue
            before = self._summary(st, s)
            self._recompute(st, s)
            if self._summary(st, s) == before:
                continue
            s["dirty"] = True
            self._apply_session_days(st, s)
            for b in s["chunks"]:
                raw = self.chunks.get(_chunk_key(aid, s["sid"], b))
                if raw is not None:
                    rows = orjson.loads(raw)["rows"]
                    if rows and rows[-1][0] >= t:
                        out.append(self._sample_load_out(st, s["sid"], b, rows))
        if out:
            out += self._advance(st, now_ms, idle=False)
        return out

    # ------------------------------------------------------------------ pain
    def _session_reports(self, st: dict[str, Any], sess: dict[str, Any]) -> list[list[Any]]:
        """The athlete's stored reports that belong to ``sess``: linked to it by id, or
        unlinked and within the session or the preset's next-day window after it."""
        a = sess["acc"]
        window_ms = self.cfg.preset.next_day_window_h * 3_600_000
        return [
            p
            for p in list(st["pain"])
            if p[3] == sess["sid"] or (p[3] is None and a["start"] <= p[0] <= a["end"] + window_ms)
        ]

    def on_pain(
        self, st: dict[str, Any], rep: dict[str, Any], now_ms: int, *, rerun: bool = False
    ) -> list[Output]:
        """Classify a pain report against the session it refers to and the athlete's baseline.

        A report that belongs to a session also re-classifies the session's other reports
        (``rerun`` marks those calls): their responses depend on every report of the
        session (the next-day value above all), so the last response of each report is the
        same whatever order the reports and the session's samples arrived in — an "after"
        report stayed ``pending`` when its next-morning report came after the session had
        closed (found by ``make chaos``)."""
        cfg = self.cfg
        aid = st["athlete_id"]
        team = rep.get("team_id") or st["team_id"]
        t = parse_ms(rep["time"])
        ctx = rep["context"]
        nrs = int(rep["pain_nrs"])
        st["pain"] = [p for p in st["pain"] if p[4] != rep["report_id"]]
        st["pain"].append([t, nrs, ctx, rep.get("session_id"), rep["report_id"], rep["time"], team])
        st["pain"].sort(key=lambda p: (p[0], p[4]))
        reports = [
            core_pain.PainReport(aid, p[1], core_pain.PainContext(p[2]), to_dt(p[0]), p[3])
            for p in st["pain"]
        ]
        when = to_dt(t)
        preset = cfg.preset
        baseline = core_pain.baseline_nrs(reports, before=when)
        sess = self._session_for(st, rep.get("session_id"), t, ctx, preset)
        this_w, last_w, change = core_pain.weekly_pain_trend(reports, when)
        sp = core_pain.SessionPain(float(nrs) if ctx == "during" else None, None, None, None)
        nd_status = expected = due = None
        if sess is not None:
            a = sess["acc"]
            end = to_dt(a["end"])
            sp = core_pain.session_pain(reports, to_dt(a["start"]), end, preset, sess["sid"])
            if sp.next_day_nrs is not None:
                nd_status = "received"
            else:
                exp, due_dt = core_pain.next_day_expected(end, st.get("tz") or "UTC", preset)
                expected, due = (
                    iso(round(exp.timestamp() * 1000)),
                    iso(round(due_dt.timestamp() * 1000)),
                )
                nd_status = "missed" if when > due_dt else "pending"
        c = core_pain.classify_session(
            sp.during_max_nrs, sp.next_day_nrs, baseline, change, preset, this_w
        )
        suggestion = load = None
        if sess is not None:
            ls = core_pain.suggest_load(c)
            load = {
                "action": ls.action.value,
                "reason": f"{ls.action.value}_after_{c.status.value}",
            }
        if sess is not None and sess["acc"]["unit"] is not None:
            unit = sess["acc"]["unit"]
            # the unit's support during the session (event time), not the latest entry the
            # worker happens to hold: telemetry of later days must not change this response
            end_ms = sess["acc"]["end"]
            cur = next((e[2] for e in reversed(st["bws"]) if e[1] == unit and e[0] <= end_ms), 0.0)
            step_cfg = core_pain.BwsStepConfig()
            cur = min(max(cur, step_cfg.min_pct), step_cfg.unit_max_pct)
            sug = core_pain.suggest_bws(cur, c, step_cfg)
            suggestion = {
                "unit_id": unit,
                "action": sug.action.value,
                "current_bws_pct": sug.current_bws_pct,
                "suggested_bws_pct": sug.suggested_bws_pct,
                "reason": f"{sug.action.value}_after_{c.status.value}",
            }
        out: list[Output] = [
            (
                PAIN_RESPONSES,
                aid,
                {
                    "id": f"{rep['report_id']}:{preset.code}",
                    "report_id": rep["report_id"],
                    "athlete_id": aid,
                    "team_id": team,
                    "session_id": sess["sid"] if sess else rep.get("session_id"),
                    "time": rep["time"],
                    "pain_nrs": nrs,
                    "context": ctx,
                    "baseline_nrs": baseline,
                    "classification": c.status.value,
                    "reason": c.reason_code,
                    "preset": preset.code,
                    "preset_source": preset.source,
                    "summary": c.reason[:1000],
                    "during_max_nrs": sp.during_max_nrs,
                    "after_max_nrs": sp.after_max_nrs,
                    "next_day_nrs": sp.next_day_nrs,
                    "next_day_status": nd_status,
                    "next_day_expected_at": expected,
                    "next_day_due_by": due,
                    "load_suggestion": load,
                    "bws_suggestion": suggestion,
                },
            )
        ]
        th = self._thresholds()
        found: list[Verdict] = []
        subject = f"athlete:{aid}"
        rid = rep["report_id"]
        if ctx in ("during", "after"):
            found.append(
                or_clear(
                    core_alerts.check_pain(aid, team, when, nrs, ctx, th),
                    core_alerts.AlertKind.PAIN_HIGH,
                    subject,
                    when,
                    rid,
                )
            )
        if sess is not None and sp.next_day_nrs is not None and sp.next_day_hours is not None:
            found.append(  # the next-day value only: an "after" report never stands in for it
                or_clear(
                    core_alerts.check_pain_not_settled(
                        aid,
                        team,
                        when,
                        baseline or 0.0,
                        sp.next_day_nrs,
                        sp.next_day_hours,
                        sess["sid"],
                        th,
                    ),
                    core_alerts.AlertKind.PAIN_NOT_SETTLED,
                    subject,
                    when,
                    sess["sid"],
                    evaluable=sp.next_day_hours >= th.pain_settle_hours * 0.5,
                )
            )
        found.append(
            or_clear(
                core_alerts.check_weekly_pain_trend(aid, team, when, this_w, last_w, th),
                core_alerts.AlertKind.PAIN_TREND_WORSENING,
                subject,
                when,
                rid,
                evaluable=this_w is not None and last_w is not None,
            )
        )
        out += self._alerts(st, found)
        out += self._correlate(st, t, ctx, nrs, team)
        if sess is not None and not rerun:
            for p in self._session_reports(st, sess):
                if p[4] != rep["report_id"]:
                    out += self.on_pain(st, self._report(st, p), now_ms, rerun=True)
        return out

    @staticmethod
    def _report(st: dict[str, Any], p: list[Any]) -> dict[str, Any]:
        return {
            "report_id": p[4],
            "athlete_id": st["athlete_id"],
            "team_id": p[6],
            "time": p[5],
            "pain_nrs": p[1],
            "context": p[2],
            "session_id": p[3],
        }

    def _session_for(
        self, st: dict[str, Any], sid: str | None, t: int, ctx: str, preset: core_pain.PainPreset
    ) -> dict[str, Any] | None:
        if sid and sid in st["sessions"] and st["sessions"][sid]["acc"] is not None:
            return st["sessions"][sid]
        window_ms = preset.next_day_window_h * 3_600_000
        best = None
        for s in st["sessions"].values():
            a = s["acc"]
            if a is None:
                continue
            inside = a["start"] <= t <= a["end"]
            after = a["end"] < t <= a["end"] + window_ms and ctx != "during"
            if (inside or after) and (best is None or a["end"] > best["acc"]["end"]):
                best = s
        return best

    def _correlate(
        self, st: dict[str, Any], t: int, ctx: str, nrs: int, team: str | None
    ) -> list[Output]:
        if ctx not in ("during", "next_morning"):
            return []
        lag = 0 if ctx == "during" else 1
        cal = self.cal(st)
        day = dt.date.fromisoformat(cal.date_iso(t)) - dt.timedelta(days=lag)
        # day totals wait for the publish interval (processing time): apply the pending ones
        # first, so the pair holds the day's load as the data stand, not as they stood at
        # the last publish (the pair was then refreshed later, under another event time)
        out: list[Output] = []
        if st.get("dirty_dates"):
            self._set_days(st, st["dirty_dates"])
            out += self._refresh_corr(st)
        load = AcwrTracker.from_dict(st["acwr"]).load_on(day)
        if load is None:
            return out
        key = f"lag{lag}"
        po = (
            PairedObservations.from_dict(st["corr"][key])
            if key in st["corr"]
            else PairedObservations()
        )
        po.add(day.isoformat(), load, float(nrs))
        st["corr"][key] = po.to_dict()
        self._touch_corr(st, key, t)
        out += self._corr_events(st, po, lag, day.isoformat(), iso(t), team)
        return out + self.share_pairs(st, team)

    @staticmethod
    def _touch_corr(st: dict[str, Any], key: str, t: int) -> None:
        """Event time of the latest change to the pairs of ``key`` (never moves back)."""
        times = st.setdefault("corr_t", {})
        times[key] = max(int(times.get(key, 0)), t)

    def _pairs_time(self, st: dict[str, Any], pairs: list[list[Any]]) -> int:
        """Event time for pairs without a recorded change time (state from before
        ``corr_t`` existed): the end of the latest load day."""
        return self.cal(st).end_of_day_ms(max(str(p[0]) for p in pairs)) - 1000

    def share_pairs(self, st: dict[str, Any], team: str | None) -> list[Output]:
        """The athlete's correlation pairs for the team agent (topic ``worker.pairs-by-team``,
        key team_id).

        Each message is a snapshot of every series (metric × lag) the athlete has, each
        bounded by :class:`kneeload.core.correlation.PairedObservations` (at most
        ``max_pairs`` pairs), so the latest message per athlete is all a team needs
        (:class:`kneeload.worker.team.TeamProcessor`). When the athlete's team changed,
        the old team first gets an empty snapshot (the athlete leaves it).

        Parameters
        ----------
        st : dict
            The athlete's state; ``corr_team`` is updated.
        team : str or None
            The team to share with; None shares with nobody (and leaves the old team).

        Returns
        -------
        list of Output
            Zero, one or two ``(worker.pairs-by-team, team_id, message)`` entries.
        """
        aid = st["athlete_id"]
        out: list[Output] = []
        prev = st.get("corr_team")
        if prev is not None and prev != team:
            out.append(
                (WORKER_PAIRS_BY_TEAM, prev, {"team_id": prev, "athlete_id": aid, "series": {}})
            )
        st["corr_team"] = team
        if team is not None:
            out.append((WORKER_PAIRS_BY_TEAM, team, self.pairs_snapshot(st, team)))
        return out

    def pairs_snapshot(self, st: dict[str, Any], team: str) -> dict[str, Any]:
        """The message :meth:`share_pairs` sends to ``team`` (no side effects).

        Returns
        -------
        dict
            ``{"team_id", "athlete_id", "series": {"<metric>:<lag>": {"t": ms,
            "pairs": [[load day, load, pain], ...]}}}``.
        """
        times = st.get("corr_t") or {}
        series = {
            f"{METRIC}:{key[3:]}": {
                "t": int(times.get(key) or self._pairs_time(st, raw["pairs"])),
                "pairs": raw["pairs"],
            }
            for key, raw in sorted(st["corr"].items())
            if raw["pairs"]
        }
        return {"team_id": team, "athlete_id": st["athlete_id"], "series": series}

    def _corr_events(
        self,
        st: dict[str, Any],
        po: PairedObservations,
        lag: int,
        day: str,
        time_iso: str,
        team: str | None,
    ) -> list[Output]:
        aid = st["athlete_id"]
        out: list[Output] = []
        for method in ("spearman", "pearson"):
            r = po.result(method)
            out.append(
                (
                    CORRELATIONS,
                    aid,
                    {
                        "id": f"athlete:{aid}:{METRIC}:{lag}:{method}:{day}",
                        "scope": "athlete",
                        "athlete_id": aid,
                        "team_id": team,
                        "metric": METRIC,
                        "lag_days": lag,
                        "method": method,
                        "n": r.n,
                        "r": r.r,
                        "df": r.n - 2 if r.r is not None else None,
                        "ci_low": r.ci_low,
                        "ci_high": r.ci_high,
                        "p_value": r.p_value,
                        "withheld_reason": r.reason_code if r.r is None else None,
                        "time": time_iso,
                    },
                )
            )
        return out

    def _refresh_corr(self, st: dict[str, Any]) -> list[Output]:
        """A day's load was corrected (late data): update the pairs that used the old
        load and re-publish those correlations (id of the corrected day: replays upsert)."""
        if not st["corr"]:
            return []
        tr: AcwrTracker | None = None
        out: list[Output] = []
        for key, raw in sorted(st["corr"].items()):
            po = PairedObservations.from_dict(raw)
            changed: list[str] = []
            for d, x, y in [tuple(pair) for pair in raw["pairs"]]:
                if tr is None:
                    tr = AcwrTracker.from_dict(st["acwr"])
                load = tr.load_on(dt.date.fromisoformat(d))
                if load is not None and load != x:
                    po.add(d, load, y)
                    changed.append(d)
            if changed:
                st["corr"][key] = po.to_dict()
                d = max(changed)
                t = self.cal(st).end_of_day_ms(d) - 1000
                self._touch_corr(st, key, t)
                out += self._corr_events(st, po, int(key[3:]), d, iso(t), st["team_id"])
        if out:
            out += self.share_pairs(st, st["team_id"])
        return out


def alert_out(a: core_alerts.Alert) -> Output:
    """A core :class:`Alert` as an ``alert`` event (id = its dedup key, so replays upsert)."""
    kind, key = a.kind.value, a.dedup_key  # core's kinds are the schema's enum
    ev = {
        "alert_id": key,
        "dedup_key": key,
        "kind": kind,
        "severity": a.severity.value,
        "athlete_id": a.athlete_id,
        "unit_id": a.unit_id,
        "team_id": a.team_id,
        "clinic_id": a.clinic_id,
        "event_time": iso(round(a.event_time.timestamp() * 1000)),
        "message": a.message[:1000],
        "values": dict(a.values),
    }
    return (ALERTS, a.athlete_id or a.unit_id or "", ev)
