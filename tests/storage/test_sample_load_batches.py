"""The worker's per-sample estimates are stored one row per load.samples batch (migration 0023)
and read back through the view ``kneeload.sample_load`` exactly as they were sent: every
column, sample by sample, whether the batch's values are constant, varying or null, its times
evenly spaced or not, its record ids a numbered run or not. A replay stores nothing new; a
re-published batch (a late BWS setpoint re-joined it) replaces the stored values."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import psycopg
import pytest

from kneeload.topics.catalogue import LOAD_SAMPLES

from . import events as ev

FIELDS = (
    "speed_mps", "cadence_spm", "ground_contact_ms", "ground_contact_estimated", "grade_pct",
    "bws_pct", "unit_id", "peak_pfj_stress_mpa", "pfj_impulse_mpa_s", "late", "estimated", "gait",
    "no_estimate_reason", "no_estimate_detail", "cadence_used_spm", "cadence_corrected",
    "ground_contact_uncertainty_ms", "ground_contact_source", "step_length_m",
    "step_length_estimated", "vertical_load_bw", "vertical_load_estimated",
)  # fmt: skip


def _batch(tag: str, start: datetime, bws: float = 0.0) -> dict[str, Any]:
    b = ev.load_batch(f"ath-slb-{tag}", start, n=6, batch_id=f"slb-{tag}", bws=bws)
    s = b["samples"]
    s[1]["time"] = s[1]["time"].replace("Z", ".250Z")  # uneven times, a fraction of a second
    s[2]["time"] = s[2]["time"].replace("Z", "+00:00")
    s[3]["record_id"] = f"other-{tag}"  # not one numbered run
    s[4].update(
        peak_pfj_stress_mpa=None, pfj_impulse_mpa_s=None, estimated=False, gait="walking",
        no_estimate_reason="walking", no_estimate_detail='cadence "120" {spm}, \\ walking',
        ground_contact_ms=None, ground_contact_source=None, unit_id=f"lever-{tag}",
    )  # fmt: skip
    s[5]["ground_contact_uncertainty_ms"] = 12.5
    s[5]["late"] = True
    return b


def _stored(db: str, athlete: str) -> list[dict[str, Any]]:
    with psycopg.connect(db) as c:
        cur = c.execute(
            f"SELECT time, record_id, session_id, {', '.join(FIELDS)} FROM kneeload.sample_load "
            "WHERE athlete_id = %s ORDER BY time",
            (athlete,),
        )
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _check(got: list[dict[str, Any]], batch: dict[str, Any]) -> None:
    sent = sorted(batch["samples"], key=lambda x: datetime.fromisoformat(x["time"]))
    assert len(got) == len(sent)
    for g, s in zip(got, sent, strict=True):
        assert g["time"] == datetime.fromisoformat(s["time"])
        assert g["record_id"] == s["record_id"]
        assert g["session_id"] == batch["session_id"]
        for f in FIELDS:
            want = s[f]
            if isinstance(want, float) and not isinstance(want, bool):
                assert g[f] == pytest.approx(want, rel=1e-6), f
            else:
                assert g[f] == want, f


def test_a_batch_reads_back_sample_by_sample_and_a_replay_adds_nothing(
    db: str, write: Callable[[Iterable[tuple[str, Any]]], Any]
) -> None:
    tag = uuid.uuid4().hex[:8]
    start = datetime.fromisoformat("2030-04-01T08:00:00+00:00")
    b = _batch(tag, start)
    assert write([(LOAD_SAMPLES, b)]).rows[LOAD_SAMPLES] == 6
    _check(_stored(db, b["athlete_id"]), b)
    write([(LOAD_SAMPLES, b), (LOAD_SAMPLES, b)])  # a replay: nothing new
    _check(_stored(db, b["athlete_id"]), b)
    later = _batch(tag, start, bws=25.0)  # re-published with the late setpoint's BWS
    write([(LOAD_SAMPLES, later)])
    _check(_stored(db, b["athlete_id"]), later)
    with psycopg.connect(db) as c:
        row = c.execute(
            "SELECT count(*), sum(n) FROM kneeload.sample_load_batches WHERE athlete_id = %s",
            (b["athlete_id"],),
        ).fetchone()
    assert row == (1, 6)


def test_an_evenly_spaced_numbered_batch_is_stored_without_per_sample_times_or_ids(
    db: str, write: Callable[[Iterable[tuple[str, Any]]], Any]
) -> None:
    tag = uuid.uuid4().hex[:8]
    b = ev.load_batch(
        f"ath-slb-even-{tag}", datetime.fromisoformat("2030-04-02T08:00:00+00:00"), n=30,
        batch_id=f"slbe-{tag}",
    )  # fmt: skip
    write([(LOAD_SAMPLES, b)])
    _check(_stored(db, b["athlete_id"]), b)
    with psycopg.connect(db) as c:
        row = c.execute(
            "SELECT step_us, offsets_us, record_prefix, record_from, record_step, "
            "record_suffixes, cardinality(speed_mps), cardinality(peak_pfj_stress_mpa) "
            "FROM kneeload.sample_load_batches WHERE athlete_id = %s",
            (b["athlete_id"],),
        ).fetchone()
    assert row == (1_000_000, None, f"slbe-{tag}:", 0, 1, None, 1, 30)
