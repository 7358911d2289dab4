-- 0027 the weekly pain trend on the worker's daily_load rows (issue #20 item 3, "one home for
-- every number"): this week's and last week's mean pain and the coach's label, computed by
-- kneeload.core.pain.weekly_pain_trend / pain_trend_label and published on each daily_load
-- revision (the 7 local days ending on the row's date against the 7 before, during-run and
-- next-morning reports; docs/science.md §3). Nullable, no default: valid on plain PostgreSQL
-- and TimescaleDB alike (daily_load and its revisions are plain tables in both flavours);
-- rows written before this migration read null.

ALTER TABLE kneeload.daily_load
    ADD COLUMN pain_mean_7d_nrs      double precision,
    ADD COLUMN pain_mean_prev_7d_nrs double precision,
    ADD COLUMN pain_trend        text CHECK (pain_trend IN ('worsening', 'improving', 'stable'));

ALTER TABLE kneeload.daily_load_revisions
    ADD COLUMN pain_mean_7d_nrs      double precision,
    ADD COLUMN pain_mean_prev_7d_nrs double precision,
    ADD COLUMN pain_trend        text CHECK (pain_trend IN ('worsening', 'improving', 'stable'));

COMMENT ON COLUMN kneeload.daily_load.pain_mean_7d_nrs IS
    'Mean pain (0-10 NRS) of during-run and next-morning reports over the 7 local days ending on date (kneeload.core.pain.weekly_pain_trend)';
COMMENT ON COLUMN kneeload.daily_load.pain_mean_prev_7d_nrs IS
    'The same mean over the 7 local days before those';
COMMENT ON COLUMN kneeload.daily_load.pain_trend IS
    'worsening / improving / stable (kneeload.core.pain.pain_trend_label, the worker''s KNEELOAD_WORKER_PAIN_TREND_DELTA_NRS); null unless both weeks have a report';
