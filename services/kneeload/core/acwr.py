"""Acute:chronic workload ratio (ACWR) and companion load metrics.

A TREND for clinicians, never a validated injury threshold: random or fixed
"chronic" divisors reproduce the published injury association (Impellizzeri et al.
2020/2021, Sports Med, doi:10.1007/s40279-020-01378-6; DOMAIN.md §2).

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
from collections.abc import Iterable, Sequence
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
    """Windows and rules for ACWR and companions; defaults cite DOMAIN.md §2.

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
    """Session-RPE load = RPE (CR-10, 0–10) × minutes (Foster et al. 2001; DOMAIN.md §2)."""
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
    """Zero-filled daily series, flat in (athlete, date) order, with the block layout."""

    frame: pl.DataFrame  # athlete_id, date, load, day_index
    load: np.ndarray  # float64, flat
    day_index: np.ndarray  # int64, flat
    code: np.ndarray  # athlete ordinal per row
    offsets: np.ndarray  # first flat row per athlete
    lengths: np.ndarray  # days per athlete


def _daily(df: pl.DataFrame | pl.LazyFrame) -> _Daily:
    src = (
        df.lazy()
        .select(
            pl.col("athlete_id").cast(pl.String),
            pl.col("date").cast(pl.Date),
            pl.col("load").cast(pl.Float64),
        )
        .collect()
    )
    # most inputs arrive sorted already: check (cheap) before sorting (not cheap)
    aid, day = pl.col("athlete_id"), pl.col("date")
    in_order = (aid < aid.shift(-1)) | ((aid == aid.shift(-1)) & (day <= day.shift(-1)))
    if src.height > 1 and not src.select(in_order.head(src.height - 1).all()).item():
        src = src.sort("athlete_id", "date")
    load_in = src["load"].to_numpy()
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
    code_in = src["athlete_id"].rle_id().to_numpy().astype(np.int64)
    days_in = src["date"].cast(pl.Int32).to_numpy().astype(np.int64)
    n_ath = int(code_in[-1]) + 1 if src.height else 0
    first_row = np.flatnonzero(np.r_[True, code_in[1:] != code_in[:-1]]) if src.height else code_in
    last_row = np.r_[first_row[1:] - 1, src.height - 1] if src.height else code_in
    first_day = days_in[first_row]
    lengths = days_in[last_row] - first_day + 1
    offsets = np.r_[0, np.cumsum(lengths)[:-1]] if n_ath else lengths
    total = int(lengths.sum()) if n_ath else 0
    pos = offsets[code_in] + (days_in - first_day[code_in])
    # bincount sums the rows of a day (0.0 + x is exact for a single row)
    load = np.bincount(pos, weights=load_in, minlength=total).astype(np.float64)
    code = np.repeat(np.arange(n_ath, dtype=np.int64), lengths)
    day_index = np.arange(total, dtype=np.int64) - offsets[code]
    frame = pl.DataFrame(
        {
            "athlete_id": src["athlete_id"].gather(first_row[code]),
            "date": pl.Series(first_day[code] + day_index, dtype=pl.Int32).cast(pl.Date),
            "load": load,
            "day_index": day_index,
        }
    )
    return _Daily(frame, load, day_index, code, offsets, lengths)


def daily_load_frame(df: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One row per athlete-day over each athlete's span, zero-filled, sorted.

    Input columns ``athlete_id, date, load`` (several rows of a day are summed; load
    must be finite and ≥ 0). Output: ``athlete_id`` (str), ``date`` (Date), ``load``
    (Float64), ``day_index`` (days since the athlete's first day).
    """
    return _daily(df).frame


_BLOCK_CELLS = 1 << 22


def _kernel(
    d: _Daily, config: AcwrConfig, methods: Sequence[str], companions: bool
) -> dict[str, np.ndarray]:
    """The day-by-day recurrences of :meth:`AcwrState.step`, vectorised over athletes.

    Athletes are laid out as columns of (days × athletes) blocks; every arithmetic
    operation is the same IEEE operation in the same order as the scalar form, so the
    results are bit-identical. Undefined values are NaN (→ null).
    """
    a, nc, w = config.acute_days, config.chronic_days, config.week_days
    lam_a, lam_c = ewma_lambda(a), ewma_lambda(nc)
    names: list[str] = []
    if "ewma" in methods:
        names += ["acute_ewma", "chronic_ewma"]
    if "rac" in methods or "rau" in methods:
        names += ["acute_ra"]
    if "rac" in methods:
        names += ["chronic_rac"]
    if "rau" in methods:
        names += ["chronic_rau"]
    if companions:
        names += ["weekly_load", "wow_change_pct", "monotony", "strain", "atl", "ctl", "tsb"]
    total = d.load.shape[0]
    out = {k: np.full(total, np.nan) for k in names}
    n_ath = d.lengths.shape[0]
    c0 = 0
    nan = np.nan
    while c0 < n_ath:
        max_len = int(d.lengths[c0])
        c1 = c0 + 1
        while c1 < n_ath:
            m = max(max_len, int(d.lengths[c1]))
            if m * (c1 + 1 - c0) > _BLOCK_CELLS:
                break
            max_len, c1 = m, c1 + 1
        cols = c1 - c0
        rows = slice(int(d.offsets[c0]), int(d.offsets[c1 - 1] + d.lengths[c1 - 1]))
        code = d.code[rows] - c0
        di = d.day_index[rows]
        x = np.zeros((max_len, cols))
        x[di, code] = d.load[rows]
        res = {k: np.full((max_len, cols), nan) for k in names}
        cum = np.zeros((max_len, cols))
        run = np.zeros(cols)
        for t in range(max_len):
            run = run + x[t]
            cum[t] = run
        zero = np.zeros(cols)

        def back(t: int, k: int, cum: np.ndarray = cum, zero: np.ndarray = zero) -> np.ndarray:
            return cum[t - k] if t >= k else zero

        ea = ec = atl = ctl = zero
        for t in range(max_len):
            n = t + 1
            xt = x[t]
            if "ewma" in methods:
                if t == 0:
                    ea = ec = xt
                else:
                    ea = ea + lam_a * (xt - ea)
                    ec = ec + lam_c * (xt - ec)
                res["acute_ewma"][t] = ea
                res["chronic_ewma"][t] = ec
            if "acute_ra" in res:
                res["acute_ra"][t] = (cum[t] - back(t, a)) / min(n, a)
            if "rac" in methods:
                res["chronic_rac"][t] = (cum[t] - back(t, nc)) / min(n, nc)
            if "rau" in methods and t >= a:
                res["chronic_rau"][t] = (back(t, a) - back(t, nc)) / min(n - a, nc - a)
            if companions:
                weekly = cum[t] - back(t, w)
                res["weekly_load"][t] = weekly
                if t >= 2 * w - 1:
                    prev = back(t, w) - back(t, 2 * w)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        wow = (weekly - prev) / prev * 100.0
                    res["wow_change_pct"][t] = np.where(prev > 0.0, wow, nan)
                if t >= w - 1:
                    mean = weekly / w
                    ss = zero
                    for j in range(t - w + 1, t + 1):
                        dev = x[j] - mean
                        ss = ss + dev * dev
                    sd = np.sqrt(ss / (w - config.monotony_ddof))
                    ok = sd > _SD_EPS * mean
                    with np.errstate(divide="ignore", invalid="ignore"):
                        mono = np.where(ok, mean / sd, nan)
                    res["monotony"][t] = mono
                    res["strain"][t] = weekly * mono
                atl = atl + (xt - atl) / config.atl_days
                ctl = ctl + (xt - ctl) / config.ctl_days
                res["atl"][t] = atl
                res["ctl"][t] = ctl
                res["tsb"][t] = ctl - atl
        for k in names:
            out[k][rows] = res[k][di, code]
        c0 = c1
    return out


def _ratio_expr(
    acute: pl.Expr, chronic: pl.Expr, n: pl.Expr, cover: int
) -> tuple[pl.Expr, pl.Expr]:
    short = (n < cover) if cover else pl.lit(False)
    value = (
        pl.when(short | chronic.is_null() | (chronic == 0.0)).then(None).otherwise(acute / chronic)
    )
    reason = (
        pl.when(short)
        .then(pl.format(f"{REASON_HISTORY}: {{}} of {cover} days", n))
        .when(chronic.is_null())
        .then(pl.lit(REASON_NO_WINDOW))
        .when(chronic == 0.0)
        .then(pl.lit(REASON_ZERO))
        .otherwise(None)
    )
    return value, reason


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
    module docstring; sources DOMAIN.md §2). ``acwr_<m>`` is null with a reason while
    the coverage rule withholds it, before the uncoupled window exists, or when the
    chronic load is zero.
    """
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"method={m!r}: must be one of {', '.join(METHODS)}")
    d = _daily(df)
    arrays = _kernel(d, config, methods, companions)
    cols: dict[str, pl.Series] = {}
    for m in methods:
        acute = arrays["acute_ewma"] if m == "ewma" else arrays["acute_ra"]
        cols[f"acute_{m}"] = pl.Series(f"acute_{m}", acute)
        cols[f"chronic_{m}"] = pl.Series(f"chronic_{m}", arrays[f"chronic_{m}"], nan_to_null=True)
    comp = ["weekly_load", "wow_change_pct", "monotony", "strain", "atl", "ctl", "tsb"]
    if companions:
        for k in comp:
            cols[k] = pl.Series(k, arrays[k], nan_to_null=True)
    out = d.frame.with_columns(list(cols.values()))
    n = pl.col("day_index") + 1
    ratio_cols: list[pl.Expr] = []
    for m in methods:
        value, reason = _ratio_expr(
            pl.col(f"acute_{m}"), pl.col(f"chronic_{m}"), n, config.coverage_days
        )
        ratio_cols += [value.alias(f"acwr_{m}"), reason.alias(f"acwr_reason_{m}")]
    out = out.with_columns(ratio_cols)
    keep = ["athlete_id", "date", "load"]
    for m in methods:
        keep += [f"acute_{m}", f"chronic_{m}", f"acwr_{m}", f"acwr_reason_{m}"]
    if companions:
        keep += comp
    return out.select(keep)


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
