"""Plain PostgreSQL partition upkeep beyond creating and retention: dropping empty partitions.

Before a8ab1d1 the sink created every daily partition between the earliest and the latest
event time of one poll, so a poll holding an old FIT file beside today's samples left years of
empty tables behind (5,286 of ``watch_sample_batches`` in one CI run; every query on the table
then spent seconds planning). :func:`drop_empty_partitions` removes the empty ones outside the
window the stack keeps ready (yesterday to ``storage_premake_days`` ahead), in short
transactions, so a database hit by that bug recovers without downtime
(``kneeload storage partitions --drop-empty``).

Each chunk locks the parent table ``ACCESS EXCLUSIVE`` (what dropping a partition takes anyway;
locking it first means no insert is half-way into a partition being checked), checks each
candidate holds no row and drops it, then commits: readers wait at most one chunk. A sink that
later writes to a dropped day's range while it still believes the partition exists sends those
rows to the table's default partition: kept, found by every query, and moved into place when
the partition is created again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["EmptyPartition", "drop_empty_partitions"]


@dataclass(frozen=True, slots=True)
class EmptyPartition:
    """An empty partition outside the kept window, dropped (or only found, on a dry run)."""

    table: str
    partition: str
    range_start: datetime
    range_end: datetime


def drop_empty_partitions(
    conn: Any,
    table: str,
    keep_from: datetime,
    keep_to: datetime,
    *,
    dry_run: bool = False,
    chunk: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> list[EmptyPartition]:
    """Drop the empty partitions of plain-path ``table`` whose range lies wholly outside
    ``[keep_from, keep_to)``; the default partition and non-empty ones are never touched.

    ``conn`` is a psycopg connection in autocommit mode; each ``chunk`` of candidates is one
    transaction. ``progress(done, total)`` is called after each chunk. Returns the empty
    partitions found (dropped unless ``dry_run``)."""
    from psycopg import sql

    schema, name = table.split(".", 1)
    parent = sql.Identifier(schema, name)
    rows = conn.execute(
        "SELECT partition_name, range_start, range_end FROM kneeload.partitions(%s) "
        "WHERE NOT is_default AND (range_end <= %s OR range_start >= %s) ORDER BY range_start",
        (table, keep_from, keep_to),
    ).fetchall()
    out: list[EmptyPartition] = []
    for i in range(0, len(rows), chunk):
        with conn.transaction():
            if not dry_run:
                conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(parent))
            for part, lo, hi in rows[i : i + chunk]:
                ident = sql.Identifier(schema, part)
                q = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(ident)
                if conn.execute(q).fetchone()[0]:
                    continue
                if not dry_run:
                    conn.execute(sql.SQL("DROP TABLE {}").format(ident))
                out.append(EmptyPartition(table, part, lo, hi))
        if progress is not None:
            progress(min(i + chunk, len(rows)), len(rows))
    return out
