-- Seed for loadtests/bench_views.py: %(athletes)s athletes x %(days)s days (psycopg parameters;
-- %% is a literal percent sign). Statements are separated by ';' at line ends.
SELECT kneeload.ensure_partitions(table_name, now() - make_interval(days => %(days)s + 2), now() + interval '2 days')
  FROM kneeload.partitioned_tables;
INSERT INTO kneeload.teams (team_id, name) SELECT format('team-%%s', lpad(t::text, 2, '0')), format('Team %%s', t)
  FROM generate_series(0, 19) t ON CONFLICT DO NOTHING;
INSERT INTO kneeload.clinics (clinic_id, name) SELECT format('clinic-%%s', c), format('Clinic %%s', c)
  FROM generate_series(0, 4) c ON CONFLICT DO NOTHING;
INSERT INTO kneeload.athletes (athlete_id, team_id, body_mass_kg, time_zone, display_name, active, updated_at)
SELECT format('ath-%%s', lpad(a::text, 4, '0')), format('team-%%s', lpad((a %% 20)::text, 2, '0')), 55 + a %% 30,
       (ARRAY['UTC', 'Europe/Berlin', 'America/New_York'])[1 + a %% 3], format('Runner %%s', a), true, now()
  FROM generate_series(0, %(athletes)s - 1) a;
INSERT INTO kneeload.units (unit_id, clinic_id, athlete_id, assigned_since, max_bws_pct, timeout_s, updated_at)
SELECT format('lever-%%s', lpad(u::text, 2, '0')), format('clinic-%%s', u %% 5), format('ath-%%s', lpad((u * 20)::text, 4, '0')),
       now() - interval '1 hour', 80, 30, now()
  FROM generate_series(0, 49) u;
CREATE TEMP TABLE seed_sessions AS
SELECT format('s-%%s-%%s', a, d) AS session_id, format('ath-%%s', lpad(a::text, 4, '0')) AS athlete_id,
       format('team-%%s', lpad((a %% 20)::text, 2, '0')) AS team_id,
       CASE WHEN a %% 10 = 0 THEN format('lever-%%s', lpad(((a / 10) %% 50)::text, 2, '0')) END AS unit_id,
       date_trunc('day', now()) - make_interval(days => d) + interval '6 hours' + make_interval(secs => (a %% 600) * 60) AS start_time,
       d, a, 400 + random() * 800 AS load
  FROM generate_series(0, %(athletes)s - 1) a, generate_series(0, %(days)s - 1) d;
INSERT INTO kneeload.sessions (session_id, athlete_id, team_id, unit_id, start_time, end_time, duration_s, distance_m,
       mean_cadence_spm, mean_speed_mps, mean_bws_pct, peak_pfj_stress_mpa, pfj_load_mpa_s, pfj_load_per_km, samples,
       coverage_pct, status, revision)
SELECT session_id, athlete_id, team_id, unit_id, start_time, start_time + interval '30 minutes', 1800, 6000, 172, 3.3,
       CASE WHEN unit_id IS NOT NULL THEN 10 + (a %% 5) * 10 END, 9 + random(), load, load / 6, 1800, 99, 'closed', 1
  FROM seed_sessions;
INSERT INTO kneeload.minute_load (minute, id, athlete_id, team_id, session_id, unit_id, samples, duration_s, distance_m,
       mean_speed_mps, mean_cadence_spm, mean_bws_pct, peak_pfj_stress_mpa, pfj_load_mpa_s, revision)
SELECT start_time + make_interval(mins => m), format('%%s:%%s', session_id, m), athlete_id, team_id, session_id, unit_id,
       60, 60, 200, 3.3, 172, CASE WHEN unit_id IS NOT NULL THEN 10 + ((a + m) %% 5) * 10 ELSE 0 END, 9.5, load / 30, 1
  FROM seed_sessions, generate_series(0, 29) m;
INSERT INTO kneeload.daily_load (athlete_id, metric, date, id, team_id, load, status, revision, corrected,
       ewma_acute, ewma_chronic, ewma_acwr, rac_acute, rac_chronic, rac_acwr, rau_acute, rau_chronic, rau_acwr,
       week_over_week_pct, monotony, strain, atl, ctl, tsb)
SELECT s.athlete_id, m.metric, (s.start_time AT TIME ZONE 'UTC')::date, format('%%s:%%s:%%s', s.athlete_id, s.d, m.metric),
       s.team_id, s.load * m.k, CASE WHEN s.d = 0 THEN 'provisional' ELSE 'final' END, 1, false,
       s.load, s.load / 1.1, 0.6 + random(), s.load, s.load / 1.05, 0.6 + random(), s.load, s.load / 1.2, 0.6 + random(),
       random() * 20 - 10, 1 + random(), s.load * 7, s.load, s.load * 0.9, s.load * -0.1
  FROM seed_sessions s, (VALUES ('pfj_load_mpa_s', 1.0), ('distance_m', 10.0), ('duration_s', 3.0), ('srpe_au', 0.4)) m(metric, k);
INSERT INTO kneeload.daily_load_revisions SELECT * FROM kneeload.daily_load;
INSERT INTO kneeload.pain_reports (time, report_id, athlete_id, team_id, pain_nrs, context, session_id)
SELECT start_time + interval '45 minutes', format('p-%%s-a', session_id), athlete_id, team_id, (a + d) %% 7, 'after', session_id
  FROM seed_sessions WHERE (a + d) %% 2 = 0
UNION ALL
SELECT start_time + interval '1 day' - interval '3 hours', format('p-%%s-m', session_id), athlete_id, team_id, (a * d) %% 5,
       'next_morning', NULL
  FROM seed_sessions WHERE (a + d) %% 2 = 1 AND d > 0;
INSERT INTO kneeload.pain_responses (id, report_id, athlete_id, team_id, session_id, time, pain_nrs, context, baseline_nrs,
       classification, reason, preset, bws_unit_id, bws_action, bws_current_pct, bws_suggested_pct, bws_reason)
SELECT p.report_id || ':lever', p.report_id, p.athlete_id, p.team_id, p.session_id, p.time, p.pain_nrs, p.context, 2,
       CASE WHEN p.pain_nrs > 5 THEN 'stop' WHEN p.pain_nrs > 2 THEN 'caution' ELSE 'acceptable' END, 'seed', 'lever',
       s.unit_id, CASE WHEN s.unit_id IS NOT NULL AND p.pain_nrs > 2 THEN 'step_up' END, 20, 30, 'pain_above_limit'
  FROM kneeload.pain_reports p LEFT JOIN seed_sessions s ON s.session_id = p.session_id;
INSERT INTO kneeload.correlations (id, scope, athlete_id, team_id, metric, lag_days, method, n, r, df, ci_low, ci_high,
       p_value, withheld_reason, time)
SELECT format('%%s:%%s:%%s:%%s:%%s', a.athlete_id, m, l, meth, w), 'athlete', a.athlete_id, a.team_id, m, l, meth, 28,
       random() - 0.5, 26, -0.4, 0.4, random(), NULL, now() - make_interval(days => w * 7)
  FROM kneeload.athletes a, unnest(ARRAY['pfj_load_mpa_s', 'distance_m']) m, generate_series(0, 1) l,
       unnest(ARRAY['pearson', 'spearman']) meth, generate_series(0, %(days)s / 7) w;
INSERT INTO kneeload.alerts (alert_id, dedup_key, kind, severity, athlete_id, team_id, event_time, message, "values",
       acknowledged_by, acknowledged_at)
SELECT format('acwr_high:%%s:%%s', athlete_id, d), format('acwr_high:%%s:%%s', athlete_id, d), 'acwr_high', 'warning',
       athlete_id, team_id, start_time, 'ACWR high', '{"acwr": 1.6}',
       CASE WHEN d > 3 THEN 'coach' END, CASE WHEN d > 3 THEN start_time + interval '1 day' END
  FROM seed_sessions WHERE d %% 9 = 0;
INSERT INTO kneeload.unit_status (time, id, unit_id, clinic_id, online, in_use, athlete_id, bws_pct, date,
       minutes_used_today, last_seen)
SELECT t, format('%%s:%%s', u.unit_id, t), u.unit_id, u.clinic_id, true, extract(hour FROM t) BETWEEN 8 AND 17, u.athlete_id,
       20, (t AT TIME ZONE 'UTC')::date, extract(hour FROM t) * 6, t
  FROM kneeload.units u,
       generate_series(date_trunc('minute', now()) - make_interval(days => %(days)s), date_trunc('minute', now()), interval '5 minutes') t;
-- the last 10 minutes of 100 athletes' live samples (1 Hz): one row per minute-long batch (0023)
INSERT INTO kneeload.sample_load_batches (last_time, batch_id, athlete_id, session_id, first_time, n, step_us,
       record_prefix, record_from, record_step, speed_mps, cadence_spm, ground_contact_ms, ground_contact_estimated,
       grade_pct, bws_pct, peak_pfj_stress_mpa, pfj_impulse_mpa_s, late)
SELECT now() - make_interval(secs => m * 60), format('live-%%s-%%s', a, m), format('ath-%%s', lpad((a * 10)::text, 4, '0')),
       format('s-%%s-0', a * 10), now() - make_interval(secs => m * 60 + 59), 60, 1000000,
       format('live-%%s-', a), m * 60 + 59, -1, '{3.3}', '{172}', '{245}', '{false}', '{0}', '{20}',
       (SELECT array_agg((9 + random())::real) FROM generate_series(1, 60) WHERE m >= 0), '{5}', '{false}'
  FROM generate_series(0, 99) a, generate_series(0, 9) m;
