-- 0007 cheaper row-level security. The 0006 policies (`athlete_id IN (SELECT athlete_id FROM
-- kneeload.athletes)`) were re-evaluated inside every lateral lookup of the views: the team
-- overview took seconds for a coach on 1,000 athletes x 90 days (loadtests/bench_views.py).
-- A scalar sub-select of the visible ids becomes an InitPlan, computed once per query, and
-- `= ANY(...)` still uses the indexes. Same rules, same visibility: the sub-selects run under
-- the caller's own policies on athletes and units.

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['pain_reports', 'sample_load', 'minute_load', 'daily_load', 'daily_load_revisions'] LOOP
        EXECUTE format('DROP POLICY tenant ON kneeload.%I', t);
        EXECUTE format('CREATE POLICY tenant ON kneeload.%I FOR SELECT '
                       'USING (athlete_id = ANY ((SELECT array_agg(athlete_id) FROM kneeload.athletes)::text[]))', t);
    END LOOP;
    EXECUTE 'DROP POLICY tenant ON kneeload.unit_status';
    EXECUTE 'CREATE POLICY tenant ON kneeload.unit_status FOR SELECT '
            'USING (unit_id = ANY ((SELECT array_agg(unit_id) FROM kneeload.units)::text[]))';
END $$;

DROP POLICY tenant ON kneeload.devices;
CREATE POLICY tenant ON kneeload.devices FOR SELECT
    USING (clinic_id IN (SELECT g.tenant_id FROM kneeload.tenant_grants g WHERE g.kind = 'clinic')
           OR athlete_id = ANY ((SELECT array_agg(athlete_id) FROM kneeload.athletes)::text[]));

DROP POLICY tenant ON kneeload.sessions;
CREATE POLICY tenant ON kneeload.sessions FOR SELECT
    USING (athlete_id = ANY ((SELECT array_agg(athlete_id) FROM kneeload.athletes)::text[])
           OR unit_id = ANY ((SELECT array_agg(unit_id) FROM kneeload.units)::text[]));
DROP POLICY tenant ON kneeload.pain_responses;
CREATE POLICY tenant ON kneeload.pain_responses FOR SELECT
    USING (athlete_id = ANY ((SELECT array_agg(athlete_id) FROM kneeload.athletes)::text[])
           OR bws_unit_id = ANY ((SELECT array_agg(unit_id) FROM kneeload.units)::text[]));
DROP POLICY tenant ON kneeload.correlations;
CREATE POLICY tenant ON kneeload.correlations FOR SELECT
    USING (athlete_id = ANY ((SELECT array_agg(athlete_id) FROM kneeload.athletes)::text[])
           OR (athlete_id IS NULL AND team_id IN (SELECT g.tenant_id FROM kneeload.tenant_grants g WHERE g.kind = 'team')));
DROP POLICY tenant ON kneeload.alerts;
CREATE POLICY tenant ON kneeload.alerts FOR SELECT
    USING (athlete_id = ANY ((SELECT array_agg(athlete_id) FROM kneeload.athletes)::text[])
           OR unit_id = ANY ((SELECT array_agg(unit_id) FROM kneeload.units)::text[]));
DROP POLICY tenant_ack ON kneeload.alerts;
CREATE POLICY tenant_ack ON kneeload.alerts FOR UPDATE
    USING (athlete_id = ANY ((SELECT array_agg(athlete_id) FROM kneeload.athletes)::text[])
           OR unit_id = ANY ((SELECT array_agg(unit_id) FROM kneeload.units)::text[]));
