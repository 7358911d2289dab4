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
    from kneeload.logs import install

    install()  # from here on no log line of any service carries a secret


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
    """Print the effective settings, where each comes from, and what it means. Secrets are
    masked: SecretStr values, passwords inside URLs, the routing document's webhook URLs."""
    import os

    import orjson

    from kneeload.logs import known_secrets, redact
    from kneeload.settings import SecretStr, Settings, _env_file, get_settings

    s = get_settings()
    secrets = known_secrets(s)
    env_file = _env_file()
    in_file = set()
    if env_file.exists():
        in_file = {
            ln.split("=", 1)[0].strip() for ln in env_file.read_text().splitlines() if "=" in ln
        }
    out = {}
    for name, field in Settings.model_fields.items():
        key = f"KNEELOAD_{name.upper()}"
        value = getattr(s, name)
        secret = isinstance(value, SecretStr)
        if value is None:
            text = None
        elif secret:
            text = "**********"
        else:
            text = redact(str(value), secrets)
        source = (
            "environment" if key in os.environ else str(env_file) if key in in_file else "default"
        )
        if source == "default" and value is not None and name in ("mqtt_username", "mqtt_password"):
            source = "KNEELOAD_MQTT_URL"
        out[key] = {"value": text, "source": source, "secret": secret, "help": field.description}
    click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


_discover()


def main() -> None:
    root(prog_name="kneeload")
