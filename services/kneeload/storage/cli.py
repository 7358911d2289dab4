"""Commands: ``kneeload migrate``, ``kneeload sink`` and ``kneeload storage …``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import click


def _conn(autocommit: bool = True) -> Any:
    import psycopg

    from kneeload.settings import get_settings

    return psycopg.connect(get_settings().database_url, autocommit=autocommit)


def _echo(obj: Any) -> None:
    import orjson

    click.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode())


@click.command("migrate")
def migrate_cmd() -> None:
    """Apply pending database migrations (versioned, forward-only, safe to repeat).

    KNEELOAD_STORAGE_TIMESCALE=auto (default) uses TimescaleDB when the server has it loaded,
    plain PostgreSQL partitions otherwise; on requires it; off never uses it. A database keeps
    the flavour of its first migration."""
    from kneeload.storage.migrate import MigrationError, migrate

    try:
        report = migrate()
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from exc
    _echo(report.as_dict())


@click.command("sink")
@click.option(
    "--idle-exit", type=float, default=None, help="Exit after this many seconds without messages."
)
def sink_cmd(idle_exit: float | None) -> None:
    """Write the raw and derived Kafka topics into PostgreSQL (COPY, idempotent; until SIGTERM)."""
    from kneeload.settings import get_settings
    from kneeload.storage.sink import run_sink

    s = get_settings()
    logging.basicConfig(level=s.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stats = asyncio.run(run_sink(s, idle_exit_s=idle_exit))
    _echo({"sink": "stopped", **stats.as_dict()})


#: a table's name as users know it -> the partitioned table holding its rows since a migration
#: (0029: plain PostgreSQL stores the raw watch samples one row per batch, read through the
#: view kneeload.watch_samples)
_STORED_AS = {"kneeload.watch_samples": "kneeload.watch_sample_batches"}


def _registered(conn: Any, table: str | None) -> str | None:
    """``table``, or the table that holds its rows when only that one is registered."""
    if table is None or table not in _STORED_AS:
        return table
    row = conn.execute(
        "SELECT table_name FROM kneeload.partitioned_tables WHERE table_name IN (%s, %s) "
        "ORDER BY table_name = %s DESC LIMIT 1",
        (table, _STORED_AS[table], table),
    ).fetchone()
    return str(row[0]) if row else table


@click.group("storage")
def storage() -> None:
    """Storage administration: partitions, retention, tenants, alert acknowledgement."""


@storage.command("partitions")
@click.option("--table", default=None, help="One table (kneeload.watch_samples); default: all.")
@click.option(
    "--ahead", type=int, default=None, help="Also create partitions this many days ahead."
)
@click.option(
    "--drop-empty",
    is_flag=True,
    help="Plain PostgreSQL: drop the empty partitions outside yesterday … the premake window "
    "(KNEELOAD_STORAGE_PREMAKE_DAYS), in short transactions; the default partition and any "
    "partition holding a row are kept. For databases where an older sink created every day "
    "between an old import and today.",
)
@click.option("--dry-run", is_flag=True, help="With --drop-empty: only report what would go.")
def partitions_cmd(table: str | None, ahead: int | None, drop_empty: bool, dry_run: bool) -> None:
    """List time partitions (plain PostgreSQL; --ahead creates more, --drop-empty removes empty
    ones far from today) or TimescaleDB chunks (with their compression; chunks are created as
    rows arrive, --ahead and --drop-empty have nothing to do)."""
    if dry_run and not drop_empty:
        raise click.UsageError("--dry-run goes with --drop-empty")
    with _conn() as conn:
        table = _registered(conn, table)
        tables = conn.execute(
            "SELECT table_name, flavour FROM kneeload.partitioned_tables WHERE %s::text IS NULL "
            "OR table_name = %s ORDER BY 1",
            (table, table),
        ).fetchall()
        if table is not None and not tables:
            raise click.BadParameter(f"unknown table {table!r}", param_hint="--table")
        out: dict[str, Any] = {}
        if drop_empty:
            out["dropped_empty" if not dry_run else "would_drop_empty"] = _drop_empty(
                conn, [t for t, flavour in tables if flavour == "plain"], dry_run
            )
        for t, flavour in tables:
            if flavour == "timescale":
                out[t] = _chunks(conn, t)
                continue
            if ahead is not None:
                conn.execute(
                    "SELECT kneeload.ensure_partitions(%s, now() - INTERVAL '1 day', "
                    "now() + make_interval(days => %s))",
                    (t, ahead),
                )
            out[t] = [
                {"partition": r[0], "from": r[1], "to": r[2]}
                for r in conn.execute("SELECT * FROM kneeload.partitions(%s)", (t,))
            ]
        _echo(out)


def _drop_empty(conn: Any, tables: list[str], dry_run: bool) -> dict[str, int]:
    """``--drop-empty``: per table, the empty partitions outside the kept window dropped
    (progress on stderr: thousands of tables take a while)."""
    from datetime import UTC, datetime, timedelta

    from kneeload.settings import get_settings
    from kneeload.storage.partitions import drop_empty_partitions

    now = datetime.now(UTC)
    keep = (now - timedelta(days=1), now + timedelta(days=get_settings().storage_premake_days + 1))
    counts: dict[str, int] = {}
    for t in tables:

        def shown(done: int, total: int, t: str = t) -> None:
            click.echo(f"{t}: {done}/{total} partitions outside the window checked", err=True)

        found = drop_empty_partitions(conn, t, *keep, dry_run=dry_run, progress=shown)
        counts[t] = len(found)
    return counts


def _chunks(conn: Any, table: str) -> list[dict[str, Any]]:
    schema, name = table.split(".", 1)
    return [
        {"chunk": r[0], "from": r[1], "to": r[2], "compressed": r[3]}
        for r in conn.execute(
            "SELECT chunk_schema || '.' || chunk_name, range_start, range_end, is_compressed "
            "FROM timescaledb_information.chunks WHERE hypertable_schema = %s AND "
            "hypertable_name = %s ORDER BY range_start",
            (schema, name),
        )
    ]


def _timescale_retention(conn: Any, dry_run: bool) -> list[dict[str, Any]]:
    """What the retention policy jobs would do now, done now: drop the chunks wholly older than
    each table's retention (``drop_chunks``, as ``add_retention_policy``'s job does)."""
    actions: list[dict[str, Any]] = []
    rows = conn.execute(
        "SELECT table_name, now() - retention FROM kneeload.partitioned_tables "
        "WHERE flavour = 'timescale' AND retention IS NOT NULL ORDER BY 1"
    ).fetchall()
    for table, cutoff in rows:
        old = [c for c in _chunks(conn, table) if c["to"] is not None and c["to"] <= cutoff]
        if not dry_run and old:
            conn.execute("SELECT drop_chunks(%s, older_than => %s)", (table, cutoff))
        actions += [
            {
                "table": table,
                "partition": c["chunk"],
                "range_end": c["to"],
                "action": "would drop" if dry_run else "dropped",
            }
            for c in old
        ]
    return actions


@storage.command("retention")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="TABLE=INTERVAL",
    help="Change a table's retention ('kneeload.watch_samples=90 days'; 'none' keeps forever).",
)
@click.option("--dry-run", is_flag=True, help="Only report what would be dropped.")
def retention_cmd(assignments: tuple[str, ...], dry_run: bool) -> None:
    """Apply retention now: drop the partitions (plain PostgreSQL) or chunks (TimescaleDB)
    wholly older than each table's retention. On TimescaleDB a retention policy job does the
    same daily; --set replaces that job."""
    with _conn() as conn:
        for a in assignments:
            table, _, value = a.partition("=")
            table = _registered(conn, table.strip()) or table
            interval = None if value.strip().lower() in ("none", "") else value.strip()
            row = conn.execute(
                "UPDATE kneeload.partitioned_tables SET retention = %s::interval "
                "WHERE table_name = %s RETURNING flavour",
                (interval, table.strip()),
            ).fetchone()
            if row is None:
                raise click.BadParameter(f"unknown table {table!r}", param_hint="--set")
            if row[0] == "timescale":
                conn.execute(
                    "SELECT remove_retention_policy(%s, if_exists => true)", (table.strip(),)
                )
                if interval:
                    conn.execute(
                        "SELECT add_retention_policy(%s, drop_after => %s::interval)",
                        (table.strip(), interval),
                    )
        policies = [
            {"table": r[0], "retention": r[1], "flavour": r[2]}
            for r in conn.execute(
                "SELECT table_name, retention, flavour FROM kneeload.partitioned_tables ORDER BY 1"
            )
        ]
        actions = [
            {"table": r[0], "partition": r[1], "range_end": r[2], "action": r[3]}
            for r in conn.execute("SELECT * FROM kneeload.apply_retention(%s)", (dry_run,))
        ] + _timescale_retention(conn, dry_run)
        _echo({"policies": policies, "actions": actions})


@storage.command("grant-coach")
@click.option("--role", required=True, help="Database role of the coach (must exist).")
@click.option("--team", required=True, help="Team id the coach may read.")
@click.option("--name", default=None, help="Display name of the coach.")
def grant_coach_cmd(role: str, team: str, name: str | None) -> None:
    """Let a coach's database role read one team through the kneeload_api views (RLS)."""
    with _conn() as conn:
        conn.execute("SELECT kneeload.grant_coach(%s, %s, %s)", (role, team, name))
    _echo({"granted": {"role": role, "team": team}})


@storage.command("grant-clinic")
@click.option("--role", required=True, help="Database role of the clinic (must exist).")
@click.option("--clinic", required=True, help="Clinic id whose units the role may read.")
def grant_clinic_cmd(role: str, clinic: str) -> None:
    """Let a clinic's database role read its LEVER units through the kneeload_api views (RLS)."""
    with _conn() as conn:
        conn.execute("SELECT kneeload.grant_clinic(%s, %s)", (role, clinic))
    _echo({"granted": {"role": role, "clinic": clinic}})


@storage.command("revoke")
@click.option("--role", required=True)
@click.option("--team", default=None)
@click.option("--clinic", default=None)
def revoke_cmd(role: str, team: str | None, clinic: str | None) -> None:
    """Withdraw a team or clinic grant."""
    if (team is None) == (clinic is None):
        raise click.UsageError("give exactly one of --team or --clinic")
    kind, tenant = ("team", team) if team is not None else ("clinic", clinic)
    with _conn() as conn:
        row = conn.execute(
            "SELECT kneeload.revoke_tenant(%s, %s, %s)", (role, kind, tenant)
        ).fetchone()
    _echo({"revoked": bool(row and row[0])})


@storage.command("ack")
@click.argument("alert_id")
@click.option("--by", required=True, help="Who acknowledges (coach identity).")
def ack_cmd(alert_id: str, by: str) -> None:
    """Acknowledge an alert (the first acknowledgement is kept)."""
    from kneeload.storage import acknowledge_alert

    with _conn(autocommit=False) as conn:
        done = acknowledge_alert(conn, alert_id, by)
        row = conn.execute(
            "SELECT acknowledged_by, acknowledged_at FROM kneeload.alerts WHERE alert_id = %s",
            (alert_id,),
        ).fetchone()
        conn.commit()
    if row is None:
        raise click.ClickException(f"no alert {alert_id!r}")
    _echo(
        {
            "alert_id": alert_id,
            "acknowledged_now": done,
            "acknowledged_by": row[0],
            "acknowledged_at": row[1],
        }
    )


@storage.command("views")
def views_cmd() -> None:
    """List the public views (kneeload_api) with their documentation."""
    with _conn() as conn:
        rows = conn.execute(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'kneeload_api' AND "
            "c.relkind = 'v' "
            "ORDER BY 1"
        ).fetchall()
    _echo({name: doc for name, doc in rows})


def register(group: click.Group) -> None:
    group.add_command(migrate_cmd)
    group.add_command(sink_cmd)
    group.add_command(storage)
