"""`kneeload report team` on the database the REAL pipeline filled (gateway → Kafka → worker →
sink, tests/dashboards/pipeline.py), opened in headless Chromium: every chart decodes as a PNG,
the tables hold the team, and a display name with markup and quotes is text, not markup."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import browser

from .pipeline import ATHLETE, ATHLETE2, ATHLETE3, HOSTILE_NAME, TEAM

KNEELOAD = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kneeload")

CHECKS = """(() => {
  const imgs = [...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 300,
      png: i.src.startsWith('data:image/png;base64,'), w: i.naturalWidth}));
  const rows = [...document.querySelectorAll('#overview tr[data-athlete]')].map(tr => ({
      id: tr.dataset.athlete, name: tr.cells[0].querySelector('a').textContent,
      acwr: tr.cells[2].textContent.trim()}));
  return {title: document.title, imgs, rows,
          scripts: document.querySelectorAll('script').length,
          bold: document.querySelectorAll('b').length,
          sections: [...document.querySelectorAll('section.athlete h2')].map(h => h.textContent),
          sessionRows: [...document.querySelectorAll('table.sessions')].map(t => t.rows.length - 1),
          alerts: document.querySelectorAll('#alerts tr').length - 1,
          external: [...document.querySelectorAll('[src]')]
                      .filter(e => !e.src.startsWith('data:')).length};
})()"""


def test_team_report_renders_in_chromium(pipeline_db: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = subprocess.run(
        [KNEELOAD, "report", "team", "--team", TEAM, "--out", str(out)],
        env={**os.environ, "KNEELOAD_DATABASE_URL": pipeline_db},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert browser.available(), "Debian's chromium is missing: `make debs` installs it"
    page = out / "index.html"
    html = page.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html  # escaped by the template
    assert len(list((out / "charts").glob("*.png"))) == 15  # 5 charts × 3 athletes
    got = browser.evaluate(page.as_uri(), CHECKS)
    assert got["scripts"] == 0 and got["external"] == 0, got
    assert len(got["imgs"]) == 15 and all(i["ok"] and i["png"] for i in got["imgs"]), got["imgs"]
    assert {r["id"] for r in got["rows"]} == {ATHLETE, ATHLETE2, ATHLETE3}
    names = {r["id"]: r["name"] for r in got["rows"]}
    assert names[ATHLETE3] == HOSTILE_NAME  # shown as the characters it is made of
    assert HOSTILE_NAME in got["sections"]
    assert any(HOSTILE_NAME in i["alt"] for i in got["imgs"])
    acwr = {r["id"]: r["acwr"] for r in got["rows"]}
    assert acwr[ATHLETE] not in ("", None)  # 29 days of history: an ACWR
    assert got["sessionRows"][0] + got["sessionRows"][1] + got["sessionRows"][2] >= 6
    assert got["alerts"] >= 2, json.dumps(got)[:2000]


def test_team_report_unknown_team(pipeline_db: str, tmp_path: Path) -> None:
    res = subprocess.run(
        [KNEELOAD, "report", "team", "--team", "no-such-team", "--out", str(tmp_path)],
        env={**os.environ, "KNEELOAD_DATABASE_URL": pipeline_db},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 1 and "no-such-team" in res.stderr
