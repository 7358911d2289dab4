"""Team-level repeated-measures correlation, plain Python (no Kafka): the team processor
equals core's rmcorr over the union of the athletes' pairs whatever the arrival order."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kneeload.contracts import is_valid
from kneeload.core.correlation import CorrelationConfig, rmcorr
from kneeload.worker.app import CachedTable, StagedTable
from kneeload.worker.athlete import METRIC, AthleteProcessor, WorkerConfig, new_state
from kneeload.worker.state import AthleteState, decode_team, encode_team
from kneeload.worker.team import TeamProcessor, entry_key, series_key, team_event
from kneeload.worker.timeutil import iso as iso_ms

from .helpers import UTC, athlete_record, batches, iso, samples

D0 = dt.datetime(2024, 6, 10, 7, 0, tzinfo=UTC)
T0 = int(D0.timestamp() * 1000)
KEY = series_key(METRIC, 1)
PAIRS = "worker.pairs-by-team"


def share(aid: str, pairs: list[list[Any]], t: int, team: str = "t1") -> dict[str, Any]:
    return {"team_id": team, "athlete_id": aid, "series": {KEY: {"t": t, "pairs": pairs}}}


def union(final: dict[str, list[list[Any]]]) -> tuple[list[str], list[float], list[float]]:
    """Every athlete's pairs, athletes by id and pairs by day (the canonical order)."""
    subj: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    for aid in sorted(final):
        for _d, x, y in sorted(final[aid], key=lambda p: p[0]):
            subj.append(aid)
            xs.append(float(x))
            ys.append(float(y))
    return subj, xs, ys


def day(i: int) -> str:
    return (D0.date() + dt.timedelta(days=i)).isoformat()


@st.composite
def team_histories(draw: st.DrawFn) -> dict[str, list[list[list[Any]]]]:
    """Per athlete, the growing snapshots its processor would share (one per report)."""
    out: dict[str, list[list[list[Any]]]] = {}
    for i in range(draw(st.integers(1, 6))):
        days = draw(st.lists(st.integers(0, 60), max_size=12, unique=True))
        pairs = [
            [
                day(d),
                draw(st.floats(0, 5000, allow_nan=False)),
                float(draw(st.integers(0, 10))),
            ]
            for d in days
        ]
        if pairs:
            out[f"a{i}"] = [pairs[: k + 1] for k in range(len(pairs))]
    return out


@given(hist=team_histories(), data=st.data())
@settings(max_examples=80, deadline=None)
def test_team_result_is_rmcorr_of_the_union_whatever_the_arrival_order(
    hist: dict[str, list[list[list[Any]]]], data: st.DataObject
) -> None:
    config = CorrelationConfig(min_n_team=data.draw(st.sampled_from([4, 20])))
    # athletes' messages interleaved at random (each athlete's in its own order, as one
    # producer writes them to the team's partition), then a replay of a random suffix
    slots = [aid for aid, snaps in hist.items() for _ in snaps]
    order = data.draw(st.permutations(slots))
    seen: dict[str, int] = {}
    msgs = []
    for aid in order:
        k = seen[aid] = seen.get(aid, -1) + 1
        msgs.append(share(aid, hist[aid][k], T0 + 3_600_000 * k))
    msgs += msgs[data.draw(st.integers(0, len(msgs))) :]
    tp = TeamProcessor({}, config)
    events = [e for m in msgs for _, _, e in tp.on_pairs(m)]
    if not hist:
        assert events == []
        return
    final = {aid: snaps[-1] for aid, snaps in hist.items()}
    want = rmcorr(*union(final), config=config)
    assert tp.result("t1", KEY) == want
    t_max = T0 + 3_600_000 * max(len(s) - 1 for s in hist.values())
    assert events[-1] == team_event("t1", KEY, t_max, want)
    # the order of the union does not matter beyond floating-point rounding
    subj, xs, ys = union(final)
    idx = list(range(len(xs)))
    random.Random(len(xs)).shuffle(idx)
    other = rmcorr([subj[i] for i in idx], [xs[i] for i in idx], [ys[i] for i in idx], config)
    assert (other.n_obs, other.n_subjects, other.df, other.reason_code) == (
        want.n_obs,
        want.n_subjects,
        want.df,
        want.reason_code,
    )
    if want.r is not None:
        assert other.r == pytest.approx(want.r, rel=1e-9, abs=1e-12)


def _pairs(aid: int, n: int) -> list[list[Any]]:
    # within-athlete association (pain rises with load), athletes at different levels
    return [[day(d), 1000.0 + 50 * d + 300 * aid, float((d + aid) % 3 + d // 2)] for d in range(n)]


def test_withheld_below_the_minimums_with_reasons_and_n() -> None:
    tp = TeamProcessor({})
    out = tp.on_pairs(share("a0", _pairs(0, 12), T0))
    out += tp.on_pairs(share("a1", _pairs(1, 12), T0))
    ev = out[-1][2]
    assert ev["withheld_reason"] == "too_few_athletes" and ev["n"] == 24
    assert ev["r"] is None and ev["df"] is None and ev["p_value"] is None
    tp = TeamProcessor({})
    for a in range(3):
        out = tp.on_pairs(share(f"a{a}", _pairs(a, 5), T0))
    ev = out[-1][2]
    assert ev["withheld_reason"] == "too_few_pairs" and ev["n"] == 15  # < min_n_team 20
    out = tp.on_pairs(share("a2", _pairs(2, 12), T0 + 1000))
    ev = out[-1][2]
    assert ev["withheld_reason"] is None and ev["n"] == 22 and ev["df"] == 22 - 3 - 1
    assert -1 <= ev["ci_low"] <= ev["r"] <= ev["ci_high"] <= 1 and 0 <= ev["p_value"] <= 1
    assert is_valid("correlation", ev), ev


def test_replay_republishes_the_same_event_and_changes_nothing() -> None:
    store: dict[str, Any] = {}
    tp = TeamProcessor(store)
    msgs = [share(f"a{a}", _pairs(a, 10), T0 + a) for a in range(3)]
    first = [o for m in msgs for o in tp.on_pairs(m)]
    before = {k: msgspec.structs.replace(v) for k, v in store.items()}
    again = tp.on_pairs(msgs[-1])
    assert again == [first[-1]]  # same id, same values: the sink's upsert is a no-op
    assert store == before
    assert again[0][:2] == ("correlations", "t1")
    assert again[0][2]["id"] == f"team:t1:{METRIC}:1:rmcorr:{iso(D0)[:10]}"


def test_an_athlete_leaving_the_team_is_dropped_and_time_never_moves_back() -> None:
    tp = TeamProcessor({})
    for a in range(4):
        tp.on_pairs(share(f"a{a}", _pairs(a, 10), T0 + 1000 * a))
    with_a3 = tp.result("t1", KEY)
    out = tp.on_pairs({"team_id": "t1", "athlete_id": "a3", "series": {}})
    assert entry_key("t1", "a3") not in tp.store
    ev = out[0][2]
    want = rmcorr(*union({f"a{a}": _pairs(a, 10) for a in range(3)}))
    assert ev["n"] == 30 and ev["r"] == want.r and ev["r"] != with_a3.r
    assert ev["time"] == iso_ms(T0 + 3000)  # the departed athlete's change still counts
    assert tp.on_pairs({"team_id": "t1", "athlete_id": "zz", "series": {}}) == []


def test_staged_writes_reach_the_table_only_on_commit() -> None:
    raw: dict[bytes, bytes] = {}
    table = CachedTable(raw, encode_team, decode_team)
    staged = StagedTable(table)
    tp = TeamProcessor(staged)
    out = tp.on_pairs(share("a0", _pairs(0, 3), T0))
    assert out and raw == {} and "t1" in staged
    staged.commit()
    assert set(raw) == {b"t1", b"t1|a0"}
    tp.store = staged = StagedTable(table)
    tp.on_pairs({"team_id": "t1", "athlete_id": "a0", "series": {}})
    assert b"t1|a0" in raw and entry_key("t1", "a0") not in staged
    staged.commit()
    assert set(raw) == {b"t1"}
    again = TeamProcessor(StagedTable(CachedTable(raw, encode_team, decode_team)))
    assert again.pairs("t1", KEY) == ([], [], [])


def _athlete_run(aid: str, level: float) -> tuple[AthleteProcessor, AthleteState, list]:
    """Eight days of sessions of varying length, each followed by next-morning pain."""
    cfg = WorkerConfig(day_grace_s=60, publish_interval_s=0)
    p = AthleteProcessor(cfg, {})
    s = new_state(aid, cfg)
    out = p.on_registry(s, athlete_record(aid, "t1"))
    for d in range(8):
        n = 120 + 40 * ((d * 3 + len(aid)) % 5)
        start = D0 + dt.timedelta(days=d)
        for b in batches(aid, "t1", samples(start, n, tag=aid), session_id=f"{aid}-{d}"):
            out += p.on_batch(s, b, 0)
        out += p.on_tick(s, 10**13)
        rep = {
            "report_id": f"{aid}-p{d}",
            "athlete_id": aid,
            "team_id": "t1",
            "time": iso(start + dt.timedelta(hours=23)),
            "context": "next_morning",
            "pain_nrs": int(min(10, level + n // 80)),
        }
        out += p.on_pain(s, rep, 10**13)
    return p, s, out


def test_athletes_share_their_pairs_and_the_team_event_is_core_rmcorr() -> None:
    tp = TeamProcessor({})
    expected: dict[str, list[list[Any]]] = {}
    team_out: list = []
    for i, aid in enumerate(("b1", "b2", "b3")):
        _, s, out = _athlete_run(aid, level=i)
        shares = [o for o in out if o[0] == PAIRS]
        assert shares and all(o[1] == "t1" for o in shares)
        loads = {e["date"]: e["load"] for t, _, e in out if t == "daily.load"}
        pains = {e["report_id"]: e["pain_nrs"] for t, _, e in out if t == "pain.responses"}
        expected[aid] = [[day(d), loads[day(d)], float(pains[f"{aid}-p{d}"])] for d in range(8)]
        assert shares[-1][2]["series"][KEY]["pairs"] == s.corr["lag1"]["pairs"]
        for _, _, msg in shares:
            team_out += tp.on_pairs(msg)
    last = {e["lag_days"]: e for _, _, e in team_out}
    ev = last[1]
    want = rmcorr(*union(expected))
    assert not want.withheld and ev["n"] == 24 and ev["df"] == 20
    assert ev["r"] == pytest.approx(want.r, rel=1e-12)
    assert (ev["ci_low"], ev["ci_high"], ev["p_value"]) == pytest.approx(
        (want.ci_low, want.ci_high, want.p_value), rel=1e-9
    )
    assert ev["scope"] == "team" and ev["athlete_id"] is None and ev["method"] == "rmcorr"
    assert ev["time"] == iso(D0 + dt.timedelta(days=7, hours=23))
    assert is_valid("correlation", ev), ev


def test_team_change_in_the_registry_moves_the_pairs() -> None:
    p, s, _ = _athlete_run("c1", 1)
    out = p.on_registry(s, athlete_record("c1", "t2"))
    moved = [(t, k, bool(m["series"])) for t, k, m in out]
    assert moved == [(PAIRS, "t1", False), (PAIRS, "t2", True)]
    assert p.on_registry(s, athlete_record("c1", "t2")) == []  # no change, nothing shared


def test_rebuilt_team_table_equals_the_live_one() -> None:
    """rebuild-state's team table (each athlete's final snapshot through the team
    processor) holds what the live team agent built from every message on the way, and
    gives the same event."""
    from kneeload.worker.rebuild import rebuild_teams

    live: dict[str, Any] = {}
    tp = TeamProcessor(live)
    athletes: dict[str, AthleteState] = {}
    proc: AthleteProcessor | None = None
    for i, aid in enumerate(("r1", "r2", "r3")):
        proc, s, out = _athlete_run(aid, level=i)
        athletes[aid] = s
        for _, _, msg in (o for o in out if o[0] == PAIRS):
            tp.on_pairs(msg)
    assert proc is not None
    rebuilt = rebuild_teams(proc, athletes)
    assert rebuilt == live
    assert TeamProcessor(rebuilt).event("t1", KEY) == tp.event("t1", KEY)
