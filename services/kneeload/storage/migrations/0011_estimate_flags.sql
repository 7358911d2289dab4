-- 0011 estimates a clinician can trust (issue #18): per sample, whether the PFJ model made an
-- estimate and if not why (walking, or an input outside its plausibility bounds), the cadence
-- fix when a strides/min value was doubled, which values were estimated rather than measured
-- (contact time with its uncertainty, step length, vertical load) and the contact's source;
-- per session, the samples without estimate counted by reason, and the one sensor source used
-- per measure. Every column is nullable without a default (rows written before stay valid):
-- ALTER TABLE ... ADD COLUMN is valid on plain PostgreSQL and on TimescaleDB hypertables
-- (watch_samples and sample_load are hypertables there; compressed chunks accept nullable
-- columns without a default). The views get kneeload_api_owner and readers' SELECT from
-- kneeload.secure_api_views(), which `kneeload migrate` runs after every run (0009).

ALTER TABLE kneeload.watch_samples
    ADD COLUMN sources text;
COMMENT ON COLUMN kneeload.watch_samples.sources IS
'The sensor source used for each measure of the sample''s session, e.g. ground_contact_ms=dev:Ground Time;power_w=native (file imports; null when the device did not say)';

ALTER TABLE kneeload.sample_load
    ADD COLUMN estimated                     boolean,
    ADD COLUMN gait                          text,
    ADD COLUMN no_estimate_reason            text,
    ADD COLUMN no_estimate_detail            text,
    ADD COLUMN cadence_used_spm              real,
    ADD COLUMN cadence_corrected             boolean,
    ADD COLUMN ground_contact_uncertainty_ms real,
    ADD COLUMN ground_contact_source         text,
    ADD COLUMN step_length_m                 real,
    ADD COLUMN step_length_estimated         boolean,
    ADD COLUMN vertical_load_bw              real,
    ADD COLUMN vertical_load_estimated       boolean;

ALTER TABLE kneeload.sessions
    ADD COLUMN samples_estimated         integer,
    ADD COLUMN samples_without_estimate  integer,
    ADD COLUMN samples_walking           integer,
    ADD COLUMN samples_cadence_corrected integer,
    ADD COLUMN samples_contact_estimated integer,
    ADD COLUMN no_estimate_reasons       jsonb,
    ADD COLUMN no_estimate_summary       text,
    ADD COLUMN sources                   jsonb;

CREATE OR REPLACE VIEW kneeload_api.athlete_timeline AS
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
       pr.pain_nrs AS session_pain_nrs,
       s.samples_estimated,
       s.samples_without_estimate,
       s.samples_walking,
       s.samples_cadence_corrected,
       s.samples_contact_estimated,
       s.no_estimate_summary,
       s.sources
  FROM kneeload.sessions s
  LEFT JOIN kneeload.athletes a ON a.athlete_id = s.athlete_id
  LEFT JOIN LATERAL (SELECT max(p.pain_nrs) AS pain_nrs FROM kneeload.pain_reports p
                      WHERE p.session_id = s.session_id) pr ON true;
COMMENT ON VIEW kneeload_api.athlete_timeline IS
'Sessions per athlete with estimated PFJ load (total, per km, peak stress), BWS (unit and mean support) and the highest pain reported for the session; status open|closed, latest revision. Trust: samples with and without a PFJ estimate (walking, or an input outside its plausibility bounds, summarised in words), cadences corrected from strides/min, samples whose contact time was estimated, and the sensor source used per measure.';

CREATE OR REPLACE VIEW kneeload_api.live_session_samples AS
SELECT x.athlete_id, x.session_id, x.time, x.cadence_spm, x.speed_mps, x.bws_pct, x.unit_id,
       x.ground_contact_ms, x.ground_contact_estimated, x.grade_pct, x.peak_pfj_stress_mpa,
       x.pfj_impulse_mpa_s, x.late,
       x.estimated, x.gait, x.no_estimate_reason, x.no_estimate_detail, x.cadence_used_spm,
       x.cadence_corrected, x.ground_contact_uncertainty_ms, x.ground_contact_source,
       x.step_length_m, x.step_length_estimated, x.vertical_load_bw, x.vertical_load_estimated
  FROM kneeload.sample_load x
 WHERE x.time >= now() - make_interval(secs => kneeload.config_value('live_history_s')::float8);
COMMENT ON VIEW kneeload_api.live_session_samples IS
'Per-sample series of the last live_history_s seconds (cadence, speed, BWS, estimated PFJ stress) for the live session panel; estimated = false with a reason when the sample got no PFJ estimate (walking, or an input outside its plausibility bounds); every value estimated rather than measured is flagged (contact time with its uncertainty, step length, vertical load).';

CREATE OR REPLACE VIEW kneeload_api.live_session AS
SELECT a.athlete_id, a.display_name, a.team_id,
       s.session_id, s.time, s.cadence_spm, s.speed_mps, s.bws_pct, s.unit_id,
       s.ground_contact_ms, s.grade_pct, s.peak_pfj_stress_mpa, s.pfj_impulse_mpa_s,
       now() - s.time AS age,
       s.ground_contact_estimated, s.estimated, s.no_estimate_reason, s.no_estimate_detail
  FROM kneeload.athletes a
  CROSS JOIN LATERAL (
        SELECT x.* FROM kneeload.sample_load x
         WHERE x.athlete_id = a.athlete_id
           AND x.time >= now() - make_interval(secs => kneeload.config_value('live_window_s')::float8)
         ORDER BY x.time DESC LIMIT 1) s;
COMMENT ON VIEW kneeload_api.live_session IS
'Athletes running now: the latest per-sample cadence, speed, BWS and estimated PFJ stress (samples newer than live_window_s); whether the contact time was estimated, and why a sample got no PFJ estimate (walking, or an input outside its plausibility bounds).';
