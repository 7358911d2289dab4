"""Daily digest per channel (issue #14 item 5): a channel's ``daily_digest`` holds back the
episode changes it lists (default: resolved) and sends them as one message at a local time;
opened and escalated changes still go out at once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from kneeload.notify.routing import DailyDigest, Routing, RoutingError
from kneeload.settings import Settings

from .conftest import Receiver, make_alert, produce, unique, wait_for
from .test_delivery import running, tuned


def _change(team: str, i: int, transition: str) -> dict[str, Any]:
    a = make_alert(team, i)
    a["values"] = {**a["values"], "episode_transition": transition, "episode_id": f"ep{i}"}
    if transition == "resolved":
        a["severity"] = "info"
        a["values"]["episode_severity"] = "warning"
    return a


def test_next_send_is_the_next_local_time_across_daylight_saving() -> None:
    d = DailyDigest(dt.time(7, 0), "Europe/Oslo")
    utc = dt.UTC
    # 06:59 local in winter (UTC+1) → today 07:00 local = 06:00 UTC
    assert d.next_send(dt.datetime(2026, 1, 10, 5, 59, tzinfo=utc)) == dt.datetime(
        2026, 1, 10, 6, 0, tzinfo=utc
    )
    # exactly 07:00 local → tomorrow
    assert d.next_send(dt.datetime(2026, 1, 10, 6, 0, tzinfo=utc)) == dt.datetime(
        2026, 1, 11, 6, 0, tzinfo=utc
    )
    # the night the clocks go forward (29 March 2026): still 07:00 local = 05:00 UTC
    assert d.next_send(dt.datetime(2026, 3, 28, 22, 0, tzinfo=utc)) == dt.datetime(
        2026, 3, 29, 5, 0, tzinfo=utc
    )
    assert d.message_id(dt.datetime(2026, 3, 29, 5, 0, tzinfo=utc)) == "digest-daily-2026-03-29"


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"at": "7:00"}, "daily_digest.at"),
        ({"at": "24:00"}, "daily_digest.at"),
        ({"at": "07:00", "time_zone": "Mars/Olympus"}, "daily_digest.time_zone"),
        ({"at": "07:00", "transitions": ["closed"]}, "daily_digest.transitions"),
        ({"at": "07:00", "every": "day"}, "unknown keys"),
    ],
)
def test_a_bad_digest_is_refused_naming_the_field(spec: dict[str, Any], where: str) -> None:
    doc = {
        "channels": {"c": {"type": "webhook", "url": "http://127.0.0.1:9/", "daily_digest": spec}}
    }
    with pytest.raises(RoutingError, match=where):
        Routing.parse(doc)


on_session_loop = pytest.mark.asyncio(loop_scope="session")


@on_session_loop
async def test_resolved_changes_wait_for_the_daily_digest_and_go_as_one(
    settings: Settings, receiver: Receiver
) -> None:
    """Two episodes opened (pushed at once) and resolved (held until the digest time: the
    ledger's rows carry the digest's id and send time; the test moves that time to now
    instead of waiting a day), then one digest message with both resolutions."""
    team = unique("team")
    doc = {
        "channels": {
            f"{team}-hook": {
                "type": "webhook",
                "url": receiver.url(f"/{team}/hook"),
                "daily_digest": {"at": "07:00", "time_zone": "Europe/Oslo"},
            }
        },
        "routes": [{"team_id": team, "channels": [f"{team}-hook"]}],
    }
    opened = [_change(team, 0, "opened"), _change(team, 1, "opened")]
    resolved = [_change(team, 2, "resolved"), _change(team, 3, "resolved")]
    s = tuned(settings)
    async with running(s, doc):
        await produce(settings, opened + resolved)
        await wait_for(lambda: len(receiver.at(f"/{team}/hook")) == 2, 20, "the two openings")
        with psycopg.connect(s.database_url, autocommit=True) as conn:
            held = conn.execute(
                "SELECT alert_id, message_id, next_attempt_at FROM notify.deliveries "
                "WHERE channel = %s AND status = 'pending' ORDER BY alert_id",
                (f"{team}-hook",),
            ).fetchall()
            assert sorted(h[0] for h in held) == sorted(a["alert_id"] for a in resolved)
            when = DailyDigest(dt.time(7, 0), "Europe/Oslo").next_send(dt.datetime.now(dt.UTC))
            assert {(h[1], h[2]) for h in held} == {
                (DailyDigest(dt.time(7, 0), "Europe/Oslo").message_id(when), when)
            }
            conn.execute(  # the clock reaches 07:00 in Oslo
                "UPDATE notify.deliveries SET next_attempt_at = now() WHERE channel = %s "
                "AND status = 'pending'",
                (f"{team}-hook",),
            )
        await wait_for(lambda: len(receiver.at(f"/{team}/hook")) == 3, 20, "the digest")
    pushed = [r.headers["x-kneeload-alert-id"] for r in receiver.at(f"/{team}/hook")]
    assert sorted(pushed[:2]) == sorted(a["alert_id"] for a in opened)
    digest = receiver.at(f"/{team}/hook")[2]
    assert digest.body["type"] == "digest" and digest.body["count"] == 2
    assert pushed[2].startswith("digest-daily-")
    assert sorted(digest.headers["x-kneeload-alert-ids"].split(",")) == sorted(
        a["alert_id"] for a in resolved
    )


def test_slow_signals_wait_for_the_digest_whatever_their_transition() -> None:
    doc = {
        "channels": {
            "c": {
                "type": "webhook",
                "url": "http://127.0.0.1:9/",
                "daily_digest": {"at": "07:00", "kinds": ["pain_trend_worsening"]},
            }
        },
        "routes": [{"channels": ["c"]}],
    }
    d = Routing.parse(doc).channels["c"].daily_digest
    assert d is not None
    trend = {"kind": "pain_trend_worsening", "values": {"episode_transition": "opened"}}
    pain = {"kind": "pain_high", "values": {"episode_transition": "opened"}}
    resolved = {"kind": "pain_high", "values": {"episode_transition": "resolved"}}
    assert d.holds(trend) and not d.holds(pain) and d.holds(resolved)
