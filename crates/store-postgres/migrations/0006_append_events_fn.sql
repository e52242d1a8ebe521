-- A batch of events (POST /sessions/{id}/events/batch, issue #8) in one statement, so in
-- one transaction under the store's advisory lock: the checks of aof_append_event
-- (0005), in its order, for every event first; then each event stored in array order.
-- Arrays are 1-based and parallel: event i has p_runs[i], p_idems[i], p_tokens[i],
-- p_event_types[i], p_datas[i]. Outcomes as aof_append_event's, with failed_index (the
-- 1-based event that failed); anything but `stored` wrote nothing. On `stored`,
-- out_cursors/out_seqs hold NULL for an event whose key was stored before (or earlier
-- in this batch): a duplicate, as for one event.
CREATE FUNCTION aof_append_events(
    p_lock BIGINT,
    p_session TEXT,
    p_runs TEXT[],
    p_idems TEXT[],
    p_tokens TEXT[],
    p_leased TEXT[],
    p_event_types TEXT[],
    p_datas TEXT[],
    p_channel TEXT,
    p_instance TEXT,
    OUT outcome TEXT,
    OUT out_cursors BIGINT[],
    OUT out_seqs BIGINT[],
    OUT detail TEXT,
    OUT failed_index INT
) LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
    n INT := coalesce(array_length(p_datas, 1), 0);
    i INT;
    checked_run TEXT;
    checked_token TEXT;
    dups BOOLEAN[] := '{}';
    k INT := 0;
    c BIGINT;
    s BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    IF NOT EXISTS (SELECT 1 FROM sessions WHERE session_id = p_session) THEN
        outcome := 'no_session';
        RETURN;
    END IF;
    -- Fencing for every event that would be stored; a retried (duplicate) event is fine
    -- even if its lease moved on since. Consecutive events of one run are checked once.
    FOR i IN 1..n LOOP
        -- A duplicate of a stored event. (A key repeated inside the batch is found by
        -- the insert loop below; here it is checked like a new event.)
        dups := array_append(dups, p_idems[i] IS NOT NULL AND EXISTS (
            SELECT 1 FROM feed WHERE session_id = p_session AND idem_key = p_idems[i]));
        CONTINUE WHEN dups[i];
        k := k + 1;
        CONTINUE WHEN p_tokens[i] IS NULL;
        CONTINUE WHEN checked_token IS NOT NULL
            AND p_tokens[i] = checked_token AND p_runs[i] IS NOT DISTINCT FROM checked_run;
        failed_index := i;
        IF p_runs[i] IS NULL THEN
            outcome := 'need_run_id';
            RETURN;
        END IF;
        SELECT session_id, status, lease_token INTO r FROM runs WHERE run_id = p_runs[i];
        IF NOT FOUND THEN
            outcome := 'no_run';
            RETURN;
        END IF;
        IF r.session_id <> p_session
           OR NOT (r.status = ANY (p_leased))
           OR r.lease_token IS DISTINCT FROM p_tokens[i] THEN
            outcome := 'lease_conflict';
            detail := r.status;
            RETURN;
        END IF;
        failed_index := NULL;
        checked_run := p_runs[i];
        checked_token := p_tokens[i];
    END LOOP;
    -- The batch's seqs in one update (s, s+1, … s+k-1), not one row version per event.
    UPDATE sessions SET next_seq = next_seq + k WHERE session_id = p_session
        RETURNING next_seq - k INTO s;
    out_cursors := '{}';
    out_seqs := '{}';
    FOR i IN 1..n LOOP
        IF dups[i] OR (p_idems[i] IS NOT NULL AND EXISTS (
            SELECT 1 FROM feed WHERE session_id = p_session AND idem_key = p_idems[i])) THEN
            out_cursors := array_append(out_cursors, NULL::BIGINT);
            out_seqs := array_append(out_seqs, NULL::BIGINT);
            CONTINUE;
        END IF;
        INSERT INTO feed(kind, session_id, seq, run_id, idem_key, event_type, data)
            VALUES ('event', p_session, s, p_runs[i], p_idems[i], p_event_types[i], p_datas[i])
            RETURNING cursor INTO c;
        out_cursors := array_append(out_cursors, c);
        out_seqs := array_append(out_seqs, s);
        s := s + 1;
    END LOOP;
    -- Keys repeated inside the batch were counted in k but not stored: no seq gap.
    IF s IS DISTINCT FROM (SELECT next_seq FROM sessions WHERE session_id = p_session) THEN
        UPDATE sessions SET next_seq = s WHERE session_id = p_session;
    END IF;
    -- One NOTIFY for the batch, delivered at COMMIT: the other coordinators' feed relays
    -- read every new row from the table.
    PERFORM pg_notify(p_channel, p_instance);
    outcome := 'stored';
END
$$;
