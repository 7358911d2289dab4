"""team_overview's latest pain comes from kneeload.athlete_pain_latest (migration 0008): after
every write it must equal the raw lookup over pain_reports (the 0005 definition) —
out-of-order (late) reports, replays, reports older than the kept window, and a report far in
the future (the view then falls back to the raw lookup). The weekly trend is the worker's
(daily_load.pain_*, migration 0028; tests/storage/test_views_tenancy.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from . import events as ev

#: the 0005 definition of the latest pain, straight from pain_reports
RAW = """
SELECT lp.pain_nrs, lp.time, lp.context
  FROM (SELECT %(a)s::text AS athlete_id) a
  LEFT JOIN LATERAL (
        SELECT p.pain_nrs, p.time, p.context FROM kneeload.pain_reports p
         WHERE p.athlete_id = a.athlete_id AND p.time <= now()
         ORDER BY p.time DESC LIMIT 1) lp ON true
"""
VIEW = (
    "SELECT latest_pain_nrs, latest_pain_time, latest_pain_context "
    "FROM kneeload_api.team_overview WHERE athlete_id = %(a)s"
)


def _same(conn: psycopg.Connection[Any], a: str) -> tuple[Any, ...]:
    with conn.transaction():  # one snapshot and one now() for both
        raw = conn.execute(RAW, {"a": a}).fetchone()
        view = conn.execute(VIEW, {"a": a}).fetchone()
    assert view == raw
    assert raw is not None
    return tuple(raw)


def test_latest_pain_matches_raw_lookups(
    conn: psycopg.Connection[Any], write: Callable[[Iterable[tuple[str, Any]]], Any]
) -> None:
    a = f"lp-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).replace(microsecond=0)
    write([("registry.athletes", ev.athlete(a, "lp-team", "Lp", now - timedelta(days=60)))])
    assert _same(conn, a) == (None, None, None)

    def pain(n: int, t: datetime, nrs: int, ctx: str = "after") -> tuple[str, Any]:
        return ("pain.reports", ev.pain(f"{a}-{n}", a, t, nrs, ctx, team="lp-team"))

    write([pain(1, now - timedelta(days=3), 2), pain(2, now - timedelta(days=10), 1)])
    assert _same(conn, a)[:2] == (2, now - timedelta(days=3))
    # a late report (older than the latest) and a newer one, in one batch, out of order
    write([pain(3, now - timedelta(hours=2), 6, "rest"), pain(4, now - timedelta(days=5), 3)])
    assert _same(conn, a)[:3] == (6, now - timedelta(hours=2), "rest")
    # a replay changes nothing
    write([pain(3, now - timedelta(hours=2), 6, "rest")])
    assert _same(conn, a)[0] == 6
    # a report a bit in the future (still inside the kept window): not yet the latest
    write([pain(5, now + timedelta(hours=20), 9)])
    assert _same(conn, a)[0] == 6
    # far in the future: the stored window no longer covers now(), the view falls back
    write([pain(6, now + timedelta(days=30), 10)])
    assert _same(conn, a)[0] == 6
    stored = conn.execute(
        "SELECT prior_time IS NOT NULL FROM kneeload.athlete_pain_latest WHERE athlete_id = %s",
        (a,),
    ).fetchone()
    assert stored == (True,)  # reports older than the window are kept as the prior report
    # deleting reports (e.g. an erasure request) recomputes
    conn.execute(
        "DELETE FROM kneeload.pain_reports WHERE athlete_id = %s "
        "AND time > now() - interval '1 day'",
        (a,),
    )
    assert _same(conn, a)[:2] == (2, now - timedelta(days=3))
    conn.execute("DELETE FROM kneeload.pain_reports WHERE athlete_id = %s", (a,))
    assert _same(conn, a) == (None, None, None)
    assert conn.execute(
        "SELECT count(*) FROM kneeload.athlete_pain_latest WHERE athlete_id = %s", (a,)
    ).fetchone() == (0,)
