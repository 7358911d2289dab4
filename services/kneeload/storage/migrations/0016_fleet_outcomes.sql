-- 0016 outcomes by unit and clinic (issue #15 item 3).
--
-- The outcome figures (pain of the first vs the last two weeks, days to <= 5 % BWS, median
-- estimated PFJ load per km, pain flares) are computed by kneeload.core.outcomes from three
-- views readers already have: fleet_sessions (the sessions on LEVER units), pain_responses
-- (every pain report with its context) and alert_episodes (pain flares = pain alert episodes).
-- fleet_sessions gains the session's estimated PFJ load per km (appended: the view keeps its
-- columns; kneeload.secure_api_views(), run by `kneeload migrate` after every run, keeps it
-- owned by kneeload_api_owner with readers' SELECT). The thresholds are in kneeload.config
-- with their sources, for the report and the dashboards to show beside the figures.

CREATE OR REPLACE VIEW kneeload_api.fleet_sessions AS
SELECT s.unit_id, u.clinic_id, s.session_id, s.athlete_id, a.display_name,
       s.start_time, s.end_time, (s.start_time AT TIME ZONE 'UTC')::date AS date,
       s.duration_s, s.distance_m, s.mean_speed_mps, s.mean_bws_pct,
       s.peak_pfj_stress_mpa, s.pfj_load_mpa_s, s.status,
       s.pfj_load_per_km
  FROM kneeload.sessions s
  LEFT JOIN kneeload.units u ON u.unit_id = s.unit_id
  LEFT JOIN kneeload.athletes a ON a.athlete_id = s.athlete_id
 WHERE s.unit_id IS NOT NULL;
COMMENT ON VIEW kneeload_api.fleet_sessions IS
'Sessions run on LEVER units, per unit and clinic, with mean BWS, estimated PFJ load and estimated PFJ load per km (MPa·s/km).';

INSERT INTO kneeload.config (key, value, unit, source, description) VALUES
 ('fleet_outcome_min_n', '5', 'athletes',
  'kneeload''s own choice (below five athletes one athlete''s course decides a group''s figure); KNEELOAD_FLEET_OUTCOME_MIN_N',
  'Athletes an outcome figure of a unit or clinic needs before it is shown and compared; below it the figure is withheld (n shown) and never ranked'),
 ('fleet_bws_target_pct', '5', '%',
  'issue #15 ("days from first session to <= 5 % BWS"); kneeload''s choice of "off the support": one 5 % step from none; KNEELOAD_FLEET_BWS_TARGET_PCT',
  'Body-weight support at or below which an athlete counts as progressed in the fleet outcomes'),
 ('fleet_outcome_window_days', '14', 'days',
  'issue #15 ("mean pain of the first vs the last two weeks"); KNEELOAD_FLEET_OUTCOME_WINDOW_DAYS',
  'Length of the first and the last window of the pain trajectory (next-morning reports)')
ON CONFLICT (key) DO NOTHING;
