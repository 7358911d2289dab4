"""One sensor source per measure and session, walking inside a run kept, out-of-range optional
fields dropped (never the sample) — on a FIT file built with the official Garmin FIT SDK's
Encoder to show the case (tests/ingest/fitcases.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from garmin_fit_sdk import Decoder, Stream

from kneeload.ingest import activity as act

from .conftest import Gateway, device_headers
from .fitcases import run_walk_with_two_contact_sources


def _norm(native_share: float = 0.3) -> act.NormalisedActivity:
    f = run_walk_with_two_contact_sources(native_share=native_share)
    return act.normalise(act.decode_fit(f.data), device_id="w")


def test_the_built_file_is_valid_fit_with_developer_fields() -> None:
    f = run_walk_with_two_contact_sources()
    d = Decoder(Stream.from_byte_array(bytearray(f.data)))
    assert d.is_fit() and d.check_integrity()  # header and file CRC, by the SDK itself
    msgs, errors = Decoder(Stream.from_byte_array(bytearray(f.data))).read()
    assert errors == [] and len(msgs["record_mesgs"]) == f.records == 1200
    assert len(msgs["field_description_mesgs"]) == 2
    a = act.decode_fit(f.data)  # and fitdecode, the importer's decoder, agrees
    assert a.dev_units == {"Ground Time": "ms", "Power": "Watts"}
    assert sum("stance_time" in r.fields for r in a.records) == f.native_stance == 300


def test_one_contact_source_for_the_whole_session() -> None:
    """Native stance time on 25 % of the records, the pod's Ground Time on all: the session
    uses Ground Time everywhere (it used to jump 250 ↔ 200 ms record to record)."""
    n = _norm()
    assert {s["ground_contact_ms"] for s in n.samples} == {200.0, 1150.0}  # never 250
    [src] = n.summary["sources"].values()
    gc = src["ground_contact_ms"]
    assert gc == {"source": "dev:Ground Time", "coverage_pct": 100.0,
                  "candidates": {"native": 25.0, "dev:Ground Time": 100.0}}  # fmt: skip
    assert src["power_w"]["source"] == "dev:Power" and src["cadence_spm"]["source"] == "native"
    assert src["speed_mps"] == {"source": "native", "coverage_pct": 100.0,
                                "candidates": {"native": 100.0}}  # fmt: skip
    # only what was not used is ignored (Ground Time used to be listed as ignored)
    assert n.summary["developer_fields_used"] == ["Ground Time", "Power"]
    assert n.summary["developer_fields_ignored"] == []
    assert {s["sources"] for s in n.samples} == {
        "ground_contact_ms=dev:Ground Time;cadence_spm=native;speed_mps=native;power_w=dev:Power"
    }


def test_native_source_when_it_covers_most_of_the_session() -> None:
    n = _norm(native_share=0.9)  # native on the running records of the first 90 %: 930 of 1200
    [src] = n.summary["sources"].values()
    assert src["ground_contact_ms"]["source"] == "native"
    assert src["ground_contact_ms"]["coverage_pct"] == 77.5
    assert {s["ground_contact_ms"] for s in n.samples} == {250.0, None}  # no pod values mixed in
    assert n.summary["developer_fields_ignored"] == ["Ground Time"]  # truly ignored now


def test_walking_inside_a_run_is_kept() -> None:
    """The 150 walking records (96 spm, 1.3 m/s, pod ground time 1,150 ms) are samples: they
    were rejected whole as '/ground_contact_ms maximum'."""
    n = _norm()
    assert n.summary["samples"] == 1200 and n.rejected == [] and n.summary["fields_dropped"] == {}
    walking = [s for s in n.samples if s["cadence_spm"] == 96.0]
    assert len(walking) == 150 and all(s["ground_contact_ms"] == 1150.0 for s in walking)
    assert n.samples[-1]["distance_m"] == pytest.approx(sum(s["speed_mps"] for s in n.samples))


def test_out_of_range_optional_field_is_dropped_not_the_sample() -> None:
    f = run_walk_with_two_contact_sources()
    a = act.decode_fit(f.data)
    a.records[10].dev_fields["Ground Time"] = 5000  # a glitch beyond the schema's 3,000 ms
    n = act.normalise(a, device_id="w")
    assert n.summary["samples"] == 1200 and n.summary["fields_dropped"] == {"ground_contact_ms": 1}
    assert n.samples[10]["ground_contact_ms"] is None and n.samples[10]["cadence_spm"] == 170.0


def test_upload_keeps_walking_and_reports_the_sources(
    gateway: Gateway, fleet: dict[str, Any]
) -> None:
    f = run_walk_with_two_contact_sources()
    r = httpx.post(
        gateway.url + "/v1/activities",
        content=f.data,
        timeout=60,
        headers={**device_headers(fleet, "watch"), "Content-Type": "application/vnd.ant.fit"},
    )
    assert r.status_code == 200, r.text[:1000]
    body = r.json()
    assert body["accepted"] == 1200  # walking records included
    [src] = body["summary"]["sources"].values()
    assert src["ground_contact_ms"]["source"] == "dev:Ground Time"
    assert body["summary"]["developer_fields_ignored"] == []
