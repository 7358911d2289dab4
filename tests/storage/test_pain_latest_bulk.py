"""athlete_pain_latest after bulk changes to pain_reports (migrations 0008, 0024), on both
flavours: one statement inserting many athletes' reports, an update moving a report to another
athlete, a delete emptying an athlete, and a statement rolled back to a savepoint leave the
summary exactly as a recomputation from pain_reports gives it. On TimescaleDB the per-row
trigger only notes athletes (pain_refresh_pending), which nothing leaves behind."""

from __future__ import annotations

from typing import Any

import psycopg

from kneeload.settings import Settings
from kneeload.storage import migrate

_COLS = (
    "athlete_id, latest_time, window_start, recent_times, recent_nrs, recent_contexts, "
    "prior_time, prior_nrs, prior_context"
)
_INSERT = (
    "INSERT INTO kneeload.pain_reports (time, report_id, athlete_id, team_id, pain_nrs, context) "
    "SELECT now() - make_interval(days => r * 3), format('bulk-%%s-%%s', a, r), "
    "format('ath-bulk-%%s', a), 'team-bulk', (a + r) %% 11, 'after' "
    "FROM generate_series(1, %s) a, generate_series(1, %s) r"
)


def _summary(c: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return c.execute(
        f"SELECT {_COLS} FROM kneeload.athlete_pain_latest WHERE athlete_id LIKE 'ath-bulk-%' "
        "ORDER BY athlete_id"
    ).fetchall()


def _recomputed(c: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """The summary as 0008's function computes it from pain_reports, in a transaction that is
    rolled back (the stored summary stays as the triggers left it)."""
    with c.transaction(force_rollback=True):
        c.execute("DELETE FROM kneeload.athlete_pain_latest WHERE athlete_id LIKE 'ath-bulk-%'")
        c.execute(
            "SELECT kneeload.refresh_athlete_pain(ARRAY(SELECT DISTINCT athlete_id FROM "
            "kneeload.pain_reports WHERE athlete_id LIKE 'ath-bulk-%'))"
        )
        return _summary(c)


def _pending(c: psycopg.Connection[Any], flavour: str) -> int:
    if flavour != "timescale":
        return 0
    row = c.execute("SELECT count(*) FROM kneeload.pain_refresh_pending").fetchone()
    return int(row[0]) if row else 0


def test_bulk_changes_leave_the_summary_as_recomputed(
    own_database: str, settings: Settings, flavour: str
) -> None:
    migrate(own_database, settings)
    with psycopg.connect(own_database, autocommit=True) as c:
        c.execute(_INSERT, (20, 12))  # 240 reports of 20 athletes in one statement
        got = _summary(c)
        assert len(got) == 20 and got == _recomputed(c)
        assert all(len(r[3]) == 6 and r[6] is not None for r in got)  # 16-day window + prior
        assert _pending(c, flavour) == 0
        # a report moved to another athlete refreshes both
        c.execute(
            "UPDATE kneeload.pain_reports SET athlete_id = 'ath-bulk-2', pain_nrs = 10 "
            "WHERE report_id = 'bulk-1-1'"
        )
        assert _summary(c) == _recomputed(c)
        assert next(r for r in _summary(c) if r[0] == "ath-bulk-2")[4][-1] in (10, 3)
        # every report of an athlete deleted: its row goes
        c.execute("DELETE FROM kneeload.pain_reports WHERE athlete_id = 'ath-bulk-3'")
        got = _summary(c)
        assert "ath-bulk-3" not in [r[0] for r in got] and got == _recomputed(c)
        assert _pending(c, flavour) == 0
        # a statement rolled back to its savepoint (the sink isolates refused rows this way)
        with c.transaction():
            try:
                with c.transaction():
                    c.execute(
                        "INSERT INTO kneeload.pain_reports (time, report_id, athlete_id, "
                        "pain_nrs, context) VALUES (now(), 'bulk-gone', 'ath-bulk-gone', 9, "
                        "'after'), (now(), 'bulk-bad', 'ath-bulk-gone', 11, 'after')"
                    )
            except psycopg.errors.CheckViolation:
                pass
            c.execute(
                "INSERT INTO kneeload.pain_reports (time, report_id, athlete_id, pain_nrs, "
                "context) VALUES (now(), 'bulk-kept', 'ath-bulk-kept', 4, 'after')"
            )
        got = _summary(c)
        assert "ath-bulk-gone" not in [r[0] for r in got]
        assert "ath-bulk-kept" in [r[0] for r in got] and got == _recomputed(c)
        assert _pending(c, flavour) == 0
