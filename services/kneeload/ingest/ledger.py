"""The resume ledger of ``kneeload import``: a small SQLite file that remembers, per target
(Kafka bootstrap + topic prefix) and per source file (name, size, modification time), whether
the file was decoded (and where its decoded samples wait) or published (Kafka acknowledged
every batch). An interrupted import, re-run, neither decodes nor publishes again what it
already did.

The ledger only saves work: correctness does not depend on it. Record ids
(``<device_id>:<epoch ms>``) and batch ids (``<format>-<file digest>-<n>``) are deterministic,
so a file published twice is stored once (the sink's primary keys) and counted once (the
stream worker recognises a batch it has counted).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Ledger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    target     TEXT NOT NULL,
    source_key TEXT NOT NULL,
    options    TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('decoded', 'published')),
    sha256     TEXT,
    athlete_id TEXT,
    device_id  TEXT,
    spool      TEXT,
    meta       TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (target, source_key, options)
);
"""


class Ledger:
    """``decoded`` → ``published`` per (target, source, options fingerprint)."""

    def __init__(self, path: Path, target: str, options: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.target = target
        self.options = options
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def get(self, source_key: str) -> tuple[str, dict[str, Any]] | None:
        """``(status, meta)`` of a source, or None when this import has not seen it."""
        row = self._db.execute(
            "SELECT status, meta FROM files WHERE target = ? AND source_key = ? AND options = ?",
            (self.target, source_key, self.options),
        ).fetchone()
        return (str(row[0]), orjson.loads(row[1])) if row else None

    def mark(self, source_key: str, status: str, meta: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO files (target, source_key, options, status, sha256, athlete_id, "
            "device_id, spool, meta, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (target, source_key, options) DO UPDATE SET status = excluded.status, "
            "sha256 = excluded.sha256, athlete_id = excluded.athlete_id, "
            "device_id = excluded.device_id, spool = excluded.spool, meta = excluded.meta, "
            "updated_at = excluded.updated_at",
            (
                self.target,
                source_key,
                self.options,
                status,
                meta.get("sha256"),
                meta.get("athlete_id"),
                meta.get("device_id"),
                meta.get("spool"),
                orjson.dumps(meta),
                time.time(),
            ),
        )

    def published_digests(self) -> set[tuple[str, str, str]]:
        """(sha256, athlete, device) of every file published to this target."""
        return {
            (str(a), str(b), str(c))
            for a, b, c in self._db.execute(
                "SELECT sha256, athlete_id, device_id FROM files "
                "WHERE target = ? AND status = 'published' AND sha256 IS NOT NULL",
                (self.target,),
            )
        }
