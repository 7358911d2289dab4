"""``kneeload registry``: athletes, devices (API keys), unit assignments, MQTT credentials."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

T = TypeVar("T")


def _echo(obj: Any) -> None:
    import orjson

    click.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode())


def _run(fn: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run ``fn(writer, view)`` with a caught-up registry view and a writer that updates it."""
    from kneeload.contracts import ContractError
    from kneeload.registry import RegistryUnavailableError, RegistryView, RegistryWriter
    from kneeload.registry.ops import RegistryOpError
    from kneeload.settings import get_settings

    async def main() -> T:
        s = get_settings()
        view = RegistryView(s, client_id="kneeload-registry-cli")
        await view.start(timeout_s=20)
        try:
            async with RegistryWriter(s, view=view) as writer:
                return await fn(writer, view)
        finally:
            await view.stop()

    try:
        return asyncio.run(main())
    except RegistryOpError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    except ContractError as exc:
        raise click.ClickException(str(exc)) from exc
    except RegistryUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("registry")
def registry_group() -> None:
    """Device and athlete registry (compacted Kafka topics) and device API keys."""


@registry_group.command("add-athlete")
@click.argument("athlete_id")
@click.option("--body-mass-kg", type=float, required=True)
@click.option("--team", "team_id", default=None, help="Team id (coaches see their team).")
@click.option("--time-zone", default="UTC", show_default=True, help="IANA time zone (daily load).")
@click.option("--name", "display_name", default=None)
@click.option("--inactive", is_flag=True)
def add_athlete(
    athlete_id: str,
    body_mass_kg: float,
    team_id: str | None,
    time_zone: str,
    display_name: str | None,
    inactive: bool,
) -> None:
    """Create or update an athlete."""
    from kneeload.registry.ops import put_athlete

    rec = _run(
        lambda w, v: put_athlete(
            w,
            athlete_id=athlete_id,
            body_mass_kg=body_mass_kg,
            team_id=team_id,
            time_zone=time_zone,
            display_name=display_name,
            active=not inactive,
        )
    )
    _echo(rec)


@registry_group.command("add-device")
@click.argument("device_id")
@click.option("--kind", type=click.Choice(["watch", "app", "lever_unit"]), required=True)
@click.option("--athlete", "athlete_id", default=None, help="Owner of a watch or app.")
@click.option("--clinic", "clinic_id", default=None, help="Clinic of a LEVER unit.")
@click.option("--max-bws-pct", type=float, default=None)
@click.option("--timeout-s", type=int, default=None, help="Heartbeat timeout of a LEVER unit.")
def add_device(
    device_id: str,
    kind: str,
    athlete_id: str | None,
    clinic_id: str | None,
    max_bws_pct: float | None,
    timeout_s: int | None,
) -> None:
    """Register a device and print its new API key (shown once; only its SHA-256 is stored).
    Registering an existing id replaces its key."""
    from kneeload.registry.ops import register_device

    rec, key = _run(
        lambda w, v: register_device(
            w,
            v,
            device_id,
            kind=kind,
            athlete_id=athlete_id,
            clinic_id=clinic_id,
            max_bws_pct=max_bws_pct,
            timeout_s=timeout_s,
        )
    )
    _echo({"device": rec, "api_key": key})


@registry_group.command("rotate-key")
@click.argument("device_id")
def rotate(device_id: str) -> None:
    """Give a device a new API key (the old one stops working at once)."""
    from kneeload.registry.ops import rotate_key

    rec, key = _run(lambda w, v: rotate_key(w, v, device_id))
    _echo({"device": rec, "api_key": key})


@registry_group.command("revoke")
@click.argument("device_id")
def revoke(device_id: str) -> None:
    """Revoke a device: its HTTP requests and MQTT connections are refused."""
    from kneeload.registry.ops import revoke_device

    _echo(_run(lambda w, v: revoke_device(w, v, device_id)))


@registry_group.command("assign")
@click.argument("unit_id")
@click.option("--athlete", "athlete_id", default=None, help="Athlete now on the unit.")
@click.option("--nobody", is_flag=True, help="Nobody is on the unit.")
def assign(unit_id: str, athlete_id: str | None, nobody: bool) -> None:
    """Say which athlete is on a LEVER unit now."""
    from kneeload.registry.ops import assign_unit

    if bool(athlete_id) == nobody:
        raise click.UsageError("give exactly one of --athlete ID or --nobody")
    _echo(_run(lambda w, v: assign_unit(w, v, unit_id, athlete_id)))


@registry_group.command("show")
def show() -> None:
    """Print the registry as the topics hold it now (keys only as digests)."""

    async def snap(_w: Any, v: Any) -> dict[str, Any]:
        return {
            "athletes": dict(v.athletes),
            "devices": dict(v.devices),
            "assignments": dict(v.assignments),
        }

    _echo(_run(snap))


@registry_group.group("mqtt-auth")
def mqtt_auth() -> None:
    """Broker-side MQTT authentication of LEVER units (Mosquitto password file + ACL)."""


@mqtt_auth.command("enable")
@click.option(
    "--bridge-user",
    default=None,
    help="The bridge's account (default: KNEELOAD_MQTT_USERNAME, else kneeload-bridge).",
)
@click.option(
    "--wait-s",
    type=float,
    default=60.0,
    show_default=True,
    help="How long to wait for connected bridges to log in with their account.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Switch even if a connected bridge is still anonymous (it loses messages until it "
    "reconnects with an account).",
)
def mqtt_enable(bridge_user: str | None, wait_s: float, force: bool) -> None:
    """Per-device MQTT accounts on: each LEVER unit logs in with its device id and API key and
    publishes only below <root>/<its id>/, anonymous clients keep only the health topic.

    \b
    Safe on a running deployment — no message is lost:
      1. the bridge's account is created (password: KNEELOAD_MQTT_PASSWORD, else the stored
         one, else generated and stored in the account file, mode 600 — never printed);
      2. every bridge connected now is waited for until it is logged in with a bridge account
         (a bridge without credentials of its own picks the stored account up by itself and
         logs in again with its persistent session, so queued messages carry over);
      3. only then is the broker told (password file + ACL, SIGHUP).
    Units must already send their id and key (the broker ignored them while anonymous).
    Works without a reachable broker too (compose's init: files only, applied at its start).
    """
    import time

    from kneeload.bridge.mqttauth import (
        BRIDGE_ROLE,
        BrokerUnreachableError,
        MqttAuth,
        connected_bridges,
    )
    from kneeload.settings import get_settings, reveal

    s = get_settings()
    auth = MqttAuth(s)
    user, password = auth.ensure_bridge_account(
        bridge_user or s.mqtt_username, reveal(s.mqtt_password)
    )
    report: dict[str, Any] = {"account": user, "files": str(auth.dir)}
    stored = auth.account()
    if stored is not None and stored[0] == user:
        report["account_file"] = str(auth.account_file)
    if auth.enabled:
        report["already_enabled"] = True
    else:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                bridges = connected_bridges(s, username=user, password=password)
            except BrokerUnreachableError as exc:
                report["broker"] = f"not reachable ({exc}): files written, applied when it starts"
                break
            logins = {u for u, v in auth.users().items() if v["role"] == BRIDGE_ROLE}
            waiting = sorted(c for c, b in bridges.items() if b.get("username") not in logins)
            report["bridges"] = {c: b.get("username") or "anonymous" for c, b in bridges.items()}
            if not bridges:
                report["warning"] = (
                    "no bridge is connected: one that connects later with an account loses "
                    "nothing; an offline anonymous session's queued messages are not delivered"
                )
            if not waiting or force:
                break
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"bridge(s) {', '.join(waiting)} still connected without a bridge account "
                    f"after {wait_s:g} s; nothing was switched. Give them KNEELOAD_MQTT_USERNAME/"
                    f"_PASSWORD of account {user!r} (or let them use {auth.account_file}) and "
                    "run this again, or --force to switch anyway (they lose messages)."
                )
            time.sleep(1.0)
    changed = auth.enable()
    report |= {"enabled": True, "changed": changed, "broker_reloaded": auth.reload()}
    _echo(report)


@mqtt_auth.command("disable")
def mqtt_disable() -> None:
    """Back to anonymous MQTT on the local broker (accounts are kept for the next enable)."""
    from kneeload.bridge.mqttauth import MqttAuth

    auth = MqttAuth()
    changed = auth.disable()
    _echo({"enabled": False, "changed": changed, "broker_reloaded": auth.reload()})


@mqtt_auth.command("sync")
def mqtt_sync() -> None:
    """Remove MQTT accounts of units that the registry no longer allows (revoked, deleted,
    not a LEVER unit). Keys cannot be re-derived from digests: new keys are added when created."""
    from kneeload.bridge.mqttauth import MqttAuth

    async def sync(_w: Any, v: Any) -> dict[str, Any]:
        auth = MqttAuth(v.settings)
        stale = [
            u
            for u in auth.units()
            if (d := v.device(u)) is None or d["revoked"] or d["kind"] != "lever_unit"
        ]
        removed = auth.remove(*stale)
        return {"removed": removed, "units": auth.units(), "broker_reloaded": auth.reload()}

    _echo(_run(sync))


@mqtt_auth.command("status")
def mqtt_status() -> None:
    """Whether authentication is on, which accounts exist, which bridges are connected as whom."""
    from kneeload.bridge.mqttauth import BrokerUnreachableError, MqttAuth, bridge_credentials
    from kneeload.bridge.mqttauth import connected_bridges as bridges_now
    from kneeload.settings import get_settings

    s = get_settings()
    auth = MqttAuth(s)
    user, password, _ = bridge_credentials(s)
    try:
        bridges: Any = {
            c: b.get("username") or "anonymous"
            for c, b in bridges_now(s, username=user, password=password).items()
        }
    except BrokerUnreachableError as exc:
        bridges = f"broker not reachable: {exc}"
    _echo(
        {
            "enabled": auth.enabled,
            "dir": str(auth.dir),
            "accounts": {u: v["role"] for u, v in auth.users().items()},
            "bridges_connected": bridges,
        }
    )


def register(group: click.Group) -> None:
    group.add_command(registry_group)
