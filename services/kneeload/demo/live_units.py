"""The clinic's healthy LEVER units keep sending heartbeats, in real time, after the replay.

The worker judges a unit offline by processing-time silence (a silent unit sends nothing
that could advance event time). Once the demo has replayed its weeks, the units that are
fine go on publishing a heartbeat every few seconds over MQTT with their own credentials,
like real units that are switched on; the planted silent unit does not. Runs as a demo
service (``python -m kneeload.demo.live_units CONFIG``) until ``kneeload demo stop``.
The config file (mode 600: it holds the units' API keys) lists MQTT URL, topic root and units.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

__all__ = ["main", "write_config"]


def write_config(
    path: Path, mqtt_url: str, root: str, keys: dict[str, str], period_s: float
) -> None:
    path.write_bytes(
        orjson.dumps({"mqtt_url": mqtt_url, "root": root, "units": keys, "period_s": period_s})
    )
    path.chmod(0o600)


async def _unit(cfg: dict[str, Any], unit_id: str, key: str, stop: asyncio.Event) -> None:
    import aiomqtt

    u = urlsplit(cfg["mqtt_url"])
    quiet = logging.getLogger("kneeload.demo.live_units")
    while not stop.is_set():
        try:
            async with aiomqtt.Client(
                hostname=u.hostname or "127.0.0.1",
                port=u.port or 1883,
                username=unit_id,
                password=key,
                identifier=f"{unit_id}-live",
                logger=quiet,
            ) as client:
                while not stop.is_set():
                    now = dt.datetime.now(dt.UTC)
                    payload = {
                        "record_id": f"{unit_id}:{int(now.timestamp() * 1000)}:h",
                        "time": now.isoformat().replace("+00:00", "Z"),
                        "kind": "heartbeat",
                        "belt_speed_mps": None,
                        "incline_pct": None,
                        "bws_pct": None,
                        "measured_support_pct": None,
                    }
                    await client.publish(
                        f"{cfg['root']}/{unit_id}/heartbeat", orjson.dumps(payload), qos=1
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), float(cfg["period_s"]))
        except aiomqtt.MqttError:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)


async def _run(config: Path) -> None:
    cfg = orjson.loads(config.read_bytes())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(*(_unit(cfg, uid, key, stop) for uid, key in cfg["units"].items()))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("config", type=Path)
    asyncio.run(_run(p.parse_args(argv).config))


if __name__ == "__main__":
    main()
