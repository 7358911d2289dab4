"""Property tests: the fast (draft-07 compiled) and the reference (2020-12) validators agree.

Objects are generated near the schemas' edges: valid examples mutated at random
paths (boundary numbers, int/float/bool confusion, near-miss timestamps with a
trailing newline, nulls, wrong containers, extra and missing keys), plus samples
built field by field from boundary values.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kneeload.contracts import get_contract, sample_contract, schema_names

from .conftest import example_files, read_json

VALID = [
    (name, read_json(path)) for name, path in example_files() if path.name.startswith("valid-")
]
INVALID = [(n, read_json(p)) for n, p in example_files() if p.name.startswith("invalid-")]

edge_numbers = st.sampled_from(
    [0, 0.0, -0.0, 1, 1.0, -1, 0.5, 10, 10.0, 10.5, 11, 12, 12.0001, 29.999, 30, 45, 45.0001,
     49.99, 50, 60, 99.999, 100, 100.0, 200, 250, 300, 300.0, 300.5, 301, 1000, 1440, 1441, 3600,
     16384, 1e9, -1e-9, 2**53, -(2**63)]
)  # fmt: skip
edge_strings = st.sampled_from(
    ["", "x", "ath-001", "lever 07", "a" * 129, "2024-06-10T06:13:20Z", "2024-06-10T06:13:20Z\n",
     "2024-06-10T06:13:20", "1999-12-31T23:59:59Z", "2024-02-31T00:00:00+01:00", "2024-06-10",
     "2024-06-10\n", "telemetry", "heartbeat", "after", "watch", "fit", "treadmill", "ewma",
     "schema_invalid", "Schema", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
     "Europe/Berlin", "UTC", "UTC\n", "٣", "true", "null"]
)  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    edge_numbers,
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    edge_strings,
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, sources: list[tuple[str, Any]]) -> tuple[str, Any]:
    name, base = draw(st.sampled_from(sources))
    obj = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(obj)
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        parent = obj
        for seg in path[:-1]:
            parent = parent[seg]
        op = draw(st.sampled_from(["set", "set", "set", "delete", "add"]))
        if op == "set":
            parent[path[-1]] = draw(json_values)
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "time", "cadence_spm", "id"]))] = draw(scalars)
        else:
            parent.append(draw(json_values))
    return name, obj


def _agree(name: str, obj: Any) -> None:
    contract = get_contract(name)
    fast, ref = contract.is_valid(obj), contract.reference_is_valid(obj)
    assert fast == ref, f"{name}: fast={fast} reference={ref} on {obj!r}"
    errs = contract.errors(obj)
    assert (errs == []) == fast
    assert all(e.code != "invalid" for e in errs)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(VALID))
def test_fast_and_reference_agree_on_mutated_valid_examples(case: tuple[str, Any]) -> None:
    _agree(*case)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(INVALID))
def test_fast_and_reference_agree_on_mutated_invalid_examples(case: tuple[str, Any]) -> None:
    _agree(*case)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(schema_names()), json_values)
def test_fast_and_reference_agree_on_arbitrary_json(name: str, obj: Any) -> None:
    _agree(name, obj)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, st.none(), edge_numbers, edge_strings, st.booleans())


samples = st.fixed_dictionaries(
    {
        "record_id": st.one_of(
            st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,20}\Z"), edge_strings
        ),
        "time": st.one_of(
            st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()), edge_strings
        ),
        "cadence_spm": _maybe(st.floats(-10, 400, allow_nan=False)),
        "speed_mps": _maybe(st.floats(-1, 13, allow_nan=False)),
    },
    optional={
        "ground_contact_ms": _maybe(st.integers(0, 1200)),
        "heart_rate_bpm": _maybe(st.one_of(st.integers(0, 300), st.floats(0, 300))),
        "grade_pct": _maybe(st.floats(-60, 60, allow_nan=False)),
        "vertical_load_bw": _maybe(st.floats(-1, 12, allow_nan=False)),
        "distance_m": _maybe(st.floats(-1, 2e6, allow_nan=False)),
        "power_w": _maybe(st.integers(-5, 3000)),
    },
)


@settings(max_examples=800, deadline=None)
@given(samples)
def test_fast_and_reference_agree_on_generated_samples(sample: dict[str, Any]) -> None:
    contract = sample_contract()
    assert contract.is_valid(sample) == contract.reference_is_valid(sample), sample
    batch = copy.deepcopy(next(obj for n, obj in VALID if n == "watch_sample_batch"))
    batch["samples"] = [sample, *batch["samples"]]
    _agree("watch_sample_batch", batch)
    # A batch is valid iff every sample is (the other batch fields are valid here).
    assert get_contract("watch_sample_batch").is_valid(batch) == contract.is_valid(sample)


def test_the_typed_check_covers_the_edge_records_and_accepts_their_examples() -> None:
    """The gateway's records get the msgspec accept path (``contracts.typed``): it exists for
    them and accepts every valid example (what it refuses only goes the slower way; the
    agreement tests above check it never accepts what the reference rejects)."""
    for name in ("watch_sample_batch", "pain_report", "bws_setpoint_change"):
        check = get_contract(name)._typed
        assert check is not None, name
        for n, obj in VALID:
            if n == name:
                assert check(obj), (name, obj)
    sample = sample_contract()._typed
    assert sample is not None
    for n, obj in VALID:
        if n == "watch_sample_batch":
            assert all(sample(s) for s in obj["samples"])
