"""Per-athlete stream logic, plain Python (no Kafka): what the athlete agent runs.

State per athlete is one typed :class:`kneeload.worker.state.AthleteState` (msgspec
Structs, MessagePack in the table; :func:`new_state`); raw sample chunks live in a separate
mapping (``chunks``: one entry per input batch, key ``athlete|session|batch_id``, packed
into one entry per closed session, ``athlete|session|#0``) so a session can be recomputed
exactly from its inputs. Both are Faust tables in the worker
and plain objects in the tests. Every number a session or a minute reports comes from
:mod:`kneeload.core.session` (sums, means, load per km, coverage).

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
import logging
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
from kneeload.worker.state import (
    AthleteState,
    BwsEntry,
    Chunk,
    Day,
    Pack,
    PainEntry,
    Reason,
    SampleRow,
    Session,
    SessionAcc,
    SpikeEntry,
    decode_chunk,
    decode_pack,
    encode_chunk,
    encode_pack,
)
from kneeload.worker.timeutil import DayCalendar, iso, parse_ms, to_dt

Output = tuple[str, str, dict[str, Any]]  # (logical topic, key, event)

log = logging.getLogger("kneeload.worker")

METRIC = "pfj_load_mpa_s"
#: The weekly pain trend's fields of a ``daily_load`` row (core.pain.weekly_pain_trend).
_PAIN_FIELDS = ("pain_mean_7d_nrs", "pain_mean_prev_7d_nrs", "pain_trend")
_TREND_CONTEXTS = frozenset(c.value for c in core_pain.TREND_CONTEXTS)

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


def no_estimate_summary(reasons: dict[str, Reason], total: int) -> str | None:
    """``"12 samples without estimate: 9 × step length 5.14 m implausible (> 2.5 m); 3 ×
    walking (…)"`` — one example sentence per reason, most frequent first."""
    if not total:
        return None
    ranked = sorted(reasons.values(), key=lambda r: -r.count)
    parts = [f"{r.count} × {r.detail}" for r in ranked]
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
    pain_trend_delta_nrs: float = 1.0  # core.pain.pain_trend_label and the trend alert

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
            pain_trend_delta_nrs=s.worker_pain_trend_delta_nrs,
        )

    @property
    def preset(self) -> core_pain.PainPreset:
        return core_pain.preset_by_code(self.pain_preset)


def new_state(athlete_id: str, cfg: WorkerConfig) -> AthleteState:
    """Empty state of one athlete."""
    return AthleteState(athlete_id, acwr=AcwrTracker(AcwrConfig(), cfg.acwr_history_days).to_dict())


def _chunk_key(aid: str, sid: str, batch_id: str) -> str:
    return f"{aid}|{sid}|{batch_id}"


#: rows per packed record of a closed session's chunks (~2.8 h at 1 Hz; a real watch's rows
#: compress to ~18 B each, so ~180 KB — any rows stay well under Kafka's 1 MB per record)
PACK_MAX_ROWS = 10_000
#: a closed session that got this many more batches (late data) is packed again at once;
#: fewer wait for the idle timer (so a late stream into it is not repacked per batch)
PACK_AFTER_BATCHES = 64


def _pack_key(aid: str, sid: str, part: int) -> str:
    """Key of part ``part`` of a closed session's packed chunks (batch ids never start
    with ``#``: schemas/watch_sample_batch.json)."""
    return f"{aid}|{sid}|#{part}"


def _pack_parts(chunks: list[Chunk], max_rows: int) -> list[list[Chunk]]:
    """Chunks in order, split into parts of at most ``max_rows`` rows (a chunk stays whole;
    a part holds at least one chunk)."""
    parts: list[list[Chunk]] = []
    cur: list[Chunk] = []
    n = 0
    for c in chunks:
        if cur and n + len(c.rows) > max_rows:
            parts.append(cur)
            cur, n = [], 0
        cur.append(c)
        n += len(c.rows)
    if cur:
        parts.append(cur)
    return parts


def _sample_row(s: dict[str, Any]) -> SampleRow:
    """A watch sample as the worker's row. Raises for a sample it cannot read (a time
    datetime refuses, a missing or non-numeric speed or cadence, a value of another type
    than its schema's)."""
    rid, time_text = s["record_id"], s["time"]
    if not isinstance(rid, str) or not isinstance(time_text, str):
        raise TypeError("record_id and time must be strings")
    src = s.get("sources")
    return SampleRow(
        parse_ms(time_text),
        rid,
        time_text,
        float(s["speed_mps"]),
        float(s["cadence_spm"]),
        _opt_float(s.get("ground_contact_ms")),
        _num(s.get("grade_pct")),
        False,
        _opt_float(s.get("vertical_load_bw")),
        parse_sources(src).get("ground_contact_ms") if src else None,
    )


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


def _acc(s: Session) -> SessionAcc:
    """The accumulator of a session that has counted samples."""
    assert s.acc is not None, s.sid
    return s.acc


def _merge_sources(sess: Session, sources: dict[str, str]) -> None:
    """The sensor source of each measure in the session (a device that mixed sources for
    one measure gets both, comma-separated: say so)."""
    have = sess.sources if sess.sources is not None else {}
    for k, v in sources.items():
        if k in have and v not in have[k].split(", "):
            have[k] = f"{have[k]}, {v}"
        else:
            have.setdefault(k, v)
    sess.sources = have


def _count_estimates(acc: SessionAcc, ests: list[Est]) -> None:
    """Samples estimated, walking, cadence-corrected, contact-estimated; reasons for none."""
    for est in ests:
        if est.impulse is not None:
            acc.n_est += 1
            acc.n_cest += est.contact_estimated
        else:
            acc.n_walk += est.reason == "walking"
            why = acc.reasons.get(est.reason or "")
            if why is None:
                acc.reasons[est.reason or "unknown"] = Reason(1, est.detail or est.reason)
            else:
                why.count += 1
        acc.n_corr += est.corrected


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


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
        #: drop a closed, published session's minute sums (:meth:`_drop_minutes`); off in
        #: ``rebuild-state``, which reconciles the minutes with the database afterwards
        self.drop_published_minutes = True

    # ------------------------------------------------------------------ rebuild
    def seed_days(self, st: AthleteState, days: list[tuple[str, float]]) -> None:
        """``kneeload rebuild-state``: final daily loads from the database (days before the
        replay window), pushed through the ACWR tracker in date order like live days."""
        if not days:
            return
        for d, load in days:
            st.dayload[d] = {"": load}
        self._set_days(st, sorted({d for d, _ in days} | set(st.dirty_dates or [])))
        for d, _ in days:
            st.days[d].final = True

    def settle(self, st: AthleteState, now_ms: int) -> list[Output]:
        """``kneeload rebuild-state``: apply pending days and mark everything published
        (the caller then marks dirty what the database does not hold yet); returns what
        that publishing would have sent."""
        self._set_days(st, st.dirty_dates or [])
        return self._flush(st, now_ms)

    # ------------------------------------------------------------------ helpers
    def cal(self, st: AthleteState) -> DayCalendar:
        tz = st.tz or "UTC"
        c = self._cal.get(tz)
        if c is None:
            c = self._cal[tz] = DayCalendar(tz)
        return c

    def params(self, st: AthleteState) -> PfjParams:
        key = orjson.dumps(st.calibration).decode()
        p = self._params.get(key)
        if p is None:
            p = DEFAULT_PFJ_PARAMS
            c = st.calibration
            if isinstance(c, dict):
                try:
                    fields = {k: c[k] for k in PfjCalibration.__dataclass_fields__ if k in c}
                    p = DEFAULT_PFJ_PARAMS.calibrated(PfjCalibration(**fields))
                except (TypeError, ValueError):
                    p = DEFAULT_PFJ_PARAMS
            self._params[key] = p
        return p

    def _bws_lookup(self, st: AthleteState) -> tuple[list[int], list[BwsEntry]]:
        tl = st.bws
        return [e.t_ms for e in tl], tl

    def _join(self, times: list[int], tl: list[BwsEntry], t: int) -> tuple[str | None, float]:
        """(unit_id, bws_pct) valid at event time ``t``: the latest entry at or before it."""
        i = bisect.bisect_right(times, t) - 1
        if i < 0:
            return None, 0.0
        e = tl[i]
        if e.unit_id is None or t - e.t_ms > self.cfg.bws_stale_s * 1000:
            return None, 0.0
        return e.unit_id, float(e.bws_pct)

    def _estimate(self, st: AthleteState, p: PfjParams, row: SampleRow, bws: float) -> Est:
        """The core's verdict on one row: an estimate, or none with the reason (walking, an
        input outside its plausibility bounds). The sample is kept and counted either way."""
        v, f, gc, grade = row.speed_mps, row.cadence_spm, row.ground_contact_ms, row.grade_pct
        mass = st.body_mass_kg or self.cfg.default_body_mass_kg
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
    def on_registry(self, st: AthleteState, rec: dict[str, Any] | None) -> list[Output]:
        """An ``athlete_record``; a changed team moves the athlete's correlation pairs
        from the old team's repeated-measures correlation to the new one's."""
        if rec is None:
            return []
        # typed as the state stores them (a value of another type is dropped: the state
        # must always encode and decode)
        team, tz = rec.get("team_id", st.team_id), rec.get("time_zone")
        mass, cal = rec.get("body_mass_kg"), rec.get("calibration")
        st.team_id = team if isinstance(team, str) else None
        st.tz = tz if isinstance(tz, str) and tz else "UTC"
        number = isinstance(mass, int | float) and not isinstance(mass, bool)
        st.body_mass_kg = float(mass) if number and mass is not None else None
        st.calibration = cal if isinstance(cal, dict) else None
        if st.corr and st.corr_team != st.team_id:
            return self.share_pairs(st, st.team_id)
        return []

    # ------------------------------------------------------------------ samples
    def on_batch(self, st: AthleteState, batch: dict[str, Any], now_ms: int) -> list[Output]:
        """One ``watch_sample_batch``: returns the events to publish."""
        st.last_proc = now_ms
        if isinstance(batch.get("team_id"), str):
            st.team_id = batch["team_id"]
        rows: list[SampleRow] = []
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
        st: AthleteState,
        batch: dict[str, Any],
        rows: list[SampleRow],
        sources: dict[str, str],
        now_ms: int,
    ) -> list[Output]:
        """The batch's readable samples (rows of :func:`_sample_row`) into the state."""
        rows.sort(key=lambda r: (r.t_ms, r.record_id))
        bid = batch["batch_id"]
        explicit = batch.get("session_id")
        sid = explicit or self._gap_session(st, rows[0].t_ms, rows[-1].t_ms)
        ckey = _chunk_key(st.athlete_id, sid, bid)
        known = st.sessions.get(sid)
        if known is not None and bid in known.chunks:
            # a replay of a batch the STATE has counted: re-emit, count nothing. The state
            # decides, not the chunk store: the two changelogs are written separately (the
            # state once per take), so after a crash a chunk may exist for a batch the
            # recovered state never counted, and then it must be counted now.
            stored = self._stored_chunk(st.athlete_id, sid, bid)
            old = stored.rows if stored is not None else rows
            return [self._sample_load_out(st, sid, bid, old)]
        self._mark_late(st, rows)
        self.chunks[ckey] = encode_chunk(Chunk(bid, rows))
        self._memo = {}
        out = [self._sample_load_out(st, sid, bid, rows, memo=True)]
        live = [r for r in rows if not r.late]
        if live:
            out += self._count(st, sid, explicit is not None, bid, live, sources)
        out += self._advance(st, now_ms, idle=False)
        return out

    def _mark_late(self, st: AthleteState, rows: list[SampleRow]) -> None:
        """Flag rows older than the watermark − lateness horizon (stored, not counted)."""
        if st.wm is None:
            return
        oldest = st.wm - self.cfg.lateness_horizon_s * 1000
        for r in rows:
            if r.t_ms < oldest:
                r.late = True

    def _count(
        self,
        st: AthleteState,
        sid: str,
        explicit: bool,
        bid: str,
        live: list[SampleRow],
        sources: dict[str, str],
    ) -> list[Output]:
        """Count a batch's on-time rows in their session: sums (incrementally when they come
        after the session's last sample, else recomputed from the chunks), the watermark,
        the day totals, and the in-session spike warning."""
        sess = st.sessions.get(sid)
        if sess is None:
            sess = st.sessions[sid] = Session(sid, explicit)
        elif sess.cold:
            self._warm(st, sess)  # before the batch is listed: its rows count once, below
        sess.chunks.append(bid)
        if sources:
            _merge_sources(sess, sources)
        if sess.status == "closed":
            sess.reopened = True
        acc = sess.acc
        in_order = (acc is None and len(sess.chunks) == 1) or (
            acc is not None and acc.last_t is not None and live[0].t_ms > acc.last_t
        )
        if in_order:
            self._accumulate(st, sess, self._dedup(live))
        else:
            self._recompute(st, sess)
        sess.dirty = True
        top = live[-1].t_ms
        st.wm = top if st.wm is None else max(st.wm, top)
        self._apply_session_days(st, sess)
        if sess.status == "open":
            return self._alerts(st, [self._spike_so_far(st, sess)])
        return []

    def _gap_session(self, st: AthleteState, t0: int, t1: int) -> str:
        gap = self.cfg.session_gap_s * 1000
        best: Session | None = None
        best_end = 0
        for s in st.sessions.values():
            a = s.acc
            if s.explicit or a is None:
                continue
            if a.start - gap <= t1 and t0 <= a.end + gap and (best is None or a.end > best_end):
                best, best_end = s, a.end
        if best is not None:
            return best.sid
        return f"{st.athlete_id}:{t0}"

    @staticmethod
    def _dedup(rows: list[SampleRow]) -> list[SampleRow]:
        """Sorted rows, one per time (the smallest record_id wins)."""
        out: list[SampleRow] = []
        last = None
        for r in rows:
            if r.t_ms != last:
                out.append(r)
                last = r.t_ms
        return out

    def _accumulate(self, st: AthleteState, sess: Session, rows: list[SampleRow]) -> None:
        """Add time-ordered, de-duplicated rows (all later than the session's last) to its
        sums: each row's estimate and contribution (:meth:`_contributions`), then core's
        session and minute sums, the local-day loads and the estimate counters."""
        acc = sess.acc
        if acc is None:
            acc = sess.acc = SessionAcc(core_session.LoadSums(), rows[0].t_ms, rows[0].t_ms)
        parts, ests = self._contributions(st, rows, acc.last_t)
        core_session.add_samples(acc.sums, parts)
        touched = core_session.add_to_minutes(acc.minutes, parts)
        sess.minutes_dirty = sorted(set(sess.minutes_dirty) | touched)
        self._add_to_days(st, acc.by_date, parts)
        _count_estimates(acc, ests)
        unit = next((p.unit_id for p in reversed(parts) if p.unit_id is not None), None)
        if unit is not None:
            acc.unit = unit
        acc.start = min(acc.start, rows[0].t_ms)
        acc.end = max(acc.end, rows[-1].t_ms)
        acc.last_t = rows[-1].t_ms
        self._memo = {}

    def _contributions(
        self, st: AthleteState, rows: list[SampleRow], last_t: int | None
    ) -> tuple[list[core_session.LoadSample], list[Est]]:
        """Each row's contribution to the sums (interval, support, estimated load) and its
        estimate (reused from :meth:`_sample_load_out` of the same batch when it has one)."""
        cfg = self.cfg
        p = self.params(st)
        times, tl = self._bws_lookup(st)
        first_dt, max_dt = cfg.first_sample_interval_s, cfg.max_sample_interval_s
        memo = self._memo
        parts: list[core_session.LoadSample] = []
        ests: list[Est] = []
        for r in rows:
            t = r.t_ms
            dt_s = sample_interval_s(t, last_t, first_dt, max_dt)
            last_t = t
            hit = memo.pop((t, r.record_id), None) if memo else None
            if hit is not None:
                unit, bws, est = hit
            else:
                unit, bws = self._join(times, tl, t)
                est = self._estimate(st, p, r, bws)
            f = est.cadence  # the cadence used: doubled when it was strides/min
            load = 0.0 if est.impulse is None else pfj_sample_load_mpa_s(est.impulse, f, dt_s)
            parts.append(
                core_session.LoadSample(t, r.speed_mps, f, bws, dt_s, load, est.peak, unit)
            )
            ests.append(est)
        return parts, ests

    def _add_to_days(
        self, st: AthleteState, by_date: dict[str, float], parts: list[core_session.LoadSample]
    ) -> None:
        """The samples' loads summed per local day of the athlete (in sample order)."""
        cal = self.cal(st)
        d: str | None = None
        d_lo = d_hi = 0
        d_sum = 0.0
        for s in parts:
            if not d_lo <= s.t_ms < d_hi:  # another local day (rare): switch the running sum
                if d is not None:
                    by_date[d] = d_sum
                d = cal.date_iso(s.t_ms)
                d_lo, d_hi = cal.span()
                d_sum = by_date.get(d, 0.0)
            d_sum += s.pfj_load_mpa_s
        if d is not None:
            by_date[d] = d_sum

    # ------------------------------------------------------------------ chunk store
    def _packed(self, aid: str, sid: str) -> dict[str, Chunk]:
        """A session's packed chunks by batch id (all parts; none when never packed)."""
        out: dict[str, Chunk] = {}
        k = 0
        while (raw := self.chunks.get(_pack_key(aid, sid, k))) is not None:
            for c in decode_pack(raw).chunks:
                out[c.batch_id] = c
            k += 1
        return out

    def _stored_chunk(self, aid: str, sid: str, bid: str) -> Chunk | None:
        """One batch's stored chunk: its own record, else its session's packed records."""
        raw = self.chunks.get(_chunk_key(aid, sid, bid))
        if raw is not None:
            return decode_chunk(raw)
        return self._packed(aid, sid).get(bid)

    def _stored_chunks(self, aid: str, sess: Session) -> list[Chunk]:
        """The chunks of the batches a session counted, in arrival order. A batch's own
        record wins over a packed copy (written later: a replay after a crash that lost
        the state but not the pack); what the store lacks is skipped. Independent of
        ``sess.packed``: the state and the chunk store are separate changelogs."""
        packed: dict[str, Chunk] | None = None
        out: list[Chunk] = []
        for b in sess.chunks:
            raw = self.chunks.get(_chunk_key(aid, sess.sid, b))
            if raw is not None:
                out.append(decode_chunk(raw))
                continue
            if packed is None:
                packed = self._packed(aid, sess.sid)
            c = packed.get(b)
            if c is not None:
                out.append(c)
        return out

    def _pack(self, st: AthleteState, sess: Session) -> None:
        """One record per closed session (parts of :data:`PACK_MAX_ROWS` rows) instead of one
        per batch: a restarted worker recovers a few records per athlete, and the batches'
        own records become tombstones a compacted changelog drops. The pack is written
        before the batches' records are deleted (same changelog partition, so in order)."""
        aid, sid = st.athlete_id, sess.sid
        old_parts = 0
        while _pack_key(aid, sid, old_parts) in self.chunks:
            old_parts += 1
        parts = _pack_parts(self._stored_chunks(aid, sess), PACK_MAX_ROWS)
        for k, part in enumerate(parts):
            self.chunks[_pack_key(aid, sid, k)] = encode_pack(Pack(part))
        for k in range(len(parts), old_parts):
            self.chunks.pop(_pack_key(aid, sid, k), None)
        for b in sess.chunks:
            self.chunks.pop(_chunk_key(aid, sid, b), None)
        sess.packed = len(sess.chunks)

    def _pack_closed(self, st: AthleteState, idle: bool) -> None:
        """Pack closed sessions never packed (just closed, or closed by an older worker),
        and those with batches since their last pack (late data) when idle or once
        :data:`PACK_AFTER_BATCHES` accumulated."""
        for s in st.sessions.values():
            new = len(s.chunks) - s.packed
            if s.status != "closed" or new <= 0:
                continue
            if idle or s.packed == 0 or new >= PACK_AFTER_BATCHES:
                self._pack(st, s)
        if self.drop_published_minutes:
            for s in st.sessions.values():
                self._drop_minutes(s)

    @staticmethod
    def _drop_minutes(s: Session) -> None:
        """A closed session whose summary and minutes are published and whose chunks are
        packed keeps its sums but not its minute sums (three quarters of an athlete's state,
        which the worker writes once per take). Nothing reads them until the session changes,
        and then it is recomputed from its chunks (:meth:`_recompute`, ``cold``)."""
        a = s.acc
        if (
            a is not None
            and a.minutes
            and s.status == "closed"
            and not s.dirty
            and not s.minutes_dirty
            and s.packed == len(s.chunks)
        ):
            a.minutes = {}
            s.cold = True

    def _session_rows(self, st: AthleteState, sess: Session) -> list[SampleRow]:
        rows: list[SampleRow] = []
        for c in self._stored_chunks(st.athlete_id, sess):
            rows.extend(r for r in c.rows if not r.late)
        rows.sort(key=lambda r: (r.t_ms, r.record_id))
        return self._dedup(rows)

    def _warm(self, st: AthleteState, sess: Session) -> None:
        """Give a cold session (:meth:`_drop_minutes`) its minute sums back before it
        changes: recomputed from its chunks — the same numbers it had (sums in time order
        either way) — and no minute re-published for it. Should the chunk store lack some
        of its rows (a chunk record lost while the state was kept), the recomputed sums
        differ: the session keeps its own sums, and its minutes restart empty."""
        dirty = sess.minutes_dirty
        kept = sess.acc
        self._recompute(st, sess)
        if kept is not None and (sess.acc is None or sess.acc.sums != kept.sums):
            log.warning(
                "athlete %s session %s: chunks incomplete, its sums kept, minutes not rebuilt",
                st.athlete_id,
                sess.sid,
            )
            sess.acc = kept
        sess.cold = False
        sess.minutes_dirty = dirty

    def _recompute(self, st: AthleteState, sess: Session) -> None:
        """Rebuild a session's sums from its stored chunks (out-of-order data, late setpoints)."""
        old: set[str] = set(sess.acc.minutes) if sess.acc else set()
        if sess.cold:  # the minutes it had are the ones published
            old |= set(sess.minute_rev)
        sess.acc = None
        sess.cold = False
        rows = self._session_rows(st, sess)
        if rows:
            self._accumulate(st, sess, rows)
        new: set[str] = set(sess.acc.minutes) if sess.acc else set()
        sess.minutes_dirty = sorted(old | new)

    def _apply_session_days(self, st: AthleteState, sess: Session) -> None:
        """Push the session's per-day load into the day totals and the ACWR tracker."""
        by_date = sess.acc.by_date if sess.acc else {}
        sid = sess.sid
        changed = []
        for d in sorted(set(by_date) | set(sess.applied)):
            new = by_date.get(d, 0.0)
            if sess.applied.get(d) != new:
                st.dayload.setdefault(d, {})[sid] = new
                sess.applied[d] = new
                changed.append(d)
        if changed:
            st.dirty_dates = sorted(set(st.dirty_dates) | set(changed))

    def _set_days(self, st: AthleteState, dates: list[str]) -> None:
        st.dirty_dates = []
        if not dates:
            return
        tr = AcwrTracker.from_dict(st.acwr)
        for d in sorted(dates):
            loads = st.dayload.get(d, {})
            total = 0.0
            for k in sorted(loads):
                total += loads[k]
            try:
                results = tr.set_day(dt.date.fromisoformat(d), total)
            except LateDayTooOldError:
                continue
            for r in results:
                self._day_result(st, r)
        st.acwr = tr.to_dict()

    def _day_result(self, st: AthleteState, r: DailyAcwr) -> None:
        assert r.date is not None
        d = r.date.isoformat()
        day = st.days.get(d)
        if day is None:
            day = st.days[d] = Day()
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
        if out != day.out:
            day.out = out
            day.dirty = True
            if day.final:
                day.corrected = True

    # ------------------------------------------------------------------ time passing
    def _advance(self, st: AthleteState, now_ms: int, idle: bool) -> list[Output]:
        """Close sessions and finalise days the watermark (or the idle timer) has passed,
        publish when something closed or the publish interval is due, then re-classify the
        reports of the sessions that closed and forget what no event can change."""
        cfg = self.cfg
        closed_now: list[Session] = []
        corr_out: list[Output] = []
        force = False
        if st.wm is not None:
            closed_now, force = self._close_sessions(st, st.wm, idle)
            dirty = st.dirty_dates
            due = idle or now_ms - st.last_pub >= cfg.publish_interval_s * 1000
            if dirty and (force or due or any(d not in st.days for d in dirty)):
                self._set_days(st, dirty)
                corr_out = self._refresh_corr(st)
            force = self._finalise_days(st, st.wm, idle) or force
        out: list[Output] = []
        if force or idle or now_ms - st.last_pub >= cfg.publish_interval_s * 1000:
            out = self._flush(st, now_ms)
        out += corr_out
        for s in closed_now:  # reports that arrived before the session was complete
            for p in self._session_reports(st, s):
                out += self.on_pain(st, self._report(st, p), now_ms, rerun=True)
        self._pack_closed(st, idle)
        self._prune(st)
        return out

    def _close_sessions(self, st: AthleteState, wm: int, idle: bool) -> tuple[list[Session], bool]:
        """Sessions the watermark passed by the gap (all open ones when idle) close; returns
        them, and whether anything must be published now (a reopened session too)."""
        gap = self.cfg.session_gap_s * 1000
        closed: list[Session] = []
        force = False
        for s in st.sessions.values():
            if s.acc is None:
                continue
            if s.status == "open" and (idle or wm > s.acc.end + gap):
                s.status = "closed"
                s.dirty = True
                force = True
                closed.append(s)
            elif s.reopened:
                force = True
            s.reopened = False
        return closed, force

    def _finalise_days(self, st: AthleteState, wm: int, idle: bool) -> bool:
        """Days the watermark passed by the grace (up to the watermark's day when idle)
        become final; True when a day must be published now."""
        cal = self.cal(st)
        grace = self.cfg.day_grace_s * 1000
        wm_day = cal.date_iso(wm)
        force = False
        for d, day in st.days.items():
            if day.final:
                force = force or day.dirty
                continue
            if wm >= cal.end_of_day_ms(d) + grace or (idle and d <= wm_day):
                day.final = True
                day.dirty = True
                force = True
        return force

    def on_tick(self, st: AthleteState, now_ms: int) -> list[Output]:
        """Processing-time timer: an athlete idle for ``idle_close_s`` gets everything closed."""
        cfg = self.cfg
        idle = cfg.idle_close_s > 0 and now_ms - st.last_proc >= cfg.idle_close_s * 1000
        pending = (
            bool(st.dirty_dates)
            or any(s.status == "open" or s.dirty for s in st.sessions.values())
            or any((not d.final) or d.dirty for d in st.days.values())
        )
        if self._roll_pain_day(st, now_ms):
            return self._advance(st, now_ms, idle=idle)
        if not pending:
            return []
        if idle:
            return self._advance(st, now_ms, idle=True)
        if now_ms - st.last_pub >= cfg.publish_interval_s * 1000:
            return self._advance(st, now_ms, idle=False)
        return []

    # ------------------------------------------------------------------ publishing
    def _flush(self, st: AthleteState, now_ms: int) -> list[Output]:
        """Publish what changed since the last flush: sessions with their changed minutes,
        days; then the alert episodes their rules changed."""
        out: list[Output] = []
        alerts: list[Verdict] = []
        reports: list[core_pain.PainReport] | None = None  # for the days' pain trend
        for s in st.sessions.values():
            if s.dirty and s.acc is not None:
                out += self._publish_session(st, s)
                if s.status == "closed" and s.rev >= 0:
                    alerts.append(self._session_spike(st, s, f"athlete:{st.athlete_id}"))
        for d in sorted(st.days):
            day = st.days[d]
            if day.dirty and day.out is not None:
                if reports is None:
                    reports = self._pain_reports(st)
                out.append(self._publish_day(st, d, day, day.out, reports))
                if day.final and self.cfg.trend_alerts:
                    alerts += self._trend_alerts(st, d, day.out)
        out += self._alerts(st, alerts)
        st.last_pub = now_ms
        return out

    def _publish_session(self, st: AthleteState, s: Session) -> list[Output]:
        """A session's summary (next revision) and its changed minutes."""
        assert s.acc is not None
        s.dirty = False
        s.rev += 1
        out: list[Output] = [(SESSIONS, st.athlete_id, self._summary(st, s))]
        for mk in s.minutes_dirty:
            m = s.acc.minutes.get(mk)
            if m is None:
                continue
            rev = s.minute_rev[mk] = s.minute_rev.get(mk, -1) + 1
            out.append((LOAD_MINUTE, st.athlete_id, self._minute_out(st, s.sid, mk, m, rev)))
        s.minutes_dirty = []
        return out

    def _publish_day(
        self,
        st: AthleteState,
        d: str,
        day: Day,
        o: dict[str, Any],
        reports: list[core_pain.PainReport] | None = None,
    ) -> Output:
        """A ``daily_load`` event of day ``d`` (next revision), with the day's weekly pain
        trend computed now from the stored reports (core.pain; never kept in the state)."""
        day.dirty = False
        day.rev += 1
        aid = st.athlete_id
        ev = {
            "id": f"{aid}:{d}:{METRIC}",
            "athlete_id": aid,
            "team_id": st.team_id,
            "date": d,
            "metric": METRIC,
            "load": o["load"],
            "status": "final" if day.final else "provisional",
            "revision": day.rev,
            "corrected": day.corrected,
            "methods": o["methods"],
            "week_over_week_pct": o["week_over_week_pct"],
            "monotony": o["monotony"],
            "strain": o["strain"],
            "atl": o["atl"],
            "ctl": o["ctl"],
            "tsb": o["tsb"],
            **dict(zip(_PAIN_FIELDS, self._day_pain(st, d, reports), strict=True)),
        }
        return (DAILY_LOAD, aid, ev)

    def _trend_alerts(self, st: AthleteState, d: str, o: dict[str, Any]) -> list[Verdict]:
        """acwr_high and load_spike_wow on a final day. Off by default: ACWR and week-on-week
        did not predict injury in the largest cohort (Frandsen et al. 2025); still computed
        and shown."""
        aid, team = st.athlete_id, st.team_id
        subject = f"athlete:{aid}"
        when = to_dt(self.cal(st).end_of_day_ms(d) - 1000)
        ew = o["methods"]["ewma"]
        th = self._thresholds()
        acwr = core_alerts.check_acwr(
            aid, team, when, ew["acwr"], ew["acute"], ew["chronic"], "ewma", th
        )
        wow = o["week_over_week_pct"]
        return [
            or_clear(acwr, core_alerts.AlertKind.ACWR_HIGH, subject, when, d,
                     evaluable=ew["acwr"] is not None),
            or_clear(core_alerts.check_week_over_week(aid, team, when, wow, None, th),
                     core_alerts.AlertKind.LOAD_SPIKE_WOW, subject, when, d,
                     evaluable=wow is not None),
        ]  # fmt: skip

    @staticmethod
    def _minute_out(
        st: AthleteState, sid: str, mk: str, m: core_session.MinuteSums, rev: int
    ) -> dict[str, Any]:
        """A ``load_minute`` event: the minute's figures from core."""
        aid = st.athlete_id
        f = core_session.minute_figures(m)
        return {
            "id": f"{aid}:{iso(int(mk))}",
            "athlete_id": aid,
            "team_id": st.team_id,
            "session_id": sid,
            "unit_id": m.unit_id,
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

    def _chronic_mean(self, st: AthleteState, sess: Session) -> float | None:
        d = self.cal(st).date_iso(_acc(sess).start)
        day = st.days.get(d)
        if day is None or day.out is None:
            return None
        c = day.out["methods"]["rac"]["chronic"]
        return float(c) if c is not None else None

    def _past_sessions(self, st: AthleteState, s: Session) -> list[PastSession]:
        """The sessions the ceiling of ``s`` is taken from: the ceiling history (closed
        sessions) and any other session of the state that started before ``s`` (one not
        closed yet, when the next one's first samples arrive before the watermark closes
        it), so the ceiling does not depend on when a session was closed."""
        past = {
            k: PastSession(v.start_ms, v.distance_m, v.pfj_load_mpa_s)
            for k, v in st.spike_hist.items()
        }
        start = _acc(s).start
        for o in st.sessions.values():
            a = o.acc
            if a is not None and o.sid != s.sid and a.start < start:
                past[o.sid] = PastSession(a.start, a.sums.distance_m, a.sums.pfj_load_mpa_s)
        past.pop(s.sid, None)
        return list(past.values())

    def _spike_so_far(self, st: AthleteState, s: Session) -> Verdict:
        """A session still open after this batch that has already passed 110 % of its 30-day
        ceiling (distance or estimated PFJ load so far): the session_spike alert while the
        athlete still runs, so a coach or clinician can stop the run or raise the support.
        Nothing (not a clear) while it is below: the verdict of a session is given when it
        closes.

        Judged on every batch, not on the worker's publish timer: the observation is the
        session's data up to this batch's last sample (event time), so a replay or a
        restarted worker raises the same warnings at the same points; whether the coach
        hears it while the athlete still runs depends only on how fast the data arrives."""
        a = _acc(s)
        verdict = session_spike(
            a.sums.distance_m,
            a.sums.pfj_load_mpa_s,
            a.start,
            self._past_sessions(st, s),
            self.cfg.spike,
        )
        if verdict.spike is None:
            return None
        return core_alerts.check_session_spike(
            st.athlete_id, st.team_id, to_dt(a.end), verdict, s.sid, in_progress=True
        )

    def _session_spike(self, st: AthleteState, s: Session, subject: str) -> Verdict:
        """The closed session against the athlete's 30-day ceiling (core.spike); the session
        joins the athlete's ceiling history (kept for twice the window)."""
        a = _acc(s)
        hist = st.spike_hist
        past = self._past_sessions(st, s)
        dist, load = a.sums.distance_m, a.sums.pfj_load_mpa_s
        verdict = session_spike(dist, load, a.start, past, self.cfg.spike)
        hist[s.sid] = SpikeEntry(a.start, dist, load)
        keep = a.start - 2 * self.cfg.spike_window_days * 86_400_000
        for k in [k for k, v in hist.items() if v.start_ms < keep]:
            del hist[k]
        end = to_dt(a.end)
        return or_clear(
            core_alerts.check_session_spike(st.athlete_id, st.team_id, end, verdict, s.sid),
            core_alerts.AlertKind.SESSION_SPIKE,
            subject,
            end,
            s.sid,
            evaluable=verdict.withheld is None,
        )

    def _thresholds(self) -> core_alerts.AlertThresholds:
        return core_alerts.AlertThresholds(
            cooldown=dt.timedelta(seconds=self.cfg.alert_cooldown_s),
            pain_safe_max_nrs=self.cfg.preset.safe_max_nrs,
            pain_trend_nrs=self.cfg.pain_trend_delta_nrs,
        )

    def _alerts(self, st: AthleteState, found: list[Verdict]) -> list[Output]:
        """Episode changes only (kneeload.core.episodes): opened, escalated, resolved."""
        aid = st.athlete_id
        ids: dict[str, str | None] = {
            "athlete_id": aid,
            "unit_id": None,
            "team_id": st.team_id,
            "clinic_id": None,
        }
        box = {"episodes": st.episodes}  # the episodes' edge works on a mapping
        out = worker_episodes.publish(box, found, f"athlete:{aid}", ids)
        st.episodes = box["episodes"]
        return out

    def _summary(self, st: AthleteState, s: Session) -> dict[str, Any]:
        """A ``session`` event: the figures from core, the estimate counters, the sources."""
        a = _acc(s)
        n = a.sums.samples
        f = core_session.session_figures(a.sums, a.start, a.end, self.cfg.first_sample_interval_s)
        return {
            "session_id": s.sid,
            "athlete_id": st.athlete_id,
            "team_id": st.team_id,
            "unit_id": a.unit,
            "start_time": iso(a.start),
            "end_time": iso(a.end),
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
            "status": s.status,
            "revision": s.rev,
            "estimate": True,
            "samples_estimated": a.n_est,
            "samples_without_estimate": n - a.n_est,
            "samples_walking": a.n_walk,
            "samples_cadence_corrected": a.n_corr,
            "samples_contact_estimated": a.n_cest,
            "no_estimate_reasons": {k: v.count for k, v in sorted(a.reasons.items())},
            "no_estimate_summary": no_estimate_summary(a.reasons, n - a.n_est),
            "sources": dict(s.sources or {}) or None,
        }

    def _sample_load_out(
        self, st: AthleteState, sid: str, batch_id: str, rows: list[SampleRow], memo: bool = False
    ) -> Output:
        p = self.params(st)
        times, tl = self._bws_lookup(st)
        samples = []
        for r in rows:
            unit, bws = self._join(times, tl, r.t_ms)
            est = self._estimate(st, p, r, bws)
            if memo:
                self._memo[(r.t_ms, r.record_id)] = (unit, bws, est)
            samples.append(self._sample_out(r, unit, bws, est))
        return (
            LOAD_SAMPLES,
            st.athlete_id,
            {
                "batch_id": batch_id,
                "athlete_id": st.athlete_id,
                "team_id": st.team_id,
                "session_id": sid,
                "estimate": True,
                "samples": samples,
            },
        )

    @staticmethod
    def _sample_out(r: SampleRow, unit: str | None, bws: float, est: Est) -> dict[str, Any]:
        """One ``load_sample``: the estimate, or none with its reason; every value estimated
        rather than measured is flagged (contact time with its uncertainty, step length,
        vertical load)."""
        device_vl = r.vertical_load_bw
        measured_src = r.contact_source or "device"
        contact = est.contact_ms
        return {
            "record_id": r.record_id,
            "time": r.time,
            "speed_mps": r.speed_mps,
            "cadence_spm": r.cadence_spm,
            "ground_contact_ms": contact,
            "ground_contact_estimated": est.contact_estimated,
            "grade_pct": r.grade_pct,
            "bws_pct": bws,
            "unit_id": unit,
            "peak_pfj_stress_mpa": est.peak,
            "pfj_impulse_mpa_s": est.impulse,
            "late": r.late,
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

    def _prune(self, st: AthleteState) -> None:
        """Forget what no future event can change (beyond the lateness horizon)."""
        wm = st.wm
        if wm is None:
            return
        limit = int(wm - (self.cfg.lateness_horizon_s + self.cfg.session_gap_s) * 1000) - 86_400_000
        for sid in [
            k
            for k, s in st.sessions.items()
            if s.status == "closed" and not s.dirty and s.acc and s.acc.end < limit
        ]:
            s = st.sessions.pop(sid)
            for b in s.chunks:
                self.chunks.pop(_chunk_key(st.athlete_id, sid, b), None)
            k = 0
            while self.chunks.pop(_pack_key(st.athlete_id, sid, k), None) is not None:
                k += 1
        cutoff = self.cal(st).date_iso(limit)
        for d in [d for d, day in st.days.items() if d < cutoff and day.final and not day.dirty]:
            st.days.pop(d)
            st.dayload.pop(d, None)
        if len(st.bws) > 2:
            keep = [e for e in st.bws if e.t_ms >= limit]
            older = [e for e in st.bws if e.t_ms < limit]
            st.bws = older[-1:] + keep
        st.pain = [p for p in st.pain if p.t_ms >= wm - 30 * 86_400_000] if st.pain else st.pain

    # ------------------------------------------------------------------ BWS timeline
    def on_bws(self, st: AthleteState, ev: dict[str, Any], now_ms: int) -> list[Output]:
        """A treadmill entry re-keyed by athlete: ``{t, unit_id | None, bws_pct}``.

        Samples already joined at or after ``t`` are re-joined: their sessions are
        recomputed and their ``sample_load`` batches re-published (same ids).
        """
        t = int(ev["t"])
        entry = BwsEntry(t, ev.get("unit_id"), float(ev.get("bws_pct") or 0.0))
        tl = st.bws
        times = [e.t_ms for e in tl]
        i = bisect.bisect_left(times, t)
        if i < len(tl) and tl[i].t_ms == t:
            if tl[i] == entry:
                return []
            tl[i] = entry
        else:
            tl.insert(i, entry)
        out: list[Output] = []
        aid = st.athlete_id
        horizon = st.wm - self.cfg.lateness_horizon_s * 1000 if st.wm is not None else None
        for s in st.sessions.values():
            a = s.acc
            if a is None or a.end < t or (horizon is not None and a.end < horizon):
                continue
            before = self._summary(st, s)
            self._recompute(st, s)
            if self._summary(st, s) == before:
                continue
            s.dirty = True
            self._apply_session_days(st, s)
            for c in self._stored_chunks(aid, s):
                if c.rows and c.rows[-1].t_ms >= t:
                    out.append(self._sample_load_out(st, s.sid, c.batch_id, c.rows))
        if out:
            out += self._advance(st, now_ms, idle=False)
        return out

    # ------------------------------------------------------------------ pain
    def _session_reports(self, st: AthleteState, sess: Session) -> list[PainEntry]:
        """The athlete's stored reports that belong to ``sess``: linked to it by id, or
        unlinked and within the session or the preset's next-day window after it."""
        a = _acc(sess)
        window_ms = self.cfg.preset.next_day_window_h * 3_600_000
        return [
            p
            for p in list(st.pain)
            if p.session_id == sess.sid
            or (p.session_id is None and a.start <= p.t_ms <= a.end + window_ms)
        ]

    def on_pain(
        self, st: AthleteState, rep: dict[str, Any], now_ms: int, *, rerun: bool = False
    ) -> list[Output]:
        """Classify a pain report against the session it refers to and the athlete's baseline.

        Steps: store the report (:meth:`_store_report`), find its session, the session's
        pain and next-day status (:meth:`_session_pain`), core's classification and
        suggestions (:meth:`_pain_response`), the pain rules' verdicts
        (:meth:`_pain_verdicts`), the load–pain pair (:meth:`_correlate`).

        A report that belongs to a session also re-classifies the session's other reports
        (``rerun`` marks those calls): their responses depend on every report of the
        session (the next-day value above all), so the last response of each report is the
        same whatever order the reports and the session's samples arrived in — an "after"
        report stayed ``pending`` when its next-morning report came after the session had
        closed (found by ``make chaos``)."""
        team = rep.get("team_id") or st.team_id
        t = parse_ms(rep["time"])
        ctx, nrs = rep["context"], int(rep["pain_nrs"])
        counts = ctx in _TREND_CONTEXTS or any(
            p.report_id == rep["report_id"] and p.context in _TREND_CONTEXTS for p in st.pain
        )  # a report that moves the weekly trend (or a correction of one)
        reports = self._store_report(st, rep, t, team)
        when = to_dt(t)
        sess = self._session_for(st, rep.get("session_id"), t, ctx, self.cfg.preset)
        sp, next_day = self._session_pain(st, sess, reports, ctx, nrs, when)
        baseline = core_pain.baseline_nrs(reports, before=when)
        cal = self.cal(st)
        this_w, last_w, change = core_pain.weekly_pain_trend(
            reports, dt.date.fromisoformat(cal.date_iso(t)), cal.tz
        )
        c = core_pain.classify_session(
            sp.during_max_nrs, sp.next_day_nrs, baseline, change, self.cfg.preset, this_w
        )
        resp = self._pain_response(st, rep, team, sess, sp, next_day, baseline, c)
        out: list[Output] = [(PAIN_RESPONSES, st.athlete_id, resp)]
        verdicts = self._pain_verdicts(st, rep, team, when, sess, sp, baseline, (this_w, last_w))
        out += self._alerts(st, verdicts)
        out += self._correlate(st, t, ctx, nrs, team)
        if counts and not rerun:
            self._refresh_pain_days(st, cal.date_iso(t))
        if sess is not None and not rerun:
            for p in self._session_reports(st, sess):
                if p.report_id != rep["report_id"]:
                    out += self.on_pain(st, self._report(st, p), now_ms, rerun=True)
        return out

    def _day_pain(
        self, st: AthleteState, d: str, reports: list[core_pain.PainReport] | None = None
    ) -> tuple[float | None, float | None, str | None]:
        """Day ``d``'s weekly pain trend as published on its ``daily_load`` row: this week's
        and last week's means and the coach's label (core.pain, the one definition)."""
        if reports is None:
            reports = self._pain_reports(st)
        m7, prev, _ = core_pain.weekly_pain_trend(
            reports, dt.date.fromisoformat(d), self.cal(st).tz
        )
        label = core_pain.pain_trend_label(m7, prev, self.cfg.pain_trend_delta_nrs)
        return m7, prev, label.value if label is not None else None

    @staticmethod
    def _refresh_pain_days(st: AthleteState, d0: str) -> None:
        """A report of local day ``d0`` changes the trend of the days ``d0`` … ``d0`` + 13:
        the known ones are re-published (a final day as a correction)."""
        last = dt.date.fromisoformat(d0) + dt.timedelta(days=2 * core_pain.TREND_WEEK_DAYS - 1)
        for d, day in st.days.items():
            if day.out is not None and d0 <= d <= last.isoformat():
                day.dirty = True
                if day.final:
                    day.corrected = True

    def _roll_pain_day(self, st: AthleteState, now_ms: int) -> bool:
        """Day rollover: today's row (load 0 so far) is created when the athlete has a report
        that still counts in today's trend and no row of today or later, so a week without
        reports ages out of the overview as the days pass — also for an athlete who has only
        reported pain so far (onboarded while injured). True when a day was created."""
        if not st.pain:
            return False
        cal = self.cal(st)
        today = cal.date_iso(now_ms)
        first = dt.date.fromisoformat(today) - dt.timedelta(days=2 * core_pain.TREND_WEEK_DAYS - 1)
        first_ms = cal.midnight_ms(first)
        counting = False
        for p in reversed(st.pain):  # time order: the latest first
            if p.t_ms < first_ms:
                break
            if p.context in _TREND_CONTEXTS and cal.date_iso(p.t_ms) <= today:
                counting = True
                break
        if not counting or today in st.days or (st.days and max(st.days) > today):
            return False
        self._set_days(st, sorted({*st.dirty_dates, today}))
        return today in st.days

    @staticmethod
    def _pain_reports(st: AthleteState) -> list[core_pain.PainReport]:
        """The athlete's stored reports as core's, in time order."""
        return [
            core_pain.PainReport(
                st.athlete_id, p.nrs, core_pain.PainContext(p.context), to_dt(p.t_ms), p.session_id
            )
            for p in st.pain
        ]

    @staticmethod
    def _store_report(
        st: AthleteState, rep: dict[str, Any], t: int, team: str | None
    ) -> list[core_pain.PainReport]:
        """Keep the report (a report id replaces its earlier version); all the athlete's
        stored reports as core's, in time order."""
        st.pain = [p for p in st.pain if p.report_id != rep["report_id"]]
        st.pain.append(PainEntry(t, int(rep["pain_nrs"]), rep["context"], rep.get("session_id"),
                                 rep["report_id"], rep["time"], team))  # fmt: skip
        st.pain.sort(key=lambda p: (p.t_ms, p.report_id))
        return AthleteProcessor._pain_reports(st)

    def _session_pain(
        self,
        st: AthleteState,
        sess: Session | None,
        reports: list[core_pain.PainReport],
        ctx: str,
        nrs: int,
        when: dt.datetime,
    ) -> tuple[core_pain.SessionPain, tuple[str | None, str | None, str | None]]:
        """The session's pain (during, after, next day) and the next-day value's status,
        expected time and due time (received / pending / missed)."""
        if sess is None:
            during = float(nrs) if ctx == "during" else None
            return core_pain.SessionPain(during, None, None, None), (None, None, None)
        preset = self.cfg.preset
        a = _acc(sess)
        end = to_dt(a.end)
        sp = core_pain.session_pain(reports, to_dt(a.start), end, preset, sess.sid)
        if sp.next_day_nrs is not None:
            return sp, ("received", None, None)
        exp, due_dt = core_pain.next_day_expected(end, st.tz or "UTC", preset)
        status = "missed" if when > due_dt else "pending"
        return sp, (
            status,
            iso(round(exp.timestamp() * 1000)),
            iso(round(due_dt.timestamp() * 1000)),
        )

    def _pain_response(
        self,
        st: AthleteState,
        rep: dict[str, Any],
        team: str | None,
        sess: Session | None,
        sp: core_pain.SessionPain,
        next_day: tuple[str | None, str | None, str | None],
        baseline: float | None,
        c: core_pain.SessionClassification,
    ) -> dict[str, Any]:
        """A ``pain_response`` event: core's classification and, for a session, the next
        session's load and support suggestions."""
        preset = self.cfg.preset
        load = None
        if sess is not None:
            action = core_pain.suggest_load(c).action.value
            load = {"action": action, "reason": f"{action}_after_{c.status.value}"}
        status, expected, due = next_day
        return {
            "id": f"{rep['report_id']}:{preset.code}",
            "report_id": rep["report_id"],
            "athlete_id": st.athlete_id,
            "team_id": team,
            "session_id": sess.sid if sess else rep.get("session_id"),
            "time": rep["time"],
            "pain_nrs": int(rep["pain_nrs"]),
            "context": rep["context"],
            "baseline_nrs": baseline,
            "classification": c.status.value,
            "reason": c.reason_code,
            "preset": preset.code,
            "preset_source": preset.source,
            "summary": c.reason[:1000],
            "during_max_nrs": sp.during_max_nrs,
            "after_max_nrs": sp.after_max_nrs,
            "next_day_nrs": sp.next_day_nrs,
            "next_day_status": status,
            "next_day_expected_at": expected,
            "next_day_due_by": due,
            "load_suggestion": load,
            "bws_suggestion": self._bws_suggestion(st, sess, c),
        }

    @staticmethod
    def _bws_suggestion(
        st: AthleteState, sess: Session | None, c: core_pain.SessionClassification
    ) -> dict[str, Any] | None:
        """The next support for a session on a LEVER unit (core.pain.suggest_bws), from the
        unit's support during the session (event time), not the latest entry the worker
        happens to hold: telemetry of later days must not change this response."""
        if sess is None or _acc(sess).unit is None:
            return None
        a = _acc(sess)
        unit, end_ms = a.unit, a.end
        cur = next(
            (e.bws_pct for e in reversed(st.bws) if e.unit_id == unit and e.t_ms <= end_ms), 0.0
        )
        step_cfg = core_pain.BwsStepConfig()
        cur = min(max(cur, step_cfg.min_pct), step_cfg.unit_max_pct)
        sug = core_pain.suggest_bws(cur, c, step_cfg)
        return {
            "unit_id": unit,
            "action": sug.action.value,
            "current_bws_pct": sug.current_bws_pct,
            "suggested_bws_pct": sug.suggested_bws_pct,
            "reason": f"{sug.action.value}_after_{c.status.value}",
        }

    def _pain_verdicts(
        self,
        st: AthleteState,
        rep: dict[str, Any],
        team: str | None,
        when: dt.datetime,
        sess: Session | None,
        sp: core_pain.SessionPain,
        baseline: float | None,
        weeks: tuple[float | None, float | None],
    ) -> list[Verdict]:
        """The pain rules on this report: pain_high (during/after), pain_not_settled (the
        next-day value only: an "after" report never stands in for it), the weekly trend."""
        aid, ctx, nrs, rid = st.athlete_id, rep["context"], int(rep["pain_nrs"]), rep["report_id"]
        th = self._thresholds()
        subject = f"athlete:{aid}"
        found: list[Verdict] = []
        if ctx in ("during", "after"):
            found.append(or_clear(core_alerts.check_pain(aid, team, when, nrs, ctx, th),
                                  core_alerts.AlertKind.PAIN_HIGH, subject, when, rid))  # fmt: skip
        if sess is not None and sp.next_day_nrs is not None and sp.next_day_hours is not None:
            alert = core_alerts.check_pain_not_settled(
                aid, team, when, baseline or 0.0, sp.next_day_nrs, sp.next_day_hours, sess.sid, th
            )
            settled_enough = sp.next_day_hours >= th.pain_settle_hours * 0.5
            found.append(or_clear(alert, core_alerts.AlertKind.PAIN_NOT_SETTLED, subject, when,
                                  sess.sid, evaluable=settled_enough))  # fmt: skip
        this_w, last_w = weeks
        trend = core_alerts.check_weekly_pain_trend(aid, team, when, this_w, last_w, th)
        both = this_w is not None and last_w is not None
        found.append(or_clear(trend, core_alerts.AlertKind.PAIN_TREND_WORSENING, subject, when,
                              rid, evaluable=both))  # fmt: skip
        return found

    @staticmethod
    def _report(st: AthleteState, p: PainEntry) -> dict[str, Any]:
        return {
            "report_id": p.report_id,
            "athlete_id": st.athlete_id,
            "team_id": p.team_id,
            "time": p.time if p.time is not None else iso(p.t_ms),
            "pain_nrs": p.nrs,
            "context": p.context,
            "session_id": p.session_id,
        }

    def _session_for(
        self, st: AthleteState, sid: str | None, t: int, ctx: str, preset: core_pain.PainPreset
    ) -> Session | None:
        if sid and sid in st.sessions and st.sessions[sid].acc is not None:
            return st.sessions[sid]
        window_ms = preset.next_day_window_h * 3_600_000
        best: Session | None = None
        best_end = 0
        for s in st.sessions.values():
            a = s.acc
            if a is None:
                continue
            inside = a.start <= t <= a.end
            after = a.end < t <= a.end + window_ms and ctx != "during"
            if (inside or after) and (best is None or a.end > best_end):
                best, best_end = s, a.end
        return best

    def _correlate(
        self, st: AthleteState, t: int, ctx: str, nrs: int, team: str | None
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
        if st.dirty_dates:
            self._set_days(st, st.dirty_dates)
            out += self._refresh_corr(st)
        load = AcwrTracker.from_dict(st.acwr).load_on(day)
        if load is None:
            return out
        key = f"lag{lag}"
        po = PairedObservations.from_dict(st.corr[key]) if key in st.corr else PairedObservations()
        po.add(day.isoformat(), load, float(nrs))
        st.corr[key] = po.to_dict()
        self._touch_corr(st, key, t)
        out += self._corr_events(st, po, lag, day.isoformat(), iso(t), team)
        return out + self.share_pairs(st, team)

    @staticmethod
    def _touch_corr(st: AthleteState, key: str, t: int) -> None:
        """Event time of the latest change to the pairs of ``key`` (never moves back)."""
        times = st.corr_t
        times[key] = max(int(times.get(key, 0)), t)

    def _pairs_time(self, st: AthleteState, pairs: list[list[Any]]) -> int:
        """Event time for pairs without a recorded change time (state from before
        ``corr_t`` existed): the end of the latest load day."""
        return self.cal(st).end_of_day_ms(max(str(p[0]) for p in pairs)) - 1000

    def share_pairs(self, st: AthleteState, team: str | None) -> list[Output]:
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
        aid = st.athlete_id
        out: list[Output] = []
        prev = st.corr_team
        if prev is not None and prev != team:
            out.append(
                (WORKER_PAIRS_BY_TEAM, prev, {"team_id": prev, "athlete_id": aid, "series": {}})
            )
        st.corr_team = team
        if team is not None:
            out.append((WORKER_PAIRS_BY_TEAM, team, self.pairs_snapshot(st, team)))
        return out

    def pairs_snapshot(self, st: AthleteState, team: str) -> dict[str, Any]:
        """The message :meth:`share_pairs` sends to ``team`` (no side effects).

        Returns
        -------
        dict
            ``{"team_id", "athlete_id", "series": {"<metric>:<lag>": {"t": ms,
            "pairs": [[load day, load, pain], ...]}}}``.
        """
        times = st.corr_t or {}
        series = {
            f"{METRIC}:{key[3:]}": {
                "t": int(times.get(key) or self._pairs_time(st, raw["pairs"])),
                "pairs": raw["pairs"],
            }
            for key, raw in sorted(st.corr.items())
            if raw["pairs"]
        }
        return {"team_id": team, "athlete_id": st.athlete_id, "series": series}

    def _corr_events(
        self,
        st: AthleteState,
        po: PairedObservations,
        lag: int,
        day: str,
        time_iso: str,
        team: str | None,
    ) -> list[Output]:
        aid = st.athlete_id
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

    def _refresh_corr(self, st: AthleteState) -> list[Output]:
        """A day's load was corrected (late data): update the pairs that used the old
        load and re-publish those correlations (id of the corrected day: replays upsert)."""
        if not st.corr:
            return []
        tr: AcwrTracker | None = None
        out: list[Output] = []
        for key, raw in sorted(st.corr.items()):
            po = PairedObservations.from_dict(raw)
            changed: list[str] = []
            for d, x, y in [tuple(pair) for pair in raw["pairs"]]:
                if tr is None:
                    tr = AcwrTracker.from_dict(st.acwr)
                load = tr.load_on(dt.date.fromisoformat(d))
                if load is not None and load != x:
                    po.add(d, load, y)
                    changed.append(d)
            if changed:
                st.corr[key] = po.to_dict()
                d = max(changed)
                t = self.cal(st).end_of_day_ms(d) - 1000
                self._touch_corr(st, key, t)
                out += self._corr_events(st, po, int(key[3:]), d, iso(t), st.team_id)
        if out:
            out += self.share_pairs(st, st.team_id)
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
