"""JSON encoding and decoding for the hot paths (orjson), strict about numbers.

JSON has no NaN or Infinity. orjson refuses them when parsing but silently writes
``null`` for a non-finite float, which would turn a sensor fault into a missing
value. :func:`dumps` therefore checks floats first and raises
:class:`NonFiniteNumberError` naming the offending path; :func:`loads` turns
orjson's terse messages for ``NaN``/``Infinity``/``1e400`` into the same error.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

__all__ = ["JSONError", "NonFiniteNumberError", "dumps", "loads"]

_DUMPS_OPTIONS = orjson.OPT_UTC_Z


class JSONError(ValueError):
    """The value cannot be encoded as, or the bytes are not, valid JSON."""


class NonFiniteNumberError(JSONError):
    """NaN or ±Infinity where JSON allows only finite numbers."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


def _pointer(parts: list[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _find_non_finite(obj: Any) -> list[str | int] | None:
    """Path to the first NaN/±inf float in ``obj`` (dicts, lists, tuples), or None."""
    stack: list[tuple[Any, list[str | int]]] = [(obj, [])]
    while stack:
        value, path = stack.pop()
        t = type(value)
        if t is float:
            if not math.isfinite(value):
                return path
        elif t is dict:
            for k, v in value.items():
                tv = type(v)
                if tv is float:
                    if not math.isfinite(v):
                        return [*path, k]
                elif tv is dict or tv is list or tv is tuple:
                    stack.append((v, [*path, k]))
        elif t is list or t is tuple:
            for i, v in enumerate(value):
                stack.append((v, [*path, i]))
        elif isinstance(value, float) and not math.isfinite(value):  # float subclasses
            return path
    return None


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` as compact UTF-8 JSON bytes.

    Datetimes are written as RFC 3339 (UTC as ``Z``). Raises
    :class:`NonFiniteNumberError` for NaN/±Infinity anywhere in ``obj`` and
    :class:`JSONError` for anything else JSON cannot represent.
    """
    bad = _find_non_finite(obj)
    if bad is not None:
        where = _pointer(bad) or "(root)"
        raise NonFiniteNumberError(
            f"non-finite number (NaN or Infinity) at {where}: JSON allows only finite numbers",
            _pointer(bad),
        )
    try:
        return orjson.dumps(obj, option=_DUMPS_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise JSONError(f"cannot encode as JSON: {exc}") from exc


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON. Raises :class:`NonFiniteNumberError` for NaN/Infinity literals
    and numbers out of the double range, :class:`JSONError` for any other invalid JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        msg = str(exc)
        if "infinity" in msg.lower():
            raise NonFiniteNumberError(
                f"number out of range of a finite double at char {exc.pos}: {msg}"
            ) from exc
        doc = exc.doc if isinstance(exc.doc, str) else ""
        tail = doc[exc.pos : exc.pos + 9].lstrip("-+")
        if tail.startswith(("NaN", "Infinity", "inf", "nan")):
            raise NonFiniteNumberError(
                f"NaN/Infinity at char {exc.pos} is not valid JSON (only finite numbers are)"
            ) from exc
        raise JSONError(f"invalid JSON: {msg}") from exc
