-- 0028 team_overview reads the weekly pain trend the worker published (issue #20 item 3): its
-- pain_mean_7d / pain_mean_prev_7d / pain_trend columns are daily_load.pain_mean_7d_nrs /
-- pain_mean_prev_7d_nrs / pain_trend of the athlete's row of today (0027; kneeload.core.pain
-- is their one home), so the overview and the
-- pain_trend_worsening alert can no longer disagree. No trend arithmetic is left in SQL: the
-- lateral that averaged every report of the last 14 days relative to now() and the CASE on
-- config pain_trend_delta_nrs are gone, and so is that config key (the worker's
-- KNEELOAD_WORKER_PAIN_TREND_DELTA_NRS sets the delta). The worker publishes today's row at
-- the day's rollover while a report still counts, so a week without reports ages out. Same
-- columns, names and types as 0019; the rest of the view is 0019's, unchanged.

CREATE OR REPLACE VIEW kneeload_api.team_overview AS
WITH cfg AS (
    SELECT kneeload.config_value('overview_metric') AS metric,
           kneeload.config_value('overview_acwr_method') AS method,
           kneeload.config_value('spike_window_days')::float8 AS spike_window_days,
           kneeload.config_value('spike_small_pct')::float8 AS spike_small_pct,
           kneeload.config_value('spike_min_sessions')::int AS spike_min_sessions
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
       td.pain_mean_7d_nrs    AS pain_mean_7d,
       td.pain_mean_prev_7d_nrs AS pain_mean_prev_7d,
       td.pain_trend                  AS pain_trend,
       oa.n                           AS open_alerts,
       CASE WHEN cw.n >= cfg.spike_min_sessions
            THEN cw.max_distance_m * (1 + cfg.spike_small_pct / 100) END AS ceiling_distance_m,
       CASE WHEN cw.n >= cfg.spike_min_sessions
            THEN cw.max_pfj_load_mpa_s * (1 + cfg.spike_small_pct / 100) END AS ceiling_pfj_load_mpa_s,
       CASE WHEN cw.n >= cfg.spike_min_sessions THEN 'ceiling' ELSE 'too_few_sessions' END
                                      AS ceiling_verdict,
       cw.n                           AS ceiling_sessions_in_window
  FROM kneeload.athletes a
  CROSS JOIN cfg
  LEFT JOIN kneeload.teams t ON t.team_id = a.team_id
  CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE a.time_zone)::date AS local_date) d
  LEFT JOIN LATERAL (
        SELECT x.load, x.status, x.pain_mean_7d_nrs, x.pain_mean_prev_7d_nrs, x.pain_trend
          FROM kneeload.daily_load x
         WHERE x.athlete_id = a.athlete_id AND x.metric = cfg.metric AND x.date = d.local_date) td ON true
  LEFT JOIN LATERAL (
        SELECT x.date,
               CASE cfg.method WHEN 'rac' THEN x.rac_acwr WHEN 'rau' THEN x.rau_acwr ELSE x.ewma_acwr END AS acwr,
               x.ewma_acwr, x.rac_acwr, x.rau_acwr
          FROM kneeload.daily_load x
         WHERE x.athlete_id = a.athlete_id AND x.metric = cfg.metric AND x.date <= d.local_date
         ORDER BY x.date DESC LIMIT 1) l ON true
  LEFT JOIN kneeload.athlete_pain_latest pl ON pl.athlete_id = a.athlete_id
  LEFT JOIN LATERAL (
        SELECT f.pain_nrs, f.time, f.context
          FROM (SELECT u.nrs AS pain_nrs, u.t AS time, u.ctx AS context, u.i
                  FROM unnest(pl.recent_times, pl.recent_nrs, pl.recent_contexts)
                       WITH ORDINALITY AS u(t, nrs, ctx, i)
                 WHERE u.t <= now()
                UNION ALL
                SELECT pl.prior_nrs, pl.prior_time, pl.prior_context, 0
                 WHERE pl.prior_time IS NOT NULL
                 ORDER BY 2 DESC, 4 DESC LIMIT 1) f
         WHERE pl.window_start + interval '14 days' <= now()
        UNION ALL
        SELECT f.pain_nrs, f.time, f.context
          FROM (SELECT p.pain_nrs, p.time, p.context FROM kneeload.pain_reports p
                 WHERE p.athlete_id = a.athlete_id AND p.time <= now()
                 ORDER BY p.time DESC LIMIT 1) f
         WHERE pl.window_start + interval '14 days' > now()) lp ON true
  LEFT JOIN LATERAL (
        SELECT count(DISTINCT al.episode_id) AS n FROM kneeload.alerts al
         WHERE al.athlete_id = a.athlete_id AND al.acknowledged_at IS NULL
           AND al.episode_transition <> 'resolved'
           AND NOT EXISTS (SELECT 1 FROM kneeload.alerts r
                            WHERE r.episode_id = al.episode_id
                              AND r.episode_transition = 'resolved')) oa ON true
  CROSS JOIN LATERAL (
        SELECT count(*)::int AS n, max(s.distance_m) AS max_distance_m,
               max(s.pfj_load_mpa_s) AS max_pfj_load_mpa_s
          FROM kneeload.sessions s
         WHERE s.athlete_id = a.athlete_id
           AND s.start_time < (d.local_date::timestamp AT TIME ZONE a.time_zone)
           AND s.start_time >= (d.local_date::timestamp AT TIME ZONE a.time_zone)
                               - make_interval(days => cfg.spike_window_days::int)) cw;

DELETE FROM kneeload.config WHERE key = 'pain_trend_delta_nrs';
