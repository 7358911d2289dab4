"""``kneeload demo`` (run the end-to-end demo), ``kneeload demo stop`` and ``status``."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("demo", invoke_without_command=True)
@click.option("--athletes", type=int, default=12, show_default=True, help="Runners in the team.")
@click.option("--units", type=int, default=6, show_default=True, help="LEVER units in the clinic.")
@click.option(
    "--weeks", type=int, default=8, show_default=True, help="Weeks of event time, ending now."
)
@click.option(
    "--duration-scale",
    type=float,
    default=0.4,
    show_default=True,
    help="Scale of every run's duration: 0.4 keeps `make demo` under 5 minutes on 2 cores "
    "(about 230,000 samples); 1.0 gives full-length 30–60 min runs.",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where demo-summary.json and team-overview.html go (default: out/ of the checkout).",
)
@click.option(
    "--stop-services/--keep-services",
    default=False,
    show_default=True,
    help="Stop the demo's services at the end (default: keep them up for exploration).",
)
@click.option(
    "--name",
    default="demo",
    show_default=True,
    callback=lambda c, p, v: _name(v),
    help="Names what the demo owns: topics <name>-*, database kneeload_<name>, var/<name>/.",
)
@click.pass_context
def demo_group(
    ctx: click.Context,
    athletes: int,
    units: int,
    weeks: int,
    duration_scale: float,
    seed: int,
    out_dir: Path | None,
    stop_services: bool,
    name: str,
) -> None:
    """Run the whole platform end to end on a simulated team and LEVER clinic.

    Resets the demo's own data first (topics demo-*, database kneeload_demo), starts the
    services, drives HTTP/MQTT/FIT ingest, waits for the pipeline to drain and writes
    out/demo-summary.json and out/team-overview.html. The exit code is 1 when a planted
    situation was not caught. Needs the local stack (`make up`).
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console

    from kneeload.demo.run import DemoOptions, run_demo
    from kneeload.demo.services import DemoError
    from kneeload.settings import REPO_ROOT

    opts = DemoOptions(
        athletes=athletes,
        units=units,
        weeks=weeks,
        duration_scale=duration_scale,
        seed=seed,
        out_dir=out_dir or REPO_ROOT / "out",
        stop_services=stop_services,
        name=name,
    )
    console = Console()
    try:
        code = run_demo(opts, console)
    except DemoError as exc:
        console.print(f"[red bold]demo failed:[/] {exc}")
        raise SystemExit(2) from None
    raise SystemExit(code)


def _name(v: str) -> str:
    import re

    if not re.fullmatch(r"[a-z][a-z0-9]{0,30}", v):
        raise click.BadParameter("lower-case letters and digits, starting with a letter")
    return v


@demo_group.command("stop")
@click.option("--name", default="demo", show_default=True)
def stop_cmd(name: str) -> None:
    """Stop the demo's services (the stack keeps running; `make down` stops it)."""
    from kneeload.demo.services import DemoPaths, stop_services
    from kneeload.settings import get_settings

    stopped = stop_services(DemoPaths.at(get_settings().var_dir, _name(name)))
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "no demo service was running")


@demo_group.command("status")
@click.option("--name", default="demo", show_default=True)
def status_cmd(name: str) -> None:
    """Which demo services run, with their pid and log."""
    from kneeload.demo.services import DemoPaths, read_state, service_status
    from kneeload.settings import get_settings

    paths = DemoPaths.at(get_settings().var_dir, _name(name))
    state = read_state(paths)
    if state:
        run, prefix, db = state.get("run_id"), state.get("prefix"), state.get("database")
        click.echo(f"last run {run}: topics {prefix}*, database {db}")
    for name, st in service_status(paths).items():
        state_word = "running" if st["running"] else "stopped"
        click.echo(f"  {name:<12} {state_word:<8} pid {st['pid']}  {st['log']}")


def register(group: click.Group) -> None:
    group.add_command(demo_group)
