"""The demo's environment: what its processes (migrate, sink, worker, ...) are started with."""

from __future__ import annotations

import os

import pytest

from kneeload.demo.run import _environment
from kneeload.settings import Settings


@pytest.mark.parametrize("mode", ["auto", "on", "off"])
def test_the_storage_setting_reaches_every_demo_process(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo drops the caller's KNEELOAD_* variables (a test's database must not leak into
    it) but keeps the storage choice the settings object read (shell or var/kneeload.env)."""
    monkeypatch.setenv("KNEELOAD_STORAGE_TIMESCALE", mode)
    monkeypatch.setenv("KNEELOAD_TOPIC_PREFIX", "someone-elses.")
    base = Settings()
    ports = {"http": 1, "webhook": 2, "smtp": 3, "ack": 4}
    env = _environment(base, "r1", "postgresql://x/kneeload_demo", ports, "t", "mqtt://m", "root")
    assert env["KNEELOAD_STORAGE_TIMESCALE"] == mode
    assert env["KNEELOAD_STORAGE_PREMAKE_DAYS"] == str(base.storage_premake_days)
    assert env["KNEELOAD_TOPIC_PREFIX"] == "demo-r1."
    assert os.environ["KNEELOAD_STORAGE_TIMESCALE"] == mode  # the caller's untouched
