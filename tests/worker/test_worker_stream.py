"""The worker against the real broker: scripted scenario, late data, LEVER mid-session,
SIGKILL + restart, two workers sharing partitions. Expected numbers come from core."""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from kneeload.settings import Settings

from .helpers import (
    KNEELOAD,
    UTC,
    WAIT_S,
    Collector,
    Kafka,
    Worker,
    athlete_record,
    batches,
    ensure_topics,
    expected_session_load,
    iso,
    samples,
)

D0 = dt.datetime(2024, 6, 10, 7, 0, tzinfo=UTC)


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    prefix = f"{settings.topic_prefix}w{uuid.uuid4().hex[:6]}."
    e = {"KNEELOAD_TOPIC_PREFIX": prefix, "KNEELOAD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    ensure_topics(e)
    return e


def _finals(c: Collector) -> dict[tuple[str, str], dict]:
    return {
        (e["athlete_id"], e["date"]): e
        for e in c.latest["daily.load"].values()
        if e["status"] == "final"
    }


def _batch_acwr(daily: dict[tuple[str, str], float], tmp: Path) -> dict[tuple[str, str], dict]:
    """The batch `kneeload acwr --method all` on the same daily data."""
    path = tmp / "daily.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["athlete_id", "date", "load"])
        for (a, d), load in sorted(daily.items()):
            w.writerow([a, d, repr(load)])
    out = subprocess.run(
        [KNEELOAD, "acwr", "--input", str(path), "--method", "all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {(r["athlete_id"], r["date"]): r for r in csv.DictReader(io.StringIO(out))}


def _check_acwr_equal(finals: dict[tuple[str, str], dict], tmp: Path) -> None:
    batch = _batch_acwr({k: e["load"] for k, e in finals.items()}, tmp)
    assert set(batch) == set(finals)
    for k, e in finals.items():
        row = batch[k]
        for m in ("ewma", "rac", "rau"):
            for f in ("acute", "chronic", "acwr"):
                got = e["methods"][m][f]
                want = row.get(f"{f}_{m}", "")
                if want in ("", None):
                    assert got is None, (k, m, f)
                else:
                    assert got == pytest.approx(float(want), rel=1e-12, abs=1e-9), (k, m, f)


def test_scenario_sessions_days_acwr_late_and_lever(env: dict[str, str], tmp_path: Path) -> None:
    bootstrap, prefix = env["KNEELOAD_KAFKA_BOOTSTRAP"], env["KNEELOAD_TOPIC_PREFIX"]
    k = Kafka(bootstrap, prefix)
    k.send("registry.athletes", "a1", athlete_record("a1", "t1"))
    k.send("registry.athletes", "a2", athlete_record("a2", "t1", tz="America/New_York"))
    k.flush()
    expected: dict[tuple[str, str], float] = {}
    sessions: dict[str, float] = {}
    # a1: gap sessions on 3 UTC days; day 1 arrives out of order plus a duplicate re-upload
    for day in range(3):
        rows = samples(D0 + dt.timedelta(days=day), 300)
        bs = batches("a1", "t1", rows)
        if day == 1:
            bs = bs[::-1] + batches("a1", "t1", rows[50:150], prefix="dup")
        for b in bs:
            k.send("watch.samples", "a1", b)
        load = expected_session_load(rows)
        expected[("a1", (D0 + dt.timedelta(days=day)).date().isoformat())] = load
        # a gap session is named after the first sample the worker saw (day 1: the last batch)
        first = D0 + dt.timedelta(days=day, seconds=200 if day == 1 else 0)
        sessions[f"a1:{int(first.timestamp() * 1000)}"] = load
    # a2: explicit session at 02:00Z = 22:00 New York (the previous local day); steps onto
    # LEVER unit u1 (20 % BWS) two minutes in
    s2 = dt.datetime(2024, 6, 11, 2, 0, tzinfo=UTC)
    on = s2 + dt.timedelta(minutes=2)
    for i in range(0, 200, 2):
        t = on + dt.timedelta(seconds=i)
        k.send(
            "treadmill.telemetry",
            "u1",
            {
                "record_id": f"tm{i}",
                "unit_id": "u1",
                "clinic_id": "c1",
                "time": iso(t),
                "kind": "telemetry",
                "belt_speed_mps": 3.2,
                "incline_pct": 0.0,
                "bws_pct": 20.0,
                "measured_support_pct": None,
                "athlete_id": "a2",
            },
        )
    k.flush()
    rows2 = samples(s2, 300, tag="x")
    for b in batches("a2", "t1", rows2, session_id="s-a2-1"):
        k.send("watch.samples", "a2", b)
    load2 = expected_session_load(
        rows2, lambda t: 20.0 if on <= t <= on + dt.timedelta(seconds=228) else 0.0
    )
    expected[("a2", "2024-06-10")] = load2
    sessions["s-a2-1"] = load2
    k.send(
        "pain.reports",
        "a2",
        {
            "report_id": "p1",
            "athlete_id": "a2",
            "team_id": "t1",
            "time": iso(s2 + dt.timedelta(minutes=4)),
            "pain_nrs": 5,
            "context": "during",
            "session_id": "s-a2-1",
        },
    )
    k.flush()

    c = Collector(bootstrap, prefix)
    w = Worker(env, tmp_path / "worker.log")
    try:
        c.wait(
            lambda c: (
                {k: round(e["load"], 6) for k, e in _finals(c).items() if e["load"] > 0}
                == {k: round(v, 6) for k, v in expected.items()}
            ),
            WAIT_S,
        )
        closed = {s: e for s, e in c.latest["sessions"].items() if e["status"] == "closed"}
        assert set(closed) == set(sessions)
        for s, load in sessions.items():
            assert closed[s]["pfj_load_mpa_s"] == pytest.approx(load, rel=1e-12)
        assert closed["s-a2-1"]["unit_id"] == "u1" and 0 < closed["s-a2-1"]["mean_bws_pct"] < 20
        day1 = D0 + dt.timedelta(days=1, seconds=200)
        assert closed["a1:" + str(int(day1.timestamp() * 1000))]["samples"] == 300
        _check_acwr_equal(_finals(c), tmp_path)
        # pain response tied to the session, with a BWS suggestion for the unit
        c.wait(lambda c: "p1:lever" in c.latest["pain.responses"], WAIT_S)
        pr = c.latest["pain.responses"]["p1:lever"]
        assert pr["session_id"] == "s-a2-1" and pr["classification"] == "caution"
        assert pr["bws_suggestion"]["unit_id"] == "u1"
        assert any(a["kind"] == "pain_high" for a in c.latest["alerts"].values())
        # the unit went silent → offline + alert (processing-time check)
        c.wait(
            lambda c: any(a["kind"] == "unit_offline" for a in c.latest["alerts"].values()), WAIT_S
        )
        assert any(
            s["in_use"] and s["athlete_id"] == "a2" for s in c.latest["unit.status"].values()
        )

        # late but within the horizon: a second a1 session on day 0 → days 0..2 corrected
        rows_late = samples(D0 + dt.timedelta(hours=5), 200, tag="late")
        for b in batches("a1", "t1", rows_late):
            k.send("watch.samples", "a1", b)
        # beyond the horizon: stored and flagged, not counted
        old = samples(D0 - dt.timedelta(days=10), 100, tag="old")
        for b in batches("a1", "t1", old, prefix="old"):
            k.send("watch.samples", "a1", b)
        k.flush()
        day0 = D0.date().isoformat()
        expected[("a1", day0)] += expected_session_load(rows_late)
        c.wait(
            lambda c: (
                _finals(c)[("a1", day0)]["load"] == pytest.approx(expected[("a1", day0)], rel=1e-12)
                and all(
                    _finals(c)[("a1", d)]["corrected"]
                    for d in ("2024-06-10", "2024-06-11", "2024-06-12")
                )
            ),
            WAIT_S,
        )
        _check_acwr_equal(_finals(c), tmp_path)
        late_batches = [
            e for e in c.latest["load.samples"].values() if e["batch_id"].startswith("old")
        ]
        assert late_batches and all(s["late"] for s in late_batches[0]["samples"])
        assert ("a1", "2024-05-31") not in _finals(c)
        assert not c.latest["deadletter"]
        _check_changelogs_compact(bootstrap, prefix)
    finally:
        w.stop()
        c.close()
        k.close()


def _check_changelogs_compact(bootstrap: str, prefix: str) -> None:
    """The changelogs the worker created are compacted soon (a restart reads every record)."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    from kneeload.worker.app import CHANGELOG_CONFIGS, TABLES

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        logs = sorted(t for t in admin.list_topics() if t.startswith(prefix) and "changelog" in t)
        assert len(logs) == len(TABLES), logs
        for t in logs:
            got = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)])
            cfg = {k: v["value"] for k, v in got["topic"][t].items()}
            assert cfg["cleanup.policy"] == "compact", (t, cfg)
            assert {k: cfg[k] for k in CHANGELOG_CONFIGS} == CHANGELOG_CONFIGS, (t, cfg)
    finally:
        admin.close()


def _multi(
    n_athletes: int, days: int
) -> tuple[list[tuple[str, dict]], dict[tuple[str, str], float]]:
    msgs: list[tuple[str, dict]] = []
    expected: dict[tuple[str, str], float] = {}
    for a in range(n_athletes):
        aid = f"m{a}"
        msgs.append(("registry.athletes", athlete_record(aid, "t2")))
    for day in range(days):
        if day == 2:
            continue  # a rest day
        for a in range(n_athletes):
            aid = f"m{a}"
            rows = samples(
                D0 + dt.timedelta(days=day, minutes=7 * a), 200 + 50 * a, speed=3.0 + 0.1 * a
            )
            msgs += [("watch.samples", b) for b in batches(aid, "t2", rows)]
            expected[(aid, (D0 + dt.timedelta(days=day)).date().isoformat())] = (
                expected_session_load(rows)
            )
    return msgs, expected


def _send(k: Kafka, msgs: list[tuple[str, dict]]) -> None:
    for topic, m in msgs:
        k.send(topic, m["athlete_id"], m)
    k.flush()


def _wait_expected(c: Collector, expected: dict[tuple[str, str], float]) -> None:
    def done(c: Collector) -> bool:
        f = _finals(c)
        return all(
            key in f and f[key]["load"] == pytest.approx(v, rel=1e-12)
            for key, v in expected.items()
        )

    def missing(c: Collector) -> str:
        f = _finals(c)
        gone = sorted(k for k in expected if k not in f)
        off = sorted(k for k, v in expected.items() if k in f and f[k]["load"] != pytest.approx(v))
        return f"final days missing {gone}, with other loads {off}"

    c.wait(done, WAIT_S, missing)


def test_sigkill_and_restart_gives_the_uninterrupted_results(
    env: dict[str, str], tmp_path: Path
) -> None:
    bootstrap, prefix = env["KNEELOAD_KAFKA_BOOTSTRAP"], env["KNEELOAD_TOPIC_PREFIX"]
    msgs, expected = _multi(3, 6)
    k = Kafka(bootstrap, prefix)
    half = len(msgs) // 2
    _send(k, msgs[:half])
    c = Collector(bootstrap, prefix)
    w = Worker(env, tmp_path / "w1.log")
    try:
        c.wait(lambda c: len(c.latest["load.samples"]) >= half // 3, WAIT_S)
        w.kill()  # SIGKILL mid-stream
        _send(k, msgs[half:])
        w = Worker(env, tmp_path / "w2.log")
        _wait_expected(c, expected)
        f = _finals(c)
        # rest day present with zero load; ACWR equal to the batch computation
        assert f[("m0", "2024-06-12")]["load"] == 0.0
        _check_acwr_equal(f, tmp_path)
        closed = [e for e in c.latest["sessions"].values() if e["status"] == "closed"]
        assert len(closed) == len(expected)
    finally:
        w.stop()
        c.close()
        k.close()


def test_two_workers_share_partitions(env: dict[str, str], tmp_path: Path) -> None:
    bootstrap, prefix = env["KNEELOAD_KAFKA_BOOTSTRAP"], env["KNEELOAD_TOPIC_PREFIX"]
    msgs, expected = _multi(4, 4)
    k = Kafka(bootstrap, prefix)
    c = Collector(bootstrap, prefix)
    w1 = Worker(env, tmp_path / "w1.log")
    w2 = Worker(env, tmp_path / "w2.log")
    try:
        time.sleep(2)
        _send(k, msgs)
        _wait_expected(c, expected)
        f = _finals(c)
        assert {key for key, e in f.items() if e["load"] > 0} == set(expected)
        _check_acwr_equal(f, tmp_path)
        closed = [e for e in c.latest["sessions"].values() if e["status"] == "closed"]
        assert len(closed) == len(expected)
    finally:
        w1.stop()
        w2.stop()
        c.close()
        k.close()


def test_a_report_right_after_a_days_batches_pairs_with_the_days_load(
    env: dict[str, str], tmp_path: Path
) -> None:
    """On the real broker: three batches of one day, then (once the worker has them) a
    'during' pain report, with day totals applied only on a long publish interval. The
    correlation pair must hold the day's load from all three batches: it held the first
    batch's, and a refresh re-published the correlation later under the end of the day as
    its time — two runs of one workload stored different rows (found by make chaos)."""
    bootstrap, prefix = env["KNEELOAD_KAFKA_BOOTSTRAP"], env["KNEELOAD_TOPIC_PREFIX"]
    k = Kafka(bootstrap, prefix)
    k.send("registry.athletes", "cp1", athlete_record("cp1", "t-cp"))
    for b in batches("cp1", "t-cp", samples(D0, 300), session_id="s-cp"):
        k.send("watch.samples", "cp1", b)
    k.flush()
    c = Collector(bootstrap, prefix)
    w = Worker({**env, "KNEELOAD_WORKER_PUBLISH_INTERVAL_S": "3600"}, tmp_path / "w.log")
    t_report = iso(D0 + dt.timedelta(minutes=3))
    try:
        c.wait(lambda c: len(c.latest["load.samples"]) >= 3)
        k.send("pain.reports", "cp1", {"report_id": "cp-p1", "athlete_id": "cp1",
               "team_id": "t-cp", "time": t_report, "pain_nrs": 3, "context": "during",
               "session_id": "s-cp"})  # fmt: skip
        k.flush()
        day = D0.date().isoformat()
        c.wait(
            lambda c: (
                any(e["status"] == "final" for e in c.latest["daily.load"].values())
                and any(e["athlete_id"] == "cp1" for e in c.all["correlations"])
            ),
            describe=lambda c: f"{list(c.latest['daily.load'].values())[-1:]}",
        )
        times = {e["id"]: e["time"] for e in c.all["correlations"]}
        assert set(times.values()) == {t_report}, times
        assert f"athlete:cp1:pfj_load_mpa_s:0:spearman:{day}" in times
    finally:
        w.stop()
        c.close()
        k.close()


def test_a_pain_response_settles_whatever_the_order_on_the_real_broker(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A LEVER session at 20 % BWS and its "after" report; then the unit at 40 % the next
    day, the next day's run (which closes the session) and only then the next-morning
    report. The "after" report's last response must have the next-day value and the
    session's BWS: it stayed ``pending`` (re-classified when the session closed, never
    when the next-morning report came) and took the latest BWS the worker held (40 %),
    so the stored response depended on arrival order and timing (found by make chaos)."""
    bootstrap, prefix = env["KNEELOAD_KAFKA_BOOTSTRAP"], env["KNEELOAD_TOPIC_PREFIX"]
    k = Kafka(bootstrap, prefix)
    start = dt.datetime(2024, 6, 10, 17, 0, tzinfo=UTC)
    end = start + dt.timedelta(seconds=299)

    def telemetry(t0: dt.datetime, n: int, bws: float, tag: str) -> None:
        for i in range(0, n, 5):
            k.send("treadmill.telemetry", "u9", {"record_id": f"{tag}{i}", "unit_id": "u9",
                   "clinic_id": "c9", "time": iso(t0 + dt.timedelta(seconds=i)),
                   "kind": "telemetry", "belt_speed_mps": 3.0, "incline_pct": 0.0,
                   "bws_pct": bws, "measured_support_pct": None, "athlete_id": "a9"})  # fmt: skip

    def pain(rid: str, t: dt.datetime, nrs: int, ctx: str) -> None:
        k.send("pain.reports", "a9", {"report_id": rid, "athlete_id": "a9", "team_id": "t9",
               "time": iso(t), "pain_nrs": nrs, "context": ctx, "session_id": None})  # fmt: skip
        k.flush()

    k.send("registry.athletes", "a9", athlete_record("a9", "t9"))
    telemetry(start - dt.timedelta(seconds=10), 320, 20.0, "tA")
    k.flush()
    c = Collector(bootstrap, prefix)
    w = Worker(env, tmp_path / "w.log")
    try:
        time.sleep(3)  # the unit's entries reach the athlete before the samples (no race)
        for b in batches("a9", "t9", samples(start, 300), session_id="s-a9"):
            k.send("watch.samples", "a9", b)
        k.flush()
        c.wait(lambda c: any(e["session_id"] == "s-a9" for e in c.latest["sessions"].values()))
        pain("a9-after", end + dt.timedelta(hours=1), 6, "after")
        c.wait(lambda c: "a9-after:lever" in c.latest["pain.responses"])
        day2 = start + dt.timedelta(days=1)
        telemetry(day2 - dt.timedelta(seconds=10), 320, 40.0, "tB")
        k.flush()
        time.sleep(3)
        for b in batches("a9", "t9", samples(day2, 300, tag="d2"), session_id="s-a9-2"):
            k.send("watch.samples", "a9", b)
        k.flush()
        c.wait(lambda c: c.latest["sessions"].get("s-a9", {}).get("status") == "closed")
        pain("a9-morning", dt.datetime(2024, 6, 11, 7, 30, tzinfo=UTC), 2, "next_morning")
        c.wait(
            lambda c: c.latest["pain.responses"]["a9-after:lever"]["next_day_status"] == "received",
            describe=lambda c: str(c.latest["pain.responses"].get("a9-after:lever")),
        )
        last = c.latest["pain.responses"]["a9-after:lever"]
        assert last["next_day_nrs"] == 2 and last["session_id"] == "s-a9"
        assert last["bws_suggestion"]["current_bws_pct"] == 20.0, last["bws_suggestion"]
    finally:
        w.stop()
        c.close()
        k.close()


def _committed_through(env: dict[str, str], logical: str) -> bool:
    """Has the worker's group committed everything in topic ``logical``?"""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    bootstrap, prefix = env["KNEELOAD_KAFKA_BOOTSTRAP"], env["KNEELOAD_TOPIC_PREFIX"]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        topic = prefix + logical
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(tps)
        done = admin.list_group_offsets(prefix + "worker").get(prefix + "worker") or {}
        return all(e == 0 or (tp in done and done[tp].offset >= e) for tp, e in ends.items())
    finally:
        consumer.close()
        admin.close()


def test_a_setpoint_seen_after_later_telemetry_still_reaches_the_samples(
    env: dict[str, str], tmp_path: Path
) -> None:
    """On the real broker: the unit's telemetry half a second into the session is consumed
    first, then the session's setpoint at its first sample, same support (two topics, no
    order between them). The first sample must carry the setpoint's BWS: the re-keying
    dropped the setpoint as a repeat, so that sample was stored at 0 % in one run and 18.5 %
    in another (found by make chaos)."""
    bootstrap, prefix = env["KNEELOAD_KAFKA_BOOTSTRAP"], env["KNEELOAD_TOPIC_PREFIX"]
    k = Kafka(bootstrap, prefix)
    start = dt.datetime(2024, 6, 12, 13, 0, tzinfo=UTC)
    k.send("registry.athletes", "a8", athlete_record("a8", "t8"))
    k.send("treadmill.telemetry", "u8", {"record_id": "u8-t1", "unit_id": "u8",
           "clinic_id": "c8", "time": iso(start + dt.timedelta(seconds=0.5)),
           "kind": "telemetry", "belt_speed_mps": 3.0, "incline_pct": 0.0, "bws_pct": 18.5,
           "measured_support_pct": None, "athlete_id": "a8"})  # fmt: skip
    k.flush()
    c = Collector(bootstrap, prefix)
    w = Worker(env, tmp_path / "w.log")
    try:
        c.wait(lambda c: any(s["unit_id"] == "u8" for s in c.latest["unit.status"].values()))
        k.send("treadmill.setpoints", "u8", {"record_id": "u8-s1", "unit_id": "u8",
               "clinic_id": "c8", "time": iso(start), "bws_pct": 18.5, "previous_bws_pct": None,
               "athlete_id": "a8", "set_by": "panel"})  # fmt: skip
        k.flush()
        end = time.monotonic() + WAIT_S
        while not (
            _committed_through(env, "treadmill.setpoints")
            and _committed_through(env, "worker.bws-by-athlete")
        ):
            assert time.monotonic() < end, "the worker did not consume the setpoint"
            time.sleep(0.5)
        for b in batches("a8", "t8", samples(start, 30), session_id="s-a8"):
            k.send("watch.samples", "a8", b)
        k.flush()
        c.wait(lambda c: any(e["athlete_id"] == "a8" for e in c.latest["load.samples"].values()))
        first = min(
            (s for e in c.latest["load.samples"].values() if e["athlete_id"] == "a8"
             for s in e["samples"]),
            key=lambda s: s["time"],
        )  # fmt: skip
        assert (first["unit_id"], first["bws_pct"]) == ("u8", 18.5), first
    finally:
        w.stop()
        c.close()
        k.close()


def test_a_session_spike_is_raised_while_the_session_still_runs_on_the_real_broker(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Issue #14 items 1–2 on the real pipeline: four 10-minute runs, then a long run sent a
    minute at a time. Once its distance so far passes 110 % of the 30-day longest (660 s of
    running), session_spike comes out of the worker before the next minute is even sent —
    with a publish interval of an hour, so only the per-batch check can have raised it — and
    the rest of the run (to +70 %, moderate) escalates the same episode, never a second one."""
    bootstrap, prefix = env["KNEELOAD_KAFKA_BOOTSTRAP"], env["KNEELOAD_TOPIC_PREFIX"]
    k = Kafka(bootstrap, prefix)
    k.send("registry.athletes", "sp1", athlete_record("sp1", "t-sp"))
    for d in range(4):
        start = D0 + dt.timedelta(days=d)
        for b in batches("sp1", "t-sp", samples(start, 600, tag=f"h{d}"), 100, f"sp-h{d}"):
            k.send("watch.samples", "sp1", b)
    k.flush()
    c = Collector(bootstrap, prefix)
    w = Worker({**env, "KNEELOAD_WORKER_PUBLISH_INTERVAL_S": "3600"}, tmp_path / "w.log")

    def spikes(c: Collector) -> list[dict]:
        return [e for e in c.all["alerts"] if e["kind"] == "session_spike"]

    long_run = batches("sp1", "t-sp", samples(D0 + dt.timedelta(days=4), 1020, tag="L"), 60, "sp-L")
    try:
        c.wait(lambda c: len(c.latest["load.samples"]) >= 24)  # the history is in
        for i, b in enumerate(long_run[:12], start=1):  # 12 minutes: the 12th passes 660 s
            k.send("watch.samples", "sp1", b)
            k.flush()
            if i < 12:  # processed (its per-sample rows are out) and no warning yet
                bid = b["batch_id"]
                c.wait(lambda c: bid in c.latest["load.samples"])  # noqa: B023
                assert not spikes(c), f"warned after {i} min, before 110 %"
        c.wait(lambda c: bool(spikes(c)), describe=lambda c: f"{len(c.all['alerts'])} alerts")
        first = spikes(c)[0]
        assert first["values"]["in_progress"] is True and first["values"]["category"] == "small"
        assert first["values"]["episode_transition"] == "opened"
        assert first["message"].startswith("During the session, so far")
        for b in long_run[12:]:
            k.send("watch.samples", "sp1", b)
        k.flush()
        c.wait(lambda c: any(e["values"]["category"] == "moderate" for e in spikes(c)))
        assert {e["dedup_key"] for e in spikes(c)} == {first["dedup_key"]}  # one episode
        assert [e["values"]["episode_transition"] for e in spikes(c)] == ["opened", "escalated"]
    finally:
        w.stop()
        c.close()
        k.close()
