"""The code standard is part of the suite: ruff and mypy clean (configuration in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kneeload.settings import REPO_ROOT

BIN = Path(sys.executable).parent


def test_ruff_is_clean() -> None:
    out = subprocess.run(
        [str(BIN / "ruff"), "check", "services", "tests", "loadtests"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:]


def test_mypy_is_clean() -> None:
    out = subprocess.run(
        [str(BIN / "mypy")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-4000:]
