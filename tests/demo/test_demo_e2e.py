"""A small end-to-end run of `kneeload demo` against the real stack and the real services.

3 runners (one on a LEVER unit) and 2 units over 5 weeks, runs compressed to a fifth of
their length. The demo runs under its own name (topics ``demotest-*``, database
``kneeload_demotest``, ``var/demotest/``) so it never touches a developer's ``make demo``,
and stops its services at the end. Asserts the summary's contract and that every planted
situation was caught by the pipeline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from kneeload.demo.services import missing_commands

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def summary(base_settings: object, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from kneeload.stack import kafka

    if not kafka.healthy(base_settings, timeout_s=10):  # type: ignore[arg-type]
        pytest.fail("the local stack is not running: `make up`", pytrace=False)
    if missing_commands():
        pytest.fail(f"services missing for the demo: {missing_commands()}", pytrace=False)
    out = tmp_path_factory.mktemp("demo-out")
    exe = Path(sys.executable).with_name("kneeload")
    proc = subprocess.run(
        [str(exe), "demo", "--name", "demotest", "--athletes", "3", "--units", "2", "--weeks", "5",
         "--duration-scale", "0.2", "--out", str(out), "--stop-services"],
        capture_output=True, text=True, timeout=1100,
    )  # fmt: skip
    path = out / "demo-summary.json"
    assert path.exists(), f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    data = orjson.loads(path.read_bytes())
    data["_exit_code"] = proc.returncode
    data["_stdout"] = proc.stdout[-3000:]
    assert (out / "team-overview.html").read_text().startswith("<!doctype html>")
    team = (out / "team-report" / "index.html").read_text()  # `kneeload report team`
    assert team.startswith("<!doctype html>") and team.count("data:image/png;base64,") == 5 * 3
    return data


def test_summary_contract(summary: dict) -> None:
    for key in ("events_ingested", "events_rejected", "sessions", "alerts", "acwr_final"):
        assert key in summary, key
    assert summary["events_ingested"] > 10_000
    assert summary["events_rejected"] >= len(["8 planted records", "broken JSON", "pain 11"])
    assert summary["sessions"] > 20
    for a in summary["alerts"]:
        assert a["kind"] and a["event_time"] and (a["athlete_id"] or a["unit_id"])
    assert set(summary["acwr_final"]) == {f"ath-{i:02d}" for i in range(1, 4)}
    assert summary["services"]["state"] == "stopped"


def test_the_storage_setting_reaches_the_demos_processes(summary: dict, flavour: str) -> None:
    """The session's KNEELOAD_STORAGE_TIMESCALE (off for plain, on for timescale: tests/conftest)
    reached the demo's migrate: on a server with TimescaleDB preloaded, a dropped `off` became
    `auto` and migrated the demo's database with TimescaleDB."""
    assert summary["storage"] == {
        "flavour": flavour,
        "setting": "on" if flavour == "timescale" else "off",
    }


def test_acwr_matches_the_simulators_expectation(summary: dict) -> None:
    for aid, v in summary["acwr_final"].items():
        e = summary["acwr_final_expected"][aid]
        assert v is not None and e is not None
        assert v == pytest.approx(e, rel=0.1), aid


PLANTED = ["load_spike", "pain", "silent_unit", "malformed", "late_fit"]


@pytest.mark.parametrize("situation", PLANTED)
def test_planted_situation_caught(summary: dict, situation: str) -> None:
    p = summary["planted"][situation]
    assert p["caught"], f"{situation} not caught: {p['evidence']}"
