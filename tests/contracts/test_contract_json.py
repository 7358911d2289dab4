"""JSON helpers, dead letters, schema location, error lists."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from kneeload import contracts
from kneeload.contracts import (
    DEAD_LETTER_PAYLOAD_MAX,
    ContractError,
    JSONError,
    NonFiniteNumberError,
    dead_letter,
    dumps,
    get_contract,
    loads,
)
from kneeload.settings import reload_settings


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_dumps_refuses_non_finite_numbers_and_names_the_path(bad: float) -> None:
    event = {"samples": [{"speed_mps": 3.0}, {"speed_mps": bad}]}
    with pytest.raises(NonFiniteNumberError) as info:
        dumps(event)
    assert info.value.path == "/samples/1/speed_mps"
    assert "/samples/1/speed_mps" in str(info.value)
    assert "finite" in str(info.value)
    with pytest.raises(NonFiniteNumberError):
        dumps((1.0, [bad]))
    with pytest.raises(NonFiniteNumberError):
        dumps(bad)


@pytest.mark.parametrize(
    "raw", [b"NaN", b"[1, NaN]", b'{"a": -Infinity}', b"[Infinity]", b"1e400", "[-1e999]"]
)
def test_loads_refuses_non_finite_numbers_clearly(raw: bytes | str) -> None:
    with pytest.raises(NonFiniteNumberError, match=r"(?i)nan|infinity|finite"):
        loads(raw)


@pytest.mark.parametrize("raw", [b"{", b"", b"[1,]", b"\xff"])
def test_loads_reports_other_invalid_json(raw: bytes) -> None:
    with pytest.raises(JSONError) as info:
        loads(raw)
    assert not isinstance(info.value, NonFiniteNumberError)


def test_round_trip_and_datetimes_as_rfc3339() -> None:
    event = {"a": [1, 2.5, None, True, "ü"], "t": datetime(2024, 6, 10, 6, 13, 20, tzinfo=UTC)}
    raw = dumps(event)
    assert loads(raw) == {**event, "t": "2024-06-10T06:13:20Z"}
    plus2 = datetime(2024, 6, 10, 8, tzinfo=timezone(timedelta(hours=2)))
    assert loads(dumps({"t": plus2})) == {"t": "2024-06-10T08:00:00+02:00"}
    with pytest.raises(JSONError):
        dumps({1: "non-string key"})


def test_decode_validates_and_reports_bad_json_machine_readably() -> None:
    contract = get_contract("pain_report")
    with pytest.raises(ContractError) as info:
        contract.decode(b'{"pain_nrs": NaN}')
    assert info.value.as_dicts()[0]["code"] == "non_finite_number"
    with pytest.raises(ContractError) as info:
        contract.decode(b"{")
    assert info.value.as_dicts()[0]["code"] == "invalid_json"
    with pytest.raises(ContractError) as info:
        contract.decode(b'{"pain_nrs": 3}')
    codes = {e["code"] for e in info.value.as_dicts()}
    assert codes == {"required"}
    assert "/report_id" in {e["path"] for e in info.value.as_dicts()}


def test_error_list_shape() -> None:
    errs = contracts.errors(
        "athlete_record", {"athlete_id": "a b", "extra": 1, "body_mass_kg": "60"}
    )
    by_path = {e["path"]: e["code"] for e in errs}
    assert by_path["/athlete_id"] == "pattern"
    assert by_path["/extra"] == "additional_properties"
    assert by_path["/body_mass_kg"] == "type"
    assert by_path["/time_zone"] == "required"
    assert all(set(e) == {"path", "code", "message"} for e in errs)
    assert contracts.errors("athlete_record", []) == [
        {"path": "", "code": "type", "message": "[] is not of type 'object'"}
    ]


def test_timestamp_pattern_errors_say_what_is_expected() -> None:
    errs = contracts.errors("unit_assignment", {
        "unit_id": "u1", "clinic_id": "c1", "athlete_id": None,
        "since": "2024-06-10 08:00", "updated_at": "2024-06-10T08:00:00Z",
    })  # fmt: skip
    assert errs == [
        {
            "path": "/since",
            "code": "pattern",
            "message": "'2024-06-10 08:00' is not an RFC 3339 date-time with timezone "
            "(Z or ±hh:mm) in year 2000 or later",
        }
    ]


def test_validation_never_mutates_the_instance() -> None:
    obj = {"unit_id": "u1"}
    contracts.is_valid("unit_assignment", obj)
    contracts.errors("unit_assignment", obj)
    assert obj == {"unit_id": "u1"}


def test_dead_letter_text_binary_and_truncation() -> None:
    when = datetime(2024, 6, 10, 6, 13, 25, tzinfo=UTC)
    err = get_contract("watch_sample_batch").errors({"samples": []})
    text = dead_letter(
        "http", "schema_invalid", "bad batch", '{"x": 1}', key="w-1", errors=err, received_at=when
    )
    contracts.validate("dead_letter", text)
    assert text["payload_encoding"] == "utf-8" and not text["payload_truncated"]
    assert text["received_at"] == "2024-06-10T06:13:25Z"
    assert text == dead_letter(
        "http", "schema_invalid", "bad batch", '{"x": 1}', key="w-1", errors=err, received_at=when
    )

    blob = bytes(range(256)) * 100
    binary = dead_letter("fit", "fit_decode_error", "CRC mismatch", blob)
    contracts.validate("dead_letter", binary)
    assert binary["payload_encoding"] == "base64" and binary["payload_truncated"]
    assert len(binary["payload"]) <= DEAD_LETTER_PAYLOAD_MAX
    assert blob.startswith(base64.b64decode(binary["payload"]))

    long_text = dead_letter("mqtt", "invalid_json", "", "x" * 50_000)
    contracts.validate("dead_letter", long_text)
    assert long_text["payload_truncated"] and len(long_text["payload"]) == DEAD_LETTER_PAYLOAD_MAX
    many = dead_letter("worker", "schema_invalid", "", None, errors=err * 300)
    contracts.validate("dead_letter", many)
    assert len(many["errors"]) == 100 and many["payload"] is None


def test_schemas_dir_can_be_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "x.schema.json").write_text("{}")
    monkeypatch.setenv("KNEELOAD_SCHEMAS_DIR", str(tmp_path))
    try:
        reload_settings()
        assert contracts.schemas_dir() == tmp_path
        monkeypatch.setenv("KNEELOAD_SCHEMAS_DIR", str(tmp_path / "missing"))
        reload_settings()
        with pytest.raises(contracts.SchemaNotFoundError, match="KNEELOAD_SCHEMAS_DIR"):
            contracts.schemas_dir()
    finally:
        monkeypatch.delenv("KNEELOAD_SCHEMAS_DIR")
        reload_settings()
    assert (contracts.schemas_dir() / "pain_report.schema.json").is_file()


def test_unknown_schema_is_a_clear_error() -> None:
    with pytest.raises(contracts.SchemaNotFoundError, match="known: alert"):
        get_contract("no_such_event")
