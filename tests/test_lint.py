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


def test_runtime_data_is_never_tracked() -> None:
    """var/ (the local stack's data) must never be in git: a worktree's `var` symlink once got
    committed, and checking it out over main's git-ignored var/ deleted the shared stack."""
    out = subprocess.run(
        ["git", "ls-files", "--", "var", "var/*"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout[:500]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", "var"], cwd=REPO_ROOT, timeout=30
    )
    assert ignored.returncode == 0, "a file or symlink named var is not git-ignored"
