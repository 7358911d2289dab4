-- 0012 calibration drift per LEVER unit and day (issue #15).
--
-- The figures are computed by kneeload.core.fleet in the worker's unit agent (the only place
-- that sees every telemetry record of a unit) and published with each unit_status: that day's
-- running samples with both the commanded and the measured support, their mean error (bias,
-- measured − commanded) and mean absolute error, and the running time of the unit's current
-- drift episode. The views do not read kneeload.treadmill_telemetry: readers reach tables only
-- through row-level security, and TimescaleDB refuses row security on a compressed hypertable
-- (the raw telemetry is one), while unit_status already has its unit-scoped policy (0009).
-- ADD COLUMN without a default is valid on plain PostgreSQL and on TimescaleDB hypertables.
-- The view gets kneeload_api_owner and readers' SELECT from kneeload.secure_api_views(), which
-- `kneeload migrate` runs after every run (0009).

ALTER TABLE kneeload.unit_status
    ADD COLUMN calibration_samples integer,
    ADD COLUMN support_bias_pp     real,
    ADD COLUMN support_mae_pp      real,
    ADD COLUMN drift_running_s     real;
COMMENT ON COLUMN kneeload.unit_status.calibration_samples IS
'Samples of that day with the belt running, an athlete on and both commanded and measured support';
COMMENT ON COLUMN kneeload.unit_status.support_bias_pp IS
'Mean measured − commanded support of those samples (percentage points; kneeload.core.fleet.calibration_summary)';
COMMENT ON COLUMN kneeload.unit_status.support_mae_pp IS
'Mean |measured − commanded| support of those samples (percentage points)';
COMMENT ON COLUMN kneeload.unit_status.drift_running_s IS
'Running seconds of the current drift episode (|error| above fleet_drift_bias_pp since the last in-tolerance sample)';

INSERT INTO kneeload.config (key, value, unit, source, description) VALUES
 ('fleet_running_min_speed_mps', '0.5', 'm/s',
  'kneeload''s choice (1.8 km/h, below any walking pace); the worker uses KNEELOAD_FLEET_RUNNING_MIN_SPEED_MPS',
  'Belt speed from which a LEVER unit counts as running: only running samples with an athlete on the unit enter calibration'),
 ('fleet_drift_bias_pp', '3.0', 'pp',
  'kneeload''s choice (no published tolerance; displayed support was off by -12/+11 pp at 60 % in de Heer et al. J Strength Cond Res 2021;35(10):2910-2914); the worker uses KNEELOAD_FLEET_DRIFT_BIAS_PP',
  '|daily bias| above this marks a unit-day out of tolerance in fleet_calibration_daily; the worker alerts unit_calibration_drift when |error| stays above it for fleet_drift_running_s'),
 ('fleet_drift_running_s', '1800', 's',
  'kneeload''s choice (about one session); the worker uses KNEELOAD_FLEET_DRIFT_RUNNING_S',
  'Running time the support error must stay above fleet_drift_bias_pp before unit_calibration_drift'),
 ('fleet_drift_trend_days', '14', 'days', 'kneeload''s choice',
  'Days in the least-squares trend of the daily bias (trend_pp_per_day in fleet_calibration_daily)')
ON CONFLICT (key) DO NOTHING;

CREATE VIEW kneeload_api.fleet_calibration_daily AS
WITH cfg AS (
    SELECT kneeload.config_value('fleet_drift_bias_pp')::float8 AS bias_pp,
           kneeload.config_value('fleet_drift_trend_days')::int AS trend_days
), day AS (
    -- a unit-day's final figures: its status with the most samples (late statuses never
    -- replace them with a partial sum)
    SELECT DISTINCT ON (s.unit_id, s.date)
           s.unit_id, s.date, s.calibration_samples, s.support_bias_pp, s.support_mae_pp,
           s.drift_running_s
      FROM kneeload.unit_status s
     WHERE s.calibration_samples > 0
     ORDER BY s.unit_id, s.date, s.calibration_samples DESC, s.time DESC
)
SELECT d.unit_id,
       u.clinic_id,
       c.name AS clinic_name,
       d.date,
       d.calibration_samples AS samples,
       round(d.support_bias_pp::numeric, 2) AS bias_pp,
       round(d.support_mae_pp::numeric, 2) AS mae_pp,
       round(tr.slope::numeric, 3) AS trend_pp_per_day,
       tr.days AS trend_days_with_data,
       abs(d.support_bias_pp) > cfg.bias_pp AS out_of_tolerance,
       cfg.bias_pp AS tolerance_pp
  FROM day d
  CROSS JOIN cfg
  LEFT JOIN kneeload.units u ON u.unit_id = d.unit_id
  LEFT JOIN kneeload.clinics c ON c.clinic_id = u.clinic_id
  CROSS JOIN LATERAL (
        SELECT regr_slope(p.support_bias_pp, p.date - d.date) AS slope, count(*) AS days
          FROM day p
         WHERE p.unit_id = d.unit_id
           AND p.date > d.date - cfg.trend_days AND p.date <= d.date) tr;
COMMENT ON VIEW kneeload_api.fleet_calibration_daily IS
'Calibration of each LEVER unit per UTC day, only while the belt ran with an athlete on it: samples, bias (mean measured − commanded support, percentage points; positive = the unit holds more than commanded), mean absolute error, the least-squares trend of the daily bias over the last fleet_drift_trend_days days (pp per day, from the days with data) and whether |bias| exceeds fleet_drift_bias_pp. Figures from kneeload.core.fleet via unit_status.';
