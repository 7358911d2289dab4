"""The ``kneeload`` command line.

Each service contributes its commands from a module ``kneeload.<service>.cli``
that exposes ``register(group: click.Group) -> None``. The root group discovers
them, so a service adds a command without touching this file.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

import kneeload


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(kneeload.__version__, prog_name="kneeload")
def root() -> None:
    """kneeload — streaming knee-load telemetry for runners with patellofemoral pain.

    Every PFJ figure kneeload prints is a model ESTIMATE, not a measurement.
    Configuration comes from KNEELOAD_* environment variables (see `kneeload settings`).
    """


def _discover() -> None:
    for mod in sorted(pkgutil.iter_modules(kneeload.__path__), key=lambda m: m.name):
        if not mod.ispkg:
            continue
        try:
            cli_mod = importlib.import_module(f"kneeload.{mod.name}.cli")
        except ModuleNotFoundError as exc:
            if exc.name == f"kneeload.{mod.name}.cli":
                continue
            raise
        cli_mod.register(root)


@root.command("settings")
def settings_cmd() -> None:
    """Print the effective settings (secrets masked) and where each comes from."""
    import orjson

    from kneeload.settings import Settings, get_settings

    s = get_settings()
    out = {}
    for name, field in Settings.model_fields.items():
        value = getattr(s, name)
        text = str(value) if value is not None else None
        if text and ("token" in name or "password" in name):
            text = "***"
        if text and name == "database_url" and "@" in text and ":" in text.split("@")[0][13:]:
            user_part, host_part = text.split("@", 1)
            text = user_part.rsplit(":", 1)[0] + ":***@" + host_part
        out[f"KNEELOAD_{name.upper()}"] = {"value": text, "help": field.description}
    click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


_discover()


def main() -> None:
    root(prog_name="kneeload")
