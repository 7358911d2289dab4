"""``kneeload fleet``: utilisation and downtime of a clinic's LEVER units."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click


@click.group("fleet")
def fleet_group() -> None:
    """Clinics' LEVER fleets: utilisation, downtime, calibration drift and outcomes per unit."""


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


@fleet_group.command("report")
@click.option("--clinic", "clinics", multiple=True, metavar="ID",
              help="Clinic id; repeat for several. Either this or --all.")  # fmt: skip
@click.option("--all", "all_clinics", is_flag=True,
              help="Every clinic your database role may see.")  # fmt: skip
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First local day, YYYY-MM-DD (default: 89 days before --to).")  # fmt: skip
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last local day, YYYY-MM-DD (default: today, UTC).")  # fmt: skip
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("out/fleet"), show_default=True,
              help="Folder for fleet-report.html, charts/*.png, data/*.{csv,parquet}.")  # fmt: skip
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on standard error (default: when it is a terminal).")  # fmt: skip
@click.option("--database-url", envvar="KNEELOAD_DATABASE_URL", default=None,
              help="Database (default: KNEELOAD_DATABASE_URL).")  # fmt: skip
def report_cmd(
    clinics: tuple[str, ...],
    all_clinics: bool,
    start: dt.datetime | None,
    end: dt.datetime | None,
    out_dir: Path,
    progress: bool | None,
    database_url: str | None,
) -> None:
    """Write the fleet report: units side by side — utilisation and downtime within opening
    hours, calibration drift over time, BWS distribution — and outcomes by unit and clinic
    (pain trajectory, days to <= 5 % BWS, median estimated PFJ load per km, pain flares),
    each with its n; figures below KNEELOAD_FLEET_OUTCOME_MIN_N athletes are withheld and
    never ranked. One self-contained HTML page (charts embedded), the charts as PNG and
    every table as CSV and Parquet.

    \b
    Examples:
      kneeload fleet report --all --from 2026-09-01 --to 2026-11-30 --out out/fleet
      kneeload fleet report --clinic clinic-oslo --clinic clinic-bergen
    """
    from kneeload.fleet.report import ReportError, load, write

    if bool(clinics) == all_clinics:
        raise click.UsageError("give --clinic ID (one or more) or --all")
    url, first, last, hours, cfg = _report_inputs(start, end, database_url)
    report = _load_with_progress(load, url, list(clinics) or None, first, last, hours, cfg,
                                 progress, ReportError)  # fmt: skip
    page = write(report, out_dir)
    n_units = report.units.height
    click.echo(f"wrote {page} ({n_units} units, {first} → {last}; tables in {out_dir / 'data'})")


@fleet_group.command("refresh")
@click.option("--clinic", "clinics", multiple=True, metavar="ID",
              help="Clinic id; repeat for several. Either this or --all.")  # fmt: skip
@click.option("--all", "all_clinics", is_flag=True, help="Every clinic in the database.")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First local day, YYYY-MM-DD (default: 89 days before --to).")  # fmt: skip
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last local day, YYYY-MM-DD (default: today, UTC).")  # fmt: skip
@click.option("--database-url", envvar="KNEELOAD_DATABASE_URL", default=None,
              help="Database, as its owner (default: KNEELOAD_DATABASE_URL).")  # fmt: skip
def refresh_cmd(
    clinics: tuple[str, ...],
    all_clinics: bool,
    start: dt.datetime | None,
    end: dt.datetime | None,
    database_url: str | None,
) -> None:
    """Compute the fleet figures as `kneeload fleet report` does and store them for the clinic
    dashboard: minutes per state within opening hours per unit and day
    (kneeload_api.fleet_utilisation_daily) and the outcomes by unit and clinic with their n
    (kneeload_api.fleet_outcomes), replacing the period's rows. Run it daily (cron, or a
    systemd timer) after the night's late data."""
    import psycopg

    from kneeload.fleet.store import store

    if bool(clinics) == all_clinics:
        raise click.UsageError("give --clinic ID (one or more) or --all")
    url, first, last, hours, cfg = _report_inputs(start, end, database_url)
    from kneeload.fleet.report import ReportError, load

    report = _load_with_progress(load, url, list(clinics) or None, first, last, hours, cfg,
                                 False, ReportError)  # fmt: skip
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            days, groups = store(conn, report)
    except psycopg.Error as exc:
        raise click.ClickException(f"database: {exc}") from exc
    click.echo(f"stored {days} unit-days and {groups} outcome groups ({first} → {last})")


def _report_inputs(
    start: dt.datetime | None, end: dt.datetime | None, database_url: str | None
) -> tuple[str, dt.date, dt.date, Any, Any]:
    from kneeload.core.outcomes import OutcomeConfig, OutcomeValueError
    from kneeload.fleet.utilisation_io import clinic_hours
    from kneeload.settings import get_settings

    s = get_settings()
    last = (end or dt.datetime.now(dt.UTC)).date()
    first = start.date() if start else last - dt.timedelta(days=89)
    if first > last:
        raise click.BadParameter("--from is after --to")
    try:
        hours = clinic_hours(s.fleet_opening_hours, s.fleet_timezone, s.fleet_clinic_opening_hours)
        cfg = OutcomeConfig(
            window_days=s.fleet_outcome_window_days,
            bws_target_pct=s.fleet_bws_target_pct,
            min_n=s.fleet_outcome_min_n,
        )
    except (ValueError, OutcomeValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    return database_url or s.database_url, first, last, hours, cfg


def _load_with_progress(
    load: Any, url: str, clinics: list[str] | None, first: dt.date, last: dt.date,
    hours: Any, cfg: Any, progress: bool | None, report_error: type[Exception],
) -> Any:  # fmt: skip
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    show = console.is_terminal if progress is None else progress
    bar = Progress(TextColumn("reading {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rows]:,} rows"), console=console,
                   disable=not show, transient=False)  # fmt: skip
    task = bar.add_task("the fleet views", total=None, rows=0)
    total_rows = 0

    def tick(name: str, rows: int, done: int, total: int) -> None:
        nonlocal total_rows
        total_rows += rows
        bar.update(task, description=name, completed=done, total=total, rows=total_rows)

    try:
        with bar:
            return load(url, clinics, first, last, hours, cfg, progress=tick)
    except report_error as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:  # database errors of the ADBC driver (its own hierarchy)
        if type(exc).__module__.startswith("adbc_driver"):
            raise click.ClickException(f"database: {str(exc).splitlines()[0]}") from exc
        raise


def register(group: click.Group) -> None:
    group.add_command(fleet_group)
