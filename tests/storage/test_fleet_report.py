"""``kneeload fleet report`` on the real database, opened in Debian's headless Chromium.

Two clinics, three LEVER units, five weeks from Monday 2 March 2026 (opening hours the
default, Mon–Fri 07:00–20:00 and Sat 08:00–14:00, UTC), written through the sink's writer:

* fr-u1 (clinic fr-c1): idle from 06:00, in use 08:00–09:00, offline noticed 12:10 (last
  message 12:00), idle from 13:00 → on 2 March 780 open minutes: 60 in use, 60 offline,
  660 idle; its daily bias is +5 pp on 2–4 March (out of the 3 pp tolerance);
* fr-u2 (fr-c1): idle all along, bias +0.5 pp; fr-u3 (fr-c2): first heard of at 12:00 →
  300 unknown minutes on 2 March;
* five athletes on fr-u1 and one on fr-u3, each with five weekly sessions, next-morning
  pain and per-minute load at 10–20 % BWS: fr-u1's outcomes are shown (n = 5), fr-u3's are
  withheld (n = 1) and never ranked.

The page must render: every chart decodes as a PNG, no script and nothing external (so no
JavaScript can fail), the tables hold the units and the withheld marks, and the CSV and
Parquet exports hold the same rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

import browser
from kneeload.cli import root

from . import events as ev

T0 = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def at(d: float, h: float = 0.0) -> dt.datetime:
    return T0 + dt.timedelta(days=d, hours=h)


def _status(unit: str, clinic: str, t: dt.datetime, *, online: bool = True,
            athlete: str | None = None, bias: float | None = None) -> dict[str, Any]:  # fmt: skip
    cal = None if bias is None else (600, bias, abs(bias))
    s = ev.unit_status(unit, clinic, t, athlete_id=athlete, in_use=athlete is not None,
                       bws=15.0, minutes=0.0, calibration=cal)  # fmt: skip
    if not online:
        s |= {"online": False, "in_use": False, "athlete_id": None,
              "last_seen": ev.iso(t - dt.timedelta(minutes=10))}  # fmt: skip
    return s


def _minute(athlete: str, unit: str, t: dt.datetime, bws: float) -> dict[str, Any]:
    return {
        "id": f"{athlete}:{int(t.timestamp())}", "athlete_id": athlete, "team_id": "team-a",
        "session_id": None, "unit_id": unit, "minute": ev.iso(t), "samples": 60,
        "duration_s": 60, "distance_m": 200.0, "mean_speed_mps": 3.3,
        "mean_cadence_spm": 170.0, "mean_bws_pct": bws, "peak_pfj_stress_mpa": 8.0,
        "pfj_load_mpa_s": 300.0, "revision": 0, "estimate": True,
    }  # fmt: skip


def _events() -> Iterable[tuple[str, Any]]:
    for unit, clinic in (("fr-u1", "fr-c1"), ("fr-u2", "fr-c1"), ("fr-u3", "fr-c2")):
        yield "registry.assignments", ev.assignment(unit, clinic, None, at(-5))
    yield "unit.status", _status("fr-u1", "fr-c1", at(0, 6))
    yield "unit.status", _status("fr-u1", "fr-c1", at(0, 8), athlete="fr-a0", bias=5.0)
    yield "unit.status", _status("fr-u1", "fr-c1", at(0, 9), bias=5.0)
    yield "unit.status", _status("fr-u1", "fr-c1", at(0, 12, ) + dt.timedelta(minutes=10),
                                 online=False)  # fmt: skip
    yield "unit.status", _status("fr-u1", "fr-c1", at(0, 13))
    for d in (1, 2):
        yield "unit.status", _status("fr-u1", "fr-c1", at(d, 21), bias=5.0)
    yield "unit.status", _status("fr-u2", "fr-c1", at(0, 6), bias=0.5)
    yield "unit.status", _status("fr-u3", "fr-c2", at(0, 12))
    athletes = [(f"fr-a{k}", "fr-u1", k) for k in range(5)] + [("fr-b0", "fr-u3", 0)]
    for aid, unit, k in athletes:
        for i in range(5):
            start = at(7 * i, 8)
            yield "sessions", ev.session(f"{aid}-s{i}", aid, start, load=600.0 * (k + 1),
                                         unit=unit, bws=20.0 - 4 * i)  # fmt: skip
            for m in range(3):
                yield "load.minute", _minute(aid, unit, start + dt.timedelta(minutes=m),
                                             10.0 + 5 * m)  # fmt: skip
        for n, (d, nrs) in enumerate(((1, 4), (29, 1))):
            r = ev.pain_response(f"{aid}-p{n}", aid, at(d, 7), nrs=nrs, unit=None)
            yield "pain.responses", r | {"context": "next_morning"}


CHECKS = """(() => {
  const imgs = [...document.images].map(i => ({id: i.id, ok: i.complete && i.naturalWidth > 300,
      png: i.src.startsWith('data:image/png;base64,')}));
  const units = [...document.querySelectorAll('#units tr[data-unit]')].map(tr => ({
      id: tr.dataset.unit, drift: tr.classList.contains('drift'),
      cells: [...tr.cells].map(c => c.textContent.trim())}));
  const outcomes = [...document.querySelectorAll('#outcomes-unit tr[data-group]')].map(tr => ({
      id: tr.dataset.group, withheld: tr.dataset.withheld,
      cells: [...tr.cells].map(c => c.textContent.trim())}));
  return {imgs, units, outcomes,
          clinics: document.querySelectorAll('#outcomes-clinic tr[data-group]').length,
          scripts: document.querySelectorAll('script').length,
          external: [...document.querySelectorAll('[src],[href]')]
              .filter(e => !(e.src || e.href).startsWith('data:')).length};
})()"""


@pytest.fixture(scope="module")
def report_dir(db: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    from .conftest import _write  # the sink's writer, in process

    asyncio.run(_write(db, list(_events())))
    out = tmp_path_factory.mktemp("fleet")
    res = CliRunner().invoke(
        root,
        ["fleet", "report", "--clinic", "fr-c1", "--clinic", "fr-c2", "--from", "2026-03-02",
         "--to", "2026-04-05", "--out", str(out), "--progress", "--database-url", db],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "reading" in res.output and "fleet-report.html" in res.output
    return out


def test_report_renders_in_chromium(report_dir: Path) -> None:
    page = report_dir / "fleet-report.html"
    assert browser.available(), "Debian's chromium is missing: `make debs` installs it"
    got = browser.evaluate(page.as_uri(), CHECKS)
    assert got["scripts"] == 0 and got["external"] == 0, got
    assert len(got["imgs"]) == 6 and all(i["ok"] and i["png"] for i in got["imgs"]), got["imgs"]
    assert len(list((report_dir / "charts").glob("*.png"))) == 6
    units = {u["id"]: u for u in got["units"]}
    assert set(units) == {"fr-u1", "fr-u2", "fr-u3"}
    assert units["fr-u1"]["drift"] and not units["fr-u2"]["drift"]
    assert units["fr-u1"]["cells"][12] == "3 / 3"  # days out of tolerance / with data
    outcomes = {o["id"]: o for o in got["outcomes"]}
    assert outcomes["fr-u1"]["withheld"] == "" and outcomes["fr-u1"]["cells"][9] == "1"
    assert outcomes["fr-u3"]["withheld"] == "pain,bws,pfj,flares"
    assert "withheld" in outcomes["fr-u3"]["cells"][3] and outcomes["fr-u3"]["cells"][9] == "—"
    assert got["clinics"] == 2


def test_exports_hold_the_figures(report_dir: Path) -> None:
    data = report_dir / "data"
    stems = {p.stem for p in data.iterdir()}
    assert stems == {"units", "utilisation_daily", "calibration_daily", "bws_distribution",
                     "outcomes_by_unit", "outcomes_by_clinic"}  # fmt: skip
    util = pl.read_parquet(data / "utilisation_daily.parquet")
    assert util.equals(pl.read_csv(data / "utilisation_daily.csv", try_parse_dates=True)
                       .cast(util.schema))  # fmt: skip
    day0 = util.filter(pl.col("date") == dt.date(2026, 3, 2)).sort("unit_id")
    r = {row["unit_id"]: row for row in day0.to_dicts()}
    assert (r["fr-u1"]["open_min"], r["fr-u1"]["in_use_min"], r["fr-u1"]["offline_min"],
            r["fr-u1"]["idle_min"]) == (780.0, 60.0, 60.0, 660.0)  # fmt: skip
    assert r["fr-u3"]["unknown_min"] == 300.0
    assert util.height == 3 * 35
    out = pl.read_parquet(data / "outcomes_by_unit.parquet")
    u1 = out.filter(pl.col("group_id") == "fr-u1").to_dicts()[0]
    assert (u1["athletes"], u1["pain_change_nrs"], u1["pfj_load_per_km_median"]) == (5, -3.0, 300.0)
    bws = pl.read_csv(data / "bws_distribution.csv")
    assert bws.filter(pl.col("unit_id") == "fr-u1")["minutes"].sum() == 5 * 5 * 3


def test_report_needs_a_clinic_or_all_and_names_an_unknown_one(db: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(root, ["fleet", "report", "--database-url", db])
    assert res.exit_code == 2 and "--clinic ID" in res.output
    res = CliRunner().invoke(
        root, ["fleet", "report", "--clinic", "no-such-clinic", "--out", str(tmp_path),
               "--database-url", db],
    )  # fmt: skip
    assert res.exit_code == 1 and "no-such-clinic" in res.output, res.output
