# ruff: noqa: E501
"""The four kneeload dashboards, built with grafana-foundation-sdk.

Every query reads only the documented views in schema ``kneeload_api`` (storage's public
read surface). PFJ figures are labelled "estimated": they are model estimates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from grafana_foundation_sdk.builders import (
    barchart,
    bargauge,
    common,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from kneeload.dashboards.sql import SQL, datasource_ref

__all__ = ["DASHBOARDS", "SCHEMA_VERSION", "build_all"]

#: Dashboard JSON schema version of the Grafana line the pinned SDK build was generated for
#: (grafana-foundation-sdk ...!11.6.0 -> Grafana 11.6.x, the one infra/compose.yaml ships: 41).
#: Taken from the SDK so the pin and the JSON cannot disagree; newer Grafana migrates on load.
SCHEMA_VERSION: int = dm.Dashboard().schema_version
DS_UID = "kneeload-pg"
DS = datasource_ref(DS_UID)
TAGS = ["kneeload"]

BAND_MAP = dm.ValueMap(
    options={
        "low": dm.ValueMappingResult(text="under", color="blue", index=0),
        "sweet_spot": dm.ValueMappingResult(text="sweet spot", color="green", index=1),
        "caution": dm.ValueMappingResult(text="caution", color="orange", index=2),
        "danger": dm.ValueMappingResult(text="danger", color="red", index=3),
    }
)
TREND_MAP = dm.ValueMap(
    options={
        "improving": dm.ValueMappingResult(text="↓ improving", color="green", index=0),
        "stable": dm.ValueMappingResult(text="→ stable", color="text", index=1),
        "worsening": dm.ValueMappingResult(text="↑ worsening", color="red", index=2),
    }
)
SEVERITY_MAP = dm.ValueMap(
    options={
        "info": dm.ValueMappingResult(text="info", color="blue", index=0),
        "warning": dm.ValueMappingResult(text="warning", color="orange", index=1),
        "critical": dm.ValueMappingResult(text="critical", color="red", index=2),
    }
)
#: The load metric the views use for "today's load" and pain vs load (kneeload.config).
OVERVIEW_METRIC = "(SELECT value FROM kneeload_api.thresholds WHERE key = 'overview_metric')"


def _pos(x: int, y: int, w: int, h: int) -> dm.GridPos:
    return dm.GridPos(x=x, y=y, w=w, h=h)


def _thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return (
        ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def _override(name: str, **props: Any) -> dash.DashboardFieldConfigSourceOverrides:
    return (
        dash.DashboardFieldConfigSourceOverrides()
        .matcher(dm.MatcherConfig(id_val="byName", options=name))
        .properties(
            [dm.DynamicConfigValue(id_val=k.replace("_", "."), value=v) for k, v in props.items()]
        )
    )


def _query_var(name: str, label: str, sql: str, *, multi: bool = False) -> dash.QueryVariable:
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(sql)
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(False)
    )


def _legend() -> common.VizLegendOptions:
    return (
        common.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


# --------------------------------------------------------------------------- 1 team overview
def team_overview() -> dash.Dashboard:
    athletes = SQL(
        """
        SELECT display_name AS "athlete",
               athlete_id,
               today_load AS "today's estimated PFJ load (MPa·s)",
               today_status AS "day status",
               acwr AS "ACWR",
               acwr_method AS "ACWR method",
               acwr_band AS "ACWR band",
               latest_pain_nrs AS "latest pain (NRS)",
               latest_pain_time AS "pain reported",
               pain_trend AS "pain trend (7 d)",
               open_alerts AS "open alerts",
               round((ceiling_distance_m / 1000)::numeric, 1) AS "today's ceiling (km)",
               ceiling_pfj_load_mpa_s AS "today's ceiling, estimated PFJ load (MPa·s)",
               CASE ceiling_verdict WHEN 'ceiling' THEN ceiling_sessions_in_window || ' sessions in 30 d'
                    ELSE 'no ceiling yet (' || ceiling_sessions_in_window || ' of 3 sessions)' END
                   AS "ceiling from"
          FROM kneeload_api.team_overview
         WHERE team_id = '$team' AND active
         ORDER BY open_alerts DESC, display_name
        """,
        expect=["athlete", "athlete_id", "today's estimated PFJ load (MPa·s)", "day status",
                "ACWR", "ACWR method", "ACWR band", "latest pain (NRS)", "pain reported",
                "pain trend (7 d)", "open alerts", "today's ceiling (km)",
                "today's ceiling, estimated PFJ load (MPa·s)", "ceiling from"],
    )  # fmt: skip
    bands = SQL(
        """
        SELECT count(*) FILTER (WHERE acwr_band = 'danger')     AS "danger",
               count(*) FILTER (WHERE acwr_band = 'caution')    AS "caution",
               count(*) FILTER (WHERE acwr_band = 'sweet_spot') AS "sweet spot",
               count(*) FILTER (WHERE acwr_band = 'low')        AS "under",
               coalesce(sum(open_alerts), 0)                    AS "open alerts"
          FROM kneeload_api.team_overview
         WHERE team_id = '$team' AND active
        """,
        expect=["danger", "caution", "sweet spot", "under", "open alerts"],
    )
    open_alerts = SQL(
        """
        SELECT event_time AS "time", severity, kind, coalesce(display_name, unit_id) AS "subject",
               message, age, alert_id
          FROM kneeload_api.open_alerts
         WHERE team_id = '$team'
         ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                  event_time DESC
        """,
        expect=["time", "severity", "kind", "subject", "message", "age", "alert_id"],
    )
    acked = SQL(
        """
        SELECT acknowledged_at AS "time", acknowledged_by AS "acknowledged by", kind, severity,
               display_name AS "athlete", message, episode_id AS "episode", status
          FROM kneeload_api.alert_episodes
         WHERE team_id = '$team' AND acknowledged_at IS NOT NULL
           AND $__timeFilter(acknowledged_at)
         ORDER BY acknowledged_at DESC
        """,
        expect=[
            "time",
            "acknowledged by",
            "kind",
            "severity",
            "athlete",
            "message",
            "episode",
            "status",
        ],
    )
    daily = SQL(
        """
        SELECT $__timeGroupAlias(date::timestamptz, '1d'),
               athlete_id AS "metric",
               max(load) AS "estimated PFJ load"
          FROM kneeload_api.acwr_history
         WHERE team_id = '$team' AND method = 'ewma' AND metric = """
        + OVERVIEW_METRIC
        + """
           AND $__timeFilter(date::timestamptz)
         GROUP BY 1, 2
         ORDER BY 1
        """,
        expect=["time", "metric", "estimated PFJ load"],
    ).format("time_series")
    return (
        dash.Dashboard("Team overview — estimated knee load")
        .uid("kneeload-team-overview")
        .description("Every athlete of a team: today's estimated PFJ load, ACWR and its band, "
                     "latest pain and its trend, open alerts. Bands come from kneeload.config.")
        .tags(TAGS)
        .time("now-30d", "now")
        .refresh("1m")
        .with_variable(_query_var("team", "Team", "SELECT DISTINCT team_id FROM kneeload_api.team_overview WHERE team_id IS NOT NULL ORDER BY 1"))
        .with_panel(
            stat.Panel().title("Athletes per ACWR band").datasource(DS).with_target(bands)
            .grid_pos(_pos(0, 0, 24, 4))
            .color_mode(cm.BigValueColorMode.BACKGROUND)
            .graph_mode(cm.BigValueGraphMode.NONE)
            .overrides([
                _override("danger", color={"mode": "fixed", "fixedColor": "red"}),
                _override("caution", color={"mode": "fixed", "fixedColor": "orange"}),
                _override("sweet spot", color={"mode": "fixed", "fixedColor": "green"}),
                _override("under", color={"mode": "fixed", "fixedColor": "blue"}),
                _override("open alerts", color={"mode": "fixed", "fixedColor": "purple"}),
            ])
        )
        .with_panel(
            table.Panel().title("Athletes — today's estimated PFJ load, ceiling, ACWR band, pain").datasource(DS)
            .description("Today's ceiling: the longest distance and the largest estimated PFJ load a session can have today without being a session spike (1.10 × the longest of the last 30 days; Frandsen et al. 2025, the one load measure that predicted injury in 5,205 runners). ACWR is context only: in the same study a higher ACWR went with fewer injuries. ACWR bands: under < acwr_band_low ≤ sweet spot < acwr_band_high ≤ caution < acwr_band_danger ≤ danger (kneeload_api.thresholds).")
            .with_target(athletes)
            .grid_pos(_pos(0, 4, 24, 12))
            .mappings([BAND_MAP, TREND_MAP])
            .overrides([
                _override("ACWR band", custom_cellOptions={"type": "color-background"}),
                _override("pain trend (7 d)", custom_cellOptions={"type": "color-text"}),
                _override("today's estimated PFJ load (MPa·s)", decimals=0),
                _override("ACWR", decimals=2),
                _override("today's ceiling, estimated PFJ load (MPa·s)", decimals=0),
                _override("athlete_id", custom_hidden=True),
            ])
        )
        .with_panel(
            table.Panel().title("Open alerts").datasource(DS).with_target(open_alerts)
            .grid_pos(_pos(0, 16, 14, 10))
            .mappings([SEVERITY_MAP])
            .overrides([_override("severity", custom_cellOptions={"type": "color-text"}),
                        _override("age", unit="s")])
        )
        .with_panel(
            table.Panel().title("Acknowledged alerts").datasource(DS).with_target(acked)
            .grid_pos(_pos(14, 16, 10, 10))
            .mappings([SEVERITY_MAP])
        )
        .with_panel(
            timeseries.Panel().title("Daily estimated PFJ load per athlete").datasource(DS)
            .with_target(daily).unit("MPa·s")
            .grid_pos(_pos(0, 26, 24, 9))
            .draw_style(cm.GraphDrawStyle.BARS).fill_opacity(60)
            .legend(_legend())
        )
    )  # fmt: skip


# --------------------------------------------------------------------------- 2 athlete detail
def athlete_detail() -> dash.Dashboard:
    sessions_ts = SQL(
        """
        SELECT $__time(start_time),
               pfj_load_mpa_s AS "estimated PFJ load (MPa·s)",
               peak_pfj_stress_mpa AS "estimated peak PFJ stress (MPa)",
               coalesce(mean_bws_pct, 0) AS "BWS (%)"
          FROM kneeload_api.athlete_timeline
         WHERE athlete_id = '$athlete' AND $__timeFilter(start_time)
         ORDER BY 1
        """,
        expect=["time", "estimated PFJ load (MPa·s)", "estimated peak PFJ stress (MPa)", "BWS (%)"],
    ).format("time_series")
    sessions_tbl = SQL(
        """
        SELECT start_time AS "start", round((duration_s / 60)::numeric, 1) AS "minutes",
               round((distance_m / 1000)::numeric, 2) AS "km", mean_cadence_spm AS "cadence (spm)",
               unit_id AS "LEVER unit", mean_bws_pct AS "BWS (%)",
               peak_pfj_stress_mpa AS "estimated peak PFJ stress (MPa)",
               pfj_load_mpa_s AS "estimated PFJ load (MPa·s)",
               pfj_load_per_km AS "estimated PFJ load per km", session_pain_nrs AS "pain (NRS)",
               coverage_pct AS "coverage (%)", status,
               samples_contact_estimated AS "samples with estimated contact",
               samples_without_estimate AS "samples without estimate",
               no_estimate_summary AS "why no estimate"
          FROM kneeload_api.athlete_timeline
         WHERE athlete_id = '$athlete' AND $__timeFilter(start_time)
         ORDER BY start_time DESC
        """,
        expect=["start", "minutes", "km", "cadence (spm)", "LEVER unit", "BWS (%)",
                "estimated peak PFJ stress (MPa)", "estimated PFJ load (MPa·s)",
                "estimated PFJ load per km", "pain (NRS)", "coverage (%)", "status",
                "samples with estimated contact", "samples without estimate",
                "why no estimate"],
    )  # fmt: skip
    acwr = SQL(
        """
        SELECT $__time(date::timestamptz), method AS "metric", acwr AS "value"
          FROM kneeload_api.acwr_history
         WHERE athlete_id = '$athlete' AND metric = """
        + OVERVIEW_METRIC
        + """
           AND acwr IS NOT NULL AND $__timeFilter(date::timestamptz)
         ORDER BY 1, 2
        """,
        expect=["time", "metric", "value"],
    ).format("time_series")
    bands = (
        SQL(
            """
        SELECT $__time(d.date::timestamptz),
               b.low AS "band: sweet spot from", b.high AS "band: caution from",
               b.danger AS "band: danger from"
          FROM (SELECT DISTINCT date FROM kneeload_api.acwr_history
                 WHERE athlete_id = '$athlete' AND $__timeFilter(date::timestamptz)) d
         CROSS JOIN (SELECT max(value::float8) FILTER (WHERE key = 'acwr_band_low')    AS low,
                            max(value::float8) FILTER (WHERE key = 'acwr_band_high')   AS high,
                            max(value::float8) FILTER (WHERE key = 'acwr_band_danger') AS danger
                       FROM kneeload_api.thresholds) b
         ORDER BY 1
        """,
            expect=["time", "band: sweet spot from", "band: caution from", "band: danger from"],
        )
        .format("time_series")
        .ref_id("B")
    )
    pmc = SQL(
        """
        SELECT $__time(date::timestamptz),
               ctl AS "fitness (CTL, 42 d)", atl AS "fatigue (ATL, 7 d)", tsb AS "form (TSB)"
          FROM kneeload_api.acwr_history
         WHERE athlete_id = '$athlete' AND method = 'ewma' AND metric = """
        + OVERVIEW_METRIC
        + """
           AND ctl IS NOT NULL AND $__timeFilter(date::timestamptz)
         ORDER BY 1
        """,
        expect=["time", "fitness (CTL, 42 d)", "fatigue (ATL, 7 d)", "form (TSB)"],
    ).format("time_series")
    pain = SQL(
        """
        SELECT $__time(date::timestamptz),
               load AS "estimated PFJ load",
               pain_lag0_nrs AS "pain same day (lag 0)",
               pain_next_morning_nrs AS "pain next morning (lag 1)"
          FROM kneeload_api.pain_vs_load
         WHERE athlete_id = '$athlete' AND $__timeFilter(date::timestamptz)
         ORDER BY 1
        """,
        expect=["time", "estimated PFJ load", "pain same day (lag 0)", "pain next morning (lag 1)"],
    ).format("time_series")
    corr = SQL(
        """
        SELECT CASE lag_days WHEN 0 THEN 'same day (lag 0)' ELSE 'next morning (lag 1)' END AS "lag",
               metric, method, r, n, ci_low AS "95% CI low", ci_high AS "95% CI high",
               p_value AS "p", withheld_reason AS "withheld because", time AS "updated"
          FROM kneeload_api.correlations
         WHERE scope = 'athlete' AND athlete_id = '$athlete'
         ORDER BY lag_days, metric, method
        """,
        expect=["lag", "metric", "method", "r", "n", "95% CI low", "95% CI high", "p",
                "withheld because", "updated"],
    )  # fmt: skip
    bws = SQL(
        """
        SELECT time, pain_nrs AS "pain (NRS)", context, classification, unit_id AS "LEVER unit",
               bws_action AS action, bws_current_pct AS "current BWS (%)",
               bws_suggested_pct AS "suggested BWS (%)", load_action AS "next session load",
               next_day_nrs AS "next-day pain (NRS)",
               CASE next_day_status WHEN 'pending' THEN 'pending, expected '
                    || to_char(next_day_expected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC'
                    ELSE next_day_status END AS "next-day report",
               summary AS "why (preset and source)"
          FROM kneeload_api.pain_responses
         WHERE athlete_id = '$athlete' AND $__timeFilter(time)
         ORDER BY time DESC
        """,
        expect=["time", "pain (NRS)", "context", "classification", "LEVER unit", "action",
                "current BWS (%)", "suggested BWS (%)", "next session load", "next-day pain (NRS)",
                "next-day report", "why (preset and source)"],
    )  # fmt: skip
    alerts = SQL(
        """
        SELECT event_time AS "time", severity, kind, episode_transition AS "change", message,
               acknowledged_by AS "acknowledged by", acknowledged_at AS "acknowledged at"
          FROM kneeload_api.alerts
         WHERE athlete_id = '$athlete' AND $__timeFilter(event_time)
         ORDER BY event_time DESC
        """,
        expect=[
            "time",
            "severity",
            "kind",
            "change",
            "message",
            "acknowledged by",
            "acknowledged at",
        ],
    )
    ceiling_today = SQL(
        """
        SELECT round((ceiling_distance_m / 1000)::numeric, 1) AS "longest run today (km)",
               ceiling_pfj_load_mpa_s AS "largest estimated PFJ load today (MPa·s)",
               ceiling_sessions_in_window AS "sessions in the last 30 days"
          FROM kneeload_api.team_overview
         WHERE athlete_id = '$athlete'
        """,
        expect=["longest run today (km)", "largest estimated PFJ load today (MPa·s)",
                "sessions in the last 30 days"],
    )  # fmt: skip
    ceiling_ts = SQL(
        """
        SELECT $__time(s.start_time), s.distance_m / 1000 AS "session (km)",
               c.ceiling_distance_m / 1000 AS "ceiling that day (km)"
          FROM kneeload_api.athlete_timeline s
          LEFT JOIN kneeload_api.ceiling_history c
            ON c.athlete_id = s.athlete_id AND c.date = s.local_date
         WHERE s.athlete_id = '$athlete' AND $__timeFilter(s.start_time)
         ORDER BY 1
        """,
        expect=["time", "session (km)", "ceiling that day (km)"],
    ).format("time_series")
    return (
        dash.Dashboard("Athlete detail — sessions, ACWR, pain vs estimated load")
        .uid("kneeload-athlete-detail")
        .description("One athlete: session timeline with estimated PFJ load and BWS, ACWR per "
                     "method with the bands, pain against load (same day and next morning) "
                     "with the correlation and its n, pain responses (next-day value, preset and source) "
                     "and suggestions for the clinician (never applied automatically).")
        .tags(TAGS)
        .time("now-90d", "now")
        .refresh("5m")
        .with_variable(_query_var("team", "Team", "SELECT DISTINCT team_id FROM kneeload_api.team_overview WHERE team_id IS NOT NULL ORDER BY 1"))
        .with_variable(_query_var("athlete", "Athlete", "SELECT athlete_id AS __value, display_name AS __text FROM kneeload_api.team_overview WHERE team_id = '$team' ORDER BY display_name"))
        .with_panel(
            timeseries.Panel().title("Session timeline — estimated PFJ load and BWS").datasource(DS)
            .with_target(sessions_ts).grid_pos(_pos(0, 0, 24, 9))
            .draw_style(cm.GraphDrawStyle.BARS).fill_opacity(50).legend(_legend())
            .overrides([
                _override("BWS (%)", unit="percent", custom_drawStyle="line",
                          custom_axisPlacement="right", max=100, min=0),
                _override("estimated peak PFJ stress (MPa)", unit="pressuremp",
                          custom_drawStyle="points", custom_axisPlacement="right"),
            ])
        )
        .with_panel(
            table.Panel().title("Sessions").datasource(DS).with_target(sessions_tbl)
            .grid_pos(_pos(0, 9, 24, 8))
        )
        .with_panel(
            timeseries.Panel().title("ACWR per method (estimated PFJ load) with bands").datasource(DS)
            .description("ewma = exponentially weighted; rac / rau = rolling averages coupled / uncoupled. Dashed lines: band thresholds from kneeload.config.")
            .with_target(acwr).with_target(bands).grid_pos(_pos(0, 17, 24, 9))
            .min(0).legend(_legend())
            .overrides([
                _override("band: sweet spot from", custom_lineStyle={"fill": "dash", "dash": [10, 10]}, color={"mode": "fixed", "fixedColor": "green"}),
                _override("band: caution from", custom_lineStyle={"fill": "dash", "dash": [10, 10]}, color={"mode": "fixed", "fixedColor": "orange"}),
                _override("band: danger from", custom_lineStyle={"fill": "dash", "dash": [10, 10]}, color={"mode": "fixed", "fixedColor": "red"}),
            ])
        )
        .with_panel(
            timeseries.Panel().title("Fitness / fatigue (PMC) — estimated PFJ load").datasource(DS)
            .description("Performance management chart on the estimated PFJ load: fitness = CTL "
                         "(42-day exponentially weighted load), fatigue = ATL (7-day), form = "
                         "TSB = CTL − ATL (negative: more recent load than the knee is used to). "
                         "Banister's impulse-response idea as GoldenCheetah and intervals.icu "
                         "show it; here on a model estimate, not a validated injury threshold.")
            .with_target(pmc).grid_pos(_pos(0, 26, 24, 9)).legend(_legend())
            .overrides([
                _override("form (TSB)", custom_drawStyle="bars", custom_fillOpacity=30,
                          custom_axisPlacement="right"),
            ])
        )
        .with_panel(
            timeseries.Panel().title("Pain vs estimated PFJ load — same day and next morning").datasource(DS)
            .with_target(pain).grid_pos(_pos(0, 35, 16, 9)).legend(_legend())
            .overrides([
                _override("estimated PFJ load", custom_drawStyle="bars", custom_fillOpacity=40, unit="MPa·s"),
                _override("pain same day (lag 0)", custom_axisPlacement="right", min=0, max=10, custom_showPoints="always"),
                _override("pain next morning (lag 1)", custom_axisPlacement="right", min=0, max=10, custom_showPoints="always"),
            ])
        )
        .with_panel(
            table.Panel().title("Pain–load correlation (r with its n)").datasource(DS)
            .with_target(corr).grid_pos(_pos(16, 35, 8, 9))
            .overrides([_override("r", decimals=2), _override("p", decimals=3)])
        )
        .with_panel(
            table.Panel().title("Pain responses and suggestions for the clinician").datasource(DS).with_target(bws)
            .grid_pos(_pos(0, 44, 14, 8))
        )
        .with_panel(
            stat.Panel().title("Today's session-spike ceiling (estimate)").datasource(DS)
            .description("The longest distance and the largest estimated PFJ load a session can have today without being a session spike: 1.10 × the longest of the sessions started in the last 30 days (Frandsen et al. 2025). Empty below 3 sessions in the window: no ceiling is guessed. Same numbers as `kneeload ceiling --athlete-id`.")
            .with_target(ceiling_today).grid_pos(_pos(0, 52, 8, 7))
            .graph_mode(cm.BigValueGraphMode.NONE)
        )
        .with_panel(
            timeseries.Panel().title("Session distance against that day's ceiling").datasource(DS)
            .description("Bars: each session's distance. Line: the ceiling of its day (kneeload_api.ceiling_history, the athlete's local day). A bar above the line was a session spike.")
            .with_target(ceiling_ts).grid_pos(_pos(8, 52, 16, 7)).unit("lengthkm")
            .legend(_legend())
            .overrides([
                _override("session (km)", custom_drawStyle="bars", custom_fillOpacity=50),
                _override("ceiling that day (km)", custom_lineInterpolation="stepAfter",
                          custom_lineStyle={"fill": "dash", "dash": [10, 10]},
                          color={"mode": "fixed", "fixedColor": "red"}),
            ])
        )
        .with_panel(
            table.Panel().title("Alerts (with acknowledgement)").datasource(DS).with_target(alerts)
            .grid_pos(_pos(14, 44, 10, 8)).mappings([SEVERITY_MAP])
        )
    )  # fmt: skip


# --------------------------------------------------------------------------- 3 clinic fleet
def clinic_fleet() -> dash.Dashboard:
    online = SQL(
        """
        SELECT count(*) FILTER (WHERE online) AS "online",
               count(*) FILTER (WHERE NOT online) AS "offline",
               count(*) FILTER (WHERE in_use) AS "in use",
               round(avg(utilisation_pct), 1) AS "mean utilisation today (%)"
          FROM kneeload_api.fleet_status
         WHERE clinic_id = '$clinic'
        """,
        expect=["online", "offline", "in use", "mean utilisation today (%)"],
    )
    units = SQL(
        """
        SELECT unit_id AS "unit", CASE WHEN online THEN 'online' ELSE 'offline' END AS "state",
               in_use AS "in use", athlete_display_name AS "athlete", bws_pct AS "BWS (%)",
               minutes_used_today AS "minutes today", utilisation_pct AS "utilisation (%)",
               last_seen AS "last seen"
          FROM kneeload_api.fleet_status
         WHERE clinic_id = '$clinic'
         ORDER BY unit_id
        """,
        expect=["unit", "state", "in use", "athlete", "BWS (%)", "minutes today",
                "utilisation (%)", "last seen"],
    )  # fmt: skip
    per_unit = SQL(
        """
        SELECT unit_id AS "unit", count(*) AS "sessions",
               round((sum(duration_s) / 60)::numeric, 1) AS "minutes"
          FROM kneeload_api.fleet_sessions
         WHERE clinic_id = '$clinic' AND $__timeFilter(start_time)
         GROUP BY unit_id
         ORDER BY unit_id
        """,
        expect=["unit", "sessions", "minutes"],
    )
    minutes_ts = SQL(
        """
        SELECT $__timeGroupAlias(start_time, '1d'), unit_id AS "metric",
               sum(duration_s) / 60 AS "minutes"
          FROM kneeload_api.fleet_sessions
         WHERE clinic_id = '$clinic' AND $__timeFilter(start_time)
         GROUP BY 1, 2
         ORDER BY 1
        """,
        expect=["time", "metric", "minutes"],
    ).format("time_series")
    bands = ", ".join(
        f"""sum(minutes) FILTER (WHERE bws_band_low_pct = {lo}) AS "{lo}–{lo + 10} % BWS\""""
        for lo in range(0, 100, 10)
    )
    bws = SQL(
        f"""
        SELECT unit_id AS "unit", {bands}
          FROM kneeload_api.fleet_bws_distribution
         WHERE clinic_id = '$clinic'
           AND date BETWEEN $__timeFrom()::date AND $__timeTo()::date
         GROUP BY unit_id
         ORDER BY unit_id
        """,
        expect=["unit", *[f"{lo}–{lo + 10} % BWS" for lo in range(0, 100, 10)]],
    )
    utilisation = SQL(
        """
        SELECT unit_id AS "unit", utilisation_pct AS "utilisation today (%)"
          FROM kneeload_api.fleet_status
         WHERE clinic_id = '$clinic'
         ORDER BY unit_id
        """,
        expect=["unit", "utilisation today (%)"],
    )
    period = "date BETWEEN $__timeFrom()::date AND $__timeTo()::date"
    hours = SQL(
        f"""
        SELECT unit_id AS "unit",
               round((sum(in_use_min) / 60)::numeric, 1) AS "in use (h)",
               round((sum(idle_min) / 60)::numeric, 1) AS "idle (h)",
               round((sum(offline_min) / 60)::numeric, 1) AS "offline (h)",
               round((sum(unknown_min) / 60)::numeric, 1) AS "unknown (h)",
               round((100 * sum(in_use_min) / nullif(sum(open_min) - sum(unknown_min), 0))::numeric, 1)
                   AS "utilisation (%)",
               round((100 * sum(offline_min) / nullif(sum(open_min) - sum(unknown_min), 0))::numeric, 1)
                   AS "downtime (%)",
               sum(sessions) AS "sessions"
          FROM kneeload_api.fleet_utilisation_daily
         WHERE clinic_id = '$clinic' AND {period}
         GROUP BY unit_id
         ORDER BY unit_id
        """,
        expect=["unit", "in use (h)", "idle (h)", "offline (h)", "unknown (h)",
                "utilisation (%)", "downtime (%)", "sessions"],
    )  # fmt: skip
    downtime_ts = SQL(
        f"""
        SELECT date::timestamp AT TIME ZONE 'UTC' AS "time", unit_id AS "metric",
               offline_min AS "offline minutes"
          FROM kneeload_api.fleet_utilisation_daily
         WHERE clinic_id = '$clinic' AND {period}
         ORDER BY 1
        """,
        expect=["time", "metric", "offline minutes"],
    ).format("time_series")
    drift_ts = SQL(
        f"""
        SELECT date::timestamp AT TIME ZONE 'UTC' AS "time", unit_id AS "metric",
               bias_pp::float8 AS "bias (pp)"
          FROM kneeload_api.fleet_calibration_daily
         WHERE clinic_id = '$clinic' AND {period}
         ORDER BY 1
        """,
        expect=["time", "metric", "bias (pp)"],
    ).format("time_series")
    drift = SQL(
        """
        SELECT DISTINCT ON (unit_id) unit_id AS "unit", date AS "day", samples AS "samples",
               bias_pp AS "bias (pp)", mae_pp AS "MAE (pp)", trend_pp_per_day AS "trend (pp/day)",
               CASE WHEN out_of_tolerance THEN 'out of tolerance' ELSE 'ok' END AS "calibration",
               tolerance_pp AS "tolerance (pp)"
          FROM kneeload_api.fleet_calibration_daily
         WHERE clinic_id = '$clinic'
         ORDER BY unit_id, date DESC
        """,
        expect=["unit", "day", "samples", "bias (pp)", "MAE (pp)", "trend (pp/day)",
                "calibration", "tolerance (pp)"],
    )  # fmt: skip
    outcomes = SQL(
        """
        SELECT group_id AS "unit", athletes AS "athletes (n)",
               pain_change_nrs AS "next-morning pain change (NRS)", pain_n AS "pain n",
               bws_median_days AS "days to target BWS (KM median)", bws_n AS "BWS n",
               pfj_load_per_km_median AS "median estimated PFJ load per km (MPa·s/km)",
               pfj_n AS "estimated PFJ n", flares_per_athlete AS "pain flares per athlete",
               CASE WHEN withheld = '' THEN 'shown'
                    ELSE 'withheld below n = ' || min_n || ': ' || withheld END AS "withheld",
               rank_pain_change AS "rank: pain", rank_pfj_load_per_km AS "rank: estimated PFJ/km",
               period_from AS "from", period_to AS "to"
          FROM kneeload_api.fleet_outcomes
         WHERE level = 'unit' AND clinic_id = '$clinic'
         ORDER BY group_id
        """,
        expect=["unit", "athletes (n)", "next-morning pain change (NRS)", "pain n",
                "days to target BWS (KM median)", "BWS n",
                "median estimated PFJ load per km (MPa·s/km)", "estimated PFJ n",
                "pain flares per athlete", "withheld", "rank: pain", "rank: estimated PFJ/km",
                "from", "to"],
    )  # fmt: skip
    return (
        dash.Dashboard("Clinic fleet — LEVER units side by side")
        .uid("kneeload-clinic-fleet")
        .description("LEVER body-weight-support treadmills of a clinic: online/offline, "
                     "utilisation, sessions and minutes per unit, BWS distribution per unit, "
                     "downtime and calibration drift per unit, outcomes by unit with n.")
        .tags(TAGS)
        .time("now-7d", "now")
        .refresh("30s")
        .with_variable(_query_var("clinic", "Clinic", "SELECT DISTINCT clinic_id FROM kneeload_api.fleet_status WHERE clinic_id IS NOT NULL ORDER BY 1"))
        .with_panel(
            stat.Panel().title("Units").datasource(DS).with_target(online)
            .grid_pos(_pos(0, 0, 24, 4)).graph_mode(cm.BigValueGraphMode.NONE)
            .color_mode(cm.BigValueColorMode.BACKGROUND)
            .overrides([
                _override("online", color={"mode": "fixed", "fixedColor": "green"}),
                _override("offline", color={"mode": "fixed", "fixedColor": "red"}),
                _override("in use", color={"mode": "fixed", "fixedColor": "blue"}),
                _override("mean utilisation today (%)", unit="percent"),
            ])
        )
        .with_panel(
            table.Panel().title("Units side by side").datasource(DS).with_target(units)
            .grid_pos(_pos(0, 4, 16, 9))
            .mappings([dm.ValueMap(options={
                "online": dm.ValueMappingResult(text="online", color="green", index=0),
                "offline": dm.ValueMappingResult(text="offline", color="red", index=1),
            })])
            .overrides([_override("state", custom_cellOptions={"type": "color-background"})])
        )
        .with_panel(
            bargauge.Panel().title("Utilisation today per unit").datasource(DS)
            .with_target(utilisation).grid_pos(_pos(16, 4, 8, 9))
            .unit("percent").min(0).max(100)
            .thresholds(_thresholds((None, "blue"), (50, "green"), (90, "orange")))
            .reduce_options(common.ReduceDataOptions().values(True).calcs([]))
        )
        .with_panel(
            barchart.Panel().title("Sessions and minutes per unit").datasource(DS)
            .with_target(per_unit).grid_pos(_pos(0, 13, 12, 9)).x_field("unit")
            .overrides([_override("sessions", custom_axisPlacement="right")])
        )
        .with_panel(
            barchart.Panel().title("BWS distribution per unit (minutes per BWS band)").datasource(DS)
            .with_target(bws).grid_pos(_pos(12, 13, 12, 9)).x_field("unit")
            .stacking(cm.StackingMode.NORMAL)
        )
        .with_panel(
            timeseries.Panel().title("Minutes per unit per day").datasource(DS)
            .with_target(minutes_ts).grid_pos(_pos(0, 22, 24, 8))
            .draw_style(cm.GraphDrawStyle.BARS).fill_opacity(60).legend(_legend())
        )
        .with_panel(
            table.Panel().title("Opening hours per unit: in use, idle, offline (downtime)")
            .datasource(DS).with_target(hours).grid_pos(_pos(0, 30, 14, 9))
            .description("Hours within the clinic's opening hours (kneeload.core.utilisation; "
                         "stored by `kneeload fleet refresh`). Utilisation and downtime are "
                         "shares of the known open time.")
        )
        .with_panel(
            timeseries.Panel().title("Downtime: offline minutes in opening hours per unit and day")
            .datasource(DS).with_target(downtime_ts).grid_pos(_pos(14, 30, 10, 9))
            .draw_style(cm.GraphDrawStyle.BARS).fill_opacity(60).legend(_legend())
        )
        .with_panel(
            timeseries.Panel().title("Calibration drift: daily bias per unit (measured − commanded, pp)")
            .datasource(DS).with_target(drift_ts).grid_pos(_pos(0, 39, 14, 9))
            .legend(_legend())
            .thresholds(_thresholds((None, "green"), (3, "red")))
        )
        .with_panel(
            table.Panel().title("Calibration per unit (latest day)").datasource(DS)
            .with_target(drift).grid_pos(_pos(14, 39, 10, 9))
        )
        .with_panel(
            table.Panel().title("Outcomes by unit (n; withheld below the minimum n, never ranked)")
            .datasource(DS).with_target(outcomes).grid_pos(_pos(0, 48, 24, 9))
            .description("Athletes who trained on each unit over the refreshed period "
                         "(kneeload.core.outcomes): next-morning pain of the last vs the first two "
                         "weeks, Kaplan–Meier median days to the target BWS, median estimated PFJ "
                         "load per km, pain flares per athlete. Observational figures: a "
                         "difference is a question, not a verdict on the unit.")
        )
    )  # fmt: skip


# --------------------------------------------------------------------------- 4 live session
def live_session() -> dash.Dashboard:
    def series(column: str, label: str) -> SQL:
        return SQL(
            f"""
            SELECT $__timeGroupAlias(time, $__interval), avg({column}) AS "{label}"
              FROM kneeload_api.live_session_samples
             WHERE athlete_id = '$athlete' AND $__timeFilter(time)
             GROUP BY 1
             ORDER BY 1
            """,
            expect=["time", label],
        ).format("time_series")

    now = SQL(
        """
        SELECT cadence_spm AS "cadence (spm)", speed_mps AS "speed (m/s)", bws_pct AS "BWS (%)",
               peak_pfj_stress_mpa AS "estimated PFJ stress (MPa)",
               extract(epoch from age) AS "last sample (s ago)"
          FROM kneeload_api.live_session
         WHERE athlete_id = '$athlete'
        """,
        expect=["cadence (spm)", "speed (m/s)", "BWS (%)", "estimated PFJ stress (MPa)",
                "last sample (s ago)"],
    )  # fmt: skip
    running = SQL(
        """
        SELECT display_name AS "athlete", unit_id AS "LEVER unit", cadence_spm AS "cadence (spm)",
               speed_mps AS "speed (m/s)", bws_pct AS "BWS (%)",
               peak_pfj_stress_mpa AS "estimated PFJ stress (MPa)", time AS "last sample",
               CASE WHEN estimated IS FALSE THEN 'no estimate: ' || no_estimate_detail
                    WHEN ground_contact_estimated THEN 'estimated, contact time estimated too'
                    ELSE 'estimated' END AS "estimate"
          FROM kneeload_api.live_session
         WHERE team_id = '$team'
         ORDER BY display_name
        """,
        expect=["athlete", "LEVER unit", "cadence (spm)", "speed (m/s)", "BWS (%)",
                "estimated PFJ stress (MPa)", "last sample", "estimate"],
    )  # fmt: skip
    panels: list[tuple[str, str, str, str]] = [
        ("cadence_spm", "cadence (spm)", "Cadence", "none"),
        ("speed_mps", "speed (m/s)", "Speed", "velocityms"),
        ("bws_pct", "BWS (%)", "Body-weight support", "percent"),
        ("peak_pfj_stress_mpa", "estimated PFJ stress (MPa)", "Estimated PFJ stress", "pressuremp"),
    ]
    d = (
        dash.Dashboard("Live session — cadence, speed, BWS, estimated PFJ stress")
        .uid("kneeload-live-session")
        .description("The athlete running now (samples newer than live_window_s); refreshes every 5 s.")
        .tags(TAGS)
        .time("now-15m", "now")
        .refresh("5s")
        .with_variable(_query_var("team", "Team", "SELECT DISTINCT team_id FROM kneeload_api.team_overview WHERE team_id IS NOT NULL ORDER BY 1"))
        .with_variable(_query_var("athlete", "Athlete running now", "SELECT athlete_id AS __value, display_name AS __text FROM kneeload_api.live_session WHERE team_id = '$team' ORDER BY display_name").refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED))
        .with_panel(
            stat.Panel().title("Now").datasource(DS).with_target(now)
            .grid_pos(_pos(0, 0, 24, 4)).graph_mode(cm.BigValueGraphMode.NONE)
            .overrides([_override("last sample (s ago)", unit="s")])
        )
    )  # fmt: skip
    for i, (col, label, title, unit) in enumerate(panels):
        d = d.with_panel(
            timeseries.Panel()
            .title(title)
            .datasource(DS)
            .with_target(series(col, label))
            .unit(unit)
            .grid_pos(_pos(12 * (i % 2), 4 + 8 * (i // 2), 12, 8))
            .span_nulls(True)
        )
    return d.with_panel(
        table.Panel()
        .title("Running now")
        .datasource(DS)
        .with_target(running)
        .grid_pos(_pos(0, 20, 24, 6))
    )


DASHBOARDS: dict[str, Callable[[], dash.Dashboard]] = {
    "team-overview": team_overview,
    "athlete-detail": athlete_detail,
    "clinic-fleet": clinic_fleet,
    "live-session": live_session,
}


def _json(builder: dash.Dashboard) -> dict[str, Any]:
    import json

    model = builder.build()
    model.schema_version = SCHEMA_VERSION
    model.editable = True
    model.timezone = "browser"
    return dict(_clean(json.loads(JSONEncoder(sort_keys=True, indent=2).encode(model))))


def _clean(v: Any) -> Any:
    """Drop null members (Grafana fills defaults; a null ``options`` would not be one)."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def build_all() -> dict[str, dict[str, Any]]:
    """Every dashboard as Grafana JSON, keyed by file stem."""
    return {name: _json(fn()) for name, fn in DASHBOARDS.items()}


def expected_columns() -> dict[tuple[str, str, str], Sequence[str]]:
    """(dashboard uid, panel title, refId) → columns the panel's query must return."""
    out: dict[tuple[str, str, str], Sequence[str]] = {}
    for fn in DASHBOARDS.values():
        model = fn().build()
        for panel in model.panels or []:
            for t in getattr(panel, "targets", None) or []:
                out[(str(model.uid), str(panel.title), t.ref_id)] = t.expect
    return out
