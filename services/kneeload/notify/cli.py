"""``kneeload notify`` and ``kneeload alerts ack``."""

from __future__ import annotations

import click

__all__ = ["register"]


@click.command("notify")
@click.option("--no-ack-server", is_flag=True, help="Do not serve POST /alerts/{id}/ack.")
def notify_cmd(no_ack_server: bool) -> None:
    """Deliver alerts to the configured webhook / Slack / email channels, each once.

    Also serves the acknowledgement endpoint POST /alerts/{id}/ack on
    KNEELOAD_NOTIFY_ACK_HOST:PORT when a token (KNEELOAD_NOTIFY_ACK_TOKEN or
    KNEELOAD_ADMIN_TOKEN) is configured.
    """
    import asyncio
    import contextlib
    import logging
    import signal
    from collections.abc import Iterator

    from kneeload.notify.service import Notifier
    from kneeload.settings import get_settings

    s = get_settings()
    logging.basicConfig(level=s.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks = [asyncio.create_task(Notifier(s).run(stop))]
        if not no_ack_server and (s.notify_ack_token or s.admin_token):
            import uvicorn

            from kneeload.notify.ack import ack_app

            class _Server(uvicorn.Server):
                @contextlib.contextmanager
                def capture_signals(self) -> Iterator[None]:  # our loop handles signals
                    yield

            server = _Server(
                uvicorn.Config(
                    ack_app(s),
                    host=s.notify_ack_host,
                    port=s.notify_ack_port,
                    log_level="warning",
                    lifespan="off",
                )
            )
            tasks.append(asyncio.create_task(server.serve()))

            async def stop_server() -> None:
                await stop.wait()
                server.should_exit = True

            tasks.append(asyncio.create_task(stop_server()))
        await asyncio.gather(*tasks)

    asyncio.run(main())


@click.group("alerts")
def alerts_group() -> None:
    """Work with alerts (acknowledge)."""


@alerts_group.command("ack")
@click.argument("alert_id")
@click.option("--by", "coach", required=True, help="Identity of the acknowledging coach.")
def ack_cmd(alert_id: str, coach: str) -> None:
    """Acknowledge ALERT_ID as COACH (the open-alerts view then shows it acknowledged)."""
    import orjson

    from kneeload.notify.ack import AlertNotFoundError, acknowledge
    from kneeload.settings import get_settings

    try:
        result = acknowledge(get_settings().database_url, alert_id, coach)
    except AlertNotFoundError:
        raise click.ClickException(f"no alert {alert_id!r}") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--by") from None
    click.echo(orjson.dumps(result.as_dict()).decode())


def register(group: click.Group) -> None:
    group.add_command(notify_cmd)
    if "alerts" in group.commands and isinstance(group.commands["alerts"], click.Group):
        group.commands["alerts"].add_command(ack_cmd)  # another service owns `alerts`
    else:
        group.add_command(alerts_group)
