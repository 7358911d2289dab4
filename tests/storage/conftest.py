"""Storage fixtures: the session's fresh database (tests/conftest.py), migrated once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
import pytest

from kneeload.settings import Settings
from kneeload.storage import migrate


@pytest.fixture(scope="session")
def db(settings: Settings) -> str:
    """The session database with every migration applied; returns its URL."""
    migrate(settings.database_url, settings)
    return settings.database_url


@pytest.fixture()
def conn(db: str) -> Any:
    with psycopg.connect(db, autocommit=True) as c:
        yield c


async def _write(url: str, events: Iterable[tuple[str, Any]]) -> Any:
    from kneeload.contracts import dumps
    from kneeload.storage.writer import Message, Writer, decode

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        w = Writer(c, "test-direct")
        await w.setup()
        msgs, dead = [], []
        for i, (topic, doc) in enumerate(events):
            key = None
            if isinstance(doc, tuple):  # (key, None): a tombstone
                key, doc = doc[0].encode(), None
            m = Message(
                topic, 0, i, key, dumps(doc) if doc is not None else None, "direct." + topic
            )
            bad = decode(m, "all")
            if bad is None:
                msgs.append(m)
            else:
                dead.append(bad)
        return await w.write(msgs, dead)


@pytest.fixture()
def write(db: str) -> Callable[[Iterable[tuple[str, Any]]], Any]:
    """Write (logical topic, event) pairs through the sink's writer, in process."""

    def run(events: Iterable[tuple[str, Any]]) -> Any:
        return asyncio.run(_write(db, list(events)))

    return run
