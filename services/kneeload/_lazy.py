"""Lazy package exports (PEP 562): ``from kneeload.registry import RegistryView`` imports the
module that defines it on first use, so importing a package for one light submodule (a
service's ``cli``) does not import polars, jsonschema or the Kafka client with it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, modules: Mapping[str, Iterable[str]], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that resolves each name of ``modules``
    (``{"submodule": ["Name", ...]}``) from its submodule and caches it in ``namespace``."""
    where = {name: f"{package}.{mod}" for mod, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
