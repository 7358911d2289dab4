-- 0013 unit state history for utilisation and downtime (issue #15 item 2).
--
-- A unit's unit_status history is a step function of its state (the worker publishes on
-- every change and at a fixed interval): in use, online idle, offline. Minutes per state
-- within a clinic's opening hours are computed by kneeload.core.utilisation (time-zone
-- aware opening hours are not a SQL concern); this view hands readers the history under the
-- unit-scoped row-level security of unit_status (0009). It gets kneeload_api_owner and
-- readers' SELECT from kneeload.secure_api_views(), which `kneeload migrate` runs after
-- every run.

CREATE VIEW kneeload_api.fleet_unit_states AS
SELECT s.unit_id,
       coalesce(u.clinic_id, s.clinic_id) AS clinic_id,
       s.time,
       s.online,
       s.in_use,
       s.athlete_id,
       s.last_seen
  FROM kneeload.unit_status s
  LEFT JOIN kneeload.units u ON u.unit_id = s.unit_id;
COMMENT ON VIEW kneeload_api.fleet_unit_states IS
'Each LEVER unit''s status history (online, in use, athlete, last message): the step function kneeload fleet utilisation integrates over a clinic''s opening hours (kneeload.core.utilisation).';
