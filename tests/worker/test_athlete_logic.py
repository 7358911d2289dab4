"""Plain per-athlete logic, no Kafka: idempotence, order independence, lateness, days, BWS join."""

from __future__ import annotations

import datetime as dt

import pytest

from kneeload.worker.athlete import AthleteProcessor, WorkerConfig, new_state
from kneeload.worker.fleet import UnitProcessor, new_unit
from kneeload.worker.state import AthleteState, decode_state, encode_state

from .helpers import UTC, athlete_record, batches, expected_session_load, iso, samples

D0 = dt.datetime(2024, 6, 10, 7, 0, tzinfo=UTC)
CFG = WorkerConfig(day_grace_s=60, publish_interval_s=0)


def run(bs: list[dict], cfg: WorkerConfig = CFG) -> tuple[AthleteState, list, AthleteProcessor]:
    p = AthleteProcessor(cfg, {})
    st = new_state("a1", cfg)
    p.on_registry(st, athlete_record("a1", "t1"))
    out: list = []
    for b in bs:
        out += p.on_batch(st, b, 0)
    out += p.on_tick(st, 10**13)  # idle: close and finalise
    return st, out, p


def latest(out: list, topic: str, key: str) -> dict[str, dict]:
    return {e[key]: e for t, _, e in out if t == topic}


def daily(out: list) -> dict[str, float]:
    return {d: e["load"] for d, e in ((e["date"], e) for t, _, e in out if t == "daily.load")}


def test_in_order_out_of_order_and_duplicates_give_identical_numbers() -> None:
    rows = samples(D0, 500)
    bs = batches("a1", "t1", rows, session_id="s1")
    _, ordered, _ = run(bs)
    _, shuffled, _ = run(
        [
            bs[2],
            bs[0],
            bs[4],
            bs[1],
            bs[3],
            bs[1],
            *batches("a1", "t1", rows[:90], 100, "s1", "dup"),
        ]
    )
    s1 = latest(ordered, "sessions", "session_id")["s1"]
    s2 = latest(shuffled, "sessions", "session_id")["s1"]
    assert s1 == {**s2, "revision": s1["revision"]}
    assert s1["pfj_load_mpa_s"] == pytest.approx(expected_session_load(rows), rel=1e-12)
    assert s1["samples"] == 500 and s1["status"] == "closed"
    assert daily(ordered) == daily(shuffled)


def test_replayed_batch_is_re_emitted_not_counted() -> None:
    bs = batches("a1", "t1", samples(D0, 200), session_id="s1")
    _, once, _ = run(bs)
    _, twice, _ = run(bs + bs)
    assert (
        latest(once, "sessions", "session_id")["s1"]["pfj_load_mpa_s"]
        == latest(twice, "sessions", "session_id")["s1"]["pfj_load_mpa_s"]
    )
    assert sum(1 for t, _, _ in twice if t == "load.samples") == 4


def test_late_within_horizon_corrects_final_days_and_beyond_is_flagged() -> None:
    cfg = WorkerConfig(day_grace_s=60, publish_interval_s=0, lateness_horizon_s=2 * 86400)
    p = AthleteProcessor(cfg, {})
    st = new_state("a1", cfg)
    out: list = []
    for day in range(3):
        for b in batches("a1", "t1", samples(D0 + dt.timedelta(days=day), 100)):
            out += p.on_batch(st, b, 0)
    out += p.on_tick(st, 10**13)
    first = {e["date"]: e for t, _, e in out if t == "daily.load"}
    assert all(e["status"] == "final" for e in first.values())
    out2 = []
    for b in batches("a1", "t1", samples(D0 + dt.timedelta(hours=6), 100, tag="L")):
        out2 += p.on_batch(st, b, 10**13 + 1)
    for b in batches("a1", "t1", samples(D0 - dt.timedelta(days=5), 100, tag="O"), prefix="old"):
        out2 += p.on_batch(st, b, 10**13 + 2)
    out2 += p.on_tick(st, 10**14)
    again = {e["date"]: e for t, _, e in out2 if t == "daily.load"}
    assert set(again) == {"2024-06-10", "2024-06-11", "2024-06-12"}
    assert all(
        e["corrected"] and e["status"] == "final" and e["revision"] > first[d]["revision"]
        for d, e in again.items()
    )
    assert again["2024-06-10"]["load"] > first["2024-06-10"]["load"]
    old = [e for t, _, e in out2 if t == "load.samples" and e["batch_id"].startswith("old")]
    assert old and all(s["late"] for s in old[0]["samples"])


def test_setpoint_arriving_after_the_samples_rejoins_them() -> None:
    rows = samples(D0, 300)
    bs = batches("a1", "t1", rows, session_id="s1")
    p = AthleteProcessor(CFG, {})
    st = new_state("a1", CFG)
    out: list = []
    for b in bs:
        out += p.on_batch(st, b, 0)
    on = D0 + dt.timedelta(seconds=100)
    for i in range(0, 200, 5):
        out += p.on_bws(
            st,
            {
                "t": int((on + dt.timedelta(seconds=i)).timestamp() * 1000),
                "unit_id": "u1",
                "bws_pct": 20.0,
                "athlete_id": "a1",
            },
            1,
        )
    out += p.on_tick(st, 10**13)
    s = latest(out, "sessions", "session_id")["s1"]
    want = expected_session_load(
        rows, lambda t: 20.0 if on <= t <= on + dt.timedelta(seconds=225) else 0.0
    )
    assert s["pfj_load_mpa_s"] == pytest.approx(want, rel=1e-12)
    assert s["unit_id"] == "u1"


def test_local_day_from_the_registry_time_zone() -> None:
    p = AthleteProcessor(CFG, {})
    st = new_state("a1", CFG)
    p.on_registry(st, athlete_record("a1", "t1", tz="America/New_York"))
    out: list = []
    for b in batches("a1", "t1", samples(dt.datetime(2024, 6, 11, 2, 0, tzinfo=UTC), 100)):
        out += p.on_batch(st, b, 0)
    out += p.on_tick(st, 10**13)
    assert {e["date"] for t, _, e in out if t == "daily.load"} == {"2024-06-10"}


def test_fleet_online_in_use_minutes_and_offline_alert() -> None:
    f = UnitProcessor(unit_timeout_s=3, status_interval_s=30, bws_stale_s=30)
    u = new_unit("u1")
    out: list = []
    for i in range(0, 120, 2):
        out += f.on_telemetry(
            u,
            {
                "unit_id": "u1",
                "clinic_id": "c1",
                "time": iso(D0 + dt.timedelta(seconds=i)),
                "kind": "telemetry",
                "belt_speed_mps": 2.5,
                "bws_pct": 20.0,
                "measured_support_pct": None,
                "athlete_id": "a1",
            },
            1000,
        )
    assert any(t == "worker.bws-by-athlete" for t, _, _ in out)
    st = [e for t, _, e in out if t == "unit.status"]
    assert st[0]["in_use"] and st[0]["athlete_id"] == "a1"
    assert u.minutes["2024-06-10"] == pytest.approx(118 / 60)
    # the belt stops, the athlete stays on: online, not in use, no more minutes (issue #15:
    # the demo's units read 95-100 % in use while an athlete was merely assigned)
    for i in range(120, 180, 2):
        rec = {"unit_id": "u1", "clinic_id": "c1", "time": iso(D0 + dt.timedelta(seconds=i)),
               "kind": "telemetry", "belt_speed_mps": 0.0, "bws_pct": 20.0,
               "measured_support_pct": None, "athlete_id": "a1"}  # fmt: skip
        out += f.on_telemetry(u, rec, 1000)
    st = [e for t, _, e in out if t == "unit.status"]
    assert st[-1]["online"] and not st[-1]["in_use"] and st[-1]["athlete_id"] == "a1"
    assert u.minutes["2024-06-10"] == pytest.approx(118 / 60)
    # a second session, then only a heartbeat two hours later (the demo's units between
    # sessions): idle from a second after the last running telemetry, not until the heartbeat
    t1 = D0 + dt.timedelta(minutes=10)
    for i in range(0, 60, 2):
        rec = {"unit_id": "u1", "clinic_id": "c1", "time": iso(t1 + dt.timedelta(seconds=i)),
               "kind": "telemetry", "belt_speed_mps": 3.0, "bws_pct": 20.0,
               "measured_support_pct": None, "athlete_id": "a1"}  # fmt: skip
        out += f.on_telemetry(u, rec, 1000)
    beat = {"unit_id": "u1", "clinic_id": "c1", "time": iso(t1 + dt.timedelta(hours=2)),
            "kind": "heartbeat"}  # fmt: skip
    got = [e for t, _, e in f.on_telemetry(u, beat, 1000) if t == "unit.status"]
    assert got[0]["time"] == iso(t1 + dt.timedelta(seconds=59)) and not got[0]["in_use"]
    off = f.on_tick(u, 1000 + 10_000)
    kinds = [e.get("kind") for t, _, e in off if t == "alerts"]
    assert kinds == ["unit_offline"]
    assert [e["online"] for t, _, e in off if t == "unit.status"] == [False]
    assert f.on_tick(u, 1000 + 20_000) == []


def test_fast_timestamp_parse_equals_fromisoformat() -> None:
    from kneeload.worker.timeutil import parse_ms

    def slow(text: str) -> int:
        d = dt.datetime.fromisoformat(text)
        return round((d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp() * 1000)

    for ms in range(0, 4_000_000_000_000, 7_919_113_531):
        d = dt.datetime.fromtimestamp(ms / 1000, UTC)
        for spec in ("seconds", "milliseconds"):
            text = d.isoformat(timespec=spec).replace("+00:00", "Z")
            assert parse_ms(text) == slow(text), text
    for text in ("2024-06-10T06:00:00+02:00", "2024-06-10T06:00:00.5Z", "2024-06-10T06:00:00"):
        assert parse_ms(text) == slow(text)
    for bad in ("2024-06-10T24:00:00Z", "2024-13-10T06:00:00Z", "2024-06-10T06:00:60Z"):
        with pytest.raises(ValueError):
            parse_ms(bad)


def test_corrected_day_load_refreshes_the_correlation_pair() -> None:
    p = AthleteProcessor(CFG, {})
    st = new_state("a1", CFG)
    p.on_registry(st, athlete_record("a1", "t1"))
    for b in batches("a1", "t1", samples(D0, 300)):
        p.on_batch(st, b, 0)
    p.on_tick(st, 10**13)
    rep = {"report_id": "p1", "athlete_id": "a1", "team_id": "t1", "pain_nrs": 3}
    out = p.on_pain(st, {**rep, "time": iso(D0 + dt.timedelta(minutes=3)), "context": "during"}, 0)
    first = [e for t, _, e in out if t == "correlations"]
    assert first and all(e["withheld_reason"] == "too_few_pairs" for e in first)
    before = st.corr["lag0"]["pairs"][0][1]
    # late data for the same day (a second session within the lateness horizon)
    late = batches("a1", "t1", samples(D0 + dt.timedelta(hours=3), 200, tag="late"), prefix="L")
    out = []
    for b in late:
        out += p.on_batch(st, b, 0)
    out += p.on_tick(st, 10**13 + 10**6)
    after = st.corr["lag0"]["pairs"][0][1]
    assert after > before
    assert after == pytest.approx(daily(out)[D0.date().isoformat()], rel=1e-12)
    again = [e for t, _, e in out if t == "correlations"]
    assert {e["id"] for e in again} == {e["id"] for e in first}  # same ids: upserts


def _device(uid: str, kind: str = "lever_unit", timeout_s: int | None = 5) -> dict:
    return {
        "device_id": uid,
        "kind": kind,
        "clinic_id": "c9" if kind == "lever_unit" else None,
        "athlete_id": None,
        "api_key_sha256": "0" * 64,
        "revoked": False,
        "max_bws_pct": 80.0 if kind == "lever_unit" else None,
        "timeout_s": timeout_s if kind == "lever_unit" else None,
        "updated_at": "2024-01-01T00:00:00Z",
    }


def test_device_records_are_re_keyed_by_unit_for_lever_units_only() -> None:
    from kneeload.worker.fleet import DEVICES_BY_UNIT, device_to_unit

    assert device_to_unit("u7", _device("u7")) == (
        DEVICES_BY_UNIT,
        "u7",
        {"unit_id": "u7", "timeout_s": 5, "clinic_id": "c9"},
    )
    assert device_to_unit("w1", _device("w1", kind="watch")) is None
    assert device_to_unit("w1", _device("w1", kind="app")) is None
    gone = device_to_unit("u7", None)  # tombstone: the unit falls back to the default
    assert gone is not None and gone[2]["deleted"] and gone[2]["timeout_s"] is None
    assert device_to_unit(None, None) is None


def _heartbeat(u: dict, f: UnitProcessor, now_ms: int) -> None:
    f.on_telemetry(
        u,
        {"unit_id": u.unit_id, "clinic_id": None, "time": iso(D0), "kind": "heartbeat"},
        now_ms,
    )


def test_unit_goes_offline_after_its_registry_timeout_not_the_default() -> None:
    from kneeload.worker.fleet import device_to_unit

    f = UnitProcessor(unit_timeout_s=60, status_interval_s=30, bws_stale_s=30)
    u = new_unit("u7")
    rec = device_to_unit("u7", _device("u7", timeout_s=5))
    assert rec is not None
    f.on_device(u, rec[2])
    assert u.timeout_s == 5.0 and u.clinic_id == "c9"
    _heartbeat(u, f, 1000)
    assert f.on_tick(u, 1000 + 5_000) == []  # not longer than 5 s yet
    off = f.on_tick(u, 1000 + 5_001)
    alerts = [e for t, _, e in off if t == "alerts"]
    assert [a["kind"] for a in alerts] == ["unit_offline"]
    assert alerts[0]["values"]["timeout_s"] == 5.0 and alerts[0]["clinic_id"] == "c9"
    # the device record deleted (or its timeout cleared): the setting applies again
    gone = device_to_unit("u7", None)
    assert gone is not None
    f.on_device(u, gone[2])
    assert u.timeout_s is None and u.clinic_id == "c9"
    _heartbeat(u, f, 100_000)
    assert f.on_tick(u, 100_000 + 30_000) == []
    off = f.on_tick(u, 100_000 + 60_001)
    assert [e["values"]["timeout_s"] for t, _, e in off if t == "alerts"] == [60.0]


def test_a_pain_report_pairs_with_the_days_load_as_the_data_stand() -> None:
    """Day totals are applied on the publish interval (processing time). A report that came
    right after a day's later batches was paired with the day's load as of the last publish
    and re-published later under another event time (end of day) — so two runs of the same
    input stored different correlation rows (found by make chaos). The pair now holds the
    day's load from every batch already processed."""
    cfg = WorkerConfig(day_grace_s=60, publish_interval_s=3600)
    p = AthleteProcessor(cfg, {})
    st = new_state("a1", cfg)
    p.on_registry(st, athlete_record("a1", "t1"))
    out: list = []
    rows = samples(D0, 300)
    for b in batches("a1", "t1", rows, session_id="s1"):  # three batches, one publish
        out += p.on_batch(st, b, 1)
    rep = {"report_id": "p1", "athlete_id": "a1", "team_id": "t1", "time": iso(D0 + dt.timedelta(
        minutes=3)), "pain_nrs": 3, "context": "during", "session_id": "s1"}  # fmt: skip
    out += p.on_pain(st, rep, 2)
    out += p.on_tick(st, 10**13)  # idle: close and finalise
    corr = [e for t, _, e in out if t == "correlations" and e["method"] == "spearman"]
    assert {e["time"] for e in corr} == {iso(D0 + dt.timedelta(minutes=3))}  # never refreshed
    [pair] = st.corr["lag0"]["pairs"]
    assert pair[1] == pytest.approx(daily(out)[D0.date().isoformat()], rel=1e-12)


def test_a_setpoint_processed_after_later_telemetry_still_reaches_the_athlete() -> None:
    """Setpoints and telemetry are two topics: the unit agent may see the session's setpoint
    (at its first sample) after telemetry half a second later with the same support. The
    re-keying dropped the setpoint as a repeat of the last entry sent, so the athlete's first
    sample had no BWS in one run and 18.5 % in another (found by make chaos)."""
    f = UnitProcessor(unit_timeout_s=60, status_interval_s=30, bws_stale_s=30)

    def entries(order: list[str]) -> list[tuple[int, str | None, float]]:
        u = new_unit("u1")
        recs = {
            "setpoint": {"unit_id": "u1", "clinic_id": "c1", "time": iso(D0), "bws_pct": 18.5,
                         "athlete_id": "a1"},
            "telemetry": {"unit_id": "u1", "clinic_id": "c1", "kind": "telemetry",
                          "time": iso(D0 + dt.timedelta(seconds=0.5)), "bws_pct": 18.5,
                          "measured_support_pct": None, "athlete_id": "a1"},
        }  # fmt: skip
        out = [o for k in order for o in f.on_telemetry(u, recs[k], 1000)]
        return sorted(
            (e["t"], e["unit_id"], e["bws_pct"]) for t, _, e in out if t == "worker.bws-by-athlete"
        )

    in_order, reversed_ = entries(["setpoint", "telemetry"]), entries(["telemetry", "setpoint"])
    t0 = int(D0.timestamp() * 1000)
    assert (t0, "u1", 18.5) in in_order and (t0, "u1", 18.5) in reversed_
    # the athlete's first sample joins the setpoint either way
    p = AthleteProcessor(CFG, {})
    for ents in (in_order, reversed_):
        st = new_state("a1", CFG)
        p.on_registry(st, athlete_record("a1", "t1"))
        for t, unit, bws in ents:
            p.on_bws(st, {"t": t, "unit_id": unit, "bws_pct": bws, "athlete_id": "a1"}, 0)
        out = []
        for b in batches("a1", "t1", samples(D0, 60), session_id="s1"):
            out += p.on_batch(st, b, 0)
        first = min(
            (s for t, _, e in out if t == "load.samples" for s in e["samples"]),
            key=lambda s: s["time"],
        )
        assert (first["unit_id"], first["bws_pct"]) == ("u1", 18.5)


def test_a_sample_the_worker_cannot_read_is_dead_lettered_alone() -> None:
    """A leap second as some devices write it (second 60) passes the schema's pattern but no
    datetime parser: the worker raised ValueError and the batch's derived rows all went to
    dead letters (issue #17). Now the one sample gets a ``sample_unreadable`` dead letter and
    its neighbours are processed."""
    rows = samples(D0, 10)
    (b,) = batches("a1", "t1", rows, 10, "s1")
    leap = dict(b["samples"][4], time="2024-06-10T23:59:60Z")
    b["samples"][4] = leap
    b["samples"][6] = dict(b["samples"][6], speed_mps=None)
    _, out, _ = run([b])
    letters = [e for t, _, e in out if t == "deadletter"]
    assert sorted(e["reason_code"] for e in letters) == ["sample_unreadable"] * 2
    assert any(leap["record_id"] in e["detail"] for e in letters)
    stored = {s["record_id"] for t, _, e in out if t == "load.samples" for s in e["samples"]}
    assert len(stored) == 8 and leap["record_id"] not in stored
    assert latest(out, "sessions", "session_id")["s1"]["samples"] == 8


def test_a_long_run_well_above_the_30_day_longest_raises_one_session_spike() -> None:
    """Four runs of 10 minutes, then one of 17 minutes (+70 %: a moderate spike by distance
    and by estimated PFJ load, Frandsen et al. 2025), then one of 10 minutes (no spike): one
    episode."""
    bs: list[dict] = []
    for k, n in enumerate((600, 600, 600, 600, 1020, 600)):
        start = D0 + dt.timedelta(days=k)
        bs += batches("a1", "t1", samples(start, n, tag=f"s{k}"), 100, f"s{k}", f"b{k}")
    _, out, _ = run(bs)
    spikes = [e for t, _, e in out if t == "alerts" and e["kind"] == "session_spike"]
    assert len({e["dedup_key"] for e in spikes}) == 1, spikes  # one episode
    assert spikes[0]["event_time"].startswith("2024-06-14")  # the fifth run, D0 + 4 days
    assert spikes[-1]["alert_id"].endswith(":resolved")  # the next, ordinary run clears it
    # opened while running (small, > 10 %), escalated while running (moderate, > 30 %); the
    # close at +70 % is still moderate (no new change), the next ordinary run resolves it
    changes = [(e["values"]["category"], e["values"]["in_progress"]) for e in spikes[:-1]]
    assert changes == [("small", True), ("moderate", True)]
    assert spikes[1]["severity"] == "warning" and spikes[1]["values"]["sessions_in_window"] == 4
    assert not [
        e for t, _, e in out if t == "alerts" and e["kind"] in ("acwr_high", "load_spike_wow")
    ]


def test_a_running_session_past_110_percent_of_the_ceiling_is_flagged_while_it_runs() -> None:
    """Four 10-minute runs, then a long one fed batch by batch with no end: once its distance
    so far passes 1.10 × the longest of the 30 days (~660 s of running), the session_spike
    alert goes out live — before the session has closed — and not before that."""
    p = AthleteProcessor(CFG, {})
    st = new_state("a1", CFG)
    p.on_registry(st, athlete_record("a1", "t1"))
    for k in range(4):
        for b in batches(
            "a1", "t1", samples(D0 + dt.timedelta(days=k), 600, tag=f"h{k}"), 100, f"h{k}"
        ):
            p.on_batch(st, b, 0)
    live_at = None
    long_run = batches("a1", "t1", samples(D0 + dt.timedelta(days=4), 1200, tag="L"), 60, "L")
    for i, b in enumerate(long_run):
        out = p.on_batch(st, b, 0)
        if any(t == "alerts" and e["kind"] == "session_spike" for t, _, e in out):
            live_at = i
            event = next(e for t, _, e in out if t == "alerts" and e["kind"] == "session_spike")
            break
    assert live_at is not None, "no live warning"
    # 60-sample batches: the 12th batch ends at 720 s, the first past 660 s
    assert live_at in (10, 11), live_at
    assert event["values"]["in_progress"] is True
    assert event["message"].startswith("During the session, so far")
    assert st.sessions["L"].status == "open"


def test_session_spike_warnings_do_not_depend_on_the_publish_timer_or_a_restart() -> None:
    """The chaos run (issue #16) found two session_spike episodes opened "live" in the
    faulted run and at the session's close in the undisturbed one: the in-session check ran
    on the worker's processing-time publish timer, so whether a spike was seen while the
    session ran depended on when the worker happened to publish. Now it is judged on every
    batch at the batch's last sample: the same batches give the same alert events whether
    the worker publishes after every batch, only at the end, or restarts from its saved
    state in the middle of the long run."""
    import orjson

    bs: list[dict] = []
    for k, n in enumerate((600, 600, 600, 600, 1320, 600)):
        start = D0 + dt.timedelta(days=k)
        bs += batches("a1", "t1", samples(start, n, tag=f"s{k}"), 60, f"s{k}", f"b{k}")

    def spikes(out: list) -> list[tuple[str, str, bytes]]:
        return [
            (e["alert_id"], e["message"], orjson.dumps(e["values"], option=orjson.OPT_SORT_KEYS))
            for t, _, e in out
            if t == "alerts" and e["kind"] == "session_spike"
        ]

    def fed(publish_interval_s: float, restart_at: int | None) -> list[tuple[str, str, bytes]]:
        cfg = WorkerConfig(day_grace_s=60, publish_interval_s=publish_interval_s)
        chunks: dict[str, bytes] = {}  # the chunk table (changelog'd like the state)
        p = AthleteProcessor(cfg, chunks)
        st = new_state("a1", cfg)
        p.on_registry(st, athlete_record("a1", "t1"))
        out: list = []
        for i, b in enumerate(bs):
            if i == restart_at:  # a new worker from the changelog'd state
                st = decode_state(encode_state(st))
                p = AthleteProcessor(cfg, chunks)
                p.on_registry(st, athlete_record("a1", "t1"))
            out += p.on_batch(st, b, i * 1000)
            out += p.on_tick(st, i * 1000 + 500)
        out += p.on_tick(st, 10**13)
        return spikes(out)

    every_batch = fed(0, None)
    assert [v for _, m, v in every_batch if m.startswith("During the session")], every_batch
    assert fed(10**9, None) == every_batch  # publish timer never due during the feed
    assert fed(0, len(bs) - 20) == every_batch  # restarted during the long run
