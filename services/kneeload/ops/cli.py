"""``kneeload init``: prepare a deployment — topics reconciled, database migrated.

Production runs it once before the services start (the ``init`` service of
infra/compose.yaml); ``make up`` does the same locally. Both steps are idempotent.
"""

from __future__ import annotations

import click


@click.command("init")
def init_cmd() -> None:
    """Reconcile the Kafka topic catalogue and apply pending database migrations (idempotent)."""
    from kneeload.settings import get_settings
    from kneeload.storage.migrate import MigrationError, migrate
    from kneeload.topics import BrokerUnavailableError, reconcile

    s = get_settings()
    try:
        reports = reconcile(s)
    except BrokerUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc
    changed = sum(1 for r in reports if r.changed)
    click.echo(f"topics: {len(reports)} in the catalogue, {changed} created or changed")
    try:
        report = migrate(settings=s).as_dict()
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from exc
    applied = report.get("applied") or []
    click.echo(
        f"database: {report.get('flavour')} PostgreSQL, {len(applied)} migration(s) applied"
        f"{' (' + ', '.join(applied) + ')' if applied else ''}, "
        f"{report.get('already_applied')} already applied"
    )
    for warning in report.get("warnings") or []:
        click.echo(f"database: warning: {warning}")


def register(group: click.Group) -> None:
    group.add_command(init_cmd)
