"""The chunk store packs a closed session's batches into one record (few records to restore).

A restarted worker recovers every record of the ``chunks`` changelog; one record per input
batch made ~135 records per athlete (five 45-minute sessions in 100-sample batches). A
closed session's chunks are packed into ``athlete|session|#0`` (more parts past
``PACK_MAX_ROWS``); the results must not change: late data into a packed session, a
replayed batch, BWS re-joins and a crash between the pack and the state all give what an
unpacked store gives.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kneeload.worker import athlete as athlete_mod
from kneeload.worker.athlete import AthleteProcessor, WorkerConfig, new_state
from kneeload.worker.state import AthleteState, decode_pack, decode_state, encode_state

from .helpers import UTC, athlete_record, batches, expected_session_load, samples

D0 = dt.datetime(2024, 6, 10, 7, 0, tzinfo=UTC)
CFG = WorkerConfig(day_grace_s=60, publish_interval_s=0)


def _proc(chunks: dict[str, bytes]) -> tuple[AthleteProcessor, AthleteState]:
    p = AthleteProcessor(CFG, chunks)
    st = new_state("a1", CFG)
    p.on_registry(st, athlete_record("a1", "t1"))
    return p, st


def _sessions(out: list[Any]) -> dict[str, dict[str, Any]]:
    return {e["session_id"]: e for t, _, e in out if t == "sessions"}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    drop = ("revision", "published_at", "corrected")
    return {k: v for k, v in a.items() if k not in drop} == {
        k: v for k, v in b.items() if k not in drop
    }


def test_a_closed_session_is_one_record_and_late_data_reads_it() -> None:
    day1 = samples(D0, 600, tag="d1")
    day2 = samples(D0 + dt.timedelta(days=1), 300, tag="d2")
    late = samples(D0 + dt.timedelta(seconds=600), 120, tag="d1")  # extends session s1
    chunks: dict[str, bytes] = {}
    p, st = _proc(chunks)
    out: list[Any] = []
    for b in batches("a1", "t1", day1, 50, "s1"):
        out += p.on_batch(st, b, 0)
    assert sum(1 for k in chunks if k.startswith("a1|s1|")) == 12  # open: one per batch
    for b in batches("a1", "t1", day2, 50, "s2"):
        out += p.on_batch(st, b, 0)  # the watermark passes s1's end + gap: s1 closes
    assert st.sessions["s1"].status == "closed"
    assert [k for k in chunks if k.startswith("a1|s1|")] == ["a1|s1|#0"]
    pack = decode_pack(chunks["a1|s1|#0"])
    assert [len(c.rows) for c in pack.chunks] == [50] * 12
    assert st.sessions["s1"].packed == 12
    # late data into the packed session: counted with the packed rows
    for b in batches("a1", "t1", late, 60, "s1", "late"):
        out += p.on_batch(st, b, 0)
    s1 = _sessions(out)["s1"]
    assert s1["samples"] == 720
    assert s1["pfj_load_mpa_s"] == pytest.approx(expected_session_load(day1 + late), rel=1e-12)
    assert sum(1 for k in chunks if k.startswith("a1|s1|late")) == 2  # waits for the idle pack
    out += p.on_tick(st, 10**13)  # idle: packed again, one record
    assert sorted(k for k in chunks if k.startswith("a1|s1|")) == ["a1|s1|#0"]
    assert len(decode_pack(chunks["a1|s1|#0"]).chunks) == 14
    # the same batches into a store that never packs give the same session
    ref: list[Any] = []
    q, st2 = _proc({})
    for b in batches("a1", "t1", day1 + late, 50, "s1") + batches("a1", "t1", day2, 50, "s2"):
        ref += q.on_batch(st2, b, 0)
    ref += q.on_tick(st2, 10**13)
    assert _same(_sessions(out)["s1"], _sessions(ref)["s1"])
    assert _same(_sessions(out)["s2"], _sessions(ref)["s2"])


def test_a_replayed_batch_of_a_packed_session_re_emits_its_stored_rows() -> None:
    bs = batches("a1", "t1", samples(D0, 300), 100, "s1")
    chunks: dict[str, bytes] = {}
    p, st = _proc(chunks)
    first: list[Any] = []
    for b in bs:
        first += p.on_batch(st, b, 0)
    p.on_tick(st, 10**13)
    assert [k for k in chunks if "|s1|" in k] == ["a1|s1|#0"]
    again = p.on_batch(st, bs[1], 0)
    (ev,) = [e for t, _, e in again if t == "load.samples"]
    (want,) = [e for t, _, e in first if t == "load.samples" and e["batch_id"] == bs[1]["batch_id"]]
    assert ev["samples"] == want["samples"]
    assert _sessions(again) == {}  # nothing counted twice


def test_a_crash_after_the_pack_before_the_state_loses_nothing() -> None:
    """The state and the chunk store are separate changelogs: the pack (and the batches'
    tombstones) may be stored while the state that recorded it is lost. The worker then
    replays the uncommitted batches from its older state and must read the packed rows."""
    day1 = batches("a1", "t1", samples(D0, 400, tag="d1"), 100, "s1")
    day2 = batches("a1", "t1", samples(D0 + dt.timedelta(days=1), 200, tag="d2"), 100, "s2")
    chunks: dict[str, bytes] = {}
    p, st = _proc(chunks)
    for b in day1:
        p.on_batch(st, b, 0)
    saved = encode_state(st)  # the last state the changelog kept
    lost = p.on_batch(st, day2[0], 0)  # closes and packs s1; this state is lost
    assert [k for k in chunks if "|s1|" in k] == ["a1|s1|#0"]
    p2 = AthleteProcessor(CFG, chunks)
    st2 = decode_state(saved)
    assert st2.sessions["s1"].packed == 0
    out = p2.on_batch(st2, day2[0], 0)  # the replay
    out += p2.on_batch(st2, day2[1], 0)
    p2.on_bws(st2, {"t": int(D0.timestamp() * 1000) + 100_000, "unit_id": "u1", "bws_pct": 20}, 0)
    out += p2.on_tick(st2, 10**13)
    assert _sessions(lost)["s1"]["samples"] == 400
    # s1 was recomputed from the packed rows after the support entry (a re-join)
    assert _sessions(out)["s1"]["samples"] == 400
    assert [k for k in chunks if "|s1|" in k] == ["a1|s1|#0"]


def test_long_sessions_pack_into_parts_and_pruning_drops_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(athlete_mod, "PACK_MAX_ROWS", 250)
    cfg = WorkerConfig(day_grace_s=60, publish_interval_s=0, lateness_horizon_s=86400)
    chunks: dict[str, bytes] = {}
    p = AthleteProcessor(cfg, chunks)
    st = new_state("a1", cfg)
    p.on_registry(st, athlete_record("a1", "t1"))
    for b in batches("a1", "t1", samples(D0, 700, tag="d1"), 100, "s1"):
        p.on_batch(st, b, 0)
    p.on_tick(st, 10**13)
    parts = sorted(k for k in chunks if "|s1|" in k)
    assert parts == ["a1|s1|#0", "a1|s1|#1", "a1|s1|#2", "a1|s1|#3"]
    assert [sum(len(c.rows) for c in decode_pack(chunks[k]).chunks) for k in parts] == [
        200,
        200,
        200,
        100,
    ]
    for b in batches("a1", "t1", samples(D0 + dt.timedelta(days=5), 100, tag="d5"), 100, "s5"):
        p.on_batch(st, b, 0)  # days later: s1 is beyond the horizon and pruned
    assert "s1" not in st.sessions
    assert not [k for k in chunks if "|s1|" in k]


def test_dropping_published_minute_sums_changes_no_output() -> None:
    """A closed, published, packed session keeps its sums but not its minute sums (most of
    the state the worker writes per take); late data after its last sample, a support entry
    re-joining it and a replay must publish exactly what a worker keeping them publishes."""
    import orjson

    day1 = samples(D0, 600, tag="d1")
    day2 = samples(D0 + dt.timedelta(days=1), 300, tag="d2")
    after = samples(D0 + dt.timedelta(seconds=630), 90, tag="d1")  # after s1's last sample
    t_bws = int((D0 + dt.timedelta(seconds=300)).timestamp() * 1000)
    steps: list[tuple[str, Any]] = [
        *(("batch", b) for b in batches("a1", "t1", day1, 50, "s1")),
        *(("batch", b) for b in batches("a1", "t1", day2, 50, "s2")),
        ("check", None),
        *(("batch", b) for b in batches("a1", "t1", after, 30, "s1", "after")),
        ("tick", None),
        ("bws", {"t": t_bws, "unit_id": "u1", "bws_pct": 15.0}),
        ("batch", batches("a1", "t1", day1, 50, "s1")[3]),  # a replay
        ("tick", None),
    ]

    def run(drop: bool) -> tuple[list[bytes], AthleteState]:
        p, st = _proc({})
        p.drop_published_minutes = drop
        out: list[Any] = []
        for i, (kind, ev) in enumerate(steps):
            if kind == "batch":
                out += p.on_batch(st, ev, i)
            elif kind == "bws":
                out += p.on_bws(st, ev, i)
            elif kind == "tick":
                out += p.on_tick(st, 10**13 + i)
            elif drop:  # s1 closed, published and packed: its minute sums are gone
                s1 = st.sessions["s1"]
                assert s1.cold and s1.acc is not None and s1.acc.minutes == {}
                assert s1.acc.sums.samples == 600 and len(s1.minute_rev) == 10
        return [orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in out], st

    dropped, st_d = run(True)
    kept, st_k = run(False)
    assert len(dropped) > 40 and dropped == kept
    assert sum(1 for o in dropped if o.startswith(b'["load.minute"')) > 15
    assert st_d.sessions["s1"].cold  # published again after the late data and the re-join
    assert len(encode_state(st_d)) < len(encode_state(st_k)) - 12 * 60  # s1's 12 minutes


def test_a_cold_session_whose_chunks_are_lost_keeps_its_sums() -> None:
    """The state and the chunk store are separate changelogs: should a cold session's packed
    chunks be missing, the next batch must add to its sums, not start them again."""
    chunks: dict[str, bytes] = {}
    p, st = _proc(chunks)
    for b in batches("a1", "t1", samples(D0, 300, tag="d1"), 100, "s1"):
        p.on_batch(st, b, 0)
    p.on_tick(st, 10**13)
    assert st.sessions["s1"].cold
    chunks.clear()  # lost
    more = samples(D0 + dt.timedelta(seconds=300), 20, tag="d1")
    out = p.on_batch(st, batches("a1", "t1", more, 20, "s1", "more")[0], 0)
    out += p.on_tick(st, 10**13 + 1)
    assert _sessions(out)["s1"]["samples"] == 320
