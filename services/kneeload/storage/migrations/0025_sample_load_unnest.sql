-- 0025 kneeload.sample_load reads each batch's arrays once (issue #20 item 2, after 0023).
--
-- 0023's view took the i-th sample's value as x[least(i, cardinality(x))]: every subscript of
-- an array stored out of line (a batch row over ~2 KB is TOASTed and compressed) fetched and
-- decompressed the whole array again, so a batch of n samples cost n² element reads. Measured
-- on 27,099 samples in 94 batches (~290 each): a subscript per sample 41 ms, unnest 4.6 ms,
-- the whole view 71 ms. Now the arrays are unnested side by side (ROWS FROM ... unnest),
-- each read once per batch; kneeload.spread() repeats a one-element (constant) array n
-- times, a NULL array (every value null) gives NULLs. Same columns, same values.

CREATE FUNCTION kneeload.spread(a anyarray, n integer) RETURNS anyarray
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(a) = 1 AND n > 1 THEN array_fill(a[1], ARRAY[n]) ELSE a END
$$;
COMMENT ON FUNCTION kneeload.spread(anyarray, integer) IS
    'A sample_load_batches value array as one element per sample: a one-element array (the same value for every sample) repeated n times; others as they are';

CREATE OR REPLACE VIEW kneeload.sample_load AS
SELECT b.first_time + coalesce(u.offset_us, (u.i - 1) * b.step_us) * INTERVAL '1 microsecond'
           AS time,
       b.record_prefix || coalesce(u.record_suffix, (b.record_from + (u.i - 1) * b.record_step)::text)
           AS record_id,
       b.athlete_id,
       b.session_id,
       u.speed_mps, u.cadence_spm, u.ground_contact_ms, u.ground_contact_estimated, u.grade_pct,
       u.bws_pct, u.unit_id, u.peak_pfj_stress_mpa, u.pfj_impulse_mpa_s, u.late, u.estimated,
       u.gait, u.no_estimate_reason, u.no_estimate_detail, u.cadence_used_spm,
       u.cadence_corrected, u.ground_contact_uncertainty_ms, u.ground_contact_source,
       u.step_length_m, u.step_length_estimated, u.vertical_load_bw, u.vertical_load_estimated,
       b.batch_id,
       b.last_time AS batch_last_time
  FROM kneeload.sample_load_batches b
 CROSS JOIN LATERAL ROWS FROM (
        generate_series(1, b.n::int),
        unnest(b.offsets_us),
        unnest(b.record_suffixes),
        unnest(kneeload.spread(b.speed_mps, b.n)),
        unnest(kneeload.spread(b.cadence_spm, b.n)),
        unnest(kneeload.spread(b.ground_contact_ms, b.n)),
        unnest(kneeload.spread(b.ground_contact_estimated, b.n)),
        unnest(kneeload.spread(b.grade_pct, b.n)),
        unnest(kneeload.spread(b.bws_pct, b.n)),
        unnest(kneeload.spread(b.unit_id, b.n)),
        unnest(kneeload.spread(b.peak_pfj_stress_mpa, b.n)),
        unnest(kneeload.spread(b.pfj_impulse_mpa_s, b.n)),
        unnest(kneeload.spread(b.late, b.n)),
        unnest(kneeload.spread(b.estimated, b.n)),
        unnest(kneeload.spread(b.gait, b.n)),
        unnest(kneeload.spread(b.no_estimate_reason, b.n)),
        unnest(kneeload.spread(b.no_estimate_detail, b.n)),
        unnest(kneeload.spread(b.cadence_used_spm, b.n)),
        unnest(kneeload.spread(b.cadence_corrected, b.n)),
        unnest(kneeload.spread(b.ground_contact_uncertainty_ms, b.n)),
        unnest(kneeload.spread(b.ground_contact_source, b.n)),
        unnest(kneeload.spread(b.step_length_m, b.n)),
        unnest(kneeload.spread(b.step_length_estimated, b.n)),
        unnest(kneeload.spread(b.vertical_load_bw, b.n)),
        unnest(kneeload.spread(b.vertical_load_estimated, b.n))
     ) AS u(i, offset_us, record_suffix, speed_mps, cadence_spm, ground_contact_ms,
            ground_contact_estimated, grade_pct, bws_pct, unit_id, peak_pfj_stress_mpa,
            pfj_impulse_mpa_s, late, estimated, gait, no_estimate_reason, no_estimate_detail,
            cadence_used_spm, cadence_corrected, ground_contact_uncertainty_ms,
            ground_contact_source, step_length_m, step_length_estimated, vertical_load_bw,
            vertical_load_estimated)
 WHERE u.i IS NOT NULL;
