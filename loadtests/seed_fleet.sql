-- Seed for loadtests/bench_fleet_report.py: %(units)s LEVER units x %(days)s days ending the day before
-- %(end)s (psycopg parameters; %% is a literal percent sign). Statements end with ';' at line ends.
-- What the report reads, at the rates the pipeline writes it: a unit_status every
-- %(status_min)s minutes per unit (the worker publishes every 30 s when nothing changes; a
-- coarser step keeps the seed to minutes on two cores), six 30-minute sessions a unit-day
-- (08-18 UTC, one athlete each, six athletes a unit), 30 per-minute load rows per session,
-- a next-morning pain report per athlete-day, a pain flare every tenth day for one athlete
-- in seven, one unit in ten offline 12:00-14:00 every seventh day, and unit 7's support
-- drifting from 0 to +6 pp over the period.
SELECT kneeload.ensure_partitions(table_name, %(end)s::timestamptz - make_interval(days => %(days)s + 2),
                                  %(end)s::timestamptz + interval '3 days')
  FROM kneeload.partitioned_tables;
INSERT INTO kneeload.teams (team_id, name) VALUES ('team-fleet', 'Fleet bench') ON CONFLICT DO NOTHING;
INSERT INTO kneeload.clinics (clinic_id, name) SELECT format('clinic-%%s', c), format('Clinic %%s', c)
  FROM generate_series(0, 3) c ON CONFLICT DO NOTHING;
INSERT INTO kneeload.units (unit_id, clinic_id, athlete_id, assigned_since, max_bws_pct, timeout_s, updated_at)
SELECT format('lever-%%s', lpad(u::text, 3, '0')), format('clinic-%%s', u %% 4), NULL, NULL, 80, 60, now()
  FROM generate_series(0, %(units)s - 1) u;
CREATE TEMP TABLE seed_sessions AS
SELECT format('fs-%%s-%%s-%%s', u, d, k) AS session_id, u, d, k,
       format('lever-%%s', lpad(u::text, 3, '0')) AS unit_id, format('clinic-%%s', u %% 4) AS clinic_id,
       format('fa-%%s-%%s', u, k) AS athlete_id,
       %(end)s::timestamptz - make_interval(days => %(days)s - d) + make_interval(hours => 8 + 2 * k) AS start_time,
       greatest(0, 30 - d * 0.4 - k)::real AS bws
  FROM generate_series(0, %(units)s - 1) u, generate_series(0, %(days)s - 1) d, generate_series(0, 5) k;
INSERT INTO kneeload.sessions (session_id, athlete_id, team_id, unit_id, start_time, end_time, duration_s, distance_m,
       mean_cadence_spm, mean_speed_mps, mean_bws_pct, peak_pfj_stress_mpa, pfj_load_mpa_s, pfj_load_per_km, samples,
       coverage_pct, status, revision)
SELECT session_id, athlete_id, 'team-fleet', unit_id, start_time, start_time + interval '30 minutes', 1800, 6000, 172,
       3.3, bws, 9, 900 + (u %% 13) * 20, (900 + (u %% 13) * 20) / 6.0, 1800, 99, 'closed', 1
  FROM seed_sessions;
INSERT INTO kneeload.minute_load (minute, id, athlete_id, team_id, session_id, unit_id, samples, duration_s, distance_m,
       mean_speed_mps, mean_cadence_spm, mean_bws_pct, peak_pfj_stress_mpa, pfj_load_mpa_s, revision)
SELECT start_time + make_interval(mins => m), format('%%s:%%s', session_id, m), athlete_id, 'team-fleet', session_id,
       unit_id, 60, 60, 200, 3.3, 172, bws, 9, 30, 1
  FROM seed_sessions, generate_series(0, 29) m;
INSERT INTO kneeload.pain_responses (id, report_id, athlete_id, team_id, session_id, time, pain_nrs, context,
       baseline_nrs, classification, reason, preset)
SELECT format('fp-%%s:lever', session_id), format('fp-%%s', session_id), athlete_id, 'team-fleet', NULL,
       start_time + interval '1 day' - interval '3 hours', greatest(0, 5 - d / 15 - (u %% 3)), 'next_morning', 1,
       'acceptable', 'seed', 'lever'
  FROM seed_sessions;
INSERT INTO kneeload.alerts (alert_id, dedup_key, kind, severity, athlete_id, team_id, event_time, message, "values")
SELECT format('pain_high:%%s', session_id), format('pain_high:%%s', session_id), 'pain_high', 'warning', athlete_id,
       'team-fleet', start_time + interval '40 minutes', 'Pain 5/10 (during) above 4/10.', '{"pain_nrs": 5}'
  FROM seed_sessions WHERE d %% 10 = 3 AND (u + k) %% 7 = 0;
INSERT INTO kneeload.unit_status (time, id, unit_id, clinic_id, online, in_use, athlete_id, bws_pct, date,
       minutes_used_today, last_seen, calibration_samples, support_bias_pp, support_mae_pp, drift_running_s)
SELECT t, format('%%s:%%s', unit_id, t), unit_id, clinic_id, NOT off, in_use AND NOT off,
       CASE WHEN in_use AND NOT off THEN format('fa-%%s-%%s', u, slot) END, 20, (t AT TIME ZONE 'UTC')::date, 0,
       CASE WHEN off THEN date_trunc('day', t) + interval '12 hours' ELSE t END,
       CASE WHEN in_use THEN 600 END,
       CASE WHEN in_use THEN CASE WHEN u = 7 THEN 6.0 * day_no / %(days)s ELSE ((u %% 5) - 2) * 0.3 END END,
       CASE WHEN in_use THEN CASE WHEN u = 7 THEN 6.0 * day_no / %(days)s + 0.5 ELSE 0.8 END END,
       0
  FROM (SELECT u, format('lever-%%s', lpad(u::text, 3, '0')) AS unit_id, format('clinic-%%s', u %% 4) AS clinic_id, t,
               extract(day FROM t - (%(end)s::timestamptz - make_interval(days => %(days)s)))::int AS day_no,
               (extract(hour FROM t AT TIME ZONE 'UTC')::int - 8) / 2 AS slot,
               extract(hour FROM t AT TIME ZONE 'UTC') BETWEEN 8 AND 19
                 AND extract(minute FROM t AT TIME ZONE 'UTC') < 30
                 AND extract(hour FROM t AT TIME ZONE 'UTC')::int %% 2 = 0 AS in_use,
               u %% 10 = 0 AND extract(doy FROM t AT TIME ZONE 'UTC')::int %% 7 = 0
                 AND extract(hour FROM t AT TIME ZONE 'UTC') BETWEEN 12 AND 13 AS off
          FROM generate_series(0, %(units)s - 1) u,
               generate_series(%(end)s::timestamptz - make_interval(days => %(days)s), %(end)s::timestamptz - interval '1 second',
                               make_interval(mins => %(status_min)s)) t) s;
ANALYZE;
