"""Table-by-table comparison of the undisturbed run's database with the faulted run's.

Every table of the schemas ``kneeload`` and ``notify`` is compared unless listed in
:data:`SKIPPED` with the reason; new tables are picked up automatically (keyed by their
primary key). Columns in :data:`IGNORED_COLUMNS` are bookkeeping of *when* or *how often*
something was written (received_at, revision counters, delivery attempts), which differ
between any two runs; everything else must be equal, bit for bit.

Per table: ``lost`` = keys of the undisturbed run missing from the faulted one;
``extra`` = keys only the faulted run has (a duplicate under another id, a session split
in two, a spurious alert) — counted as duplicated; ``different`` = same key, some compared
column differs (the first examples are kept). Tables without a stable key
(:data:`MULTISET_TABLES`: ids made of arrival times or random) are compared as multisets
of their content. :data:`NATURAL_KEYS` adds a check that no natural record (a sample of a
device at a time, a pain report) is stored twice under different ids.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg

__all__ = ["IGNORED_COLUMNS", "SKIPPED", "TableDiff", "compare_databases", "compare_notifications"]

#: tables not compared, and why
SKIPPED: dict[str, str] = {
    "kneeload.schema_migrations": "migration bookkeeping (applied_at)",
    "kneeload.sink_offsets": "Kafka offsets of each run's own topics",
    "kneeload.partitioned_tables": "partition bookkeeping",
    "kneeload.unit_status": "status snapshots on a processing-time timer (online/offline, "
    "minutes in use) — their number and times depend on wall-clock pacing",
    "kneeload.daily_load_revisions": "how many provisional revisions were published depends "
    "on the processing-time publish interval; every day's final value and ACWR are compared "
    "in kneeload.daily_load",
    "notify.sends": "rate-limit bookkeeping (send times); deliveries are compared",
}

#: columns that say when or how often, not what
IGNORED_COLUMNS = frozenset(
    {
        "received_at",
        "updated_at",
        "created_at",
        "applied_at",
        "sent_at",
        "revision",
        "attempts",
        "lease_until",
        "next_attempt_at",
        "last_error",
        "source_topic",
        "source_partition",
        "source_offset",
        "assigned_since",
        "acknowledged_at",
        # the gateway's batch id carries its arrival time (device-ms-counter): a sample is
        # compared by its own record id and time, the batches as a multiset below
        "batch_id",
        # whether a final day was later corrected depends on *when* the processing-time idle
        # timer finalised it (an athlete silent for KNEELOAD_WORKER_IDLE_CLOSE_S while the
        # faulted run stalls gets its day finalised early, then corrected): history, like
        # the revision counter; the day's load and every ACWR value are compared
        "corrected",
    }
)

#: tables whose ids are not deterministic: compared as multisets of these columns
MULTISET_TABLES: dict[str, tuple[str, ...]] = {
    # batch ids carry the gateway's arrival time; the samples are compared one by one
    "kneeload.watch_batches": (
        "athlete_id",
        "device_id",
        "team_id",
        "session_id",
        "source",
        "sub_sport",
        "samples",
    ),
    # topic names carry each run's prefix; details may name the run's batch ids
    "kneeload.dead_letters": ("source", "reason_code", "key", "payload"),
}

#: natural identity of raw records: stored twice under two ids would be a duplicate
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    # (device_id is the batch's since 0022; the chaos workload has one watch per athlete)
    "kneeload.watch_samples": ("athlete_id", "time"),
    "kneeload.treadmill_telemetry": ("unit_id", "kind", "time"),
    "kneeload.bws_setpoints": ("unit_id", "time"),
    "kneeload.pain_reports": ("report_id",),
    "kneeload.sessions": ("athlete_id", "start_time"),
    "kneeload.alerts": ("dedup_key", "event_time"),
}

EXAMPLES = 5


@dataclass
class TableDiff:
    table: str
    rows_a: int = 0
    rows_b: int = 0
    lost: int = 0
    extra: int = 0
    different: int = 0
    natural_duplicates: int = 0
    examples: list[str] = field(default_factory=list)
    compared_columns: list[str] = field(default_factory=list)

    @property
    def duplicated(self) -> int:
        return self.extra + self.natural_duplicates

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rows_undisturbed": self.rows_a,
            "rows_faults": self.rows_b,
            "lost": self.lost,
            "extra": self.extra,
            "natural_duplicates": self.natural_duplicates,
            "different": self.different,
            "examples": self.examples,
            "compared_columns": self.compared_columns,
        }


def _norm(v: Any) -> Any:
    """Comparable, JSON-able form of a value (exact: floats are kept as floats)."""
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def _tables(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        """SELECT n.nspname || '.' || c.relname
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname IN ('kneeload', 'notify') AND c.relkind IN ('r', 'p')
              AND NOT c.relispartition
            ORDER BY 1"""
    ).fetchall()
    return [r[0] for r in rows]


def _columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    schema, name = table.split(".", 1)
    rows = conn.execute(
        """SELECT column_name FROM information_schema.columns
            WHERE table_schema = %s AND table_name = %s AND is_generated = 'NEVER'
            ORDER BY ordinal_position""",
        (schema, name),
    ).fetchall()
    return [r[0] for r in rows]


def _primary_key(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        """SELECT a.attname FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = %s::regclass AND i.indisprimary
            ORDER BY array_position(i.indkey, a.attnum)""",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def _q(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def _fetch(conn: psycopg.Connection[Any], table: str, cols: list[str]) -> list[tuple[Any, ...]]:
    sql = f"SELECT {', '.join(_q(c) for c in cols)} FROM {table}"  # names from the catalog
    return [tuple(_norm(v) for v in r) for r in conn.execute(sql).fetchall()]


def _natural_dups(conn: psycopg.Connection[Any], table: str, cols: tuple[str, ...]) -> int:
    keys = ", ".join(_q(c) for c in cols)
    sql = (
        f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {table} GROUP BY {keys}) g"
    )
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _compare_table(a: psycopg.Connection[Any], b: psycopg.Connection[Any], table: str) -> TableDiff:
    d = TableDiff(table)
    cols_a, cols_b = _columns(a, table), _columns(b, table)
    cols = [c for c in cols_a if c in cols_b and c not in IGNORED_COLUMNS]
    if table in MULTISET_TABLES:
        cols = [c for c in MULTISET_TABLES[table] if c in cols]
        ca, cb = Counter(_fetch(a, table, cols)), Counter(_fetch(b, table, cols))
        d.rows_a, d.rows_b = sum(ca.values()), sum(cb.values())
        d.compared_columns = cols
        gone, more = ca - cb, cb - ca
        d.lost, d.extra = sum(gone.values()), sum(more.values())
        d.examples += [f"lost {dict(zip(cols, r, strict=True))}" for r in list(gone)[:EXAMPLES]]
        d.examples += [f"extra {dict(zip(cols, r, strict=True))}" for r in list(more)[:EXAMPLES]]
        return d
    key = _primary_key(a, table) or cols
    vals = [c for c in cols if c not in key]
    d.compared_columns = cols
    ka = {r[: len(key)]: r[len(key) :] for r in _fetch(a, table, key + vals)}
    kb = {r[: len(key)]: r[len(key) :] for r in _fetch(b, table, key + vals)}
    d.rows_a, d.rows_b = len(ka), len(kb)
    lost = [k for k in ka if k not in kb]
    extra = [k for k in kb if k not in ka]
    d.lost, d.extra = len(lost), len(extra)
    d.examples += [
        f"lost {dict(zip(key, k, strict=True))}" for k in sorted(lost, key=repr)[:EXAMPLES]
    ]
    d.examples += [
        f"extra {dict(zip(key, k, strict=True))}" for k in sorted(extra, key=repr)[:EXAMPLES]
    ]
    for k, va in sorted(ka.items(), key=lambda kv: repr(kv[0])):
        vb = kb.get(k)
        if vb is None or vb == va:
            continue
        d.different += 1
        if d.different <= EXAMPLES:
            diffs = {c: (x, y) for c, x, y in zip(vals, va, vb, strict=True) if x != y}
            d.examples.append(f"different {dict(zip(key, k, strict=True))}: {diffs}")
    if table in NATURAL_KEYS:
        d.natural_duplicates = max(
            0,
            _natural_dups(b, table, NATURAL_KEYS[table])
            - _natural_dups(a, table, NATURAL_KEYS[table]),
        )
        if d.natural_duplicates:
            d.examples.append(f"{d.natural_duplicates} natural record(s) stored twice")
    return d


def compare_databases(url_a: str, url_b: str) -> tuple[list[TableDiff], dict[str, str]]:
    """Compare every table (see the module docstring); returns the diffs and the skipped."""
    with psycopg.connect(url_a) as a, psycopg.connect(url_b) as b:
        tables = sorted(set(_tables(a)) | set(_tables(b)))
        skipped = {t: SKIPPED[t] for t in tables if t in SKIPPED}
        out = []
        for t in tables:
            if t in SKIPPED:
                continue
            if t not in _tables(a) or t not in _tables(b):
                out.append(TableDiff(t, examples=["table missing from one run"], lost=1))
                continue
            out.append(_compare_table(a, b, t))
    return out, skipped


def compare_notifications(
    inbox_a: list[dict[str, Any]], inbox_b: list[dict[str, Any]]
) -> dict[str, Any]:
    """Webhook deliveries of both runs, by (channel path, alert id): sent twice, never."""

    def count(inbox: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
        c: Counter[tuple[str, str]] = Counter()
        for m in inbox:
            p = m.get("payload")
            if not isinstance(p, dict):
                continue
            ids = (
                [p["alert_id"]]
                if p.get("type") == "alert"
                else [a.get("alert_id") for a in p.get("alerts") or [] if isinstance(a, dict)]
            )
            for i in ids:
                c[(str(m.get("path")), str(i))] += 1
        return c

    ca, cb = count(inbox_a), count(inbox_b)
    never = sorted(k for k in ca if k not in cb)
    unexpected = sorted(k for k in cb if k not in ca)
    twice_b = sorted(k for k, n in cb.items() if n > 1)
    twice_a = sorted(k for k, n in ca.items() if n > 1)
    return {
        "received_undisturbed": sum(ca.values()),
        "received_faults": sum(cb.values()),
        "distinct_undisturbed": len(ca),
        "distinct_faults": len(cb),
        "sent_twice": sum(cb[k] - 1 for k in twice_b),
        "sent_twice_undisturbed": sum(ca[k] - 1 for k in twice_a),
        "never_sent": len(never),
        "unexpected": len(unexpected),
        "examples": [f"twice {k}" for k in twice_b[:EXAMPLES]]
        + [f"never {k}" for k in never[:EXAMPLES]]
        + [f"unexpected {k}" for k in unexpected[:EXAMPLES]],
    }
