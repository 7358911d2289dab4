"""Storage: migrations, partitions, the public views, row-level security and the sink.

    >>> from kneeload.storage import migrate, acknowledge_alert
    >>> migrate()                               # kneeload migrate
    >>> acknowledge_alert(conn, alert_id, "coach-anna")

Tables live in schema ``kneeload``; dashboards and tools read the documented views in
``kneeload_api`` (README "Storage").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# migrate imports psycopg and the settings where used: importing the package stays cheap
from kneeload.storage.migrate import (
    Flavour,
    MigrateReport,
    Migration,
    MigrationError,
    detect_flavour,
    load_migrations,
    migrate,
    render,
)

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "Flavour",
    "MigrateReport",
    "Migration",
    "MigrationError",
    "acknowledge_alert",
    "detect_flavour",
    "load_migrations",
    "migrate",
    "render",
]


def acknowledge_alert(conn: psycopg.Connection[Any], alert_id: str, by: str) -> bool:
    """Record that ``by`` acknowledged ``alert_id`` (the first acknowledgement is kept).

    Runs as the connection's role, so row-level security limits a coach to alerts they can
    see. Returns True when this call acknowledged it. The caller commits."""
    row = conn.execute("SELECT kneeload.acknowledge_alert(%s, %s)", (alert_id, by)).fetchone()
    return bool(row and row[0])
