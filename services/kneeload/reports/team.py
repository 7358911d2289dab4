"""The team report: one self-contained HTML page with PNG charts, from the database's public
views (``kneeload_api``) — what a coach of a real team opens after importing history.

Per athlete: daily estimated PFJ load with the EWMA ACWR on its bands, fitness/fatigue/form
(CTL/ATL/TSB), session distances with today's session-spike ceiling (when the database has
the ceiling columns), estimated PFJ load per km with BWS, pain same day and next morning.
Team tables: the overview row per athlete and the alerts of the period. Every figure is read
from the views (computed by the stream worker with :mod:`kneeload.core`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kneeload.reports import charts
from kneeload.reports.html import render

__all__ = ["ReportError", "TeamReport", "load", "write"]

METRIC = "pfj_load_mpa_s"
#: team_overview columns of the session-spike ceiling (issue #14), shown when present
CEILING_COLUMNS = ("ceiling_distance_m", "ceiling_pfj_load_mpa_s")


class ReportError(RuntimeError):
    """The report cannot be made (unknown team, no database); the message says why."""


@dataclass
class AthleteSection:
    overview: dict[str, Any]
    days: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    pain: list[dict[str, Any]] = field(default_factory=list)
    #: the session-spike ceiling per day (kneeload_api.ceiling_history, when the database has it)
    ceilings: list[dict[str, Any]] = field(default_factory=list)
    charts: dict[str, str] = field(default_factory=dict)  # name -> data URI

    @property
    def athlete_id(self) -> str:
        return str(self.overview["athlete_id"])


@dataclass
class TeamReport:
    team_id: str
    team_name: str | None
    start: dt.date
    end: dt.date
    athletes: list[AthleteSection]
    alerts: list[dict[str, Any]]
    bands: tuple[float, float, float]
    ceiling: bool
    generated_at: dt.datetime


def _rows(conn: Any, sql: str, *params: Any) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [c.name for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def load(conn: Any, team_id: str, start: dt.date, end: dt.date) -> TeamReport:
    """Everything the report shows, from ``kneeload_api`` (``conn``: a psycopg connection)."""
    overview = _rows(
        conn,
        "SELECT * FROM kneeload_api.team_overview WHERE team_id = %s ORDER BY display_name, "
        "athlete_id",
        team_id,
    )
    if not overview:
        raise ReportError(f"team {team_id!r} has no athletes in kneeload_api.team_overview")
    cfg = {
        r["key"]: r["value"] for r in _rows(conn, "SELECT key, value FROM kneeload_api.thresholds")
    }
    defaults = (("acwr_band_low", 0.8), ("acwr_band_high", 1.3), ("acwr_band_danger", 1.5))
    bands = tuple(float(cfg.get(k, d)) for k, d in defaults)
    days = _rows(
        conn,
        "SELECT athlete_id, date, load, status, corrected, acwr, acwr_band, atl, ctl, tsb "
        "FROM kneeload_api.acwr_history WHERE team_id = %s AND metric = %s AND method = 'ewma' "
        "AND date BETWEEN %s AND %s ORDER BY athlete_id, date",
        team_id, METRIC, start, end,
    )  # fmt: skip
    sessions = _rows(
        conn,
        "SELECT athlete_id, session_id, start_time, local_date, duration_s, distance_m, "
        "mean_cadence_spm, unit_id, mean_bws_pct, pfj_load_mpa_s, pfj_load_per_km, "
        "session_pain_nrs, status FROM kneeload_api.athlete_timeline WHERE team_id = %s "
        "AND local_date BETWEEN %s AND %s ORDER BY athlete_id, start_time",
        team_id, start, end,
    )  # fmt: skip
    pain = _rows(
        conn,
        "SELECT athlete_id, date, pain_lag0_nrs, pain_next_morning_nrs FROM "
        "kneeload_api.pain_vs_load WHERE team_id = %s AND metric = %s AND date BETWEEN %s "
        "AND %s AND (pain_lag0_nrs IS NOT NULL OR pain_next_morning_nrs IS NOT NULL) "
        "ORDER BY athlete_id, date",
        team_id, METRIC, start, end,
    )  # fmt: skip
    alerts = _rows(
        conn,
        "SELECT event_time, severity, kind, athlete_id, display_name, message, "
        "acknowledged_by FROM kneeload_api.alerts WHERE team_id = %s AND event_time >= %s "
        "AND event_time < %s ORDER BY event_time DESC LIMIT 200",
        team_id,
        dt.datetime.combine(start, dt.time(), dt.UTC),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC),
    )
    ceilings: list[dict[str, Any]] = []
    if conn.execute("SELECT to_regclass('kneeload_api.ceiling_history')").fetchone()[0]:
        ceilings = _rows(
            conn,
            "SELECT athlete_id, date, ceiling_distance_m, ceiling_pfj_load_mpa_s, verdict "
            "FROM kneeload_api.ceiling_history WHERE team_id = %s AND date BETWEEN %s AND %s "
            "ORDER BY athlete_id, date",
            team_id, start, end,
        )  # fmt: skip
    sections = []
    for ov in overview:
        aid = ov["athlete_id"]
        sections.append(
            AthleteSection(
                ov,
                [d for d in days if d["athlete_id"] == aid],
                [s for s in sessions if s["athlete_id"] == aid],
                [p for p in pain if p["athlete_id"] == aid],
                ceilings=[c for c in ceilings if c["athlete_id"] == aid],
            )
        )
    return TeamReport(
        team_id,
        overview[0].get("team_name"),
        start,
        end,
        sections,
        alerts,
        (bands[0], bands[1], bands[2]),
        all(c in overview[0] for c in CEILING_COLUMNS),
        dt.datetime.now(dt.UTC),
    )


def draw(report: TeamReport) -> dict[str, bytes]:
    """The PNG charts, by file name (``<athlete>-<chart>.png``); also set on each section."""
    span = (report.start, report.end)
    out: dict[str, bytes] = {}
    for a in report.athletes:
        ceiling_m = a.overview.get(CEILING_COLUMNS[0]) if report.ceiling else None
        pngs = {
            "load-acwr": charts.load_acwr(a.days, report.bands, span),
            "pmc": charts.pmc(a.days, span),
            "distance-ceiling": charts.distance_ceiling(
                a.sessions,
                span,
                None if ceiling_m is None else float(ceiling_m) / 1000,
                a.ceilings,
            ),
            "pfj-per-km-bws": charts.sessions(a.sessions, span),
            "pain": charts.pain(a.pain, span),
        }
        for name, data in pngs.items():
            out[f"{a.athlete_id}-{name}.png"] = data
            a.charts[name] = charts.data_uri(data)
    return out


def write(report: TeamReport, out_dir: Path) -> Path:
    """``out_dir/index.html`` (self-contained: charts embedded) and ``out_dir/charts/*.png``."""
    pngs = draw(report)
    (out_dir / "charts").mkdir(parents=True, exist_ok=True)
    for name, data in pngs.items():
        (out_dir / "charts" / name).write_bytes(data)
    page = out_dir / "index.html"
    page.write_text(render("team.html.j2", r=report), encoding="utf-8")
    return page
