-- 0008 faster dashboard views (loadtests/bench_views.py, 1,000 athletes x 90 days).
--
-- team_overview: EXPLAIN (ANALYZE, BUFFERS) showed the time in the per-athlete pain lookups
-- (latest report: a Merge Append over every weekly pain_reports partition per athlete; the
-- 7-day trend: runtime pruning + index probes over three partitions per athlete) and in
-- today's load, hash-joined from every daily_load row of the visible athletes. Now:
--   * kneeload.athlete_pain_latest holds, per athlete, every pain report of the 16 days up to
--     the athlete's newest report (window_start .. latest_time) and the last report before that
--     window. Triggers on pain_reports recompute the affected athletes from pain_reports itself
--     in the same transaction as the insert: idempotent, order-independent (a late report is
--     placed by its time), never stale. At read time the latest report up to now() and the
--     14-day trend window are exact from it whenever now() >= window_start + 14 days, i.e.
--     unless the athlete has a report more than 2 days in the future (clock skew); only then
--     does the view fall back to the raw lookup for that athlete (a one-time filter: no cost
--     otherwise).
--   * today's load is a primary-key lookup per athlete.
-- pain_vs_load for a team: the daily_load primary key (athlete_id, metric, date) cannot serve a
-- team + date range; an index on (team_id, metric, date) can.
-- Same view names and columns: the dashboards and users' tools see no change.

CREATE TABLE kneeload.athlete_pain_latest (
    athlete_id      text PRIMARY KEY,
    latest_time     timestamptz NOT NULL,     -- the athlete's newest report (may be in the future)
    window_start    timestamptz NOT NULL,     -- latest_time - 16 days
    recent_times    timestamptz[] NOT NULL,   -- every report from window_start to latest_time,
    recent_nrs      smallint[] NOT NULL,      --   ordered by (time, report_id)
    recent_contexts text[] NOT NULL,
    prior_time      timestamptz,              -- the last report before window_start
    prior_nrs       smallint,
    prior_context   text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kneeload.athlete_pain_latest IS
'Per athlete: pain reports of the 16 days up to the newest one and the last one before (team_overview''s latest pain and trend inputs); maintained by triggers on pain_reports';

CREATE FUNCTION kneeload.refresh_athlete_pain(p_ids text[]) RETURNS void
    LANGUAGE sql VOLATILE AS $$
    DELETE FROM kneeload.athlete_pain_latest l
     WHERE l.athlete_id = ANY (p_ids)
       AND NOT EXISTS (SELECT 1 FROM kneeload.pain_reports p WHERE p.athlete_id = l.athlete_id);
    INSERT INTO kneeload.athlete_pain_latest AS l
           (athlete_id, latest_time, window_start, recent_times, recent_nrs, recent_contexts,
            prior_time, prior_nrs, prior_context, updated_at)
    SELECT i.athlete_id, x.time, x.time - interval '16 days', r.times, r.nrs, r.contexts,
           b.time, b.pain_nrs, b.context, now()
      FROM (SELECT DISTINCT unnest(p_ids) AS athlete_id) i
      CROSS JOIN LATERAL (
            SELECT p.time FROM kneeload.pain_reports p
             WHERE p.athlete_id = i.athlete_id ORDER BY p.time DESC LIMIT 1) x
      CROSS JOIN LATERAL (
            SELECT array_agg(p.time ORDER BY p.time, p.report_id) AS times,
                   array_agg(p.pain_nrs ORDER BY p.time, p.report_id) AS nrs,
                   array_agg(p.context ORDER BY p.time, p.report_id) AS contexts
              FROM kneeload.pain_reports p
             WHERE p.athlete_id = i.athlete_id AND p.time >= x.time - interval '16 days') r
      LEFT JOIN LATERAL (
            SELECT p.time, p.pain_nrs, p.context FROM kneeload.pain_reports p
             WHERE p.athlete_id = i.athlete_id AND p.time < x.time - interval '16 days'
             ORDER BY p.time DESC, p.report_id DESC LIMIT 1) b ON true
    ON CONFLICT (athlete_id) DO UPDATE
       SET latest_time = EXCLUDED.latest_time, window_start = EXCLUDED.window_start,
           recent_times = EXCLUDED.recent_times, recent_nrs = EXCLUDED.recent_nrs,
           recent_contexts = EXCLUDED.recent_contexts, prior_time = EXCLUDED.prior_time,
           prior_nrs = EXCLUDED.prior_nrs, prior_context = EXCLUDED.prior_context,
           updated_at = EXCLUDED.updated_at;
$$;
COMMENT ON FUNCTION kneeload.refresh_athlete_pain(text[]) IS
    'Recompute athlete_pain_latest for the given athletes from pain_reports';

-- @if timescale
-- (hypertables take no transition tables: a row trigger; pain reports are low volume)
CREATE FUNCTION kneeload.pain_reports_refresh_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM kneeload.refresh_athlete_pain(ARRAY[NEW.athlete_id]);
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM kneeload.refresh_athlete_pain(ARRAY[OLD.athlete_id]);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER pain_latest AFTER INSERT OR UPDATE OR DELETE ON kneeload.pain_reports
    FOR EACH ROW EXECUTE FUNCTION kneeload.pain_reports_refresh_row();
-- @else
-- (one statement trigger per event: a batch of the sink refreshes each athlete once)
CREATE FUNCTION kneeload.pain_reports_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM kneeload.refresh_athlete_pain(ARRAY(SELECT DISTINCT athlete_id FROM new_rows));
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM kneeload.refresh_athlete_pain(ARRAY(SELECT DISTINCT athlete_id FROM old_rows));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER pain_latest_insert AFTER INSERT ON kneeload.pain_reports
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kneeload.pain_reports_refresh();
CREATE TRIGGER pain_latest_update AFTER UPDATE ON kneeload.pain_reports
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kneeload.pain_reports_refresh();
CREATE TRIGGER pain_latest_delete AFTER DELETE ON kneeload.pain_reports
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kneeload.pain_reports_refresh();
-- @end

-- Backfill what is already stored.
SELECT kneeload.refresh_athlete_pain(ARRAY(SELECT DISTINCT athlete_id FROM kneeload.pain_reports));

ALTER TABLE kneeload.athlete_pain_latest ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.athlete_pain_latest FOR SELECT
    USING (athlete_id = ANY ((SELECT array_agg(athlete_id) FROM kneeload.athletes)::text[]));
GRANT SELECT ON kneeload.athlete_pain_latest TO kneeload_reader;

CREATE INDEX daily_load_team_metric_date ON kneeload.daily_load (team_id, metric, date);

-- JIT off for this database's sessions. The views' lateral plans are estimated expensive
-- (row-level security hides the real row counts from the planner), which switched on JIT
-- compilation: EXPLAIN ANALYZE of the coach's team overview showed 2.5 s of JIT (inlining +
-- optimisation) around a 15 ms execution. Every dashboard query is index lookups; JIT never
-- pays for itself here. (A role or session can still SET jit = on.)
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
END $$;

CREATE OR REPLACE VIEW kneeload_api.team_overview WITH (security_invoker = true) AS
WITH cfg AS (
    SELECT kneeload.config_value('overview_metric') AS metric,
           kneeload.config_value('overview_acwr_method') AS method,
           kneeload.config_value('pain_trend_delta_nrs')::float8 AS trend_delta
)
SELECT a.team_id,
       t.name                         AS team_name,
       a.athlete_id,
       a.display_name,
       a.active,
       d.local_date,
       cfg.metric,
       td.load                        AS today_load,
       td.status                      AS today_status,
       l.date                         AS acwr_date,
       cfg.method                     AS acwr_method,
       l.acwr,
       kneeload.acwr_band(l.acwr)     AS acwr_band,
       l.ewma_acwr                    AS acwr_ewma,
       l.rac_acwr                     AS acwr_rac,
       l.rau_acwr                     AS acwr_rau,
       lp.pain_nrs                    AS latest_pain_nrs,
       lp.time                        AS latest_pain_time,
       lp.context                     AS latest_pain_context,
       pt.mean_7d                     AS pain_mean_7d,
       pt.mean_prev_7d                AS pain_mean_prev_7d,
       CASE WHEN pt.mean_7d IS NULL OR pt.mean_prev_7d IS NULL THEN NULL
            WHEN pt.mean_7d - pt.mean_prev_7d >= cfg.trend_delta THEN 'worsening'
            WHEN pt.mean_prev_7d - pt.mean_7d >= cfg.trend_delta THEN 'improving'
            ELSE 'stable' END          AS pain_trend,
       oa.n                           AS open_alerts
  FROM kneeload.athletes a
  CROSS JOIN cfg
  LEFT JOIN kneeload.teams t ON t.team_id = a.team_id
  CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE a.time_zone)::date AS local_date) d
  LEFT JOIN LATERAL (
        SELECT x.load, x.status FROM kneeload.daily_load x
         WHERE x.athlete_id = a.athlete_id AND x.metric = cfg.metric AND x.date = d.local_date) td ON true
  LEFT JOIN LATERAL (
        SELECT x.date,
               CASE cfg.method WHEN 'rac' THEN x.rac_acwr WHEN 'rau' THEN x.rau_acwr ELSE x.ewma_acwr END AS acwr,
               x.ewma_acwr, x.rac_acwr, x.rau_acwr
          FROM kneeload.daily_load x
         WHERE x.athlete_id = a.athlete_id AND x.metric = cfg.metric AND x.date <= d.local_date
         ORDER BY x.date DESC LIMIT 1) l ON true
  LEFT JOIN kneeload.athlete_pain_latest pl ON pl.athlete_id = a.athlete_id
  LEFT JOIN LATERAL (
        SELECT f.pain_nrs, f.time, f.context
          FROM (SELECT u.nrs AS pain_nrs, u.t AS time, u.ctx AS context, u.i
                  FROM unnest(pl.recent_times, pl.recent_nrs, pl.recent_contexts)
                       WITH ORDINALITY AS u(t, nrs, ctx, i)
                 WHERE u.t <= now()
                UNION ALL
                SELECT pl.prior_nrs, pl.prior_time, pl.prior_context, 0
                 WHERE pl.prior_time IS NOT NULL
                 ORDER BY 2 DESC, 4 DESC LIMIT 1) f
         WHERE pl.window_start + interval '14 days' <= now()
        UNION ALL
        SELECT f.pain_nrs, f.time, f.context
          FROM (SELECT p.pain_nrs, p.time, p.context FROM kneeload.pain_reports p
                 WHERE p.athlete_id = a.athlete_id AND p.time <= now()
                 ORDER BY p.time DESC LIMIT 1) f
         WHERE pl.window_start + interval '14 days' > now()) lp ON true
  LEFT JOIN LATERAL (
        SELECT avg(x.nrs) FILTER (WHERE x.t >= now() - interval '7 days')::float8 AS mean_7d,
               avg(x.nrs) FILTER (WHERE x.t <  now() - interval '7 days')::float8 AS mean_prev_7d
          FROM (SELECT u.t, u.nrs FROM unnest(pl.recent_times, pl.recent_nrs) AS u(t, nrs)
                 WHERE pl.window_start + interval '14 days' <= now()
                UNION ALL
                SELECT f.time, f.pain_nrs
                  FROM (SELECT p.time, p.pain_nrs FROM kneeload.pain_reports p
                         WHERE p.athlete_id = a.athlete_id
                           AND p.time >= now() - interval '14 days' AND p.time <= now()
                        OFFSET 0) f
                 WHERE pl.window_start + interval '14 days' > now()) x
         WHERE x.t >= now() - interval '14 days' AND x.t <= now()) pt ON true
  LEFT JOIN LATERAL (
        SELECT count(*) AS n FROM kneeload.alerts al
         WHERE al.athlete_id = a.athlete_id AND al.acknowledged_at IS NULL) oa ON true;
