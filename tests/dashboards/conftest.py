"""The dashboards' database, filled by the REAL pipeline (see pipeline.py): ingest, worker and
sink run as subprocesses on the session's isolated settings; the data enter over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kneeload.settings import Settings

from . import pipeline


@pytest.fixture(scope="session")
def dash_pipeline(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[pipeline.Pipeline]:
    """The running pipeline once sessions, daily loads, ACWR, pain responses, alerts and a
    live session have arrived in the views through gateway → Kafka → worker → sink. Services
    stop at the end of the session (logs under the pytest tmp dir ``dash-pipeline*/logs``)."""
    root: Path = tmp_path_factory.mktemp("dash-pipeline")
    p = pipeline.fill(settings, root)
    try:
        yield p
    finally:
        pipeline.stop(p)


@pytest.fixture(scope="session")
def pipeline_db(dash_pipeline: pipeline.Pipeline) -> str:
    """The database URL of :func:`dash_pipeline`."""
    return dash_pipeline.database_url
