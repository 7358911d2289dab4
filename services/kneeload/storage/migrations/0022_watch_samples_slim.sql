-- 0022 watch_samples carries no per-batch values (issue #19: ≤ 40 B per raw sample compressed;
-- issue #20: plain PostgreSQL bytes per sample).
--
-- device_id and session_id were repeated on every sample, but they are the batch's: every
-- sample of a watch.samples batch has the batch envelope's device and session, and the sink
-- writes the batch's row into kneeload.watch_batches (batch_id, athlete_id, device_id,
-- session_id, team_id, ...) in the same transaction as its samples. Each sample keeps its
-- batch_id, so "which device/session recorded this sample" is one primary-key join away:
--     JOIN kneeload.watch_batches b USING (batch_id)
-- (the worker's rebuild-state reads samples by athlete and batch_id, and the batches'
-- session from watch_batches, as before). Identity and de-duplication are unchanged: the
-- primary key stays (record_id, time) and a replayed sample is still DO NOTHING, keeping the
-- batch_id (so the device and session) it was first stored with.
--
-- Nothing is dropped that is not held elsewhere: a batch row missing for stored samples
-- (written by hand, not by the sink) is created from them first, and the migration stops if
-- any sample disagrees with its batch's device or session. On plain PostgreSQL DROP COLUMN
-- is a catalog change: rows already stored keep their bytes until rewritten; new rows are
-- smaller.

INSERT INTO kneeload.watch_batches (batch_id, athlete_id, device_id, team_id, session_id, source,
                                    sub_sport, received_at, samples)
SELECT s.batch_id, min(s.athlete_id), min(s.device_id), NULL, min(s.session_id),
       'watch_samples (migration 0022)', NULL, max(s.time), count(*)
  FROM kneeload.watch_samples s
 WHERE NOT EXISTS (SELECT 1 FROM kneeload.watch_batches b WHERE b.batch_id = s.batch_id)
 GROUP BY s.batch_id
ON CONFLICT (batch_id) DO NOTHING;

DO $$
DECLARE
    bad bigint;
    example text;
BEGIN
    SELECT count(*), min(s.record_id) INTO bad, example
      FROM kneeload.watch_samples s
      JOIN kneeload.watch_batches b ON b.batch_id = s.batch_id
     WHERE b.device_id IS DISTINCT FROM s.device_id
        OR b.session_id IS DISTINCT FROM s.session_id;
    IF bad > 0 THEN
        RAISE EXCEPTION '% watch samples (e.g. record_id %) have a device_id or session_id other than their batch''s in kneeload.watch_batches', bad, example
            USING HINT = 'migration 0022 moves these columns to the batch: correct the rows first (nothing is dropped that is not held elsewhere)';
    END IF;
END $$;

ALTER TABLE kneeload.watch_samples DROP COLUMN device_id, DROP COLUMN session_id;
COMMENT ON COLUMN kneeload.watch_samples.batch_id IS
'The watch.samples batch the sample was first stored with: its device, session and team are in kneeload.watch_batches (primary key batch_id)';

-- @if timescale
-- No sparse bloom filter on the primary key in compressed chunks. TimescaleDB 2.28 adds one
-- by default (a composite bloom over (time, record_id), from the primary key's index):
-- 1.1 B per sample of the 40.3 measured. Its use is checking a late replay's keys against
-- compressed data; the order-by metadata (min/max of time and of record_id per batch of
-- 1,000 rows; record ids are "<device>:<epoch ms>") narrow that check as well: a replay of
-- 300 stored samples into compressed chunks took 17-31 ms without it, 44 ms with it (one
-- measurement each, 8 runners x 2 weeks). Chunks compressed from now on.
ALTER TABLE kneeload.watch_samples SET (timescaledb.index = '');
-- @else
SELECT 1;  -- plain PostgreSQL partitions: no columnstore
-- @end
