"""Correlations against scipy, rmcorr against the ANCOVA definition, incremental == batch."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from kneeload.core.correlation import (
    CorrelationConfig,
    PairedObservations,
    athlete_correlations,
    correlate,
    rmcorr,
)

X = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]
Y = [2.0, 1.0, 4.0, 3.0, 7.0, 5.0, 6.0, 9.0, 8.0, 12.0, 10.0, 10.0]


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_matches_scipy(method: str) -> None:
    res = correlate(X, Y, method)  # type: ignore[arg-type]
    ref = stats.pearsonr(X, Y) if method == "pearson" else stats.spearmanr(X, Y)
    assert res.n == 12 and not res.withheld
    assert res.r == pytest.approx(ref.statistic, abs=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    if method == "pearson":
        ci = stats.pearsonr(X, Y).confidence_interval(0.95)
        assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_withheld_below_min_n_and_constant() -> None:
    r = correlate(X[:5], Y[:5])
    assert r.withheld and r.r is None and r.n == 5 and "n = 5" in (r.reason or "")
    assert correlate(X[:5], Y[:5], config=CorrelationConfig(min_n=5)).r is not None
    c = correlate(X, [3.0] * 12)
    assert c.withheld and "constant" in (c.reason or "")


def test_lagged_pairing() -> None:
    d0 = dt.date(2024, 1, 1)
    days = [d0 + dt.timedelta(days=i) for i in range(12)]
    load = dict(zip(days, X, strict=True))
    during = dict(zip(days, Y, strict=True))
    morning = {d + dt.timedelta(days=1): y for d, y in zip(days, Y, strict=True)}
    res = athlete_correlations({"daily_load": load}, during, morning, CorrelationConfig(min_n=5))
    by = {(r.lag_days, r.method): r for r in res}
    assert by[(0, "pearson")].r == pytest.approx(stats.pearsonr(X, Y).statistic)
    assert by[(1, "pearson")].r == pytest.approx(stats.pearsonr(X, Y).statistic)  # shifted pairing
    assert all(r.n == 12 and r.load_metric == "daily_load" for r in res)


def _rmcorr_ancova(subject: list[str], x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Reference: y ~ subject + x by least squares; r = sign(b)·√(SS_x / (SS_x + SS_res))."""
    subs = sorted(set(subject))
    dummies = np.array([[s == u for u in subs] for s in subject], dtype=float)
    full = np.column_stack([dummies, x])
    beta, *_ = np.linalg.lstsq(full, y, rcond=None)
    ss_res = float(np.sum((y - full @ beta) ** 2))
    b0, *_ = np.linalg.lstsq(dummies, y, rcond=None)
    ss_sub = float(np.sum((y - dummies @ b0) ** 2))
    ss_x = ss_sub - ss_res
    return float(np.sign(beta[-1]) * np.sqrt(ss_x / (ss_x + ss_res))), len(x) - len(subs) - 1


def test_rmcorr_hand_example() -> None:
    # three athletes, each a perfect within-person line of slope 1 at different levels,
    # with opposite between-person trend: rmcorr = 1 while pooled r is negative
    subject = ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    x = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    y = [21, 22, 23, 11, 12, 13, 1, 2, 3]
    res = rmcorr(subject, x, y, CorrelationConfig(min_n_team=9))
    assert res.r == pytest.approx(1.0) and res.df == 9 - 3 - 1 and res.slope == pytest.approx(1.0)
    assert stats.pearsonr(x, y).statistic < 0


def test_rmcorr_matches_ancova_definition() -> None:
    rng = np.random.default_rng(3)
    subject = [f"s{i // 6}" for i in range(48)]
    x = rng.normal(size=48) + np.repeat(rng.normal(size=8) * 3, 6)
    y = 0.5 * x + rng.normal(size=48) + np.repeat(rng.normal(size=8) * 3, 6)
    res = rmcorr(subject, list(x), list(y))
    r_ref, df_ref = _rmcorr_ancova(subject, x, y)
    assert res.r == pytest.approx(r_ref, abs=1e-10) and res.df == df_ref == 39
    t = r_ref * np.sqrt(df_ref / (1 - r_ref**2))
    assert res.p_value == pytest.approx(2 * stats.t.sf(abs(t), df_ref), rel=1e-9)
    z, se = np.arctanh(r_ref), 1 / np.sqrt(df_ref - 1)
    assert res.ci_low == pytest.approx(np.tanh(z - 1.959963984540054 * se))
    assert res.ci_low < res.r < res.ci_high  # type: ignore[operator]


def test_rmcorr_withheld() -> None:
    res = rmcorr(["a", "a", "b", "b"], [1, 2, 3, 4], [1, 2, 3, 4])
    assert res.withheld and res.r is None and "athletes" in (res.reason or "")


@settings(max_examples=50, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.floats(0, 1000), st.integers(0, 10).map(float)), min_size=0, max_size=60
    ),
    max_pairs=st.integers(10, 40),
)
def test_incremental_equals_batch(pairs: list[tuple[float, float]], max_pairs: int) -> None:
    cfg = CorrelationConfig(min_n=5, max_pairs=max_pairs)
    inc = PairedObservations(cfg)
    for i, (a, b) in enumerate(pairs):
        inc.add(f"d{i}", a, b)
        if i % 7 == 0:
            inc = PairedObservations.from_dict(json.loads(json.dumps(inc.to_dict())), cfg)
    kept = pairs[-max_pairs:]
    xs, ys = [p[0] for p in kept], [p[1] for p in kept]
    for m in ("spearman", "pearson"):
        assert inc.result(m) == correlate(xs, ys, m, cfg)


def test_incremental_replaces_same_key() -> None:
    inc = PairedObservations()
    inc.add("2024-01-01", 1.0, 2.0)
    inc.add("2024-01-01", 1.0, 3.0)
    assert len(inc) == 1 and inc.xy() == ([1.0], [3.0])


def test_withheld_results_carry_reason_codes() -> None:
    assert correlate(X[:2], Y[:2]).reason_code == "too_few_pairs"
    assert correlate(X, [1.0] * len(X)).reason_code == "constant_input"
    assert correlate(X, Y).reason_code is None
    assert rmcorr(["a"] * 4, X[:4], Y[:4]).reason_code == "too_few_athletes"
    subj = ["a", "b", "c"] * 8
    xs = [float(i) for i in range(24)]
    assert rmcorr(subj, xs, [1.0] * 24).reason_code in ("no_within_athlete_variance",)
    assert rmcorr(subj, xs, [x * 2 + (i % 3) for i, x in enumerate(xs)]).reason_code is None
