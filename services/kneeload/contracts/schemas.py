"""Finding and loading the JSON Schemas under the repository's ``schemas/``."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA_BASE_URI",
    "SchemaNotFoundError",
    "load_schema",
    "schema_names",
    "schemas_dir",
]

SCHEMA_BASE_URI = "https://kneeload.dev/schemas/"
_SUFFIX = ".schema.json"


class SchemaNotFoundError(LookupError):
    """No schema of that name (or no schemas directory at all)."""


def schemas_dir() -> Path:
    """The directory holding ``<name>.schema.json``.

    ``KNEELOAD_SCHEMAS_DIR`` wins (an installed package outside a checkout points it
    at a copy of ``schemas/``); otherwise the checkout's ``schemas/`` found from
    :data:`kneeload.settings.REPO_ROOT`.
    """
    from kneeload.settings import REPO_ROOT, get_settings

    configured = get_settings().schemas_dir
    candidates = [configured] if configured is not None else [REPO_ROOT / "schemas"]
    for path in candidates:
        if path.is_dir() and any(path.glob("*" + _SUFFIX)):
            return path
    raise SchemaNotFoundError(
        f"no JSON schemas found at {candidates[0]} "
        "(set KNEELOAD_SCHEMAS_DIR to the directory holding <name>.schema.json)"
    )


@cache
def schema_names() -> tuple[str, ...]:
    """Names of all schemas, sorted (``watch_sample_batch``, ...)."""
    return tuple(sorted(p.name[: -len(_SUFFIX)] for p in schemas_dir().glob("*" + _SUFFIX)))


@cache
def _load(name: str) -> dict[str, Any]:
    path = schemas_dir() / f"{name}{_SUFFIX}"
    if not path.is_file():
        raise SchemaNotFoundError(f"unknown schema {name!r}; known: {', '.join(schema_names())}")
    with path.open("rb") as fh:
        schema: dict[str, Any] = json.load(fh)
    expected_id = f"{SCHEMA_BASE_URI}{name}.json"
    if schema.get("$id") != expected_id:
        raise SchemaNotFoundError(f"{path}: $id is {schema.get('$id')!r}, expected {expected_id!r}")
    return schema


def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``name`` (a fresh copy; callers may mutate it)."""
    return copy.deepcopy(_load(name))


def examples_dir(name: str) -> Path:
    """``schemas/examples/<name>/`` (valid-*.json and invalid-*.json)."""
    return schemas_dir() / "examples" / name
