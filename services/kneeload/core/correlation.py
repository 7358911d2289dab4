"""Pain–load correlation: per athlete (Pearson, Spearman, lag 0/1) and per team (rmcorr).

Within-athlete, not pooled (docs/science.md §3): pair day-t load with day-t+1 morning pain
(lag 1, the primary signal) and with during-run pain (lag 0). Every coefficient carries
its n; below ``CorrelationConfig.min_n`` it is withheld with a reason.

* :func:`correlate` — Pearson or Spearman with p-value and Fisher-z CI.
* :func:`pair_by_day` / :func:`athlete_correlations` — lagged pairing of daily series.
* :func:`rmcorr` — repeated-measures correlation (Bakdash & Marusich 2017, Front
  Psychol 8:456, doi:10.3389/fpsyg.2017.00456): common within-person association,
  df = N − k − 1, CI by Fisher z with SE = 1/√(df − 1).
* :class:`PairedObservations` — bounded store of pairs for incremental updates; its
  results equal the batch functions on the same pairs.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

__all__ = [
    "CorrelationConfig",
    "CorrelationResult",
    "PairedObservations",
    "RmcorrResult",
    "athlete_correlations",
    "correlate",
    "pair_by_day",
    "rmcorr",
]

CorrMethod = Literal["pearson", "spearman"]


@dataclass(frozen=True, slots=True)
class CorrelationConfig:
    """min_n 10 pairs per athlete (kneeload's choice; below it r is too unstable to show),
    min_subjects 3 and min_n_team 20 for rmcorr, 95% confidence, at most 365 stored pairs."""

    min_n: int = 10
    min_subjects: int = 3
    min_n_team: int = 20
    confidence: float = 0.95
    max_pairs: int = 365


DEFAULT_CORRELATION_CONFIG = CorrelationConfig()


@dataclass(frozen=True, slots=True)
class CorrelationResult:
    """r with n, p and CI; r is None (withheld) with a reason when not reportable.

    ``reason`` is for people; ``reason_code`` is its snake_case code (the correlation
    event's ``withheld_reason``): ``too_few_pairs`` or ``constant_input``; None when
    reported.
    """

    method: str
    n: int
    r: float | None
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    withheld: bool
    reason: str | None
    lag_days: int | None = None
    load_metric: str | None = None
    reason_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {k: getattr(self, k) for k in self.__slots__}


def _fisher_ci(r: float, se: float, confidence: float) -> tuple[float, float]:
    z = math.atanh(max(min(r, 1 - 1e-15), -1 + 1e-15))
    q = float(stats.norm.ppf(0.5 + confidence / 2.0))
    return math.tanh(z - q * se), math.tanh(z + q * se)


def _t_p(r: float, df: int) -> float:
    if abs(r) >= 1.0:
        return 0.0
    t = r * math.sqrt(df / (1.0 - r * r))
    return float(2.0 * stats.t.sf(abs(t), df))


def _withheld(method: str, n: int, reason: str, code: str) -> CorrelationResult:
    return CorrelationResult(method, n, None, None, None, None, True, reason, reason_code=code)


def correlate(
    x: Sequence[float],
    y: Sequence[float],
    method: CorrMethod = "spearman",
    config: CorrelationConfig = DEFAULT_CORRELATION_CONFIG,
) -> CorrelationResult:
    """Pearson or Spearman correlation with n, two-sided p (t, n − 2 df) and Fisher-z CI.

    Spearman is Pearson on average ranks (ties averaged), as in scipy. CI: z = atanh r,
    SE = 1/√(n − 3) (Spearman uses the same approximation). Pairs with a NaN are dropped.
    Withheld below ``config.min_n`` pairs or when either variable is constant.
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y: lengths differ ({xa.size} vs {ya.size})")
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    n = int(xa.size)
    if n < max(config.min_n, 3):
        return _withheld(
            method, n, f"n = {n} < minimum {max(config.min_n, 3)}: too few pairs", "too_few_pairs"
        )
    if method == "spearman":
        xa, ya = stats.rankdata(xa), stats.rankdata(ya)
    elif method != "pearson":
        raise ValueError(f"method={method!r}: must be 'pearson' or 'spearman'")
    dx, dy = xa - xa.mean(), ya - ya.mean()
    sxx, syy = float(dx @ dx), float(dy @ dy)
    if sxx == 0.0 or syy == 0.0:
        return _withheld(
            method, n, "a variable is constant: correlation undefined", "constant_input"
        )
    r = max(-1.0, min(1.0, float(dx @ dy) / math.sqrt(sxx * syy)))
    lo, hi = _fisher_ci(r, 1.0 / math.sqrt(n - 3), config.confidence) if n > 3 else (None, None)
    return CorrelationResult(method, n, r, _t_p(r, n - 2), lo, hi, False, None)


def pair_by_day(
    load_by_day: Mapping[dt.date, float], pain_by_day: Mapping[dt.date, float], lag_days: int
) -> tuple[list[float], list[float]]:
    """Pairs (load on day t, pain on day t + lag), in date order, where both exist."""
    xs: list[float] = []
    ys: list[float] = []
    for d in sorted(load_by_day):
        p = pain_by_day.get(d + dt.timedelta(days=lag_days))
        if p is not None:
            xs.append(load_by_day[d])
            ys.append(p)
    return xs, ys


def athlete_correlations(
    load_metrics: Mapping[str, Mapping[dt.date, float]],
    during_pain_by_day: Mapping[dt.date, float],
    next_morning_pain_by_day: Mapping[dt.date, float],
    config: CorrelationConfig = DEFAULT_CORRELATION_CONFIG,
    methods: Sequence[CorrMethod] = ("spearman", "pearson"),
) -> list[CorrelationResult]:
    """Every (load metric × lag × method) for one athlete.

    ``load_metrics`` maps a metric name (e.g. ``session_pfj_load``, ``daily_load``,
    ``acwr_ewma``, ``bws_pct``, ``cadence_spm``) to its values by day. Lag 0 pairs with
    during-run pain the same day; lag 1 with next-morning pain reported on day t + 1.
    """
    out: list[CorrelationResult] = []
    for name, series in load_metrics.items():
        for lag, pain in ((0, during_pain_by_day), (1, next_morning_pain_by_day)):
            xs, ys = pair_by_day(series, pain, lag)
            for m in methods:
                r = correlate(xs, ys, m, config)
                out.append(_with(r, lag, name))
    return out


def _with(r: CorrelationResult, lag: int, metric: str) -> CorrelationResult:
    return CorrelationResult(
        r.method, r.n, r.r, r.p_value, r.ci_low, r.ci_high, r.withheld, r.reason, lag, metric,
        r.reason_code,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class RmcorrResult:
    """Repeated-measures correlation (None + reason when withheld).

    ``reason_code`` (snake_case, None when reported): ``too_few_athletes``,
    ``too_few_pairs`` or ``no_within_athlete_variance``.
    """

    r: float | None
    df: int
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    slope: float | None
    n_obs: int
    n_subjects: int
    withheld: bool
    reason: str | None
    reason_code: str | None = None


def rmcorr(
    subject: Sequence[Hashable],
    x: Sequence[float],
    y: Sequence[float],
    config: CorrelationConfig = DEFAULT_CORRELATION_CONFIG,
) -> RmcorrResult:
    """Repeated-measures correlation (Bakdash & Marusich 2017).

    ANCOVA with subject as factor: centre x and y on each subject's means, then
    ``r_rm = Σ dx·dy / √(Σdx²·Σdy²)``, common slope ``Σdx·dy / Σdx²``,
    ``df = N − k − 1`` (N observations, k subjects), ``t = r·√(df/(1 − r²))``,
    CI by Fisher z with SE = 1/√(df − 1). Subjects with one observation add nothing
    and are dropped. Withheld with fewer than ``min_subjects`` subjects or
    ``min_n_team`` observations, or with no within-subject variance.
    """
    if not (len(subject) == len(x) == len(y)):
        raise ValueError("subject, x, y: lengths differ")
    groups: dict[Hashable, list[tuple[float, float]]] = {}
    for s, a, b in zip(subject, x, y, strict=True):
        if math.isfinite(a) and math.isfinite(b):
            groups.setdefault(s, []).append((float(a), float(b)))
    groups = {s: v for s, v in groups.items() if len(v) >= 2}
    k = len(groups)
    n = sum(len(v) for v in groups.values())
    df = n - k - 1
    if k < config.min_subjects or n < config.min_n_team or df < 2:
        return RmcorrResult(
            None,
            max(df, 0),
            None,
            None,
            None,
            None,
            n,
            k,
            True,
            f"{k} athletes / {n} observations: need ≥ {config.min_subjects} athletes "
            f"and ≥ {config.min_n_team} observations",
            "too_few_athletes" if k < config.min_subjects else "too_few_pairs",
        )
    sxy = sxx = syy = 0.0
    for v in groups.values():
        arr = np.asarray(v)
        dx = arr[:, 0] - arr[:, 0].mean()
        dy = arr[:, 1] - arr[:, 1].mean()
        sxy += float(dx @ dy)
        sxx += float(dx @ dx)
        syy += float(dy @ dy)
    if sxx == 0.0 or syy == 0.0:
        return RmcorrResult(
            None,
            df,
            None,
            None,
            None,
            None,
            n,
            k,
            True,
            "no within-athlete variance: correlation undefined",
            "no_within_athlete_variance",
        )
    r = max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
    lo, hi = _fisher_ci(r, 1.0 / math.sqrt(df - 1), config.confidence)
    return RmcorrResult(r, df, _t_p(r, df), lo, hi, sxy / sxx, n, k, False, None)


class PairedObservations:
    """Bounded store of (key, x, y) pairs for incremental correlation as reports arrive.

    Keeps the last ``config.max_pairs`` pairs (a new pair with an existing key, e.g.
    a corrected report, replaces it). :meth:`result` equals :func:`correlate` on the
    stored pairs exactly; JSON-able via :meth:`to_dict`.
    """

    def __init__(self, config: CorrelationConfig = DEFAULT_CORRELATION_CONFIG) -> None:
        self.config = config
        self._pairs: deque[tuple[str, float, float]] = deque(maxlen=config.max_pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def add(self, key: str, x: float, y: float) -> None:
        """Add or replace the pair for ``key`` (e.g. the ISO date of the load day)."""
        for i, (k, _, _) in enumerate(self._pairs):
            if k == key:
                del self._pairs[i]
                break
        self._pairs.append((key, float(x), float(y)))

    def xy(self) -> tuple[list[float], list[float]]:
        """Stored x and y in insertion order."""
        return [p[1] for p in self._pairs], [p[2] for p in self._pairs]

    def result(self, method: CorrMethod = "spearman") -> CorrelationResult:
        """Correlation of the stored pairs."""
        xs, ys = self.xy()
        return correlate(xs, ys, method, self.config)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return {"max_pairs": self.config.max_pairs, "pairs": [list(p) for p in self._pairs]}

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], config: CorrelationConfig = DEFAULT_CORRELATION_CONFIG
    ) -> PairedObservations:
        """Inverse of :meth:`to_dict` (max_pairs from the dict wins)."""
        from dataclasses import replace

        obj = cls(replace(config, max_pairs=int(d["max_pairs"])))
        for k, a, b in d["pairs"]:
            obj._pairs.append((str(k), float(a), float(b)))
        return obj
