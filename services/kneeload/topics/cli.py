"""``kneeload topics``: create/reconcile the catalogue's topics, or describe them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from kneeload.topics.admin import TopicReport, TopicState


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


@click.command("topics")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option(
    "--describe", "describe_only", is_flag=True, help="Show each topic as the broker reports it."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the broker.")
def topics_cmd(dry_run: bool, describe_only: bool, as_json: bool, timeout: float) -> None:
    """Create or reconcile the Kafka topics of the catalogue (idempotent).

    Creates missing topics, raises partition counts below the catalogue's, and sets
    cleanup.policy / retention.ms where they differ. Never decreases partitions.
    The broker comes from KNEELOAD_KAFKA_BOOTSTRAP, names from KNEELOAD_TOPIC_PREFIX.
    """
    from kneeload.settings import get_settings
    from kneeload.topics.admin import (
        BrokerUnavailableError,
        TopicAdminError,
        admin_client,
        describe,
        reconcile,
    )

    settings = get_settings()
    states: list[TopicState] = []
    reports: list[TopicReport] = []
    try:
        with admin_client(settings, timeout_ms=int(timeout * 1000)) as admin:
            if describe_only:
                states = describe(settings, admin=admin)
            else:
                reports = reconcile(settings, dry_run=dry_run, admin=admin)
    except (BrokerUnavailableError, TopicAdminError) as exc:
        raise click.ClickException(str(exc)) from exc

    if describe_only:
        _print_states(states, as_json)
    else:
        _print_reports(reports, as_json, dry_run, settings.kafka_bootstrap)


def _print_states(states: list[TopicState], as_json: bool) -> None:
    import orjson

    from kneeload.topics.catalogue import catalogue

    if as_json:
        click.echo(orjson.dumps([s.as_dict() for s in states], option=orjson.OPT_INDENT_2))
        return
    wanted = {t.full_name: t for t in catalogue()}
    rows = []
    for st in states:
        t = wanted[st.name]
        if not st.exists:
            state = "missing"
        elif (st.partitions or 0) >= t.partitions and st.configs == t.configs():
            state = "ok"
        else:
            state = "differs from catalogue"
        rows.append(
            [
                st.name,
                str(st.partitions) if st.exists else "-",
                str(st.replication) if st.exists else "-",
                st.cleanup_policy or "-",
                str(st.retention_ms) if st.exists else "-",
                state,
            ]
        )
    header = ["topic", "partitions", "replicas", "cleanup.policy", "retention.ms", "state"]
    click.echo(_table(rows, header))


def _print_reports(
    reports: list[TopicReport], as_json: bool, dry_run: bool, bootstrap: str
) -> None:
    import orjson

    if as_json:
        click.echo(orjson.dumps([r.as_dict() for r in reports], option=orjson.OPT_INDENT_2))
    else:
        rows = [
            [
                r.topic.full_name,
                r.status,
                str(max(r.topic.partitions, r.before.partitions or 0)),
                str(r.topic.cleanup_policy),
                str(r.topic.retention_ms),
                "; ".join(r.changes) or "-",
            ]
            for r in reports
        ]
        header = ["topic", "status", "partitions", "cleanup.policy", "retention.ms", "changes"]
        click.echo(_table(rows, header))
        changed = sum(r.changed for r in reports)
        verb = "would change" if dry_run else "changed"
        click.echo(
            f"\n{len(reports)} topics, {changed} {verb}, {len(reports) - changed} unchanged"
            f" (broker {bootstrap})"
        )
    for r in reports:
        for w in r.warnings:
            click.echo(f"WARNING {r.topic.full_name}: {w}", err=True)


def register(group: click.Group) -> None:
    group.add_command(topics_cmd)
