-- 0021 the fleet figures the core computes, stored for the clinic dashboard (issue #15 item 5).
--
-- Minutes per state within a clinic's opening hours (kneeload.core.utilisation: time-zone
-- aware, not a SQL concern) and the outcomes by unit and clinic (kneeload.core.outcomes: a
-- Kaplan-Meier median, withholding below the minimum n) cannot be computed by a Grafana
-- panel's SQL. `kneeload fleet refresh` computes them as `kneeload fleet report` does and
-- replaces the period's rows here; the dashboard reads them through the views below.
-- Row-level security: unit rows are visible to the unit's clinic (as unit_status), clinic
-- rows to the clinic; both to the owner. Only aggregates are stored: no athlete's figure.
-- The views get kneeload_api_owner and readers' SELECT from kneeload.secure_api_views(),
-- which `kneeload migrate` runs after every run.

CREATE TABLE kneeload.fleet_unit_days (
    unit_id                  text NOT NULL,
    clinic_id                text,
    date                     date NOT NULL,
    open_min                 real NOT NULL,
    in_use_min               real NOT NULL,
    idle_min                 real NOT NULL,
    offline_min              real NOT NULL,
    unknown_min              real NOT NULL,
    in_use_outside_hours_min real NOT NULL,
    utilisation_pct          real,
    sessions                 integer NOT NULL,
    athletes                 integer NOT NULL,
    computed_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, date)
);
COMMENT ON TABLE kneeload.fleet_unit_days IS
'Minutes in use, idle, offline and unknown within the clinic''s opening hours per unit and local day (kneeload.core.utilisation, stored by kneeload fleet refresh)';

CREATE TABLE kneeload.fleet_outcomes (
    level                  text NOT NULL CHECK (level IN ('unit', 'clinic')),
    group_id               text NOT NULL,
    clinic_id              text,
    period_from            date NOT NULL,
    period_to              date NOT NULL,
    athletes               integer NOT NULL,
    sessions               integer NOT NULL,
    pain_n                 integer NOT NULL,
    pain_first_mean_nrs    real,
    pain_last_mean_nrs     real,
    pain_change_nrs        real,
    bws_n                  integer NOT NULL,
    bws_reached            integer NOT NULL,
    bws_median_days        real,
    bws_reached_share      real,
    pfj_n                  integer NOT NULL,
    pfj_load_per_km_median real,
    flares_n               integer NOT NULL,
    flares                 integer,
    athletes_with_flare    integer,
    flares_per_athlete     real,
    min_n                  integer NOT NULL,
    withheld               text NOT NULL,
    rank_pain_change       integer,
    rank_pfj_load_per_km   integer,
    computed_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (level, group_id)
);
COMMENT ON TABLE kneeload.fleet_outcomes IS
'Outcomes by unit and clinic over the last refreshed period (kneeload.core.outcomes, stored by kneeload fleet refresh): every figure with its n, NULL where withheld below min_n, ranks only among groups whose figure is shown';

ALTER TABLE kneeload.fleet_unit_days ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.fleet_unit_days FOR SELECT
    USING (kneeload.sees_all_rows() OR unit_id = ANY ((SELECT array_agg(unit_id) FROM kneeload.units)::text[]));
ALTER TABLE kneeload.fleet_outcomes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON kneeload.fleet_outcomes FOR SELECT
    USING (kneeload.sees_all_rows()
           OR (level = 'unit' AND group_id = ANY ((SELECT array_agg(unit_id) FROM kneeload.units)::text[]))
           OR (level = 'clinic' AND group_id IN (SELECT g.tenant_id FROM kneeload.tenant_grants g WHERE g.kind = 'clinic')));
GRANT SELECT ON kneeload.fleet_unit_days, kneeload.fleet_outcomes TO kneeload_api_owner;

CREATE VIEW kneeload_api.fleet_utilisation_daily AS
SELECT d.unit_id, coalesce(u.clinic_id, d.clinic_id) AS clinic_id, d.date,
       d.open_min, d.in_use_min, d.idle_min, d.offline_min, d.unknown_min,
       d.in_use_outside_hours_min, d.utilisation_pct,
       round((100 * d.offline_min / nullif(d.open_min - d.unknown_min, 0))::numeric, 1) AS downtime_pct,
       d.sessions, d.athletes, d.computed_at
  FROM kneeload.fleet_unit_days d
  LEFT JOIN kneeload.units u ON u.unit_id = d.unit_id;
COMMENT ON VIEW kneeload_api.fleet_utilisation_daily IS
'Per LEVER unit and local day: minutes in use, online idle, offline and unknown within the clinic''s opening hours, in use outside them, utilisation and downtime (% of the known open time), sessions and athletes (kneeload.core.utilisation; refreshed by kneeload fleet refresh).';

CREATE VIEW kneeload_api.fleet_outcomes AS
SELECT o.level, o.group_id, o.clinic_id, o.period_from, o.period_to, o.athletes, o.sessions,
       o.pain_n, o.pain_first_mean_nrs, o.pain_last_mean_nrs, o.pain_change_nrs,
       o.bws_n, o.bws_reached, o.bws_median_days, o.bws_reached_share,
       o.pfj_n, o.pfj_load_per_km_median, o.flares_n, o.flares, o.athletes_with_flare,
       o.flares_per_athlete, o.min_n, o.withheld, o.rank_pain_change, o.rank_pfj_load_per_km,
       o.computed_at
  FROM kneeload.fleet_outcomes o;
COMMENT ON VIEW kneeload_api.fleet_outcomes IS
'Outcomes by unit and clinic (kneeload.core.outcomes): next-morning pain first vs last two weeks, Kaplan-Meier median days to <= fleet_bws_target_pct BWS, median estimated PFJ load per km, pain flares; each with its n, NULL (withheld) below min_n, ranked only among shown figures. Observational figures, not verdicts on a unit.';
