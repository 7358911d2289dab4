"""Shared fixtures of the contract and topic tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kneeload.contracts import examples_dir, schema_names


def example_files() -> list[tuple[str, Path]]:
    """(schema name, example path) for every example of every schema."""
    return [
        (name, path)
        for name in schema_names()
        for path in sorted(examples_dir(name).glob("*.json"))
    ]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
