-- 0024 athlete_pain_latest refreshed once per statement on TimescaleDB too (issue #19).
--
-- 0008 keeps athlete_pain_latest from pain_reports with triggers. Plain PostgreSQL: statement
-- triggers with transition tables (each athlete of a statement refreshed once). TimescaleDB
-- refuses transition tables on hypertables, so 0008 used a row trigger there that recomputed
-- the athlete from pain_reports for EVERY inserted row: a bulk insert of 4,000 reports
-- (200 athletes x 20) ran at 728 rows/s, and a second one at 280 rows/s (each refresh reads
-- the athlete's growing history), against ~100,000 rows/s with triggers off — the views
-- bench's 1,000 x 90 seed had to switch them off.
--
-- Now on TimescaleDB: a row trigger only notes the athlete in kneeload.pain_refresh_pending
-- (keyed by the top-level transaction, so concurrent writers never see each other's notes),
-- and a statement trigger (allowed on hypertables; it fires after every row trigger of its
-- statement) refreshes each noted athlete once and removes the notes. Same transaction, same
-- result as before: idempotent, order-independent, never stale. A statement rolled back (a
-- savepoint of the sink) takes its notes with it. Plain PostgreSQL: unchanged.
-- @if timescale
CREATE UNLOGGED TABLE kneeload.pain_refresh_pending (
    xact       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    athlete_id text NOT NULL,
    PRIMARY KEY (xact, athlete_id)
);
COMMENT ON TABLE kneeload.pain_refresh_pending IS
'Athletes whose pain_reports changed in the running statement (TimescaleDB: hypertables take no transition tables); emptied by the statement trigger that refreshes athlete_pain_latest. Unlogged: it never holds anything past its transaction';

CREATE FUNCTION kneeload.pain_reports_note_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO kneeload.pain_refresh_pending (athlete_id) VALUES (NEW.athlete_id)
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO kneeload.pain_refresh_pending (athlete_id) VALUES (OLD.athlete_id)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION kneeload.pain_reports_refresh_noted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids text[];
BEGIN
    WITH done AS (
        DELETE FROM kneeload.pain_refresh_pending WHERE xact = pg_current_xact_id()
        RETURNING athlete_id)
    SELECT array_agg(athlete_id) INTO ids FROM done;
    IF ids IS NOT NULL THEN
        PERFORM kneeload.refresh_athlete_pain(ids);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER pain_latest ON kneeload.pain_reports;
DROP FUNCTION kneeload.pain_reports_refresh_row();
CREATE TRIGGER pain_latest_note AFTER INSERT OR UPDATE OR DELETE ON kneeload.pain_reports
    FOR EACH ROW EXECUTE FUNCTION kneeload.pain_reports_note_row();
CREATE TRIGGER pain_latest_refresh AFTER INSERT OR UPDATE OR DELETE ON kneeload.pain_reports
    FOR EACH STATEMENT EXECUTE FUNCTION kneeload.pain_reports_refresh_noted();
-- @else
SELECT 1;  -- plain PostgreSQL: 0008's statement triggers with transition tables
-- @end
