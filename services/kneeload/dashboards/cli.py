"""``kneeload dashboards build`` and ``kneeload dashboards push``."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["register"]


@click.group("dashboards")
def dashboards() -> None:
    """Grafana dashboards as code (grafana-foundation-sdk) and their provisioning."""


@dashboards.command("build")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output directory (default: dashboards/ of the checkout).")  # fmt: skip
def build_cmd(out: Path | None) -> None:
    """Regenerate dashboards/json/*.json and dashboards/provisioning/**."""
    from kneeload.dashboards.build import DEFAULT_OUT, write

    for path in write(out or DEFAULT_OUT):
        click.echo(str(path))


@dashboards.command("push")
@click.option("--grafana-url", required=True, help="Grafana base URL, e.g. http://grafana:3000")
@click.option("--token", required=True, envvar="KNEELOAD_GRAFANA_TOKEN",
              help="Service-account token (Editor or Admin).")  # fmt: skip
@click.option("--team", "teams", multiple=True, help="Team with its own folder (repeatable).")
@click.option("--teams-from-db", is_flag=True, help="One folder per team in kneeload.teams.")
def push_cmd(grafana_url: str, token: str, teams: tuple[str, ...], teams_from_db: bool) -> None:
    """Provision the data source, a folder per team and the dashboards (idempotent)."""
    import orjson

    from kneeload.dashboards.push import push

    names = list(teams)
    if teams_from_db:
        import psycopg

        from kneeload.settings import get_settings

        with psycopg.connect(get_settings().database_url) as conn:
            names += [r[0] for r in conn.execute(
                "SELECT DISTINCT team_id FROM kneeload_api.team_overview "
                "WHERE team_id IS NOT NULL ORDER BY 1")]  # fmt: skip
    report = push(grafana_url, token, teams=names)
    click.echo(orjson.dumps(report.__dict__, option=orjson.OPT_INDENT_2).decode())


def register(group: click.Group) -> None:
    group.add_command(dashboards)
