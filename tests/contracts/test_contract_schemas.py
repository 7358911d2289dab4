"""The schemas themselves: valid 2020-12, portable to the fast validator, consistent style."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from kneeload.contracts import PORTABLE_KEYWORDS, SCHEMA_BASE_URI, load_schema, schema_names
from kneeload.contracts.schemas import schemas_dir

ALL = schema_names()
EXPECTED = {
    "watch_sample_batch", "treadmill_telemetry", "bws_setpoint_change", "pain_report",
    "athlete_record", "device_record", "unit_assignment", "sample_load", "minute_load",
    "session_summary", "daily_load", "pain_response", "correlation", "alert", "unit_status",
    "dead_letter",
}  # fmt: skip
ANNOTATIONS = {"description", "title", "$comment", "examples", "deprecated"}
# Numeric fields without a physical unit (counts, ratios, statistics, scales named in the field).
DIMENSIONLESS = {
    "samples", "revision", "n", "df", "r", "ci_low", "ci_high", "p_value", "acute", "chronic",
    "acwr", "load", "monotony", "strain", "atl", "ctl", "tsb", "session_rpe",
    "minutes_used_today",
    # counts of samples per session (like "samples")
    "samples_estimated", "samples_without_estimate", "samples_walking",
    "samples_cadence_corrected", "samples_contact_estimated",
    # running samples of a unit-day that entered its calibration figures
    "calibration_samples",
}  # fmt: skip
UNIT_SUFFIXES = (
    "_mps", "_spm", "_ms", "_mm", "_pct", "_w", "_bpm", "_m", "_bw", "_kg", "_mpa", "_mpa_s",
    "_s", "_nrs", "_days", "_per_km",
    "_pp",  # percentage points (a difference of two _pct values)
)  # fmt: skip
BAD_TIMESTAMPS = (
    "2024-06-10T06:13:20",
    "2024-06-10 06:13:20Z",
    "1999-12-31T23:59:59Z",
    "2024-06-10T06:13:20Z\n",
    "2024-6-10T06:13:20Z",
    "2024-06-10T24:00:00Z",
)
TIME_NAMES = re.compile(r"(^time$|_time$|_at$|^since$|^last_seen$|^minute$)")


def subschemas(schema: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema with its location (only schema positions, not data)."""
    if not isinstance(schema, dict):
        return
    yield where, schema
    for kw in ("properties", "$defs"):
        for k, v in schema.get(kw, {}).items():
            yield from subschemas(v, f"{where}/{kw}/{k}")
    for kw in ("items", "additionalProperties", "not", "if", "then", "else"):
        if isinstance(schema.get(kw), dict):
            yield from subschemas(schema[kw], f"{where}/{kw}")
    for kw in ("allOf", "anyOf", "oneOf"):
        for i, v in enumerate(schema.get(kw, [])):
            yield from subschemas(v, f"{where}/{kw}/{i}")


def field_schemas(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(location, field name, schema) of every declared field (not inside if/then/else)."""
    for where, sub in subschemas(schema):
        if any(seg in where.split("/") for seg in ("if", "then", "else")):
            continue
        for name, prop in sub.get("properties", {}).items():
            yield where, name, prop


def test_the_expected_schemas_exist() -> None:
    assert set(ALL) == EXPECTED


@pytest.mark.parametrize("name", ALL)
def test_schema_is_valid_2020_12(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"{SCHEMA_BASE_URI}{name}.json"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert (schemas_dir() / f"{name}.schema.json").is_file()
    assert schema.get("description")


@pytest.mark.parametrize("name", ALL)
def test_schema_uses_only_keywords_with_the_same_meaning_in_draft7(name: str) -> None:
    for where, sub in subschemas(load_schema(name)):
        unknown = set(sub) - PORTABLE_KEYWORDS
        assert not unknown, f"{where}: {unknown} not in PORTABLE_KEYWORDS"
        if "$ref" in sub:  # draft-07 (and fastjsonschema) ignore siblings of $ref
            assert set(sub) - {"$ref"} <= ANNOTATIONS, f"{where}: keywords beside $ref"
            assert sub["$ref"].startswith("#/$defs/"), f"{where}: only local $defs refs"
        if "enum" in sub or "const" in sub:  # 1 == True in Python; type must tell them apart
            assert "type" in sub, f"{where}: enum/const without type"
        assert "default" not in sub


@pytest.mark.parametrize("name", ALL)
def test_patterns_mean_the_same_in_python_and_ecma262(name: str) -> None:
    for where, sub in subschemas(load_schema(name)):
        pattern = sub.get("pattern")
        if pattern is None:
            continue
        re.compile(pattern)
        # \d \w \s match Unicode in Python, ASCII in ECMA-262; spell classes out.
        assert not re.search(r"(?<!\\)\\[dwsDWS]", pattern), f"{where}: {pattern}"
        assert pattern.startswith("^") and pattern.endswith("$"), f"{where}: anchor patterns"
        assert "$" not in pattern[:-1], f"{where}: '$' only as the final anchor"


@pytest.mark.parametrize("name", ALL)
def test_event_objects_are_closed_and_fields_documented(name: str) -> None:
    for where, sub in subschemas(load_schema(name)):
        segs = where.split("/")
        if "properties" in sub and not {"if", "then", "else"} & set(segs):
            assert sub.get("additionalProperties") is False, f"{where}: additionalProperties"
            assert set(sub.get("required", [])) <= set(sub["properties"]), where
    for where, field, prop in field_schemas(load_schema(name)):
        assert prop.get("description"), f"{where}/{field}: no description"


@pytest.mark.parametrize("name", ALL)
def test_numeric_fields_carry_their_unit_in_the_name(name: str) -> None:
    for where, field, prop in field_schemas(load_schema(name)):
        types = prop.get("type", [])
        types = [types] if isinstance(types, str) else types
        if {"number", "integer"} & set(types) and field not in DIMENSIONLESS:
            assert field.endswith(UNIT_SUFFIXES), f"{where}/{field}: unit missing from the name"


@pytest.mark.parametrize("name", ALL)
def test_timestamps_are_rfc3339_enforced_by_pattern(name: str) -> None:
    for where, field, prop in field_schemas(load_schema(name)):
        if TIME_NAMES.search(field):
            assert prop.get("format") == "date-time", f"{where}/{field}"
        if prop.get("format") == "date-time":
            assert "pattern" in prop, f"{where}/{field}: fast validator needs the pattern"
            rx = re.compile(prop["pattern"].replace("$", r"\Z"))
            assert rx.search("2024-06-10T06:13:20Z")
            assert rx.search("2024-06-10T06:13:20.123456+05:30")
            for bad in BAD_TIMESTAMPS:
                assert not rx.search(bad), f"{where}/{field} accepts {bad!r}"
