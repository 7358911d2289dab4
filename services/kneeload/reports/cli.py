"""``kneeload report team``: the team report from the database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click


@click.group("report")
def report_group() -> None:
    """HTML reports with PNG charts, from the database's public views."""


@report_group.command("team")
@click.option("--team", "team_id", required=True, help="Team id (as registered).")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day (default: 90 days before --to).")  # fmt: skip
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day (default: today, UTC).")  # fmt: skip
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("out/report"), show_default=True,
              help="Folder for index.html (self-contained) and charts/*.png.")  # fmt: skip
@click.option("--database-url", envvar="KNEELOAD_DATABASE_URL", default=None,
              help="Database (default: KNEELOAD_DATABASE_URL).")  # fmt: skip
def team_cmd(
    team_id: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    out_dir: Path,
    database_url: str | None,
) -> None:
    """Write the team's report: per athlete daily estimated PFJ load with ACWR, fitness /
    fatigue / form (CTL/ATL/TSB), session distance with today's session-spike ceiling,
    estimated PFJ load per km with BWS, and pain; the team's overview and alerts."""
    import psycopg

    from kneeload.reports.team import ReportError, load, write
    from kneeload.settings import get_settings

    last = (end or dt.datetime.now(dt.UTC)).date()
    first = start.date() if start else last - dt.timedelta(days=90)
    if first > last:
        raise click.BadParameter("--from is after --to")
    url = database_url or get_settings().database_url
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            report = load(conn, team_id, first, last)
    except psycopg.Error as exc:
        raise click.ClickException(f"database: {exc}") from exc
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    page = write(report, out_dir)
    click.echo(f"wrote {page} ({len(report.athletes)} athletes, {first} → {last})")


def register(group: click.Group) -> None:
    group.add_command(report_group)
