"""The production compose file is valid for Docker Compose.

No Docker engine or Compose client runs here, so the file is loaded and validated by
compose-go — the library `docker compose config` uses — built from the Go module proxy
(infra/composecheck).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kneeload.settings import REPO_ROOT


def _check_env() -> dict[str, str]:
    env = dict(os.environ)
    for line in (REPO_ROOT / "infra" / "compose-check.env").read_text().splitlines():
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = v
    return env


def test_compose_file_is_valid_and_has_every_service() -> None:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is required to validate infra/compose.yaml (compose-go); install golang")
    out = subprocess.run(
        [go, "run", ".", "../compose.yaml"],
        cwd=REPO_ROOT / "infra" / "composecheck",
        env=_check_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    for service in (
        "kafka",
        "timescaledb",
        "grafana",
        "mosquitto",
        "ingest",
        "mqtt-bridge",
        "worker",
        "sink",
        "notify",
    ):
        assert f"\n  {service}:\n" in out.stdout, service


def test_grafana_provisioning_is_mounted_from_dashboards() -> None:
    text = (Path(REPO_ROOT) / "infra" / "compose.yaml").read_text()
    assert "../dashboards/provisioning:/etc/grafana/provisioning" in text
