"""Smoke test of the bench runner: one small bench through the real runner (isolated database
and topic prefix, JSON collected, table written). No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from kneeload.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_runner_collects_json_and_writes_the_table(tmp_path: Path, base_settings: Settings) -> None:
    import psycopg

    r = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / "run_all.py"), "--quick", "--only", "acwr",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    report = orjson.loads((tmp_path / "latest.json").read_bytes())
    acwr = report["components"]["acwr"]
    assert acwr["status"] == "ok"
    assert acwr["result"]["pfj_sample_us"] > 0
    assert any(f["baseline"] is not None for f in acwr["figures"])
    md = (tmp_path / "latest.md").read_text()
    assert "| acwr | PFJ per sample |" in md
    # the runner dropped the database it made for the bench
    from urllib.parse import urlsplit, urlunsplit

    admin = urlunsplit(urlsplit(base_settings.database_url)._replace(path="/postgres"))
    with psycopg.connect(admin) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s",
            (f"kneeload_bench_{report['run_id']}_acwr",),
        ).fetchone()
    assert left is not None and left[0] == 0
