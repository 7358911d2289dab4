"""ACWR: hand-computed examples, coverage rule, batch == incremental, late days."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kneeload.core.acwr import (
    METHODS,
    AcwrConfig,
    AcwrState,
    AcwrTracker,
    LateDayTooOldError,
    acwr_frame,
    acwr_series,
    daily_load_frame,
    ewma_lambda,
    load_metrics_frame,
)

D0 = dt.date(2024, 1, 1)


def frame(loads: list[float], athlete: str = "a") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "athlete_id": [athlete] * len(loads),
            "date": [D0 + dt.timedelta(days=i) for i in range(len(loads))],
            "load": loads,
        }
    )


def test_lambda() -> None:
    assert ewma_lambda(7) == 0.25
    assert ewma_lambda(28) == pytest.approx(0.069, abs=0.0005)


def test_ewma_hand_example() -> None:
    out = acwr_series([100.0, 0.0, 50.0], AcwrConfig(min_chronic_days=0))
    # acute: 100; 100 + .25(0-100) = 75; 75 + .25(50-75) = 68.75
    assert [r.acute_ewma for r in out] == [100.0, 75.0, 68.75]
    lam = 2 / 29
    c1 = 100 + lam * (0 - 100)
    assert out[1].chronic_ewma == pytest.approx(c1)
    assert out[2].chronic_ewma == pytest.approx(c1 + lam * (50 - c1))
    assert out[2].acwr_ewma == pytest.approx(68.75 / out[2].chronic_ewma)


def test_rolling_hand_example() -> None:
    cfg = AcwrConfig(acute_days=2, chronic_days=4, min_chronic_days=0)
    out = acwr_series([4.0, 8.0, 0.0, 12.0, 6.0], cfg)
    last = out[-1]
    assert last.acute_rac == (12 + 6) / 2
    assert last.chronic_rac == (8 + 0 + 12 + 6) / 4
    assert last.acwr_rac == pytest.approx(9 / 6.5)
    assert last.chronic_rau == (8 + 0) / 2  # days t-3 … t-2
    assert last.acwr_rau == pytest.approx(9 / 4)
    assert (
        out[1].chronic_rau is None and out[1].acwr_reason_rau == "no uncoupled chronic window yet"
    )
    # partial windows average the days there are
    assert out[0].acute_rac == 4.0 and out[1].chronic_rac == 6.0


def test_coupled_ratio_bounded_by_window_ratio() -> None:
    out = acwr_series([0.0] * 27 + [100.0])
    assert out[-1].acwr_rac == pytest.approx(4.0)


def test_coverage_rule_and_switch_off() -> None:
    out = acwr_series([10.0] * 30)
    assert all(r.acwr_ewma is None for r in out[:27])
    assert out[0].acwr_reason_ewma == "insufficient history: 1 of 28 days"
    assert out[27].acwr_ewma == pytest.approx(1.0) and out[27].acwr_reason_ewma is None
    out = acwr_series([10.0] * 3, AcwrConfig(min_chronic_days=0))
    assert out[0].acwr_ewma == 1.0
    out = acwr_series([10.0] * 10, AcwrConfig(min_chronic_days=5))
    assert out[3].acwr_rac is None and out[4].acwr_rac == 1.0


def test_zero_chronic_is_null_with_reason() -> None:
    out = acwr_series([0.0] * 30)
    assert out[-1].acwr_ewma is None and out[-1].acwr_reason_ewma == "chronic load is zero"


def test_zero_fill_and_duplicates() -> None:
    df = pl.DataFrame(
        {
            "athlete_id": ["a", "a", "a", "b"],
            "date": [D0, D0, D0 + dt.timedelta(days=3), D0 + dt.timedelta(days=1)],
            "load": [1.0, 2.0, 5.0, 7.0],
        }
    )
    d = daily_load_frame(df)
    assert d["load"].to_list() == [3.0, 0.0, 0.0, 5.0, 7.0]
    assert d["athlete_id"].to_list() == ["a"] * 4 + ["b"]
    assert d["date"].to_list()[-1] == D0 + dt.timedelta(days=1)


def test_negative_load_rejected() -> None:
    with pytest.raises(ValueError, match="load"):
        acwr_frame(frame([1.0, -2.0]))
    with pytest.raises(ValueError, match="load"):
        AcwrState().step(float("nan"))


def test_companions_hand_example() -> None:
    week1_loads = [10.0, 20.0, 30.0, 0.0, 10.0, 20.0, 30.0]
    loads = [*week1_loads, 20.0, 30.0, 40.0, 10.0, 20.0, 30.0, 40.0]
    out = acwr_series(loads)
    week1, week2 = sum(loads[:7]), sum(loads[7:])
    assert out[6].weekly_load == week1 and out[6].wow_change_pct is None
    assert out[13].wow_change_pct == pytest.approx((week2 - week1) / week1 * 100)
    import statistics

    mono = statistics.mean(loads[7:]) / statistics.stdev(loads[7:])
    assert out[13].monotony == pytest.approx(mono)
    assert out[13].strain == pytest.approx(week2 * mono)
    atl = ctl = 0.0
    for x in loads:
        atl += (x - atl) / 7
        ctl += (x - ctl) / 42
    assert out[-1].atl == pytest.approx(atl) and out[-1].ctl == pytest.approx(ctl)
    assert out[-1].tsb == pytest.approx(ctl - atl)
    assert acwr_series([5.0] * 7)[-1].monotony is None  # SD 0


def _batch_rows(loads: list[float], cfg: AcwrConfig) -> list[dict[str, object]]:
    return acwr_frame(frame(loads), cfg, METHODS, companions=True).to_dicts()


COMPARE = [f"{p}_{m}" for m in METHODS for p in ("acute", "chronic", "acwr", "acwr_reason")] + [
    "weekly_load",
    "wow_change_pct",
    "monotony",
    "strain",
    "atl",
    "ctl",
    "tsb",
]


def _inc_row(r: object) -> dict[str, object]:
    d = r._asdict()  # type: ignore[attr-defined]
    d["acute_rau"] = d["acute_rac"]
    return {k: d[k] for k in COMPARE}


loads_st = st.lists(
    st.one_of(
        st.just(0.0), st.floats(0.0, 5000.0, allow_nan=False), st.integers(0, 900).map(float)
    ),
    min_size=1,
    max_size=90,
)
cfg_st = st.builds(
    lambda a, extra, cover: AcwrConfig(
        acute_days=a, chronic_days=a + extra, min_chronic_days=cover
    ),
    st.integers(1, 10),
    st.integers(1, 30),
    st.one_of(st.none(), st.integers(0, 40)),
)


@settings(max_examples=80, deadline=None)
@given(loads=loads_st, cfg=cfg_st, split=st.integers(0, 90))
def test_incremental_equals_batch_exactly(loads: list[float], cfg: AcwrConfig, split: int) -> None:
    batch = _batch_rows(loads, cfg)
    split = min(split, len(loads))
    s = AcwrState(cfg)
    got = [s.step(x) for x in loads[:split]]
    s = AcwrState.from_dict(json.loads(json.dumps(s.to_dict())))  # persisted between the halves
    got += [s.step(x) for x in loads[split:]]
    assert [_inc_row(r) for r in got] == [{k: b[k] for k in COMPARE} for b in batch]


@settings(max_examples=60, deadline=None)
@given(
    loads=st.lists(st.floats(0.0, 1000.0, allow_nan=False), min_size=2, max_size=70),
    late=st.integers(0, 69),
    history=st.integers(5, 80),
)
def test_tracker_late_day_recomputes_forward(loads: list[float], late: int, history: int) -> None:
    late = min(late, len(loads) - 1)
    cfg = AcwrConfig(acute_days=3, chronic_days=10)
    batch = acwr_frame(frame(loads), cfg).to_dicts()
    t = AcwrTracker(cfg, history_days=history)
    for i, x in enumerate(loads):
        if i != late:
            t.set_day(D0 + dt.timedelta(days=i), x)
    t = AcwrTracker.from_dict(json.loads(json.dumps(t.to_dict())))
    day = D0 + dt.timedelta(days=late)
    # the tracker keeps the last `history` days; day 0 (before the first day it saw) is
    # accepted only while nothing has been trimmed
    too_old = len(loads) > history + 1 if late == 0 else late < len(loads) - history
    if too_old:
        with pytest.raises(LateDayTooOldError):
            t.set_day(day, loads[late])
        return
    out = t.set_day(day, loads[late])
    assert out[0].date == day and out[-1].date == D0 + dt.timedelta(days=len(loads) - 1)
    for r in out:
        b = batch[(r.date - D0).days]  # type: ignore[operator]
        assert (r.acute_ewma, r.chronic_ewma, r.acwr_ewma) == (
            b["acute_ewma"],
            b["chronic_ewma"],
            b["acwr_ewma"],
        )
        assert (r.acute_rac, r.chronic_rau, r.acwr_rau) == (
            b["acute_rac"],
            b["chronic_rau"],
            b["acwr_rau"],
        )


def test_tracker_today_updates_and_gaps() -> None:
    t = AcwrTracker(AcwrConfig(min_chronic_days=0))
    t.add_load(D0, 10.0)
    t.add_load(D0, 5.0)  # second session the same day
    out = t.add_load(D0 + dt.timedelta(days=3), 20.0)  # two rest days zero-filled
    assert [r.load for r in out] == [0.0, 0.0, 20.0]
    batch = acwr_series([15.0, 0.0, 0.0, 20.0], AcwrConfig(min_chronic_days=0))
    assert out[-1].acwr_ewma == batch[-1].acwr_ewma


def test_batch_multi_athlete_unsorted_input() -> None:
    a = frame([1.0, 2.0, 3.0], "a")
    b = frame([5.0, 0.0], "b")
    df = pl.concat([b, a]).reverse()
    out = acwr_frame(df, AcwrConfig(min_chronic_days=0), ["ewma"])
    assert out["athlete_id"].to_list() == ["a", "a", "a", "b", "b"]
    assert out["acute_ewma"].to_list()[:3] == [r.acute_ewma for r in acwr_series([1.0, 2.0, 3.0])]


def test_load_metrics_frame_columns() -> None:
    out = load_metrics_frame(frame([1.0] * 20))
    assert out.columns == [
        "athlete_id",
        "date",
        "load",
        "weekly_load",
        "wow_change_pct",
        "monotony",
        "strain",
        "atl",
        "ctl",
        "tsb",
    ]
    assert out["wow_change_pct"].to_list()[-1] == 0.0


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="acute_days"):
        AcwrConfig(acute_days=28, chronic_days=7)


@settings(max_examples=60, deadline=None)
@given(
    athletes=st.lists(
        st.lists(
            st.tuples(st.integers(0, 60), st.integers(0, 900).map(float)), min_size=1, max_size=40
        ),
        min_size=1,
        max_size=6,
    ),
    cfg=cfg_st,
    block_cells=st.sampled_from([1, 7, 64, 1 << 18]),
    seed=st.integers(0, 2**32 - 1),
)
def test_batch_many_athletes_equals_incremental(
    athletes: list[list[tuple[int, float]]],
    cfg: AcwrConfig,
    block_cells: int,
    seed: int,
) -> None:
    """Gaps, several rows a day, shuffled rows, unequal spans and any block size: every
    athlete's batch rows equal the incremental state stepped over its zero-filled days."""
    import random

    from kneeload.core import acwr as acwr_mod

    rows = [
        (f"a{i}", D0 + dt.timedelta(days=day), load)
        for i, days in enumerate(athletes)
        for day, load in days
    ]
    random.Random(seed).shuffle(rows)
    df = pl.DataFrame(rows, schema=["athlete_id", "date", "load"], orient="row")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(acwr_mod, "_BLOCK_CELLS", block_cells)
        got = acwr_frame(df, cfg, METHODS, companions=True).to_dicts()
    expected: list[dict[str, object]] = []
    for i, days in enumerate(athletes):
        first, last = min(d for d, _ in days), max(d for d, _ in days)
        daily = [0.0] * (last - first + 1)
        for day, load in days:  # integer-valued loads: any summation order is exact
            daily[day - first] += load
        s = AcwrState(cfg)
        expected += [{"athlete_id": f"a{i}", "load": x, **_inc_row(s.step(x))} for x in daily]
    assert [{k: r[k] for k in ("athlete_id", "load", *COMPARE)} for r in got] == expected
