-- 0017 TimescaleDB columnstore order (issue #19 item 4). Nothing on plain PostgreSQL.
--
-- The compressed raw tables are segmented by the subject every query filters on (athlete_id
-- for watch samples, unit_id for LEVER telemetry and setpoints) and ordered by time, newest
-- first (reads are "this athlete/unit over a time range"). Their primary key is
-- (record_id, time): TimescaleDB warned at 0002 that record_id was neither a segment-by nor an
-- order-by column, so checking a late replay's key against compressed data had nothing to
-- narrow it by but time. record_id is appended to the order (a tie-break: one athlete or unit
-- has one record per instant), so every key column has per-batch min/max metadata. The
-- settings apply to chunks compressed from now on.
-- @if timescale
ALTER TABLE kneeload.watch_samples SET (timescaledb.compress_orderby = 'time DESC, record_id');
ALTER TABLE kneeload.treadmill_telemetry SET (timescaledb.compress_orderby = 'time DESC, record_id');
ALTER TABLE kneeload.bws_setpoints SET (timescaledb.compress_orderby = 'time DESC, record_id');
-- @else
SELECT 1;  -- plain PostgreSQL partitions: no columnstore
-- @end
