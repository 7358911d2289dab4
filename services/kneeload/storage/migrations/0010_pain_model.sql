-- 0010 the pain model as clinicians use it (issue #18): every pain response names its preset's
-- source and says the verdict in words, carries the session's during / after / next-day values
-- (the next-day value is the first next-morning or rest report, never an "after" report; while
-- it is missing: when it is expected and due), and a load suggestion for sessions off a unit.
-- Plain ALTER TABLE ... ADD COLUMN (nullable, no default) and views: valid on PostgreSQL and
-- TimescaleDB alike (pain_responses is a plain table). The views get kneeload_api_owner and
-- readers' SELECT from kneeload.secure_api_views(), which `kneeload migrate` runs after every run (0009).

ALTER TABLE kneeload.pain_responses
    ADD COLUMN preset_source        text,
    ADD COLUMN summary              text,
    ADD COLUMN during_max_nrs       real,
    ADD COLUMN after_max_nrs        real,
    ADD COLUMN next_day_nrs         real,
    ADD COLUMN next_day_status      text,
    ADD COLUMN next_day_expected_at timestamptz,
    ADD COLUMN next_day_due_by      timestamptz,
    ADD COLUMN load_action          text,
    ADD COLUMN load_reason          text;

CREATE OR REPLACE VIEW kneeload_api.bws_suggestions AS
SELECT r.time, r.athlete_id, a.display_name, r.team_id, r.report_id, r.session_id,
       r.pain_nrs, r.context, r.baseline_nrs, r.classification, r.reason, r.preset,
       r.bws_unit_id       AS unit_id,
       r.bws_action        AS action,
       r.bws_current_pct   AS current_bws_pct,
       r.bws_suggested_pct AS suggested_bws_pct,
       r.bws_reason        AS suggestion_reason,
       r.preset_source,
       r.summary
  FROM kneeload.pain_responses r
  LEFT JOIN kneeload.athletes a ON a.athlete_id = r.athlete_id
 WHERE r.bws_action IS NOT NULL;
COMMENT ON VIEW kneeload_api.bws_suggestions IS
'Pain responses that come with a body-weight-support suggestion: the pain classification, the suggested BWS change for the athlete''s LEVER unit, the preset and its source, and the verdict in words.';

CREATE VIEW kneeload_api.pain_responses AS
SELECT r.time, r.athlete_id, a.display_name, r.team_id, r.report_id, r.session_id,
       r.pain_nrs, r.context, r.baseline_nrs,
       r.during_max_nrs, r.after_max_nrs, r.next_day_nrs, r.next_day_status,
       r.next_day_expected_at, r.next_day_due_by,
       r.classification, r.reason, r.summary, r.preset, r.preset_source,
       r.load_action, r.load_reason,
       r.bws_unit_id AS unit_id, r.bws_action, r.bws_current_pct, r.bws_suggested_pct
  FROM kneeload.pain_responses r
  LEFT JOIN kneeload.athletes a ON a.athlete_id = r.athlete_id;
COMMENT ON VIEW kneeload_api.pain_responses IS
'Every pain response: the session''s during, after and next-day pain (next day = first next-morning or rest report within the preset''s window; pending with the time it is expected), the verdict (acceptable / caution / stop) with its reason in words, the preset and its source, and the suggestion for the next session''s load (reduce / hold / progress; BWS change on a unit). Suggestions are for the clinician, never applied automatically.';
GRANT SELECT ON kneeload_api.pain_responses TO kneeload_reader;
