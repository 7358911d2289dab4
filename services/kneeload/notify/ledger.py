"""The delivery ledger: one row per (alert_id, channel), in the ``notify`` schema.

The ledger is the notifier's source of truth (a transactional outbox):

* The consumer inserts a ``pending`` row per (alert, channel) — ``ON CONFLICT DO NOTHING``,
  so a replayed alert is a no-op — commits the database transaction, and only then
  commits the Kafka offsets. A crash before the database commit replays the alert; a
  crash after it finds the rows already there.
* The delivery loop *decides* what to send by writing it first: it stamps
  ``message_id`` (the alert id for a single message, ``digest-<hash>`` for a digest),
  increments ``attempts`` and takes a lease, commits, sends, and then marks the rows
  ``sent`` (or schedules the retry / dead-letters). A retry resends the same
  ``message_id`` with the same members, so the idempotency key never changes.
* The only window where a message can reach a receiver twice is a crash after the
  receiver accepted it and before ``sent`` is committed; the resend carries the same
  ``X-Kneeload-Alert-Id`` (email: the same ``Message-ID``) so the receiver can drop it.

``notify.sends`` records each message actually sent (single or digest), which is what
the per-recipient rate limit counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

__all__ = ["DDL", "Delivery", "ensure_schema"]

DDL = """
CREATE SCHEMA IF NOT EXISTS notify;
CREATE TABLE IF NOT EXISTS notify.deliveries (
    alert_id        text        NOT NULL,
    channel         text        NOT NULL,
    alert           jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'sent', 'dead')),
    message_id      text,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    last_error      text,
    source_topic    text,
    source_partition integer,
    source_offset   bigint,
    PRIMARY KEY (alert_id, channel)
);
CREATE INDEX IF NOT EXISTS deliveries_due
    ON notify.deliveries (channel, next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_message
    ON notify.deliveries (channel, message_id) WHERE message_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS notify.sends (
    channel     text        NOT NULL,
    message_id  text        NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    alert_count integer     NOT NULL,
    PRIMARY KEY (channel, message_id)
);
CREATE INDEX IF NOT EXISTS sends_recent ON notify.sends (channel, sent_at);
"""


@dataclass(frozen=True, slots=True)
class Delivery:
    alert_id: str
    channel: str
    alert: dict[str, Any]
    message_id: str | None
    attempts: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Delivery:
        return cls(
            alert_id=row["alert_id"],
            channel=row["channel"],
            alert=row["alert"],
            message_id=row["message_id"],
            attempts=row["attempts"],
            created_at=row["created_at"],
        )


_LOCK_KEY = 0x6B6E6565  # 'knee': serialises concurrent CREATE ... IF NOT EXISTS


def ensure_schema(conninfo: str) -> None:
    """Create the ledger (idempotent, safe against concurrent notifiers)."""
    with psycopg.connect(conninfo, autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(DDL)
        conn.commit()


Row = tuple[str, str, dict[str, Any], str, int, int, str | None, datetime | None]


async def record(conn: psycopg.AsyncConnection[Any], rows: Iterable[Row]) -> int:
    """Insert pending deliveries (alert_id, channel, alert, topic, partition, offset,
    message_id, not_before): a row held for a daily digest comes with the digest's message
    id and its send time; an ordinary one with None, None (decided and due when delivered).

    Returns how many were new.

    Runs in the caller's transaction; the caller commits before committing offsets.
    """
    rows = list(rows)
    if not rows:
        return 0
    async with conn.cursor() as cur:
        await cur.executemany(
            """INSERT INTO notify.deliveries
                   (alert_id, channel, alert, source_topic, source_partition, source_offset,
                    message_id, next_attempt_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()))
               ON CONFLICT (alert_id, channel) DO NOTHING""",
            [(a, c, Jsonb(alert), t, p, o, m, nb) for a, c, alert, t, p, o, m, nb in rows],
            returning=False,
        )
        return max(cur.rowcount, 0)


async def due_channels(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute(
        """SELECT DISTINCT channel FROM notify.deliveries
           WHERE status = 'pending' AND next_attempt_at <= now()
             AND (lease_until IS NULL OR lease_until < now())"""
    )
    return [r[0] for r in await cur.fetchall()]


async def lock_due(conn: psycopg.AsyncConnection[Any], channel: str) -> list[Delivery]:
    """Due pending rows of ``channel``, locked for this transaction (oldest first)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT alert_id, channel, alert, message_id, attempts, created_at
               FROM notify.deliveries
               WHERE channel = %s AND status = 'pending' AND next_attempt_at <= now()
                 AND (lease_until IS NULL OR lease_until < now())
               ORDER BY created_at, alert_id
               FOR UPDATE SKIP LOCKED""",
            (channel,),
        )
        return [Delivery.from_row(r) for r in await cur.fetchall()]


async def sent_in_window(
    conn: psycopg.AsyncConnection[Any], channel: str, window_s: float
) -> tuple[int, datetime | None]:
    """Messages sent to ``channel`` within the window, and when the oldest of them leaves it."""
    cur = await conn.execute(
        """SELECT count(*), min(sent_at) + make_interval(secs => %s)
           FROM notify.sends WHERE channel = %s AND sent_at > now() - make_interval(secs => %s)""",
        (window_s, channel, window_s),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), row[1]


async def claim(
    conn: psycopg.AsyncConnection[Any],
    channel: str,
    message_id: str,
    alert_ids: Sequence[str],
    lease_s: float,
) -> None:
    """Decide: stamp the message id, count the attempt, take the lease (caller commits)."""
    await conn.execute(
        """UPDATE notify.deliveries
           SET message_id = %s, attempts = attempts + 1,
               lease_until = now() + make_interval(secs => %s)
           WHERE channel = %s AND alert_id = ANY(%s)""",
        (message_id, lease_s, channel, list(alert_ids)),
    )


async def defer(
    conn: psycopg.AsyncConnection[Any], channel: str, alert_ids: Sequence[str], until: datetime
) -> None:
    """Hold undecided rows until the recipient's rate-limit window frees (no attempt spent)."""
    await conn.execute(
        """UPDATE notify.deliveries SET next_attempt_at = %s
           WHERE channel = %s AND alert_id = ANY(%s)""",
        (until, channel, list(alert_ids)),
    )


async def postpone(
    conn: psycopg.AsyncConnection[Any], channel: str, alert_ids: Sequence[str], delay_s: float
) -> None:
    """Claimed but not sent (the recipient asked to wait, ``Retry-After``): give the attempt
    back, keep the message id, come back after ``delay_s``."""
    async with conn.transaction():
        await conn.execute(
            """UPDATE notify.deliveries
               SET attempts = greatest(attempts - 1, 0), lease_until = NULL,
                   next_attempt_at = now() + make_interval(secs => %s)
               WHERE channel = %s AND alert_id = ANY(%s)""",
            (delay_s, channel, list(alert_ids)),
        )


async def mark_sent(
    conn: psycopg.AsyncConnection[Any], channel: str, message_id: str, alert_ids: Sequence[str]
) -> None:
    async with conn.transaction():
        await conn.execute(
            """UPDATE notify.deliveries
               SET status = 'sent', sent_at = now(), lease_until = NULL, last_error = NULL
               WHERE channel = %s AND alert_id = ANY(%s)""",
            (channel, list(alert_ids)),
        )
        await conn.execute(
            """INSERT INTO notify.sends (channel, message_id, alert_count) VALUES (%s, %s, %s)
               ON CONFLICT DO NOTHING""",
            (channel, message_id, len(alert_ids)),
        )


async def mark_retry(
    conn: psycopg.AsyncConnection[Any],
    channel: str,
    alert_ids: Sequence[str],
    delay_s: float,
    error: str,
) -> None:
    async with conn.transaction():
        await conn.execute(
            """UPDATE notify.deliveries
               SET next_attempt_at = now() + make_interval(secs => %s), lease_until = NULL,
                   last_error = %s
               WHERE channel = %s AND alert_id = ANY(%s)""",
            (delay_s, error[:2000], channel, list(alert_ids)),
        )


async def mark_dead(
    conn: psycopg.AsyncConnection[Any], channel: str, alert_ids: Sequence[str], error: str
) -> None:
    async with conn.transaction():
        await conn.execute(
            """UPDATE notify.deliveries
               SET status = 'dead', lease_until = NULL, last_error = %s
               WHERE channel = %s AND alert_id = ANY(%s)""",
            (error[:2000], channel, list(alert_ids)),
        )
