"""A small typed settings base read from the environment, without pydantic (issue #20).

``kneeload settings`` and ``kneeload stack status`` spent most of their start importing
pydantic and pydantic-settings (~0.3 s of a 0.4 s command); every command reads the settings.
This base keeps what :class:`kneeload.settings.Settings` used of them:

* fields declared as annotated class attributes with :func:`Field` (default, description,
  numeric bounds ``ge``/``gt``/``le``/``lt``), listed in ``model_fields``;
* values from keyword arguments, then the environment (``<prefix><NAME>``, any case), then
  an env file (``_env_file=``: ``KEY=value`` lines, ``#`` comments, optional quotes and
  ``export``), then the defaults — the precedence of pydantic-settings;
* text coerced to the annotated type (``str``, ``int``, ``float``, ``bool``, ``Path``,
  :class:`SecretStr`, ``Literal[...]``, ``X | None``); a value that does not fit raises
  :class:`SettingsError` (a ``ValueError``) naming the variable;
* ``model_copy(update=...)`` (no re-validation, as pydantic), ``model_dump``,
  ``model_dump_json``, equality and a repr whose secrets are masked.
"""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

__all__ = ["EnvSettings", "Field", "FieldInfo", "SecretStr", "SettingsError"]

_MASK = "**********"


class SecretStr:
    """A secret text: ``str``/``repr`` print ``**********``; read it with
    :meth:`get_secret_value` at the point of use (pydantic's ``SecretStr`` interface)."""

    __slots__ = ("_secret_value",)

    def __init__(self, secret_value: str) -> None:
        self._secret_value = secret_value

    def get_secret_value(self) -> str:
        return self._secret_value

    def __str__(self) -> str:
        return _MASK if self._secret_value else ""

    def __repr__(self) -> str:
        return f"SecretStr('{self}')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._secret_value == self._secret_value

    def __hash__(self) -> int:
        return hash(self._secret_value)

    def __len__(self) -> int:
        return len(self._secret_value)


class SettingsError(ValueError):
    """A setting's value does not fit its type or bounds."""


class FieldInfo:
    """One declared setting: default, description, bounds, and (once the class is built)
    its annotation."""

    __slots__ = ("annotation", "default", "description", "ge", "gt", "le", "lt")

    def __init__(
        self,
        default: Any,
        description: str | None,
        ge: float | None,
        gt: float | None,
        le: float | None,
        lt: float | None,
    ) -> None:
        self.default, self.description = default, description
        self.ge, self.gt, self.le, self.lt = ge, gt, le, lt
        self.annotation: Any = None


def Field(  # pydantic's spelling, so the declarations read the same
    default: Any = None,
    *,
    description: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """Declare a setting (typed ``Any`` so ``x: int = Field(5)`` type-checks)."""
    return FieldInfo(default, description, ge, gt, le, lt)


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def _coerce(tp: Any, value: Any) -> Any:
    """``value`` as type ``tp`` (text from the environment, or a Python value)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if tp is SecretStr:
        if isinstance(value, SecretStr):
            return value
        if hasattr(value, "get_secret_value"):  # a pydantic SecretStr
            return SecretStr(value.get_secret_value())
        if isinstance(value, str):
            return SecretStr(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value.strip())
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, str | os.PathLike):
            return Path(value)
    else:
        raise TypeError(f"unsupported setting type {tp!r}")
    raise ValueError(f"expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _check_bounds(f: FieldInfo, value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    for bound, ok, text in (
        (f.ge, lambda b: value >= b, "≥"),
        (f.gt, lambda b: value > b, ">"),
        (f.le, lambda b: value <= b, "≤"),
        (f.lt, lambda b: value < b, "<"),
    ):
        if bound is not None and not ok(bound):
            raise ValueError(f"must be {text} {bound}, got {value!r}")


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a dotenv file (``#`` comments, ``export``, quotes stripped)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


class EnvSettings:
    """Base of a settings class (see the module doc). Subclasses set ``env_prefix``."""

    env_prefix: ClassVar[str] = ""
    model_fields: ClassVar[dict[str, FieldInfo]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hints = typing.get_type_hints(cls)
        fields: dict[str, FieldInfo] = {}
        for name, tp in hints.items():
            if typing.get_origin(tp) is ClassVar or name.startswith("_"):
                continue
            default = cls.__dict__.get(name)
            f = default if isinstance(default, FieldInfo) else FieldInfo(default, *[None] * 5)
            f.annotation = tp
            fields[name] = f
            if name in cls.__dict__:
                delattr(cls, name)  # instances hold the values
        cls.model_fields = fields

    def __init__(self, _env_file: Path | str | None = None, **values: Any) -> None:
        env = {k.upper(): v for k, v in os.environ.items()}
        in_file = read_env_file(Path(_env_file)) if _env_file and Path(_env_file).exists() else {}
        in_file = {k.upper(): v for k, v in in_file.items()}
        for name, f in self.model_fields.items():
            key = f"{self.env_prefix}{name}".upper()
            if name in values:
                raw, where = values[name], name
            elif key in env:
                raw, where = env[key], key
            elif key in in_file:
                raw, where = in_file[key], f"{key} ({_env_file})"
            else:
                object.__setattr__(self, name, f.default)
                continue
            try:
                value = _coerce(f.annotation, raw)
                _check_bounds(f, value)
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"{where}: {exc}") from None
            object.__setattr__(self, name, value)
        self.model_post_init()

    def model_post_init(self) -> None:
        """Cross-field adjustments after the values are read (subclasses override)."""

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Self:
        """A copy with ``update``'s values as given (not coerced, as pydantic's)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        for k, v in (update or {}).items():
            object.__setattr__(new, k, v)
        return new

    def model_dump(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields}

    def model_dump_json(self) -> str:
        """The values as JSON; secrets masked, paths as text."""
        import orjson

        def enc(v: Any) -> Any:
            if isinstance(v, SecretStr):
                return str(v)
            if isinstance(v, Path):
                return str(v)
            raise TypeError

        return orjson.dumps(self.model_dump(), default=enc).decode()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EnvSettings) or type(other) is not type(self):
            return False
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.model_dump().items())
        return f"{type(self).__name__}({inner})"

    def __str__(self) -> str:
        return " ".join(f"{k}={v!r}" for k, v in self.model_dump().items())
