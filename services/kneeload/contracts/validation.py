"""Two validators per schema: a fast one for hot paths and the reference one for details.

* **Fast** — the schema compiled to Python by fastjsonschema. fastjsonschema knows
  drafts 4/6/7, not 2020-12, so the schema is compiled as draft-07 (``$schema``
  rewritten in memory). That is sound because the schemas use only keywords whose
  semantics are identical in draft-07 and 2020-12 (the test suite enforces the
  keyword whitelist :data:`PORTABLE_KEYWORDS`, "no siblings next to ``$ref``" and
  that both validators agree on every example and on generated objects).
  ``format`` is an annotation in both (timestamps are enforced by ``pattern``), and
  ``default`` is never applied, so validation never mutates the instance.
* **Typed** — before both, msgspec types generated from the schema
  (:mod:`kneeload.contracts.typed`) accept what they can; only what they refuse goes on.
* **Reference** — :class:`jsonschema.Draft202012Validator`, used only after the fast
  validator rejected, to produce machine-readable errors ``{path, code, message}``.
  Its ``pattern`` keyword is given ECMA-262 end-of-input semantics for ``$`` (Python's
  ``$`` also matches before a trailing newline; fastjsonschema already uses ``\\Z``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import fastjsonschema
import jsonschema
from jsonschema.exceptions import ValidationError

from kneeload.contracts.jsonutil import JSONError, NonFiniteNumberError, loads
from kneeload.contracts.schemas import load_schema, schema_names
from kneeload.contracts.typed import typed_check

__all__ = [
    "PORTABLE_KEYWORDS",
    "SAMPLE_CONTRACT",
    "Contract",
    "ContractError",
    "FieldError",
    "errors",
    "get_contract",
    "is_valid",
    "sample_contract",
    "validate",
]

#: Keywords allowed in kneeload schemas: same meaning in draft-07 and 2020-12.
PORTABLE_KEYWORDS = frozenset(
    {
        # annotations / structure
        "$schema", "$id", "$defs", "$ref", "$comment", "title", "description", "examples",
        "format", "deprecated", "readOnly", "writeOnly",
        # validation
        "type", "enum", "const",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "minLength", "maxLength", "pattern",
        "items", "minItems", "maxItems",
        "properties", "required", "additionalProperties", "minProperties", "maxProperties",
        "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
    }
)  # fmt: skip

#: Name of the per-sample contract (``$defs/sample`` of ``watch_sample_batch``).
SAMPLE_CONTRACT = "watch_sample_batch#sample"

_DRAFT07 = "http://json-schema.org/draft-07/schema#"
_MAX_MESSAGE = 300
_DOLLAR = re.compile(r"(?<!\\)\$")  # same rewrite as fastjsonschema
_FORMAT_TEXT = {
    "date-time": "an RFC 3339 date-time with timezone (Z or ±hh:mm) in year 2000 or later",
    "date": "a calendar date YYYY-MM-DD in year 2000 or later",
}


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation error: JSON Pointer ``path``, snake_case rule ``code``, ``message``."""

    path: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class ContractError(ValueError):
    """An instance does not satisfy its contract; ``errors`` says where and why."""

    def __init__(self, name: str, errors: list[FieldError]) -> None:
        self.name = name
        self.errors = errors
        first = f": {errors[0].path or '/'} {errors[0].code}: {errors[0].message}" if errors else ""
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"invalid {name}{first}{more}")

    def as_dicts(self) -> list[dict[str, str]]:
        return [e.as_dict() for e in self.errors]


# --------------------------------------------------------------------------- reference


@cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(_DOLLAR.sub(r"\\Z", pattern))


def _ecma_pattern(
    validator: Any, patrn: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _ecma_regex(patrn).search(instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


ReferenceValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _ecma_pattern}
)


def _pointer(parts: Iterable[Any]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _code(keyword: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", keyword).lower()


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _convert(err: ValidationError, out: list[FieldError]) -> None:
    path = list(err.absolute_path)
    kw = str(err.validator)
    inst = err.instance
    if kw in ("anyOf", "oneOf") and err.context:
        # Descend into the one branch that applied (others failed only on their root type).
        branches: dict[Any, list[ValidationError]] = {}
        for sub in err.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        applicable = [
            subs
            for subs in branches.values()
            if not (len(subs) == 1 and subs[0].validator == "type" and not subs[0].relative_path)
        ]
        if len(applicable) == 1:
            for sub in applicable[0]:
                _convert(sub, out)
            return
    if kw == "required" and isinstance(inst, dict):
        for prop in err.validator_value:
            if prop not in inst:
                out.append(
                    FieldError(
                        _pointer([*path, prop]), "required", f"{prop!r} is a required property"
                    )
                )
        return
    if kw == "additionalProperties" and isinstance(inst, dict) and err.validator_value is False:
        props = err.schema.get("properties", {})
        patterns = [re.compile(p) for p in err.schema.get("patternProperties", {})]
        for prop in inst:
            if prop not in props and not any(p.search(prop) for p in patterns):
                out.append(
                    FieldError(
                        _pointer([*path, prop]),
                        "additional_properties",
                        f"unexpected property {prop!r}",
                    )
                )
        return
    message = err.message
    if kw == "pattern" and err.schema.get("format") in _FORMAT_TEXT:
        message = f"{inst!r} is not {_FORMAT_TEXT[err.schema['format']]}"
    out.append(FieldError(_pointer(path), _code(kw), _short(message)))


def _reference_errors(validator: Any, instance: Any, max_errors: int) -> list[FieldError]:
    out: list[FieldError] = []
    for err in validator.iter_errors(instance):
        _convert(err, out)
        if len(out) >= max_errors:
            break
    seen: set[FieldError] = set()
    unique = []
    for e in out:
        if e not in seen:
            seen.add(e)
            unique.append(e)
    return unique[:max_errors]


# --------------------------------------------------------------------------- contract


def _fast_path(exc: fastjsonschema.JsonSchemaValueException) -> str:
    # fastjsonschema names the value like "data.samples[0].cadence_spm"
    parts = re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", (exc.name or "data")[4:])
    return _pointer(a or int(b) for a, b in parts)


class Contract:
    """Validators for one schema. Get instances with :func:`get_contract`."""

    def __init__(self, name: str, schema: dict[str, Any]) -> None:
        self.name = name
        self.schema = schema
        ReferenceValidator.check_schema(schema)
        self._reference = ReferenceValidator(schema)
        #: msgspec types generated from the schema: accepts only what the schema accepts
        #: (~4x faster than the compiled validator on a watch sample); None outside its subset.
        #: Built from a copy: fastjsonschema annotates the nested dicts it compiles.
        self._typed = typed_check(copy.deepcopy(schema))
        fast_schema = dict(schema)
        fast_schema["$schema"] = _DRAFT07
        self._fast = fastjsonschema.compile(
            fast_schema, use_default=False, use_formats=False, detailed_exceptions=True
        )

    def __repr__(self) -> str:
        return f"Contract({self.name!r})"

    # -- fast path -----------------------------------------------------------
    def is_valid(self, instance: Any) -> bool:
        """Fast check (typed msgspec check, then the compiled validator)."""
        if self._typed is not None and self._typed(instance):
            return True
        try:
            self._fast(instance)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    def errors(self, instance: Any, *, max_errors: int = 100) -> list[FieldError]:
        """``[]`` when valid (fast path); otherwise the reference validator's errors."""
        if self._typed is not None and self._typed(instance):
            return []
        try:
            self._fast(instance)
        except fastjsonschema.JsonSchemaValueException as exc:
            found = _reference_errors(self._reference, instance, max_errors)
            if not found:  # validators disagree: never report "invalid" without a reason
                found = [
                    FieldError(_fast_path(exc), _code(exc.rule or "invalid"), _short(exc.message))
                ]
            return found
        return []

    def validate(self, instance: Any) -> None:
        """Raise :class:`ContractError` (with the detailed error list) when invalid."""
        found = self.errors(instance)
        if found:
            raise ContractError(self.name, found)

    def decode(self, data: bytes | bytearray | memoryview | str) -> Any:
        """Parse JSON and validate; :class:`ContractError` for bad JSON (code
        ``invalid_json``/``non_finite_number``) or a contract violation."""
        try:
            instance = loads(data)
        except JSONError as exc:
            code = "non_finite_number" if isinstance(exc, NonFiniteNumberError) else "invalid_json"
            raise ContractError(self.name, [FieldError("", code, _short(str(exc)))]) from exc
        self.validate(instance)
        return instance

    # -- reference -----------------------------------------------------------
    def reference_is_valid(self, instance: Any) -> bool:
        """Check with the reference 2020-12 validator only (slow; tests, tooling)."""
        return bool(self._reference.is_valid(instance))

    def reference_errors(self, instance: Any, *, max_errors: int = 100) -> list[FieldError]:
        """All errors per the reference validator, without the fast pre-check."""
        return _reference_errors(self._reference, instance, max_errors)


@cache
def get_contract(name: str) -> Contract:
    """The (cached) contract of schema ``name``, or of :data:`SAMPLE_CONTRACT`."""
    if name == SAMPLE_CONTRACT:
        return sample_contract()
    return Contract(name, load_schema(name))


@cache
def sample_contract() -> Contract:
    """Contract of one sample of a ``watch_sample_batch`` (its ``$defs/sample``), for
    per-record validation at the gateway. Error paths are relative to the sample."""
    batch = load_schema("watch_sample_batch")
    schema = {
        "$schema": batch["$schema"],
        "$id": batch["$id"].removesuffix(".json") + "-sample.json",
        "description": batch["$defs"]["sample"].get("description", ""),
        "$defs": batch["$defs"],
        "$ref": "#/$defs/sample",
    }
    return Contract(SAMPLE_CONTRACT, schema)


def validate(name: str, instance: Any) -> None:
    """Raise :class:`ContractError` unless ``instance`` satisfies schema ``name``."""
    get_contract(name).validate(instance)


def is_valid(name: str, instance: Any) -> bool:
    """Fast check of ``instance`` against schema ``name``."""
    return get_contract(name).is_valid(instance)


def errors(name: str, instance: Any) -> list[dict[str, str]]:
    """Machine-readable errors (``[]`` when valid) of ``instance`` against ``name``."""
    return [e.as_dict() for e in get_contract(name).errors(instance)]


def all_contracts() -> dict[str, Contract]:
    """Every schema's contract, compiled (warm-up at service start)."""
    return {name: get_contract(name) for name in schema_names()}
