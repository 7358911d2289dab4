-- 0023 one stored row per load.samples batch instead of one per sample (issue #20 item 2).
--
-- Every watch sample was stored twice: raw in watch_samples and as the worker's estimate in
-- sample_load, a second full-width row (~305 B with its indexes). Now the estimate of a batch
-- is ONE row of kneeload.sample_load_batches holding a column array per value, and
-- kneeload.sample_load becomes a view with the same columns as the table it replaces (one row
-- per sample), so the live panel, the per-sample series and everything reading sample_load
-- keep working. Arrays are stored compactly (the writer, storage/writer.py):
-- * a value array is NULL when every sample's value is null, holds ONE element when every
--   sample has the same value (BWS, unit, gait, flags in a typical batch), else one element
--   per sample: the i-th sample's value is x[least(i, cardinality(x))];
-- * times: first_time + (i - 1) * step_us microseconds when the samples are evenly spaced
--   (1 Hz watches), else first_time + offsets_us[i];
-- * record ids: record_prefix || (record_from + (i - 1) * record_step) when the ids are one
--   prefix and an arithmetic run of integers, else record_prefix || record_suffixes[i].
-- Idempotent: the key is (batch_id, last_time); a re-published batch (a late BWS setpoint
-- re-joined its samples: same id, same samples) replaces the stored one when a value differs
-- (writer.py), a replay changes nothing. A batch split by the sink because the database
-- refused one of its samples is stored as parts with different last_time.
-- Partitioned by last_time, so "batches with a sample newer than T" (the live views) is one
-- index range on (athlete_id, last_time) in the newest partitions.
--
-- sample_load_minute (a continuous aggregate of the old table on TimescaleDB, read by no view
-- or dashboard) becomes a plain view over kneeload.sample_load on both flavours; minute_load,
-- the worker's per-minute output, is what the dashboards read per minute.
--
-- Rows already in sample_load are moved, grouped per athlete, session and minute (ids
-- 'legacy:...'; the worker's batch ids are not in the old table): nothing is lost. A batch the
-- worker re-publishes after the upgrade for samples moved this way (a late setpoint within
-- the lateness horizon) is stored beside them under its own id until retention drops them.

-- @if timescale
DROP MATERIALIZED VIEW kneeload.sample_load_minute;
-- @else
DROP VIEW kneeload.sample_load_minute;
-- @end
DROP VIEW kneeload_api.live_session;
DROP VIEW kneeload_api.live_session_samples;

CREATE TABLE kneeload.sample_load_batches (
    last_time                     timestamptz NOT NULL,
    batch_id                      text NOT NULL,
    athlete_id                    text NOT NULL,
    session_id                    text,
    first_time                    timestamptz NOT NULL,
    n                             smallint NOT NULL CHECK (n > 0),
    step_us                       bigint,
    offsets_us                    bigint[],
    record_prefix                 text NOT NULL,
    record_from                   bigint,
    record_step                   bigint,
    record_suffixes               text[],
    unit_id                       text[],
    speed_mps                     real[],
    cadence_spm                   real[],
    ground_contact_ms             real[],
    ground_contact_estimated      boolean[],
    grade_pct                     real[],
    bws_pct                       real[],
    peak_pfj_stress_mpa           real[],
    pfj_impulse_mpa_s             real[],
    late                          boolean[],
    estimated                     boolean[],
    gait                          text[],
    no_estimate_reason            text[],
    no_estimate_detail            text[],
    cadence_used_spm              real[],
    cadence_corrected             boolean[],
    ground_contact_uncertainty_ms real[],
    ground_contact_source         text[],
    step_length_m                 real[],
    step_length_estimated         boolean[],
    vertical_load_bw              real[],
    vertical_load_estimated       boolean[],
    CHECK ((step_us IS NULL) <> (offsets_us IS NULL)),
    CHECK ((record_from IS NULL) = (record_step IS NULL)),
    CHECK ((record_from IS NULL) <> (record_suffixes IS NULL)),
    PRIMARY KEY (batch_id, last_time)
) /*@partition_by last_time*/;
CREATE INDEX sample_load_batches_athlete_time ON kneeload.sample_load_batches (athlete_id, last_time);
-- @time_partitioned kneeload.sample_load_batches last_time day retention=30 days segment_by=athlete_id
COMMENT ON TABLE kneeload.sample_load_batches IS
'Estimated PFJ load per sample (load.samples), one row per batch with a column array per value (see migration 0023); read it through the view kneeload.sample_load';

-- What was stored before, moved (exact values; one legacy batch per athlete, session, minute).
INSERT INTO kneeload.sample_load_batches (
       last_time, batch_id, athlete_id, session_id, first_time, n, offsets_us, record_prefix,
       record_suffixes, unit_id, speed_mps, cadence_spm, ground_contact_ms,
       ground_contact_estimated, grade_pct, bws_pct, peak_pfj_stress_mpa, pfj_impulse_mpa_s,
       late, estimated, gait, no_estimate_reason, no_estimate_detail, cadence_used_spm,
       cadence_corrected, ground_contact_uncertainty_ms, ground_contact_source, step_length_m,
       step_length_estimated, vertical_load_bw, vertical_load_estimated)
SELECT max(time), 'legacy:' || athlete_id || ':' || coalesce(session_id, '') || ':'
           || to_char(date_trunc('minute', time) AT TIME ZONE 'UTC', 'YYYYMMDDHH24MI'),
       athlete_id, session_id, min(time), count(*),
       array_agg((extract(epoch FROM time - first_t) * 1000000)::bigint ORDER BY time, record_id),
       '', array_agg(record_id ORDER BY time, record_id),
       array_agg(unit_id ORDER BY time, record_id), array_agg(speed_mps ORDER BY time, record_id),
       array_agg(cadence_spm ORDER BY time, record_id),
       array_agg(ground_contact_ms ORDER BY time, record_id),
       array_agg(ground_contact_estimated ORDER BY time, record_id),
       array_agg(grade_pct ORDER BY time, record_id), array_agg(bws_pct ORDER BY time, record_id),
       array_agg(peak_pfj_stress_mpa ORDER BY time, record_id),
       array_agg(pfj_impulse_mpa_s ORDER BY time, record_id),
       array_agg(late ORDER BY time, record_id), array_agg(estimated ORDER BY time, record_id),
       array_agg(gait ORDER BY time, record_id),
       array_agg(no_estimate_reason ORDER BY time, record_id),
       array_agg(no_estimate_detail ORDER BY time, record_id),
       array_agg(cadence_used_spm ORDER BY time, record_id),
       array_agg(cadence_corrected ORDER BY time, record_id),
       array_agg(ground_contact_uncertainty_ms ORDER BY time, record_id),
       array_agg(ground_contact_source ORDER BY time, record_id),
       array_agg(step_length_m ORDER BY time, record_id),
       array_agg(step_length_estimated ORDER BY time, record_id),
       array_agg(vertical_load_bw ORDER BY time, record_id),
       array_agg(vertical_load_estimated ORDER BY time, record_id)
  FROM (SELECT x.*, min(x.time) OVER (PARTITION BY x.athlete_id, x.session_id,
                                      date_trunc('minute', x.time)) AS first_t
          FROM kneeload.sample_load x) s
 GROUP BY athlete_id, session_id, date_trunc('minute', time);

DROP TABLE kneeload.sample_load;
DELETE FROM kneeload.partitioned_tables WHERE table_name = 'kneeload.sample_load';

-- One row per sample, today's sample_load columns (plus the batch's id and last time, which
-- let a query on recent samples narrow the batches by index first). Owned by
-- kneeload_api_owner (below), like the kneeload_api views that read it: the table is read with
-- its rights, under row-level security evaluated for the calling role (0009). (A
-- security_invoker view would check the READER's rights on the table, even when reached
-- through a kneeload_api view: readers have none.)
CREATE VIEW kneeload.sample_load AS
SELECT b.first_time + coalesce(b.offsets_us[i], (i - 1) * b.step_us) * INTERVAL '1 microsecond'
           AS time,
       b.record_prefix || coalesce(b.record_suffixes[i], (b.record_from + (i - 1) * b.record_step)::text)
           AS record_id,
       b.athlete_id,
       b.session_id,
       b.speed_mps[least(i, cardinality(b.speed_mps))]                     AS speed_mps,
       b.cadence_spm[least(i, cardinality(b.cadence_spm))]                 AS cadence_spm,
       b.ground_contact_ms[least(i, cardinality(b.ground_contact_ms))]     AS ground_contact_ms,
       b.ground_contact_estimated[least(i, cardinality(b.ground_contact_estimated))]
           AS ground_contact_estimated,
       b.grade_pct[least(i, cardinality(b.grade_pct))]                     AS grade_pct,
       b.bws_pct[least(i, cardinality(b.bws_pct))]                         AS bws_pct,
       b.unit_id[least(i, cardinality(b.unit_id))]                         AS unit_id,
       b.peak_pfj_stress_mpa[least(i, cardinality(b.peak_pfj_stress_mpa))] AS peak_pfj_stress_mpa,
       b.pfj_impulse_mpa_s[least(i, cardinality(b.pfj_impulse_mpa_s))]     AS pfj_impulse_mpa_s,
       b.late[least(i, cardinality(b.late))]                               AS late,
       b.estimated[least(i, cardinality(b.estimated))]                     AS estimated,
       b.gait[least(i, cardinality(b.gait))]                               AS gait,
       b.no_estimate_reason[least(i, cardinality(b.no_estimate_reason))]   AS no_estimate_reason,
       b.no_estimate_detail[least(i, cardinality(b.no_estimate_detail))]   AS no_estimate_detail,
       b.cadence_used_spm[least(i, cardinality(b.cadence_used_spm))]       AS cadence_used_spm,
       b.cadence_corrected[least(i, cardinality(b.cadence_corrected))]     AS cadence_corrected,
       b.ground_contact_uncertainty_ms[least(i, cardinality(b.ground_contact_uncertainty_ms))]
           AS ground_contact_uncertainty_ms,
       b.ground_contact_source[least(i, cardinality(b.ground_contact_source))]
           AS ground_contact_source,
       b.step_length_m[least(i, cardinality(b.step_length_m))]             AS step_length_m,
       b.step_length_estimated[least(i, cardinality(b.step_length_estimated))]
           AS step_length_estimated,
       b.vertical_load_bw[least(i, cardinality(b.vertical_load_bw))]       AS vertical_load_bw,
       b.vertical_load_estimated[least(i, cardinality(b.vertical_load_estimated))]
           AS vertical_load_estimated,
       b.batch_id,
       b.last_time AS batch_last_time
  FROM kneeload.sample_load_batches b
 CROSS JOIN LATERAL generate_series(1, b.n::int) AS i;
COMMENT ON VIEW kneeload.sample_load IS
'Estimated PFJ load per sample (load.samples): one row per sample of kneeload.sample_load_batches, with the columns of the table it replaced (0003, 0011); batch_last_time narrows a time range by index (a sample''s time is never after its batch''s last time)';

CREATE VIEW kneeload.sample_load_minute WITH (security_invoker = true) AS
SELECT date_trunc('minute', time) AS minute,
       athlete_id,
       count(*)                 AS samples,
       avg(cadence_spm)         AS mean_cadence_spm,
       avg(speed_mps)           AS mean_speed_mps,
       avg(bws_pct)             AS mean_bws_pct,
       max(peak_pfj_stress_mpa) AS peak_pfj_stress_mpa,
       sum(pfj_impulse_mpa_s)   AS pfj_impulse_mpa_s
  FROM kneeload.sample_load
 GROUP BY 1, 2;
COMMENT ON VIEW kneeload.sample_load_minute IS
'Per-minute rollup of sample_load (a plain view since 0023; the dashboards read the worker''s minute_load)';

ALTER TABLE kneeload.sample_load_batches ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.sample_load_batches FOR SELECT
    USING (kneeload.sees_all_rows()
           OR athlete_id = ANY ((SELECT array_agg(athlete_id) FROM kneeload.athletes)::text[])
           OR unit_id && (SELECT array_agg(unit_id) FROM kneeload.units)::text[]);
GRANT SELECT ON kneeload.sample_load_batches TO kneeload_api_owner;
-- A new owner needs CREATE on the schema while ownership moves (0009 made the migrating role
-- a member of kneeload_api_owner); the migrating role keeps reading the view (it sees every
-- row: kneeload.sees_all_rows()). Readers get nothing in schema kneeload.
GRANT CREATE ON SCHEMA kneeload TO kneeload_api_owner;
ALTER VIEW kneeload.sample_load OWNER TO kneeload_api_owner;
REVOKE CREATE ON SCHEMA kneeload FROM kneeload_api_owner;
DO $$ BEGIN
    EXECUTE format('GRANT SELECT ON kneeload.sample_load TO %I', current_user);
END $$;

-- The live views: batches ending inside the window by index, then their samples inside it; the
-- window's start is a scalar sub-select, computed once per query (config_value() per sample
-- made the team's live table 85 ms for 100 athletes, 60 samples each in the window). The
-- latest sample is in the batch with the latest last_time: ordered by it first, the index on
-- (athlete_id, last_time) gives that batch and only its samples are unnested.
CREATE VIEW kneeload_api.live_session_samples AS
SELECT x.athlete_id, x.session_id, x.time, x.cadence_spm, x.speed_mps, x.bws_pct, x.unit_id,
       x.ground_contact_ms, x.ground_contact_estimated, x.grade_pct, x.peak_pfj_stress_mpa,
       x.pfj_impulse_mpa_s, x.late,
       x.estimated, x.gait, x.no_estimate_reason, x.no_estimate_detail, x.cadence_used_spm,
       x.cadence_corrected, x.ground_contact_uncertainty_ms, x.ground_contact_source,
       x.step_length_m, x.step_length_estimated, x.vertical_load_bw, x.vertical_load_estimated
  FROM kneeload.sample_load x
 WHERE x.batch_last_time >= (SELECT now() - make_interval(secs => kneeload.config_value('live_history_s')::float8))
   AND x.time >= (SELECT now() - make_interval(secs => kneeload.config_value('live_history_s')::float8));
COMMENT ON VIEW kneeload_api.live_session_samples IS
'Per-sample series of the last live_history_s seconds (cadence, speed, BWS, estimated PFJ stress) for the live session panel; estimated = false with a reason when the sample got no PFJ estimate (walking, or an input outside its plausibility bounds); every value estimated rather than measured is flagged (contact time with its uncertainty, step length, vertical load).';

CREATE VIEW kneeload_api.live_session AS
SELECT a.athlete_id, a.display_name, a.team_id,
       s.session_id, s.time, s.cadence_spm, s.speed_mps, s.bws_pct, s.unit_id,
       s.ground_contact_ms, s.grade_pct, s.peak_pfj_stress_mpa, s.pfj_impulse_mpa_s,
       now() - s.time AS age,
       s.ground_contact_estimated, s.estimated, s.no_estimate_reason, s.no_estimate_detail
  FROM kneeload.athletes a
  CROSS JOIN LATERAL (
        SELECT x.* FROM kneeload.sample_load x
         WHERE x.athlete_id = a.athlete_id
           AND x.batch_last_time >= (SELECT now() - make_interval(secs => kneeload.config_value('live_window_s')::float8))
           AND x.time >= (SELECT now() - make_interval(secs => kneeload.config_value('live_window_s')::float8))
         ORDER BY x.batch_last_time DESC, x.time DESC LIMIT 1) s;
COMMENT ON VIEW kneeload_api.live_session IS
'Athletes running now: the latest per-sample cadence, speed, BWS and estimated PFJ stress (samples newer than live_window_s); whether the contact time was estimated, and why a sample got no PFJ estimate (walking, or an input outside its plausibility bounds).';
