"""Alert episodes in the database: the athlete worker's real episode changes, written by the
sink's writer, give one row per episode in kneeload_api.alert_episodes and open_alerts;
history keeps every change; acknowledging any change acknowledges the episode."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from kneeload.storage import acknowledge_alert
from kneeload.worker.athlete import AthleteProcessor, WorkerConfig, new_state

CFG = WorkerConfig(day_grace_s=60, publish_interval_s=0)
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=2)


def _changes(aid: str, reports: list[tuple[str, float, int]]) -> list[dict[str, Any]]:
    p = AthleteProcessor(CFG, {})
    st = new_state(aid, CFG)
    out = []
    for rid, hours, nrs in reports:
        t = (T0 + dt.timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
        rep = {"report_id": f"{aid}-{rid}", "athlete_id": aid, "time": t, "pain_nrs": nrs}
        rep["context"] = "after"
        out += [e for topic, _, e in p.on_pain(st, rep, 10**13) if topic == "alerts"]
    return out


def _episodes(conn: Any, aid: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "SELECT * FROM kneeload_api.alert_episodes WHERE athlete_id = %s ORDER BY opened_at",
            (aid,),
        ).fetchall()


def _open(conn: Any, aid: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT alert_id, dedup_key, severity FROM kneeload_api.open_alerts WHERE athlete_id = %s",
        (aid,),
    ).fetchall()


def test_episode_lifecycle_in_views(
    db: str, conn: Any, write: Callable[[Iterable[tuple[str, Any]]], Any]
) -> None:
    aid = f"ep-{uuid.uuid4().hex[:8]}"
    first = _changes(aid, [("r1", 0, 5), ("r2", 1, 5), ("r3", 2, 7)])
    assert [a["values"]["episode_transition"] for a in first] == ["opened", "escalated"]
    write(("alerts", a) for a in first)
    (ep,) = _episodes(conn, aid)
    assert ep["status"] == "open" and ep["severity"] == "critical" and ep["changes"] == 2
    assert ep["kind"] == "pain_high" and not ep["acknowledged"]
    assert _open(conn, aid) == [(first[1]["alert_id"], ep["episode_id"], "critical")]
    write(("alerts", a) for a in first)  # redelivered: no new rows, same episode
    assert _episodes(conn, aid) == [ep]

    # acknowledging the opening change acknowledges the whole episode so far
    with psycopg.connect(db) as c:
        assert acknowledge_alert(c, first[0]["alert_id"], "coach-zoe") is True
        c.commit()
    assert _open(conn, aid) == []
    (ep,) = _episodes(conn, aid)
    assert ep["acknowledged"] and ep["acknowledged_by"] == "coach-zoe"

    # the rest of the story: resolved by a low report, then a new episode
    everything = _changes(
        aid, [("r1", 0, 5), ("r2", 1, 5), ("r3", 2, 7), ("r4", 20, 1), ("r5", 30, 6)]
    )
    write(("alerts", a) for a in everything)
    old, new = _episodes(conn, aid)
    assert old["status"] == "resolved" and old["resolved_by_event"].endswith(f"{aid}-r4")
    assert old["resolved_at"] == T0 + dt.timedelta(hours=20)
    assert new["status"] == "open" and new["severity"] == "warning" and not new["acknowledged"]
    assert [r[1] for r in _open(conn, aid)] == [new["episode_id"]]
    history = conn.execute(
        "SELECT episode_transition FROM kneeload_api.alerts WHERE athlete_id = %s "
        "ORDER BY event_time",
        (aid,),
    ).fetchall()
    assert [h[0] for h in history] == ["opened", "escalated", "resolved", "opened"]
