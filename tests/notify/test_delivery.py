"""The notifier against the real broker and database, with a real HTTP receiver and a real
SMTP server: once per channel, retries with backoff, dead letters, digests, restart."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from kneeload.contracts import wire
from kneeload.notify.routing import Routing
from kneeload.notify.service import Notifier
from kneeload.settings import Settings
from kneeload.topics import DEADLETTER, get_topic

from .conftest import Receiver, SMTPServer, make_alert, produce, unique, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


def routing_doc(team: str, receiver: Receiver, smtp: SMTPServer | None = None) -> dict[str, Any]:
    channels: dict[str, Any] = {
        f"{team}-hook": {"type": "webhook", "url": receiver.url(f"/{team}/hook")},
        f"{team}-slack": {"type": "slack", "url": receiver.url(f"/{team}/slack")},
    }
    if smtp is not None:
        channels[f"{team}-mail"] = {"type": "email", "to": [f"coach@{team}.example"]}
    return {"channels": channels, "routes": [{"team_id": team, "channels": list(channels)}]}


def tuned(settings: Settings, smtp: SMTPServer | None = None, **kw: Any) -> Settings:
    update: dict[str, Any] = {
        "notify_group_id": unique("notify-test"),
        "notify_poll_s": 0.05,
        "notify_backoff_base_s": 0.2,
        "notify_lease_s": 2.0,
        "notify_timeout_s": 1.0,
        "notify_rate_limit_count": 1000,
        "notify_rate_limit_window_s": 60.0,
    }
    if smtp is not None:
        update["notify_smtp_port"] = smtp.port
    update.update(kw)
    return settings.model_copy(update=update)


@contextlib.asynccontextmanager
async def running(s: Settings, doc: dict[str, Any]) -> AsyncIterator[Notifier]:
    n = Notifier(s, Routing.parse(doc))
    stop = asyncio.Event()
    task = asyncio.create_task(n.run(stop))
    try:
        yield n
    except AssertionError as exc:
        raise AssertionError(f"{exc}; notifier stats: {n.stats}") from exc
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def ledger_rows(s: Settings, channel_prefix: str) -> list[tuple[str, str, str, int]]:
    with psycopg.connect(s.database_url) as conn:
        return conn.execute(
            """SELECT alert_id, channel, status, attempts FROM notify.deliveries
               WHERE channel LIKE %s ORDER BY alert_id, channel""",
            (channel_prefix + "%",),
        ).fetchall()


async def dead_letters(
    s: Settings, want: int, match: Callable[[dict[str, Any]], bool], timeout: float = 15
) -> list[dict[str, Any]]:
    """The dead letters ``match`` accepts, read from the topic's start until ``want`` of them.

    The session's broker holds every earlier test's dead letters (the full suite writes
    hundreds), so stopping after the first ``want`` records read found other tests' letters.
    """
    consumer = AIOKafkaConsumer(
        get_topic(DEADLETTER, s).full_name,
        bootstrap_servers=s.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=unique("dl-reader"),
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and len(out) < want:
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                out += [d for d in (wire.decode(r.value) for r in recs) if match(d)]
    finally:
        await consumer.stop()
    return out


async def test_each_alert_once_per_channel_with_replayed_duplicates(
    settings: Settings, receiver: Receiver, smtp: SMTPServer
) -> None:
    team = unique("team")
    alerts = [make_alert(team, i) for i in range(12)]
    # The worker re-publishes on replay: the same alert_id twice must still go out once.
    await produce(settings, alerts + alerts[:5])
    s = tuned(settings, smtp)
    async with running(s, routing_doc(team, receiver, smtp)):
        await wait_for(
            lambda: (
                len(receiver.at(f"/{team}/hook")) >= 12
                and len(receiver.at(f"/{team}/slack")) >= 12
                and len(smtp.inbox.messages) >= 12
            ),
            30,
            "12 deliveries per channel",
        )
        await asyncio.sleep(0.5)  # anything extra would show up now
    ids = sorted(a["alert_id"] for a in alerts)
    assert sorted(receiver.keys(f"/{team}/hook")) == ids  # raw receipts: no duplicates at all
    assert sorted(receiver.keys(f"/{team}/slack")) == ids
    assert sorted(smtp.inbox.by_key()) == ids
    slack = receiver.at(f"/{team}/slack")[0].body
    assert set(slack) == {"text", "blocks"} and slack["blocks"][0]["type"] == "header"
    hook = receiver.at(f"/{team}/hook")[0]
    assert (
        hook.body["type"] == "alert"
        and hook.body["alert"]["alert_id"] == hook.headers["x-kneeload-alert-id"]
    )
    mail = smtp.inbox.messages[0]
    assert mail["To"] == f"coach@{team}.example" and "estimates" in mail.get_payload()
    rows = ledger_rows(s, team)
    assert len(rows) == 36 and {r[2] for r in rows} == {"sent"} and {r[3] for r in rows} == {1}


async def test_retries_with_exponential_backoff(settings: Settings, receiver: Receiver) -> None:
    team = unique("team")
    receiver.fail[f"/{team}/hook"] = 3
    await produce(settings, [make_alert(team, 0)])
    s = tuned(settings, notify_backoff_base_s=0.25)
    doc = routing_doc(team, receiver)
    async with running(s, doc):
        await wait_for(
            lambda: len(receiver.at(f"/{team}/hook")) == 1, 20, "delivery after 3 failures"
        )
    tries = receiver.at(f"/{team}/hook", status=None)
    assert [r.status for r in tries] == [500, 500, 500, 200]
    gaps = [b.at - a.at for a, b in itertools.pairwise(tries)]
    # base 0.25 s doubling: ≥0.25, ≥0.5, ≥1.0 (the poll interval only adds)
    for gap, want in zip(gaps, [0.25, 0.5, 1.0], strict=True):
        assert want <= gap < want + 0.6, gaps
    assert {r.headers["x-kneeload-alert-id"] for r in tries} == {make_alert(team, 0)["alert_id"]}
    assert len(receiver.at(f"/{team}/slack")) == 1  # the other channel was unaffected
    [(_, _, status, attempts)] = [r for r in ledger_rows(s, team) if r[1].endswith("-hook")]
    assert (status, attempts) == ("sent", 4)


async def test_dead_letter_after_max_attempts(settings: Settings, receiver: Receiver) -> None:
    team = unique("team")
    receiver.always_fail.add(f"/{team}/hook")
    alert = make_alert(team, 0)
    await produce(settings, [alert])
    s = tuned(settings, notify_backoff_base_s=0.05, notify_max_attempts=3)
    async with running(s, routing_doc(team, receiver)) as n:
        await wait_for(lambda: n.stats.dead == 1, 20, "dead-lettering")
    assert len(receiver.at(f"/{team}/hook", status=None)) == 3
    hook_rows = [r for r in ledger_rows(s, team) if r[1].endswith("-hook")]
    assert hook_rows == [(alert["alert_id"], f"{team}-hook", "dead", 3)]
    key = f"{team}-hook:{alert['alert_id']}"
    letters = await dead_letters(s, 1, lambda d: d["key"] == key)
    assert len(letters) == 1
    dl = letters[0]
    assert dl["source"] == "notify" and dl["reason_code"] == "delivery_failed"
    assert orjson.loads(dl["payload"]) == alert and "HTTP 500" in dl["detail"]


async def test_frames_and_json_from_before_the_upgrade_are_both_delivered(
    settings: Settings, receiver: Receiver
) -> None:
    """The alerts topic holds JSON written before the internal wire format and frames after:
    each alert goes out once either way; a damaged frame is dead-lettered with its bytes."""
    team = unique("team")
    alerts = [make_alert(team, i) for i in range(4)]
    await produce(settings, alerts[:2], encode=orjson.dumps)
    await produce(settings, alerts[2:], raw=[b"\xc1\x01\xff" + team.encode()])
    s = tuned(settings)
    async with running(s, routing_doc(team, receiver)) as n:
        await wait_for(lambda: len(receiver.at(f"/{team}/hook")) >= 4, 20, "4 deliveries")
        await wait_for(lambda: n.stats.invalid >= 1, 20, "the damaged frame rejected")
    assert sorted(receiver.keys(f"/{team}/hook")) == sorted(a["alert_id"] for a in alerts)

    def ours(d: dict[str, Any]) -> bool:
        return (
            d["source"] == "notify"
            and d["payload_encoding"] == "base64"
            and base64.b64decode(d["payload"]) == b"\xc1\x01\xff" + team.encode()
        )

    [letter] = await dead_letters(s, 1, ours)
    assert letter["reason_code"] == "invalid_json" and "frame" in letter["detail"]


async def test_invalid_alert_is_dead_lettered(settings: Settings, receiver: Receiver) -> None:
    team = unique("team")
    bad = make_alert(team, 0) | {"kind": "made_up"}
    await produce(settings, [bad], raw=[b"{not json " + team.encode()])
    s = tuned(settings)
    async with running(s, routing_doc(team, receiver)) as n:
        await wait_for(lambda: n.stats.invalid >= 2, 20, "invalid alerts rejected")
    assert receiver.at(f"/{team}/hook", status=None) == []

    def ours(d: dict[str, Any]) -> bool:  # a frame's bytes are kept base64
        raw = base64.b64decode(d["payload"]) if d["payload_encoding"] == "base64" else b""
        return d["source"] == "notify" and (team in d["payload"] or team.encode() in raw)

    reasons = Counter(d["reason_code"] for d in await dead_letters(s, 2, ours))
    assert reasons["schema_invalid"] >= 1 and reasons["invalid_json"] >= 1


async def test_burst_folds_into_one_digest(
    settings: Settings, receiver: Receiver, smtp: SMTPServer
) -> None:
    team = unique("team")
    alerts = [make_alert(team, i, severity="critical" if i == 3 else "warning") for i in range(7)]
    s = tuned(settings, smtp, notify_rate_limit_count=1, notify_rate_limit_window_s=1.5)
    async with running(s, routing_doc(team, receiver, smtp)):
        await produce(settings, alerts[:1])
        await wait_for(lambda: len(receiver.at(f"/{team}/hook")) == 1, 20, "first alert")
        await produce(settings, alerts[1:])  # the burst, inside the window
        await wait_for(lambda: len(receiver.at(f"/{team}/hook")) == 2, 20, "the digest")
        await asyncio.sleep(2.0)  # a further window: nothing more may arrive
    for path in (f"/{team}/hook", f"/{team}/slack"):
        single, digest = receiver.at(path)
        assert single.headers["x-kneeload-alert-id"] == alerts[0]["alert_id"]
        assert digest.headers["x-kneeload-alert-id"].startswith("digest-")
        assert sorted(digest.headers["x-kneeload-alert-ids"].split(",")) == sorted(
            a["alert_id"] for a in alerts[1:]
        )
        assert digest.at - single.at >= 1.4  # held until the window freed
    hook_digest = receiver.at(f"/{team}/hook")[1].body
    assert hook_digest["type"] == "digest" and hook_digest["count"] == 6
    assert "6 alerts (worst: critical)" in receiver.at(f"/{team}/slack")[1].body["text"]
    assert len(smtp.inbox.messages) == 2
    assert sorted(smtp.inbox.alert_ids()) == sorted(a["alert_id"] for a in alerts)


async def test_exactly_once_across_a_killed_notifier(
    settings: Settings, receiver: Receiver, smtp: SMTPServer
) -> None:
    """`kneeload notify` SIGKILLed mid-stream and restarted: every alert reaches every
    channel; deduplicated by the idempotency key, exactly once; raw duplicates are only
    possible for messages in flight at the kill, and carry the same key."""
    team = unique("team")
    n = 40
    alerts = [make_alert(team, i) for i in range(n)]
    receiver.delay_s = 0.03
    s = tuned(settings, smtp)
    env = os.environ | {
        "KNEELOAD_NOTIFY_ROUTES": orjson.dumps(routing_doc(team, receiver, smtp)).decode(),
        "KNEELOAD_NOTIFY_GROUP_ID": s.notify_group_id,
        "KNEELOAD_NOTIFY_POLL_S": "0.05",
        "KNEELOAD_NOTIFY_LEASE_S": "1.5",
        "KNEELOAD_NOTIFY_TIMEOUT_S": "1",
        "KNEELOAD_NOTIFY_SMTP_PORT": str(smtp.port),
        "KNEELOAD_NOTIFY_RATE_LIMIT_COUNT": "1000",
        "KNEELOAD_LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "kneeload", "notify", "--no-ack-server"]
    await produce(settings, alerts[: n // 2])
    proc = subprocess.Popen(cmd, env=env)
    try:
        await wait_for(
            lambda: len(receiver.at(f"/{team}/hook")) >= 6 or proc.poll() is not None,
            60,
            "first deliveries",
        )
        assert proc.poll() is None, "kneeload notify exited"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = {p: len(receiver.at(f"/{team}/{p}")) for p in ("hook", "slack")}
        assert killed_at["hook"] < n, "killed too late to be mid-stream"
        await produce(settings, alerts[n // 2 :])
        proc = subprocess.Popen(cmd, env=env)
        await wait_for(
            lambda: (
                all(len(set(receiver.alert_ids(f"/{team}/{p}"))) == n for p in ("hook", "slack"))
                and len(set(smtp.inbox.alert_ids())) == n
            ),
            90,
            "every alert on every channel after the restart",
        )
        await asyncio.sleep(1.0)
    except AssertionError as exc:
        status = Counter((r[1].rsplit("-", 1)[1], r[2]) for r in ledger_rows(s, team))
        got = {p: len(set(receiver.alert_ids(f"/{team}/{p}"))) for p in ("hook", "slack")}
        raise AssertionError(
            f"{exc}; ledger {dict(status)}; received {got}, mail {len(smtp.inbox.alert_ids())}"
        ) from exc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    ids = sorted(a["alert_id"] for a in alerts)
    for p in ("hook", "slack"):
        assert sorted(receiver.alert_ids(f"/{team}/{p}")) == ids  # once, by idempotency key
        raw = Counter(receiver.keys(f"/{team}/{p}"))
        # Raw duplicates only for the one message in flight per channel at the kill.
        assert sum(raw.values()) - len(raw) <= 1, raw.most_common(3)
    assert sorted(smtp.inbox.alert_ids()) == ids
    rows = ledger_rows(s, team)
    assert len(rows) == 3 * n and {r[2] for r in rows} == {"sent"}
