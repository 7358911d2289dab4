"""``kneeload mqtt-bridge``."""

from __future__ import annotations

import click


@click.command("mqtt-bridge")
def bridge_cmd() -> None:
    """Forward LEVER units' MQTT messages (<root>/<unit_id>/telemetry|heartbeat|setpoint,
    QoS 1, persistent session) to Kafka, acknowledging MQTT only after Kafka did."""
    import asyncio
    import logging
    import signal

    from kneeload.bridge.bridge import MqttBridge
    from kneeload.registry import RegistryUnavailableError
    from kneeload.settings import get_settings

    s = get_settings()
    logging.basicConfig(level=s.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        bridge = MqttBridge(s)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, bridge.stop)
        await bridge.run()

    try:
        asyncio.run(main())
    except RegistryUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc


def register(group: click.Group) -> None:
    group.add_command(bridge_cmd)
