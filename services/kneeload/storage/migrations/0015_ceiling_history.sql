-- 0015 today's session-spike ceiling per athlete and day (issue #14 item 3).
--
-- The rule is kneeload.core.spike (Frandsen et al. 2025): a session more than 10 % longer
-- (or with more than 10 % more estimated PFJ load) than the longest of the sessions started
-- in the 30 days before it is a spike. So the longest distance and the largest PFJ load that
-- would NOT be a spike on a day are 1.10 × the maxima of the sessions started in the 30 days
-- before that day's local midnight, and there is no verdict with fewer than 3 sessions. This
-- view restates that rule for planning (the worker's alerts use the core function itself);
-- tests/storage/test_ceiling_history.py checks the two agree. The thresholds are the
-- worker's defaults (KNEELOAD_ALERT_SPIKE_*); change both together.

INSERT INTO kneeload.config (key, value, unit, source, description) VALUES
 ('spike_window_days', '30', 'days', 'Frandsen et al. 2025, Br J Sports Med, doi:10.1136/bjsports-2024-109380',
  'Window of the session-spike ceiling: the sessions started this many days before'),
 ('spike_small_pct', '10', '%', 'Frandsen et al. 2025 (≤ 10 % is the reference group)',
  'A session more than this above the 30-day longest is a spike'),
 ('spike_min_sessions', '3', 'sessions', 'kneeload''s choice',
  'Sessions the window must hold before a ceiling or a spike verdict is given')
ON CONFLICT (key) DO NOTHING;

CREATE VIEW kneeload_api.ceiling_history AS
WITH cfg AS (
    SELECT kneeload.config_value('spike_window_days')::float8 AS window_days,
           kneeload.config_value('spike_small_pct')::float8 AS small_pct,
           kneeload.config_value('spike_min_sessions')::int AS min_sessions
), days AS (
    SELECT DISTINCT d.athlete_id, d.date FROM kneeload.daily_load d
)
SELECT d.athlete_id,
       a.team_id,
       d.date,
       CASE WHEN w.n >= cfg.min_sessions THEN w.max_distance_m * (1 + cfg.small_pct / 100) END
           AS ceiling_distance_m,
       CASE WHEN w.n >= cfg.min_sessions THEN w.max_pfj_load_mpa_s * (1 + cfg.small_pct / 100) END
           AS ceiling_pfj_load_mpa_s,
       CASE WHEN w.n >= cfg.min_sessions THEN 'ceiling' ELSE 'too_few_sessions' END AS verdict,
       w.n AS sessions_in_window,
       w.max_distance_m AS longest_distance_m,
       w.max_pfj_load_mpa_s AS largest_pfj_load_mpa_s
  FROM days d
  CROSS JOIN cfg
  JOIN kneeload.athletes a ON a.athlete_id = d.athlete_id
  CROSS JOIN LATERAL (
        SELECT count(*)::int AS n, max(s.distance_m) AS max_distance_m,
               max(s.pfj_load_mpa_s) AS max_pfj_load_mpa_s
          FROM kneeload.sessions s
         WHERE s.athlete_id = d.athlete_id
           AND s.start_time < (d.date::timestamp AT TIME ZONE coalesce(a.time_zone, 'UTC'))
           AND s.start_time >= (d.date::timestamp AT TIME ZONE coalesce(a.time_zone, 'UTC'))
                               - make_interval(days => cfg.window_days::int)) w;
COMMENT ON VIEW kneeload_api.ceiling_history IS
'Per athlete and local day: the longest distance and the largest estimated PFJ load a session could have that day without being a session spike (1.10 × the maxima of the sessions started in the 30 days before the day; Frandsen et al. 2025, kneeload.core.spike), or too_few_sessions below 3 sessions.';
