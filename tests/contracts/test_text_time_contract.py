"""One contract from schema to storage (issue #17): the schemas' timestamp pattern accepts
exactly the times PostgreSQL's timestamptz stores (all of which the worker reads), and free
text refuses NUL and the control characters that mean nothing — checked as properties
against the real database. Decision: a leap second (second 60, as some devices write it) is
refused with a ``pattern`` error on its field, not folded to :59 (a device clock that
writes :60 is reporting a time no storage keeps; a clear refusal is safer than an edit)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kneeload.contracts import get_contract
from kneeload.settings import Settings
from kneeload.worker.timeutil import parse_ms

SAMPLE = "watch_sample_batch#sample"
PAIN = "pain_report"


def _sample(time: str) -> dict[str, Any]:
    return {"record_id": "r-1", "time": time, "cadence_spm": 170, "speed_mps": 3.2}


def _pain(note: str) -> dict[str, Any]:
    return {
        "report_id": "p-1",
        "athlete_id": "a-1",
        "team_id": None,
        "time": "2026-03-01T07:00:00Z",
        "pain_nrs": 2,
        "context": "after",
        "session_id": None,
        "note": note,
    }


@pytest.fixture(scope="module")
def pg(settings: Settings) -> Any:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        yield conn


def _pg_stores(conn: Any, text: str) -> bool:
    try:
        conn.execute("SELECT %s::text::timestamptz", (text,))
    except psycopg.DataError:
        return False
    return True


def _worker_reads(text: str) -> bool:
    try:
        parse_ms(text)
    except ValueError:
        return False
    return True


_times = st.builds(
    lambda y, mo, d, h, mi, s, frac, off: (
        f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}" + frac + off
    ),
    st.integers(2000, 2999),
    st.integers(1, 12),
    st.integers(1, 31),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 60),
    st.sampled_from(["", ".5", ".123456", ".123456789"]),
    st.one_of(
        st.just("Z"),
        st.builds(
            lambda sign, hh, mm: f"{sign}{hh:02d}:{mm:02d}",
            st.sampled_from("+-"),
            st.integers(0, 23),
            st.integers(0, 59),
        ),
    ),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_times)
def test_the_schema_accepts_exactly_what_postgres_and_the_worker_accept(pg: Any, text: str) -> None:
    schema_ok = get_contract(SAMPLE).is_valid(_sample(text))
    century = text[5:10] == "02-29" and text[2:4] == "00" and int(text[:4]) % 400 != 0
    # the one rule the schema cannot say: 29 February of a century year not divisible by 400
    # (2100, 2200 …), which it accepts and PostgreSQL refuses
    leap = text[17:19] == "60"  # PostgreSQL folds it into the next minute; refused here
    assert schema_ok == (_pg_stores(pg, text) and not leap) or century, (text, schema_ok)
    # everything the gateway accepts, the worker reads (it reads more: offsets to ±23:59)
    assert not schema_ok or _worker_reads(text), text


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("2026-12-31T23:59:59Z", True),
        ("2026-12-31T23:59:60Z", False),  # leap second: refused
        ("2026-03-01T07:00:00+15:59", True),
        ("2026-03-01T07:00:00+20:00", False),  # beyond what timestamptz keeps
        ("2028-02-29T07:00:00Z", True),
        ("2027-02-29T07:00:00Z", False),
        ("2026-04-31T07:00:00Z", False),
    ],
)
def test_edge_times(pg: Any, text: str, ok: bool) -> None:
    errs = get_contract(SAMPLE).errors(_sample(text))
    assert (not errs) == ok
    assert ok == _pg_stores(pg, text) or text[17:19] == "60"
    if not ok:
        assert errs[0].path == "/time" and errs[0].code == "pattern"


@given(st.text(max_size=40))
def test_free_text_refuses_nul_and_meaningless_control_characters(note: str) -> None:
    bad = any((ord(c) < 32 and c not in "\t\n\r") or c == "\x7f" for c in note)
    errs = get_contract(PAIN).errors(_pain(note))
    assert bool(errs) == bad, (note, errs)
    if bad:
        assert errs[0].path == "/note"


def test_nul_in_a_batchs_sub_sport_is_refused_naming_the_field() -> None:
    batch = {
        "batch_id": "b-1",
        "athlete_id": "a-1",
        "device_id": "w-1",
        "team_id": None,
        "session_id": None,
        "source": "http",
        "sub_sport": "trail\x00",
        "received_at": "2026-03-01T07:00:00Z",
        "samples": [_sample("2026-03-01T07:00:00Z")],
    }
    errs = get_contract("watch_sample_batch").errors(batch)
    assert [e.path for e in errs] == ["/sub_sport"]
