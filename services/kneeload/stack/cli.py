"""``kneeload stack up|down|status`` — the local development and CI stack."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import click

#: the stack's components in start order; each is the module ``kneeload.stack.<name>``,
#: imported when a command runs (``kneeload --help`` stays cheap)
COMPONENTS = ("kafka", "postgres", "mosquitto")


def _component(name: str) -> ModuleType:
    return importlib.import_module(f"kneeload.stack.{name}")


def _selected(names: tuple[str, ...]) -> list[str]:
    return list(names) or list(COMPONENTS)


@click.group("stack")
def stack() -> None:
    """Run the local stack: Apache Kafka (KRaft), PostgreSQL 15 and Mosquitto under var/."""


@stack.command("up")
@click.argument("components", nargs=-1, type=click.Choice(COMPONENTS))
@click.option(
    "--record",
    type=click.Path(path_type=Path),
    default=None,
    help="Append the names of components this call started to FILE (so a caller stops only those).",
)
def up(components: tuple[str, ...], record: Path | None) -> None:
    """Start what is not running and wait until each passes its health check. Safe to repeat."""
    from kneeload.settings import get_settings
    from kneeload.stack.procs import StackError

    s = get_settings()
    started = []
    for name in _selected(components):
        click.echo(f"{name:<10} starting…", nl=False)
        try:
            did = _component(name).start(s)
        except StackError as exc:
            click.echo(" FAILED")
            raise click.ClickException(str(exc)) from exc
        click.echo(" started, healthy" if did else " already running, healthy")
        if name == "postgres":
            note = _component(name).preload_note(s)
            if note:
                click.echo(f"{'':<10} note: {note}", err=True)
        if did:
            started.append(name)
    if record is not None:
        with open(record, "a") as f:
            f.writelines(f"{n}\n" for n in started)


@stack.command("down")
@click.argument("components", nargs=-1, type=click.Choice(COMPONENTS))
@click.option(
    "--only-recorded",
    type=click.Path(path_type=Path),
    default=None,
    help="Stop only the components named in FILE (written by `up --record`), then remove it.",
)
def down(components: tuple[str, ...], only_recorded: Path | None) -> None:
    """Stop the stack (data under var/ is kept)."""
    from kneeload.settings import get_settings
    from kneeload.stack.procs import StackError

    s = get_settings()
    names = _selected(components)
    if only_recorded is not None:
        recorded = set(only_recorded.read_text().split()) if only_recorded.exists() else set()
        names = [n for n in names if n in recorded]
        only_recorded.unlink(missing_ok=True)
    for name in reversed(names):
        try:
            did = _component(name).stop(s)
        except StackError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{name:<10} {'stopped' if did else 'was not running'}")


@stack.command("status")
def status_cmd() -> None:
    """Report each component: running, endpoint, health. Exit code 1 if any is unhealthy."""
    from kneeload.settings import get_settings

    s = get_settings()
    bad = False
    for name in COMPONENTS:
        st = _component(name).status(s)
        ok = bool(st.get("healthy"))
        bad |= not ok
        click.echo(
            f"{name:<10} {'healthy' if ok else 'DOWN':<8} {st.get('endpoint')}"
            f"  log: {st.get('log')}"
        )
    if bad:
        raise SystemExit(1)


def register(group: click.Group) -> None:
    group.add_command(stack)
