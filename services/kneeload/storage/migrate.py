"""Versioned, forward-only migrations (``kneeload migrate``).

Migrations are the ``NNNN_name.sql`` files next to this module, applied in order, each in its
own transaction together with its row in ``kneeload.schema_migrations``; a second run finds
nothing to do. A session advisory lock serialises concurrent runs.

The files are plain SQL plus a few directives the runner expands for the *flavour* of the
database, chosen once (at the first migration) by detecting the timescaledb extension:

``/*@partition_by COLUMN*/``
    plain: ``PARTITION BY RANGE (COLUMN)``; timescale: nothing (a hypertable is a plain table).
``-- @time_partitioned TABLE COLUMN day|week [retention=N days] [segment_by=COL] [compress]``
    plain: a default partition (nothing is ever lost), a BRIN index on the time column and the
    partitions from yesterday to ``storage_premake_days`` ahead; timescale: ``create_hypertable``,
    columnstore (compression) policy when ``compress`` is given, ``add_retention_policy``.
    Both register the table in ``kneeload.partitioned_tables`` (granularity and retention).
``-- @if timescale`` / ``-- @else`` / ``-- @end``
    flavour-specific blocks (continuous aggregates vs. plain views of the same name).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: `kneeload --help` does not pay for psycopg/pydantic
    import psycopg

    from kneeload.settings import Settings

__all__ = [
    "Flavour",
    "MigrateReport",
    "Migration",
    "detect_flavour",
    "load_migrations",
    "migrate",
    "render",
]

_LOCK_KEY = 0x6B6C6D67  # 'klmg'
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PARTITION_BY = re.compile(r"/\*@partition_by\s+(\w+)\s*\*/")
_TIME_PARTITIONED = re.compile(r"^--\s*@time_partitioned\s+(.+)$", re.MULTILINE)
_IF_BLOCK = re.compile(
    r"^--\s*@if\s+(\w+)\s*\n(.*?)^--\s*@else\s*\n(.*?)^--\s*@end\s*$", re.MULTILINE | re.DOTALL
)

BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS kneeload;
CREATE TABLE IF NOT EXISTS kneeload.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    flavour    text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True, slots=True)
class Flavour:
    """``plain`` PostgreSQL or ``timescale`` (with the extension's version, which picks the API)."""

    name: str
    timescale_version: str | None = None
    premake_days: int = 7

    @property
    def timescale(self) -> bool:
        return self.name == "timescale"

    def ts_at_least(self, major: int, minor: int) -> bool:
        if not self.timescale_version:
            return True  # unknown: assume current
        parts = re.findall(r"\d+", self.timescale_version)
        got = (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0) if parts else (0, 0)
        return got >= (major, minor)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


@dataclass(slots=True)
class MigrateReport:
    flavour: str
    applied: list[str] = field(default_factory=list)
    already: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "flavour": self.flavour,
            "applied": self.applied,
            "already_applied": self.already,
            "warnings": self.warnings,
        }


def load_migrations() -> list[Migration]:
    """Every migration file, in version order."""
    out = []
    for entry in resources.files("kneeload.storage.migrations").iterdir():
        m = _FILE.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return out


_RETENTION = re.compile(r"\bretention=(\d+ \w+)")
_SEGMENT_BY = re.compile(r"\bsegment_by=(\w+)")
_COMPRESS = re.compile(r"\bcompress\b")


def _time_partitioned(spec: str, flavour: Flavour) -> str:
    table, column, granularity = spec.split()[:3]
    if granularity not in ("day", "week"):
        raise ValueError(f"@time_partitioned {table}: granularity must be day or week")
    m_ret, m_seg = _RETENTION.search(spec), _SEGMENT_BY.search(spec)
    retention = m_ret.group(1) if m_ret else None
    segment = m_seg.group(1) if m_seg else None
    retention_sql = f"INTERVAL '{retention}'" if retention else "NULL"
    base = table.split(".", 1)[1]
    register = (
        f"INSERT INTO kneeload.partitioned_tables (table_name, column_name, granularity, "
        "retention, flavour) "
        f"VALUES ('{table}', '{column}', '{granularity}', {retention_sql}, '{flavour.name}') "
        f"ON CONFLICT (table_name) DO NOTHING;"
    )
    step = "1 day" if granularity == "day" else "7 days"
    if not flavour.timescale:
        return "\n".join(
            [
                register,
                f"CREATE TABLE IF NOT EXISTS kneeload.{base}_default PARTITION OF {table} DEFAULT;",
                f"CREATE INDEX IF NOT EXISTS {base}_{column}_brin ON {table} USING brin "
                f"({column});",
                f"SELECT kneeload.ensure_partitions('{table}', now() - INTERVAL '1 day', "
                f"now() + INTERVAL '{flavour.premake_days} days');",
            ]
        )
    lines = []
    if flavour.ts_at_least(2, 13):
        lines.append(
            f"SELECT create_hypertable('{table}', by_range('{column}', INTERVAL '{step}'), "
            f"if_not_exists => true);"
        )
    else:
        lines.append(
            f"SELECT create_hypertable('{table}', '{column}', chunk_time_interval => INTERVAL "
            f"'{step}', "
            f"if_not_exists => true);"
        )
    if _COMPRESS.search(spec):
        after = "7 days" if granularity == "day" else "28 days"
        if flavour.ts_at_least(2, 18):
            seg = f", timescaledb.segmentby = '{segment}'" if segment else ""
            lines.append(
                f"ALTER TABLE {table} SET (timescaledb.enable_columnstore = true{seg}, "
                f"timescaledb.orderby = '{column} DESC');"
            )
            lines.append(
                f"CALL add_columnstore_policy('{table}', after => INTERVAL '{after}', "
                "if_not_exists => true);"
            )
        else:
            seg = f", timescaledb.compress_segmentby = '{segment}'" if segment else ""
            lines.append(
                f"ALTER TABLE {table} SET (timescaledb.compress{seg}, "
                f"timescaledb.compress_orderby = '{column} DESC');"
            )
            lines.append(
                f"SELECT add_compression_policy('{table}', compress_after => INTERVAL '{after}', "
                f"if_not_exists => true);"
            )
    if retention:
        lines.append(
            f"SELECT add_retention_policy('{table}', drop_after => INTERVAL '{retention}', "
            f"if_not_exists => true);"
        )
    lines.append(register)
    return "\n".join(lines)


def render(sql: str, flavour: Flavour) -> str:
    """Expand the directives of one migration for ``flavour``."""
    sql = _IF_BLOCK.sub(
        lambda m: m.group(2) if (m.group(1) == "timescale") == flavour.timescale else m.group(3),
        sql,
    )
    sql = _PARTITION_BY.sub(
        lambda m: "" if flavour.timescale else f"PARTITION BY RANGE ({m.group(1)})", sql
    )
    sql = _TIME_PARTITIONED.sub(lambda m: _time_partitioned(m.group(1), flavour), sql)
    if flavour.timescale and sql.lstrip().startswith("-- 0001"):
        sql = "CREATE EXTENSION IF NOT EXISTS timescaledb;\n" + sql
    return sql


def detect_flavour(conn: psycopg.Connection[Any], settings: Settings | None = None) -> Flavour:
    """TimescaleDB when the server has the extension preloaded (``storage_timescale=auto``).

    A database keeps the flavour it was first migrated with (recorded per migration)."""
    from kneeload.settings import get_settings

    s = settings or get_settings()
    row = (
        conn.execute(
            "SELECT flavour FROM kneeload.schema_migrations ORDER BY version LIMIT 1"
        ).fetchone()
        if conn.execute("SELECT to_regclass('kneeload.schema_migrations')").fetchone() != (None,)
        else None
    )
    ts = conn.execute(
        "SELECT coalesce(installed_version, default_version) FROM pg_available_extensions WHERE "
        "name = 'timescaledb'"
    ).fetchone()
    version = ts[0] if ts else None
    preloaded = "timescaledb" in str(
        (conn.execute("SHOW shared_preload_libraries").fetchone() or ("",))[0]
    )
    if row is not None:
        name = row[0]
    elif s.storage_timescale == "off":
        name = "plain"
    elif s.storage_timescale == "on":
        if version is None:
            raise RuntimeError(
                "KNEELOAD_STORAGE_TIMESCALE=on but the timescaledb extension is not available"
            )
        name = "timescale"
    else:
        # "auto": only when the running server has the library loaded; an extension that is
        # merely installed on disk cannot be created (``must be preloaded``)
        name = "timescale" if version and preloaded else "plain"
    return Flavour(name, version if name == "timescale" else None, s.storage_premake_days)


def migrate(conninfo: str | None = None, settings: Settings | None = None) -> MigrateReport:
    """Apply every pending migration; safe to run any number of times."""
    import psycopg

    from kneeload.settings import get_settings

    s = settings or get_settings()
    with psycopg.connect(conninfo or s.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute("SET client_min_messages = warning")
            conn.execute(BOOTSTRAP)
            flavour = detect_flavour(conn, s)
            report = MigrateReport(flavour.name)
            done = {
                v: c
                for v, c in conn.execute("SELECT version, checksum FROM kneeload.schema_migrations")
            }
            for m in load_migrations():
                if m.version in done:
                    report.already += 1
                    if done[m.version] != m.checksum:
                        report.warnings.append(
                            f"{m.version:04d}_{m.name}.sql changed after it was applied "
                            "(forward-only: "
                            "write a new migration instead)"
                        )
                    continue
                with conn.transaction():
                    conn.execute(render(m.sql, flavour))
                    conn.execute(
                        "INSERT INTO kneeload.schema_migrations (version, name, flavour, checksum) "
                        "VALUES (%s, %s, %s, %s)",
                        (m.version, m.name, flavour.name, m.checksum),
                    )
                report.applied.append(f"{m.version:04d}_{m.name}")
            # Readers reach tables only through kneeload_api views with the rights of
            # kneeload_api_owner (0009): re-applied here, so a view a later migration creates
            # or replaces follows the rule too.
            if conn.execute("SELECT to_regprocedure('kneeload.secure_api_views()')").fetchone() != (
                None,
            ):
                conn.execute("SELECT kneeload.secure_api_views()")
            # Keep partitions ahead on every run (cheap when they exist).
            if not flavour.timescale:
                conn.execute(
                    "SELECT kneeload.ensure_partitions(table_name, now() - INTERVAL '1 day', "
                    "now() + make_interval(days => %s)) FROM kneeload.partitioned_tables WHERE "
                    "flavour = 'plain'",
                    (flavour.premake_days,),
                )
            return report
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
