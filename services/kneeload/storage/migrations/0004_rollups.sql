-- 0004 rollups: continuous aggregates on TimescaleDB, plain views of the same name and columns
-- on PostgreSQL (so anything built on them works on both paths).

-- @if timescale
CREATE MATERIALIZED VIEW kneeload.sample_load_minute
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS minute,
       athlete_id,
       count(*)                 AS samples,
       avg(cadence_spm)         AS mean_cadence_spm,
       avg(speed_mps)           AS mean_speed_mps,
       avg(bws_pct)             AS mean_bws_pct,
       max(peak_pfj_stress_mpa) AS peak_pfj_stress_mpa,
       sum(pfj_impulse_mpa_s)   AS pfj_impulse_mpa_s
  FROM kneeload.sample_load
 GROUP BY 1, 2
WITH NO DATA;
SELECT add_continuous_aggregate_policy('kneeload.sample_load_minute',
       start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 minute',
       schedule_interval => INTERVAL '1 minute', if_not_exists => true);

CREATE MATERIALIZED VIEW kneeload.telemetry_unit_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', time) AS day,
       unit_id,
       count(*) FILTER (WHERE kind = 'telemetry')                        AS telemetry_records,
       count(*) FILTER (WHERE kind = 'telemetry' AND belt_speed_mps > 0) AS moving_records,
       avg(bws_pct) FILTER (WHERE belt_speed_mps > 0)                    AS mean_bws_pct,
       max(time)                                                         AS last_seen
  FROM kneeload.treadmill_telemetry
 GROUP BY 1, 2
WITH NO DATA;
SELECT add_continuous_aggregate_policy('kneeload.telemetry_unit_daily',
       start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 hour',
       schedule_interval => INTERVAL '15 minutes', if_not_exists => true);
-- a continuous aggregate's user view is a plain view (relkind 'v'): COMMENT ON MATERIALIZED
-- VIEW refuses it ('is not a materialized view')
COMMENT ON VIEW kneeload.sample_load_minute IS 'Per-minute rollup of sample_load (continuous aggregate on TimescaleDB)';
COMMENT ON VIEW kneeload.telemetry_unit_daily IS 'Per-unit daily rollup of treadmill telemetry (continuous aggregate on TimescaleDB)';
-- @else
CREATE VIEW kneeload.sample_load_minute AS
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

CREATE VIEW kneeload.telemetry_unit_daily AS
SELECT date_trunc('day', time, 'UTC') AS day,
       unit_id,
       count(*) FILTER (WHERE kind = 'telemetry')                        AS telemetry_records,
       count(*) FILTER (WHERE kind = 'telemetry' AND belt_speed_mps > 0) AS moving_records,
       avg(bws_pct) FILTER (WHERE belt_speed_mps > 0)                    AS mean_bws_pct,
       max(time)                                                         AS last_seen
  FROM kneeload.treadmill_telemetry
 GROUP BY 1, 2;
COMMENT ON VIEW kneeload.sample_load_minute IS 'Per-minute rollup of sample_load (continuous aggregate on TimescaleDB)';
COMMENT ON VIEW kneeload.telemetry_unit_daily IS 'Per-unit daily rollup of treadmill telemetry (continuous aggregate on TimescaleDB)';
-- @end
