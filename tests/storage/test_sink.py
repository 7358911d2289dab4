"""`kneeload sink` as a real subprocess against the real broker and databases.

* killed (exit right after the database commit, before the Kafka offset commit — the hook
  KNEELOAD_STORAGE_SINK_CRASH_AFTER_DB_COMMIT), twice, then run to the end: exact counts;
* a fresh consumer group replaying everything: still exact counts (natural-id keys);
* invalid messages: dead-lettered (table and topic), never fatal, never dropped;
* a throwaway PostgreSQL cluster stopped and restarted mid-stream: nothing lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kneeload.contracts import dumps, loads, wire
from kneeload.settings import Settings
from kneeload.topics import reconcile, topic_name

from . import events as ev

KNEELOAD = str(Path(sys.executable).with_name("kneeload"))


@pytest.fixture(scope="module")
def topics(settings: Settings) -> Settings:
    reconcile(settings)
    return settings


def _producer(settings: Settings) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)


def _produce(settings: Settings, items: list[tuple[str, bytes | None, bytes | None]]) -> None:
    p = _producer(settings)
    try:
        for topic, key, value in items:
            p.send(topic_name(topic, settings), key=key, value=value)
        p.flush(timeout=30)
    finally:
        p.close()


def _batches(
    athlete: str, n: int, start: datetime, tag: str
) -> list[tuple[str, bytes | None, bytes | None]]:
    out: list[tuple[str, bytes | None, bytes | None]] = []
    for i in range(n):
        b = ev.watch_batch(
            athlete,
            start + timedelta(seconds=10 * i),
            n=10,
            batch_id=f"{tag}-{i}",
            device=f"dev-{tag}",
        )
        out.append(("watch.samples", athlete.encode(), dumps(b)))
    return out


def _stored_both(url: str, athlete: str, load_n: int, watch_n: int) -> bool:
    """Whether ``athlete`` has exactly ``load_n`` sample_load and ``watch_n`` raw rows."""
    sql = "SELECT count(*) FROM kneeload.{} WHERE athlete_id = %s"
    return (
        _count(url, sql.format("sample_load"), athlete) == load_n
        and _count(url, sql.format("watch_samples"), athlete) == watch_n
    )


def _stop(p: subprocess.Popen[str], timeout_s: float = 60) -> str:
    """SIGTERM the sink and return its stderr; one that has not exited within ``timeout_s`` is
    killed before the test fails, so no sink of a failed test lives on into the next ones."""
    p.send_signal(signal.SIGTERM)
    try:
        return p.communicate(timeout=timeout_s)[1]
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise


def _sink(
    settings: Settings, url: str, group: str, *extra: str, **env: str
) -> subprocess.Popen[str]:
    e = dict(os.environ)
    e.update(
        {
            "KNEELOAD_DATABASE_URL": url,
            "KNEELOAD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "KNEELOAD_TOPIC_PREFIX": settings.topic_prefix,
            "KNEELOAD_STORAGE_SINK_GROUP": group,
            "KNEELOAD_STORAGE_BACKOFF_MAX_S": "2",
            "KNEELOAD_LOG_LEVEL": "INFO",
            **env,
        }
    )
    return subprocess.Popen(
        [KNEELOAD, "sink", *extra], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _count(url: str, sql: str, *args: Any) -> int:
    try:
        with psycopg.connect(url, connect_timeout=3) as c:
            row = c.execute(sql, args).fetchone()
            return int(row[0]) if row else 0
    except psycopg.OperationalError:
        return -1


def _kafka_committed(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        got = admin.list_group_offsets(group).get(group, {})
        return {(tp.topic, tp.partition): om.offset for tp, om in got.items()}
    finally:
        admin.close()


def _db_offsets(url: str, group: str) -> dict[tuple[str, int], int]:
    with psycopg.connect(url) as c:
        rows = c.execute(
            "SELECT topic, kafka_partition, next_offset FROM kneeload.sink_offsets "
            "WHERE consumer_group = %s",
            (group,),
        ).fetchall()
    return {(t, p): o for t, p, o in rows}


def test_killed_between_db_commit_and_offset_commit_no_duplicates(
    topics: Settings, db: str
) -> None:
    s = topics
    tag = uuid.uuid4().hex[:8]
    athlete = f"ath-crash-{tag}"
    start = datetime(2030, 2, 1, 8, tzinfo=UTC)
    bad_key = f"bad-{tag}".encode()
    items = _batches(athlete, 30, start, tag)
    items += [
        (
            "daily.load",
            athlete.encode(),
            dumps(ev.daily(athlete, start.date(), load=100.0 + r, acwr=1.0, revision=r)),
        )
        for r in (1, 2, 3)
    ]
    items += [
        ("pain.reports", bad_key, b"{not json"),
        ("pain.reports", bad_key, dumps({"report_id": "x", "pain_nrs": 99})),
    ]
    _produce(s, items)
    group = f"sink-crash-{tag}"
    samples_sql = "SELECT count(*) FROM kneeload.watch_samples WHERE athlete_id = %s"

    for crash_after in (1, 2):  # killed twice right after a database commit
        p = _sink(
            s,
            db,
            group,
            KNEELOAD_STORAGE_SINK_CRASH_AFTER_DB_COMMIT=str(crash_after),
            KNEELOAD_STORAGE_SINK_MAX_RECORDS="7",
        )
        _out, err = p.communicate(timeout=90)
        assert p.returncode == 17, err[-2000:]
        assert "exiting before the offset commit" in err
    # Which topics' records the first two commits held depends on fetch order across
    # partitions (samples may not be among them); the window itself is checked just below.
    stored = _count(db, samples_sql, athlete)
    assert stored < 300
    # The last run died inside the window: the database is ahead of Kafka's committed offsets.
    db_offsets = _db_offsets(db, group)
    committed = _kafka_committed(s, group)
    assert all(committed.get(k, 0) <= v for k, v in db_offsets.items())
    assert any(committed.get(k, 0) < v for k, v in db_offsets.items())

    p = _sink(s, db, group, "--idle-exit", "4", KNEELOAD_STORAGE_SINK_MAX_RECORDS="7")
    _out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err[-2000:]
    assert _count(db, samples_sql, athlete) == 300
    assert (
        _count(
            db,
            "SELECT count(DISTINCT record_id) FROM kneeload.watch_samples WHERE athlete_id = %s",
            athlete,
        )
        == 300
    )
    assert (
        _count(db, "SELECT count(*) FROM kneeload.watch_batches WHERE athlete_id = %s", athlete)
        == 30
    )
    assert (
        _count(db, "SELECT revision FROM kneeload.daily_load WHERE athlete_id = %s", athlete) == 3
    )
    assert (
        _count(
            db, "SELECT count(*) FROM kneeload.daily_load_revisions WHERE athlete_id = %s", athlete
        )
        == 3
    )
    assert (
        _count(db, "SELECT count(*) FROM kneeload.dead_letters WHERE key = %s", bad_key.decode())
        == 2
    )
    reasons = _count(
        db,
        "SELECT count(DISTINCT reason_code) FROM kneeload.dead_letters WHERE key = %s",
        bad_key.decode(),
    )
    assert reasons == 2  # invalid_json and schema_invalid
    # Kafka offsets now committed, equal to the database's
    in_db = _db_offsets(db, group)
    committed = _kafka_committed(s, group)
    assert in_db and all(committed.get(k) == v for k, v in in_db.items())

    # A new consumer group replays every message: primary keys make it a no-op.
    p = _sink(s, db, f"{group}-replay", "--idle-exit", "4")
    _out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err[-2000:]
    assert _count(db, samples_sql, athlete) == 300
    assert (
        _count(
            db, "SELECT count(*) FROM kneeload.daily_load_revisions WHERE athlete_id = %s", athlete
        )
        == 3
    )
    assert (
        _count(db, "SELECT count(*) FROM kneeload.dead_letters WHERE key = %s", bad_key.decode())
        == 2
    )

    # The dead letters were also published to the dead-letter topic.
    from kafka import KafkaConsumer

    cons = KafkaConsumer(
        topic_name("deadletter", s),
        bootstrap_servers=s.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    try:
        keys = [loads(r.value).get("key") for r in cons]
    finally:
        cons.close()
    assert keys.count(bad_key.decode()) >= 2


@pytest.fixture()
def throwaway_pg(settings: Settings, private_pg: Any) -> Iterator[tuple[Settings, str]]:
    """A second PostgreSQL cluster of the test's own (conftest's :func:`private_postgres`: the
    local stack's code, a free port, the session's flavour) under the stack's var directory,
    stopped and deleted afterwards — stopping it cannot disturb anyone else's tests, and
    nothing is left under /tmp/pytest-of-<user> (where a concurrent pytest session's cleanup
    can lock the postgres user out of a running cluster)."""
    with private_pg(settings, settings.storage_timescale, "pg-outage") as server:
        yield server


def test_database_stopped_and_restarted_mid_stream_loses_nothing(
    topics: Settings, throwaway_pg: tuple[Settings, str]
) -> None:
    from kneeload.stack import postgres
    from kneeload.storage import migrate

    s = topics
    s2, url = throwaway_pg
    migrate(url, s2)
    tag = uuid.uuid4().hex[:8]
    athlete = f"ath-outage-{tag}"
    start = datetime(2030, 3, 1, 8, tzinfo=UTC)
    sql = "SELECT count(*) FROM kneeload.watch_samples WHERE athlete_id = %s"
    p = _sink(s, url, f"sink-outage-{tag}", KNEELOAD_STORAGE_SINK_MAX_RECORDS="5")
    try:
        _produce(s, _batches(athlete, 10, start, f"{tag}a"))
        _wait(lambda: _count(url, sql, athlete) == 100, 60, "the first 100 samples")
        postgres.stop(s2)
        _produce(s, _batches(athlete, 10, start + timedelta(minutes=5), f"{tag}b"))
        time.sleep(3)  # the sink meets the outage and backs off
        postgres.start(s2)
        _produce(s, _batches(athlete, 10, start + timedelta(minutes=10), f"{tag}c"))
        _wait(lambda: _count(url, sql, athlete) == 300, 90, "all 300 samples after the restart")
    finally:
        err = _stop(p)
    assert p.returncode == 0, err[-3000:]
    assert "backing off" in err or "database unavailable" in err
    assert (
        _count(
            url,
            "SELECT count(DISTINCT record_id) FROM kneeload.watch_samples WHERE athlete_id = %s",
            athlete,
        )
        == 300
    )
    assert (
        _count(
            url, "SELECT count(*) FROM kneeload.dead_letters WHERE payload LIKE %s", f"%{athlete}%"
        )
        == 0
    )


def test_a_republished_sample_load_batch_replaces_the_stored_values(
    topics: Settings, db: str
) -> None:
    """The worker re-publishes a ``sample_load`` batch under the same ids when a late BWS
    setpoint re-joins samples it had already published (their sessions and days are
    corrected too). The sink must store the latest version — it kept the first one, so the
    per-sample BWS and PFJ stress stayed stale (found by ``make chaos``). Three versions:
    two in one sink transaction, the last in a later one; a replay of the last changes
    nothing."""
    s = topics
    tag = uuid.uuid4().hex[:8]
    athlete = f"ath-rejoin-{tag}"
    start = datetime(2030, 3, 1, 8, tzinfo=UTC)
    versions = [
        ev.load_batch(athlete, start, n=5, batch_id=f"lb-{tag}", bws=bws, unit=unit)
        for bws, unit in ((0.0, None), (15.0, f"lever-{tag}"), (20.0, f"lever-{tag}"))
    ]
    sql = (
        "SELECT count(*) FROM kneeload.sample_load WHERE athlete_id = %s AND bws_pct = %s "
        "AND unit_id IS NOT DISTINCT FROM %s"
    )
    group = f"sink-rejoin-{tag}"
    _produce(s, [("load.samples", athlete.encode(), dumps(v)) for v in versions[:2]])
    p = _sink(s, db, group)
    try:
        _wait(lambda: _count(db, sql, athlete, 15.0, f"lever-{tag}") == 5, 90, "version 2")
        _produce(s, [("load.samples", athlete.encode(), dumps(versions[2]))] * 2)
        _wait(lambda: _count(db, sql, athlete, 20.0, f"lever-{tag}") == 5, 90, "version 3")
    finally:
        _stop(p)
    assert (
        _count(db, "SELECT count(*) FROM kneeload.sample_load WHERE athlete_id = %s", athlete) == 5
    )


def test_the_last_version_of_a_pain_response_in_one_batch_is_stored(
    topics: Settings, db: str
) -> None:
    """A pain response is re-published under its id when a later report of its session
    re-classifies it (pending → next-day value received). Two versions of one response in
    one sink transaction: the sink picked one by ``time``, which both share, so either
    could be stored — ``make chaos`` stored 'pending' in one run and 'received' in the
    other for the same workload. The last version in Kafka order must win, in one batch
    as across batches."""
    s = topics
    tag = uuid.uuid4().hex[:8]
    athlete = f"ath-pain-ver-{tag}"
    t = datetime(2030, 3, 2, 7, tzinfo=UTC)
    first = ev.pain_response(f"pr-{tag}-1", athlete, t, nrs=2, unit=None)
    versions = []
    for i, status in enumerate(("pending", "received", "pending", "received", "received")):
        v = dict(first, next_day_status=status, next_day_nrs=None if status == "pending" else 1.0)
        v["summary"] = f"version {i}"
        versions.append(v)
    group = f"sink-painver-{tag}"
    _produce(s, [("pain.responses", athlete.encode(), dumps(v)) for v in versions])
    p = _sink(s, db, group)
    sql = "SELECT count(*) FROM kneeload.pain_responses WHERE athlete_id = %s"
    try:
        _wait(lambda: _count(db, sql, athlete) == 1, 90, "the pain response")
        _wait(lambda: _db_offsets(db, group) != {}, 90, "the batch's offsets")
    finally:
        _stop(p)
    last = "SELECT count(*) FROM kneeload.pain_responses WHERE athlete_id = %s AND summary = %s"
    assert _count(db, last, athlete, "version 4") == 1


def test_one_poisoned_row_never_takes_its_neighbours_or_the_sink(topics: Settings, db: str) -> None:
    """Rows that reached Kafka although storage cannot keep them (issue #17): a date
    PostgreSQL refuses (29 February 2100), a per-sample value beyond a real column (1e300),
    and a NUL in a batch's free text. Before, the sink dead-lettered the whole
    message (the batch's valid samples lost) or, when its staging table had been created in
    the rolled-back attempt, failed again isolating and exited. Now: every valid sample
    stored, one dead letter per poisoned row (the whole message only when what is poisoned
    is the message itself), the sink still running and storing what comes after."""
    s = topics
    tag = uuid.uuid4().hex[:8]
    athlete = f"ath-poison-{tag}"
    t0 = datetime(2030, 3, 3, 8, tzinfo=UTC)
    a = ev.watch_batch(athlete, t0, n=10, batch_id=f"pa-{tag}", device=f"pd-{tag}")
    # 29 February 2100: the schema's pattern lets it through (2100 is no leap year, a rule
    # a pattern cannot say), PostgreSQL refuses it — a refusal only the database makes
    a["samples"][3]["time"] = "2100-02-29T08:00:03Z"
    dev = f"pd-{tag}"
    c = ev.watch_batch(athlete, t0 + timedelta(minutes=2), n=4, batch_id=f"pc-{tag}", device=dev)
    c["sub_sport"] = f"trail\u0000{tag}"
    d = ev.load_batch(athlete, t0, n=6, batch_id=f"pl-{tag}")
    d["samples"][4]["peak_pfj_stress_mpa"] = 1e300
    after = ev.watch_batch(
        athlete, t0 + timedelta(minutes=5), n=5, batch_id=f"pz-{tag}", device=dev
    )
    key = athlete.encode()
    _produce(s, [("watch.samples", key, dumps(a)), ("watch.samples", key, dumps(c)),
                 ("load.samples", key, dumps(d))])  # fmt: skip
    group = f"sink-poison-{tag}"
    p = _sink(s, db, group)
    watch = "SELECT count(*) FROM kneeload.watch_samples WHERE athlete_id = %s"
    load = "SELECT count(*) FROM kneeload.sample_load WHERE athlete_id = %s"
    letters = "SELECT count(*) FROM kneeload.dead_letters WHERE source = 'sink' AND payload LIKE %s"
    try:
        _wait(
            lambda: _count(db, watch, athlete) >= 9 and _count(db, load, athlete) >= 5,
            90,
            "the valid rows",
        )
        _produce(s, [("watch.samples", key, dumps(after))])
        _wait(lambda: _count(db, watch, athlete) >= 14, 90, "the batch after the poisoned ones")
        assert p.poll() is None, "the sink exited"
    finally:
        _stop(p)
    assert _count(db, watch, athlete) == 9 + 5
    assert _count(db, load, athlete) == 5
    assert _count(db, letters, f"%{a['samples'][3]['record_id']}%") == 1
    assert _count(db, letters, f"%pa-{tag}%") == 1  # only the poisoned sample's letter
    assert _count(db, letters, f"%{d['samples'][4]['record_id']}%") == 1
    assert _count(db, letters, f"%pl-{tag}:%") == 1
    assert _count(db, letters, f"%pc-{tag}%") == 1  # the whole message: its envelope
    reason = "SELECT reason_code FROM kneeload.dead_letters WHERE payload LIKE %s"
    with psycopg.connect(db) as conn:
        got = {
            k: [r[0] for r in conn.execute(reason, (f"%{k}-{tag}%",)).fetchall()]
            for k in ("pa", "pc", "pl")
        }
    # the database's refusal; what the schema refuses (a NUL in the envelope, a value beyond
    # its maximum) is named as such: a refused batch's samples are checked against the
    # schema before they are retried
    assert got == {"pa": ["db_rejected"], "pc": ["schema_invalid"], "pl": ["schema_invalid"]}


def test_json_left_on_the_topics_from_before_the_binary_format_is_stored_like_frames(
    topics: Settings, db: str
) -> None:
    """Upgrade path of the internal wire format: the per-sample topics hold JSON produced
    before the upgrade, then frames (``contracts.wire``) for the same kind of events. The real
    sink stores both — none lost, none dead-lettered — and the same values either way."""
    s = topics
    tag = uuid.uuid4().hex[:8]
    old, new = f"ath-json-{tag}", f"ath-frame-{tag}"
    start = datetime(2030, 4, 1, 8, tzinfo=UTC)
    items: list[tuple[str, bytes | None, bytes | None]] = []
    for aid, enc in ((old, dumps), (new, wire.encode)):
        for i in range(3):
            b = ev.watch_batch(
                aid, start + timedelta(seconds=10 * i), n=10, batch_id=f"{aid}-{i}",
                device=f"dev-{aid}",
            )  # fmt: skip
            items.append(("watch.samples", aid.encode(), enc(b)))
        lb = ev.load_batch(aid, start, n=10, batch_id=f"lb-{aid}", bws=15.0, unit=f"u-{tag}")
        items.append(("load.samples", aid.encode(), enc(lb)))
    assert wire.is_frame(items[-1][2]) and not wire.is_frame(items[0][2])
    _produce(s, items)
    group = f"sink-upgrade-{tag}"
    p = _sink(s, db, group)
    try:
        for aid in (old, new):
            _wait(partial(_stored_both, db, aid, 10, 30), 90, f"rows of {aid}")
    finally:
        _stop(p)
    assert (
        _count(db, "SELECT count(*) FROM kneeload.dead_letters WHERE key IN (%s, %s)", old, new)
        == 0
    )

    def values(table: str, cols: str, aid: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(db) as conn:
            return conn.execute(
                f"SELECT {cols} FROM kneeload.{table} WHERE athlete_id = %s ORDER BY time", (aid,)
            ).fetchall()

    for table, cols in (
        ("watch_samples", "time, cadence_spm, speed_mps, ground_contact_ms, grade_pct"),
        ("sample_load", "time, speed_mps, bws_pct, peak_pfj_stress_mpa, late, unit_id"),
    ):
        assert values(table, cols, old) == values(table, cols, new), table
