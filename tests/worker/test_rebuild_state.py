"""`kneeload rebuild-state` from PostgreSQL, on the real stack: worker + sink as
subprocesses, the worker stopped and its changelogs and group wiped, the state rebuilt
from the database, a new worker fed more data → the uninterrupted run's numbers, and a
team correlation that still holds the athletes who did not report again."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kneeload.core.correlation import rmcorr
from kneeload.settings import Settings
from kneeload.storage import migrate

from .helpers import (
    KNEELOAD,
    WAIT_S,
    WORKER_ENV,
    Collector,
    Kafka,
    Worker,
    ensure_topics,
    iso,
)
from .test_worker_stream import D0, _check_acwr_equal, _finals, _multi, _send, _wait_expected


def _env(settings: Settings, database_url: str) -> dict[str, str]:
    prefix = f"{settings.topic_prefix}r{uuid.uuid4().hex[:6]}."
    return {
        "KNEELOAD_TOPIC_PREFIX": prefix,
        "KNEELOAD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "KNEELOAD_DATABASE_URL": database_url,
        "KNEELOAD_STORAGE_SINK_GROUP": f"sink-{prefix}",
        "KNEELOAD_STORAGE_BACKOFF_MAX_S": "2",
    }


def _sink(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [KNEELOAD, "sink"],
        env={**os.environ, **WORKER_ENV, **env},
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )


def _sink_offset(env: dict[str, str], topic: str) -> int:
    """Raw records of ``topic`` the database holds (the sink's committed offsets)."""
    with psycopg.connect(env["KNEELOAD_DATABASE_URL"]) as c:
        row = c.execute(
            "SELECT coalesce(sum(next_offset), 0) FROM kneeload.sink_offsets "
            "WHERE consumer_group = %s AND topic = %s",
            (env["KNEELOAD_STORAGE_SINK_GROUP"], topic),
        ).fetchone()
    return int(row[0]) if row else 0


def _pain(aid: str, d: int) -> dict[str, Any]:
    """Next-morning pain about day d (lag 1 pairs it with day d's load)."""
    return {
        "report_id": f"{aid}-p{d}",
        "athlete_id": aid,
        "team_id": "t2",
        "time": iso(D0 + dt.timedelta(days=d, hours=23)),
        "pain_nrs": (3 * d + int(aid[1:])) % 7 + d // 2,
        "context": "next_morning",
        "session_id": None,
    }


def _team_lag1(c: Collector) -> dict[str, Any] | None:
    evs = [e for e in c.latest["correlations"].values() if e["scope"] == "team"]
    evs = [e for e in evs if e["lag_days"] == 1]
    return max(evs, key=lambda e: (e["time"], e["n"])) if evs else None


def _db_finals(url: str) -> dict[tuple[str, str], float]:
    with psycopg.connect(url) as c:
        rows = c.execute(
            "SELECT athlete_id, date::text, load FROM kneeload.daily_load WHERE status = 'final'"
        ).fetchall()
    return {(a, d): float(x) for a, d, x in rows}


def test_rebuild_state_from_the_database_continues_like_an_uninterrupted_run(
    settings: Settings, tmp_path: Path, own_database: str
) -> None:
    migrate(own_database, settings)
    env = _env(settings, own_database)
    ensure_topics(env)
    bootstrap, prefix = env["KNEELOAD_KAFKA_BOOTSTRAP"], env["KNEELOAD_TOPIC_PREFIX"]
    msgs, expected = _multi(3, 6)
    # first part: registry and days 0..3; second part: m0's days 4..5 after the rebuild
    # (m1 and m2 send nothing more: whatever they contribute comes from the rebuilt state)
    first = [
        m for m in msgs if m[0] != "watch.samples" or m[1]["samples"][0]["time"] < "2024-06-14"
    ]
    second = [m for m in msgs if m not in first and m[1]["athlete_id"] == "m0"]
    expected = {k: v for k, v in expected.items() if k[1] < "2024-06-14" or k[0] == "m0"}
    # pain about days 0, 1 and 3 from every athlete before the rebuild; after it only m0
    # reports (about day 4): the team's correlation must still hold m1's and m2's pairs
    pains = [(a, d) for d in (0, 1, 3) for a in ("m0", "m1", "m2")]
    first += [("pain.reports", _pain(a, d)) for a, d in pains]
    second += [("pain.reports", _pain("m0", 4))]
    pains.append(("m0", 4))
    exp1 = {k: v for k, v in expected.items() if k[1] < "2024-06-14"}
    k = Kafka(bootstrap, prefix)
    c = Collector(bootstrap, prefix)
    sink = _sink(env, tmp_path / "sink.log")
    w = Worker(env, tmp_path / "w1.log")
    try:
        _send(k, first)
        _wait_expected(c, exp1)
        c.wait(lambda c: all(key in _db_finals(env["KNEELOAD_DATABASE_URL"]) for key in exp1))
        n_first = sum(m[0] == "watch.samples" for m in first)
        c.wait(lambda c: _sink_offset(env, prefix + "watch.samples") == n_first)
        w.stop()
        # the worker's state is gone: rebuild it from the database only
        out = subprocess.run(
            [KNEELOAD, "rebuild-state", "--yes"],
            env={**os.environ, **WORKER_ENV, **env},
            capture_output=True,
            text=True,
            timeout=WAIT_S,
        )
        assert out.returncode == 0, out.stderr
        assert "rebuilt 3 athlete(s)" in out.stdout, out.stdout
        assert "0 team record(s)" not in out.stdout, out.stdout
        w = Worker(env, tmp_path / "w2.log")
        _send(k, second)
        _wait_expected(c, expected)
        f = _finals(c)
        assert f[("m0", "2024-06-12")]["load"] == 0.0  # the rest day
        _check_acwr_equal(f, tmp_path)
        closed = {s: e for s, e in c.latest["sessions"].items() if e["status"] == "closed"}
        assert len(closed) == len(expected)
        # the new worker continued from the database's offsets, not from the beginning:
        # no input batch of the first part was processed twice
        # (second-part batches may be re-emitted after a start-up rebalance: at-least-once)
        ids1 = {m[1]["batch_id"] for m in first if m[0] == "watch.samples"}
        seen = [e["batch_id"] for e in c.all["load.samples"] if e["batch_id"] in ids1]
        assert sorted(seen) == sorted(ids1)
        for (aid, d), load in expected.items():
            assert f[(aid, d)]["load"] == pytest.approx(load, rel=1e-12)

        def db_done(c: Collector) -> bool:
            db = _db_finals(env["KNEELOAD_DATABASE_URL"])
            return all(db.get(key) == pytest.approx(v, rel=1e-9) for key, v in expected.items())

        c.wait(db_done)

        def want() -> Any:
            return rmcorr(
                [a for a, _ in pains],
                [f[(a, (D0 + dt.timedelta(days=d)).date().isoformat())]["load"] for a, d in pains],
                [float(_pain(a, d)["pain_nrs"]) for a, d in pains],
            )

        def team_done(c: Collector) -> bool:
            ev = _team_lag1(c)
            return ev is not None and ev["n"] == len(pains) and ev["r"] == pytest.approx(want().r)

        c.wait(team_done, describe=lambda c: f"latest team event {_team_lag1(c)}")
    finally:
        w.stop()
        sink.terminate()
        sink.wait(30)
        c.close()
        k.close()
