-- The live-feed NOTIFY comes from the insert itself, so a write transaction no longer
-- spends a round trip on `SELECT pg_notify(...)` before its COMMIT (every write holds
-- the database-wide write lock, so each round trip inside one is paid by all writers).
-- The payload is the writing coordinator's instance id, which each coordinator sets on
-- its connections (`aof.instance`); others' relays skip nothing they should not: an
-- unknown or empty payload only makes every relay catch up. The channel is
-- `live::CHANNEL`. Duplicate notifications in one transaction are folded by the server,
-- so the explicit NOTIFY in `aof_append_event(s)` costs nothing extra.
CREATE FUNCTION aof_feed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('aof_feed', COALESCE(current_setting('aof.instance', true), ''));
    RETURN NULL;
END
$$;
CREATE TRIGGER feed_notify AFTER INSERT ON feed FOR EACH STATEMENT EXECUTE FUNCTION aof_feed_notify();
