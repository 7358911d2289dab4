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
import sys, orjson
from click.testing import CliRunner
import kneeload.cli as cli
cli._discover()
names = sorted(cli.root.commands)
codes = [CliRunner().invoke(cli.root, ["--help"]).exit_code]
for name in names:
    codes.append(CliRunner().invoke(cli.root, [name, "--help"]).exit_code)
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))
print(orjson.dumps({"commands": names, "codes": codes, "heavy": heavy}).decode())
"""


def test_help_of_every_command_imports_no_heavy_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *HEAVY], capture_output=True, text=True, check=True
    ).stdout
    found = orjson.loads(out.splitlines()[-1])
    assert len(found["commands"]) > 10 and set(found["codes"]) == {0}, found
    assert found["heavy"] == [], (
        f"`kneeload … --help` imported {found['heavy']}: import them inside the command "
        "(see kneeload._lazy for package exports)"
    )
