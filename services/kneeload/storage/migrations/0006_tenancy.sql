-- 0006 tenancy: row-level security.
-- Readers (coach and clinic roles) get no privileges on the raw watch/treadmill tables: no view
-- reads them, and on TimescaleDB they are the compressed ones (compression and RLS cannot be
-- combined on a hypertable: timescale/timescaledb#6827). A role granted a team (kneeload.grant_coach) sees that team's
-- athletes and everything about them; a role granted a clinic (kneeload.grant_clinic) sees that
-- clinic's units and everything recorded on them. Owners/superusers (the sink, migrations)
-- bypass RLS. Views are security_invoker, so the same rules apply through them.

-- Unqualified names resolve to the views first, then the tables (new sessions).
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET search_path = "$user", public, kneeload_api, kneeload', current_database());
END $$;

-- Own grants only.
ALTER TABLE kneeload.tenant_grants ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_grants ON kneeload.tenant_grants FOR SELECT USING (role_name = current_user);

ALTER TABLE kneeload.teams ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.teams FOR SELECT
    USING (team_id IN (SELECT g.tenant_id FROM kneeload.tenant_grants g WHERE g.kind = 'team'));
ALTER TABLE kneeload.clinics ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.clinics FOR SELECT
    USING (clinic_id IN (SELECT g.tenant_id FROM kneeload.tenant_grants g WHERE g.kind = 'clinic'));
ALTER TABLE kneeload.coaches ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.coaches FOR SELECT
    USING (team_id IN (SELECT g.tenant_id FROM kneeload.tenant_grants g WHERE g.kind = 'team'));

-- The roots: athletes by team, units by clinic (the subqueries see only the caller's grants).
ALTER TABLE kneeload.athletes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.athletes FOR SELECT
    USING (team_id IN (SELECT g.tenant_id FROM kneeload.tenant_grants g WHERE g.kind = 'team'));
ALTER TABLE kneeload.units ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.units FOR SELECT
    USING (clinic_id IN (SELECT g.tenant_id FROM kneeload.tenant_grants g WHERE g.kind = 'clinic'));
ALTER TABLE kneeload.devices ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.devices FOR SELECT
    USING (clinic_id IN (SELECT g.tenant_id FROM kneeload.tenant_grants g WHERE g.kind = 'clinic')
           OR athlete_id IN (SELECT athlete_id FROM kneeload.athletes));

-- Athlete-scoped tables: visible when the athlete is (athletes' own policy applies in the subquery).
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['pain_reports', 'sample_load', 'minute_load',
                             'daily_load', 'daily_load_revisions'] LOOP
        EXECUTE format('ALTER TABLE kneeload.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant ON kneeload.%I FOR SELECT '
                       'USING (athlete_id IN (SELECT athlete_id FROM kneeload.athletes))', t);
    END LOOP;
    -- Unit-scoped tables.
    FOREACH t IN ARRAY ARRAY['unit_status'] LOOP
        EXECUTE format('ALTER TABLE kneeload.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant ON kneeload.%I FOR SELECT '
                       'USING (unit_id IN (SELECT unit_id FROM kneeload.units))', t);
    END LOOP;
END $$;

-- Both: an athlete's session on a clinic's unit is visible to the coach and to the clinic.
ALTER TABLE kneeload.sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.sessions FOR SELECT
    USING (athlete_id IN (SELECT athlete_id FROM kneeload.athletes)
           OR unit_id IN (SELECT unit_id FROM kneeload.units));
ALTER TABLE kneeload.pain_responses ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.pain_responses FOR SELECT
    USING (athlete_id IN (SELECT athlete_id FROM kneeload.athletes)
           OR bws_unit_id IN (SELECT unit_id FROM kneeload.units));
ALTER TABLE kneeload.correlations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.correlations FOR SELECT
    USING (athlete_id IN (SELECT athlete_id FROM kneeload.athletes)
           OR (athlete_id IS NULL AND team_id IN (SELECT g.tenant_id FROM kneeload.tenant_grants g WHERE g.kind = 'team')));
ALTER TABLE kneeload.alerts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.alerts FOR SELECT
    USING (athlete_id IN (SELECT athlete_id FROM kneeload.athletes)
           OR unit_id IN (SELECT unit_id FROM kneeload.units));
-- Acknowledging: only alerts the caller can see, and only the acknowledgement columns (grant below).
CREATE POLICY tenant_ack ON kneeload.alerts FOR UPDATE
    USING (athlete_id IN (SELECT athlete_id FROM kneeload.athletes)
           OR unit_id IN (SELECT unit_id FROM kneeload.units));

-- Privileges of the reader group (coach and clinic roles are members of it).
GRANT USAGE ON SCHEMA kneeload, kneeload_api TO kneeload_reader;
GRANT SELECT ON kneeload.config, kneeload.tenant_grants, kneeload.teams, kneeload.clinics, kneeload.coaches,
                kneeload.athletes, kneeload.units, kneeload.devices, kneeload.pain_reports, kneeload.sample_load, kneeload.minute_load, kneeload.daily_load,
                kneeload.daily_load_revisions, kneeload.unit_status, kneeload.sessions, kneeload.pain_responses, kneeload.correlations,
                kneeload.alerts
   TO kneeload_reader;
GRANT UPDATE (acknowledged_by, acknowledged_at) ON kneeload.alerts TO kneeload_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA kneeload_api TO kneeload_reader;
GRANT EXECUTE ON FUNCTION kneeload.acknowledge_alert(text, text) TO kneeload_reader;

-- Tenancy administration (run by the owner: `kneeload storage grant-coach` / `grant-clinic`).
CREATE FUNCTION kneeload.grant_coach(p_role name, p_team text, p_display_name text DEFAULT NULL)
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT kneeload_reader TO %I', p_role);
    INSERT INTO kneeload.teams (team_id) VALUES (p_team) ON CONFLICT DO NOTHING;
    INSERT INTO kneeload.tenant_grants (role_name, kind, tenant_id) VALUES (p_role, 'team', p_team)
        ON CONFLICT DO NOTHING;
    INSERT INTO kneeload.coaches (role_name, team_id, display_name) VALUES (p_role, p_team, p_display_name)
        ON CONFLICT (role_name) DO UPDATE SET team_id = EXCLUDED.team_id,
            display_name = coalesce(EXCLUDED.display_name, kneeload.coaches.display_name);
END $$;
COMMENT ON FUNCTION kneeload.grant_coach(name, text, text) IS
    'Let database role p_role (a coach) read team p_team through the kneeload_api views';

CREATE FUNCTION kneeload.grant_clinic(p_role name, p_clinic text)
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT kneeload_reader TO %I', p_role);
    INSERT INTO kneeload.clinics (clinic_id) VALUES (p_clinic) ON CONFLICT DO NOTHING;
    INSERT INTO kneeload.tenant_grants (role_name, kind, tenant_id) VALUES (p_role, 'clinic', p_clinic)
        ON CONFLICT DO NOTHING;
END $$;
COMMENT ON FUNCTION kneeload.grant_clinic(name, text) IS
    'Let database role p_role read clinic p_clinic''s units through the kneeload_api views';

CREATE FUNCTION kneeload.revoke_tenant(p_role name, p_kind text, p_tenant text)
    RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    DELETE FROM kneeload.tenant_grants WHERE role_name = p_role AND kind = p_kind AND tenant_id = p_tenant;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF p_kind = 'team' THEN
        DELETE FROM kneeload.coaches WHERE role_name = p_role AND team_id = p_tenant;
    END IF;
    RETURN n > 0;
END $$;

REVOKE EXECUTE ON FUNCTION kneeload.grant_coach(name, text, text), kneeload.grant_clinic(name, text),
    kneeload.revoke_tenant(name, text, text) FROM PUBLIC;
