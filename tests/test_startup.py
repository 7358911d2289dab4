"""`kneeload --help` and every command's help start without the heavy libraries (issue #20).

Start-up time itself is measured by ``make bench`` (loadtests/bench_startup.py, beside a bare
interpreter start); this test pins down the cause, which does not depend on the machine's load:
which modules a command line that only prints help has imported.
"""

from __future__ import annotations

import subprocess
import sys

import orjson

#: libraries that cost tens to hundreds of milliseconds to import; none is needed to list
#: commands or print help
HEAVY = (
    "aiokafka",
    "faust",
    "fastapi",
    "fastjsonschema",
    "fitdecode",
    "httpx",
    "jinja2",
    "jsonschema",
    "kafka",
    "matplotlib",
    "msgspec",
    "numpy",
    "paho",
    "polars",
    "psycopg",
    "pydantic",
    "pydantic_settings",
    "rich",
    "starlette",
    "uvicorn",
)

PROBE = """
import sys, click, orjson
from click.testing import CliRunner
import kneeload.cli as cli
cli._discover()

undocumented = []

def walk(group, path):
    for name in sorted(group.commands):
        cmd = group.commands[name]
        if not (cmd.help or cmd.short_help):
            undocumented.append(" ".join([*path, name]))
        yield [*path, name]
        if isinstance(cmd, click.Group):
            yield from walk(cmd, [*path, name])

paths = [[], *walk(cli.root, [])]
codes = {" ".join(p): CliRunner().invoke(cli.root, [*p, "--help"]).exit_code for p in paths}
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))
found = {"commands": sorted(cli.root.commands), "codes": codes, "heavy": heavy}
print(orjson.dumps({**found, "undocumented": undocumented}).decode())
"""


def test_help_of_every_command_imports_no_heavy_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *HEAVY], capture_output=True, text=True, check=True
    ).stdout
    found = orjson.loads(out.splitlines()[-1])
    assert len(found["commands"]) > 10, found
    failed = {cmd: code for cmd, code in found["codes"].items() if code != 0}
    assert failed == {}, f"`kneeload <command> --help` failed: {failed}"
    assert found["undocumented"] == [], f"these commands have no help text: {found['undocumented']}"
    # nested commands are walked too (``kneeload stack status --help`` …)
    assert "stack status" in found["codes"] and "fleet" in found["codes"], found["codes"]
    assert found["heavy"] == [], (
        f"`kneeload … --help` imported {found['heavy']}: import them inside the command "
        "(see kneeload._lazy for package exports)"
    )
