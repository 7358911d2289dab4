"""Event contracts: the JSON Schemas under ``schemas/``, validated fast and explained well.

    >>> from kneeload import contracts
    >>> contracts.is_valid("pain_report", report)          # fast, compiled
    >>> contracts.errors("pain_report", report)            # [] or [{path, code, message}]
    >>> contracts.sample_contract().errors(sample)         # one sample of a watch batch
    >>> contracts.dumps(event); contracts.loads(raw)       # orjson, NaN/Infinity refused

The fast validator (fastjsonschema) answers every call; only when it rejects does the
reference 2020-12 validator (jsonschema) run to list the errors, so the valid path
stays fast. See :mod:`kneeload.contracts.validation` for why both agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kneeload._lazy import lazy_exports

if TYPE_CHECKING:
    from kneeload.contracts.deadletter import (
        DEAD_LETTER_MAX_ERRORS,
        DEAD_LETTER_PAYLOAD_MAX,
        dead_letter,
    )
    from kneeload.contracts.jsonutil import JSONError, NonFiniteNumberError, dumps, loads
    from kneeload.contracts.schemas import (
        SCHEMA_BASE_URI,
        SchemaNotFoundError,
        examples_dir,
        load_schema,
        schema_names,
        schemas_dir,
    )
    from kneeload.contracts.validation import (
        PORTABLE_KEYWORDS,
        SAMPLE_CONTRACT,
        Contract,
        ContractError,
        FieldError,
        all_contracts,
        errors,
        get_contract,
        is_valid,
        sample_contract,
        validate,
    )

__getattr__ = lazy_exports(
    __name__,
    {
        "deadletter": ["DEAD_LETTER_MAX_ERRORS", "DEAD_LETTER_PAYLOAD_MAX", "dead_letter"],
        "jsonutil": ["JSONError", "NonFiniteNumberError", "dumps", "loads"],
        "schemas": [
            "SCHEMA_BASE_URI",
            "SchemaNotFoundError",
            "examples_dir",
            "load_schema",
            "schema_names",
            "schemas_dir",
        ],
        "validation": [
            "PORTABLE_KEYWORDS",
            "SAMPLE_CONTRACT",
            "Contract",
            "ContractError",
            "FieldError",
            "all_contracts",
            "errors",
            "get_contract",
            "is_valid",
            "sample_contract",
            "validate",
        ],
    },
    globals(),
)

__all__ = [
    "DEAD_LETTER_MAX_ERRORS",
    "DEAD_LETTER_PAYLOAD_MAX",
    "PORTABLE_KEYWORDS",
    "SAMPLE_CONTRACT",
    "SCHEMA_BASE_URI",
    "Contract",
    "ContractError",
    "FieldError",
    "JSONError",
    "NonFiniteNumberError",
    "SchemaNotFoundError",
    "all_contracts",
    "dead_letter",
    "dumps",
    "errors",
    "examples_dir",
    "get_contract",
    "is_valid",
    "load_schema",
    "loads",
    "sample_contract",
    "schema_names",
    "schemas_dir",
    "validate",
]
