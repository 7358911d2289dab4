"""Every schema's examples pass and fail as labelled, under both validators."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kneeload.contracts import (
    ContractError,
    examples_dir,
    get_contract,
    sample_contract,
    schema_names,
    validate,
)

from .conftest import example_files, read_json

EXAMPLES = example_files()
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def _id(case: tuple[str, Path]) -> str:
    return f"{case[0]}/{case[1].name}"


@pytest.mark.parametrize("case", EXAMPLES, ids=[_id(c) for c in EXAMPLES])
def test_example_is_labelled_correctly_under_both_validators(case: tuple[str, Path]) -> None:
    name, path = case
    assert path.name.startswith(("valid-", "invalid-")), f"unlabelled example {path}"
    expected = path.name.startswith("valid-")
    instance = read_json(path)
    contract = get_contract(name)
    assert contract.is_valid(instance) is expected, "fast validator"
    assert contract.reference_is_valid(instance) is expected, "reference validator"
    errors = contract.errors(instance)
    assert (errors == []) is expected
    if not expected:
        for e in errors:
            d = e.as_dict()
            assert set(d) == {"path", "code", "message"}
            assert d["path"] == "" or d["path"].startswith("/")
            assert SNAKE.match(d["code"]), d
            assert d["message"] and len(d["message"]) <= 300
        with pytest.raises(ContractError) as info:
            validate(name, instance)
        assert info.value.as_dicts() == [e.as_dict() for e in errors]
    else:
        validate(name, instance)


@pytest.mark.parametrize("name", schema_names())
def test_every_schema_has_valid_and_several_invalid_examples(name: str) -> None:
    files = [p.name for p in examples_dir(name).glob("*.json")]
    assert sum(f.startswith("valid-") for f in files) >= 1
    assert sum(f.startswith("invalid-") for f in files) >= 3


@pytest.mark.parametrize("name", schema_names())
def test_invalid_examples_exercise_different_rules(name: str) -> None:
    # Several may hit one rule for different reasons (a plaintext key and uppercase hex
    # both fail the digest pattern), but together they must cover at least three rules.
    rules = {
        (e.path, e.code)
        for path in examples_dir(name).glob("invalid-*.json")
        for e in get_contract(name).errors(read_json(path))[:1]
    }
    assert len(rules) >= 3, rules


@pytest.mark.parametrize(
    ("example", "path", "code"),
    [
        ("invalid-cadence-400", "/samples/0/cadence_spm", "maximum"),
        ("invalid-cadence-0", "/samples/0/cadence_spm", "exclusive_minimum"),
        ("invalid-time-before-2000", "/samples/0/time", "pattern"),
        ("invalid-time-without-timezone", "/samples/0/time", "pattern"),
        ("invalid-sample-missing-record-id", "/samples/0/record_id", "required"),
        ("invalid-unexpected-field", "/firmware", "additional_properties"),
        ("invalid-unknown-source", "/source", "enum"),
        ("invalid-cadence-string", "/samples/0/cadence_spm", "type"),
    ],
)
def test_watch_batch_errors_are_precise(example: str, path: str, code: str) -> None:
    instance = read_json(examples_dir("watch_sample_batch") / f"{example}.json")
    assert [(e.path, e.code) for e in get_contract("watch_sample_batch").errors(instance)] == [
        (path, code)
    ]


def test_per_sample_validator_accepts_the_good_samples_of_a_bad_batch() -> None:
    batch = read_json(examples_dir("watch_sample_batch") / "invalid-cadence-400.json")
    per_sample = sample_contract()
    verdicts = [per_sample.is_valid(s) for s in batch["samples"]]
    assert verdicts == [False] + [True] * (len(batch["samples"]) - 1)
    errs = per_sample.errors(batch["samples"][0])
    assert [(e.path, e.code) for e in errs] == [("/cadence_spm", "maximum")]
    assert get_contract("watch_sample_batch#sample") is per_sample


@pytest.mark.parametrize("case", [c for c in EXAMPLES if c[0] == "watch_sample_batch"], ids=_id)
def test_per_sample_validator_agrees_with_the_batch_schema(case: tuple[str, Path]) -> None:
    batch = read_json(case[1])
    if not isinstance(batch.get("samples"), list) or not batch["samples"]:
        return
    per_sample = sample_contract()
    for sample in batch["samples"]:
        assert per_sample.is_valid(sample) == per_sample.reference_is_valid(sample)
    if case[1].name.startswith("valid-"):
        assert all(per_sample.is_valid(s) for s in batch["samples"])


def test_errors_are_bounded_for_a_huge_bad_batch() -> None:
    batch = read_json(examples_dir("watch_sample_batch") / "valid-full.json")
    batch["samples"] = [dict(batch["samples"][0], cadence_spm=400) for _ in range(500)]
    errs = get_contract("watch_sample_batch").errors(batch)
    assert len(errs) == 100
    assert errs[0].path == "/samples/0/cadence_spm"
