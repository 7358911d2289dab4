"""``kneeload worker`` and ``kneeload rebuild-state``."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from kneeload.settings import Settings


def register(group: click.Group) -> None:
    group.add_command(worker_cmd)
    group.add_command(rebuild_state_cmd)


@click.command("worker")
@click.option(
    "-l", "--loglevel", default="warn", show_default=True,
    type=click.Choice(["crit", "error", "warn", "info", "debug"]), help="Faust log level",
)  # fmt: skip
def worker_cmd(loglevel: str) -> None:
    """Run one stream worker (Faust). Start more processes to share the partitions.

    Creates missing topics first (catalogue reconcile plus the worker's internal
    topics). State lives in changelog-backed in-memory tables: a restarted worker
    replays its changelogs.
    """
    from kneeload.settings import get_settings
    from kneeload.worker.app import create_app, ensure_topics

    _Worker = _worker_class()
    s = get_settings()
    ensure_topics(s)
    app = create_app(s)
    app.conf.datadir = Path(tempfile.mkdtemp(prefix=f"kneeload-worker-{os.getpid()}-"))
    worker = _Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def _worker_class() -> type:
    import logging

    import faust

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            # mode leaves the root logger at DEBUG and filters in the handlers, so every
            # aiokafka/faust ``log.debug`` built a LogRecord: ~6 % of the worker's CPU
            # in the profile. Filter at the logger instead.
            if level:
                logger.setLevel(level)

    return Worker


@click.command("rebuild-state")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
    help="Replay stored samples from this date on (history the running worker did not "
    "count: imported after live data, older than the lateness horizon).",
)  # fmt: skip
@click.option(
    "--from-topics", is_flag=True,
    help="Do not read the database: delete changelogs and group, replay the raw topics.",
)  # fmt: skip
def rebuild_state_cmd(yes: bool, from_topics: bool, since: dt.datetime | None) -> None:
    """Rebuild the worker's state from PostgreSQL (STOP EVERY WORKER FIRST).

    Reads, in one database snapshot, what the per-athlete and per-unit state needs
    (registry, daily loads for the ACWR history, the raw samples, pain reports and
    LEVER telemetry of the recent window, stored sessions/days/minutes for their
    revisions, alert cooldowns), builds the state with the worker's own processors,
    recreates the changelog topics with it and sets the worker's consumer group to the
    raw-topic offsets the database covers (the sink's ``sink_offsets``). The next
    `kneeload worker` recovers that state and continues from there.

    --from-topics: the old way, no database: deletes the changelogs and the consumer
    group so the next worker replays the raw topics from their earliest retained offsets
    (deterministic ids: the re-published events upsert).

    --since DATE: replay every athlete's stored samples from DATE, and publish the
    sessions, minute loads and daily loads (with ACWR) of that history the database lacks;
    no alerts are raised for it. `kneeload import` prints this command when it stored
    history the running worker did not count.
    """
    from kneeload.settings import get_settings

    s = get_settings()
    if from_topics:
        _rebuild_from_topics(s, yes)
        return
    import psycopg

    from kneeload.worker import rebuild
    from kneeload.worker.app import app_id, ensure_topics

    if not yes:
        click.confirm(
            f"All workers of {app_id(s)!r} stopped? Replace their changelogs and offsets "
            "with the state rebuilt from the database?",
            abort=True,
        )
    ensure_topics(s)
    with psycopg.connect(s.database_url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        built = rebuild.build(conn, s, since=since.date() if since else None)
    counts = rebuild.write(s, built)
    click.echo(
        f"rebuilt {counts['athletes']} athlete(s), {counts['chunks']} chunk(s), "
        f"{counts['units']} unit(s), {counts['teams']} team record(s) from the database "
        f"({built.replayed_batches} batch(es) replayed, {counts.get('published', 0)} derived "
        "event(s) of history published); "
        f"group {app_id(s)} set at {counts['offsets']} partition offset(s)"
    )


def _rebuild_from_topics(s: Settings, yes: bool) -> None:
    from kafka.errors import GroupIdNotFoundError, KafkaError

    from kneeload.topics import admin_client
    from kneeload.worker.app import app_id

    gid = app_id(s)
    with admin_client(s) as admin:
        changelogs = sorted(
            t for t in admin.list_topics() if t.startswith(f"{gid}-") and t.endswith("-changelog")
        )
        if not yes:
            click.confirm(
                f"Delete {len(changelogs)} changelog topic(s) and consumer group {gid!r}?",
                abort=True,
            )
        if changelogs:
            admin.delete_topics(changelogs)
        try:
            admin.delete_groups([gid])
        except (GroupIdNotFoundError, KafkaError) as exc:
            click.echo(f"consumer group {gid}: {exc}", err=True)
    click.echo(
        f"deleted {len(changelogs)} changelog topic(s); group {gid} reset: "
        "the next worker replays the raw topics"
    )
