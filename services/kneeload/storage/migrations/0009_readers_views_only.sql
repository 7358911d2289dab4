-- 0009 readers reach only the kneeload_api views; clinics see unit-level rows on their units.
--
-- Before: the views were security_invoker, so every reader (member of kneeload_reader) needed
-- SELECT on the tables behind them and could also query those tables directly (row-level
-- security still filtered, but the README promises views only). Now:
-- * Every kneeload_api view runs with the rights of kneeload_api_owner: a NOLOGIN role without
--   members that may SELECT exactly the tables the views read, each of them under row-level
--   security. It owns none of them and cannot bypass RLS, so every policy still applies, and
--   the policies are evaluated for the CALLER: inside a view current_user stays the querying
--   role (tenant_grants' own_grants policy matches role_name = current_user).
-- * kneeload_reader keeps SELECT on kneeload_api, UPDATE of the acknowledgement columns through
--   kneeload_api.alert_acknowledgement, and EXECUTE on kneeload.acknowledge_alert; nothing on
--   the kneeload schema's tables.
-- * The table owner, superusers and BYPASSRLS roles see every row through the views, as they
--   do on the tables (kneeload.sees_all_rows(): declared IMMUTABLE so the planner folds it to a
--   constant for the querying role — `false OR <rule>` keeps the rule's index plans for readers,
--   `true OR ...` drops the filter for the owner. A boolean evaluated at run time in an OR made
--   every policy a sequential scan: correlations through RLS went from 25 to 130 ms on the
--   1,000-athlete benchmark. Plans that depend on RLS are re-planned when the role changes;
--   only a change of a role's attributes during a session would be seen late).
-- * Unit-level rows: per-minute and per-sample load recorded on a LEVER unit are visible to the
--   unit's clinic (fleet_bws_distribution, live samples on a clinic's treadmill), beside the
--   athlete's team as before.
-- * kneeload.secure_api_views() keeps the rule for views added later: `kneeload migrate` calls
--   it after every run (owner kneeload_api_owner, security_invoker off, SELECT for readers).
-- Flavour-neutral: roles, grants, policies and view options only (valid on hypertables, whose
-- chunks TimescaleDB keeps in step with the hypertable's grants).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kneeload_api_owner') THEN
        CREATE ROLE kneeload_api_owner NOLOGIN NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
-- Whoever migrates must be able to hand views to it (roles are cluster-wide: a concurrent
-- migration of another database may be granting the same membership).
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'kneeload_api_owner', 'MEMBER') THEN
        EXECUTE format('GRANT kneeload_api_owner TO %I', current_user);
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation OR object_in_use THEN NULL;
END $$;

GRANT USAGE ON SCHEMA kneeload TO kneeload_api_owner;
GRANT USAGE, CREATE ON SCHEMA kneeload_api TO kneeload_api_owner;
GRANT SELECT ON kneeload.config, kneeload.tenant_grants, kneeload.teams, kneeload.clinics,
                kneeload.athletes, kneeload.units, kneeload.pain_reports, kneeload.athlete_pain_latest,
                kneeload.sample_load, kneeload.minute_load, kneeload.daily_load,
                kneeload.daily_load_revisions, kneeload.unit_status, kneeload.sessions,
                kneeload.pain_responses, kneeload.correlations, kneeload.alerts
   TO kneeload_api_owner;
GRANT UPDATE (acknowledged_by, acknowledged_at) ON kneeload.alerts TO kneeload_api_owner;

-- Readers: nothing in schema kneeload (table and column privileges alike).
REVOKE ALL ON ALL TABLES IN SCHEMA kneeload FROM kneeload_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA kneeload FROM kneeload_reader;

-- The view functions read kneeload.config, which readers no longer may: run them as the owner.
ALTER FUNCTION kneeload.config_value(text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION kneeload.acwr_band(double precision) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION kneeload.sees_all_rows() RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_has_role(current_user, n.nspowner, 'USAGE')
           OR EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = current_user AND r.rolbypassrls)
      FROM pg_namespace n
     WHERE n.nspname = 'kneeload'
$$;
COMMENT ON FUNCTION kneeload.sees_all_rows() IS
    'True for the owner of schema kneeload (and its members), superusers and BYPASSRLS roles: they see every row through the kneeload_api views';

-- Policies: the same rules as 0006/0007 plus the owner's view of everything and units' rows for
-- clinics. (SELECT ...) sub-selects are InitPlans: computed once per query (0007).
DROP POLICY own_grants ON kneeload.tenant_grants;
CREATE POLICY own_grants ON kneeload.tenant_grants FOR SELECT
    USING (kneeload.sees_all_rows() OR role_name = current_user);

DO $$
DECLARE
    t text;
    all_rows   constant text := 'kneeload.sees_all_rows()';
    granted    constant text := '(SELECT g.tenant_id FROM kneeload.tenant_grants g WHERE g.kind = %L)';
    athletes   constant text := 'athlete_id = ANY ((SELECT array_agg(athlete_id) FROM kneeload.athletes)::text[])';
    units      constant text := '%I = ANY ((SELECT array_agg(unit_id) FROM kneeload.units)::text[])';
BEGIN
    -- the roots
    FOREACH t IN ARRAY ARRAY['teams', 'athletes'] LOOP
        EXECUTE format('DROP POLICY tenant ON kneeload.%I', t);
        EXECUTE format('CREATE POLICY tenant ON kneeload.%I FOR SELECT USING (%s OR team_id IN %s)',
                       t, all_rows, format(granted, 'team'));
    END LOOP;
    EXECUTE 'DROP POLICY tenant ON kneeload.coaches';
    EXECUTE format('CREATE POLICY tenant ON kneeload.coaches FOR SELECT USING (%s OR team_id IN %s)',
                   all_rows, format(granted, 'team'));
    EXECUTE 'DROP POLICY tenant ON kneeload.clinics';
    EXECUTE format('CREATE POLICY tenant ON kneeload.clinics FOR SELECT USING (%s OR clinic_id IN %s)',
                   all_rows, format(granted, 'clinic'));
    EXECUTE 'DROP POLICY tenant ON kneeload.units';
    EXECUTE format('CREATE POLICY tenant ON kneeload.units FOR SELECT USING (%s OR clinic_id IN %s)',
                   all_rows, format(granted, 'clinic'));
    EXECUTE 'DROP POLICY tenant ON kneeload.devices';
    EXECUTE format('CREATE POLICY tenant ON kneeload.devices FOR SELECT USING (%s OR clinic_id IN %s OR %s)',
                   all_rows, format(granted, 'clinic'), athletes);
    -- athlete-scoped
    FOREACH t IN ARRAY ARRAY['pain_reports', 'athlete_pain_latest', 'daily_load', 'daily_load_revisions'] LOOP
        EXECUTE format('DROP POLICY tenant ON kneeload.%I', t);
        EXECUTE format('CREATE POLICY tenant ON kneeload.%I FOR SELECT USING (%s OR %s)', t, all_rows, athletes);
    END LOOP;
    -- athlete- or unit-scoped: the athlete's team, or the clinic of the unit it was recorded on
    FOREACH t IN ARRAY ARRAY['sample_load', 'minute_load', 'sessions'] LOOP
        EXECUTE format('DROP POLICY tenant ON kneeload.%I', t);
        EXECUTE format('CREATE POLICY tenant ON kneeload.%I FOR SELECT USING (%s OR %s OR %s)',
                       t, all_rows, athletes, format(units, 'unit_id'));
    END LOOP;
    EXECUTE 'DROP POLICY tenant ON kneeload.pain_responses';
    EXECUTE format('CREATE POLICY tenant ON kneeload.pain_responses FOR SELECT USING (%s OR %s OR %s)',
                   all_rows, athletes, format(units, 'bws_unit_id'));
    EXECUTE 'DROP POLICY tenant ON kneeload.unit_status';
    EXECUTE format('CREATE POLICY tenant ON kneeload.unit_status FOR SELECT USING (%s OR %s)',
                   all_rows, format(units, 'unit_id'));
    EXECUTE 'DROP POLICY tenant ON kneeload.correlations';
    EXECUTE format('CREATE POLICY tenant ON kneeload.correlations FOR SELECT USING (%s OR %s OR '
                   '(athlete_id IS NULL AND team_id IN %s))', all_rows, athletes, format(granted, 'team'));
    EXECUTE 'DROP POLICY tenant ON kneeload.alerts';
    EXECUTE format('CREATE POLICY tenant ON kneeload.alerts FOR SELECT USING (%s OR %s OR %s)',
                   all_rows, athletes, format(units, 'unit_id'));
    EXECUTE 'DROP POLICY tenant_ack ON kneeload.alerts';
    EXECUTE format('CREATE POLICY tenant_ack ON kneeload.alerts FOR UPDATE USING (%s OR %s OR %s)',
                   all_rows, athletes, format(units, 'unit_id'));
END $$;

-- Acknowledging without a privilege on kneeload.alerts: an auto-updatable view of the
-- acknowledgement columns of open alerts (its WHERE keeps the first acknowledgement).
CREATE VIEW kneeload_api.alert_acknowledgement AS
SELECT alert_id, acknowledged_by, acknowledged_at
  FROM kneeload.alerts
 WHERE acknowledged_at IS NULL;
COMMENT ON VIEW kneeload_api.alert_acknowledgement IS
'Alerts not yet acknowledged, acknowledgement columns only: kneeload.acknowledge_alert(alert_id, by) (or an UPDATE of acknowledged_by, acknowledged_at here) acknowledges one; the first acknowledgement is kept.';

CREATE OR REPLACE FUNCTION kneeload.acknowledge_alert(p_alert_id text, p_by text DEFAULT NULL)
    RETURNS boolean LANGUAGE sql VOLATILE AS $$
    WITH u AS (
        UPDATE kneeload_api.alert_acknowledgement
           SET acknowledged_by = coalesce(p_by, current_user::text), acknowledged_at = now()
         WHERE alert_id = p_alert_id
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM u)
$$;

-- Views: definer rights of kneeload_api_owner (re-applied by `kneeload migrate` on every run).
CREATE FUNCTION kneeload.secure_api_views() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v record;
    n integer := 0;
BEGIN
    FOR v IN
        SELECT c.oid, c.oid::regclass AS rel, c.relowner, c.reloptions
          FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
         WHERE s.nspname = 'kneeload_api' AND c.relkind = 'v'
    LOOP
        IF v.relowner <> 'kneeload_api_owner'::regrole THEN
            EXECUTE format('ALTER VIEW %s OWNER TO kneeload_api_owner', v.rel);
            n := n + 1;
        END IF;
        IF EXISTS (SELECT 1 FROM unnest(coalesce(v.reloptions, '{}')) o
                    WHERE o ~* '^security_invoker=(true|on|yes|1)$') THEN
            EXECUTE format('ALTER VIEW %s RESET (security_invoker)', v.rel);
            n := n + 1;
        END IF;
        IF NOT has_table_privilege('kneeload_reader', v.oid, 'SELECT') THEN
            EXECUTE format('GRANT SELECT ON %s TO kneeload_reader', v.rel);
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END $$;
COMMENT ON FUNCTION kneeload.secure_api_views() IS
    'Every kneeload_api view: owned by kneeload_api_owner, without security_invoker, readable by kneeload_reader; returns the number of changes';

SELECT kneeload.secure_api_views();
GRANT UPDATE (acknowledged_by, acknowledged_at) ON kneeload_api.alert_acknowledgement TO kneeload_reader;
