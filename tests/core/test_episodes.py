"""Alert episodes: hand-made sequences and the replay/redelivery property."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from kneeload.core.alerts import Severity
from kneeload.core.episodes import (
    Change,
    ConditionState,
    Observation,
    Transition,
    advance,
    condition_key,
    order_key,
    replay,
)

W, C = Severity.WARNING, Severity.CRITICAL
PAIN = condition_key("pain_high", "athlete:a1")
H = 3_600_000  # ms
T0 = 1_714_719_600_000  # 2024-05-03T07:00:00Z


def _o(hours: float, sev: Severity | None, cond: str = PAIN, ev: str | None = None) -> Observation:
    t = T0 + round(hours * H)
    return Observation(cond, t, ev or f"r{t}", sev)


def test_open_repeat_escalate_resolve() -> None:
    obs = [
        _o(0, W),  # opened
        _o(1, W),  # repeat: nothing
        _o(2, C),  # escalated
        _o(3, W),  # lower: nothing (the episode stays critical)
        _o(26, C),  # repeat a day later: nothing (the old cooldown re-sent this)
        _o(27, None, ev="report-ok"),  # resolved by this report
        _o(28, None),  # clear while closed: nothing
        _o(30, W),  # a new episode
    ]
    _, ch = replay(obs)
    assert [(c.transition, c.severity) for c in ch] == [
        (Transition.OPENED, W),
        (Transition.ESCALATED, C),
        (Transition.RESOLVED, C),
        (Transition.OPENED, W),
    ]
    first = ch[0].episode_id
    assert first == "pain_high:athlete:a1:20240503T070000Z"
    assert [c.episode_id for c in ch[:3]] == [first] * 3
    assert [c.change_id for c in ch[:3]] == [f"{first}:0", f"{first}:1", f"{first}:resolved"]
    assert ch[2].event_id == "report-ok" and ch[2].time_ms == T0 + 27 * H
    assert ch[3].episode_id != first


def test_conditions_are_independent() -> None:
    other = condition_key("pain_high", "athlete:a2")
    unit = condition_key("unit_offline", "unit:u1")
    _, ch = replay([_o(0, W), _o(0, W, other), _o(1, C, unit), _o(2, None)])
    assert [(c.condition, c.transition) for c in ch] == [
        (PAIN, Transition.OPENED),
        (other, Transition.OPENED),
        (unit, Transition.OPENED),
        (PAIN, Transition.RESOLVED),
    ]


def test_redelivery_and_late_observations_change_nothing() -> None:
    states, ch = advance({}, _o(0, W))
    assert len(ch) == 1
    states, again = advance(states, _o(0, W))  # the same event redelivered
    assert again == []
    states, ch = advance(states, _o(2, None))
    assert [c.transition for c in ch] == [Transition.RESOLVED]
    for late in (_o(1, C), _o(0, W), _o(2, None)):  # older or redelivered: already told
        states, again = advance(states, late)
        assert again == []


def test_advance_is_pure() -> None:
    s1, _ = advance({}, _o(0, W))
    before = dict(s1)
    snap = {k: (v.episode_id, v.severity, v.seq, v.last_ms) for k, v in s1.items()}
    advance(s1, _o(1, C))
    advance(s1, _o(1, None))
    assert s1 == before
    assert {k: (v.episode_id, v.severity, v.seq, v.last_ms) for k, v in s1.items()} == snap


_sev = st.sampled_from([None, Severity.INFO, W, C])
_obs = st.lists(
    st.builds(
        lambda cond, h, sev: Observation(cond, T0 + h * 600_000, f"e{h}", sev),
        st.sampled_from([PAIN, condition_key("unit_offline", "unit:u1")]),
        st.integers(0, 40),
        _sev,
    ),
    max_size=30,
)


@given(_obs, st.randoms(use_true_random=False), st.integers(0, 30))
def test_replay_and_redelivery_give_the_same_episodes(
    obs: list[Observation], rnd: random.Random, k: int
) -> None:
    _, expected = replay(obs)
    shuffled = list(obs) + list(obs[: k % (len(obs) + 1)])
    rnd.shuffle(shuffled)
    _, got = replay(shuffled)
    assert got == expected
    # streaming in order with redeliveries of what was already applied: same changes
    ordered = sorted(set(obs), key=order_key)
    states: dict[str, ConditionState] = {}
    streamed: list[Change] = []
    for i in range(len(ordered)):
        for dup in ordered[max(0, i - k % 4) : i + 1]:  # redeliver the last few, then the new one
            states, ch = advance(states, dup)
            streamed += ch
    assert streamed == expected
    # at most one open episode per condition, and every change alternates sensibly
    open_: dict[str, str] = {}
    for c in expected:
        if c.transition is Transition.OPENED:
            assert c.condition not in open_
            open_[c.condition] = c.episode_id
        else:
            assert open_.get(c.condition) == c.episode_id
            if c.transition is Transition.RESOLVED:
                del open_[c.condition]
