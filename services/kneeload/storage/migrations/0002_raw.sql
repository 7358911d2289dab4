-- 0002 raw tables: watch samples (one row per sample), treadmill telemetry, BWS setpoints, pain reports.
-- Time-partitioned: declarative RANGE partitions on plain PostgreSQL, hypertables on TimescaleDB
-- (the `@` directives are expanded by the migration runner for the detected flavour).
-- Primary keys are the natural ids (plus the time column, which every partitioned/hypertable
-- unique key must contain): replays and duplicates are no-ops.

CREATE TABLE kneeload.watch_batches (
    batch_id    text PRIMARY KEY,
    athlete_id  text NOT NULL,
    device_id   text NOT NULL,
    team_id     text,
    session_id  text,
    source      text NOT NULL,
    sub_sport   text,
    received_at timestamptz NOT NULL,
    samples     integer NOT NULL
);
CREATE INDEX watch_batches_received ON kneeload.watch_batches USING brin (received_at);

CREATE TABLE kneeload.watch_samples (
    time                    timestamptz NOT NULL,
    record_id               text NOT NULL,
    athlete_id              text NOT NULL,
    device_id               text NOT NULL,
    session_id              text,
    batch_id                text NOT NULL,
    cadence_spm             real,
    speed_mps               real,
    ground_contact_ms       real,
    vertical_oscillation_mm real,
    vertical_ratio_pct      real,
    step_length_mm          real,
    power_w                 real,
    heart_rate_bpm          real,
    grade_pct               real,
    distance_m              double precision,
    vertical_load_bw        real,
    PRIMARY KEY (record_id, time)
) /*@partition_by time*/;
-- @time_partitioned kneeload.watch_samples time day retention=180 days segment_by=athlete_id compress
COMMENT ON TABLE kneeload.watch_samples IS 'Raw watch samples, one row per sample (watch.samples topic)';

CREATE TABLE kneeload.treadmill_telemetry (
    time                 timestamptz NOT NULL,
    record_id            text NOT NULL,
    unit_id              text NOT NULL,
    clinic_id            text,
    kind                 text NOT NULL,
    belt_speed_mps       real,
    incline_pct          real,
    bws_pct              real,
    measured_support_pct real,
    athlete_id           text,
    PRIMARY KEY (record_id, time)
) /*@partition_by time*/;
CREATE INDEX treadmill_telemetry_unit_time ON kneeload.treadmill_telemetry (unit_id, time);
-- @time_partitioned kneeload.treadmill_telemetry time day retention=90 days segment_by=unit_id compress
COMMENT ON TABLE kneeload.treadmill_telemetry IS 'Raw LEVER unit telemetry and heartbeats (treadmill.telemetry topic)';

CREATE TABLE kneeload.bws_setpoints (
    time             timestamptz NOT NULL,
    record_id        text NOT NULL,
    unit_id          text NOT NULL,
    clinic_id        text,
    bws_pct          real NOT NULL,
    previous_bws_pct real,
    athlete_id       text,
    set_by           text,
    PRIMARY KEY (record_id, time)
) /*@partition_by time*/;
CREATE INDEX bws_setpoints_unit_time ON kneeload.bws_setpoints (unit_id, time);
-- @time_partitioned kneeload.bws_setpoints time week segment_by=unit_id compress
COMMENT ON TABLE kneeload.bws_setpoints IS 'Raw BWS setpoint changes of LEVER units (treadmill.setpoints topic)';

CREATE TABLE kneeload.pain_reports (
    time        timestamptz NOT NULL,
    report_id   text NOT NULL,
    athlete_id  text NOT NULL,
    team_id     text,
    pain_nrs    smallint NOT NULL CHECK (pain_nrs BETWEEN 0 AND 10),
    context     text NOT NULL,
    session_id  text,
    swelling    boolean,
    session_rpe real,
    note        text,
    PRIMARY KEY (report_id, time)
) /*@partition_by time*/;
CREATE INDEX pain_reports_athlete_time ON kneeload.pain_reports (athlete_id, time);
CREATE INDEX pain_reports_session ON kneeload.pain_reports (session_id) WHERE session_id IS NOT NULL;
-- @time_partitioned kneeload.pain_reports time week segment_by=athlete_id
COMMENT ON TABLE kneeload.pain_reports IS 'Raw pain reports (pain.reports topic)';

-- Registry (from the compacted registry topics; stubs are created for ids first seen in events)
CREATE TABLE kneeload.athletes (
    athlete_id   text PRIMARY KEY,
    team_id      text,
    body_mass_kg real,
    time_zone    text NOT NULL DEFAULT 'UTC',
    display_name text,
    active       boolean NOT NULL DEFAULT true,
    calibration  jsonb,
    updated_at   timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE INDEX athletes_team ON kneeload.athletes (team_id);
COMMENT ON TABLE kneeload.athletes IS 'Athlete registry (registry.athletes); updated_at = -infinity marks a stub created from an event';

CREATE TABLE kneeload.devices (
    device_id   text PRIMARY KEY,
    kind        text NOT NULL,
    clinic_id   text,
    athlete_id  text,
    revoked     boolean NOT NULL,
    max_bws_pct real,
    timeout_s   integer,
    updated_at  timestamptz NOT NULL
);
COMMENT ON TABLE kneeload.devices IS 'Device registry (registry.devices) without the API key hashes';

CREATE TABLE kneeload.units (
    unit_id        text PRIMARY KEY,
    clinic_id      text,
    athlete_id     text,                  -- current assignment
    assigned_since timestamptz,
    max_bws_pct    real,
    timeout_s      integer,
    updated_at     timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE INDEX units_clinic ON kneeload.units (clinic_id);
COMMENT ON TABLE kneeload.units IS 'LEVER units: clinic, current assignment (registry.assignments) and limits (registry.devices)';
