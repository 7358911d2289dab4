-- 0020 fleet_calibration_daily: the 14-day trend as a window, not a lateral join (issue #15).
--
-- 0012 computed each unit-day's trend with a LATERAL sub-select over every unit-day of the
-- unit, so the view cost grew with the square of the days: on 100 units x 90 days (the fleet
-- report's benchmark) one read took 10.8 s, and more with every week kept. The same
-- least-squares slope over the same days (p.date > d.date - trend_days AND p.date <= d.date)
-- is a window frame RANGE BETWEEN trend_days - 1 PRECEDING AND CURRENT ROW over the day
-- number: regr_slope is invariant to shifting x, so the slope against the day number equals
-- the slope against p.date - d.date. Same columns, same values (tests/storage/
-- test_fleet_calibration_view.py). The view keeps kneeload_api_owner and readers' SELECT via
-- kneeload.secure_api_views(), run by `kneeload migrate` after every run.

CREATE OR REPLACE VIEW kneeload_api.fleet_calibration_daily AS
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
), trend AS (
    SELECT d.*,
           regr_slope(d.support_bias_pp, d.date - DATE '2000-01-01') OVER w AS slope,
           count(*) OVER w AS days
      FROM day d
    WINDOW w AS (PARTITION BY d.unit_id ORDER BY d.date - DATE '2000-01-01'
                 RANGE BETWEEN (SELECT cfg.trend_days - 1 FROM cfg) PRECEDING AND CURRENT ROW)
)
SELECT d.unit_id,
       u.clinic_id,
       c.name AS clinic_name,
       d.date,
       d.calibration_samples AS samples,
       round(d.support_bias_pp::numeric, 2) AS bias_pp,
       round(d.support_mae_pp::numeric, 2) AS mae_pp,
       round(d.slope::numeric, 3) AS trend_pp_per_day,
       d.days AS trend_days_with_data,
       abs(d.support_bias_pp) > cfg.bias_pp AS out_of_tolerance,
       cfg.bias_pp AS tolerance_pp
  FROM trend d
  CROSS JOIN cfg
  LEFT JOIN kneeload.units u ON u.unit_id = d.unit_id
  LEFT JOIN kneeload.clinics c ON c.clinic_id = u.clinic_id;
COMMENT ON VIEW kneeload_api.fleet_calibration_daily IS
'Calibration of each LEVER unit per UTC day, only while the belt ran with an athlete on it: samples, bias (mean measured − commanded support, percentage points; positive = the unit holds more than commanded), mean absolute error, the least-squares trend of the daily bias over the last fleet_drift_trend_days days (pp per day, from the days with data) and whether |bias| exceeds fleet_drift_bias_pp. Figures from kneeload.core.fleet via unit_status.';
