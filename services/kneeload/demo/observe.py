# ruff: noqa: E501  (SQL strings read better unwrapped)
"""Read-only observation of the pipeline: Kafka offsets and consumer lag, PostgreSQL views.

The demo never writes to Kafka or the database for ingest; it only reads here, to know
when the pipeline has drained and to build the summary. Summary figures come from the
public views (``kneeload_api.*``); the only table read directly is
``kneeload.dead_letters`` (an operator count: no view exposes it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

__all__ = ["Db", "Kafka"]


class Kafka:
    """Offsets and consumer-group lag for one topic prefix (kafka-python, blocking)."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        self.prefix = prefix
        self.admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=15000,
            client_id="kneeload-demo-observer",
        )
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="kneeload-demo-offsets"
        )

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()

    def partitions(self, topic: str) -> list[Any]:
        from kafka import TopicPartition

        parts = self.consumer.partitions_for_topic(topic) or set()
        return [TopicPartition(topic, p) for p in sorted(parts)]

    def end_offsets(self, logical: Iterable[str]) -> dict[Any, int]:
        tps = [tp for name in logical for tp in self.partitions(self.prefix + name)]
        return dict(self.consumer.end_offsets(tps)) if tps else {}

    def total(self, logical: Iterable[str]) -> int:
        return sum(self.end_offsets(logical).values())

    def lag(self, group: str, logical: Iterable[str]) -> int:
        """Messages the group has not committed yet: over the ``logical`` topics (a partition
        without a committed offset counts whole) and every other partition it committed
        (internal repartition topics of the worker, for instance)."""
        ends = self.end_offsets(logical)
        committed = self.admin.list_group_offsets({group: None}).get(group) or {}
        extra = [tp for tp in committed if tp not in ends]
        if extra:
            ends.update(self.consumer.end_offsets(extra))
        lag = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, end - done)
        return lag

    def lag_only(self, group: str, logical: Iterable[str]) -> int:
        """Like :meth:`lag`, over the ``logical`` topics only."""
        ends = self.end_offsets(logical)
        if not ends:
            return 0
        committed = self.admin.list_group_offsets({group: list(ends)}).get(group) or {}
        lag = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, end - done)
        return lag

    def group_state(self, group: str) -> str:
        desc = self.admin.describe_groups([group]).get(group) or {}
        return str(desc.get("group_state") or "Unknown")

    def delete_prefixed(self, prefix: str) -> tuple[int, int]:
        """Delete topics and consumer groups whose names start with ``prefix`` (best effort)."""
        topics = [t for t in self.admin.list_topics() if t.startswith(prefix)]
        if topics:
            self.admin.delete_topics(topics, timeout_ms=30000)
        groups = [
            str(g["group_id"])
            for g in self.admin.list_groups()
            if str(g["group_id"]).startswith(prefix)
        ]
        if groups:
            with contextlib.suppress(Exception):  # a group of a live process cannot be deleted
                self.admin.delete_groups(groups)
        return len(topics), len(groups)


class Db:
    """Queries on the demo's database (autocommit, dict rows)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = psycopg.connect(url, autocommit=True, row_factory=dict_row)

    def close(self) -> None:
        self.conn.close()

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return list(self.conn.execute(sql, params).fetchall())

    def one(self, sql: str, *params: Any) -> dict[str, Any]:
        r = self.rows(sql, *params)
        return r[0] if r else {}

    def progress(self) -> dict[str, int]:
        """Counts that change while the pipeline still works (drain detection)."""
        r = self.one("""
            SELECT (SELECT count(*) FROM kneeload_api.athlete_timeline) AS sessions,
                   (SELECT count(*) FROM kneeload_api.athlete_timeline WHERE status = 'open') AS open_sessions,
                   (SELECT count(*) FROM kneeload_api.daily_load_revisions) AS daily_revisions,
                   (SELECT count(*) FROM kneeload_api.alerts) AS alerts,
                   (SELECT coalesce(sum(samples), 0) FROM kneeload_api.athlete_timeline) AS session_samples
        """)
        return {k: int(v) for k, v in r.items()}

    def sessions(self) -> dict[str, int]:
        r = self.one("""
            SELECT count(*) AS total,
                   count(*) FILTER (WHERE status = 'closed') AS closed,
                   count(*) FILTER (WHERE unit_id IS NOT NULL) AS on_lever_units,
                   coalesce(sum(samples), 0) AS samples,
                   coalesce(sum(samples_estimated), 0) AS samples_estimated,
                   coalesce(sum(samples_without_estimate), 0) AS samples_without_estimate,
                   coalesce(sum(samples_walking), 0) AS samples_walking,
                   coalesce(sum(samples_cadence_corrected), 0) AS samples_cadence_corrected,
                   coalesce(sum(samples_contact_estimated), 0) AS samples_contact_estimated
              FROM kneeload_api.athlete_timeline
        """)
        return {k: int(v) for k, v in r.items()}

    def estimates(self) -> list[dict[str, Any]]:
        """Per athlete: what was estimated rather than measured, and what got no estimate."""
        return self.rows("""
            SELECT athlete_id, count(*) AS sessions, coalesce(sum(samples), 0) AS samples,
                   coalesce(sum(samples_estimated), 0) AS estimated,
                   coalesce(sum(samples_contact_estimated), 0) AS contact_estimated,
                   coalesce(sum(samples_cadence_corrected), 0) AS cadence_corrected,
                   coalesce(sum(samples_walking), 0) AS walking,
                   coalesce(sum(samples_without_estimate), 0) AS without_estimate,
                   (array_agg(no_estimate_summary ORDER BY samples_without_estimate DESC)
                      FILTER (WHERE no_estimate_summary IS NOT NULL))[1] AS example
              FROM kneeload_api.athlete_timeline
             GROUP BY athlete_id ORDER BY athlete_id
        """)

    def alerts(self) -> list[dict[str, Any]]:
        return self.rows("""
            SELECT kind, severity, athlete_id, display_name, unit_id, team_id, clinic_id,
                   event_time, message, received_at, episode_id, episode_transition,
                   coalesce((values->>'in_progress')::boolean, false) AS in_progress
              FROM kneeload_api.alerts ORDER BY event_time, kind
        """)

    def acwr(
        self, athlete_id: str, date: dt.date, metric: str = "pfj_load_mpa_s"
    ) -> dict[str, Any]:
        return self.one(
            """
            SELECT date, load, acwr, status, revision, corrected
              FROM kneeload_api.acwr_history
             WHERE athlete_id = %s AND date = %s AND metric = %s AND method = 'ewma'
        """,
            athlete_id,
            date,
            metric,
        )

    def acwr_final(self, metric: str = "pfj_load_mpa_s") -> dict[str, dict[str, Any]]:
        rows = self.rows(
            """
            SELECT DISTINCT ON (athlete_id) athlete_id, date, acwr, acwr_band, status, load
              FROM kneeload_api.acwr_history
             WHERE method = 'ewma' AND metric = %s
             ORDER BY athlete_id, date DESC
        """,
            metric,
        )
        return {r["athlete_id"]: r for r in rows}

    def acwr_series(self, metric: str = "pfj_load_mpa_s") -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for r in self.rows(
            """
            SELECT athlete_id, date, load, acwr, status, corrected, week_over_week_pct
              FROM kneeload_api.acwr_history
             WHERE method = 'ewma' AND metric = %s ORDER BY athlete_id, date
        """,
            metric,
        ):
            out.setdefault(r["athlete_id"], []).append(r)
        return out

    def team_overview(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM kneeload_api.team_overview ORDER BY athlete_id")

    def fleet(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM kneeload_api.fleet_status ORDER BY unit_id")

    def bws_suggestions(self) -> list[dict[str, Any]]:
        return self.rows("""
            SELECT time, athlete_id, unit_id, pain_nrs, context, classification, action,
                   current_bws_pct, suggested_bws_pct, suggestion_reason
              FROM kneeload_api.bws_suggestions ORDER BY time
        """)

    def timeline(self) -> list[dict[str, Any]]:
        return self.rows("""
            SELECT athlete_id, session_id, start_time, duration_s, distance_m, unit_id,
                   mean_bws_pct, pfj_load_mpa_s, session_pain_nrs, status
              FROM kneeload_api.athlete_timeline ORDER BY athlete_id, start_time
        """)

    def storage(self) -> dict[str, Any]:
        """The storage flavour the demo's database was migrated with, and the setting."""
        try:
            rows = self.rows(
                "SELECT flavour, count(*) AS n FROM kneeload.schema_migrations GROUP BY 1"
            )
        except psycopg.Error:
            return {}
        flavours = [str(r["flavour"]) for r in rows]
        from kneeload.settings import get_settings

        return {
            "flavour": flavours[0] if len(flavours) == 1 else flavours,
            "setting": get_settings().storage_timescale,
        }

    def dead_letters(self) -> dict[str, int]:
        try:
            rows = self.rows("""
                SELECT coalesce(reason_code, 'unknown') AS reason, count(*) AS n
                  FROM kneeload.dead_letters GROUP BY 1 ORDER BY 2 DESC
            """)
        except psycopg.Error:
            return {}
        return {str(r["reason"]): int(r["n"]) for r in rows}

    def dead_lettered_alerts(self) -> list[dict[str, Any]]:
        """Alerts the sink or notifier refused (their contract failed): kind, subject, why."""
        try:
            rows = self.rows("""
                SELECT source, reason_code, errors, payload FROM kneeload.dead_letters
                 WHERE topic LIKE '%%.alerts' ORDER BY received_at
            """)
        except psycopg.Error:
            return []
        out = []
        for r in rows:
            try:
                p = orjson.loads(r["payload"] or "{}")
            except orjson.JSONDecodeError:
                p = {}
            out.append(
                {
                    "source": r["source"],
                    "reason": r["reason_code"],
                    "kind": p.get("kind"),
                    "athlete_id": p.get("athlete_id"),
                    "unit_id": p.get("unit_id"),
                    "errors": [e.get("message") for e in (r["errors"] or [])][:2],
                }
            )
        return out
