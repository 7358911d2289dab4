-- 0014 alert episodes (issue #14 item 5).
--
-- The workers publish one alert event per episode change (kneeload.core.episodes): opened,
-- escalated (severity rose), resolved (the rule evaluated clear; severity info, values
-- resolved_by = the resolving event). Every change stays a row of kneeload.alerts (the
-- history); values carry episode_id and episode_transition. Alerts written before this
-- migration have neither: each is an episode of its own (episode_id = dedup_key, opened).
--
-- An episode is open while it has no resolved change and needs attention while one of its
-- opened/escalated changes is unacknowledged: acknowledging any change acknowledges the
-- whole episode so far; a later escalation asks for attention again.

ALTER TABLE kneeload.alerts
    ADD COLUMN episode_id text GENERATED ALWAYS AS (coalesce("values"->>'episode_id', dedup_key)) STORED,
    ADD COLUMN episode_transition text GENERATED ALWAYS AS (coalesce("values"->>'episode_transition', 'opened')) STORED;
CREATE INDEX alerts_episode ON kneeload.alerts (episode_id, event_time);

CREATE VIEW kneeload_api.alert_episodes AS
WITH e AS (
    SELECT al.episode_id,
           min(al.kind) AS kind,
           min(al.athlete_id) AS athlete_id,
           min(al.unit_id) AS unit_id,
           min(al.team_id) AS team_id,
           min(al.clinic_id) AS clinic_id,
           (array_agg(al.severity ORDER BY CASE al.severity WHEN 'critical' THEN 2
                                                            WHEN 'warning' THEN 1 ELSE 0 END DESC)
               FILTER (WHERE al.episode_transition <> 'resolved'))[1] AS severity,
           min(al.event_time) AS opened_at,
           max(al.event_time) FILTER (WHERE al.episode_transition = 'escalated') AS escalated_at,
           max(al.event_time) FILTER (WHERE al.episode_transition = 'resolved') AS resolved_at,
           max(al."values"->>'resolved_by') FILTER (WHERE al.episode_transition = 'resolved')
               AS resolved_by_event,
           (array_agg(al.alert_id ORDER BY al.event_time DESC, al.alert_id DESC)
               FILTER (WHERE al.episode_transition <> 'resolved'))[1] AS latest_alert_id,
           (array_agg(al.message ORDER BY al.event_time DESC, al.alert_id DESC)
               FILTER (WHERE al.episode_transition <> 'resolved'))[1] AS message,
           (array_agg(al."values" ORDER BY al.event_time DESC, al.alert_id DESC)
               FILTER (WHERE al.episode_transition <> 'resolved'))[1] AS "values",
           count(*) AS changes,
           bool_or(al.acknowledged_at IS NULL AND al.episode_transition <> 'resolved')
               AS needs_ack,
           min(al.acknowledged_by) FILTER (WHERE al.acknowledged_at IS NOT NULL) AS acknowledged_by,
           min(al.acknowledged_at) AS acknowledged_at
      FROM kneeload.alerts al
     GROUP BY al.episode_id
)
SELECT e.episode_id, e.kind, e.severity,
       CASE WHEN e.resolved_at IS NOT NULL THEN 'resolved' ELSE 'open' END AS status,
       e.athlete_id, a.display_name, e.unit_id, e.team_id, e.clinic_id,
       e.opened_at, e.escalated_at, e.resolved_at, e.resolved_by_event,
       e.latest_alert_id, e.message, e."values", e.changes,
       NOT e.needs_ack AS acknowledged, e.acknowledged_by, e.acknowledged_at
  FROM e
  LEFT JOIN kneeload.athletes a ON a.athlete_id = e.athlete_id;
COMMENT ON VIEW kneeload_api.alert_episodes IS
'One row per alert episode (one condition of one athlete or unit, kneeload.core.episodes): kind, highest severity, open or resolved (when, and the resolving event), opened/escalated times, its latest message and figures, the number of changes, and whether every opened/escalated change is acknowledged (acknowledge with kneeload.acknowledge_alert(latest_alert_id, by): it acknowledges the whole episode). History: kneeload_api.alerts, one row per change.';

-- Open alerts are now open episodes that need attention: one row per episode, its latest
-- opened/escalated change (alert_id, acknowledge it), dedup_key = the episode id.
CREATE OR REPLACE VIEW kneeload_api.open_alerts AS
SELECT e.latest_alert_id AS alert_id, e.episode_id AS dedup_key, e.kind, e.severity,
       e.athlete_id, e.display_name, e.unit_id, e.team_id, e.clinic_id,
       coalesce(e.escalated_at, e.opened_at) AS event_time, e.message, e."values",
       now() - e.opened_at AS age,
       e.episode_id, e.opened_at, e.changes
  FROM kneeload_api.alert_episodes e
 WHERE e.status = 'open' AND NOT e.acknowledged;
COMMENT ON VIEW kneeload_api.open_alerts IS
'Open alert episodes that need attention (not resolved, an opened or escalated change not yet acknowledged), one row per episode: alert_id is its latest change (acknowledge with SELECT kneeload.acknowledge_alert(alert_id, by) or `kneeload alerts ack`, which acknowledges the whole episode), dedup_key and episode_id the episode, event_time its last escalation or opening, age since it opened.';

-- kneeload_api.alerts gains the episode columns (appended: the view keeps its columns).
CREATE OR REPLACE VIEW kneeload_api.alerts AS
SELECT al.alert_id, al.dedup_key, al.kind, al.severity, al.athlete_id, a.display_name,
       al.unit_id, al.team_id, al.clinic_id, al.event_time, al.message, al."values",
       al.received_at, al.acknowledged_by, al.acknowledged_at,
       al.episode_id, al.episode_transition
  FROM kneeload.alerts al
  LEFT JOIN kneeload.athletes a ON a.athlete_id = al.athlete_id;
COMMENT ON VIEW kneeload_api.alerts IS 'Every alert episode change (opened, escalated, resolved) with who acknowledged it and when (NULL while open); episode_id groups an episode''s changes.';

-- Acknowledging a change acknowledges every unacknowledged change of its episode so far.
CREATE OR REPLACE FUNCTION kneeload.acknowledge_alert(p_alert_id text, p_by text DEFAULT NULL)
    RETURNS boolean LANGUAGE sql VOLATILE AS $$
    WITH u AS (
        UPDATE kneeload_api.alert_acknowledgement
           SET acknowledged_by = coalesce(p_by, current_user::text), acknowledged_at = now()
         WHERE alert_id IN (
               SELECT h.alert_id FROM kneeload_api.alerts h
                WHERE h.episode_id = (SELECT x.episode_id FROM kneeload_api.alerts x
                                       WHERE x.alert_id = p_alert_id))
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM u)
$$;
COMMENT ON FUNCTION kneeload.acknowledge_alert(text, text) IS
    'Acknowledge an alert episode through any of its changes (by defaults to the database role): every change not yet acknowledged gets this acknowledgement, earlier ones keep theirs; false when none was left or the alert is unknown or not visible';

-- team_overview: open_alerts counts open episodes needing attention (was: unacknowledged
-- alert rows). The rest of the view is 0008's, unchanged.
CREATE OR REPLACE VIEW kneeload_api.team_overview AS
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
        SELECT count(DISTINCT al.episode_id) AS n FROM kneeload.alerts al
         WHERE al.athlete_id = a.athlete_id AND al.acknowledged_at IS NULL
           AND al.episode_transition <> 'resolved'
           AND NOT EXISTS (SELECT 1 FROM kneeload.alerts r
                            WHERE r.episode_id = al.episode_id
                              AND r.episode_transition = 'resolved')) oa ON true;
