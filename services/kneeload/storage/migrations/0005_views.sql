-- 0005 the public read surface: documented views in schema kneeload_api.
-- Every view is security_invoker, so row-level security of the caller applies (a coach sees only
-- their team, a clinic only its units). Dashboards and tools query only these views.

CREATE VIEW kneeload_api.team_overview WITH (security_invoker = true) AS
WITH cfg AS (
    SELECT kneeload.config_value('overview_metric') AS metric,
           kneeload.config_value('overview_acwr_method') AS method,
           kneeload.config_value('pain_trend_delta_nrs')::float8 AS trend_delta
)
SELECT a.team_id,
       t.name                         AS team_name,
       a.athlete_id,
       a.display_name,
       a.active,
       d.local_date,
       cfg.metric,
       td.load                        AS today_load,
       td.status                      AS today_status,
       l.date                         AS acwr_date,
       cfg.method                     AS acwr_method,
       l.acwr,
       kneeload.acwr_band(l.acwr)     AS acwr_band,
       l.ewma_acwr                    AS acwr_ewma,
       l.rac_acwr                     AS acwr_rac,
       l.rau_acwr                     AS acwr_rau,
       lp.pain_nrs                    AS latest_pain_nrs,
       lp.time                        AS latest_pain_time,
       lp.context                     AS latest_pain_context,
       pt.mean_7d                     AS pain_mean_7d,
       pt.mean_prev_7d                AS pain_mean_prev_7d,
       CASE WHEN pt.mean_7d IS NULL OR pt.mean_prev_7d IS NULL THEN NULL
            WHEN pt.mean_7d - pt.mean_prev_7d >= cfg.trend_delta THEN 'worsening'
            WHEN pt.mean_prev_7d - pt.mean_7d >= cfg.trend_delta THEN 'improving'
            ELSE 'stable' END          AS pain_trend,
       oa.n                           AS open_alerts
  FROM kneeload.athletes a
  CROSS JOIN cfg
  LEFT JOIN kneeload.teams t ON t.team_id = a.team_id
  CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE a.time_zone)::date AS local_date) d
  LEFT JOIN kneeload.daily_load td
         ON td.athlete_id = a.athlete_id AND td.metric = cfg.metric AND td.date = d.local_date
  LEFT JOIN LATERAL (
        SELECT x.date,
               CASE cfg.method WHEN 'rac' THEN x.rac_acwr WHEN 'rau' THEN x.rau_acwr ELSE x.ewma_acwr END AS acwr,
               x.ewma_acwr, x.rac_acwr, x.rau_acwr
          FROM kneeload.daily_load x
         WHERE x.athlete_id = a.athlete_id AND x.metric = cfg.metric AND x.date <= d.local_date
         ORDER BY x.date DESC LIMIT 1) l ON true
  LEFT JOIN LATERAL (
        SELECT p.pain_nrs, p.time, p.context FROM kneeload.pain_reports p
         WHERE p.athlete_id = a.athlete_id AND p.time <= now()
         ORDER BY p.time DESC LIMIT 1) lp ON true
  LEFT JOIN LATERAL (
        SELECT avg(p.pain_nrs) FILTER (WHERE p.time >= now() - interval '7 days')::float8 AS mean_7d,
               avg(p.pain_nrs) FILTER (WHERE p.time <  now() - interval '7 days')::float8 AS mean_prev_7d
          FROM kneeload.pain_reports p
         WHERE p.athlete_id = a.athlete_id AND p.time >= now() - interval '14 days' AND p.time <= now()) pt ON true
  LEFT JOIN LATERAL (
        SELECT count(*) AS n FROM kneeload.alerts al
         WHERE al.athlete_id = a.athlete_id AND al.acknowledged_at IS NULL) oa ON true;
COMMENT ON VIEW kneeload_api.team_overview IS
'Every athlete with today''s load (overview_metric, athlete''s local date), the latest ACWR (overview_acwr_method, plus all three methods) and its band (thresholds in kneeload.config), latest pain and its 7-day trend, and the number of open alerts. PFJ figures are model estimates.';

CREATE VIEW kneeload_api.athlete_timeline WITH (security_invoker = true) AS
SELECT s.athlete_id,
       a.display_name,
       a.team_id,
       s.session_id,
       s.start_time,
       s.end_time,
       (s.start_time AT TIME ZONE coalesce(a.time_zone, 'UTC'))::date AS local_date,
       s.duration_s,
       s.distance_m,
       s.mean_speed_mps,
       s.mean_cadence_spm,
       s.unit_id,
       s.mean_bws_pct,
       s.peak_pfj_stress_mpa,
       s.pfj_load_mpa_s,
       s.pfj_load_per_km,
       s.samples,
       s.coverage_pct,
       s.status,
       s.revision,
       pr.pain_nrs AS session_pain_nrs
  FROM kneeload.sessions s
  LEFT JOIN kneeload.athletes a ON a.athlete_id = s.athlete_id
  LEFT JOIN LATERAL (SELECT max(p.pain_nrs) AS pain_nrs FROM kneeload.pain_reports p
                      WHERE p.session_id = s.session_id) pr ON true;
COMMENT ON VIEW kneeload_api.athlete_timeline IS
'Sessions per athlete with estimated PFJ load (total, per km, peak stress), BWS (unit and mean support) and the highest pain reported for the session; status open|closed, latest revision.';

CREATE VIEW kneeload_api.acwr_history WITH (security_invoker = true) AS
SELECT d.athlete_id,
       d.team_id,
       d.date,
       d.metric,
       d.load,
       d.status,
       d.revision,
       d.corrected,
       m.method,
       m.acute,
       m.chronic,
       m.acwr,
       kneeload.acwr_band(m.acwr) AS acwr_band,
       m.reason,
       d.week_over_week_pct,
       d.monotony,
       d.strain,
       d.atl,
       d.ctl,
       d.tsb
  FROM kneeload.daily_load d
  CROSS JOIN LATERAL (VALUES
        ('ewma', d.ewma_acute, d.ewma_chronic, d.ewma_acwr, d.ewma_reason),
        ('rac',  d.rac_acute,  d.rac_chronic,  d.rac_acwr,  d.rac_reason),
        ('rau',  d.rau_acute,  d.rau_chronic,  d.rau_acwr,  d.rau_reason)) AS m(method, acute, chronic, acwr, reason);
COMMENT ON VIEW kneeload_api.acwr_history IS
'Daily load and ACWR per athlete, date, metric and method (ewma = exponentially weighted, rac = rolling average coupled, rau = rolling average uncoupled) with band, provisional/final status, revision and whether late data corrected it; plus week-over-week change, monotony, strain, ATL/CTL/TSB.';

CREATE VIEW kneeload_api.daily_load_revisions WITH (security_invoker = true) AS
SELECT r.athlete_id, r.team_id, r.date, r.metric, r.revision, r.status, r.corrected, r.load,
       r.ewma_acwr, r.rac_acwr, r.rau_acwr, r.updated_at AS received_at
  FROM kneeload.daily_load_revisions r;
COMMENT ON VIEW kneeload_api.daily_load_revisions IS
'Every revision of every daily load (provisional values, the final one and corrections from late data).';

CREATE VIEW kneeload_api.pain_vs_load WITH (security_invoker = true) AS
SELECT d.athlete_id,
       d.team_id,
       d.date,
       d.metric,
       d.load,
       p.pain_lag0_nrs,
       p.pain_next_morning_nrs
  FROM kneeload.daily_load d
  JOIN kneeload.athletes a ON a.athlete_id = d.athlete_id
  LEFT JOIN LATERAL (
        SELECT max(r.pain_nrs) FILTER (WHERE (r.time AT TIME ZONE a.time_zone)::date = d.date
                                         AND r.context <> 'next_morning')      AS pain_lag0_nrs,
               max(r.pain_nrs) FILTER (WHERE (r.time AT TIME ZONE a.time_zone)::date = d.date + 1
                                         AND r.context = 'next_morning')       AS pain_next_morning_nrs
          FROM kneeload.pain_reports r
         WHERE r.athlete_id = d.athlete_id
           AND r.time >= (d.date::timestamp AT TIME ZONE a.time_zone)
           AND r.time <  ((d.date + 2)::timestamp AT TIME ZONE a.time_zone)) p ON true
 WHERE d.metric = kneeload.config_value('overview_metric');
COMMENT ON VIEW kneeload_api.pain_vs_load IS
'Per athlete and local date: the day''s load (overview_metric) beside the highest same-day pain (lag 0: during/after/rest reports that day) and the next-morning pain (reports with context next_morning on the following day).';

CREATE VIEW kneeload_api.correlations WITH (security_invoker = true) AS
SELECT DISTINCT ON (c.scope, c.athlete_id, c.team_id, c.metric, c.lag_days, c.method)
       c.scope, c.athlete_id, a.display_name, c.team_id, c.metric, c.lag_days, c.method,
       c.n, c.r, c.df, c.ci_low, c.ci_high, c.p_value, c.withheld_reason, c.time
  FROM kneeload.correlations c
  LEFT JOIN kneeload.athletes a ON a.athlete_id = c.athlete_id
 ORDER BY c.scope, c.athlete_id, c.team_id, c.metric, c.lag_days, c.method, c.time DESC;
COMMENT ON VIEW kneeload_api.correlations IS
'Latest pain-load correlation per scope (athlete or team), metric, lag (0 = same day, 1 = next morning) and method, with n, r, 95% CI and p; withheld_reason explains a withheld estimate.';

CREATE VIEW kneeload_api.bws_suggestions WITH (security_invoker = true) AS
SELECT r.time, r.athlete_id, a.display_name, r.team_id, r.report_id, r.session_id,
       r.pain_nrs, r.context, r.baseline_nrs, r.classification, r.reason, r.preset,
       r.bws_unit_id       AS unit_id,
       r.bws_action        AS action,
       r.bws_current_pct   AS current_bws_pct,
       r.bws_suggested_pct AS suggested_bws_pct,
       r.bws_reason        AS suggestion_reason
  FROM kneeload.pain_responses r
  LEFT JOIN kneeload.athletes a ON a.athlete_id = r.athlete_id
 WHERE r.bws_action IS NOT NULL;
COMMENT ON VIEW kneeload_api.bws_suggestions IS
'Pain responses that come with a body-weight-support suggestion: the pain classification and the suggested BWS change for the athlete''s LEVER unit.';

CREATE VIEW kneeload_api.alerts WITH (security_invoker = true) AS
SELECT al.alert_id, al.dedup_key, al.kind, al.severity, al.athlete_id, a.display_name,
       al.unit_id, al.team_id, al.clinic_id, al.event_time, al.message, al."values",
       al.received_at, al.acknowledged_by, al.acknowledged_at
  FROM kneeload.alerts al
  LEFT JOIN kneeload.athletes a ON a.athlete_id = al.athlete_id;
COMMENT ON VIEW kneeload_api.alerts IS 'Every alert with who acknowledged it and when (NULL while open).';

CREATE VIEW kneeload_api.open_alerts WITH (security_invoker = true) AS
SELECT al.alert_id, al.dedup_key, al.kind, al.severity, al.athlete_id, a.display_name,
       al.unit_id, al.team_id, al.clinic_id, al.event_time, al.message, al."values",
       now() - al.event_time AS age
  FROM kneeload.alerts al
  LEFT JOIN kneeload.athletes a ON a.athlete_id = al.athlete_id
 WHERE al.acknowledged_at IS NULL;
COMMENT ON VIEW kneeload_api.open_alerts IS
'Alerts not yet acknowledged (acknowledge with SELECT kneeload.acknowledge_alert(alert_id, by) or `kneeload storage ack`).';

CREATE VIEW kneeload_api.fleet_status WITH (security_invoker = true) AS
WITH cfg AS (
    SELECT kneeload.config_value('unit_offline_after_s')::float8 AS offline_after_s,
           kneeload.config_value('clinic_day_minutes')::float8 AS day_minutes
)
SELECT u.unit_id,
       u.clinic_id,
       c.name AS clinic_name,
       coalesce(st.online AND st.last_seen >= now() - make_interval(secs => cfg.offline_after_s), false) AS online,
       coalesce(st.in_use, false) AS in_use,
       st.athlete_id,
       a.display_name AS athlete_display_name,
       st.bws_pct,
       CASE WHEN st.date = (now() AT TIME ZONE 'UTC')::date THEN st.minutes_used_today ELSE 0 END AS minutes_used_today,
       round((100 * CASE WHEN st.date = (now() AT TIME ZONE 'UTC')::date THEN st.minutes_used_today ELSE 0 END
              / nullif(cfg.day_minutes, 0))::numeric, 1) AS utilisation_pct,
       st.last_seen,
       st.time AS status_time,
       u.athlete_id AS assigned_athlete_id,
       u.max_bws_pct
  FROM kneeload.units u
  CROSS JOIN cfg
  LEFT JOIN kneeload.clinics c ON c.clinic_id = u.clinic_id
  LEFT JOIN LATERAL (SELECT s.* FROM kneeload.unit_status s WHERE s.unit_id = u.unit_id
                      ORDER BY s.time DESC LIMIT 1) st ON true
  LEFT JOIN kneeload.athletes a ON a.athlete_id = st.athlete_id;
COMMENT ON VIEW kneeload_api.fleet_status IS
'Each LEVER unit: online (status online and last seen within unit_offline_after_s), in use and by whom, current BWS, minutes used today (UTC day) and utilisation against clinic_day_minutes.';

CREATE VIEW kneeload_api.fleet_sessions WITH (security_invoker = true) AS
SELECT s.unit_id, u.clinic_id, s.session_id, s.athlete_id, a.display_name,
       s.start_time, s.end_time, (s.start_time AT TIME ZONE 'UTC')::date AS date,
       s.duration_s, s.distance_m, s.mean_speed_mps, s.mean_bws_pct,
       s.peak_pfj_stress_mpa, s.pfj_load_mpa_s, s.status
  FROM kneeload.sessions s
  LEFT JOIN kneeload.units u ON u.unit_id = s.unit_id
  LEFT JOIN kneeload.athletes a ON a.athlete_id = s.athlete_id
 WHERE s.unit_id IS NOT NULL;
COMMENT ON VIEW kneeload_api.fleet_sessions IS 'Sessions run on LEVER units, per unit and clinic, with mean BWS and estimated PFJ load.';

CREATE VIEW kneeload_api.fleet_bws_distribution WITH (security_invoker = true) AS
SELECT m.unit_id,
       u.clinic_id,
       m.utc_date AS date,
       (floor(coalesce(m.mean_bws_pct, 0) / 10) * 10)::int      AS bws_band_low_pct,
       (floor(coalesce(m.mean_bws_pct, 0) / 10) * 10 + 10)::int AS bws_band_high_pct,
       round((sum(m.duration_s) / 60)::numeric, 1)               AS minutes,
       count(DISTINCT m.athlete_id)                               AS athletes
  FROM kneeload.minute_load m
  LEFT JOIN kneeload.units u ON u.unit_id = m.unit_id
 WHERE m.unit_id IS NOT NULL
 GROUP BY m.unit_id, u.clinic_id, m.utc_date, 3, 4, 5;
COMMENT ON VIEW kneeload_api.fleet_bws_distribution IS
'Minutes run per unit, UTC date and 10-percentage-point BWS band (from per-minute load), with the number of athletes.';

CREATE VIEW kneeload_api.live_session WITH (security_invoker = true) AS
SELECT a.athlete_id, a.display_name, a.team_id,
       s.session_id, s.time, s.cadence_spm, s.speed_mps, s.bws_pct, s.unit_id,
       s.ground_contact_ms, s.grade_pct, s.peak_pfj_stress_mpa, s.pfj_impulse_mpa_s,
       now() - s.time AS age
  FROM kneeload.athletes a
  CROSS JOIN LATERAL (
        SELECT x.* FROM kneeload.sample_load x
         WHERE x.athlete_id = a.athlete_id
           AND x.time >= now() - make_interval(secs => kneeload.config_value('live_window_s')::float8)
         ORDER BY x.time DESC LIMIT 1) s;
COMMENT ON VIEW kneeload_api.live_session IS
'Athletes running now: the latest per-sample cadence, speed, BWS and estimated PFJ stress (samples newer than live_window_s).';

CREATE VIEW kneeload_api.live_session_samples WITH (security_invoker = true) AS
SELECT x.athlete_id, x.session_id, x.time, x.cadence_spm, x.speed_mps, x.bws_pct, x.unit_id,
       x.ground_contact_ms, x.ground_contact_estimated, x.grade_pct, x.peak_pfj_stress_mpa,
       x.pfj_impulse_mpa_s, x.late
  FROM kneeload.sample_load x
 WHERE x.time >= now() - make_interval(secs => kneeload.config_value('live_history_s')::float8);
COMMENT ON VIEW kneeload_api.live_session_samples IS
'Per-sample series of the last live_history_s seconds (cadence, speed, BWS, estimated PFJ stress) for the live session panel.';

CREATE VIEW kneeload_api.thresholds WITH (security_invoker = true) AS
SELECT key, value, unit, source, description FROM kneeload.config;
COMMENT ON VIEW kneeload_api.thresholds IS 'Configurable thresholds used by the views (ACWR bands, pain trend, fleet) with their sources.';
