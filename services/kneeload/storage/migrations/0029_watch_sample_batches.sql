-- 0029 raw watch samples one stored row per batch on plain PostgreSQL (issue #20: stored bytes
-- per sample ≤ 150 on plain, indexes included). Nothing on TimescaleDB, whose compressed
-- row hypertable already stores a raw sample in ≤ 40 B (#19).
--
-- kneeload.watch_samples was one heap row per sample (a 24 B tuple header, the record id and
-- batch id as text, 11 values) plus a primary-key B-tree over (record_id, time): 243 B per
-- sample measured (loadtests/bench_storage.py, which compares the layouts). Now a batch of
-- watch.samples is ONE row of kneeload.watch_sample_batches holding a column array per value,
-- encoded like kneeload.sample_load_batches (0023): a value array is NULL when every value
-- is null, one element when every sample has the same value, else one per sample; times are
-- first_time + (i - 1) * step_us (evenly spaced samples) or first_time + offsets_us[i];
-- record ids are record_prefix || (record_from + (i - 1) * record_step) or
-- record_prefix || record_suffixes[i]. kneeload.watch_samples becomes a view with the
-- table's columns (plus device_id and batch_last_time), so every reader keeps working.
--
-- De-duplication. A sample's record id is "unique per device" (schemas/
-- watch_sample_batch.schema.json): the sink (storage/writer.py) stores a sample only if no
-- sample with the same record id and time is stored for its device, checked against the
-- device's stored batches that overlap the incoming one in time (index (device_id,
-- last_time); a live device's batches follow each other, so the check finds nothing), under
-- a per-device advisory lock held to commit (one of 1,024, by a hash of the device id). A
-- replay, a producer retry or the same samples re-sent in another batch are stored once, as
-- before. Rows inserted by hand into the view (INSTEAD OF trigger below) are checked the same
-- way, one sample per batch row.
--
-- Rows already stored are moved, one batch row per batch_id (exact values, ids and times as
-- lists); their device is their batch's (every sample has its batch row since 0022). Retention
-- carries over (180 days unless changed with `kneeload storage retention --set`).

-- @if timescale
SELECT 1;  -- the hypertable stays (compressed: 38.9 B per sample)
-- @else
CREATE TABLE kneeload.watch_sample_batches (
    last_time               timestamptz NOT NULL,
    device_id               text NOT NULL,
    athlete_id              text NOT NULL,
    batch_id                text NOT NULL,
    first_time              timestamptz NOT NULL,
    n                       integer NOT NULL CHECK (n > 0),
    step_us                 bigint,
    offsets_us              bigint[],
    record_prefix           text NOT NULL,
    record_from             bigint,
    record_step             bigint,
    record_suffixes         text[],
    cadence_spm             real[],
    speed_mps               real[],
    ground_contact_ms       real[],
    vertical_oscillation_mm real[],
    vertical_ratio_pct      real[],
    step_length_mm          real[],
    power_w                 real[],
    heart_rate_bpm          real[],
    grade_pct               real[],
    distance_m              double precision[],
    vertical_load_bw        real[],
    sources                 text[],
    CHECK ((step_us IS NULL) <> (offsets_us IS NULL)),
    CHECK ((record_from IS NULL) = (record_step IS NULL)),
    CHECK ((record_from IS NULL) <> (record_suffixes IS NULL)),
    CHECK (first_time <= last_time)
) /*@partition_by last_time*/;
CREATE INDEX watch_sample_batches_device_time ON kneeload.watch_sample_batches (device_id, last_time);
CREATE INDEX watch_sample_batches_athlete_time ON kneeload.watch_sample_batches (athlete_id, last_time);
-- @time_partitioned kneeload.watch_sample_batches last_time day retention=180 days
COMMENT ON TABLE kneeload.watch_sample_batches IS
'Raw watch samples (watch.samples), one row per batch with a column array per value (migration 0029; plain PostgreSQL only); read them through the view kneeload.watch_samples';

UPDATE kneeload.partitioned_tables n SET retention = o.retention
  FROM kneeload.partitioned_tables o
 WHERE n.table_name = 'kneeload.watch_sample_batches' AND o.table_name = 'kneeload.watch_samples';
SELECT kneeload.ensure_partitions('kneeload.watch_sample_batches', lo, hi + INTERVAL '1 day')
  FROM (SELECT min(time) AS lo, max(time) AS hi FROM kneeload.watch_samples) x
 WHERE lo IS NOT NULL;

INSERT INTO kneeload.watch_sample_batches (
       last_time, device_id, athlete_id, batch_id, first_time, n, offsets_us, record_prefix,
       record_suffixes, cadence_spm, speed_mps, ground_contact_ms, vertical_oscillation_mm,
       vertical_ratio_pct, step_length_mm, power_w, heart_rate_bpm, grade_pct, distance_m,
       vertical_load_bw, sources)
SELECT max(s.time), coalesce(min(b.device_id), ''), min(s.athlete_id), s.batch_id, min(s.time),
       count(*),
       array_agg((extract(epoch FROM s.time - s.first_t) * 1000000)::bigint ORDER BY s.time, s.record_id),
       '', array_agg(s.record_id ORDER BY s.time, s.record_id),
       array_agg(s.cadence_spm ORDER BY s.time, s.record_id),
       array_agg(s.speed_mps ORDER BY s.time, s.record_id),
       array_agg(s.ground_contact_ms ORDER BY s.time, s.record_id),
       array_agg(s.vertical_oscillation_mm ORDER BY s.time, s.record_id),
       array_agg(s.vertical_ratio_pct ORDER BY s.time, s.record_id),
       array_agg(s.step_length_mm ORDER BY s.time, s.record_id),
       array_agg(s.power_w ORDER BY s.time, s.record_id),
       array_agg(s.heart_rate_bpm ORDER BY s.time, s.record_id),
       array_agg(s.grade_pct ORDER BY s.time, s.record_id),
       array_agg(s.distance_m ORDER BY s.time, s.record_id),
       array_agg(s.vertical_load_bw ORDER BY s.time, s.record_id),
       array_agg(s.sources ORDER BY s.time, s.record_id)
  FROM (SELECT x.*, min(x.time) OVER (PARTITION BY x.batch_id, x.athlete_id) AS first_t
          FROM kneeload.watch_samples x) s
  LEFT JOIN kneeload.watch_batches b ON b.batch_id = s.batch_id
 GROUP BY s.batch_id, s.athlete_id;

DROP TABLE kneeload.watch_samples;
DELETE FROM kneeload.partitioned_tables WHERE table_name = 'kneeload.watch_samples';

-- One row per sample, the columns of the table it replaces (0002, 0011, 0022), then the
-- batch's device and last time (a time range narrows the batches by last_time first: a
-- sample's time is never after its batch's last time). Arrays are unnested side by side,
-- each read once per batch (kneeload.spread, 0025).
CREATE VIEW kneeload.watch_samples AS
SELECT b.first_time + coalesce(u.offset_us, (u.i - 1) * b.step_us) * INTERVAL '1 microsecond'
           AS time,
       b.record_prefix || coalesce(u.record_suffix, (b.record_from + (u.i - 1) * b.record_step)::text)
           AS record_id,
       b.athlete_id,
       b.batch_id,
       u.cadence_spm, u.speed_mps, u.ground_contact_ms, u.vertical_oscillation_mm,
       u.vertical_ratio_pct, u.step_length_mm, u.power_w, u.heart_rate_bpm, u.grade_pct,
       u.distance_m, u.vertical_load_bw, u.sources,
       b.device_id,
       b.last_time AS batch_last_time
  FROM kneeload.watch_sample_batches b
 CROSS JOIN LATERAL ROWS FROM (
        generate_series(1, b.n),
        unnest(b.offsets_us),
        unnest(b.record_suffixes),
        unnest(kneeload.spread(b.cadence_spm, b.n)),
        unnest(kneeload.spread(b.speed_mps, b.n)),
        unnest(kneeload.spread(b.ground_contact_ms, b.n)),
        unnest(kneeload.spread(b.vertical_oscillation_mm, b.n)),
        unnest(kneeload.spread(b.vertical_ratio_pct, b.n)),
        unnest(kneeload.spread(b.step_length_mm, b.n)),
        unnest(kneeload.spread(b.power_w, b.n)),
        unnest(kneeload.spread(b.heart_rate_bpm, b.n)),
        unnest(kneeload.spread(b.grade_pct, b.n)),
        unnest(kneeload.spread(b.distance_m, b.n)),
        unnest(kneeload.spread(b.vertical_load_bw, b.n)),
        unnest(kneeload.spread(b.sources, b.n))
     ) AS u(i, offset_us, record_suffix, cadence_spm, speed_mps, ground_contact_ms,
            vertical_oscillation_mm, vertical_ratio_pct, step_length_mm, power_w,
            heart_rate_bpm, grade_pct, distance_m, vertical_load_bw, sources)
 WHERE u.i IS NOT NULL;
COMMENT ON VIEW kneeload.watch_samples IS
'Raw watch samples, one row per sample of kneeload.watch_sample_batches (migration 0029); batch_last_time narrows a time range by index (a sample''s time is never after its batch''s last time)';
COMMENT ON COLUMN kneeload.watch_samples.batch_id IS
'The watch.samples batch the sample was first stored with: its device, session and team are in kneeload.watch_batches (primary key batch_id)';

-- A row inserted by hand (tests, repairs) is one one-sample batch, stored unless its device
-- (its batch's, '' without a batch row) already has a sample with its record id and time.
CREATE FUNCTION kneeload.watch_samples_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    dev text := coalesce((SELECT device_id FROM kneeload.watch_batches WHERE batch_id = NEW.batch_id), '');
BEGIN
    PERFORM pg_advisory_xact_lock(20029, hashtext(dev) & 1023);  -- the sink's (writer.py)
    IF EXISTS (SELECT 1 FROM kneeload.watch_samples s
                WHERE s.device_id = dev AND s.batch_last_time >= NEW.time
                  AND s.record_id = NEW.record_id AND s.time = NEW.time) THEN
        RETURN NULL;
    END IF;
    INSERT INTO kneeload.watch_sample_batches (
           last_time, device_id, athlete_id, batch_id, first_time, n, step_us, record_prefix,
           record_suffixes, cadence_spm, speed_mps, ground_contact_ms, vertical_oscillation_mm,
           vertical_ratio_pct, step_length_mm, power_w, heart_rate_bpm, grade_pct, distance_m,
           vertical_load_bw, sources)
    VALUES (NEW.time, dev, NEW.athlete_id, NEW.batch_id, NEW.time, 1, 0, '', ARRAY[NEW.record_id],
            nullif(ARRAY[NEW.cadence_spm], '{NULL}'), nullif(ARRAY[NEW.speed_mps], '{NULL}'),
            nullif(ARRAY[NEW.ground_contact_ms], '{NULL}'),
            nullif(ARRAY[NEW.vertical_oscillation_mm], '{NULL}'),
            nullif(ARRAY[NEW.vertical_ratio_pct], '{NULL}'),
            nullif(ARRAY[NEW.step_length_mm], '{NULL}'), nullif(ARRAY[NEW.power_w], '{NULL}'),
            nullif(ARRAY[NEW.heart_rate_bpm], '{NULL}'), nullif(ARRAY[NEW.grade_pct], '{NULL}'),
            nullif(ARRAY[NEW.distance_m], '{NULL}'), nullif(ARRAY[NEW.vertical_load_bw], '{NULL}'),
            nullif(ARRAY[NEW.sources], '{NULL}'));
    NEW.device_id := dev;
    NEW.batch_last_time := NEW.time;
    RETURN NEW;
END $$;
CREATE TRIGGER watch_samples_insert INSTEAD OF INSERT ON kneeload.watch_samples
    FOR EACH ROW EXECUTE FUNCTION kneeload.watch_samples_insert();
-- @end
