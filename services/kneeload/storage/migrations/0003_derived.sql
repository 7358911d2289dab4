-- 0003 derived tables (written by the sink from the worker's topics; all ids are deterministic).

CREATE TABLE kneeload.sample_load (
    time                     timestamptz NOT NULL,
    record_id                text NOT NULL,
    athlete_id               text NOT NULL,
    session_id               text,
    speed_mps                real,
    cadence_spm              real,
    ground_contact_ms        real,
    ground_contact_estimated boolean,
    grade_pct                real,
    bws_pct                  real,
    unit_id                  text,
    peak_pfj_stress_mpa      real,
    pfj_impulse_mpa_s        real,
    late                     boolean,
    PRIMARY KEY (record_id, time)
) /*@partition_by time*/;
CREATE INDEX sample_load_athlete_time ON kneeload.sample_load (athlete_id, time);
-- @time_partitioned kneeload.sample_load time day retention=30 days segment_by=athlete_id
COMMENT ON TABLE kneeload.sample_load IS 'Estimated PFJ load per sample (load.samples) for the live session panel';

CREATE TABLE kneeload.minute_load (
    minute              timestamptz NOT NULL,
    id                  text NOT NULL,
    athlete_id          text NOT NULL,
    team_id             text,
    session_id          text,
    unit_id             text,
    samples             integer NOT NULL,
    duration_s          real NOT NULL,
    distance_m          real,
    mean_speed_mps      real,
    mean_cadence_spm    real,
    mean_bws_pct        real,
    peak_pfj_stress_mpa real,
    pfj_load_mpa_s      real,
    revision            integer NOT NULL,
    utc_date            date GENERATED ALWAYS AS ((minute AT TIME ZONE 'UTC')::date) STORED,
    PRIMARY KEY (id, minute)
) /*@partition_by minute*/;
CREATE INDEX minute_load_athlete_minute ON kneeload.minute_load (athlete_id, minute);
CREATE INDEX minute_load_unit_day ON kneeload.minute_load (utc_date, unit_id) WHERE unit_id IS NOT NULL;
-- @time_partitioned kneeload.minute_load minute week retention=730 days segment_by=athlete_id
COMMENT ON TABLE kneeload.minute_load IS 'Estimated PFJ load per athlete-minute (load.minute); latest revision';

CREATE TABLE kneeload.sessions (
    session_id          text PRIMARY KEY,
    athlete_id          text NOT NULL,
    team_id             text,
    unit_id             text,
    start_time          timestamptz NOT NULL,
    end_time            timestamptz NOT NULL,
    duration_s          real NOT NULL,
    distance_m          real,
    mean_cadence_spm    real,
    mean_speed_mps      real,
    mean_bws_pct        real,
    peak_pfj_stress_mpa real,
    pfj_load_mpa_s      real,
    pfj_load_per_km     real,
    samples             integer NOT NULL,
    coverage_pct        real,
    status              text NOT NULL CHECK (status IN ('open', 'closed')),
    revision            integer NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_athlete_start ON kneeload.sessions (athlete_id, start_time);
CREATE INDEX sessions_unit_start ON kneeload.sessions (unit_id, start_time) WHERE unit_id IS NOT NULL;
COMMENT ON TABLE kneeload.sessions IS 'Session summaries (sessions topic); latest revision';

-- Daily load and ACWR per method: the current (highest) revision ...
CREATE TABLE kneeload.daily_load (
    athlete_id         text NOT NULL,
    metric             text NOT NULL,
    date               date NOT NULL,
    id                 text NOT NULL,
    team_id            text,
    load               double precision NOT NULL,
    status             text NOT NULL CHECK (status IN ('provisional', 'final')),
    revision           integer NOT NULL,
    corrected          boolean NOT NULL,
    ewma_acute         double precision,
    ewma_chronic       double precision,
    ewma_acwr          double precision,
    ewma_reason        text,
    rac_acute          double precision,
    rac_chronic        double precision,
    rac_acwr           double precision,
    rac_reason         text,
    rau_acute          double precision,
    rau_chronic        double precision,
    rau_acwr           double precision,
    rau_reason         text,
    week_over_week_pct double precision,
    monotony           double precision,
    strain             double precision,
    atl                double precision,
    ctl                double precision,
    tsb                double precision,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (athlete_id, metric, date)
);
COMMENT ON TABLE kneeload.daily_load IS 'Daily load and ACWR per athlete, metric and date: the latest revision (daily.load)';
-- ... and every revision ever received (corrections from late data stay visible).
CREATE TABLE kneeload.daily_load_revisions (
    LIKE kneeload.daily_load INCLUDING DEFAULTS,
    PRIMARY KEY (athlete_id, metric, date, revision)
);
COMMENT ON TABLE kneeload.daily_load_revisions IS 'History of every daily_load revision (provisional, final, corrections)';

CREATE TABLE kneeload.pain_responses (
    id                 text PRIMARY KEY,
    report_id          text NOT NULL,
    athlete_id         text NOT NULL,
    team_id            text,
    session_id         text,
    time               timestamptz NOT NULL,
    pain_nrs           smallint NOT NULL,
    context            text NOT NULL,
    baseline_nrs       real,
    classification     text NOT NULL,
    reason             text NOT NULL,
    preset             text NOT NULL,
    bws_unit_id        text,
    bws_action         text,
    bws_current_pct    real,
    bws_suggested_pct  real,
    bws_reason         text
);
CREATE INDEX pain_responses_athlete_time ON kneeload.pain_responses (athlete_id, time);
CREATE INDEX pain_responses_suggestions ON kneeload.pain_responses (time) WHERE bws_action IS NOT NULL;
COMMENT ON TABLE kneeload.pain_responses IS 'Pain-monitoring classification of pain reports with BWS suggestions (pain.responses)';

CREATE TABLE kneeload.correlations (
    id              text PRIMARY KEY,
    scope           text NOT NULL,
    athlete_id      text,
    team_id         text,
    metric          text NOT NULL,
    lag_days        smallint NOT NULL,
    method          text NOT NULL,
    n               integer NOT NULL,
    r               double precision,
    df              integer,
    ci_low          double precision,
    ci_high         double precision,
    p_value         double precision,
    withheld_reason text,
    time            timestamptz NOT NULL
);
CREATE INDEX correlations_subject ON kneeload.correlations (athlete_id, team_id, metric, lag_days, method, time);
COMMENT ON TABLE kneeload.correlations IS 'Pain-load correlations per athlete or team (correlations topic)';

CREATE TABLE kneeload.alerts (
    alert_id        text PRIMARY KEY,
    dedup_key       text NOT NULL,
    kind            text NOT NULL,
    severity        text NOT NULL,
    athlete_id      text,
    unit_id         text,
    team_id         text,
    clinic_id       text,
    event_time      timestamptz NOT NULL,
    message         text NOT NULL,
    "values"        jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    acknowledged_by text,
    acknowledged_at timestamptz
);
CREATE INDEX alerts_open_athlete ON kneeload.alerts (athlete_id) WHERE acknowledged_at IS NULL;
CREATE INDEX alerts_open_time ON kneeload.alerts (event_time) WHERE acknowledged_at IS NULL;
CREATE INDEX alerts_dedup ON kneeload.alerts (dedup_key);
COMMENT ON TABLE kneeload.alerts IS 'Alerts (alerts topic) with acknowledgement (who and when); acknowledge with kneeload.acknowledge_alert()';

CREATE TABLE kneeload.unit_status (
    time               timestamptz NOT NULL,
    id                 text NOT NULL,
    unit_id            text NOT NULL,
    clinic_id          text,
    online             boolean NOT NULL,
    in_use             boolean NOT NULL,
    athlete_id         text,
    bws_pct            real,
    date               date NOT NULL,
    minutes_used_today real NOT NULL,
    last_seen          timestamptz,
    PRIMARY KEY (id, time)
) /*@partition_by time*/;
CREATE INDEX unit_status_unit_time ON kneeload.unit_status (unit_id, time);
-- @time_partitioned kneeload.unit_status time week retention=90 days segment_by=unit_id
COMMENT ON TABLE kneeload.unit_status IS 'LEVER unit status snapshots (unit.status)';

CREATE TABLE kneeload.dead_letters (
    id                text PRIMARY KEY,
    source            text NOT NULL,
    reason_code       text NOT NULL,
    detail            text NOT NULL,
    received_at       timestamptz NOT NULL,
    topic             text,
    key               text,
    errors            jsonb NOT NULL,
    payload           text,
    payload_truncated boolean NOT NULL,
    payload_encoding  text NOT NULL
);
CREATE INDEX dead_letters_received ON kneeload.dead_letters USING brin (received_at);
COMMENT ON TABLE kneeload.dead_letters IS 'Rejected inputs and failed messages (deadletter topic)';

-- Acknowledge an alert: the first acknowledgement is kept. Runs as the caller, so row-level
-- security limits a coach to the alerts they can see. Returns false if not found/visible or
-- already acknowledged.
CREATE FUNCTION kneeload.acknowledge_alert(p_alert_id text, p_by text DEFAULT NULL)
    RETURNS boolean LANGUAGE sql VOLATILE AS $$
    WITH u AS (
        UPDATE kneeload.alerts SET acknowledged_by = coalesce(p_by, current_user::text), acknowledged_at = now()
         WHERE alert_id = p_alert_id AND acknowledged_at IS NULL
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM u)
$$;
COMMENT ON FUNCTION kneeload.acknowledge_alert(text, text) IS
    'Acknowledge an alert (by defaults to the database role); the first acknowledgement is kept';
