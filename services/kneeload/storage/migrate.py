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

The flavour follows ``KNEELOAD_STORAGE_TIMESCALE``: ``auto`` (default) uses TimescaleDB when the
running server has the library loaded (``shared_preload_libraries``; ``kneeload stack up`` does
so when it is installed), ``on`` requires it and fails with what to do when the server cannot,
``off`` never uses it. A database keeps the flavour of its first migration; a setting that
contradicts it is an error, not a silent switch.

Checksums: each applied migration records the checksum of its text *for its flavour* (the
``@if`` blocks resolved), so a fix to the other flavour's branch does not flag databases that
applied this one. Rows written before that rule hold the whole file's checksum, which is
accepted as well; :data:`SUPERSEDED` lists the few exact earlier texts a flavour may have
applied before a fix to the other flavour's branch.

Errors name the migration and carry the database's own message (:class:`MigrationError`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: `kneeload --help` does not pay for psycopg/pydantic
    import psycopg

    from kneeload.settings import Settings

__all__ = [
    "SUPERSEDED",
    "Flavour",
    "MigrateReport",
    "Migration",
    "MigrationError",
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


#: (version, flavour) -> checksums of earlier texts of a migration that applied the same SQL
#: on that flavour as today's file (only the other flavour's branch was fixed since)
SUPERSEDED: dict[tuple[int, str], frozenset[str]] = {
    # 0004's timescale branch said COMMENT ON MATERIALIZED VIEW, which fails on a continuous
    # aggregate (its user view is a plain view), so 0004 never applied on TimescaleDB; its
    # plain branch is unchanged
    (4, "plain"): frozenset({"506bdb698dc010ed"}),
}


class MigrationError(RuntimeError):
    """A migration could not be applied, or the flavour asked for cannot be used; the message
    names the migration and carries the database's own error."""


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
        """Of the whole file (what rows recorded before flavour checksums hold)."""
        return _digest(self.sql)

    def checksum_for(self, flavour: Flavour) -> str:
        """Of the text this flavour executes: the ``@if`` blocks resolved for it."""
        return _digest(_select_branches(self.sql, flavour))

    def accepts(self, recorded: str, flavour: Flavour) -> bool:
        """Whether a recorded checksum matches this file on ``flavour``."""
        return recorded in (self.checksum, self.checksum_for(flavour)) or recorded in (
            SUPERSEDED.get((self.version, flavour.name), frozenset())
        )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _select_branches(sql: str, flavour: Flavour) -> str:
    return _IF_BLOCK.sub(
        lambda m: m.group(2) if (m.group(1) == "timescale") == flavour.timescale else m.group(3),
        sql,
    )


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
            seg = f"timescaledb.segmentby = '{segment}', " if segment else ""
            lines.append(
                _with_key_order(
                    table,
                    column,
                    segment,
                    f"ALTER TABLE {table} SET (timescaledb.enable_columnstore = true, {seg}"
                    "timescaledb.orderby = %L)",
                )
            )
            lines.append(
                f"CALL add_columnstore_policy('{table}', after => INTERVAL '{after}', "
                "if_not_exists => true);"
            )
        else:
            seg = f"timescaledb.compress_segmentby = '{segment}', " if segment else ""
            lines.append(
                _with_key_order(
                    table,
                    column,
                    segment,
                    f"ALTER TABLE {table} SET (timescaledb.compress, {seg}"
                    "timescaledb.compress_orderby = %L)",
                )
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


def _with_key_order(table: str, column: str, segment: str | None, alter: str) -> str:
    """``alter`` with its ``%L`` replaced by the columnstore order: ``COLUMN DESC`` followed by
    the table's other primary-key columns (not the segment-by one), read from the catalog when
    the migration runs. Every key column is then a segment-by or order-by column, as
    TimescaleDB asks (it warned, for (record_id, time) keys ordered by time alone)."""
    skip = ", ".join(f"'{c}'" for c in (column, segment) if c)
    return (
        "DO $ts$ DECLARE k text; BEGIN "
        "SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY x.n) INTO k "
        "FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS x(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = x.attnum "
        f"WHERE i.indrelid = '{table}'::regclass AND i.indisprimary AND a.attname NOT IN ({skip}); "
        f"EXECUTE format('{alter.replace(chr(39), chr(39) * 2)}', "
        f"'{column} DESC' || coalesce(', ' || k, '')); END $ts$;"
    )


def render(sql: str, flavour: Flavour) -> str:
    """Expand the directives of one migration for ``flavour``."""
    sql = _select_branches(sql, flavour)
    sql = _PARTITION_BY.sub(
        lambda m: "" if flavour.timescale else f"PARTITION BY RANGE ({m.group(1)})", sql
    )
    sql = _TIME_PARTITIONED.sub(lambda m: _time_partitioned(m.group(1), flavour), sql)
    if flavour.timescale and sql.lstrip().startswith("-- 0001"):
        sql = "CREATE EXTENSION IF NOT EXISTS timescaledb;\n" + sql
    return sql


def _where(conn: psycopg.Connection[Any]) -> str:
    info = conn.info
    return f"{info.host}:{info.port}/{info.dbname}"


def detect_flavour(conn: psycopg.Connection[Any], settings: Settings | None = None) -> Flavour:
    """The flavour to migrate with, from ``storage_timescale`` and the running server.

    ``auto``: TimescaleDB when the server has the library preloaded (an extension merely
    installed on disk cannot be created: ``must be preloaded``); ``on``: TimescaleDB or a
    :class:`MigrationError` saying why not; ``off``: plain. A database keeps the flavour it was
    first migrated with; a setting contradicting it raises :class:`MigrationError`."""
    from kneeload.settings import get_settings

    s = settings or get_settings()
    mode = s.storage_timescale
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
    preload = str((conn.execute("SHOW shared_preload_libraries").fetchone() or ("",))[0])
    preloaded = "timescaledb" in preload
    if row is not None:
        name = row[0]
        if mode == "on" and name != "timescale":
            raise MigrationError(
                f"KNEELOAD_STORAGE_TIMESCALE=on but the database {_where(conn)} was migrated "
                "on plain PostgreSQL; a database keeps its flavour: migrate a new database, "
                "or set KNEELOAD_STORAGE_TIMESCALE=auto"
            )
        if mode == "off" and name == "timescale":
            raise MigrationError(
                f"KNEELOAD_STORAGE_TIMESCALE=off but the database {_where(conn)} was migrated "
                "with TimescaleDB; a database keeps its flavour: migrate a new database, or "
                "set KNEELOAD_STORAGE_TIMESCALE=auto"
            )
        if name == "timescale" and not preloaded:
            raise MigrationError(
                f"the database {_where(conn)} uses TimescaleDB but the server has not loaded "
                f"it (shared_preload_libraries = '{preload}'): restart the server with "
                "shared_preload_libraries = 'timescaledb' (`kneeload stack up` does so when "
                "the extension is installed)"
            )
    elif mode == "off":
        name = "plain"
    elif mode == "on":
        if version is None:
            raise MigrationError(
                "KNEELOAD_STORAGE_TIMESCALE=on but the timescaledb extension is not installed "
                f"on the server of {_where(conn)}: install it (`make timescaledb` builds it "
                "for the local stack; Timescale's packages elsewhere) or set it to auto/off"
            )
        if not preloaded:
            raise MigrationError(
                f"KNEELOAD_STORAGE_TIMESCALE=on but the server of {_where(conn)} has not "
                f"loaded timescaledb (shared_preload_libraries = '{preload}'): the extension "
                "can only be created when preloaded — restart the server with "
                "shared_preload_libraries = 'timescaledb' (`kneeload stack up` does so when it "
                "is installed), or set KNEELOAD_STORAGE_TIMESCALE=auto/off"
            )
        name = "timescale"
    else:
        name = "timescale" if version and preloaded else "plain"
    return Flavour(name, version if name == "timescale" else None, s.storage_premake_days)


def migrate(conninfo: str | None = None, settings: Settings | None = None) -> MigrateReport:
    """Apply every pending migration; safe to run any number of times.

    Raises :class:`MigrationError` (the migration's name and the database's own message) when
    one fails or the flavour asked for cannot be used."""
    import psycopg

    from kneeload.settings import get_settings

    s = settings or get_settings()
    with psycopg.connect(conninfo or s.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            return _migrate_locked(conn, s)
        finally:
            _unlock(conn)


def _unlock(conn: psycopg.Connection[Any]) -> None:
    """Release the session lock — unless the server closed the session (which released it):
    an error here must never replace the one that is propagating."""
    import psycopg

    if conn.closed or conn.broken:
        return
    with contextlib.suppress(psycopg.Error):
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _migrate_locked(conn: psycopg.Connection[Any], s: Settings) -> MigrateReport:
    import psycopg

    where = _where(conn)  # read while the session is open (a failure may close it)
    conn.execute("SET client_min_messages = warning")
    conn.execute(BOOTSTRAP)
    flavour = detect_flavour(conn, s)
    report = MigrateReport(flavour.name)
    done = dict(conn.execute("SELECT version, checksum FROM kneeload.schema_migrations").fetchall())
    for m in load_migrations():
        if m.version in done:
            report.already += 1
            if not m.accepts(done[m.version], flavour):
                report.warnings.append(
                    f"{m.version:04d}_{m.name}.sql changed after it was applied "
                    "(forward-only: write a new migration instead)"
                )
            continue
        try:
            with conn.transaction():
                conn.execute(render(m.sql, flavour))
                conn.execute(
                    "INSERT INTO kneeload.schema_migrations (version, name, flavour, checksum) "
                    "VALUES (%s, %s, %s, %s)",
                    (m.version, m.name, flavour.name, m.checksum_for(flavour)),
                )
        except psycopg.Error as exc:
            raise MigrationError(
                f"migration {m.version:04d}_{m.name}.sql failed on {where} "
                f"({flavour.name}): {_db_message(exc)}"
            ) from exc
        report.applied.append(f"{m.version:04d}_{m.name}")
    # Readers reach tables only through kneeload_api views with the rights of
    # kneeload_api_owner (0009): re-applied here, so a view a later migration creates
    # or replaces follows the rule too.
    if conn.execute("SELECT to_regprocedure('kneeload.secure_api_views()')").fetchone() != (None,):
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


def _db_message(exc: Exception) -> str:
    """The server's message with its detail and hint (psycopg's str() has the primary one)."""
    diag = getattr(exc, "diag", None)
    parts = [str(exc).strip() or type(exc).__name__]
    for extra in (getattr(diag, "message_detail", None), getattr(diag, "message_hint", None)):
        if extra and extra not in parts[0]:
            parts.append(extra)
    return " — ".join(parts)
