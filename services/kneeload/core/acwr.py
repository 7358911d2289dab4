"""Acute:chronic workload ratio (ACWR) and companion load metrics.

A TREND for clinicians, never a validated injury threshold: random or fixed
"chronic" divisors reproduce the published injury association (Impellizzeri et al.
2020/2021, Sports Med, doi:10.1007/s40279-020-01378-6; docs/science.md §2).

Three methods, one daily load series per athlete (days inside the athlete's span with
no data count as zero load):

``ewma``  E_t = E_{t−1} + λ·(load_t − E_{t−1}), λ = 2/(N+1), seeded with the first
          day's load (Williams et al. 2017, BJSM 51:209); ACWR = E_acute / E_chronic.
``rac``   rolling average, coupled: acute = mean of the last 7 days incl. today,
          chronic = mean of the last 28 days incl. today (Windt & Gabbett 2018).
``rau``   rolling average, uncoupled: chronic = mean of days t−27 … t−7
          (criticism of coupling: Lolli et al. 2019, BJSM 53:921).

While fewer than ``N`` days exist the rolling means average the days there are.
Rolling sums are computed as differences of the cumulative sum, in the batch form
(polars) and the incremental form (:class:`AcwrState`) alike, so both give the same
floating-point numbers, bit for bit.

Companions (:func:`load_metrics_frame`, and on every :class:`DailyAcwr`):
week-over-week change % of trailing 7-day sums (Nielsen et al. 2014, JOSPT: > 30%
linked to more distance-related injuries), Foster monotony and strain (Foster 1998,
MSSE 30:1164), and ATL/CTL/TSB in the TrainingPeaks form
``X_t = X_{t−1} + (load_t − X_{t−1})/τ`` with τ = 7 / 42 days, seeded at 0 before
the first day, TSB_t = CTL_t − ATL_t (same day; GoldenCheetah's e^(−1/τ) decay is
NOT used).

Where the numbers come from: :func:`acwr_frame` (batch, polars DataFrame in and out),
:class:`AcwrState` (one athlete, constant size, JSON-able), :class:`AcwrTracker`
(an :class:`AcwrState` plus a bounded stored daily series, handles late days by
replaying forward).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl

__all__ = [
    "METHODS",
    "AcwrConfig",
    "AcwrState",
    "AcwrTracker",
    "DailyAcwr",
    "LateDayTooOldError",
    "Method",
    "acwr_frame",
    "daily_load_frame",
    "ewma_lambda",
    "load_metrics_frame",
    "session_rpe_load",
]

Method = Literal["ewma", "rac", "rau"]
METHODS: tuple[Method, ...] = ("ewma", "rac", "rau")

REASON_HISTORY = "insufficient history"
REASON_ZERO = "chronic load is zero"
REASON_NO_WINDOW = "no uncoupled chronic window yet"
#: A weekly SD at or below this fraction of the mean counts as zero (monotony undefined);
#: keeps rounding noise of a constant week from producing a huge monotony.
_SD_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class AcwrConfig:
    """Windows and rules for ACWR and companions; defaults cite docs/science.md §2.

    Attributes
    ----------
    acute_days, chronic_days : int
        7 and 28 days (Gabbett 2016; Williams et al. 2017; Windt & Gabbett 2018).
    min_chronic_days : int or None
        Coverage rule: the ratio is null, with a reason, until the athlete's span holds
        this many days. None (default) means ``chronic_days``; 0 switches the rule off.
    week_days : int
        Window for week-over-week change, monotony and strain: 7 (Foster 1998;
        Nielsen et al. 2014).
    atl_days, ctl_days : int
        Fitness–fatigue time constants: 7 and 42 days (TrainingPeaks form).
    monotony_ddof : int
        Delta degrees of freedom of the SD in Foster monotony: 1 (sample SD;
        Foster 1998 does not say; kneeload's choice, configurable).
    """

    acute_days: int = 7
    chronic_days: int = 28
    min_chronic_days: int | None = None
    week_days: int = 7
    atl_days: int = 7
    ctl_days: int = 42
    monotony_ddof: int = 1

    def __post_init__(self) -> None:
        if not (1 <= self.acute_days < self.chronic_days):
            raise ValueError(
                f"acute_days={self.acute_days}, chronic_days={self.chronic_days}: "
                "need 1 ≤ acute_days < chronic_days"
            )
        if self.min_chronic_days is not None and self.min_chronic_days < 0:
            raise ValueError(f"min_chronic_days={self.min_chronic_days}: must be ≥ 0 (0 = off)")
        if self.week_days < 2 or self.atl_days < 1 or self.ctl_days < 1:
            raise ValueError("week_days must be ≥ 2, atl_days and ctl_days ≥ 1")
        if self.monotony_ddof not in (0, 1):
            raise ValueError(f"monotony_ddof={self.monotony_ddof}: must be 0 or 1")

    @property
    def coverage_days(self) -> int:
        """Days of history required before a ratio is shown (0 = rule off)."""
        return self.chronic_days if self.min_chronic_days is None else self.min_chronic_days

    @property
    def ring_days(self) -> int:
        """Cumulative sums kept by :class:`AcwrState`: max(chronic, 2 weeks)."""
        return max(self.chronic_days, 2 * self.week_days)


DEFAULT_ACWR_CONFIG = AcwrConfig()


def ewma_lambda(days: int) -> float:
    """EWMA decay ``λ = 2/(N+1)``: 0.25 for 7 days, 0.069 for 28 (Williams et al. 2017)."""
    return 2.0 / (days + 1.0)


def session_rpe_load(rpe_cr10: float, duration_min: float) -> float:
    """Session-RPE load = RPE (CR-10, 0–10) × minutes (Foster et al. 2001; docs/science.md §2)."""
    if not (0.0 <= rpe_cr10 <= 10.0):
        raise ValueError(f"rpe_cr10={rpe_cr10!r}: must be 0–10")
    if not (duration_min >= 0.0):
        raise ValueError(f"duration_min={duration_min!r}: must be ≥ 0")
    return rpe_cr10 * duration_min


# ------------------------------------------------------------------ incremental


class DailyAcwr(NamedTuple):
    """One athlete-day: ratios per method (None + reason when withheld) and companions."""

    date: dt.date | None
    day_index: int
    load: float
    acute_ewma: float
    chronic_ewma: float
    acwr_ewma: float | None
    acwr_reason_ewma: str | None
    acute_rac: float
    chronic_rac: float
    acwr_rac: float | None
    acwr_reason_rac: str | None
    acute_rau: float
    chronic_rau: float | None
    acwr_rau: float | None
    acwr_reason_rau: str | None
    weekly_load: float
    wow_change_pct: float | None
    monotony: float | None
    strain: float | None
    atl: float
    ctl: float
    tsb: float

    def method(self, m: Method) -> tuple[float, float | None, float | None, str | None]:
        """(acute, chronic, acwr, reason) of one method."""
        i = {"ewma": 3, "rac": 7, "rau": 11}[m]
        return self[i], self[i + 1], self[i + 2], self[i + 3]  # type: ignore[return-value]


def _ratio(
    acute: float, chronic: float | None, n: int, cover: int
) -> tuple[float | None, str | None]:
    if cover and n < cover:
        return None, f"{REASON_HISTORY}: {n} of {cover} days"
    if chronic is None:
        return None, REASON_NO_WINDOW
    if chronic == 0.0:
        return None, REASON_ZERO
    return acute / chronic, None


class AcwrState:
    """Incremental ACWR for one athlete: constant size, exact batch equality.

    State per method: EWMA two floats; rolling averages a ring of the last
    ``max(chronic_days, 2·week_days)`` cumulative sums (constant per window);
    companions a ring of the last ``week_days`` loads and two floats (ATL, CTL).
    :meth:`step` advances one day; :meth:`to_dict`/:meth:`from_dict` give plain JSON.
    """

    __slots__ = (
        "_cum",
        "_cum_ring",
        "_ewma_a",
        "_ewma_c",
        "_lam_a",
        "_lam_c",
        "_load_ring",
        "atl",
        "config",
        "ctl",
        "n_days",
    )

    def __init__(self, config: AcwrConfig = DEFAULT_ACWR_CONFIG) -> None:
        self.config = config
        self.n_days = 0
        self._cum = 0.0
        self._cum_ring: deque[float] = deque(maxlen=config.ring_days)
        self._load_ring: deque[float] = deque(maxlen=config.week_days)
        self._ewma_a = 0.0
        self._ewma_c = 0.0
        self.atl = 0.0
        self.ctl = 0.0
        self._lam_a = ewma_lambda(config.acute_days)
        self._lam_c = ewma_lambda(config.chronic_days)

    def _c_back(self, k: int) -> float:
        """Cumulative sum k days before the day being computed (0.0 before the span)."""
        ring = self._cum_ring
        return ring[-k] if k <= len(ring) else 0.0

    def step(self, load: float, date: dt.date | None = None) -> DailyAcwr:
        """Advance one day with that day's total load (≥ 0, finite) and return its numbers."""
        if not (load >= 0.0 and math.isfinite(load)):
            raise ValueError(f"load={load!r}: must be a finite number ≥ 0")
        cfg = self.config
        a, n_c, w = cfg.acute_days, cfg.chronic_days, cfg.week_days
        i = self.n_days
        n = i + 1
        cover = cfg.coverage_days
        c_a, c_n = self._c_back(a), self._c_back(n_c)
        cum = self._cum + load
        # EWMA, seeded with the first day's load
        if i == 0:
            ea = ec = load
        else:
            ea = self._ewma_a + self._lam_a * (load - self._ewma_a)
            ec = self._ewma_c + self._lam_c * (load - self._ewma_c)
        # rolling averages from cumulative sums
        acute_ra = (cum - c_a) / min(n, a)
        chronic_rac = (cum - c_n) / min(n, n_c)
        chronic_rau = (c_a - c_n) / min(n - a, n_c - a) if i >= a else None
        r_e, why_e = _ratio(ea, ec, n, cover)
        r_c, why_c = _ratio(acute_ra, chronic_rac, n, cover)
        r_u, why_u = _ratio(acute_ra, chronic_rau, n, cover)
        # companions
        weekly = cum - self._c_back(w)
        if i >= 2 * w - 1:
            prev_week = self._c_back(w) - self._c_back(2 * w)
            wow = (weekly - prev_week) / prev_week * 100.0 if prev_week > 0.0 else None
        else:
            wow = None
        self._load_ring.append(load)
        monotony = strain = None
        if i >= w - 1:
            mean = weekly / w
            ss = 0.0
            for x in self._load_ring:
                dev = x - mean
                ss = ss + dev * dev
            sd = math.sqrt(ss / (w - cfg.monotony_ddof))
            if sd > _SD_EPS * mean:
                monotony = mean / sd
                strain = weekly * monotony
        atl = self.atl + (load - self.atl) / cfg.atl_days
        ctl = self.ctl + (load - self.ctl) / cfg.ctl_days
        # commit
        self._cum_ring.append(cum)
        self._cum = cum
        self._ewma_a, self._ewma_c = ea, ec
        self.atl, self.ctl = atl, ctl
        self.n_days = n
        return DailyAcwr(
            date, i, load,
            ea, ec, r_e, why_e,
            acute_ra, chronic_rac, r_c, why_c,
            acute_ra, chronic_rau, r_u, why_u,
            weekly, wow, monotony, strain, atl, ctl, ctl - atl,
        )  # fmt: skip

    def copy(self) -> AcwrState:
        """An independent copy (snapshots for replay)."""
        return AcwrState.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (floats round-trip exactly through JSON)."""
        return {
            "config": asdict(self.config),
            "n_days": self.n_days,
            "cum": self._cum,
            "cum_ring": list(self._cum_ring),
            "load_ring": list(self._load_ring),
            "ewma_acute": self._ewma_a,
            "ewma_chronic": self._ewma_c,
            "atl": self.atl,
            "ctl": self.ctl,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AcwrState:
        """Inverse of :meth:`to_dict`."""
        s = cls(AcwrConfig(**d["config"]))
        s.n_days = int(d["n_days"])
        s._cum = float(d["cum"])
        s._cum_ring.extend(float(x) for x in d["cum_ring"])
        s._load_ring.extend(float(x) for x in d["load_ring"])
        s._ewma_a = float(d["ewma_acute"])
        s._ewma_c = float(d["ewma_chronic"])
        s.atl = float(d["atl"])
        s.ctl = float(d["ctl"])
        return s


class LateDayTooOldError(ValueError):
    """A day older than the tracker's stored history arrived; rebuild from storage (batch)."""


class AcwrTracker:
    """Per-athlete ACWR for a stream worker: current state + a bounded daily series.

    Holds the daily loads of the last ``history_days`` days, the :class:`AcwrState`
    as of the day before the oldest stored day (the anchor), the state before the
    last day and the current state. A changed or late day ``d`` is handled by
    replaying forward from the anchor over the stored loads (at most
    ``history_days`` steps of a few µs); a change to the last day (today's running
    total) costs one step. Results are identical to :func:`acwr_frame` on the full
    series. A day before the stored history raises :class:`LateDayTooOldError`,
    unless the whole span is still stored (then it becomes the new first day).
    """

    def __init__(self, config: AcwrConfig = DEFAULT_ACWR_CONFIG, history_days: int = 60) -> None:
        if history_days < 1:
            raise ValueError(f"history_days={history_days}: must be ≥ 1")
        self.config = config
        self.history_days = history_days
        self.start_date: dt.date | None = None
        self.loads: list[float] = []
        self.anchor = AcwrState(config)
        self.anchor_is_span_start = True
        self.before_last = AcwrState(config)
        self.state = AcwrState(config)

    @property
    def last_date(self) -> dt.date | None:
        """Last day computed."""
        if self.start_date is None:
            return None
        return self.start_date + dt.timedelta(days=len(self.loads) - 1)

    def load_on(self, date: dt.date) -> float | None:
        """Stored load of a day (None outside the stored history)."""
        if self.start_date is None:
            return None
        i = (date - self.start_date).days
        return self.loads[i] if 0 <= i < len(self.loads) else None

    def add_load(self, date: dt.date, load: float) -> list[DailyAcwr]:
        """Add ``load`` to a day's total (a new session, or samples arriving)."""
        return self.set_day(date, (self.load_on(date) or 0.0) + load)

    def set_day(self, date: dt.date, load: float) -> list[DailyAcwr]:
        """Set a day's total load; returns the numbers of every day (re)computed, in order."""
        if not (load >= 0.0 and math.isfinite(load)):
            raise ValueError(f"load={load!r}: must be a finite number ≥ 0")
        if self.start_date is None:
            self.start_date = date
            self.loads = [load]
            self.before_last = self.anchor.copy()
            self.state = self.anchor.copy()
            return [self.state.step(load, date)]
        last = self.last_date
        assert last is not None
        if date > last:
            gap = (date - last).days
            out: list[DailyAcwr] = []
            for k in range(1, gap + 1):
                x = load if k == gap else 0.0
                self.loads.append(x)
                self.before_last = self.state.copy() if k == gap else self.before_last
                out.append(self.state.step(x, last + dt.timedelta(days=k)))
            self._trim()
            return out
        if date == last:
            self.loads[-1] = load
            self.state = self.before_last.copy()
            return [self.state.step(load, date)]
        if date < self.start_date:
            if not self.anchor_is_span_start:
                raise LateDayTooOldError(
                    f"{date} is before the stored history (from {self.start_date}); "
                    "recompute this athlete with the batch form"
                )
            pad = (self.start_date - date).days
            self.loads = [load] + [0.0] * (pad - 1) + self.loads
            self.start_date = date
            out = self._replay(0)
            self._trim()
            return out
        self.loads[(date - self.start_date).days] = load
        return self._replay((date - self.start_date).days)

    def _replay(self, from_index: int) -> list[DailyAcwr]:
        assert self.start_date is not None
        s = self.anchor.copy()
        out: list[DailyAcwr] = []
        last_i = len(self.loads) - 1
        for i, x in enumerate(self.loads):
            if i == last_i:
                self.before_last = s.copy()
            r = s.step(x, self.start_date + dt.timedelta(days=i))
            if i >= from_index:
                out.append(r)
        self.state = s
        return out

    def _trim(self) -> None:
        assert self.start_date is not None
        while len(self.loads) > self.history_days:
            self.anchor.step(self.loads.pop(0))
            self.start_date += dt.timedelta(days=1)
            self.anchor_is_span_start = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict for a Faust table."""
        return {
            "history_days": self.history_days,
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "loads": list(self.loads),
            "anchor": self.anchor.to_dict(),
            "anchor_is_span_start": self.anchor_is_span_start,
            "before_last": self.before_last.to_dict(),
            "state": self.state.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AcwrTracker:
        """Inverse of :meth:`to_dict`."""
        anchor = AcwrState.from_dict(d["anchor"])
        t = cls(anchor.config, int(d["history_days"]))
        t.start_date = dt.date.fromisoformat(d["start_date"]) if d["start_date"] else None
        t.loads = [float(x) for x in d["loads"]]
        t.anchor = anchor
        t.anchor_is_span_start = bool(d["anchor_is_span_start"])
        t.before_last = AcwrState.from_dict(d["before_last"])
        t.state = AcwrState.from_dict(d["state"])
        return t


# ------------------------------------------------------------------------ batch


class _Daily(NamedTuple):
    """Zero-filled daily series, flat in (athlete, date) order, and its block layout."""

    athlete_id: pl.Series  # String, one per row
    date: pl.Series  # Date, one per row
    load: np.ndarray  # float64, one per row (0.0 on days without a row)
    lengths: np.ndarray  # int64, days per athlete, athletes in sorted order


def _runs(
    src: pl.DataFrame,
) -> tuple[pl.Series, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(athlete ids, day numbers, athlete run ordinal per row, "same athlete as the row
    before" and the day step from the row before) — the layout :func:`_daily` reads."""
    aid = src["athlete_id"]
    days = src["date"].cast(pl.Int32).to_numpy().astype(np.int64)
    code = aid.rle_id().to_numpy()
    return aid, days, code, code[1:] == code[:-1], days[1:] - days[:-1]


def _daily(df: pl.DataFrame | pl.LazyFrame) -> _Daily:
    """Validate, sort (only when needed), sum a day's rows and zero-fill each athlete's span."""
    src = (
        df.lazy()
        .select(
            pl.col("athlete_id").cast(pl.String),
            pl.col("date").cast(pl.Date),
            pl.col("load").cast(pl.Float64),
        )
        .collect()
    )
    load_in = src["load"].to_numpy()  # a null load becomes NaN here and fails the check
    if src.height and (
        src["athlete_id"].null_count()
        or src["date"].null_count()
        or not bool(np.all(np.isfinite(load_in) & (load_in >= 0.0)))
    ):
        bad = src.filter(
            pl.col("athlete_id").is_null()
            | pl.col("date").is_null()
            | ~(pl.col("load") >= 0.0)
            | pl.col("load").is_infinite()
            | pl.col("load").is_null()
        )
        raise ValueError(
            "load: every row needs athlete_id, date and a finite load ≥ 0; "
            f"first bad row {bad.row(0) if bad.height else '?'}"
        )
    if src.height == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Daily(src["athlete_id"], src["date"], np.zeros(0), empty)
    # most inputs arrive sorted already: check (cheap) before sorting (not cheap)
    aid, days, code, same, step = _runs(src)
    if not (aid.is_sorted() and bool(np.all(~same | (step >= 0)))):
        # stable: rows of one day keep their input order, so their float sum is repeatable
        src = src.sort("athlete_id", "date", maintain_order=True)
        load_in = src["load"].to_numpy()
        aid, days, code, same, step = _runs(src)
    first_row = np.flatnonzero(np.r_[True, ~same])
    last_row = np.r_[first_row[1:] - 1, src.height - 1]
    first_day = days[first_row]
    lengths = days[last_row] - first_day + 1
    if bool(np.all(~same | (step == 1))):
        # one row per day, no gaps: the rows are the series (0.0 + x as bincount gives it,
        # which only turns −0.0 into 0.0)
        return _Daily(aid, src["date"], load_in + 0.0, lengths)
    offsets = np.r_[0, np.cumsum(lengths)[:-1]]
    total = int(lengths.sum())
    code = code.astype(np.int64)
    pos = offsets[code] + (days - first_day[code])
    # bincount sums the rows of a day in row order (0.0 + x is exact for a single row)
    load = np.bincount(pos, weights=load_in, minlength=total).astype(np.float64)
    athlete = np.repeat(np.arange(lengths.shape[0]), lengths)
    day_index = np.arange(total, dtype=np.int64) - offsets[athlete]
    return _Daily(
        aid.gather(first_row[athlete]),
        pl.Series("date", first_day[athlete] + day_index, dtype=pl.Int32).cast(pl.Date),
        load,
        lengths,
    )


def daily_load_frame(df: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One row per athlete-day over each athlete's span, zero-filled, sorted.

    Input columns ``athlete_id, date, load`` (several rows of a day are summed; load
    must be finite and ≥ 0). Output: ``athlete_id`` (str), ``date`` (Date), ``load``
    (Float64), ``day_index`` (days since the athlete's first day).
    """
    d = _daily(df)
    starts = np.r_[0, np.cumsum(d.lengths)[:-1]]
    day_index = np.arange(d.load.shape[0], dtype=np.int64) - np.repeat(starts, d.lengths)
    return pl.DataFrame(
        [
            d.athlete_id.alias("athlete_id"),
            d.date.alias("date"),
            pl.Series("load", d.load),
            pl.Series("day_index", day_index),
        ]
    )


#: Cells (athlete-days, padding included) per block of athletes computed together:
#: blocks of ~2 MB per array stay in cache while the day-by-day recurrences run.
_BLOCK_CELLS = 1 << 18


def _blocks(lengths: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """Consecutive athlete ranges ``[c0, c1)`` and their longest span, ≤ _BLOCK_CELLS cells."""
    n_ath = int(lengths.shape[0])
    if n_ath and int(lengths.min()) == int(lengths.max()):
        span = int(lengths[0])
        per = max(1, _BLOCK_CELLS // span)
        for c0 in range(0, n_ath, per):
            yield c0, min(c0 + per, n_ath), span
        return
    c0 = 0
    while c0 < n_ath:
        span, c1 = int(lengths[c0]), c0 + 1
        while c1 < n_ath:
            widest = max(span, int(lengths[c1]))
            if widest * (c1 + 1 - c0) > _BLOCK_CELLS:
                break
            span, c1 = widest, c1 + 1
        yield c0, c1, span
        c0 = c1


def _ewma_rows(x_t: np.ndarray, lam: float) -> np.ndarray:
    """``E_t = E_{t−1} + λ·(x_t − E_{t−1})``, ``E_0 = x_0``, down a (days × athletes) array.

    The same IEEE operations, in the same order, as :meth:`AcwrState.step`.
    """
    e = np.empty_like(x_t)
    tmp = np.empty(x_t.shape[1])
    e[0] = x_t[0]
    for t in range(1, x_t.shape[0]):
        np.subtract(x_t[t], e[t - 1], out=tmp)
        np.multiply(lam, tmp, out=tmp)
        np.add(e[t - 1], tmp, out=e[t])
    return e


def _fitness_rows(x_t: np.ndarray, tau_days: int) -> np.ndarray:
    """``X_t = X_{t−1} + (x_t − X_{t−1})/τ``, ``X_{−1} = 0``, down a (days × athletes) array.

    The same IEEE operations, in the same order, as :meth:`AcwrState.step` (ATL, CTL).
    """
    e = np.empty_like(x_t)
    tmp = np.empty(x_t.shape[1])
    prev = np.zeros(x_t.shape[1])
    for t in range(x_t.shape[0]):
        np.subtract(x_t[t], prev, out=tmp)
        np.divide(tmp, tau_days, out=tmp)
        np.add(prev, tmp, out=e[t])
        prev = e[t]
    return e


def _window_sum(cum: np.ndarray, k: int) -> np.ndarray:
    """``C_t − C_{t−k}`` per row (C before the first day = 0): the trailing k-day sum."""
    s = cum.copy()
    if k < cum.shape[1]:
        s[:, k:] -= cum[:, : cum.shape[1] - k]
    return s


def _divisors(count: int, cap: int) -> np.ndarray:
    """``min(1…count, cap)`` as floats: days actually averaged."""
    return np.minimum(np.arange(1, count + 1), cap).astype(np.float64)


def _block_kernel(
    x: np.ndarray, config: AcwrConfig, methods: Sequence[str], companions: bool
) -> dict[str, np.ndarray]:
    """All batch quantities of one block of athletes, (athletes × days), NaN = undefined.

    Vectorised over athletes and days, except the EWMA and ATL/CTL recurrences (a loop
    over days, vectorised over athletes). Every value is the same IEEE operation in the
    same order as :meth:`AcwrState.step` (cumulative sums accumulate day by day; no
    pairwise summation), hence bit-identical.
    """
    a, nc, w = config.acute_days, config.chronic_days, config.week_days
    span = x.shape[1]
    nan = np.nan
    res: dict[str, np.ndarray] = {}
    x_t = np.ascontiguousarray(x.T) if ("ewma" in methods or companions) else x
    if "ewma" in methods:
        res["acute_ewma"] = _ewma_rows(x_t, ewma_lambda(a)).T
        res["chronic_ewma"] = _ewma_rows(x_t, ewma_lambda(nc)).T
    cum = np.cumsum(x, axis=1)  # sequential per athlete: C_t = C_{t−1} + x_t
    if "rac" in methods or "rau" in methods:
        res["acute_ra"] = _window_sum(cum, a) / _divisors(span, a)
    if "rac" in methods:
        res["chronic_rac"] = _window_sum(cum, nc) / _divisors(span, nc)
    if "rau" in methods:
        rau = np.full_like(x, nan)
        if span > a:
            num = cum[:, : span - a].copy()  # C_{t−a}
            if span > nc:
                num[:, nc - a :] -= cum[:, : span - nc]  # − C_{t−N}
            rau[:, a:] = num / _divisors(span - a, nc - a)
        res["chronic_rau"] = rau
    if companions:
        weekly = _window_sum(cum, w)
        res["weekly_load"] = weekly
        wow = np.full_like(x, nan)
        if span > 2 * w - 1:
            prev = cum[:, w - 1 : span - w].copy()  # C_{t−w}
            if span > 2 * w:
                prev[:, 1:] -= cum[:, : span - 2 * w]  # − C_{t−2w}
            now = weekly[:, 2 * w - 1 :]
            with np.errstate(divide="ignore", invalid="ignore"):
                wow[:, 2 * w - 1 :] = np.where(prev > 0.0, (now - prev) / prev * 100.0, nan)
        res["wow_change_pct"] = wow
        mono = np.full_like(x, nan)
        if span >= w:
            cols = span - w + 1
            mean = weekly[:, w - 1 :] / w
            ss = np.zeros_like(mean)
            for k in range(w):  # oldest day first, as the scalar ring
                dev = x[:, k : k + cols] - mean
                ss = ss + dev * dev
            sd = np.sqrt(ss / (w - config.monotony_ddof))
            with np.errstate(divide="ignore", invalid="ignore"):
                mono[:, w - 1 :] = np.where(sd > _SD_EPS * mean, mean / sd, nan)
        res["monotony"] = mono
        res["strain"] = weekly * mono
        atl = _fitness_rows(x_t, config.atl_days).T
        ctl = _fitness_rows(x_t, config.ctl_days).T
        res["atl"], res["ctl"], res["tsb"] = atl, ctl, ctl - atl
    return res


def _reason_categories(cover: int) -> list[str]:
    """Every reason a ratio can be withheld for; a reason's code is its index here."""
    history = [f"{REASON_HISTORY}: {n} of {cover} days" for n in range(1, cover)]
    return [REASON_NO_WINDOW, REASON_ZERO, *history]


def _ratio_block(
    acute: np.ndarray, chronic: np.ndarray, no_window_days: int, cover: int
) -> tuple[np.ndarray, np.ndarray]:
    """``acute / chronic`` and a reason code per cell (−1: shown), rules in the scalar order.

    Codes index :func:`_reason_categories`: the coverage rule (day n < ``cover``, code
    n + 1) wins over "no uncoupled window" (day index < ``no_window_days``, code 0),
    which wins over "chronic load is zero" (code 1) — as :func:`_ratio`.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        value = acute / chronic  # inf where a float division overflows, as in Python
    code = np.where(chronic == 0.0, 1, -1).astype(np.int32)
    span = acute.shape[1]
    if no_window_days:
        code[:, : min(no_window_days, span)] = 0
    short = min(cover - 1, span) if cover else 0
    if short > 0:
        code[:, :short] = np.arange(2, short + 2, dtype=np.int32)
    return value, code


_COMPANIONS = ("weekly_load", "wow_change_pct", "monotony", "strain", "atl", "ctl", "tsb")


def _columns(
    d: _Daily, config: AcwrConfig, methods: Sequence[Method], companions: bool
) -> list[pl.Series]:
    """The computed output columns, flat in (athlete, date) order, ready for a DataFrame."""
    cover = config.coverage_days
    keys = [f"{p}_{m}" for m in methods for p in ("acute", "chronic", "acwr", "code")]
    keys += list(_COMPANIONS) if companions else []
    pieces: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    offsets = np.r_[0, np.cumsum(d.lengths)]
    for c0, c1, span in _blocks(d.lengths):
        lengths = d.lengths[c0:c1]
        flat = d.load[int(offsets[c0]) : int(offsets[c1])]
        if bool(np.all(lengths == span)):
            x = flat.reshape(-1, span)
            mask = None
        else:
            mask = np.arange(span) < lengths[:, None]
            x = np.zeros(mask.shape)
            x[mask] = flat  # row-major boolean order = (athlete, day) order
        res = _block_kernel(x, config, methods, companions)
        for m in methods:
            res[f"acute_{m}"] = res["acute_ewma"] if m == "ewma" else res["acute_ra"]
            no_window = config.acute_days if m == "rau" else 0
            res[f"acwr_{m}"], res[f"code_{m}"] = _ratio_block(
                res[f"acute_{m}"], res[f"chronic_{m}"], no_window, cover
            )
        for k in keys:
            pieces[k].append(res[k].reshape(-1) if mask is None else res[k][mask])
    flat_of: dict[str, np.ndarray] = {
        k: (v[0] if len(v) == 1 else np.concatenate(v))
        if v
        else np.zeros(0, dtype=np.int32 if k.startswith("code_") else np.float64)
        for k, v in pieces.items()
    }
    reasons = pl.Enum(_reason_categories(cover))
    dictionary = pl.Series(_reason_categories(cover), dtype=reasons)
    cols: list[pl.Series] = []
    for m in methods:
        code = flat_of[f"code_{m}"]
        withheld = code >= 0
        cols += [
            pl.Series(f"acute_{m}", flat_of[f"acute_{m}"]),
            pl.Series(f"chronic_{m}", flat_of[f"chronic_{m}"], nan_to_null=True),
            pl.Series(f"acwr_{m}", np.ma.masked_array(flat_of[f"acwr_{m}"], withheld)),
            dictionary.gather(
                pl.Series(np.ma.masked_array(code.astype(np.uint32), ~withheld))
            ).alias(f"acwr_reason_{m}"),
        ]
    if companions:
        cols += [pl.Series(k, flat_of[k], nan_to_null=True) for k in _COMPANIONS]
    return cols


def acwr_frame(
    df: pl.DataFrame | pl.LazyFrame,
    config: AcwrConfig = DEFAULT_ACWR_CONFIG,
    methods: Sequence[Method] = METHODS,
    companions: bool = False,
) -> pl.DataFrame:
    """Batch ACWR: ``athlete_id, date, load`` in; per method ``acute_<m>, chronic_<m>,
    acwr_<m>, acwr_reason_<m>`` out, one row per athlete-day (zero-filled, sorted).

    With ``companions=True`` also ``weekly_load, wow_change_pct, monotony, strain,
    atl, ctl, tsb`` (see :func:`load_metrics_frame`). Same definitions and the same
    floating-point results, bit for bit, as :class:`AcwrState` (equations in the
    module docstring; sources docs/science.md §2). ``acwr_<m>`` is null with a reason while
    the coverage rule withholds it, before the uncoupled window exists, or when the
    chronic load is zero; ``acwr_reason_<m>`` is a ``pl.Enum`` of those reasons.

    Cost: linear in athlete-days. Athletes are computed in blocks of consecutive
    athletes (athletes × days arrays); rolling sums are differences of cumulative
    sums over whole blocks, the EWMA (and ATL/CTL) recurrences a loop over days
    vectorised across the athletes of a block.
    """
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"method={m!r}: must be one of {', '.join(METHODS)}")
    d = _daily(df)
    return pl.DataFrame(
        [
            d.athlete_id.alias("athlete_id"),
            d.date.alias("date"),
            pl.Series("load", d.load),
            *_columns(d, config, methods, companions),
        ]
    )


def load_metrics_frame(
    df: pl.DataFrame | pl.LazyFrame, config: AcwrConfig = DEFAULT_ACWR_CONFIG
) -> pl.DataFrame:
    """Batch companions: ``weekly_load, wow_change_pct, monotony, strain, atl, ctl, tsb``.

    * weekly_load: trailing ``week_days`` sum; wow_change_pct: its change against the
      previous ``week_days`` in % (null before two full weeks or when the previous week
      is zero) — Nielsen et al. 2014, JOSPT.
    * monotony = mean / SD of the last 7 daily loads (null when SD = 0), strain =
      weekly load × monotony — Foster 1998, MSSE 30:1164.
    * ATL/CTL: ``X_t = X_{t−1} + (load_t − X_{t−1})/τ``, X before the first day = 0;
      TSB = CTL − ATL (TrainingPeaks form).
    """
    return acwr_frame(df, config, methods=(), companions=True)


def acwr_series(
    loads: Iterable[float], config: AcwrConfig = DEFAULT_ACWR_CONFIG, start: dt.date | None = None
) -> list[DailyAcwr]:
    """Convenience: run :class:`AcwrState` over a contiguous daily series (zero = rest day)."""
    s = AcwrState(config)
    out = []
    for i, x in enumerate(loads):
        out.append(s.step(x, start + dt.timedelta(days=i) if start else None))
    return out


__all__ += ["acwr_series"]
