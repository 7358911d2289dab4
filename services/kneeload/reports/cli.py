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


@click.command("ceiling")
@click.option("--athlete-id", required=True, help="Athlete id (as registered).")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The day to plan, from its UTC midnight (default: today).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.option("--database-url", envvar="KNEELOAD_DATABASE_URL", default=None,
              help="Database (default: KNEELOAD_DATABASE_URL).")  # fmt: skip
def ceiling_cmd(
    athlete_id: str, day: dt.datetime | None, as_json: bool, database_url: str | None
) -> None:
    """Today's session-spike ceiling: the longest distance and the largest estimated PFJ load
    a session can have without being a spike (> 10 % above the longest of the sessions
    started in the 30 days before the day; Frandsen et al. 2025, kneeload.core.spike)."""
    import orjson
    import psycopg

    from kneeload.core.spike import PastSession, SpikeConfig, ceiling
    from kneeload.settings import get_settings

    s = get_settings()
    cfg = SpikeConfig(
        window_days=s.alert_spike_window_days, min_sessions=s.alert_spike_min_sessions
    )
    try:
        with psycopg.connect(database_url or s.database_url, connect_timeout=10) as conn:
            sessions = conn.execute(
                "SELECT start_time, distance_m, pfj_load_mpa_s FROM kneeload_api.athlete_timeline "
                "WHERE athlete_id = %s AND status = 'closed'",
                (athlete_id,),
            ).fetchall()
    except psycopg.Error as exc:
        raise click.ClickException(f"database: {exc}") from exc
    local_day = day.date() if day else dt.datetime.now(dt.UTC).date()
    midnight = dt.datetime(local_day.year, local_day.month, local_day.day, tzinfo=dt.UTC)
    t_ms = int(midnight.timestamp() * 1000)
    past = [
        PastSession(int(st.timestamp() * 1000), float(d or 0.0), float(p or 0.0))
        for st, d, p in sessions
    ]
    c = ceiling(past, t_ms, cfg.window_days)
    factor = 1.0 + cfg.small_pct / 100.0
    ok = c.sessions >= cfg.min_sessions
    max_d, max_p = round(c.distance_m * factor, 1), round(c.pfj_load_mpa_s * factor, 1)
    out: dict[str, object] = {
        "athlete_id": athlete_id,
        "date": local_day.isoformat(),
        "sessions_in_window": c.sessions,
        "verdict": "ceiling" if ok else "too_few_sessions",
        "ceiling_distance_m": max_d if ok else None,
        "ceiling_pfj_load_mpa_s": max_p if ok else None,
        "estimate": True,
    }
    if as_json:
        click.echo(orjson.dumps(out).decode())
    elif not ok:
        click.echo(
            f"{athlete_id} on {local_day}: no ceiling yet — {c.sessions} session(s) in the last "
            f"{cfg.window_days:g} days, {cfg.min_sessions} needed"
        )
    else:
        click.echo(
            f"{athlete_id} on {local_day}: up to {max_d / 1000:.1f} km and "
            f"{max_p:.0f} MPa·s of estimated PFJ load without a session "
            f"spike ({c.sessions} sessions in {cfg.window_days:g} days; Frandsen et al. 2025)"
        )


def register(group: click.Group) -> None:
    group.add_command(report_group)
    group.add_command(ceiling_cmd)
