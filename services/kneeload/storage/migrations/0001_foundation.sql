-- 0001 foundation: schemas, configuration with sources, tenancy, partition management.
-- Tables live in schema `kneeload`; the public read surface (views) in `kneeload_api`.

CREATE SCHEMA IF NOT EXISTS kneeload;
CREATE SCHEMA IF NOT EXISTS kneeload_api;
COMMENT ON SCHEMA kneeload IS 'kneeload tables (internal: may change between versions; query kneeload_api views instead)';
COMMENT ON SCHEMA kneeload_api IS 'kneeload public read surface: documented views that dashboards and tools query';

-- Group role of every read-only tenant role (coaches, clinics). Roles are cluster-wide, so a
-- concurrent migration in another database may create it first.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kneeload_reader') THEN
        CREATE ROLE kneeload_reader NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

-- Configurable defaults with their sources (read by the views).
CREATE TABLE kneeload.config (
    key         text PRIMARY KEY,
    value       text NOT NULL,
    unit        text,
    source      text NOT NULL,
    description text NOT NULL
);
INSERT INTO kneeload.config (key, value, unit, source, description) VALUES
 ('acwr_band_low', '0.8', 'ratio', 'Gabbett TJ. The training-injury prevention paradox. Br J Sports Med 2016;50:273-280 (sweet spot 0.8-1.3)',
  'ACWR below this is band ''low'' (under-prepared)'),
 ('acwr_band_high', '1.3', 'ratio', 'Gabbett TJ. Br J Sports Med 2016;50:273-280 (sweet spot 0.8-1.3)',
  'ACWR from this is band ''caution'''),
 ('acwr_band_danger', '1.5', 'ratio', 'Gabbett TJ. Br J Sports Med 2016;50:273-280; Hulin BT et al. Br J Sports Med 2016;50:231-236 (danger zone >= 1.5)',
  'ACWR from this is band ''danger'''),
 ('overview_acwr_method', 'ewma', NULL, 'Williams S et al. Better way to determine the acute:chronic workload ratio? Br J Sports Med 2017;51:209-210 (EWMA preferred over rolling averages)',
  'ACWR method shown as `acwr` in team_overview: ewma | rac | rau'),
 ('overview_metric', 'pfj_load_mpa_s', NULL, 'kneeload default (estimated PFJ load is the primary load metric)',
  'Daily load metric shown in team_overview and pain_vs_load'),
 ('pain_trend_delta_nrs', '1.0', 'NRS points', 'kneeload default: deliberately below the ~2-point clinically important difference of the NRS (Farrar JT et al. Pain 2001;94:149-158) so trends show early',
  'Mean pain of the last 7 days minus the 7 days before: >= this is ''worsening'', <= minus this ''improving'''),
 ('unit_offline_after_s', '120', 's', 'kneeload default (units send heartbeats every few seconds)',
  'A unit whose last_seen is older than this is shown offline in fleet_status'),
 ('clinic_day_minutes', '600', 'min', 'kneeload default (10 opening hours)',
  'Minutes a unit could be used per day: denominator of utilisation_pct in fleet_status'),
 ('live_window_s', '120', 's', 'kneeload default', 'A sample newer than this counts as live in live_session'),
 ('live_history_s', '900', 's', 'kneeload default', 'How far back live_session_samples reaches');

CREATE FUNCTION kneeload.config_value(p_key text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT value FROM kneeload.config WHERE key = p_key $$;

CREATE FUNCTION kneeload.acwr_band(p_acwr double precision) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_acwr IS NULL THEN NULL
        WHEN p_acwr < c.lo THEN 'low'
        WHEN p_acwr < c.hi THEN 'sweet_spot'
        WHEN p_acwr < c.danger THEN 'caution'
        ELSE 'danger' END
    FROM (SELECT max(value::float8) FILTER (WHERE key = 'acwr_band_low') AS lo,
                 max(value::float8) FILTER (WHERE key = 'acwr_band_high') AS hi,
                 max(value::float8) FILTER (WHERE key = 'acwr_band_danger') AS danger
            FROM kneeload.config) c
$$;
COMMENT ON FUNCTION kneeload.acwr_band(double precision) IS
    'ACWR band from kneeload.config: low < acwr_band_low <= sweet_spot < acwr_band_high <= caution < acwr_band_danger <= danger';

-- Tenancy ---------------------------------------------------------------------
CREATE TABLE kneeload.teams (
    team_id    text PRIMARY KEY,
    name       text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE kneeload.clinics (
    clinic_id  text PRIMARY KEY,
    name       text,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Which database role may see which team's athletes or which clinic's units.
CREATE TABLE kneeload.tenant_grants (
    role_name  name NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('team', 'clinic')),
    tenant_id  text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role_name, kind, tenant_id)
);
CREATE TABLE kneeload.coaches (
    role_name    name PRIMARY KEY,
    team_id      text NOT NULL,
    display_name text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Partition management (plain PostgreSQL path) ---------------------------------
CREATE TABLE kneeload.partitioned_tables (
    table_name   text PRIMARY KEY,          -- schema-qualified parent
    column_name  text NOT NULL,
    granularity  text NOT NULL CHECK (granularity IN ('day', 'week')),
    retention    interval,                  -- NULL: keep forever
    flavour      text NOT NULL CHECK (flavour IN ('plain', 'timescale'))
);

CREATE FUNCTION kneeload.partition_step(p_granularity text) RETURNS interval
    LANGUAGE sql IMMUTABLE AS $$ SELECT CASE p_granularity WHEN 'day' THEN interval '1 day' ELSE interval '7 days' END $$;

-- Create the partitions of p_table covering [p_from, p_to). Rows that landed in the default
-- partition for a new range are moved into it, so nothing is lost and nothing blocks.
CREATE FUNCTION kneeload.ensure_partitions(p_table text, p_from timestamptz, p_to timestamptz)
    RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    cfg     kneeload.partitioned_tables;
    step    interval;
    b       timestamptz;
    e       timestamptz;
    base    text;
    pname   text;
    n       bigint;
    created integer := 0;
BEGIN
    SELECT * INTO cfg FROM kneeload.partitioned_tables WHERE table_name = p_table;
    IF NOT FOUND OR cfg.flavour <> 'plain' THEN
        RETURN 0;
    END IF;
    step := kneeload.partition_step(cfg.granularity);
    base := split_part(p_table, '.', 2);
    b := date_trunc(cfg.granularity, p_from AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    WHILE b < p_to LOOP
        e := b + step;
        pname := base || '_p' || to_char(b AT TIME ZONE 'UTC', 'YYYYMMDD');
        IF to_regclass('kneeload.' || quote_ident(pname)) IS NULL THEN
            PERFORM pg_advisory_xact_lock(hashtext('kneeload.partitions:' || p_table));
            IF to_regclass('kneeload.' || quote_ident(pname)) IS NULL THEN
                EXECUTE format('SELECT count(*) FROM kneeload.%I WHERE %I >= %L AND %I < %L',
                               base || '_default', cfg.column_name, b, cfg.column_name, e) INTO n;
                IF n = 0 THEN
                    EXECUTE format('CREATE TABLE kneeload.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                                   pname, p_table, b, e);
                ELSE
                    EXECUTE format('CREATE TABLE kneeload.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                                   pname, p_table);
                    EXECUTE format('WITH moved AS (DELETE FROM kneeload.%I WHERE %I >= %L AND %I < %L RETURNING *) '
                                   'INSERT INTO kneeload.%I SELECT * FROM moved',
                                   base || '_default', cfg.column_name, b, cfg.column_name, e, pname);
                    EXECUTE format('ALTER TABLE %s ATTACH PARTITION kneeload.%I FOR VALUES FROM (%L) TO (%L)',
                                   p_table, pname, b, e);
                END IF;
                created := created + 1;
            END IF;
        END IF;
        b := e;
    END LOOP;
    RETURN created;
END $$;
COMMENT ON FUNCTION kneeload.ensure_partitions(text, timestamptz, timestamptz) IS
    'Plain PostgreSQL: create the time partitions of a table covering [from, to); rows already in the default partition for that range are moved in';

-- The partitions of a plain-path table with their ranges.
CREATE FUNCTION kneeload.partitions(p_table text)
    RETURNS TABLE (partition_name text, range_start timestamptz, range_end timestamptz, is_default boolean)
    LANGUAGE sql STABLE AS $$
    SELECT c.relname::text,
           CASE WHEN c.relname ~ '_p[0-9]{8}$'
                THEN to_date(right(c.relname, 8), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC' END,
           CASE WHEN c.relname ~ '_p[0-9]{8}$'
                THEN (to_date(right(c.relname, 8), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC')
                     + kneeload.partition_step(t.granularity) END,
           c.relname::text LIKE '%\_default'
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      JOIN kneeload.partitioned_tables t ON t.table_name = p_table
     WHERE i.inhparent = p_table::regclass
     ORDER BY 2 NULLS FIRST
$$;

-- Drop partitions wholly older than each table's retention (plain path). Returns what it did.
CREATE FUNCTION kneeload.apply_retention(p_dry_run boolean DEFAULT false)
    RETURNS TABLE (table_name text, partition_name text, range_end timestamptz, action text)
    LANGUAGE plpgsql AS $$
DECLARE
    t record;
    p record;
    n bigint;
BEGIN
    FOR t IN SELECT * FROM kneeload.partitioned_tables pt WHERE pt.retention IS NOT NULL AND pt.flavour = 'plain' LOOP
        FOR p IN SELECT * FROM kneeload.partitions(t.table_name) x
                  WHERE NOT x.is_default AND x.range_end <= now() - t.retention LOOP
            table_name := t.table_name; partition_name := p.partition_name; range_end := p.range_end;
            action := CASE WHEN p_dry_run THEN 'would drop' ELSE 'dropped' END;
            IF NOT p_dry_run THEN
                EXECUTE format('DROP TABLE kneeload.%I', p.partition_name);
            END IF;
            RETURN NEXT;
        END LOOP;
        IF NOT p_dry_run THEN
            EXECUTE format('DELETE FROM kneeload.%I WHERE %I < %L', split_part(t.table_name, '.', 2) || '_default',
                           t.column_name, now() - t.retention);
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n > 0 THEN
                table_name := t.table_name; partition_name := split_part(t.table_name, '.', 2) || '_default';
                range_end := now() - t.retention; action := format('deleted %s rows', n);
                RETURN NEXT;
            END IF;
        END IF;
    END LOOP;
END $$;

-- Sink bookkeeping: the next Kafka offset per partition, written in the same transaction as the
-- rows, so a sink that dies after the database commit (before the Kafka commit) resumes exactly.
CREATE TABLE kneeload.sink_offsets (
    consumer_group text NOT NULL,
    topic          text NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset    bigint NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);
