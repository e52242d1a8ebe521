-- The event-append hot path in one round trip. A separate append used ~10 statements
-- (BEGIN, lock, checks, seq, insert, NOTIFY, COMMIT), each a round trip made while the
-- store's write lock is held, so ingest was bound by latency, not by work. Called as a
-- single autocommit statement: the advisory lock is held until that statement's COMMIT,
-- so cursors stay in commit order across coordinators, as for every other write.
-- Outcomes: stored | duplicate | no_session | need_run_id | no_run | lease_conflict
-- (detail = the run's status). Anything but `stored` wrote nothing.
CREATE FUNCTION aof_append_event(
    p_lock BIGINT,
    p_session TEXT,
    p_run TEXT,
    p_idem TEXT,
    p_token TEXT,
    p_leased TEXT[],
    p_event_type TEXT,
    p_data TEXT,
    p_channel TEXT,
    p_instance TEXT,
    OUT outcome TEXT,
    OUT out_cursor BIGINT,
    OUT out_seq BIGINT,
    OUT detail TEXT
) LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    IF NOT EXISTS (SELECT 1 FROM sessions WHERE session_id = p_session) THEN
        outcome := 'no_session';
        RETURN;
    END IF;
    -- A retry of a stored event is fine even if its lease moved on since.
    IF p_idem IS NOT NULL
       AND EXISTS (SELECT 1 FROM feed WHERE session_id = p_session AND idem_key = p_idem) THEN
        outcome := 'duplicate';
        RETURN;
    END IF;
    IF p_token IS NOT NULL THEN
        IF p_run IS NULL THEN
            outcome := 'need_run_id';
            RETURN;
        END IF;
        SELECT session_id, status, lease_token INTO r FROM runs WHERE run_id = p_run;
        IF NOT FOUND THEN
            outcome := 'no_run';
            RETURN;
        END IF;
        IF r.session_id <> p_session
           OR NOT (r.status = ANY (p_leased))
           OR r.lease_token IS DISTINCT FROM p_token THEN
            outcome := 'lease_conflict';
            detail := r.status;
            RETURN;
        END IF;
    END IF;
    UPDATE sessions SET next_seq = next_seq + 1 WHERE session_id = p_session
        RETURNING next_seq - 1 INTO out_seq;
    INSERT INTO feed(kind, session_id, seq, run_id, idem_key, event_type, data)
        VALUES ('event', p_session, out_seq, p_run, p_idem, p_event_type, p_data)
        RETURNING cursor INTO out_cursor;
    -- Delivered at COMMIT: wakes the feed relay of every other coordinator.
    PERFORM pg_notify(p_channel, p_instance);
    outcome := 'stored';
END
$$;
