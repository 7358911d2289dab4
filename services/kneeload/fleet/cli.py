"""``kneeload fleet``: utilisation and downtime of a clinic's LEVER units."""

from __future__ import annotations

import datetime as dt

import click


@click.group("fleet")
def fleet_group() -> None:
    """Clinics' LEVER fleets: utilisation, idle time and downtime per unit."""


@fleet_group.command("utilisation")
@click.option(
    "--clinic",
    "clinics",
    multiple=True,
    help="Clinic id (repeat; default: every clinic you may see).",
)
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First local day (default: 6 days before --to).")  # fmt: skip
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last local day (default: today, UTC).")  # fmt: skip
@click.option("--csv", "as_csv", is_flag=True, help="CSV on standard output instead of a table.")
@click.option("--database-url", envvar="KNEELOAD_DATABASE_URL", default=None,
              help="Database (default: KNEELOAD_DATABASE_URL).")  # fmt: skip
def utilisation_cmd(
    clinics: tuple[str, ...],
    start: dt.datetime | None,
    end: dt.datetime | None,
    as_csv: bool,
    database_url: str | None,
) -> None:
    """Per unit and local day: minutes in use, online idle, offline and unknown (not yet
    heard of) within the clinic's opening hours, minutes in use outside them, utilisation
    (in use / known open time), sessions and distinct athletes.

    Opening hours: KNEELOAD_FLEET_OPENING_HOURS in KNEELOAD_FLEET_TIMEZONE, per clinic
    KNEELOAD_FLEET_CLINIC_OPENING_HOURS (JSON). Computed by kneeload.core.utilisation from
    each unit's status history (kneeload_api.fleet_unit_states)."""
    import csv
    import sys

    import psycopg

    from kneeload.fleet.utilisation_io import COLUMNS, clinic_hours, read_utilisation
    from kneeload.settings import get_settings

    s = get_settings()
    last = (end or dt.datetime.now(dt.UTC)).date()
    first = start.date() if start else last - dt.timedelta(days=6)
    if first > last:
        raise click.BadParameter("--from is after --to")
    try:
        hours = clinic_hours(s.fleet_opening_hours, s.fleet_timezone, s.fleet_clinic_opening_hours)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        with psycopg.connect(database_url or s.database_url, connect_timeout=10) as conn:
            rows = read_utilisation(conn, list(clinics) or None, first, last, hours)
    except psycopg.Error as exc:
        raise click.ClickException(f"database: {exc}") from exc
    if as_csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(COLUMNS)
        w.writerows(r.values() for r in rows)
        return
    if not rows:
        click.echo("no LEVER units with a status in this period (or none you may see)")
        return
    head = (
        "unit",
        "clinic",
        "date",
        "open",
        "in use",
        "idle",
        "offline",
        "unknown",
        "out of hrs",
        "util %",
        "sessions",
        "athletes",
    )
    widths = [max(len(h), 10) for h in head]
    click.echo("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for r in rows:
        vals = ["" if v is None else str(v) for v in r.values()]
        click.echo("  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True)))
    click.echo(f"minutes; {len(rows)} unit-days, {first} → {last}")


def register(group: click.Group) -> None:
    group.add_command(fleet_group)
