"""The ``athletes`` table split hot/cold (kneeload.worker.statestore): each athlete's state as
a root and parts written only when they change, restored exactly, atomic under a crash that
keeps any prefix of a write's records, and older workers' whole states still load.

The table here is a dict that logs its writes in order (what the changelog partition of the
athlete receives); the real-broker restart tests are tests/worker/test_worker_stream.py and
tests/worker/test_rebuild_state.py.
"""

from __future__ import annotations

from typing import Any

import orjson

from kneeload.worker.athlete import AthleteProcessor, new_state
from kneeload.worker.state import AthleteState, decode_state, encode_state
from kneeload.worker.statestore import (
    ROOT_MARK,
    PartedStates,
    join_state,
    split_state,
    state_records,
)

from .helpers import athlete_record
from .legacy import CUT, FIXTURE, config, events, feed


class LogTable(dict[bytes, bytes]):
    """A table that logs its writes (key, value or None for a tombstone), in order."""

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.log: list[tuple[bytes, bytes | None]] = []

    def __setitem__(self, k: bytes, v: bytes) -> None:
        self.log.append((k, v))
        super().__setitem__(k, v)

    def __delitem__(self, k: bytes) -> None:
        self.log.append((k, None))
        super().__delitem__(k)


def _canon(out: list[Any]) -> list[bytes]:
    return [orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in out]


def _fresh() -> tuple[AthleteProcessor, AthleteState, dict[str, bytes]]:
    chunks: dict[str, bytes] = {}
    proc = AthleteProcessor(config(), chunks)
    st = new_state("a1", config())
    proc.on_registry(st, athlete_record("a1", "t1"))
    return proc, st, chunks


def test_split_and_join_give_the_same_state() -> None:
    proc, st, _ = _fresh()
    feed(proc, st, events())
    assert len(st.sessions) > 3 and st.days and st.pain and st.acwr
    hot, parts = split_state(st)
    assert join_state(hot, parts) == st
    assert encode_state(join_state(hot, parts)) == encode_state(st)  # the same order too
    assert len(hot) < len(encode_state(st)) // 4


def test_restoring_after_every_event_carries_on_exactly_like_one_process() -> None:
    evs = events()
    proc, st, _ = _fresh()
    want = feed(proc, st, evs)
    # every event: the state stored, a new store (a restarted worker) reads it back
    table = LogTable()
    proc2, st2, _ = _fresh()
    got: list[Any] = []
    for ev in evs:
        got += feed(proc2, st2, [ev])
        PartedStates(table).store("a1", st2)
        back = PartedStates(table).load("a1")
        assert back == st2
        st2 = back
    assert _canon(got) == _canon(want)
    assert st2 == st


def test_a_take_writes_only_the_parts_that_changed() -> None:
    proc, st, _ = _fresh()
    evs = events()
    feed(proc, st, evs[:-3])
    table = LogTable()
    store = PartedStates(table)
    store.store("a1", st)
    whole = sum(len(v or b"") for _, v in table.log)
    table.log.clear()
    batch = next(e for e in reversed(evs) if e[0] == "batch")
    feed(proc, st, [batch])  # a replayed batch: counted nothing, the state barely moves
    store.store("a1", st)
    written = sum(len(v or b"") for _, v in table.log)
    assert table.log[-1][0] == b"a1"  # the root is written last
    assert written < whole // 4
    assert PartedStates(table).load("a1") == st


def test_a_crash_keeps_either_the_old_or_the_new_state_whatever_prefix_landed() -> None:
    evs = events()
    proc, st, _ = _fresh()
    feed(proc, st, evs[:CUT])
    table = LogTable()
    store = PartedStates(table)
    store.store("a1", st)
    old = encode_state(st)
    for ev in evs[CUT : CUT + 25]:
        before = LogTable(dict(table))
        feed(proc, st, [ev])
        table.log.clear()
        store.store("a1", st)
        new = encode_state(st)
        log = list(table.log)
        for cut in range(len(log) + 1):  # the changelog kept the first `cut` records
            t = LogTable(dict(before))
            for k, v in log[:cut]:
                if v is None:
                    t.pop(k, None)
                else:
                    t[k] = v
            r = PartedStates(t)
            got = r.load("a1")
            assert got is not None
            assert encode_state(got) == (new if cut == len(log) or _root_landed(log, cut)
                                         else old)  # fmt: skip
            # and the next write over that prefix is again consistent
            r.store("a1", st)
            back = PartedStates(t).load("a1")
            assert back is not None and encode_state(back) == new
        old = new


def _root_landed(log: list[tuple[bytes, bytes | None]], cut: int) -> bool:
    return any(k == b"a1" for k, _ in log[:cut])


def test_an_older_workers_whole_state_loads_and_is_stored_split_next() -> None:
    evs = events()
    proc, st, _ = _fresh()
    feed(proc, st, evs[:CUT])
    want = feed(proc, st, evs[CUT:])
    for raw in (
        orjson.dumps(orjson.loads(FIXTURE.read_bytes())["state"]),  # JSON (before #20)
        None,  # one MessagePack record per athlete (this worker before the split)
    ):
        doc = orjson.loads(FIXTURE.read_bytes())
        chunks = {k: v.encode() for k, v in doc["chunks"].items()}
        if raw is None:
            raw = encode_state(decode_state(orjson.dumps(doc["state"])))
            assert raw[:1] not in (b"{", ROOT_MARK)
        table = LogTable({b"a1": raw})
        store = PartedStates(table)
        old = store.load("a1")
        assert old is not None
        proc2 = AthleteProcessor(config(), chunks)
        got: list[Any] = []
        for ev in evs[CUT:]:
            got += feed(proc2, old, [ev])
            store.keep("a1", old)
            store.flush("a1")
            assert table[b"a1"][:1] == ROOT_MARK
            reread = PartedStates(table).load("a1")
            assert reread is not None
            old = reread
            store = PartedStates(table)
            store.load("a1")
        assert _canon(got) == _canon(want)
        assert old == st


def test_parts_that_go_away_are_tombstoned_and_only_athletes_are_listed() -> None:
    proc, st, _ = _fresh()
    feed(proc, st, events())
    table = LogTable()
    store = PartedStates(table)
    store.store("a1", st)
    store.store("a2", new_state("a2", config()))
    sid = next(iter(st.sessions))
    del st.sessions[sid]
    store.store("a1", st)
    assert not any(k.startswith(f"a1|@s/{sid}|".encode()) for k in table)
    assert sorted(store) == ["a1", "a2"]
    assert sorted(store.keys_in(0, 1)) == ["a1", "a2"]
    assert PartedStates(table).load("a1") == st


def test_rebuild_records_load_as_the_state() -> None:
    proc, st, _ = _fresh()
    feed(proc, st, events())
    recs = state_records("a1", st)
    assert recs[-1][0] == "a1"  # the root last
    table = LogTable({k.encode(): v for k, v in recs})
    assert PartedStates(table).load("a1") == st


def test_the_first_split_layout_still_loads() -> None:
    """The layout of 5389e54 (on main for half an hour): the hot state a map with the
    tracker's whole current state and its last load under ``loads_last``; every session,
    closed ones too, in a map part with its batch ids and minutes in c/ and m/ parts."""
    import msgspec

    from kneeload.worker.statestore import CHUNK_IDS_PER_PART, MinutePart, _block

    proc, st, _ = _fresh()
    feed(proc, st, events())
    enc = msgspec.msgpack.Encoder()
    acwr_cold = {k: v for k, v in st.acwr.items() if k != "state"}
    acwr_cold["loads"] = st.acwr["loads"][:-1]
    hot = msgspec.structs.replace(
        st, sessions={}, days={}, bws=[], pain=[], corr={}, spike_hist={}, episodes={},
        acwr={"state": st.acwr["state"], "loads_last": st.acwr["loads"][-1:]},
    )  # fmt: skip
    parts: dict[str, bytes] = {}
    for sid, s in st.sessions.items():
        acc = s.acc
        assert acc is not None
        base = msgspec.structs.replace(
            s, chunks=[], minute_rev={}, acc=msgspec.structs.replace(acc, minutes={})
        )
        parts["s/" + sid] = enc.encode(base)
        for k in range(0, len(s.chunks), CHUNK_IDS_PER_PART):
            seg = s.chunks[k : k + CHUNK_IDS_PER_PART]
            parts[f"c/{sid}/{k // CHUNK_IDS_PER_PART}"] = enc.encode(seg)
        blocks: dict[int, MinutePart] = {}
        for mk, m in acc.minutes.items():
            blocks.setdefault(_block(mk), MinutePart({}, {})).minutes[mk] = m
        for mk, r in s.minute_rev.items():
            blocks.setdefault(_block(mk), MinutePart({}, {})).rev[mk] = r
        for b in sorted(blocks):
            parts[f"m/{sid}/{b}"] = enc.encode(blocks[b])
    for d, day in st.days.items():
        parts["d/" + d] = enc.encode(day)
    parts["acwr"] = enc.encode(acwr_cold)
    for name, v in (("pain", st.pain), ("bws", st.bws), ("corr", st.corr),
                    ("spike", st.spike_hist), ("ep", st.episodes)):  # fmt: skip
        if v:
            parts[name] = enc.encode(v)
    parts["i"] = enc.encode(list(parts))
    assert any(s.status == "closed" for s in st.sessions.values())
    assert join_state(enc.encode(hot), parts) == st
